"""BPTT through the LSTM, exact and truncated BPTT(h; h') (SPEC §4, §6)."""
import numpy as np
from numba import prange

from ._activations import constants
from ._jit import kernel
from ._lstm_cell import gate_deltas
from ._panels import _copy, panel_dot, panel_scratch, shared_panels
from ._rows import arriving, borrow, borrow2, prefetch_rows
from ._sync import store_release
from ._tiles import ROW_TILES
from .bptt import PREFETCH_MIN_BYTES


@kernel("batch", reads=("W_hh", "h", "c", "gates", "g", "dcT"))
def _lstm_sweep(W_hh, h, c, gates, g, dcT, trunc_h, trunc_hp, D, dc0, dh0, panels, progress, nblocks, split):
    """The sequential backward recursion over (h, c), summed over the BPTT(h; h') sweeps:

        dh_t = g_t + W_hh^T delta_{t+1},   dc_t = dh_t o tanh'(c_t) + dc_{t+1} f_{t+1}
        delta_t = [dc g i(1-i); dc c_{t-1} f(1-f); dc i (1-g^2); dh tanh(c_t) o(1-o)]

    Array contract (one float dtype, C-contiguous):

    W_hh (4n, n); h and c (T + 1, B, n) and gates (T, B, 4n) from ``_lstm_forward`` (h_t = o ⊙ tanh(c_t)
    gives tanh(c_t) back: ``_lstm_cell.gate_deltas``); g (T, B, n) the
    error injected into h_t; dcT (B, n) the error injected into the final cell state c_T (zeros for
    a loss on h alone), entering the last sweep. trunc_h, trunc_hp: as in ``bptt._bptt_sweep``.
    D (T, B, 4n) is overwritten with the sum over sweeps of delta_t; the weight gradients follow
    by matrix products (``bptt._weight_grads``).
    dc0 (B, n) is overwritten with the gradient with respect to c0 (sum of dc_1 f_1 over the
    sweeps that reach step 1); dh0 (B, n) with the one with respect to h0, D_1 W_hh (through the
    same panels, as ``bptt._bptt_sweep``).
    panels: a buffer for the weight panels (``_panels.cut_panels``; 1-d, reused by the caller).
    progress (1,) int64: how far exact BPTT on one block has come, as in ``bptt._bptt_sweep``.
    nblocks: batch blocks, one per parallel task; each block owns its rows of D, dc0 and dh0.
    split: with one batch row in the block, each step's product is cut into this many parts on
        parallel threads (``_panels._gemv_parts``; the serial twin at B = 1 only); 1: whole;
        ``_tiles.ROW_TILES`` (-1): whole, in row tiles (forward passes: ``_panels.stored_rows``). With more
        rows, ``_tiles.TILES`` (0) takes each product in compiled register tiles, 1 through the BLAS.
    Sweeps that do not overlap write delta_t straight into D (``once``, as ``bptt._bptt_sweep``).
    A batch of one in row tiles asks for the next step's rows of gates, g, h, c and D a step ahead where
    they hold more than ``bptt.PREFETCH_MIN_BYTES`` over all steps (as ``bptt._bptt_sweep``; 11 n numbers a
    step: ``bench/sweep_prefetch.py --cell lstm``).
    """
    T, B, n4 = D.shape
    n = n4 // 4
    K = constants(c)
    once = trunc_h == trunc_hp
    publish = once and trunc_hp >= T and nblocks == 1
    rows = (B + nblocks - 1) // nblocks
    ahead = split == ROW_TILES and 11 * T * rows * n * D.itemsize > PREFETCH_MIN_BYTES
    P = shared_panels(W_hh, rows, panels, split, nblocks)
    for blk in prange(nblocks):
        b0 = blk * B // nblocks
        b1 = (blk + 1) * B // nblocks
        nb = b1 - b0
        if not once:
            D[:, b0:b1, :] = 0
        dc0[b0:b1, :] = 0
        cur = np.empty((nb, 4 * n), dtype=D.dtype)
        nxt = np.empty((nb, 4 * n), dtype=D.dtype)
        back = np.empty((nb, n), dtype=D.dtype)
        dcn = np.empty((nb, n), dtype=D.dtype)        # dc_t, then dc_{t+1} f_{t+1} for the step before
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
                    prefetch_rows(h, s, b0, b1)
                    prefetch_rows(c, s - 1, b0, b1)
                    prefetch_rows(D, s - 1, b0, b1)
                if s == end - 1:
                    back[:, :] = 0
                    if end == T:
                        _copy(dcn, dcT[b0:b1])
                    else:
                        dcn[:, :] = 0
                else:
                    panel_dot(D[s + 1, b0:b1] if once else nxt, P, tmp, back, s & 1 == 1)
                inject = s >= start
                for bb in range(nb):
                    b = b0 + bb
                    gr = borrow2(gates, s, b)
                    dh = borrow(dhv, bb)
                    arriving(dh, borrow(back, bb), borrow2(g, s, b), inject)
                    if once:        # each branch its own view (``bptt._bptt_sweep``)
                        gate_deltas(gr, dh, borrow2(h, s + 1, b), borrow2(c, s, b), dcn[bb], D[s, b], K)
                    else:
                        dl = cur[bb]
                        gate_deltas(gr, dh, borrow2(h, s + 1, b), borrow2(c, s, b), dcn[bb], dl, K)
                        drow = D[s, b]
                        for k in range(4 * n):
                            drow[k] += dl[k]
                    if s == 0:
                        for k in range(n):
                            dc0[b, k] += dcn[bb, k]
                if publish:
                    store_release(progress, 0, s)
                cur, nxt = nxt, cur
            start = end
        panel_dot(D[0, b0:b1], P, tmp, back, True)
        _copy(dh0[b0:b1], back)       # not a slice assignment (``_jit``)
