"""The LSTM with a projected state (SPEC §6, ``torch.nn.LSTM(proj_size=p)``): forward and BPTT.

    [i; f; g; o] = [σ; σ; tanh; σ](W_ih x_t + W_hh h_{t-1} + b),   c_t = f c_{t-1} + i g,
    m_t = o tanh(c_t),   h_t = W_hr m_t

with n cell units and p < n state units: W_ih (4n, m), W_hh (4n, p), W_hr (p, n); h has p units,
c and m have n. Both per-step products go through weight panels (``_panels``).
"""
import numpy as np
from numba import prange

from ._activations import constants
from ._jit import kernel
from ._lstm_cell import cell_step, gate_deltas
from ._panels import _copy, block_rows_dot, input_panels, panel_dot, panel_scratch, shared_panels, stored_rows
from ._rows import arriving, borrow, borrow2
from ._sync import store_release


@kernel("batch", reads=("x", "W_ih", "W_hh", "bias", "W_hr"))
def _lstmp_forward(x, W_ih, W_hh, bias, W_hr, h, c, gates, m_out, panels, panels_r, nblocks, split):
    """Run the projected LSTM for t = 1..T.

    Array contract (one float dtype, C-contiguous):

    x (T, B, m), W_ih (4n, m), W_hh (4n, p), bias (4n,) = b_ih + b_hh, W_hr (p, n).
    h (T + 1, B, p), c (T + 1, B, n): h[0], c[0] hold the initial state on entry; the rest is written.
    gates (T, B, 4n) is written with [i, f, g, o] after their nonlinearities; m_out (T, B, n) with
    m_t = o tanh(c_t), the state before its projection (what dW_hr and the backward sweep need).
    panels, panels_r: buffers for the panels of W_hh and W_hr (``_panels.cut_panels``; reused by the caller).
    nblocks: the batch is split into this many contiguous blocks, one per parallel task.
    split: with one batch row in the block, each step's product is cut into this many parts on
        parallel threads (``_panels._gemv_parts``; the serial twin at B = 1 only); 1: whole;
        ``_tiles.ROW_TILES`` (-1): whole, in row tiles (forward passes: ``_panels.stored_rows``). With more
        rows, ``_tiles.TILES`` (0) takes each product in compiled register tiles, 1 through the BLAS.
    """
    T, B, m = x.shape
    n = W_hr.shape[1]
    K = constants(h)
    Pin = input_panels(W_ih.T, split)       # the input projection in the step products' tiles, or by the BLAS
    for blk in prange(nblocks):
        block_rows_dot(x.reshape(T * B, m), W_ih.T, gates.reshape(T * B, 4 * n), blk, nblocks, Pin)
    rows = (B + nblocks - 1) // nblocks
    split = stored_rows(split, 0)   # W^T: W's own rows (row tiles for its two products not measured)
    P = shared_panels(W_hh.T, rows, panels, split, nblocks)
    R = shared_panels(W_hr.T, rows, panels_r, split, nblocks)
    for blk in prange(nblocks):
        b0 = blk * B // nblocks
        b1 = (blk + 1) * B // nblocks
        nb = b1 - b0
        tmp = panel_scratch(P, rows, nb, split)
        tmpr = panel_scratch(R, rows, nb, split)
        rec = np.empty((nb, 4 * n), dtype=h.dtype)
        for t in range(T):
            panel_dot(h[t, b0:b1], P, tmp, rec, t & 1 == 1)
            for bb in range(nb):
                b = b0 + bb
                cell_step(borrow2(gates, t, b), borrow(rec, bb), bias, borrow2(c, t, b), borrow2(c, t + 1, b),
                          borrow2(m_out, t, b), K)
            panel_dot(m_out[t, b0:b1], R, tmpr, h[t + 1, b0:b1], t & 1 == 1)


@kernel("batch", reads=("W_hh", "W_hr", "c", "gates", "m_out", "g", "dcT"))
def _lstmp_sweep(W_hh, W_hr, c, gates, m_out, g, dcT, trunc_h, trunc_hp, D, dH, dc0, dh0, panels, panels_r, progress,
                 nblocks, split):
    """The backward recursion of the projected LSTM, summed over the BPTT(h; h') sweeps:

        dh_t = g_t + W_hh^T delta_{t+1} (p units),   dm_t = W_hr^T dh_t (n units),
        dc_t = dm_t o tanh'(c_t) + dc_{t+1} f_{t+1},
        delta_t = [dc g i(1-i); dc c_{t-1} f(1-f); dc i (1-g^2); dm tanh(c_t) o(1-o)]

    Array contract (one float dtype, C-contiguous):

    W_hh (4n, p), W_hr (p, n); c (T + 1, B, n), gates (T, B, 4n) and m_out (T, B, n) from
    ``_lstmp_forward``; g (T, B, p) the error injected into h_t; dcT (B, n) the error injected
    into c_T, entering the last sweep. trunc_h, trunc_hp: as in ``bptt._bptt_sweep``.
    Overwritten: D (T, B, 4n) with the sum over sweeps of delta_t (dW_ih, dW_hh and db follow by
    products); dH (T, B, p) with the sum of dh_t (dW_hr = sum dh_t m_t^T); dc0 (B, n) with the
    gradient with respect to c0; dh0 (B, p) with the one with respect to h0, D_1 W_hh (through the
    same panels, as ``bptt._bptt_sweep``).
    panels, panels_r: buffers for the panels of W_hh and W_hr (``_panels.cut_panels``; reused by the caller).
    progress (1,) int64: how far exact BPTT on one block has come (D[s:] and dH[s:] final), as in
        ``bptt._bptt_sweep``.
    nblocks: batch blocks, one per parallel task; each block owns its rows of D, dH, dc0 and dh0.
    split: with one batch row in the block, each step's product is cut into this many parts on
        parallel threads (``_panels._gemv_parts``; the serial twin at B = 1 only); 1: whole;
        ``_tiles.ROW_TILES`` (-1): whole, in row tiles (forward passes: ``_panels.stored_rows``). With more
        rows, ``_tiles.TILES`` (0) takes each product in compiled register tiles, 1 through the BLAS.
    Sweeps that do not overlap write straight into D and dH (``once``, as ``bptt._bptt_sweep``).
    """
    T, B, n4 = D.shape
    n = n4 // 4
    p = W_hh.shape[1]
    K = constants(c)
    once = trunc_h == trunc_hp
    publish = once and trunc_hp >= T and nblocks == 1
    rows = (B + nblocks - 1) // nblocks
    P = shared_panels(W_hh, rows, panels, split, nblocks)
    R = shared_panels(W_hr, rows, panels_r, split, nblocks)
    for blk in prange(nblocks):
        b0 = blk * B // nblocks
        b1 = (blk + 1) * B // nblocks
        nb = b1 - b0
        if not once:
            D[:, b0:b1, :] = 0
            dH[:, b0:b1, :] = 0
        dc0[b0:b1, :] = 0
        cur = np.empty((nb, 4 * n), dtype=D.dtype)
        nxt = np.empty((nb, 4 * n), dtype=D.dtype)
        back = np.empty((nb, p), dtype=D.dtype)
        dhv = np.empty((nb, p), dtype=D.dtype)
        dm = np.empty((nb, n), dtype=D.dtype)
        dcn = np.empty((nb, n), dtype=D.dtype)        # dc_t, then dc_{t+1} f_{t+1} for the step before
        tmp = panel_scratch(P, rows, nb, split)
        tmpr = panel_scratch(R, rows, nb, split)
        start = 0
        while start < T:
            end = min(start + trunc_hp, T)
            low = start if once else max(0, end - trunc_h)
            for s in range(end - 1, low - 1, -1):
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
                    dh = borrow(dhv, bb)
                    arriving(dh, borrow(back, bb), borrow2(g, s, b0 + bb), inject)
                    acc = dH[s, b0 + bb]
                    if once:
                        for k in range(p):
                            acc[k] = dh[k]
                    else:
                        for k in range(p):
                            acc[k] += dh[k]
                panel_dot(dhv, R, tmpr, dm, s & 1 == 1)
                for bb in range(nb):
                    b = b0 + bb
                    if once:        # each branch its own view (``bptt._bptt_sweep``)
                        gate_deltas(borrow2(gates, s, b), borrow(dm, bb), borrow2(m_out, s, b), borrow2(c, s, b), dcn[bb],
                                    D[s, b], K)
                    else:
                        dl = cur[bb]
                        gate_deltas(borrow2(gates, s, b), borrow(dm, bb), borrow2(m_out, s, b), borrow2(c, s, b), dcn[bb], dl,
                                    K)
                        drow = D[s, b]
                        for k in range(4 * n):
                            drow[k] += dl[k]
                    dc = dcn[bb]
                    if s == 0:
                        for k in range(n):
                            dc0[b, k] += dc[k]
                if publish:
                    store_release(progress, 0, s)
                cur, nxt = nxt, cur
            start = end
        panel_dot(D[0, b0:b1], P, tmp, back, True)
        _copy(dh0[b0:b1], back)       # not a slice assignment (``_jit``)
