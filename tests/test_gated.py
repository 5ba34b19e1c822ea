"""The gated cells (LSTM, GRU), one test matrix: kernels against fastrnn.reference, RTRL = BPTT,
online RTRL = RTRL, serial = parallel, finite differences on the reference, validation, errors and
the memory guard."""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference as R
from fastrnn.compare import relative_error

from conftest import DTYPES, assert_close, assert_grads_close, make_problem

CELLS = ["lstm", "gru", "lstmp"]     # lstmp: the LSTM with a projected state, n_cell = 2 n_hidden
RTRL_CELLS = ["lstm", "gru"]
LSTM_READOUTS = [("linear", "mse", "identity"), ("units", "mse", "identity"),
                 ("linear", "xent", "identity"), ("linear", "bce", "logistic"), ("linear", "mse", "softmax")]


def lstm_problem(seed, T, B, m, n, o, dtype=np.float64, readout="linear", loss="mse",
                 out_activation="identity", masked=True, cell="lstm"):
    return make_problem(seed, T, B, m, n, o, dtype, readout, loss, out_activation, masked=masked, cell=cell)


def initial_states(net, state):
    """{"h0": ..., ("c0": ...)} from what make_problem returned."""
    values = state if isinstance(state, tuple) else (state,)
    return {f"{s}0": v for s, v in zip(net.state_names, values)}


def without_initial_states(net, grads):
    for s in net.state_names:
        setattr(grads, f"{s}0", None)
    return grads


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (7, 1, 3, 5, 2), (5, 4, 2, 6, 3)])
def test_forward_matches_reference(cell, dtype, shape):
    net, x, _, _, state = lstm_problem(1, *shape, dtype=dtype, cell=cell)
    out = fastrnn.forward(net, x, state)
    ref = R.forward(net, x, state)
    assert len(out) == len(ref) == 1 + len(net.state_names)
    assert out.h.shape == (shape[0] + 1, shape[1], shape[3])
    for name, a, b in zip(["h", "y"] + list(net.state_names[1:]), out, ref):
        assert_close(a, b, dtype, name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("readout,loss,out_act", LSTM_READOUTS)
@pytest.mark.parametrize("truncation", [None, 1, 3, (5, 2)])
def test_bptt_matches_reference(cell, dtype, readout, loss, out_act, truncation):
    net, x, d, mask, state = lstm_problem(2, 9, 3, 3, 5, 2, dtype, readout, loss, out_act, cell=cell)
    L, g = fastrnn.bptt(net, x, d, mask, loss, truncation, state)
    L_ref, g_ref = R.bptt(net, x, d, mask, loss, truncation, state)
    assert type(g) is net.gradients_class
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(g, g_ref, dtype)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (8, 1, 2, 4, 1), (6, 2, 1, 1, 1)])
def test_bptt_edge_shapes(cell, shape):
    net, x, d, mask, state = lstm_problem(3, *shape, cell=cell)
    L, g = fastrnn.bptt(net, x, d, mask, h0=state)
    assert_grads_close(g, R.bptt(net, x, d, mask, "mse", None, state)[1], np.float64)


@pytest.mark.parametrize("cell", RTRL_CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [1, 3])
def test_rtrl_matches_reference(cell, dtype, B):
    net, x, d, mask, state = lstm_problem(4, 7, B, 3, 5, 2, dtype, cell=cell)
    L, g = fastrnn.rtrl(net, x, d, mask, h0=state)
    L_ref, g_ref = R.rtrl(net, x, d, mask, "mse", state)
    assert all(getattr(g, f"{s}0") is None for s in net.state_names)
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(g, g_ref, dtype)


@pytest.mark.parametrize("cell", RTRL_CELLS)
@pytest.mark.parametrize("readout,loss,out_act", LSTM_READOUTS)
@pytest.mark.parametrize("B,masked", [(1, False), (3, True)])
def test_rtrl_equals_bptt(cell, readout, loss, out_act, B, masked):
    net, x, d, mask, state = lstm_problem(5, 10, B, 3, 6, 3, np.float64, readout, loss, out_act, masked, cell=cell)
    L_r, g_r = fastrnn.rtrl(net, x, d, mask, loss, h0=state)
    L_b, g_b = fastrnn.bptt(net, x, d, mask, loss, None, state)
    without_initial_states(net, g_b)
    assert_close(L_r, L_b, np.float64, "loss")
    assert_grads_close(g_r, g_b, np.float64, "rtrl vs bptt ")


@pytest.mark.parametrize("cell", RTRL_CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_online_sum_equals_sequence_gradient(cell, dtype):
    net, x, d, mask, state = lstm_problem(6, 8, 2, 3, 5, 2, dtype, cell=cell)
    L_seq, g_seq = fastrnn.rtrl(net, x, d, mask, h0=state)
    learner = fastrnn.OnlineRTRL(net, batch=2, h0=state)
    total, L_sum = None, 0.0
    for t in range(8):
        L_t, g_t, _ = learner.step(x[t], d[t], mask[t])
        L_sum += L_t
        total = g_t if total is None else total + g_t
    assert_close(L_sum, L_seq, dtype, "loss")
    assert_grads_close(total, g_seq, dtype, "online sum ")
    out = fastrnn.forward(net, x, state)
    for name in net.state_names:
        assert_close(getattr(learner, name), getattr(out, f"{name}_T"), dtype, f"learner.{name}")


@pytest.mark.parametrize("cell", RTRL_CELLS)
def test_serial_and_parallel_agree(cell, parallel_kernels):
    net, x, d, mask, state = lstm_problem(7, 9, 4, 3, 7, 2, cell=cell)
    with fastrnn.threads(1):
        _, g1 = fastrnn.bptt(net, x, d, mask, h0=state)
        _, r1 = fastrnn.rtrl(net, x, d, mask, h0=state)
    _, g2 = fastrnn.bptt(net, x, d, mask, h0=state)
    _, r2 = fastrnn.rtrl(net, x, d, mask, h0=state)
    assert_grads_close(g1, g2, np.float64, "bptt serial vs parallel ")
    assert_grads_close(r1, r2, np.float64, "rtrl serial vs parallel ")
    assert_grads_close(r2, R.rtrl(net, x, d, mask, "mse", state)[1], np.float64, "rtrl parallel vs reference ")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("readout,loss,out_act", LSTM_READOUTS[:4])
def test_reference_matches_finite_differences(cell, readout, loss, out_act):
    net, x, d, mask, state = lstm_problem(8, 5, 2, 2, 3, 2, np.float64, readout, loss, out_act, cell=cell)
    _, g = R.bptt(net, x, d, mask, loss, None, state)
    for name, arr in dict(net.params(), **initial_states(net, state)).items():
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + 1e-6
            up = R.total_loss(net, x, d, mask, loss, state)
            arr[idx] = old - 1e-6
            down = R.total_loss(net, x, d, mask, loss, state)
            arr[idx] = old
            fd[idx] = (up - down) / 2e-6
        err = relative_error(getattr(g, name), fd)
        assert err < 1e-6, f"reference d{name} vs finite differences: rel err {err:.3g}"


def test_validate_and_errors():
    net, x, d, mask, state = lstm_problem(9, 5, 2, 3, 4, 2)
    fastrnn.bptt(net, x, d, mask, h0=state, validate=True)
    fastrnn.rtrl(net, x, d, mask, h0=state, validate=True)
    with pytest.raises(fastrnn.ShapeError, match=r"c0 has shape \(3, 4\) but must be \(B, n\) = \(2, 4\)"):
        fastrnn.bptt(net, x, d, h0=(state[0], np.zeros((3, 4))))
    with pytest.raises(fastrnn.OptionError, match=r"pair \(h0, c0\); got 3 items"):
        fastrnn.bptt(net, x, d, h0=(state[0], state[1], state[1]))
    with pytest.raises(fastrnn.OptionError, match="teacher_forcing=True is defined for the simple cell"):
        fastrnn.bptt(net, x, d, teacher_forcing=True)
    with pytest.raises(fastrnn.ShapeError, match=r"W_hh has shape \(4, 2\) but must be \(4n, n\) = \(8, 2\)"):
        fastrnn.LSTM(np.zeros((8, 1)), np.zeros((4, 2)), np.zeros(8), np.zeros(8), readout="units")
    with pytest.raises(fastrnn.ShapeError, match=r"b_hh has shape \(4,\)"):
        fastrnn.LSTM(np.zeros((8, 1)), np.zeros((8, 2)), np.zeros(8), np.zeros(4), readout="units")


@pytest.mark.parametrize("cell, needs", [("lstm", "256.2 GiB"), ("gru", "96.1 GiB")])
def test_memory_guard(cell, needs):
    net = fastrnn.MODELS[cell].init(1, 2048, 1, readout="units", dtype=np.float32)
    x = np.zeros((2, 1, 1), np.float32)
    name = cell.upper()
    with pytest.raises(fastrnn.MemoryBudgetError, match=rf"{name} RTRL with n=2048, m=1, B=1 in float32 .* needs {needs}"):
        fastrnn.rtrl(net, x, x)
    with pytest.raises(fastrnn.MemoryBudgetError, match=rf"{name} RTRL"):
        fastrnn.OnlineRTRL(net)


def test_gru_validate_and_errors():
    net, x, d, mask, h0 = lstm_problem(10, 5, 2, 3, 4, 2, cell="gru")
    fastrnn.bptt(net, x, d, mask, h0=h0, validate=True)
    fastrnn.rtrl(net, x, d, mask, h0=h0, validate=True)
    with pytest.raises(fastrnn.OptionError, match="teacher_forcing=True is defined for the simple cell"):
        fastrnn.bptt(net, x, d, teacher_forcing=True)
    with pytest.raises(fastrnn.OptionError, match=r"dc_T is the gradient of a final state 'c'"):
        fastrnn.vjp(net, x, np.ones((5, 2, 4)), dc_T=np.ones((2, 4)))
    with pytest.raises(fastrnn.ShapeError, match=r"W_hh has shape \(4, 2\) but must be \(3n, n\) = \(6, 2\)"):
        fastrnn.GRU(np.zeros((6, 1)), np.zeros((4, 2)), np.zeros(6), np.zeros(6), readout="units")
    with pytest.raises(fastrnn.ShapeError, match=r"b_ih has shape \(4,\)"):
        fastrnn.GRU(np.zeros((6, 1)), np.zeros((6, 2)), np.zeros(4), np.zeros(6), readout="units")


def test_gru_b_in_and_b_hn_are_not_interchangeable():
    """Moving bias from b_hn to b_in changes the output (b_hn sits inside the reset product),
    while moving it between b_ir and b_hr does not."""
    net, x, *_ = lstm_problem(11, 6, 2, 3, 4, 2, cell="gru")
    n = 4
    h = fastrnn.forward(net, x).h
    moved = net.copy()
    moved.b_ih[:n] += 0.3
    moved.b_hh[:n] -= 0.3
    assert_close(fastrnn.forward(moved, x).h, h, np.float64, "r block moved")
    moved = net.copy()
    moved.b_ih[2 * n:] += 0.3
    moved.b_hh[2 * n:] -= 0.3
    assert relative_error(fastrnn.forward(moved, x).h, h) > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_gru_forward_kernel_keeps_its_input_projection_in_the_callers_buffer(dtype):
    """The GRU's forward kernel writes x W_ih^T into the caller's buffer of T·B rows (kept from call to call by
    the driver), in the compiled tiles (``split`` TILES) and through the BLAS, and into an array of its own where
    the buffer given is smaller, leaving that one unwritten: the same gates and states as the reference each
    way, and the inputs untouched."""
    from fastrnn.kernels import _gru_forward
    from fastrnn.kernels._tiles import TILES
    T, B, m, n = 7, 5, 3, 6
    net, x, _, _, h0 = lstm_problem(12, T, B, m, n, 2, dtype=dtype, cell="gru")
    gates_ref, h_ref = R.gru.run(net, x, h0)
    weights = [np.ascontiguousarray(a) for a in (net.W_ih, net.W_hh, net.b_ih, net.b_hh)]
    before = [a.copy() for a in (x, *weights)]
    panels = np.empty(0, dtype)
    for split, rows in ((TILES, T * B), (1, T * B), (1, 0), (TILES, 2)):
        h = np.full((T + 1, B, n), np.nan, dtype)
        h[0] = h0
        gates = np.full((T, B, 4 * n), np.nan, dtype)
        proj = np.full((rows, 3 * n), 7.0, dtype)
        _gru_forward.serial(x, *weights, h, gates, proj, panels, 1, split)
        assert_close(gates, gates_ref, dtype, f"gates, split={split}, {rows} buffer rows")
        assert_close(h, h_ref, dtype, f"h, split={split}, {rows} buffer rows")
        if rows == T * B:
            assert_close(proj, x.reshape(T * B, m) @ net.W_ih.T, dtype, f"split={split}: the projection's buffer")
        else:
            assert np.all(proj == 7.0), f"split={split}: a buffer of {rows} rows was written"
    for a, b in zip((x, *weights), before):
        assert np.array_equal(a, b)


def test_projected_lstm_serial_and_parallel_agree_and_refuses_rtrl(parallel_kernels):
    net, x, d, mask, state = lstm_problem(7, 9, 4, 3, 3, 2, cell="lstmp")
    with fastrnn.threads(1):
        _, g1 = fastrnn.bptt(net, x, d, mask, h0=state)
    _, g2 = fastrnn.bptt(net, x, d, mask, h0=state)
    assert_grads_close(g1, g2, np.float64, "bptt serial vs parallel ")
    assert_grads_close(g2, R.bptt(net, x, d, mask, "mse", None, state)[1], np.float64, "bptt vs reference ")
    with pytest.raises(fastrnn.OptionError, match="rtrl is not available for LSTMP: .*fastrnn.bptt"):
        fastrnn.rtrl(net, x, d)
    with pytest.raises(fastrnn.OptionError, match="OnlineRTRL is not available for LSTMP"):
        fastrnn.OnlineRTRL(net)
    with pytest.raises(fastrnn.ShapeError, match=r"c0 has shape \(4, 3\) but must be \(B, n_cell\) = \(4, 6\)"):
        fastrnn.bptt(net, x, d, h0=(state[0], state[0]))
    with pytest.raises(fastrnn.ShapeError, match=r"W_hr has shape \(3, 3\) but must be \(p, n\) with 0 < p < n"):
        fastrnn.LSTMP(net.W_ih, net.W_hh, net.b_ih, net.b_hh, np.zeros((3, 3)))
    loaded = fastrnn.MODELS["lstmp"].from_state_dict(net.state_dict())
    assert type(loaded) is fastrnn.LSTMP and loaded.n_cell == 6 and np.array_equal(loaded.W_hr, net.W_hr)
