"""Per-row arithmetic shared by the backward sweeps of every cell.
Caution (``_jit``): after editing this file, delete ``kernels/__pycache__``.
"""
from ._jit import helper


@helper
def arriving(out, back, g, inject):
    """The error arriving at a state in a backward sweep: out = back + g where the loss injects g
    at this step (``inject``), out = back otherwise. One short loop each, so that LLVM vectorises it."""
    n = out.shape[0]
    if inject:
        for k in range(n):
            out[k] = back[k] + g[k]
    else:
        for k in range(n):
            out[k] = back[k]


@helper
def copy_columns(dst, dst_col, src, src_col, width):
    """dst[r0:r1, dst_col:dst_col + width] = src[r0:r1, src_col:src_col + width] for every row of
    dst (2-d arrays, the same number of rows), one row view at a time. Numba's slice assignment
    between two 2-d column blocks walks them element by element through a generic iterator:
    float32 (512, 32) and (512, 128) blocks out of a (512, 160) array took 33 us so, 7-10 us row
    by row (2048 rows: 462 against 101 us; ad hoc, one thread). Each row's block is taken as a
    1-d slice: indexing the whole rows at ``dst_col + j`` and ``src_col + j`` ran at the slow rate."""
    for i in range(dst.shape[0]):
        d = dst[i, dst_col:dst_col + width]
        s = src[i, src_col:src_col + width]
        for j in range(width):
            d[j] = s[j]


@helper
def copy_transposed(dst, src, src_row0):
    """dst[i, j] = src[src_row0 + j, i] for every element of dst (2-d, rows contiguous), in tiles
    of 8 x 8 so that the rows read and the rows written stay in the first-level cache. ``src``
    should have rows of a length that is no multiple of 4096 bytes (a padded leading dimension):
    a tile's reads then fall into different cache sets."""
    R, C = dst.shape
    for i0 in range(0, R, 8):
        i1 = min(i0 + 8, R)
        for j0 in range(0, C, 8):
            j1 = min(j0 + 8, C)
            for i in range(i0, i1):
                d = dst[i]
                for j in range(j0, j1):
                    d[j] = src[src_row0 + j, i]


@helper
def add_rows(dst, src, width):
    """dst[i, :width] += src[i, :width] for every row of dst, one row view at a time (see
    ``copy_columns``)."""
    for i in range(dst.shape[0]):
        d = dst[i]
        s = src[i]
        for j in range(width):
            d[j] += s[j]
