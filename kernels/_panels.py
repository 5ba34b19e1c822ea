"""The per-step recurrent product through weight panels that the BLAS does not repack.

Every sequential step multiplies a few rows of state, ``a (rows, K)``, by the same weight matrix
``(K, N)``. OpenBLAS copies ("packs") the right-hand matrix into its own layout inside every call
once the product passes a size threshold, and at small ``rows`` the packing costs more than the
arithmetic: h (8, 256) @ W (256, 1024) ran at 49 GFLOP/s in float32 on one thread, against 112 for
the same product cut into column panels small enough to skip packing. The weights are fixed for a
whole call, so each kernel cuts them once, at its start, and every step multiplies panel by panel.

The rule is a property of the BLAS build and lives here alone (``tests/test_panels.py`` checks it;
``bench/panels.py`` measures it). Measured with OpenBLAS 0.3 (numpy 2.4's wheel) on AMD EPYC,
float32 and float64 alike, over K from 32 to 2048 and rows from 2 to 32, each step reading its own
rows of state as the kernels do: a product whose ``rows * K * w`` is at most 2**19 runs at the GEMM
rate, one above it drops to a half or two thirds, and the whole packed product never won (float32
K=512 N=2048 rows=32: 101 GFLOP/s in panels of 32, 64 whole; K=2048 N=512 rows=32: 78 in panels of
8, 66 whole). So the panels are the widest that keep ``rows * K * w <= 2**19``, down to 8 columns;
only a product that needs narrower ones is left whole (``bench/results/2026-11-25-panels.md``).
"""
import numpy as np

from ._jit import helper

PANEL_ELEMENTS = 1 << 19   # rows * K * w at or below this: the BLAS multiplies without packing
MIN_PANEL = 8              # narrower panels lose more than packing costs: use one panel
_STRIP = 16                # rows per strip of the transposing copy


@helper
def panel_count(rows, K, N):
    """How many column panels the product (rows, K) @ (K, N) is cut into (1: the whole matrix)."""
    if rows * K * N <= PANEL_ELEMENTS:
        return 1
    widest = PANEL_ELEMENTS // (rows * K)
    if widest < MIN_PANEL:
        return 1
    return (N + widest - 1) // widest


@helper
def cut_panels(WT, rows):
    """WT (K, N), any layout, copied into C-contiguous panels (count, K, w) for products with
    ``rows`` rows; the last panel's columns beyond N are zero.

    One row (a batch of one) is a matrix-vector product: the weights are kept whole as WT^T
    (1, N, K), C-contiguous, for the BLAS's gemv on rows of the matrix, which streams it once
    (float32 K=512 N=2048: 57 us a step against 80 in panels; K=2048 N=512: 60 against 90).
    """
    K, N = WT.shape
    if rows == 1:
        M = np.empty((1, N, K), dtype=WT.dtype)
        _copy(M[0], WT.T)
        return M
    count = panel_count(rows, K, N)
    w = (N + count - 1) // count
    P = np.zeros((count, K, w), dtype=WT.dtype)
    for p in range(count):
        j0 = p * w
        j1 = min(N, j0 + w)
        _copy(P[p, :, :j1 - j0], WT[:, j0:j1])
    return P


@helper
def _copy(dst, src):
    """dst[:, :] = src, dst C-ordered, src a view either way round. A src stored the other way
    round is copied in strips of _STRIP columns, each written along dst's rows while src is read
    from a few cache lines at a time: float32 (2048, 512) 0.7 ms against 3.8 ms element by element
    along dst's rows."""
    R, C = dst.shape
    if src.strides[0] >= src.strides[1]:
        for r in range(R):
            for c in range(C):
                dst[r, c] = src[r, c]
    else:
        for c0 in range(0, C, _STRIP):
            for r in range(R):
                for c in range(c0, min(C, c0 + _STRIP)):
                    dst[r, c] = src[r, c]


@helper
def panel_scratch(P, rows):
    """The per-panel results (count, rows, w) that ``panel_dot`` writes before it gathers them."""
    if rows == 1:
        return np.empty((0, 1, 1), dtype=P.dtype)
    return np.empty((P.shape[0], rows, P.shape[2]), dtype=P.dtype)


@helper
def panel_dot(a, P, tmp, out):
    """out (rows, N) = a (rows, K) @ WT, with WT given as its panels ``P`` (from ``cut_panels``).

    a and out are C-contiguous; P was cut for as many rows as ``a`` has and tmp is
    ``panel_scratch(P, rows)``. One row is one matrix-vector product; one panel is one BLAS call
    straight into ``out``; several go through ``tmp`` and are gathered row by row.
    """
    if a.shape[0] == 1:
        np.dot(P[0], a[0], out[0])
        return
    count = P.shape[0]
    if count == 1 and P.shape[2] == out.shape[1]:
        np.dot(a, P[0], out)
        return
    rows, N = out.shape
    w = P.shape[2]
    for p in range(count):
        np.dot(a, P[p], tmp[p])
    for r in range(rows):
        for p in range(count):
            j0 = p * w
            for j in range(min(w, N - j0)):
                out[r, j0 + j] = tmp[p, r, j]
