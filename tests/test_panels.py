"""The per-step product through weight panels (kernels/_panels.py): the rule and the values."""
import numpy as np
import pytest

from fastrnn.kernels._panels import MIN_PANEL, PACKED_ELEMENTS, PACKED_ROW_BYTES, PANEL_ELEMENTS, cut_panels, panel_count, panel_dot, panel_scratch


@pytest.mark.parametrize("rows, K, N, dtype, count", [
    (8, 128, 512, np.float32, 1),      # rows·K·N = 2**19: the whole matrix is small enough
    (8, 256, 1024, np.float32, 4),     # widest panel 2**19 / (8·256) = 256 columns
    (8, 1024, 256, np.float64, 4),     # the backward product of an LSTM with n = 256: K = 4n, N = n
    (16, 2048, 512, np.float32, 1),    # the widest panel would be 16 < MIN_PANEL columns: whole (packed) product
    (3, 300, 1000, np.float64, 2),     # widest 582 of 1000 columns
    (16, 512, 2048, np.float32, 32),   # 64 bytes of rows: panels of 64
    (16, 512, 2048, np.float64, 1),    # 128 bytes of rows: packing pays for itself
    (32, 512, 2048, np.float32, 1),
    (32, 128, 512, np.float32, 4),     # 128 bytes of rows but rows·K·N = 2**21: panels of 128 (LSTM n=128, B=32)
    (32, 512, 128, np.float32, 4),     # its backward product: panels of 32
    (16, 1024, 256, np.float64, 8),    # float64 rows·K·N = 2**22: panels of 32
    (32, 256, 1024, np.float64, 1),    # 2**23: the packed whole product
])
def test_panel_rule(rows, K, N, dtype, count):
    assert panel_count(rows, K, N, np.dtype(dtype).itemsize) == count
    P = cut_panels(np.zeros((K, N), dtype), rows)
    assert P.shape[0] == count
    w = P.shape[2]
    assert count * w >= N > (count - 1) * w
    if count > 1:
        assert rows * K * w <= PANEL_ELEMENTS and w >= MIN_PANEL
        assert rows * np.dtype(dtype).itemsize < PACKED_ROW_BYTES or rows * K * N < PACKED_ELEMENTS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_row_keeps_the_matrix_for_gemv(dtype):
    """A batch of one multiplies by rows of the whole matrix W (N, K), stored C-contiguous."""
    W = np.random.default_rng(3).standard_normal((2048, 512)).astype(dtype)
    for WT in (W.T, np.ascontiguousarray(W.T)):
        P = cut_panels(WT, 1)
        assert P.shape == (1, 2048, 512) and P[0].flags.c_contiguous
        np.testing.assert_array_equal(P[0], W)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("rows, K, N", [(1, 7, 5), (1, 512, 2048), (3, 300, 1000), (8, 256, 1000), (5, 200, 1001), (32, 1024, 256), (4, 2048, 512)])
def test_panel_product_equals_the_matrix_product(dtype, rtol, rows, K, N):
    rng = np.random.default_rng(rows * 1000 + N)
    W = rng.standard_normal((N, K)).astype(dtype)       # stored as the kernels store W_hh
    a = rng.standard_normal((rows, K)).astype(dtype)
    expected = a.astype(np.float64) @ W.T.astype(np.float64)
    for WT in (W.T, np.ascontiguousarray(W.T)):          # the kernels pass transposed views and plain arrays
        P = cut_panels(WT, rows)
        out = np.full((rows, N), np.nan, dtype)
        panel_dot(a, P, panel_scratch(P, rows), out)
        assert out.dtype == dtype
        err = np.max(np.abs(out - expected)) / np.max(np.abs(expected))
        assert err <= rtol, f"panel product max rel err {err:.3g} > {rtol:g} (panels {P.shape})"
    if rows > 1 and P.shape[0] * P.shape[2] > N:        # the zero padding of the last panel
        assert not np.any(P[-1][:, N - (P.shape[0] - 1) * P.shape[2]:])
