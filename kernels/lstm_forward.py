"""Forward pass of the LSTM (SPEC §6)."""
import numpy as np
from numba import prange

from ._activations import constants
from ._jit import kernel
from ._lstm_cell import cell_step
from ._panels import block_rows_dot, input_panels, panel_dot, panel_scratch, shared_panels, stored_rows
from ._rows import borrow, borrow2


@kernel("batch", reads=("x", "W_ih", "W_hh", "bias"))
def _lstm_forward(x, W_ih, W_hh, bias, h, c, gates, panels, nblocks, split):
    """Run the LSTM for t = 1..T.

    Array contract (one float dtype, C-contiguous):

    x (T, B, m), W_ih (4n, m), W_hh (4n, n), bias (4n,) = b_ih + b_hh.
    h, c (T + 1, B, n): h[0], c[0] hold the initial state on entry; h[1:], c[1:] are written.
    gates (T, B, 4n) is written with [i, f, g, o] after their nonlinearities (what the backward
    sweep and RTRL need).
    panels: a buffer for the weight panels (``_panels.cut_panels``; 1-d, reused by the caller).
    nblocks: the batch is split into this many contiguous blocks, one per parallel task.
    split: with one batch row in the block, each step's product is cut into this many parts on
        parallel threads (``_panels._gemv_parts``; the serial twin at B = 1 only); 1: whole;
        ``_tiles.ROW_TILES`` (-1): whole, in row tiles (forward passes: ``_panels.stored_rows``). With more
        rows, ``_tiles.TILES`` (0) takes each product in compiled register tiles, 1 through the BLAS.

    The input projection for all T*B rows is one matrix product (a block of rows per parallel
    task); only the recurrence is sequential,
    its product taken through weight panels (``_panels``).
    """
    T, B, m = x.shape
    n = W_hh.shape[1]
    K = constants(h)
    Pin = input_panels(W_ih.T, split)       # the input projection in the step products' tiles, or by the BLAS
    for blk in prange(nblocks):
        block_rows_dot(x.reshape(T * B, m), W_ih.T, gates.reshape(T * B, 4 * n), blk, nblocks, Pin)
    rows = (B + nblocks - 1) // nblocks
    split = stored_rows(split, W_hh.shape[1])      # W^T: row tiles from a copy, or W's own rows
    P = shared_panels(W_hh.T, rows, panels, split, nblocks)
    for blk in prange(nblocks):
        b0 = blk * B // nblocks
        b1 = (blk + 1) * B // nblocks
        nb = b1 - b0
        tmp = panel_scratch(P, rows, nb, split)
        rec = np.empty((nb, 4 * n), dtype=h.dtype)
        for t in range(T):
            panel_dot(h[t, b0:b1], P, tmp, rec, t & 1 == 1)
            for bb in range(nb):
                b = b0 + bb
                cell_step(borrow2(gates, t, b), borrow(rec, bb), bias, borrow2(c, t, b), borrow2(c, t + 1, b),
                          borrow2(h, t + 1, b), K)
