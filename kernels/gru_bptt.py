"""BPTT through the GRU, exact and truncated BPTT(h; h') (SPEC §4, §6a)."""
import numpy as np
from numba import prange

from ._activations import ONE, constants
from ._jit import helper, kernel
from ._panels import panel_dot, panel_scratch, shared_panels
from ._rows import arriving, borrow, borrow2, prefetch_rows
from ._sync import store_release
from ._tiles import ROW_TILES
from .bptt import PREFETCH_MIN_BYTES


@kernel("batch", reads=("W_hh", "h", "gates", "g"))
def _gru_sweep(W_hh, h, gates, g, trunc_h, trunc_hp, D, An, dh0, panels, progress, nblocks, split):
    """The sequential backward recursion over h, summed over the BPTT(h; h') sweeps:

        dh = g_t + (error from step t + 1),  da_n = dh (1 - z)(1 - n^2),  da_r = da_n q r (1 - r),
        da_z = dh (h_{t-1} - n) z (1 - z),  dq = da_n r
        error to h_{t-1} = dh z + W_hh^T [da_r; da_z; dq]

    Array contract (one float dtype, C-contiguous):

    W_hh (3n, n); h (T + 1, B, n) and gates (T, B, 4n) = [r, z, n, q] from ``_gru_forward``;
    g (T, B, n) the error injected into h_t. trunc_h, trunc_hp: as in ``bptt._bptt_sweep``.
    D (T, B, 3n) is overwritten with the sum over sweeps of [da_r; da_z; dq] (the hidden side:
    dW_hh, db_hh and the recurrence follow from it); An (T, B, n) with the sum of da_n (the input
    side differs from D only in the n block: [da_r; da_z; da_n]).
    dh0 (B, n) is overwritten with the gradient with respect to h0.
    panels: a buffer for the weight panels (``_panels.cut_panels``; 1-d, reused by the caller).
    progress (1,) int64: how far exact BPTT on one block has come (D[s:] and An[s:] final), as in
        ``bptt._bptt_sweep``.
    nblocks: batch blocks, one per parallel task; each block owns its rows of D, An and dh0.
    split: with one batch row in the block, each step's product is cut into this many parts on
        parallel threads (``_panels._gemv_parts``; the serial twin at B = 1 only); 1: whole;
        ``_tiles.ROW_TILES`` (-1): whole, in row tiles (forward passes: ``_panels.stored_rows``). With more
        rows, ``_tiles.TILES`` (0) takes each product in compiled register tiles, 1 through the BLAS.
    Sweeps that do not overlap write straight into D and An (``once``, as ``bptt._bptt_sweep``).
    A batch of one in row tiles asks for the next step's rows of gates, g, h, D and An a step ahead where
    they hold more than ``bptt.PREFETCH_MIN_BYTES`` over all steps (as ``bptt._bptt_sweep``; 10 n numbers a
    step: ``bench/sweep_prefetch.py --cell gru``).
    """
    T, B, n3 = D.shape
    n = n3 // 3
    K = constants(h)
    one = K[ONE]
    once = trunc_h == trunc_hp
    publish = once and trunc_hp >= T and nblocks == 1
    rows = (B + nblocks - 1) // nblocks
    ahead = split == ROW_TILES and 10 * T * rows * n * D.itemsize > PREFETCH_MIN_BYTES
    P = shared_panels(W_hh, rows, panels, split, nblocks)
    for blk in prange(nblocks):
        b0 = blk * B // nblocks
        b1 = (blk + 1) * B // nblocks
        nb = b1 - b0
        if not once:
            D[:, b0:b1, :] = 0
            An[:, b0:b1, :] = 0
        dh0[b0:b1, :] = 0
        cur = np.empty((nb, 3 * n), dtype=D.dtype)
        back = np.empty((nb, n), dtype=D.dtype)
        dhv = np.empty((nb, n), dtype=D.dtype)
        tmp = panel_scratch(P, rows, nb, split)
        start = 0
        while start < T:
            end = min(start + trunc_hp, T)
            low = start if once else max(0, end - trunc_h)
            for s in range(end - 1, low - 1, -1):
                if ahead and s > low:       # the next step's rows, fetched while this step's product runs
                    prefetch_rows(gates, s - 1, b0, b1)
                    prefetch_rows(g, s - 1, b0, b1)
                    prefetch_rows(h, s - 1, b0, b1)
                    prefetch_rows(D, s - 1, b0, b1)
                    prefetch_rows(An, s - 1, b0, b1)
                if s == end - 1:
                    back[:, :] = 0
                else:
                    panel_dot(D[s + 1, b0:b1] if once else cur, P, tmp, back, s & 1 == 1)
                    for bb in range(nb):        # + dh_{t+1} z_{t+1}, one row's views at a time
                        bk = back[bb]
                        dv = borrow(dhv, bb)
                        zn = borrow2(gates, s + 1, b0 + bb)[n:2 * n]
                        for k in range(n):
                            bk[k] += dv[k] * zn[k]
                inject = s >= start
                for bb in range(nb):
                    b = b0 + bb
                    dh = borrow(dhv, bb)
                    arriving(dh, borrow(back, bb), borrow2(g, s, b), inject)
                    if once:        # each branch its own view (``bptt._bptt_sweep``)
                        _row_deltas(borrow2(gates, s, b), dh, borrow2(h, s, b), An[s, b], D[s, b], True, one)
                    else:
                        dl = cur[bb]
                        _row_deltas(borrow2(gates, s, b), dh, borrow2(h, s, b), An[s, b], dl, False, one)
                        drow = D[s, b]
                        for k in range(3 * n):
                            drow[k] += dl[k]
                if s == 0:                      # the error to h0, through the same panels
                    panel_dot(D[0, b0:b1] if once else cur, P, tmp, back, True)
                    for bb in range(nb):
                        for k in range(n):
                            dh0[b0 + bb, k] += back[bb, k] + dhv[bb, k] * gates[0, b0 + bb, n + k]
                if publish:
                    store_release(progress, 0, s)
            start = end


@helper
def _row_deltas(gr, dh, hp, an, dl, once, one):
    """The backward step of one batch row: dl (3n,) = [da_r; da_z; dq] from the gates gr = [r, z, n, q]
    of the step, the error dh arriving at h_t and h_{t-1} = hp; da_n is written into an (``once``)
    or added to it (overlapping sweeps). Short loops over few arrays, each gate block its own view,
    so that LLVM vectorises every loop (as ``_lstm_cell.gate_deltas``)."""
    n = dh.shape[0]
    row_deltas_of(gr[:n], gr[n:2 * n], gr[2 * n:3 * n], gr[3 * n:], dh, hp, an, dl[:n], dl[n:2 * n], dl[2 * n:],
                  once, one)


@helper
def row_deltas_of(gr_r, gr_z, gr_n, gr_q, dh, hp, an, dr, dz, dq, once, one):
    """``_row_deltas`` on the gates' and the deltas' blocks as views of their own, of the units dh (and the
    other arrays) hold: a row's whole, or some units of it (``chain``)."""
    n = dh.shape[0]
    for k in range(n):                      # da_n, kept in the q block for now
        z = gr_z[k]
        nk = gr_n[k]
        dq[k] = dh[k] * (one - z) * (one - nk * nk)
    if once:
        for k in range(n):
            an[k] = dq[k]
    else:
        for k in range(n):
            an[k] += dq[k]
    for k in range(n):
        z = gr_z[k]
        dz[k] = dh[k] * (hp[k] - gr_n[k]) * z * (one - z)
    for k in range(n):
        r = gr_r[k]
        da_n = dq[k]
        dr[k] = da_n * gr_q[k] * r * (one - r)
        dq[k] = da_n * r
