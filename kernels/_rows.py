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
