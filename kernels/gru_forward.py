"""Forward pass of the GRU (SPEC §6a), gate order r, z, n as in torch.nn.GRU."""
import numpy as np
from numba import prange

from ._activations import LOGISTIC, ONE, activate, constants, tanh
from ._jit import kernel
from ._rows import borrow, borrow2
from ._panels import block_rows_dot, input_panels, panel_dot, panel_scratch, shared_panels, stored_rows


@kernel("batch", reads=("x", "W_ih", "W_hh", "b_ih", "b_hh"))
def _gru_forward(x, W_ih, W_hh, b_ih, b_hh, h, gates, proj, panels, nblocks, split):
    """Run the GRU for t = 1..T.

    Array contract (one float dtype, C-contiguous):

    x (T, B, m), W_ih (3n, m), W_hh (3n, n), b_ih, b_hh (3n,).
    h (T + 1, B, n): h[0] holds h0 on entry; h[1:] is written.
    gates (T, B, 4n) is written with [r, z, n, q] per step, q = W_hn h_{t-1} + b_hn (what the
    backward sweep and RTRL need).
    proj (R, 3n): the input projection's buffer, R = T*B rows (the caller's, kept from call to call; fewer rows: the
    kernel makes its own array).
    panels: a buffer for the weight panels (``_panels.cut_panels``; 1-d, reused by the caller).
    nblocks: the batch is split into this many contiguous blocks, one per parallel task.
    split: with one batch row in the block, each step's product is cut into this many parts on
        parallel threads (``_panels._gemv_parts``; the serial twin at B = 1 only); 1: whole;
        ``_tiles.ROW_TILES`` (-1): whole, in row tiles (forward passes: ``_panels.stored_rows``). With more
        rows, ``_tiles.TILES`` (0) takes each product in compiled register tiles, 1 through the BLAS.

    The input projection for all T*B rows is one matrix product (a block of rows per parallel
    task); only the recurrence is sequential. Each step reads its rows of the projection where it
    writes the gates; a separate pass copying the projection into the gates read 5 MB and wrote 6.5 MB
    at float32 n=128 B=32 (without it, ad hoc kernel A/B, one thread: float64 n=128 B=32 12.8 -> 12.0 ms,
    float32 n=512 B=8 16.3 -> 15.9). The caller keeps the projection's buffer: made here every call, its
    T*B x 3n numbers were mapped afresh in many calls (``fastrnn.forward``, float32 n=128 B=32, one thread: 6.4 ms
    and 2150 page faults a call, against 2.3 ms and none with the buffer kept; bench/results/2026-11-29-gru-
    projection.md).
    """
    T, B, m = x.shape
    n = W_hh.shape[1]
    K = constants(h)
    one = K[ONE]
    if proj.shape[0] < T * B:
        proj = np.empty((T * B, 3 * n), dtype=h.dtype)
    Pin = input_panels(W_ih.T, split)       # the input projection in the step products' tiles, or by the BLAS
    for blk in prange(nblocks):
        block_rows_dot(x.reshape(T * B, m), W_ih.T, proj, blk, nblocks, Pin)
    b_rz = b_ih[:2 * n] + b_hh[:2 * n]
    b_in = b_ih[2 * n:]
    b_hn = b_hh[2 * n:]
    rows = (B + nblocks - 1) // nblocks
    split = stored_rows(split, W_hh.shape[1])      # W^T: row tiles from a copy, or W's own rows
    P = shared_panels(W_hh.T, rows, panels, split, nblocks)
    for blk in prange(nblocks):
        b0 = blk * B // nblocks
        b1 = (blk + 1) * B // nblocks
        nb = b1 - b0
        rec = np.empty((nb, 3 * n), dtype=h.dtype)
        tmp = panel_scratch(P, rows, nb, split)
        for t in range(T):
            panel_dot(h[t, b0:b1], P, tmp, rec, t & 1 == 1)
            for bb in range(nb):
                b = b0 + bb
                row = gates[t, b]
                rr = borrow(rec, bb)
                pr = borrow(proj, t * B + b)
                for k in range(2 * n):
                    row[k] = pr[k] + rr[k] + b_rz[k]
                activate(row[:2 * n], K, LOGISTIC)
                # short loops over few arrays each, every gate block its own view, so that LLVM
                # vectorises every one of them (``_lstm_cell.gate_deltas``)
                gr, gz, gn, gq = row[:n], row[n:2 * n], row[2 * n:3 * n], row[3 * n:]
                rq = rr[2 * n:]
                pn = pr[2 * n:]
                for k in range(n):
                    gq[k] = rq[k] + b_hn[k]                                          # q
                for k in range(n):
                    gn[k] = tanh(pn[k] + b_in[k] + gr[k] * gq[k], K)                 # n
                hp = borrow2(h, t, b)
                hn = h[t + 1, b]
                for k in range(n):
                    z = gz[k]
                    hn[k] = (one - z) * gn[k] + z * hp[k]
