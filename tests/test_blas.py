"""The float32 weight-gradient product through NumPy's own OpenBLAS (kernels/_blas.py,
runtime.blas.sgemm_address): the same values as Numba's np.dot, in every block split."""
import numpy as np
import pytest

from fastrnn.kernels import _weight_grads
from fastrnn.kernels.bptt import DIRECT, JOINED, SPLIT, TILED, TURNED
from fastrnn.runtime import blas


def _weight_grad_call(sgemm, nblocks, T=13, B=5, m=3, n=7, r=28, seed=0, by_columns=False, rest=0, layout=JOINED):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, m)).astype(np.float32)
    h_prev = rng.standard_normal((T, B, n)).astype(np.float32)
    D = rng.standard_normal((T, B, r)).astype(np.float32)
    inputs = [a.copy() for a in (x, h_prev, D)]
    dW_in = np.full((r, m), np.nan, np.float32)
    dW_rec = np.full((r, n), np.nan, np.float32)
    db = np.full(r, np.nan, np.float32)
    XH = np.full((T * B, m + n), np.nan, np.float32)
    G = np.full((r, m + n), np.nan, np.float32)
    kernel = _weight_grads.parallel if nblocks > 1 else _weight_grads.serial
    partials = np.full(rest, np.nan, np.float32)        # NaN: a product that is not written would show
    kernel(*_weight_grads.read_only((x, h_prev, D, dW_in, dW_rec, db, XH, G, partials, by_columns, sgemm, layout,
                                     np.empty((0, 0, 0), D.dtype), nblocks)))
    for before, after in zip(inputs, (x, h_prev, D)):
        np.testing.assert_array_equal(before, after)          # inputs unchanged
    Dr = D.astype(np.float64).reshape(T * B, r)
    expected = (Dr.T @ x.astype(np.float64).reshape(T * B, m), Dr.T @ h_prev.astype(np.float64).reshape(T * B, n),
                Dr.sum(axis=0))
    return (dW_in, dW_rec, db), expected


def test_numpy_openblas_found_when_numpy_ships_it():
    """NumPy's PyPI wheels (Linux, Windows) carry OpenBLAS with 64-bit-integer CBLAS symbols; where
    threadpoolctl lists such a library, fastrnn must find its sgemm."""
    openblas64 = [lib for lib in blas.libraries() if lib.internal_api == "openblas" and "64" in lib.filepath]
    if not openblas64:
        pytest.skip("this NumPy brings no 64-bit-integer OpenBLAS (another BLAS build): nothing to find")
    assert blas.sgemm_address() != 0


@pytest.mark.parametrize("layout", [JOINED, SPLIT])
@pytest.mark.parametrize("by_columns,rest", [(False, 0), (False, 2 * 28 * 10), (True, 0)])
@pytest.mark.parametrize("nblocks", [1, 2, 3])
def test_weight_gradient_product_through_numpy_openblas(nblocks, by_columns, rest, layout):
    """Every block split (rows of [x | h] with the partial sums in the caller's buffer, or in a fresh
    array where it is too small; columns of D) gives the float64 sums, through NumPy's OpenBLAS and
    through np.dot, with D^T [x | h] as one product and as two (``SPLIT``, which never reads the
    NaN-filled XH)."""
    address = blas.sgemm_address()
    if address == 0:
        pytest.skip("no NumPy OpenBLAS sgemm in this process: the kernels use np.dot (tested everywhere else)")
    with blas.single_threaded():
        got, expected = _weight_grad_call(address, nblocks, by_columns=by_columns, rest=rest, layout=layout)
        plain, _ = _weight_grad_call(0, nblocks, by_columns=by_columns, rest=rest, layout=layout)
    for a, b, e in zip(got, plain, expected):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)      # float32 sums of 65 products against float64
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)      # and against Numba's np.dot


def test_no_openblas_means_np_dot(monkeypatch):
    """Without an ILP64 OpenBLAS among the controlled libraries (NumPy on another BLAS, threadpoolctl
    unusable), the address is 0: the kernels then take np.dot, which every other test runs."""
    monkeypatch.setattr(blas, "_libraries", [])
    monkeypatch.setattr(blas, "_sgemm", None)
    assert blas.sgemm_address() == 0
    got, expected = _weight_grad_call(blas.sgemm_address(), 1)
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("by_columns", [False, True])
@pytest.mark.parametrize("nblocks", [1, 2, 3])
@pytest.mark.parametrize("r,n", [(28, 7), (64, 37)])
def test_float64_weight_gradient_product_turned_round(nblocks, r, n, by_columns):
    """kernels.bptt._weight_grads with layout=TURNED: [x | h]^T D into a padded (m + n, r + pad)
    buffer, copied out transposed (``_panels._copy``, blocks of 16: n = 37 takes two and a
    part, n = 7 and m = 3 one part), gives the float64 sums, the same as the product D^T [x | h]
    (JOINED) and as D^T x and D^T h taken apart (SPLIT, through Numba's BLAS with row strides);
    inputs unchanged, the padding and (SPLIT) the NaN-filled XH never read."""
    from fastrnn.cells.base import GRAD_ROW_PAD
    T, B, m = 13, 5, 3
    rng = np.random.default_rng(1)
    x, h_prev, D = (rng.standard_normal(s) for s in ((T, B, m), (T, B, n), (T, B, r)))
    inputs = [a.copy() for a in (x, h_prev, D)]
    results = {}
    for layout, shape in ((TURNED, (m + n, r + GRAD_ROW_PAD // 8)), (JOINED, (r, m + n)), (SPLIT, (r, m + n)),
                          (TILED, (m + n, r + GRAD_ROW_PAD // 8))):
        outs = [np.full((r, m), np.nan), np.full((r, n), np.nan), np.full(r, np.nan)]
        G = np.full(shape, np.nan)            # NaN padding: a read of it would show in the results
        kernel = _weight_grads.parallel if nblocks > 1 else _weight_grads.serial
        with blas.single_threaded():
            kernel(*_weight_grads.read_only((x, h_prev, D, *outs, np.full((T * B, m + n), np.nan), G,
                                             np.full((nblocks - 1) * G.size, np.nan), by_columns, 0, layout,
                                             np.empty((0, 0, 0)), nblocks)))
        results[layout] = outs
    for before, after in zip(inputs, (x, h_prev, D)):
        np.testing.assert_array_equal(before, after)
    D2 = D.reshape(T * B, r)
    expected = (D2.T @ x.reshape(T * B, m), D2.T @ h_prev.reshape(T * B, n), D2.sum(axis=0))
    for got, plain, split, tiled, want in zip(results[TURNED], results[JOINED], results[SPLIT], results[TILED],
                                              expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got, plain, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(split, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(tiled, want, rtol=1e-12, atol=1e-12)


def _assert_gradient_sums(inputs, arrays, outs, rtol):
    """The weight-gradient kernel's inputs ``arrays`` (x, h_prev, D) equal to their copies ``inputs``, and its
    ``outs`` (dW_in, dW_rec, db) every number written and the float64 sums D^T x, D^T h and D summed over all
    T·B rows, within ``rtol`` of the largest."""
    for before, after in zip(inputs, arrays):
        np.testing.assert_array_equal(before, after)
    x, h_prev, D = (a.astype(np.float64) for a in arrays)
    R = D.shape[0] * D.shape[1]
    D2 = D.reshape(R, -1)
    expected = (D2.T @ x.reshape(R, -1), D2.T @ h_prev.reshape(R, -1), D2.sum(axis=0))
    for got, want in zip(outs, expected):
        assert not np.isnan(got).any()
        scale = np.max(np.abs(want))
        assert np.max(np.abs(got - want)) <= rtol * scale, (np.max(np.abs(got - want)) / scale)


@pytest.mark.parametrize("by_columns", [False, True])
@pytest.mark.parametrize("nblocks", [1, 2])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("T,B,m,n,r", [(100, 8, 32, 128, 512), (37, 3, 5, 70, 210), (20, 32, 32, 64, 64),
                                       (131, 9, 5, 70, 70), (30, 4, 6, 160, 640)])
def test_weight_gradient_product_in_tiles(nblocks, by_columns, dtype, rtol, T, B, m, n, r):
    """layout=TILED: [x | h]^T D in the step products' tiles (several panels of D's columns, the last partial;
    m + n not a multiple of the tiles' 4 rows at 75; T·B = 1179 rows in chunks of TILED_PANEL_BYTES, the last
    shorter), x and h read in place turned round or through XH holding [x | h]^T (``read_in_place``: both ways
    in either dtype among these shapes): the float64 sums (float32: the products of T·B = 800 terms against
    float64's), inputs unchanged, the NaN-filled padding never read."""
    rng = np.random.default_rng(T + r)
    x, h_prev, D = (rng.standard_normal(s).astype(dtype) for s in ((T, B, m), (T, B, n), (T, B, r)))
    inputs = [a.copy() for a in (x, h_prev, D)]
    outs = _tiled_gradients(x, h_prev, D, np.empty((0, 0, 0), dtype), nblocks, by_columns)
    _assert_gradient_sums(inputs, (x, h_prev, D), outs, rtol)


def _tiled_gradients(x, h_prev, D, A_in, nblocks, by_columns):
    """The weight-gradient kernel's (dW_in, dW_rec, db) with layout=TILED, from NaN-filled outputs and scratch."""
    from fastrnn.cells.base import GRAD_ROW_PAD
    T, B, m = x.shape
    n, r, dtype = h_prev.shape[2], D.shape[2], D.dtype
    outs = [np.full((r, m), np.nan, dtype), np.full((r, n), np.nan, dtype), np.full(r, np.nan, dtype)]
    G = np.full((m + n, r + GRAD_ROW_PAD // np.dtype(dtype).itemsize), np.nan, dtype)
    kernel = _weight_grads.parallel if nblocks > 1 else _weight_grads.serial
    with blas.single_threaded():
        kernel(*_weight_grads.read_only((x, h_prev, D, *outs, np.full((T * B, m + n), np.nan, dtype), G,
                                         np.full((nblocks - 1) * G.size, np.nan, dtype), by_columns, 0, TILED,
                                         A_in, nblocks)))
    return outs


@pytest.mark.parametrize("by_columns", [False, True])
@pytest.mark.parametrize("nblocks", [1, 2, 3])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("T,B,m,n,a", [(100, 8, 32, 128, 128), (37, 3, 5, 70, 70), (131, 9, 5, 70, 3),
                                       (30, 4, 6, 160, 160), (20, 32, 32, 64, 100)])
def test_weight_gradient_input_side_from_its_own_deltas_in_tiles(by_columns, nblocks, dtype, rtol, T, B, m, n, a):
    """layout=TILED with A_in (T, B, a): dW_in's last a rows are the sums of A_in^T x (the GRU's n block: the
    input side's deltas), every other gradient D's, as the float64 products give them. D has 3n columns, or 2n
    + 100 (a = 100 not a multiple of a panel: a group of panels partly D's, partly A_in's, for x's rows); x and h
    read in place and through XH (``read_in_place``: both among these shapes); by columns and by rows; inputs
    unchanged; NaN-filled scratch never read."""
    rng = np.random.default_rng(T + n + a)
    r = 2 * n + a
    x, h_prev, D, A = (rng.standard_normal(s).astype(dtype) for s in ((T, B, m), (T, B, n), (T, B, r), (T, B, a)))
    inputs = [v.copy() for v in (x, h_prev, D, A)]
    outs = _tiled_gradients(x, h_prev, D, A, nblocks, by_columns)
    for before, after in zip(inputs, (x, h_prev, D, A)):
        np.testing.assert_array_equal(before, after)
    R = T * B
    x2, h2, D2, A2 = (v.astype(np.float64).reshape(R, -1) for v in (x, h_prev, D, A))
    D_in = D2.copy()
    D_in[:, r - a:] = A2
    for got, want in zip(outs, (D_in.T @ x2, D2.T @ h2, D2.sum(axis=0))):
        assert not np.isnan(got).any()
        scale = np.max(np.abs(want))
        assert np.max(np.abs(got - want)) <= rtol * scale, (np.max(np.abs(got - want)) / scale)


@pytest.mark.parametrize("nblocks", [1, 2, 3])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("T,B,m,n,r", [(100, 1, 32, 512, 2048), (37, 3, 5, 70, 210), (13, 2, 3, 7, 7),
                                       (1, 1, 1, 1, 4), (40, 5, 33, 65, 130), (200, 1, 6, 9, 27)])
def test_weight_gradients_written_in_place_from_the_tiles(nblocks, dtype, rtol, T, B, m, n, r):
    """layout=DIRECT: D^T x and D^T h in the compiled tiles, D read where it lies, x and h cut into panels (m
    and n short of a whole panel, of one, of several and a part; r not a multiple of the tiles' 4 rows at 7,
    27, 65 and 210, and fewer rows than blocks at r = 4), written straight into dW_in and dW_rec, each block its
    own rows: the float64 sums (float32: against float64's), every output number written (NaN-filled before),
    inputs unchanged, XH, G and the partial sums never read (NaN, and empty). The rule takes it over at most
    ``DIRECT_MAX_ROWS`` rows, where the panels stay in the L1 cache, but the kernel holds at any count (200)."""
    rng = np.random.default_rng(T + r)
    x, h_prev, D = (rng.standard_normal(s).astype(dtype) for s in ((T, B, m), (T, B, n), (T, B, r)))
    inputs = [a.copy() for a in (x, h_prev, D)]
    outs = [np.full((r, m), np.nan, dtype), np.full((r, n), np.nan, dtype), np.full(r, np.nan, dtype)]
    kernel = _weight_grads.parallel if nblocks > 1 else _weight_grads.serial
    with blas.single_threaded():
        kernel(*_weight_grads.read_only((x, h_prev, D, *outs, np.full((0, m + n), np.nan, dtype),
                                         np.full((0, 0), np.nan, dtype), np.empty(0, dtype), True, 0, DIRECT,
                                         np.empty((0, 0, 0), dtype), nblocks)))
    _assert_gradient_sums(inputs, (x, h_prev, D), outs, rtol)


@pytest.mark.parametrize("cell,dtype,n", [("lstm", np.float32, 192), ("gru", np.float32, 256), ("rnn", np.float64, 256),
                                          ("lstmp", np.float64, 128)])
@pytest.mark.parametrize("threads", [1, 2])
def test_bptt_with_the_weight_gradients_written_in_place_matches_the_reference(cell, dtype, n, threads, monkeypatch):
    """Whole ``fastrnn.bptt`` calls over T·B = 40 rows, gradients of 384 KB or more, where the rule takes
    ``DIRECT`` itself (the tiles held wider than the BLAS's, as on the machines that take it): the reference's
    loss and gradients, within the tolerance every kernel meets (``assert_grads_close``)."""
    import fastrnn
    from fastrnn import reference
    from fastrnn.cells import base
    from conftest import assert_grads_close, make_problem
    monkeypatch.setattr(blas, "_wider", True)
    net, x, d, mask, h0 = make_problem(5, T=20, B=2, m=8, n=n, o=3, dtype=dtype, readout="linear", cell=cell)
    r = {"rnn": 1, "gru": 3, "lstm": 4, "lstmp": 4}[cell] * n
    assert base.weight_grad_layout(dtype, r, 8, net.W_hh.shape[1] if cell == "lstmp" else n, 40)[1] == DIRECT
    with fastrnn.threads(threads):
        L, grads = fastrnn.bptt(net, x, d, mask, h0=h0)
    L_ref, ref = reference.bptt(net, x, d, mask, h0=h0)
    assert abs(L - L_ref) <= (1e-5 if dtype == np.float32 else 1e-12) * abs(L_ref)
    assert_grads_close(grads, ref, dtype)


def test_the_rule_for_reading_x_and_h_in_place():
    from fastrnn.kernels.bptt import read_in_place
    assert read_in_place(512, 128, 4) and read_in_place(210, 70, 4) and read_in_place(640, 128, 4)
    assert not read_in_place(640, 160, 4) and not read_in_place(512, 128, 8) and not read_in_place(2048, 512, 4)
    assert read_in_place(70, 70, 8) and read_in_place(256, 256, 4)          # the simple cell up to 1 KB rows
    assert not read_in_place(256, 256, 8) and not read_in_place(512, 512, 4)


def test_weight_gradient_layout_rule(monkeypatch):
    """cells.base.weight_grad_layout: where the tiles are wider than the BLAS's, every product in them, written in
    place over few rows for large gradients; else float64 products with more rows of D than columns of [x | h]
    (gated cells) turned round into rows padded by 64 bytes; the float32 simple cell's (r <= n) up to
    64 units as two products; the rest as D^T [x | h]."""
    from fastrnn.cells import base
    from fastrnn.cells.base import weight_grad_layout
    monkeypatch.setattr(blas, "_wider", True)          # tiles wider than the BLAS's vectors: every product in them
    assert weight_grad_layout(np.float64, 512, 32, 128) == ((160, 520), TILED)
    assert weight_grad_layout(np.float32, 32, 32, 32) == ((64, 48), TILED)
    assert weight_grad_layout(np.float32, 512, 32, 128) == ((160, 528), TILED)
    # over at most DIRECT_MAX_ROWS = 128 rows, gradients of 384 KB or more written in place
    assert weight_grad_layout(np.float32, 2048, 32, 512, 100) == ((0, 0), DIRECT)     # LSTM n=512, T=100, B=1
    assert weight_grad_layout(np.float32, 2048, 32, 512, 128) == ((0, 0), DIRECT)
    assert weight_grad_layout(np.float32, 2048, 32, 512, 129) == ((544, 2064), TILED)
    assert weight_grad_layout(np.float32, 2048, 32, 512) == ((544, 2064), TILED)      # rows not known
    assert weight_grad_layout(np.float64, 512, 32, 128, 100) == ((0, 0), DIRECT)      # LSTM n=128: 640 KB
    assert weight_grad_layout(np.float32, 512, 32, 128, 100) == ((160, 528), TILED)   # 320 KB
    assert weight_grad_layout(np.float32, 768, 32, 192, 1) == ((0, 0), DIRECT)        # GRU n=256: 672 KB
    assert weight_grad_layout(np.float32, 256, 32, 256, 100) == ((288, 272), TILED)   # simple cell n=256: 288 KB
    monkeypatch.setattr(base, "DIRECT_LAYOUT", False)      # the benches' switch
    assert weight_grad_layout(np.float32, 2048, 32, 512, 100) == ((544, 2064), TILED)
    monkeypatch.setattr(blas, "_wider", False)
    assert weight_grad_layout(np.float64, 512, 32, 128) == ((160, 520), TURNED)     # LSTM n=128
    assert weight_grad_layout(np.float64, 1536, 32, 512) == ((544, 1544), TURNED)   # GRU n=512
    assert weight_grad_layout(np.float64, 161, 32, 128) == ((160, 169), TURNED)
    assert weight_grad_layout(np.float64, 160, 32, 128) == ((160, 160), JOINED)     # r = m + n
    assert weight_grad_layout(np.float64, 128, 32, 128) == ((128, 160), JOINED)     # simple cell, float64
    assert weight_grad_layout(np.float32, 64, 32, 64) == ((64, 96), SPLIT)          # simple cell, float32
    assert weight_grad_layout(np.float32, 32, 32, 32) == ((32, 64), SPLIT)
    assert weight_grad_layout(np.float32, 65, 32, 128) == ((65, 160), JOINED)       # r > 64
    assert weight_grad_layout(np.float32, 128, 32, 128) == ((128, 160), JOINED)     # simple cell n=128
    assert weight_grad_layout(np.float32, 64, 32, 32) == ((64, 64), JOINED)         # r > n
    assert weight_grad_layout(np.float32, 512, 32, 128) == ((512, 160), JOINED)     # LSTM n=128


@pytest.mark.parametrize("nblocks", [1, 2, 3])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("M,K,N,a_turned,b_turned", [(800, 512, 128, False, False), (128, 800, 32, True, False),
                                                     (100, 32, 2048, False, True), (37, 13, 70, False, False),
                                                     (2, 5, 3, True, True), (131, 200, 65, True, False)])
def test_products_in_the_tiles(nblocks, dtype, rtol, M, K, N, a_turned, b_turned):
    """``kernels._tiles_matmul``: a @ b in the step products' tiles, a read where it lies (a turned view too, as a
    GRU's sums take An^T), b cut into panels (a turned view too: a pair's W_in^T); M not a multiple of the tiles'
    4 rows, N short of a panel, of several and a part; fewer rows than blocks' tiles at M = 2: the float64 product
    (float32: against float64's), every output number written (NaN-filled before), inputs unchanged."""
    from fastrnn.kernels import _tiles_matmul
    from fastrnn.kernels._panels import cut_elements
    rng = np.random.default_rng(M + K + N)
    a = rng.standard_normal((K, M) if a_turned else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if b_turned else (K, N)).astype(dtype)
    a, b = (a.T if a_turned else a), (b.T if b_turned else b)
    before = (a.copy(), b.copy())
    out = np.full((M, N), np.nan, dtype)
    panels = np.full(int(cut_elements(M, nblocks, K, N, np.dtype(dtype).itemsize)), np.nan, dtype)
    kernel = _tiles_matmul.parallel if nblocks > 1 else _tiles_matmul.serial
    kernel(*_tiles_matmul.read_only((a, b, out, panels, nblocks)))
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert not np.isnan(out).any()
    assert np.max(np.abs(out - want)) <= rtol * np.max(np.abs(want))


def test_products_outside_the_kernels_take_the_tiles_where_they_are_wider(monkeypatch):
    """``dispatch.product``: the tiles where they take wider vectors than NumPy's BLAS, from TILES_MATMUL_MIN
    multiply-adds, TILES_MATMUL_MIN_ROWS rows and a whole panel of columns; NumPy's matmul otherwise, and
    always where the tiles are not wider. The same values either way (to rounding)."""
    from fastrnn.kernels import _tiles_matmul
    from fastrnn.kernels._tiles import tile_columns
    from fastrnn.runtime import dispatch
    taken = []
    real_call = dispatch.call
    monkeypatch.setattr(dispatch, "call", lambda kernel, *args: (taken.append(kernel), real_call(kernel, *args))[1])
    rng = np.random.default_rng(3)
    w = int(tile_columns(4))
    M = dispatch.TILES_MATMUL_MIN_ROWS
    K = -(-dispatch.TILES_MATMUL_MIN // (M * w))          # just enough multiply-adds with M rows, w columns
    cases = {(M, K, w): True, (M - 1, K + 9, w): False, (M, K, w - 1): False, (M, K - 1, w): False}
    for wider in (True, False):
        monkeypatch.setattr(blas, "_wider_numpy", wider)
        for (m_, k_, n_), big_enough in cases.items():
            a = rng.standard_normal((m_, k_)).astype(np.float32)
            b = rng.standard_normal((k_, n_)).astype(np.float32)
            out = np.full((m_, n_), np.nan, np.float32)
            taken.clear()
            dispatch.product(a, b, out)
            assert (taken == [_tiles_matmul]) == (wider and big_enough), (m_, k_, n_, wider)
            np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4 * np.abs(a @ b).max())


@pytest.mark.parametrize("cell,dtype", [("gru", np.float64), ("gru", np.float32), ("lstm", np.float32),
                                        ("rnn", np.float64)])
@pytest.mark.parametrize("threads", [1, 2])
def test_vjp_and_bptt_with_their_products_in_the_tiles_match_the_reference(cell, dtype, threads, monkeypatch):
    """Whole ``fastrnn.bptt`` and ``fastrnn.vjp`` calls (dL/dx, a GRU's input-side sums) with every product outside
    the kernels taken in the tiles (held wider than NumPy's BLAS, from any size): the reference's loss and
    gradients, within the tolerance every kernel meets."""
    import fastrnn
    from fastrnn import reference
    from fastrnn.runtime import dispatch
    from conftest import assert_close, assert_grads_close, make_problem
    monkeypatch.setattr(blas, "_wider_numpy", True)
    monkeypatch.setattr(dispatch, "TILES_MATMUL_MIN", 0)
    monkeypatch.setattr(dispatch, "TILES_MATMUL_MIN_ROWS", 2)
    net, x, d, mask, h0 = make_problem(9, T=30, B=3, m=70, n=40, o=3, dtype=dtype, readout="linear", cell=cell)
    with fastrnn.threads(threads):
        L, grads = fastrnn.bptt(net, x, d, mask, h0=h0)
        dh = np.random.default_rng(1).standard_normal((30, 3, 40)).astype(dtype)
        vjp_grads, dx, _ = fastrnn.vjp(net, x, dh, h0)
    L_ref, ref = reference.bptt(net, x, d, mask, h0=h0)
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(grads, ref, dtype)
    ref_grads, ref_dx, _ = reference.vjp(net, x, dh, h0)
    assert_grads_close(vjp_grads, ref_grads, dtype)
    assert_close(dx, ref_dx, dtype, "dx")
