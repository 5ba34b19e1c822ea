"""fastrnn.bptt (forward + BPTT kernels) against fastrnn.reference.bptt."""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference as R

from conftest import DTYPES, READOUT_LOSSES, assert_close, assert_grads_close, make_problem

TRUNCATIONS = [None, 1, 3, (4, 2), (5, 1), 100]


def check(net, x, d, mask, loss, trunc, h0, dtype, tf=False):
    L, grads = fastrnn.bptt(net, x, d, mask, loss, trunc, h0, teacher_forcing=tf)
    L_ref, ref = R.bptt(net, x, d, mask, loss, trunc, h0, teacher_forcing=tf)
    assert isinstance(L, float)
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(grads, ref, dtype)
    return L, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", fastrnn.ACTIVATIONS)
@pytest.mark.parametrize("readout,loss,out_act", READOUT_LOSSES)
def test_bptt_matches_reference(dtype, activation, readout, loss, out_act):
    net, x, d, mask, h0 = make_problem(11, 9, 3, 4, 6, 3, dtype, readout, loss, out_act, activation)
    check(net, x, d, mask, loss, None, h0, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("truncation", TRUNCATIONS)
@pytest.mark.parametrize("B", [1, 4])
def test_truncated_bptt_matches_reference(dtype, truncation, B):
    net, x, d, mask, h0 = make_problem(12, 11, B, 3, 5, 2, dtype, "linear", "mse", "tanh")
    check(net, x, d, mask, "mse", truncation, h0, dtype)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (1, 3, 2, 4, 2), (8, 1, 1, 3, 1), (6, 2, 5, 1, 1)])
@pytest.mark.parametrize("masked", [False, True])
def test_edge_shapes(shape, masked):
    T, B, m, n, o = shape
    net, x, d, mask, h0 = make_problem(13, T, B, m, n, o, masked=masked)
    check(net, x, d, mask, "mse", None, h0, np.float64)
    check(net, x, d, mask, "mse", 1, h0, np.float64)


def test_mask_of_shape_T_B_covers_all_outputs():
    net, x, d, _, h0 = make_problem(14, 7, 3, 2, 5, 3)
    mask2 = np.random.default_rng(0).random((7, 3)) < 0.5
    L2, g2 = fastrnn.bptt(net, x, d, mask2, h0=h0)
    L3, g3 = fastrnn.bptt(net, x, d, np.repeat(mask2[:, :, None], 3, axis=2), h0=h0)
    assert L2 == L3
    assert_grads_close(g2, g3, np.float64)


def test_masked_targets_are_ignored_even_if_nan():
    net, x, d, mask, h0 = make_problem(15, 7, 2, 2, 4, 2)
    d_nan = d.copy()
    d_nan[~mask] = np.nan
    L1, g1 = fastrnn.bptt(net, x, d, mask, h0=h0)
    L2, g2 = fastrnn.bptt(net, x, d_nan, mask, h0=h0)
    assert L1 == L2
    assert_grads_close(g2, g1, np.float64)
    assert np.isnan(d_nan[~mask]).all()   # the caller's array is untouched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("truncation", [None, 2, (4, 1)])
@pytest.mark.parametrize("B", [1, 3])
def test_teacher_forcing_matches_reference(dtype, truncation, B):
    net, x, d, mask, h0 = make_problem(16, 10, B, 2, 6, 2, dtype)
    L, g = check(net, x, d, mask, "mse", truncation, h0, dtype, tf=True)
    L_free, _ = fastrnn.bptt(net, x, d, mask, "mse", truncation, h0)
    assert L != L_free


@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_and_parallel_bptt_agree(dtype, parallel_kernels):
    net, x, d, mask, h0 = make_problem(17, 30, 6, 3, 8, 2, dtype)
    with fastrnn.threads(1):
        L1, g1 = fastrnn.bptt(net, x, d, mask, h0=h0, truncation=(5, 2))
    L2, g2 = fastrnn.bptt(net, x, d, mask, h0=h0, truncation=(5, 2))
    assert_close(L1, L2, dtype, "loss")
    assert_grads_close(g1, g2, dtype, "serial vs parallel ")


def test_longer_sequence_float64():
    net, x, d, mask, h0 = make_problem(18, 300, 2, 4, 16, 4, scale=1.2)
    check(net, x, d, mask, "mse", None, h0, np.float64)


def test_validate_true_passes_and_returns_same(small):
    net, x, d, mask, h0 = small
    L1, g1 = fastrnn.bptt(net, x, d, mask, h0=h0, validate=True)
    L2, g2 = fastrnn.bptt(net, x, d, mask, h0=h0)
    assert L1 == L2
    assert_grads_close(g1, g2, np.float64)


def _corrupted_reference(monkeypatch, field):
    real = R.bptt

    def wrong(*args, **kwargs):
        L, g = real(*args, **kwargs)
        getattr(g, field)[0] += 1.0
        return L, g
    monkeypatch.setattr(R, "bptt", wrong)


def test_validate_true_raises_naming_the_field(small, monkeypatch):
    net, x, d, mask, h0 = small
    _corrupted_reference(monkeypatch, "W_rec")
    with pytest.raises(fastrnn.ValidationError, match=r"W_rec max rel err"):
        fastrnn.bptt(net, x, d, mask, h0=h0, validate=True)
    fastrnn.bptt(net, x, d, mask, h0=h0)    # not validating: no reference call, no error


def test_validate_environment_variable(small, monkeypatch):
    net, x, d, mask, h0 = small
    _corrupted_reference(monkeypatch, "b")
    monkeypatch.setenv("FASTRNN_VALIDATE", "1")
    with pytest.raises(fastrnn.ValidationError, match=r"\bb max rel err"):
        fastrnn.bptt(net, x, d, mask, h0=h0)
    monkeypatch.setenv("FASTRNN_VALIDATE", "0")
    fastrnn.bptt(net, x, d, mask, h0=h0)


def test_gradient_step_lowers_the_loss():
    net, x, d, mask, h0 = make_problem(19, 20, 4, 3, 8, 2)
    L0, g = fastrnn.bptt(net, x, d, mask, h0=h0)
    for name, arr in net.params().items():
        arr -= 1e-3 * getattr(g, name)
    L1, _ = fastrnn.bptt(net, x, d, mask, h0=h0)
    assert L1 < L0


def test_scratch_buffers_are_reused_but_never_returned():
    from fastrnn.runtime import workspace as _workspace
    net, x, d, mask, h0 = make_problem(20, 12, 3, 2, 5, 2)
    L1, g1 = fastrnn.bptt(net, x, d, mask, h0=h0)
    held = {k: v for k, v in _workspace._local.arrays.items()}
    L2, g2 = fastrnn.bptt(net, x, d, mask, h0=h0)
    assert all(_workspace._local.arrays[k] is v for k, v in held.items()), "same-shape calls reuse scratch"
    for _, arr in g1.items():
        assert not any(np.shares_memory(arr, s) for s in held.values()), "a gradient aliases scratch"
    assert L1 == L2
    assert_grads_close(g2, g1, np.float64)
    h, _ = fastrnn.forward(net, x, h0)
    assert not any(np.shares_memory(h, s) for s in held.values())
    big = _workspace.scratch("test big", (_workspace.KEEP_BYTES // 8 + 1,), np.float64)
    assert big.nbytes > _workspace.KEEP_BYTES and "test big" not in _workspace._local.arrays


@pytest.mark.parametrize("loss", ["mse", "xent", "bce"])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_units_readouts_read_by_slice_or_by_index_agree_with_the_reference(cell, loss):
    """Consecutive ascending output units (a slice of the states) and any other choice (by index)
    give the reference's loss and gradients, also when the injected-error scratch still holds
    another call's errors (every unit outside the outputs must be written as zero)."""
    for units in ([4, 1], [0, 1, 2], [2, 3, 4], [5], [3, 2, 1]):
        net, x, d, mask, h0 = make_problem(5, 7, 3, 2, 6, len(units), loss=loss, cell=cell)
        net = type(net).from_state_dict({**net.state_dict(), "out_units": units})
        assert list(net.out_units) == units
        L, g = fastrnn.bptt(net, x, d, mask, loss=loss, h0=h0)
        L_ref, g_ref = R.bptt(net, x, d, mask, loss, None, h0)
        assert_close(L, L_ref, np.float64, f"loss for out_units={units}")
        assert_grads_close(g, g_ref, np.float64, f"out_units={units} ")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_batch_of_one_keeps_no_panel_buffer_where_the_weights_are_used_as_stored(cell):
    """At B = 1 on one thread the forward pass multiplies by W^T (a view of W) and the sweep by W itself
    (the axpy form, W over 64 KB; below 8 steps, as here, not in row tiles, which need a copy): neither
    copies W, so the thread keeps no buffer for it. The gradients agree with the same call on the
    default threads and with the reference."""
    import threading
    from fastrnn.runtime import workspace as _workspace
    net, x, d, _, _ = make_problem(3, 6, 1, 2, 128, 2, np.float32, cell=cell, masked=False)
    assert net.W_hh.nbytes > 64 * 1024
    seen = {}

    def run():
        with fastrnn.threads(1):
            seen["one"] = fastrnn.bptt(net, x, d)
        seen["buffer"] = _workspace._local.arrays["weight panels"].shape[0]

    worker = threading.Thread(target=run)          # a thread of its own: a fresh workspace
    worker.start()
    worker.join()
    assert seen["buffer"] == 0
    L, g = fastrnn.bptt(net, x, d)
    assert_close(L, seen["one"][0], np.float32, "loss")
    assert_grads_close(g, seen["one"][1], np.float32)
    L_ref, g_ref = R.bptt(net, x, d)
    assert_close(seen["one"][0], L_ref, np.float32, "loss against the reference")
    assert_grads_close(seen["one"][1], g_ref, np.float32, "against the reference")


def test_the_panel_buffer_grows_to_the_largest_size_and_is_shared_by_calls_that_alternate():
    """The forward pass and the sweep of a call ask for panel buffers of different sizes: one buffer,
    grown once, serves both (no fresh memory per call); another dtype or a size above the keep limit
    is a fresh array, not kept."""
    from fastrnn.runtime import workspace as _workspace
    a = _workspace.at_least("test panels", 100, np.float32)
    b = _workspace.at_least("test panels", 300, np.float32)
    c = _workspace.at_least("test panels", 100, np.float32)
    d = _workspace.at_least("test panels", 300, np.float32)
    assert (a.shape, b.shape, c.shape, d.shape) == ((100,), (300,), (100,), (300,))
    assert np.shares_memory(b, c) and np.shares_memory(b, d) and not np.shares_memory(a, b)
    e = _workspace.at_least("test panels", 50, np.float64)
    assert e.dtype == np.float64 and not np.shares_memory(e, d)
    huge = _workspace.at_least("test huge panels", _workspace.KEEP_BYTES // 8 + 1, np.float64)
    assert huge.nbytes > _workspace.KEEP_BYTES and "test huge panels" not in _workspace._local.arrays


@pytest.mark.parametrize("cell,dtype", [("lstm", np.float32), ("gru", np.float32), ("rnn", np.float64)])
def test_a_batch_of_one_in_row_tiles_cuts_them_into_the_threads_buffer(cell, dtype):
    """Over 8 steps or more, with 64-512 KB of recurrent weights and 128 units, the same call takes
    its products in row tiles (``kernels._tiles``), the sweep's and the forward pass's alike
    (``_panels.stored_rows``): the thread's buffer holds their panels (no fresh copy a call), and the
    states and gradients match the reference."""
    import threading
    from fastrnn.kernels._panels import cut_elements
    from fastrnn.kernels._tiles import ROW_TILE_BYTES
    from fastrnn.runtime import workspace as _workspace
    net, x, d, _, _ = make_problem(3, 12, 1, 2, 128, 2, dtype, cell=cell, masked=False)
    W = net.W_rec if cell == "rnn" else net.W_hh
    w = ROW_TILE_BYTES // np.dtype(dtype).itemsize
    seen = {}

    def run():
        with fastrnn.threads(1):
            seen["forward"] = fastrnn.forward(net, x)
            buf = _workspace._local.arrays["weight panels"]
            seen["forward buffer"] = buf.shape[0]
            seen["first panel"] = buf[:128 * w].reshape(128, w).copy()
            seen["one"] = fastrnn.bptt(net, x, d)
        seen["buffer"] = _workspace._local.arrays["weight panels"].shape[0]

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    K, N = W.shape
    size = np.dtype(dtype).itemsize
    assert seen["forward buffer"] == cut_elements(1, 1, N, K, size) > 0
    np.testing.assert_array_equal(seen["first panel"], W[:w].T)     # the forward's panels of W^T, cut there
    assert seen["buffer"] == max(cut_elements(1, 1, K, N, size), cut_elements(1, 1, N, K, size))
    h_ref = R.forward(net, x)[0]
    assert_close(seen["forward"].h, h_ref, dtype, "forward states against the reference")
    L_ref, g_ref = R.bptt(net, x, d)
    assert_close(seen["one"][0], L_ref, dtype, "loss against the reference")
    assert_grads_close(seen["one"][1], g_ref, dtype, "against the reference")


@pytest.mark.parametrize("dtype, n", [(np.float64, 128), (np.float32, 160)])
def test_a_long_batch_of_one_whose_sweep_asks_for_its_rows_ahead_matches_the_reference(dtype, n):
    """B = 1 in row tiles with g, h and D beyond ``PREFETCH_MIN_BYTES``: the sweep asks for each step's
    rows a step ahead (``_rows.prefetch_rows``), which must change nothing but the time."""
    from fastrnn.kernels import bptt as kernels_bptt
    from fastrnn.kernels._tiles import row_tiles_pay
    T = 1000
    size = np.dtype(dtype).itemsize
    assert 3 * T * n * size > kernels_bptt.PREFETCH_MIN_BYTES and row_tiles_pay(n * n * size, T)
    net, x, d, mask, h0 = make_problem(7, T, 1, 4, n, 5, dtype=dtype, masked=True)
    with fastrnn.threads(1):
        L, grads = fastrnn.bptt(net, x, d, mask, h0=h0)
    L_ref, ref = R.bptt(net, x, d, mask, h0=h0)
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(grads, ref, dtype)


@pytest.mark.parametrize("cell, n, dtype", [("lstm", 48, np.float64), ("gru", 64, np.float64),
                                           ("lstm", 90, np.float32)])
@pytest.mark.parametrize("truncation", [None, (60, 20)])
def test_a_long_batch_of_one_whose_gated_sweep_asks_for_its_rows_ahead_matches_the_reference(cell, n, dtype,
                                                                                                 truncation):
    """The gated cells' sweeps ask for the next step's rows ahead as the simple cell's does (LSTM: gates, g, h,
    c and D, 11 n numbers a step; GRU: gates, g, h, D and An, 10 n), exact and in overlapping sweeps."""
    from fastrnn.kernels import bptt as kernels_bptt
    from fastrnn.kernels._tiles import row_tiles_pay
    T = 1000
    size = np.dtype(dtype).itemsize
    gates, per_step = (4, 11) if cell == "lstm" else (3, 10)
    assert per_step * T * n * size > kernels_bptt.PREFETCH_MIN_BYTES and row_tiles_pay(gates * n * n * size, T)
    net, x, d, mask, h0 = make_problem(8, T, 1, 4, n, 5, dtype=dtype, masked=True, cell=cell)
    with fastrnn.threads(1):
        L, grads = fastrnn.bptt(net, x, d, mask, h0=h0, truncation=truncation)
    L_ref, ref = R.bptt(net, x, d, mask, h0=h0, truncation=truncation)
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(grads, ref, dtype)
