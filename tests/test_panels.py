"""The per-step product through weight panels (kernels/_panels.py): the rule and the values."""
import numpy as np
import pytest

from fastrnn.kernels._jit import threads_started
from fastrnn.kernels._panels import (LOOP_GEMV_BYTES, LOOP_GEMV_ROWS, PANEL_ELEMENTS, SPLIT_WIDTH, _gemv_axpy,
                                     _gemv_rows,
                                     block_rows_dot, cut_elements, cut_panels, k_chunks, panel_count, panel_dot, panel_scratch)


@pytest.fixture(autouse=True, scope="module")
def _threading_layer_started():
    """These tests call the compiled helpers straight from Python, and a batch of one's split product
    (``_gemv_parts``) is parallel code: start Numba's threading layer first, as every kernel call does
    (``kernels._jit.threads_started``; without it such a call can jump to a null address, depending on
    how the cache entries were made: numba/numba#8578)."""
    threads_started()


@pytest.mark.parametrize("rows, K, N, kc, count", [
    (8, 128, 512, 1, 1),       # rows·K·N = 2**19: the whole matrix is small enough
    (8, 256, 1024, 1, 4),      # widest panel 2**19 / (8·256) = 256 columns
    (8, 1024, 256, 1, 4),      # the backward product of an LSTM with n = 256: K = 4n, N = n
    (3, 300, 1000, 1, 2),      # widest 582 of 1000 columns
    (16, 512, 2048, 1, 32),    # panels of 64
    (32, 512, 2048, 1, 64),    # panels of 32 (LSTM n=512, B=32, forward): no cut of K
    (32, 128, 512, 1, 4),      # panels of 128 (LSTM n=128, B=32)
    (32, 2048, 512, 4, 16),    # its backward product: panels of 8 over K = 2048, so 4 chunks of 512, panels of 32
    (16, 2048, 512, 2, 16),    # panels of 16 over K: 2 chunks of 1024
    (32, 1536, 512, 3, 16),    # GRU n=512, B=32, backward: 3 chunks of 512
    (64, 2048, 512, 8, 16),    # 8 chunks of 256
    (16, 4096, 1024, 4, 32),   # LSTM n=1024, B=16, backward
    (32, 1001, 300, 2, 10),    # chunks of 501, the last padded with one zero row
    (20000, 64, 64, 1, 1),     # too many rows for any panel: the whole product
])
def test_panel_rule(rows, K, N, kc, count):
    assert k_chunks(rows, K, N) == kc and panel_count(rows, K, N) == count
    for dtype in (np.float32, np.float64):
        P = cut_panels(np.zeros((K, N), dtype), rows, np.empty(0, dtype))
        assert P.shape[:2] == (kc, count)
        Kc, w = P.shape[2:]
        assert kc * Kc >= K > (kc - 1) * Kc and count * w >= N > (count - 1) * w
        if kc > 1 or count > 1:
            assert rows * Kc * w <= PANEL_ELEMENTS
        if kc > 1:                       # chunks short enough for panels of SPLIT_WIDTH, evened out
            assert rows * Kc * SPLIT_WIDTH <= PANEL_ELEMENTS and w > SPLIT_WIDTH * (count - 1) / count


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_row_keeps_the_matrix_for_gemv(dtype):
    """A batch of one multiplies by the whole matrix, never copied where it is C-contiguous one way
    round: W (N, K) itself where it is given as the view W.T, WT (K, N) itself where WT is a plain
    array, not square, larger than LOOP_GEMV_BYTES and not split over threads (the axpy form,
    (1, 1, K, N)); a square, small or split plain WT is copied as W."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((2048, 512)).astype(dtype)
    before = W.copy()
    P = cut_panels(W.T, 1, np.empty(0, dtype))
    assert P.shape == (1, 1, 2048, 512) and P[0, 0].flags.c_contiguous and np.shares_memory(P, W)
    np.testing.assert_array_equal(P[0, 0], W)
    WT = np.ascontiguousarray(W.T)
    P = cut_panels(WT, 1, np.empty(0, dtype))
    assert P.shape == (1, 1, 512, 2048) and np.shares_memory(P, WT)
    np.testing.assert_array_equal(P[0, 0], WT)
    S = rng.standard_normal((300, 300)).astype(dtype)             # square: which way round would be ambiguous
    P = cut_panels(S, 1, np.empty(0, dtype))
    assert P.shape == (1, 1, 300, 300) and not np.shares_memory(P, S)
    np.testing.assert_array_equal(P[0, 0], S.T)
    P = cut_panels(WT, 1, np.empty(0, dtype), 2)                 # a product split over threads: the copy
    assert P.shape == (1, 1, 2048, 512) and not np.shares_memory(P, WT)
    np.testing.assert_array_equal(P[0, 0], W)
    small = rng.standard_normal((128, 32)).astype(dtype)          # 16-32 KB, at most LOOP_GEMV_BYTES: copied
    P = cut_panels(small, 1, np.empty(0, dtype))
    assert P.shape == (1, 1, 32, 128) and not np.shares_memory(P, small)
    np.testing.assert_array_equal(P[0, 0], small.T)
    np.testing.assert_array_equal(W, before)


@pytest.mark.parametrize("K, N, dtype, plan", [
    (32, 128, np.float32, -1), (32, 128, np.float64, -1),     # 16 and 32 KB: the compiled loop
    (64, 256, np.float32, -1), (64, 256, np.float64, 1),      # 64 KB: loop; 128 KB of float64: the BLAS
    (128, 512, np.float32, -1), (512, 128, np.float32, 1),    # float32 rows of 128 (an LSTM's forward, n=128): loop;
    (128, 512, np.float64, 1),                                # rows of 512 (its backward) and float64: the BLAS
])
def test_batch_of_one_plan(K, N, dtype, plan):
    """Which way a batch of one multiplies by the weights W (N, K) given as W^T (the forward passes):
    the rule of the module's notes, written in LOOP_GEMV_BYTES and LOOP_GEMV_ROWS; parts on threads
    whenever asked for. (Weights given as a plain (K, N) array always take the axpy loop.)"""
    assert LOOP_GEMV_BYTES == 1 << 16 and LOOP_GEMV_ROWS == 128
    P = cut_panels(np.zeros((N, K), dtype).T, 1, np.empty(0, dtype))
    assert panel_scratch(P, 1, 1, 1)[2] == plan
    assert panel_scratch(P, 1, 1, 3)[2] == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K, N", [(1, 1), (3, 9), (4, 4), (5, 7), (130, 33), (515, 128), (2050, 17)])
def test_the_axpy_loop(dtype, K, N):
    """_gemv_axpy (v @ WT, rows of WT four at a time) against the float64 product, for row counts that
    leave 0-3 rows after the groups of four; out's old contents never leak in, the inputs are left as
    they were."""
    rng = np.random.default_rng(K * 100 + N)
    WT = rng.standard_normal((K, N)).astype(dtype)
    v = rng.standard_normal(K).astype(dtype)
    W0, v0 = WT.copy(), v.copy()
    expected = v.astype(np.float64) @ WT.astype(np.float64)
    scale = np.abs(v).astype(np.float64) @ np.abs(WT).astype(np.float64)
    out = np.full(N, np.nan, dtype)
    _gemv_axpy(WT, v, out)
    assert np.all(np.abs(out - expected) <= (4e-7 if dtype == np.float32 else 1e-15) * K * scale)
    np.testing.assert_array_equal(WT, W0)
    np.testing.assert_array_equal(v, v0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K, N", [(1, 1), (1, 9), (3, 4), (5, 7), (33, 130), (128, 515)])
def test_the_compiled_matrix_vector_loop(dtype, K, N):
    """_gemv_rows against the float64 product, for row counts that leave 0-3 rows after the groups
    of four and for rows of one value; the inputs are left as they were."""
    rng = np.random.default_rng(K * 100 + N)
    M = rng.standard_normal((N, K)).astype(dtype)
    v = rng.standard_normal(K).astype(dtype)
    M0, v0 = M.copy(), v.copy()
    out = np.full(N, np.nan, dtype)
    _gemv_rows(M, v, out)
    expected = M.astype(np.float64) @ v.astype(np.float64)
    scale = np.abs(M).astype(np.float64) @ np.abs(v).astype(np.float64)
    assert np.all(np.abs(out - expected) <= (4e-7 if dtype == np.float32 else 1e-15) * K * scale)
    np.testing.assert_array_equal(M, M0)
    np.testing.assert_array_equal(v, v0)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("rows, K, N", [(1, 7, 5), (1, 512, 2048), (1, 128, 515), (1, 64, 130), (3, 300, 1000),
                                         (8, 256, 1000), (5, 200, 1001), (32, 1024, 256), (4, 2048, 512), (32, 2048, 512), (32, 1001, 300),
                                         (16, 1536, 520)])
def test_panel_product_equals_the_matrix_product(dtype, rtol, rows, K, N):
    rng = np.random.default_rng(rows * 1000 + N)
    W = rng.standard_normal((N, K)).astype(dtype)       # stored as the kernels store W_hh
    a = rng.standard_normal((rows, K)).astype(dtype)
    expected = a.astype(np.float64) @ W.T.astype(np.float64)
    for WT in (W.T, np.ascontiguousarray(W.T)):          # the kernels pass transposed views and plain arrays
        P = cut_panels(WT, rows, np.empty(0, dtype))
        for split in (1, 2, 8):                          # a batch of one: the product in parts on threads (8 > N = 5: empty parts)
            out = np.full((rows, N), np.nan, dtype)
            panel_dot(a, P, panel_scratch(P, rows, rows, split), out)
            assert out.dtype == dtype
            err = np.max(np.abs(out - expected)) / np.max(np.abs(expected))
            assert err <= rtol, f"panel product max rel err {err:.3g} > {rtol:g} (panels {P.shape}, split {split})"
        if rows > 1:                                     # a block with fewer rows than the panels were cut for
            out = np.full((rows - 1, N), np.nan, dtype)
            panel_dot(a[:-1], P, panel_scratch(P, rows, rows - 1, 1), out)
            err = np.max(np.abs(out - expected[:-1])) / np.max(np.abs(expected))
            assert err <= rtol, f"fewer rows: max rel err {err:.3g} > {rtol:g} (panels {P.shape})"
    kc, count, Kc, w = P.shape
    if rows > 1 and count * w > N:                       # the zero padding of the last panel
        assert not np.any(P[:, -1, :, N - (count - 1) * w:])
    if rows > 1 and kc * Kc > K:                         # and of the last chunk of K
        assert not np.any(P[-1, :, K - (kc - 1) * Kc:, :])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, K, N", [(1, 300, 300), (8, 256, 1000), (32, 1001, 300)])   # one row: square, copied
def test_panels_are_cut_into_the_callers_buffer_and_its_old_contents_never_leak(dtype, rows, K, N):
    """The kernels cut their panels into a buffer kept from call to call (no fresh pages each call):
    the panels are a view of it, the padding is zero whatever the buffer held, and a buffer too
    small is never overrun (a fresh array instead)."""
    rng = np.random.default_rng(K)
    W = rng.standard_normal((N, K)).astype(dtype)
    a = rng.standard_normal((rows, K)).astype(dtype)
    size = cut_elements(rows, 1, K, N)
    WT = np.ascontiguousarray(W.T)                     # as the sweeps hand it in: a plain (K, N) array
    kc, count, Kc, w = cut_panels(WT, rows, np.empty(0, dtype)).shape
    assert size == kc * count * Kc * w >= K * N
    buf = np.full(size + 7, np.nan, dtype)
    P = cut_panels(WT, rows, buf)
    assert np.shares_memory(P, buf) and not np.isnan(P).any()
    out = np.empty((rows, N), dtype)
    panel_dot(a, P, panel_scratch(P, rows, rows, 1), out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ W.T.astype(np.float64),
                               rtol=2e-5 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-10)
    small = np.full(size - 1, np.nan, dtype)
    P = cut_panels(WT, rows, small)
    assert not np.shares_memory(P, small) and np.isnan(small).all()


def test_the_buffer_size_covers_every_split_of_the_batch():
    """cut_elements is the most any block count up to the thread count needs: the panels for the
    largest block of each split fit."""
    K, N = 1024, 256
    for B in (1, 2, 3, 7, 8, 33):
        for threads in (1, 2, 4, 16):
            most = cut_elements(B, threads, K, N)
            for blocks in range(1, min(B, threads) + 1):
                rows = -(-B // blocks)
                need = int(np.prod(cut_panels(np.zeros((K, N)), rows, np.empty(0)).shape))
                assert need <= most, (B, threads, blocks)


@pytest.mark.parametrize("nblocks", [1, 2, 3, 5, 7, 9])
def test_the_input_projection_in_blocks_covers_every_row_once(nblocks):
    """block_rows_dot over blk = 0..nblocks-1 writes each of the 7 rows of a @ bT exactly once, also
    with more blocks than rows (empty blocks write nothing)."""
    rng = np.random.default_rng(nblocks)
    a = rng.standard_normal((7, 5))
    W = rng.standard_normal((6, 5))
    out = np.full((7, 6), np.nan)
    for blk in range(nblocks):
        block_rows_dot(a, W.T, out, blk, nblocks)
    np.testing.assert_allclose(out, a @ W.T, rtol=1e-13, atol=1e-13)
