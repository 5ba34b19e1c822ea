"""Forward pass of the simple recurrent cell (SPEC §2-3)."""
import numpy as np
from numba import prange

from ._activations import activate, constants
from ._jit import kernel
from ._rows import borrow, borrow2
from ._panels import block_rows_dot, input_panels, panel_dot, panel_scratch, shared_panels, stored_rows


@kernel("batch", reads=("x", "W_in", "W_rec", "b"))
def _forward(x, W_in, W_rec, b, h, act, tf, tf_units, tf_values, tf_mask, panels, nblocks, split):
    """Run ``h_t = phi(W_in x_t + W_rec h_{t-1} + b)`` for t = 1..T.

    Array contract (all float arrays one dtype, C-contiguous):

    x (T, B, m), W_in (n, m), W_rec (n, n), b (n,)
    h (T + 1, B, n): ``h[0]`` holds h0 on entry; ``h[1:]`` is written with phi(a_t).
    act: activation code (``_activations``).
    tf: teacher forcing on/off. When on, the state fed into step t + 1 is ``h[t]`` with
        ``h[t][:, tf_units[k]]`` replaced by ``tf_values[t-1, :, k]`` where ``tf_mask[t-1, :, k] != 0``;
        ``h`` itself keeps the unforced values. tf_units (o,) int64, tf_values and tf_mask (T, B, o).
        Ignored (may be empty) when tf is False.
    panels: a buffer for the weight panels (``_panels.cut_panels``; 1-d, reused by the caller).
    nblocks: the batch is split into this many contiguous blocks, one per parallel task
        (1 <= nblocks <= B). Each block owns its rows of ``h``.
    split: with one batch row in the block, each step's product is cut into this many parts on
        parallel threads (``_panels._gemv_parts``; the serial twin at B = 1 only); 1: whole;
        ``_tiles.ROW_TILES`` (-1): whole, in row tiles (forward passes: ``_panels.stored_rows``). With more
        rows, ``_tiles.TILES`` (0) takes each product in compiled register tiles, 1 through the BLAS.

    The input projection for all T*B rows is one matrix product (a block of rows per parallel
    task); only the recurrence is sequential.

    Returns the sum of every state written (``h[1:]``), in h's dtype: finite only if every state is
    (a NaN or an infinity makes it NaN or infinite; finite states may still sum to an infinity, which
    says nothing), so that the caller can skip its own pass over the states (``Run.checked``).
    """
    T, B, m = x.shape
    n = W_rec.shape[0]
    K = constants(h)
    proj = h[1:].reshape(T * B, n)
    Pin = input_panels(W_in.T, split)       # the input projection in the step products' tiles, or by the BLAS
    for blk in prange(nblocks):
        block_rows_dot(x.reshape(T * B, m), W_in.T, proj, blk, nblocks, Pin)
    rows = (B + nblocks - 1) // nblocks
    split = stored_rows(split, W_rec.shape[1])      # W^T: row tiles from a copy, or W's own rows
    P = shared_panels(W_rec.T, rows, panels, split, nblocks)
    sums = np.zeros(nblocks, dtype=h.dtype)
    for blk in prange(nblocks):
        b0 = blk * B // nblocks
        b1 = (blk + 1) * B // nblocks
        nb = b1 - b0
        rec = np.empty((nb, n), dtype=h.dtype)
        fed = np.empty((nb, n), dtype=h.dtype)
        tmp = panel_scratch(P, rows, nb, split)
        acc = np.zeros(n, dtype=h.dtype)        # each unit's states summed over the block's rows and steps
        for t in range(T):
            prev = h[t, b0:b1]
            if tf and t > 0:
                for bb in range(nb):
                    for k in range(n):
                        fed[bb, k] = prev[bb, k]
                    for k in range(tf_units.shape[0]):
                        if tf_mask[t - 1, b0 + bb, k] != 0:
                            fed[bb, tf_units[k]] = tf_values[t - 1, b0 + bb, k]
                prev = fed
            panel_dot(prev, P, tmp, rec, t & 1 == 1)
            for bb in range(nb):
                row = borrow2(h, t + 1, b0 + bb)
                rr = borrow(rec, bb)
                for k in range(n):
                    row[k] += b[k] + rr[k]
                activate(row, K, act)
                for k in range(n):
                    acc[k] += row[k]
        sums[blk] = acc.sum()
    return sums.sum()
