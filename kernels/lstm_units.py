"""The LSTM's forward pass and BPTT sweep with the units split between threads (SPEC §4, §6).

The batch-split kernels (``lstm_forward``, ``lstm_bptt``) give each thread its own batch rows
and the whole time loop: every thread multiplies its rows by the whole recurrent matrix in every
step, so at a small batch each reads all of W_hh for a few rows (a batch of one cannot be split
at all). Here each thread owns a block of units instead — its columns of every gate, its rows of
c and h — and the whole batch: in every step it multiplies all rows by its own part of the
weights, then runs the cell for its units. The weights are read once per step in all, the
products keep every row, and the threads meet once per step (the parallel loop ends), because
the next step's product needs every unit of the state.

Unit block j of ``nblocks`` is u0 = j·n // nblocks .. u1 = (j + 1)·n // nblocks. The serial twin
(one block) computes what ``lstm_forward`` / ``lstm_bptt`` compute (to rounding: the compiler may
fuse multiply-adds differently).
"""
import numpy as np
from numba import prange

from ._activations import constants
from ._jit import kernel
from ._lstm_cell import cell_step, gate_deltas
from ._panels import cut_panels, panel_dot, panel_scratch


@kernel("units")
def _lstm_forward_units(x, W_ih, W_hh, bias, h, c, gates, nblocks):
    """Run the LSTM for t = 1..T, the units split into ``nblocks`` blocks.

    Array contract: as ``lstm_forward._lstm_forward`` (x (T, B, m), W_ih (4n, m), W_hh (4n, n),
    bias (4n,), h, c (T + 1, B, n) with the initial state in [0], gates (T, B, 4n) written).
    """
    T, B, m = x.shape
    n = W_hh.shape[1]
    K = constants(h)
    np.dot(x.reshape(T * B, m), W_ih.T, gates.reshape(T * B, 4 * n))
    # block j's weights: W_hh's rows of its units, gate by gate ([i | f | g | o], nu each)
    panels = []
    for j in range(nblocks):
        u0 = j * n // nblocks
        u1 = (j + 1) * n // nblocks
        nu = u1 - u0
        W = np.empty((4 * nu, n), dtype=W_hh.dtype)
        for q in range(4):
            W[q * nu:(q + 1) * nu, :] = W_hh[q * n + u0:q * n + u1, :]
        panels.append(cut_panels(W.T, B))
    scratch = [panel_scratch(panels[j], B) for j in range(nblocks)]
    recs = [np.empty((B, 4 * ((j + 1) * n // nblocks - j * n // nblocks)), dtype=h.dtype) for j in range(nblocks)]
    for t in range(T):
        for j in prange(nblocks):
            u0 = j * n // nblocks
            u1 = (j + 1) * n // nblocks
            rec = recs[j]
            panel_dot(h[t], panels[j], scratch[j], rec)
            for b in range(B):
                cell_step(gates[t, b], rec[b], bias, c[t, b, u0:u1], c[t + 1, b, u0:u1], h[t + 1, b, u0:u1],
                          K, u0)


@kernel("units")
def _lstm_sweep_units(W_hh, c, gates, g, dcT, trunc_h, trunc_hp, D, dc0, nblocks):
    """The backward recursion of ``lstm_bptt._lstm_sweep``, the units split into ``nblocks`` blocks.

    Array contract: as ``lstm_bptt._lstm_sweep`` (D (T, B, 4n) and dc0 (B, n) overwritten). Block j
    computes its units' part of dh_t = g_t + W_hh^T delta_{t+1} from the whole delta_{t+1} of the
    step before, then its units' deltas (four column ranges of each row of delta_t) and dc.
    """
    T, B, n4 = D.shape
    n = n4 // 4
    K = constants(c)
    D[:, :, :] = 0
    dc0[:, :] = 0
    cur = np.empty((B, 4 * n), dtype=D.dtype)
    nxt = np.empty((B, 4 * n), dtype=D.dtype)
    dcn = np.empty((B, n), dtype=D.dtype)         # dc_t, then dc_{t+1} f_{t+1} for the step before
    panels = [cut_panels(W_hh[:, j * n // nblocks:(j + 1) * n // nblocks], B) for j in range(nblocks)]
    scratch = [panel_scratch(panels[j], B) for j in range(nblocks)]
    backs = [np.empty((B, (j + 1) * n // nblocks - j * n // nblocks), dtype=D.dtype) for j in range(nblocks)]
    dhs = [np.empty((B, (j + 1) * n // nblocks - j * n // nblocks), dtype=D.dtype) for j in range(nblocks)]
    tcs = [np.empty((j + 1) * n // nblocks - j * n // nblocks, dtype=D.dtype) for j in range(nblocks)]
    start = 0
    while start < T:
        end = min(start + trunc_hp, T)
        low = start if trunc_h == trunc_hp else max(0, end - trunc_h)
        for s in range(end - 1, low - 1, -1):
            first = s == end - 1
            inject = s >= start
            for j in prange(nblocks):
                u0 = j * n // nblocks
                u1 = (j + 1) * n // nblocks
                nu = u1 - u0
                back = backs[j]
                dhv = dhs[j]
                if first:
                    back[:, :] = 0
                    for b in range(B):
                        for k in range(u0, u1):
                            dcn[b, k] = dcT[b, k] if end == T else 0
                else:
                    panel_dot(nxt, panels[j], scratch[j], back)
                for b in range(B):
                    dh = dhv[b]
                    if inject:
                        for k in range(nu):
                            dh[k] = back[b, k] + g[s, b, u0 + k]
                    else:
                        for k in range(nu):
                            dh[k] = back[b, k]
                    dl = cur[b]
                    gate_deltas(gates[s, b], dh, c[s + 1, b, u0:u1], c[s, b, u0:u1], tcs[j], dcn[b, u0:u1], dl, K,
                                u0)
                    drow = D[s, b]
                    for q in range(4):
                        a = q * n + u0
                        for k in range(nu):
                            drow[a + k] += dl[a + k]
                    if s == 0:
                        for k in range(u0, u1):
                            dc0[b, k] += dcn[b, k]
            cur, nxt = nxt, cur
        start = end
