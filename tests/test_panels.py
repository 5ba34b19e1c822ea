"""The per-step product through weight panels (kernels/_panels.py): the rule and the values."""
import numba
import numpy as np
import pytest

from fastrnn.kernels import _tiles
from fastrnn.kernels._jit import threads_started
from fastrnn.kernels._blas import gemm_into
from fastrnn.kernels._tiles import (FORWARD_ROW_TILE_MIN_K, ROW_TILE_BYTES, ROW_TILE_MIN_BYTES, ROW_TILE_MIN_STEPS,
                                    ROW_TILE_WEIGHT_BYTES, ROW_TILES, TILES, row_tile_products, row_tiles_pay,
                                    tile_columns, tile_products)
from fastrnn.kernels._panels import (_IN_ROW_TILES, _IN_TILES, FEW_ROWS_WHOLE, INPUT_TILE_CHUNK, LOOP_GEMV_BYTES,
                                     LOOP_GEMV_BYTES_64, LOOP_GEMV_ROWS, MIN_ROW_BLOCK, PANEL_BYTES, PANEL_ELEMENTS,
                                     ROW_BLOCK, SPLIT_WIDTH, _gemv_axpy, _gemv_rows, block_rows_dot, cut_elements,
                                     cut_panels, input_panels, k_chunks, panel_count, panel_dot, panel_scratch,
                                     row_block, shared_panels, stored_rows)


@pytest.fixture(autouse=True, scope="module")
def _threading_layer_started():
    """These tests call the compiled helpers straight from Python, and a batch of one's split product
    (``_gemv_parts``) is parallel code: start Numba's threading layer first, as every kernel call does
    (``kernels._jit.threads_started``; without it such a call can jump to a null address, depending on
    how the cache entries were made: numba/numba#8578)."""
    threads_started()


# (rows, K, N): for float32 and for float64, (rows a product takes, K chunks, panels, panel width)
RULE = [
    ((8, 128, 512), (8, 1, 1, 512), (8, 1, 1, 512)),          # rows·K·N = 2**19: the whole matrix, all rows
    ((32, 128, 512), (8, 1, 1, 512), (8, 1, 1, 512)),         # LSTM n=128, B=32, forward: blocks of 8 rows by the
    ((16, 512, 128), (8, 1, 1, 128), (8, 1, 1, 128)),         # whole matrix (and its backward, K = 4n, N = n)
    ((20000, 64, 64), (8, 1, 1, 64), (8, 1, 1, 64)),          # however many rows
    ((8, 2048, 512), (4, 1, 8, 64), (8, 1, 16, 32)),          # LSTM n=512 backward: panels of 256 bytes, as many rows
    ((32, 2048, 512), (4, 1, 8, 64), (8, 1, 16, 32)),         # as fit beside one (2**19 / (K w)), a multiple of 4
    ((32, 1536, 512), (4, 1, 8, 64), (8, 1, 16, 32)),         # GRU n=512 backward: 5.3 rows fit (float32): 4
    ((32, 512, 2048), (16, 1, 32, 64), (32, 1, 64, 32)),      # LSTM n=512 forward
    ((8, 512, 2048), (8, 1, 32, 64), (8, 1, 64, 32)),         # fewer rows than fit: all of them
    ((3, 300, 1000), (3, 1, 16, 63), (3, 1, 32, 32)),         # 1000 columns in 16 panels of 63 (the last 55)
    ((2, 128, 512), (2, 1, 8, 64), (2, 1, 16, 32)),           # 2 or 3 rows: panels past 2**15 numbers, though the
    ((2, 1024, 256), (2, 1, 4, 64), (2, 1, 8, 32)),           # whole product is within 2**19
    ((3, 64, 128), (3, 1, 1, 128), (3, 1, 1, 128)),           # 24576 numbers: whole
    ((32, 1001, 300), (8, 1, 5, 60), (16, 1, 10, 30)),
    ((16, 4096, 1024), (16, 4, 32, 32), (4, 1, 32, 32)),      # float32: not even 4 rows fit, so K is cut in 4 chunks
    ((32, 8192, 512), (32, 16, 16, 32), (32, 16, 16, 32)),    # a K this long in both: chunks of 512, panels of 32
]


@pytest.mark.parametrize("shape, f32, f64", RULE)
def test_panel_rule(shape, f32, f64):
    """The rule of the module's notes, pinned: rows a product takes at a time (``row_block``) and
    the panels cut for them; every product within PANEL_ELEMENTS, panels PANEL_BYTES wide where
    a block of rows cannot take the whole matrix, K cut only where not MIN_ROW_BLOCK rows fit."""
    assert (PANEL_ELEMENTS, ROW_BLOCK, PANEL_BYTES, MIN_ROW_BLOCK, SPLIT_WIDTH, FEW_ROWS_WHOLE) == (
        1 << 19, 8, 256, 4, 32, 1 << 15)
    rows, K, N = shape
    for dtype, (r, kc, count, w) in ((np.float32, f32), (np.float64, f64)):
        itemsize = np.dtype(dtype).itemsize
        P = cut_panels(np.zeros((K, N), dtype), rows, np.empty(0, dtype))
        assert P.shape[:2] == (kc, count) and P.shape[3] == w, (dtype, P.shape)
        Kc = P.shape[2]
        assert kc * Kc >= K > (kc - 1) * Kc and count * w >= N > (count - 1) * w
        assert panel_scratch(P, rows, rows, 1)[3] == r
        if count == 1 and r < MIN_ROW_BLOCK:
            assert r * K * N <= FEW_ROWS_WHOLE
        if kc == 1:
            assert Kc == K and row_block(rows, K, N, itemsize) == r
            assert r * K * w <= PANEL_ELEMENTS
            assert count == 1 or w <= PANEL_BYTES // itemsize
            assert r == rows or r == ROW_BLOCK or r % MIN_ROW_BLOCK == 0
        else:                            # the old rule for all rows: chunks short enough for panels of SPLIT_WIDTH
            assert r == rows and (k_chunks(rows, K, N), panel_count(rows, K, N)) == (kc, count)
            assert rows * Kc * w <= PANEL_ELEMENTS and rows * Kc * SPLIT_WIDTH <= PANEL_ELEMENTS


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
    (64, 256, np.float32, -1), (64, 256, np.float64, -1),     # 64 KB, and 128 KB of float64: loop
    (128, 128, np.float64, -1), (256, 64, np.float64, -1),    # (the simple cell's W_rec at n=128 too)
    (128, 256, np.float64, 1), (128, 256, np.float32, -1),    # 256 KB of float64: the BLAS (float32: rows of 128)
    (128, 512, np.float32, -1), (512, 128, np.float32, 1),    # float32 rows of 128 (an LSTM's forward, n=128): loop;
    (128, 512, np.float64, 1),                                # rows of 512 (its backward) and float64: the BLAS
])
def test_batch_of_one_plan(K, N, dtype, plan):
    """Which way a batch of one multiplies by the weights W (N, K) given as W^T (the forward passes):
    the rule of the module's notes, written in LOOP_GEMV_BYTES, LOOP_GEMV_BYTES_64 and LOOP_GEMV_ROWS; parts
    on threads whenever asked for. (Weights given as a plain (K, N) array always take the axpy loop.)"""
    assert LOOP_GEMV_BYTES == 1 << 16 and LOOP_GEMV_BYTES_64 == 1 << 17 and LOOP_GEMV_ROWS == 128
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
    of four and for rows of one value; the inputs are left as they were; the groups taken from the last
    (an odd step's order) give the same numbers bit for bit."""
    rng = np.random.default_rng(K * 100 + N)
    M = rng.standard_normal((N, K)).astype(dtype)
    v = rng.standard_normal(K).astype(dtype)
    M0, v0 = M.copy(), v.copy()
    out = np.full(N, np.nan, dtype)
    _gemv_rows(M, v, out, False)
    turned = np.full(N, np.nan, dtype)
    _gemv_rows(M, v, turned, True)
    np.testing.assert_array_equal(turned, out)
    expected = M.astype(np.float64) @ v.astype(np.float64)
    scale = np.abs(M).astype(np.float64) @ np.abs(v).astype(np.float64)
    assert np.all(np.abs(out - expected) <= (4e-7 if dtype == np.float32 else 1e-15) * K * scale)
    np.testing.assert_array_equal(M, M0)
    np.testing.assert_array_equal(v, v0)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("rows, K, N", [(1, 7, 5), (1, 512, 2048), (1, 128, 515), (1, 64, 130), (3, 300, 1000),
                                         (8, 256, 1000), (5, 200, 1001), (32, 1024, 256), (4, 2048, 512), (32, 2048, 512), (32, 1001, 300),
                                         (16, 1536, 520), (13, 128, 512), (10, 2048, 512), (6, 2048, 515),
                                         (20, 8192, 300)])
def test_panel_product_equals_the_matrix_product(dtype, rtol, rows, K, N):
    rng = np.random.default_rng(rows * 1000 + N)
    W = rng.standard_normal((N, K)).astype(dtype)       # stored as the kernels store W_hh
    a = rng.standard_normal((rows, K)).astype(dtype)
    expected = a.astype(np.float64) @ W.T.astype(np.float64)
    for WT in (W.T, np.ascontiguousarray(W.T)):          # the kernels pass transposed views and plain arrays
        P = cut_panels(WT, rows, np.empty(0, dtype))
        for split in (1, 2, 8):                          # a batch of one: the product in parts on threads (8 > N = 5: empty parts)
            out = np.full((rows, N), np.nan, dtype)
            panel_dot(a, P, panel_scratch(P, rows, rows, split), out, False)
            assert out.dtype == dtype
            err = np.max(np.abs(out - expected)) / np.max(np.abs(expected))
            assert err <= rtol, f"panel product max rel err {err:.3g} > {rtol:g} (panels {P.shape}, split {split})"
            turned = np.full((rows, N), np.nan, dtype)   # an odd step's order of the panels: the same numbers
            panel_dot(a, P, panel_scratch(P, rows, rows, split), turned, True)
            np.testing.assert_array_equal(turned, out)
        if rows > 1:                                     # a block with fewer rows than the panels were cut for
            out = np.full((rows - 1, N), np.nan, dtype)
            panel_dot(a[:-1], P, panel_scratch(P, rows, rows - 1, 1), out, True)
            err = np.max(np.abs(out - expected[:-1])) / np.max(np.abs(expected))
            assert err <= rtol, f"fewer rows: max rel err {err:.3g} > {rtol:g} (panels {P.shape})"
    kc, count, Kc, w = P.shape
    if rows > 1 and count * w > N:                       # the zero padding of the last panel
        assert not np.any(P[:, -1, :, N - (count - 1) * w:])
    if rows > 1 and kc * Kc > K:                         # and of the last chunk of K
        assert not np.any(P[-1, :, K - (kc - 1) * Kc:, :])


@numba.njit(parallel=True)
def _shared(WT, rows, buf, split, nblocks):
    return shared_panels(WT, rows, buf, split, nblocks)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nblocks", [1, 2, 3, 7])
@pytest.mark.parametrize("turned", [False, True])
def test_panels_cut_by_the_blocks_that_share_them_are_one_threads(dtype, nblocks, turned):
    """``shared_panels``: the tiles' panels cut by the kernel's parallel blocks, each its share (more blocks
    than panels too), into the caller's buffer, are the panels one thread cuts, padding included, whatever the
    buffer held; a buffer too small, or one row, and one thread cuts them."""
    threads_started()
    K, N = 200, 300                                     # 5 panels of 64 float32 columns, 10 of 32 float64
    W = np.random.default_rng(nblocks).standard_normal((N, K) if turned else (K, N)).astype(dtype)
    WT = W.T if turned else W                           # a forward pass's view of W, or a sweep's W
    alone = cut_panels(WT, 8, np.empty(0, dtype), TILES)
    buf = np.full(alone.size + 5, np.nan, dtype)
    P = _shared(WT, 8, buf, TILES, nblocks)
    assert np.shares_memory(P, buf)
    np.testing.assert_array_equal(P, alone)
    small = np.full(alone.size - 1, np.nan, dtype)
    np.testing.assert_array_equal(_shared(WT, 8, small, TILES, nblocks), alone)
    assert np.isnan(small).all()
    np.testing.assert_array_equal(_shared(WT, 1, buf, 1, nblocks), cut_panels(WT, 1, np.empty(0, dtype), 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, K, N", [(1, 300, 300), (8, 256, 1000), (32, 1001, 300)])   # one row: square, copied
def test_panels_are_cut_into_the_callers_buffer_and_its_old_contents_never_leak(dtype, rows, K, N):
    """The kernels cut their panels into a buffer kept from call to call (no fresh pages each call):
    the panels are a view of it, the padding is zero whatever the buffer held, and a buffer too
    small is never overrun (a fresh array instead)."""
    rng = np.random.default_rng(K)
    W = rng.standard_normal((N, K)).astype(dtype)
    a = rng.standard_normal((rows, K)).astype(dtype)
    size = cut_elements(rows, 1, K, N, np.dtype(dtype).itemsize)
    WT = np.ascontiguousarray(W.T)                     # as the sweeps hand it in: a plain (K, N) array
    kc, count, Kc, w = cut_panels(WT, rows, np.empty(0, dtype)).shape
    tiled = cut_panels(WT, rows, np.empty(0, dtype), TILES if rows > 1 else ROW_TILES).size   # room for either
    assert size == max(kc * count * Kc * w, tiled) >= K * N
    buf = np.full(size + 7, np.nan, dtype)
    P = cut_panels(WT, rows, buf)
    assert np.shares_memory(P, buf) and not np.isnan(P).any()
    out = np.empty((rows, N), dtype)
    panel_dot(a, P, panel_scratch(P, rows, rows, 1), out, False)
    np.testing.assert_allclose(out, a.astype(np.float64) @ W.T.astype(np.float64),
                               rtol=2e-5 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-10)
    small = np.full(kc * count * Kc * w - 1, np.nan, dtype)
    P = cut_panels(WT, rows, small)
    assert not np.shares_memory(P, small) and np.isnan(small).all()


def test_the_buffer_size_covers_every_split_of_the_batch():
    """cut_elements is the most any block count up to the thread count needs: the panels for the
    largest block of each split fit."""
    for K, N in ((1024, 256), (128, 512), (8192, 300)):
        for dtype in (np.float32, np.float64):
            for B in (1, 2, 3, 7, 8, 33):
                for threads in (1, 2, 4, 16):
                    most = cut_elements(B, threads, K, N, np.dtype(dtype).itemsize)
                    for blocks in range(1, min(B, threads) + 1):
                        rows = -(-B // blocks)
                        need = int(np.prod(cut_panels(np.zeros((K, N), dtype), rows, np.empty(0, dtype)).shape))
                        assert need <= most, (K, N, dtype, B, threads, blocks)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("split", [1, TILES])
@pytest.mark.parametrize("rows", [7, 2 * INPUT_TILE_CHUNK + 3])
@pytest.mark.parametrize("nblocks", [1, 2, 3, 5, 7, 9])
def test_the_input_projection_in_blocks_covers_every_row_once(nblocks, rows, split, dtype):
    """block_rows_dot over blk = 0..nblocks-1 writes each row of a @ bT exactly once, also with more
    blocks than rows (empty blocks write nothing), through the BLAS (split 1: no panels) and through the
    compiled tiles (``TILES``: ``input_panels`` cuts them), over rows that span several of the tiles'
    chunks and end short of a tile, with N short of a panel; a and bT as the kernels hand them (bT a
    transposed view)."""
    rng = np.random.default_rng(nblocks)
    a = rng.standard_normal((rows, 5)).astype(dtype)
    W = rng.standard_normal((tile_columns(np.dtype(dtype).itemsize) + 3, 5)).astype(dtype)
    P = input_panels(W.T, split)
    assert P.shape[1] == (0 if split == 1 else -(-W.shape[0] // tile_columns(np.dtype(dtype).itemsize)))
    out = np.full((rows, W.shape[0]), np.nan, dtype)
    for blk in range(nblocks):
        block_rows_dot(a, W.T, out, blk, nblocks, P)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, a.astype(np.float64) @ W.T.astype(np.float64), rtol=tol, atol=tol)


@numba.njit
def _call_gemm_into(a, b, c):
    gemm_into(a, b, c)          # an intrinsic: callable from compiled code only


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 2e-6)])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (4, 2048, 64), (8, 128, 512), (3, 5, 7), (16, 300, 63)])
def test_gemm_into_writes_a_block_of_columns(dtype, rtol, m, k, n):
    """_blas.gemm_into: c = a @ b where c is a block of columns of a wider array and a is a block of
    rows of a wider array (row strides other than their widths, as the panel products pass them);
    the columns beside the block and the inputs are left as they were."""
    rng = np.random.default_rng(m * 7 + k + n)
    A = rng.standard_normal((m + 3, k + 5)).astype(dtype)
    b_wide = rng.standard_normal((k, n + 9)).astype(dtype)
    C = np.full((m + 2, n + 20), np.nan, dtype)
    a, b = A[1:1 + m, 2:2 + k], b_wide[:, :n]
    A0, B0 = A.copy(), b_wide.copy()
    _call_gemm_into(a, b, C[1:1 + m, 11:11 + n])
    expected = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.all(np.abs(C[1:1 + m, 11:11 + n] - expected) <= rtol * k * scale)
    C[1:1 + m, 11:11 + n] = np.nan
    assert np.isnan(C).all()
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(b_wide, B0)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 4e-6)])
@pytest.mark.parametrize("rows, K, N", [(2, 7, 5), (3, 300, 1000), (4, 128, 512), (5, 200, 1001), (8, 33, 131),
                                         (13, 128, 512), (32, 2048, 512), (6, 1, 17), (9, 512, 8)])
def test_tile_product_equals_the_matrix_product(dtype, rtol, rows, K, N):
    """The compiled register tiles (``kernels._tiles``, ``split=TILES`` at more than one row): panels of
    ``tile_columns`` columns (16 float32, 12 float64; 64 and 32 where the tiles take 64-byte vectors), the last zero-padded, every block of rows (a remainder of 1-3 rows too), columns
    past N never written, a block with fewer rows than the panels were cut for, and rows of ``a`` with
    a stride (a view of longer rows), as the kernels hand them in."""
    rng = np.random.default_rng(rows * 1000 + N)
    W = rng.standard_normal((N, K)).astype(dtype)
    a = rng.standard_normal((rows, K)).astype(dtype)
    expected = a.astype(np.float64) @ W.T.astype(np.float64)
    w = tile_columns(np.dtype(dtype).itemsize)
    assert w == {32: {4: 16, 8: 12}, 64: {4: 64, 8: 32}}[_tiles.TILE_BYTES][np.dtype(dtype).itemsize]
    for WT in (W.T, np.ascontiguousarray(W.T)):
        P = cut_panels(WT, rows, np.empty(0, dtype), TILES)
        assert P.shape == (1, -(-N // w), K, w)
        assert not np.any(P[0, -1, :, N - (P.shape[1] - 1) * w:])
        for r in (rows, rows - 1):
            out = np.full((r, N), np.nan, dtype)
            scratch = panel_scratch(P, rows, r, TILES)
            assert scratch[2] == _IN_TILES
            panel_dot(a[:r], P, scratch, out, r < rows)
            err = np.max(np.abs(out - expected[:r])) / np.max(np.abs(expected))
            assert err <= rtol, f"tile product max rel err {err:.3g} > {rtol:g} ({r} rows, panels {P.shape})"
        wider = np.full((rows, N + 2), np.nan, dtype)     # rows of a and out with a stride: nothing past N is written
        longer = np.full((rows, K + 3), np.nan, dtype)
        longer[:, 2:K + 2] = a
        edge, pad = panel_scratch(P, rows, rows, TILES)[:2]
        for odd in (False, True):                        # the same sums as panel_dot's, row by row, in either order
            wider[:, :N] = np.nan
            tile_products(longer[:, 2:K + 2], P, wider[:, :N], edge[0, 0], pad, odd)
            np.testing.assert_array_equal(wider[:rows - 1, :N], out)
        assert np.isnan(wider[:, N:]).all()
        err = np.max(np.abs(wider[:, :N] - expected)) / np.max(np.abs(expected))
        assert err <= rtol


@pytest.mark.parametrize("vector_bytes, wide", [(32, 2), (32, 3), (64, 2), (64, 4)])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 4e-6)])
def test_every_tile_width_equals_the_matrix_product(vector_bytes, wide, dtype, rtol):
    """The tile in each shape the kernels take on some machine (32-byte vectors two or three wide, 64-byte
    ones four wide; ``_tiles.TILE_BYTES`` picks by the CPU), compiled here whatever this CPU is: one block of
    ROWS rows by each panel, K not a multiple of anything, rows of a with a stride."""
    from numba import njit
    from fastrnn.kernels._rows import borrow
    tile = _tiles._tile_intrinsic(_tiles.ROWS, wide, vector_bytes)

    @njit
    def run(a, P, out):
        lda = a.strides[0] // a.itemsize
        for p in range(P.shape[0]):
            tile(a, lda, 1, borrow(P, p), P.shape[1], out[:, p * P.shape[2]:], out.strides[0] // out.itemsize)

    rng = np.random.default_rng(vector_bytes + wide)
    K, cols = 77, wide * vector_bytes // np.dtype(dtype).itemsize
    W = rng.standard_normal((K, 3 * cols)).astype(dtype)
    longer = rng.standard_normal((_tiles.ROWS, K + 5)).astype(dtype)
    a = longer[:, 1:K + 1]
    P = np.ascontiguousarray(W.reshape(K, 3, cols).transpose(1, 0, 2))
    out = np.full((_tiles.ROWS, 3 * cols + 1), np.nan, dtype)
    run(a, P, out)
    expected = a.astype(np.float64) @ W.astype(np.float64)
    err = np.max(np.abs(out[:, :3 * cols] - expected)) / np.max(np.abs(expected))
    assert err <= rtol
    assert np.isnan(out[:, 3 * cols]).all()


@pytest.mark.parametrize("features, name, expected", [("+avx2,+fma,+avx512f,+avx512bw", "", 64), ("+avx2,+fma,-avx512f", "", 32),
                                                      ("", "generic", 32), ("+neon", "", 32)])
def test_the_tiles_vectors_follow_the_cpu_numba_compiles_for(monkeypatch, features, name, expected):
    """64-byte vectors where the CPU Numba compiles for has AVX-512 (the features NUMBA_CPU_FEATURES names,
    else this machine's as LLVM reports them), 32 elsewhere; a CPU named without its features: 32."""
    from numba.core import config
    monkeypatch.setattr(config, "CPU_FEATURES", features)
    monkeypatch.setattr(config, "CPU_NAME", name)
    assert _tiles.native_vector_bytes() == expected


def test_the_tiles_vectors_are_this_machines():
    from llvmlite import binding
    from numba.core import config
    if config.CPU_NAME or config.CPU_FEATURES:
        pytest.skip("NUMBA_CPU_NAME or NUMBA_CPU_FEATURES chooses the CPU the kernels compile for")
    avx512 = binding.get_host_cpu_features().get("avx512f", False)
    assert _tiles.TILE_BYTES == _tiles.native_vector_bytes() == (64 if avx512 else 32)


def test_the_buffer_size_covers_the_tiles_panels():
    """cut_elements leaves room for the compiled tiles' panels as well, at every batch of more than one."""
    for K, N in ((1024, 256), (128, 512), (33, 131), (5, 3)):
        for dtype in (np.float32, np.float64):
            for B in (2, 3, 8, 33):
                most = cut_elements(B, 2, K, N, np.dtype(dtype).itemsize)
                need = int(np.prod(cut_panels(np.zeros((K, N), dtype), B, np.empty(0, dtype), TILES).shape))
                assert need <= most, (K, N, dtype, B)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 4e-6)])
@pytest.mark.parametrize("K, N", [(512, 128), (400, 100), (360, 90), (440, 110), (7, 3), (1, 64), (300, 64), (9, 200),
                                  (64, 64)])
def test_row_tile_product_equals_the_matrix_vector_product(dtype, rtol, K, N):
    """A batch of one's row tiles (``split=ROW_TILES``, the backward sweeps' W (K, N) as stored):
    panels of ROW_TILE_BYTES columns, the last zero-padded and taken by tiles of 4, 2 and 1 vectors
    and a partial vector through the edge (N = 100, 90, 110 in float32 and float64 reach each of them),
    K of any length (the narrow tiles' unrolled sums and their remainder), a square W too; nothing
    past N written; the same sums from a view of longer rows."""
    rng = np.random.default_rng(K * 1000 + N)
    W = rng.standard_normal((K, N)).astype(dtype)
    v = rng.standard_normal(K).astype(dtype)
    expected = v.astype(np.float64) @ W.astype(np.float64)
    w = ROW_TILE_BYTES // np.dtype(dtype).itemsize
    buf = np.full(cut_elements(1, 1, K, N, np.dtype(dtype).itemsize), np.nan, dtype)   # old contents never leak
    P = cut_panels(W, 1, buf, ROW_TILES)
    assert P.shape == (1, -(-N // w), K, w)
    assert not np.any(P[0, -1, :, N - (P.shape[1] - 1) * w:])
    scratch = panel_scratch(P, 1, 1, ROW_TILES)
    assert scratch[2] == _IN_ROW_TILES
    out = np.full((1, N), np.nan, dtype)
    panel_dot(v[None], P, scratch, out, False)
    err = np.max(np.abs(out[0] - expected)) / np.max(np.abs(expected))
    assert err <= rtol, f"row tile product max rel err {err:.3g} > {rtol:g} (panels {P.shape})"
    wider = np.full(N + 3, np.nan, dtype)
    longer = np.full((2, K + 3), np.nan, dtype)
    longer[1, 2:K + 2] = v
    for odd in (False, True):                            # the panels in either order: the same numbers
        wider[:N] = np.nan
        row_tile_products(longer[1, 2:K + 2], P, wider[:N], scratch[0][0, 0, 0], odd)
        np.testing.assert_array_equal(wider[:N], out[0])
        assert np.isnan(wider[N:]).all()


def test_forward_passes_take_row_tiles_from_enough_units_only():
    """The forward passes hand in W^T (K, N), a view: ``stored_rows`` keeps row tiles (a transposing
    copy) from FORWARD_ROW_TILE_MIN_K units, turns them into a whole product by W's own rows (no copy)
    below that, and leaves every other split as it is."""
    assert stored_rows(ROW_TILES, FORWARD_ROW_TILE_MIN_K - 1) == 1
    assert stored_rows(ROW_TILES, FORWARD_ROW_TILE_MIN_K) == ROW_TILES
    for split in (TILES, 1, 2, 16):
        assert stored_rows(split, 64) == split and stored_rows(split, 512) == split
    W = np.arange(256 * 64, dtype=np.float32).reshape(256, 64)
    P = cut_panels(W.T, 1, np.empty(0, np.float32), stored_rows(ROW_TILES, 64))
    assert P.shape == (1, 1, 256, 64) and np.shares_memory(P, W)
    W = np.arange(512 * 128, dtype=np.float32).reshape(512, 128)
    buf = np.empty(cut_elements(1, 1, 128, 512, 4), np.float32)
    P = cut_panels(W.T, 1, buf, stored_rows(ROW_TILES, 128))
    w = ROW_TILE_BYTES // 4
    assert P.shape == (1, 512 // w, 128, w) and np.shares_memory(P, buf)
    np.testing.assert_array_equal(P[0, 1], W[w:2 * w].T)      # each panel: W's rows as columns


def test_row_tiles_rule():
    """Row tiles from just over ROW_TILE_MIN_BYTES to ROW_TILE_WEIGHT_BYTES of weights (a core's L2 cache),
    over ROW_TILE_MIN_STEPS steps or more; and the panels' buffer holds them."""
    assert not row_tiles_pay(ROW_TILE_MIN_BYTES, 100)
    assert row_tiles_pay(ROW_TILE_MIN_BYTES + 4, 100)
    assert row_tiles_pay(ROW_TILE_WEIGHT_BYTES, ROW_TILE_MIN_STEPS)
    assert not row_tiles_pay(ROW_TILE_WEIGHT_BYTES + 4, 100)
    assert not row_tiles_pay(ROW_TILE_WEIGHT_BYTES, ROW_TILE_MIN_STEPS - 1)    # an online step: one product a call
    for K, N in ((512, 128), (400, 100), (7, 3)):
        for dtype in (np.float32, np.float64):
            need = int(np.prod(cut_panels(np.zeros((K, N), dtype), 1, np.empty(0, dtype), ROW_TILES).shape))
            assert need <= cut_elements(1, 2, K, N, np.dtype(dtype).itemsize)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_copy_into_panels_equals_its_source_either_way_round(dtype):
    """``_copy`` from a source stored the other way round with contiguous stored rows (turned round in registers,
    ``_tiles.turned_copy``: whole blocks of a vector's lanes square and the rows and columns beyond them), from
    one whose stored rows are strided (small narrow destinations column by column, the others in blocks of 16 x
    16), from one stored as dst is, and from strided views; nothing outside the destination written."""
    from fastrnn.kernels._panels import NARROW_COPY, _copy
    rng = np.random.default_rng(5)
    for R, C in ((128, 16), (37, NARROW_COPY), (300, NARROW_COPY), (64, NARROW_COPY + 1), (33, 200), (15, 300), (48, 96),
                 (16, 81), (3, 5), (17, 33), (64, 64)):
        W = rng.standard_normal((2 * C + 3, 2 * R + 5)).astype(dtype)
        # stored the other way round, stored as dst is, the other way round every second row of W, and the other
        # way round every second column of W (its stored rows strided)
        for src in (W.T[2:R + 2, 1:C + 1], np.ascontiguousarray(W.T[2:R + 2, 1:C + 1]), W.T[2:R + 2, 1:2 * C + 1:2],
                    W.T[2:2 * R + 2:2, 1:C + 1]):
            big = np.full((R + 2, C + 2), np.nan, dtype)
            _copy(big[1:R + 1, 1:C + 1], src)
            np.testing.assert_array_equal(big[1:R + 1, 1:C + 1], src)
            assert np.isnan(big[0]).all() and np.isnan(big[-1]).all() and np.isnan(big[:, 0]).all() and np.isnan(big[:, -1]).all()
