"""fastrnn.vjp, forward's named outputs, OnlineRTRL.advance/backward, the Gradients mapping and
state_dict/save/load (SPEC §6b)."""
import re

import numpy as np
import pytest

import fastrnn
from fastrnn import reference as R
from fastrnn.compare import relative_error

from conftest import DTYPES, assert_close, assert_grads_close, make_problem

CELLS = ["rnn", "lstm"]


def vjp_problem(seed, T, B, m, n, dtype=np.float64, cell="rnn", activation="tanh"):
    net, x, _, _, h0 = make_problem(seed, T, B, m, n, 1, dtype, cell=cell, activation=activation)
    rng = np.random.default_rng(seed + 100)
    dh = rng.standard_normal((T, B, n)).astype(dtype)
    dc_T = rng.standard_normal((B, n)).astype(dtype) if cell == "lstm" else None
    return net, x, dh, h0, dc_T


def upstream_loss(net, x, dh, h0, dc_T=None):
    """L = sum_t <dh_t, h_t> (+ <dc_T, c_T>), from the reference forward pass."""
    out = R.forward(net, x, h0)
    L = np.sum(dh * out[0][1:])
    if dc_T is not None:
        L += np.sum(dc_T * out[2][-1])
    return float(L)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("truncation", [None, 3, (4, 2)])
def test_vjp_matches_reference(dtype, cell, truncation):
    net, x, dh, h0, dc_T = vjp_problem(1, 9, 3, 4, 5, dtype, cell)
    grads, dx, ds0 = fastrnn.vjp(net, x, dh, h0, dc_T=dc_T, truncation=truncation)
    final = (None, dc_T) if cell == "lstm" else None
    ref_grads, ref_dx, ref_ds0 = R.vjp(net, x, dh, h0, final, truncation)
    assert_grads_close(grads, ref_grads, dtype, "vjp ")
    assert_close(dx, ref_dx, dtype, "dx")
    for got, want in zip(ds0 if cell == "lstm" else (ds0,), ref_ds0 if cell == "lstm" else (ref_ds0,)):
        assert_close(got, want, dtype, "dstate0")
    assert grads.W_out is None and grads.b_out is None


@pytest.mark.parametrize("activation", ["tanh", "logistic", "identity"])
def test_reference_vjp_matches_finite_differences(activation):
    net, x, dh, h0, _ = vjp_problem(2, 5, 2, 3, 4, activation=activation)
    grads, dx, dh0 = R.vjp(net, x, dh, h0)
    eps = 1e-6
    for name in ("W_in", "W_rec", "b"):
        w = getattr(net, name)
        for idx in [(0,) * w.ndim, tuple(s - 1 for s in w.shape)]:
            old = w[idx]
            w[idx] = old + eps
            up = upstream_loss(net, x, dh, h0)
            w[idx] = old - eps
            down = upstream_loss(net, x, dh, h0)
            w[idx] = old
            assert abs((up - down) / (2 * eps) - grads[name][idx]) < 1e-7, name
    for arr, grad, what in ((x, dx, "x"), (h0, dh0, "h0")):
        idx = (0,) * arr.ndim
        old = arr[idx]
        arr[idx] = old + eps
        up = upstream_loss(net, x, dh, h0)
        arr[idx] = old - eps
        down = upstream_loss(net, x, dh, h0)
        arr[idx] = old
        assert abs((up - down) / (2 * eps) - grad[idx]) < 1e-7, what


def test_reference_lstm_vjp_with_final_cell_state_matches_finite_differences():
    net, x, dh, (h0, c0), dc_T = vjp_problem(3, 5, 2, 3, 4, cell="lstm")
    grads, dx, (dh0, dc0) = R.vjp(net, x, dh, (h0, c0), (None, dc_T))
    eps = 1e-6

    def loss():
        return upstream_loss(net, x, dh, (h0, c0), dc_T)
    for arr, grad, what in ((net.W_hh, grads.W_hh, "W_hh"), (net.b_ih, grads.b_ih, "b_ih"),
                            (x, dx, "x"), (c0, dc0, "c0"), (h0, dh0, "h0")):
        for idx in [(0,) * arr.ndim, tuple(s - 1 for s in arr.shape)]:
            old = arr[idx]
            arr[idx] = old + eps
            up = loss()
            arr[idx] = old - eps
            down = loss()
            arr[idx] = old
            assert abs((up - down) / (2 * eps) - grad[idx]) < 1e-7, what


@pytest.mark.parametrize("cell", CELLS)
def test_vjp_with_the_readout_error_equals_bptt(cell):
    """The loss's errors and an upstream gradient are the same injected error."""
    net, x, d, mask, h0 = make_problem(4, 8, 3, 2, 5, 5, cell=cell)   # units readout: every unit an output
    L, g_bptt = fastrnn.bptt(net, x, d, mask, h0=h0)
    h = fastrnn.forward(net, x, h0).h
    dh = np.where(mask, h[1:] - d, 0.0)
    grads, _, ds0 = fastrnn.vjp(net, x, dh, h0)
    for name in net.recurrent_names:
        assert_close(grads[name], g_bptt[name], np.float64, name)
    assert_close(grads.h0, g_bptt.h0, np.float64, "h0")


@pytest.mark.parametrize("cell", CELLS)
def test_vjp_reuses_the_forward_pass(cell):
    net, x, dh, h0, dc_T = vjp_problem(5, 7, 2, 3, 4, cell=cell)
    out = fastrnn.forward(net, x, h0)
    fresh = fastrnn.vjp(net, x, dh, h0, dc_T=dc_T)
    for states in (out, tuple(out[k] for k in [0] + list(range(2, len(out))))):
        again = fastrnn.vjp(net, x, dh, h0, dc_T=dc_T, states=states)
        assert_grads_close(again[0], fresh[0], np.float64, "states= ")
        assert_close(again[1], fresh[1], np.float64, "dx")
    other_h0 = (h0 + 1) if cell == "rnn" else (h0[0] + 1, h0[1])
    with pytest.raises(fastrnn.OptionError, match=r"states.h\[0\] differs from the initial state"):
        fastrnn.vjp(net, x, dh, other_h0, states=out)


@pytest.mark.parametrize("truncation", [None, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_vjp_checked_equals_vjp_on_the_same_forward_pass(cell, truncation):
    """The bridges' backward (api.vjp_checked: inputs checked once, at the forward call) gives
    vjp's values bit for bit, and still checks the upstream gradient."""
    from fastrnn import api
    net, x, dh, h0, dc_T = vjp_problem(8, 7, 2, 3, 4, cell=cell)
    dh_T = np.random.default_rng(9).standard_normal((2, 4))
    fwd = api.Checked(net, x, h0)
    for input_grad in (True, False):
        got = api.vjp_checked(fwd, dh, dh_T=dh_T, dc_T=dc_T, truncation=truncation, input_grad=input_grad)
        want = fastrnn.vjp(net, x, dh, h0, dh_T=dh_T, dc_T=dc_T, truncation=truncation, input_grad=input_grad)
        state_fields = {f"{name}0" for name in net.state_names}     # vjp's container holds them too
        assert set(got[0]) == set(want[0]) - state_fields
        for name in got[0]:
            np.testing.assert_array_equal(got[0][name], want[0][name], err_msg=name)
        assert (got[1] is None) == (not input_grad)
        if input_grad:
            np.testing.assert_array_equal(got[1], want[1])
        for a, b in zip(got[2] if cell == "lstm" else (got[2],), want[2] if cell == "lstm" else (want[2],)):
            np.testing.assert_array_equal(a, b)
    bad = dh.copy()
    bad[2, 1, 0] = np.nan
    with pytest.raises(fastrnn.NonFiniteError, match="dh holds NaN"):
        api.vjp_checked(fwd, bad)
    with pytest.raises(fastrnn.ShapeError, match="dh has shape"):
        api.vjp_checked(fwd, dh[:-1])


def test_vjp_dh_T_adds_to_the_last_step_and_validate_works():
    net, x, dh, h0, _ = vjp_problem(6, 6, 2, 3, 4)
    extra = np.random.default_rng(0).standard_normal(h0.shape)
    a = fastrnn.vjp(net, x, dh, h0, dh_T=extra, validate=True)
    dh2 = dh.copy()
    dh2[-1] += extra
    b = fastrnn.vjp(net, x, dh2, h0)
    assert_grads_close(a[0], b[0], np.float64)
    assert_close(a[1], b[1], np.float64, "dx")
    with pytest.raises(fastrnn.OptionError, match="dc_T is the gradient of a final state 'c'"):
        fastrnn.vjp(net, x, dh, h0, dc_T=extra)
    with pytest.raises(fastrnn.ShapeError, match=r"dh has shape \(6, 2, 3\) but must be \(T, B, n\)"):
        fastrnn.vjp(net, x, dh[..., :3], h0)
    with pytest.raises(fastrnn.NonFiniteError, match="dh holds NaN"):
        bad = dh.copy()
        bad[0, 0, 0] = np.nan
        fastrnn.vjp(net, x, bad, h0)


def test_vjp_never_modifies_its_inputs():
    net, x, dh, (h0, c0), dc_T = vjp_problem(7, 5, 2, 3, 4, cell="lstm")
    copies = [a.copy() for a in (x, dh, h0, c0, dc_T)]
    fastrnn.vjp(net, x, dh, (h0, c0), dc_T=dc_T, dh_T=dc_T)
    for a, b in zip((x, dh, h0, c0, dc_T), copies):
        np.testing.assert_array_equal(a, b)


def test_forward_names_its_outputs():
    net, x, _, _, (h0, c0) = make_problem(8, 5, 2, 3, 4, 2, cell="lstm")
    out = fastrnn.forward(net, x, (h0, c0))
    h, y, c = out
    assert out.h is h and out.y is y and out.c is c
    np.testing.assert_array_equal(out.h_T, h[-1])
    np.testing.assert_array_equal(out.final[1], c[-1])
    rnn, x2, _, _, h0 = make_problem(9, 5, 2, 3, 4, 2)
    h, y = out2 = fastrnn.forward(rnn, x2, h0)
    np.testing.assert_array_equal(out2.final, h[-1])
    with pytest.raises(AttributeError, match="has no 'c'"):
        out2.c


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_online_advance_backward_sums_to_vjp(cell, dtype):
    net, x, dh, h0, _ = vjp_problem(10, 8, 3, 2, 5, dtype, cell)
    learner = fastrnn.OnlineRTRL(net, batch=3, h0=h0)
    total = None
    h = fastrnn.forward(net, x, h0).h
    for t in range(x.shape[0]):
        h_t = learner.advance(x[t])
        assert_close(h_t, h[t + 1], dtype, f"h_{t + 1}")
        g = learner.backward(dh[t])
        total = g if total is None else total + g
    grads = fastrnn.vjp(net, x, dh, h0)[0]
    for name in net.recurrent_names:
        assert_close(total[name], grads[name], dtype, name)


def test_online_advance_without_backward_counts_as_zero_error():
    net, x, dh, h0, _ = vjp_problem(11, 6, 2, 2, 4)
    learner = fastrnn.OnlineRTRL(net, batch=2, h0=h0)
    total = None
    for t in range(6):
        learner.advance(x[t])
        if t % 2:                                 # every other step has no loss term
            g = learner.backward(dh[t])
            total = g if total is None else total + g
    only = dh.copy()
    only[::2] = 0
    grads = fastrnn.vjp(net, x, only, h0)[0]
    for name in net.recurrent_names:
        assert_close(total[name], grads[name], np.float64, name)
    with pytest.raises(fastrnn.OptionError, match="backward.*follows advance"):
        learner.backward(dh[0])


def test_online_step_returns_the_output():
    net, x, d, mask, h0 = make_problem(12, 5, 2, 3, 4, 2, readout="linear", out_activation="tanh")
    learner = fastrnn.OnlineRTRL(net, batch=2, h0=h0)
    y = fastrnn.forward(net, x, h0).y
    for t in range(5):
        _, _, y_t = learner.step(x[t], d[t])
        assert_close(y_t, y[t], np.float64, f"y_{t}")


def test_gradients_are_a_mapping_that_adds_and_scales():
    net, x, d, mask, h0 = make_problem(13, 5, 2, 3, 4, 2, readout="linear")
    _, g = fastrnn.bptt(net, x, d, mask, h0=h0)
    assert set(dict(g)) == {"W_in", "W_rec", "b", "W_out", "b_out", "h0"}
    assert g["W_rec"] is g.W_rec and len(g) == 6 and list(g) == list(g.keys())
    _, r = fastrnn.rtrl(net, x, d, mask, h0=h0)
    assert "h0" not in r and r.h0 is None
    with pytest.raises(KeyError):
        r["h0"]
    twice = g + g
    np.testing.assert_allclose(twice["W_rec"], 2 * g["W_rec"])
    np.testing.assert_allclose((0.5 * g)["b"], g["b"] * 0.5)
    np.testing.assert_allclose((g / 4)["W_out"], g["W_out"] / 4)
    mixed = g + r
    np.testing.assert_allclose(mixed["h0"], g["h0"])
    with pytest.raises(TypeError):
        g + {"W_in": 1}
    with pytest.raises(AttributeError):
        g.W_ih = None


@pytest.mark.parametrize("cell, kwargs", [
    ("rnn", {"readout": "units", "activation": "relu"}),
    ("rnn", {"readout": "linear", "out_activation": "softmax"}),
    ("lstm", {"readout": "linear", "out_activation": "logistic"}),
    ("lstm", {"readout": "units"}),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_save_and_load_round_trip(tmp_path, cell, kwargs, dtype):
    model = fastrnn.MODELS[cell]
    net = model.init(3, 5, 2, dtype=dtype, seed=3, **kwargs)
    if kwargs.get("readout") == "units":
        net = model.from_state_dict({**net.state_dict(), "out_units": [4, 1]})
    state = net.state_dict()
    assert state["cell"] == cell
    again = model.from_state_dict(state)
    net.save(tmp_path / "net.npz")
    loaded = fastrnn.load(tmp_path / "net.npz")
    for other in (again, loaded):
        assert type(other) is type(net) and repr(other) == repr(net)
        for name, arr in net.params().items():
            np.testing.assert_array_equal(other.params()[name], arr)
            assert other.params()[name].dtype == dtype
    with np.load(tmp_path / "net.npz", allow_pickle=False) as data:     # no pickle needed
        assert "cell" in data.files
    with pytest.raises(fastrnn.OptionError, match="describes a"):
        (fastrnn.LSTM if cell == "rnn" else fastrnn.RNN).from_state_dict(state)


@pytest.mark.parametrize("cell", CELLS)
def test_vjp_without_the_input_gradient_gives_the_same_weight_gradients(cell):
    net, x, dh, h0, dc_T = vjp_problem(8, 6, 2, 3, 4, cell=cell)
    grads, dx, dstate0 = fastrnn.vjp(net, x, dh, h0, dc_T=dc_T, validate=True)
    only, none, dstate0_only = fastrnn.vjp(net, x, dh, h0, dc_T=dc_T, input_grad=False, validate=True)
    assert none is None and dx is not None and np.abs(dx).max() > 0
    assert_grads_close(only, grads, np.float64, "input_grad=False ")
    for a, b in zip(dstate0_only if isinstance(dstate0, tuple) else (dstate0_only,),
                    dstate0 if isinstance(dstate0, tuple) else (dstate0,)):
        assert_close(a, b, np.float64, "dstate0")
    with pytest.raises(fastrnn.OptionError, match="input_grad"):
        fastrnn.vjp(net, x, dh, h0, dc_T=dc_T, input_grad="no")


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_upstream_gradient_is_copied_and_checked_in_one_pass(dtype):
    """``checks.finite_copy`` (the vjp's dL/dh into this thread's scratch array): the same values, and a NaN or
    an infinity found wherever it is (the last element too), named with its index, for C-ordered arrays and
    strided ones (NumPy's copy and check)."""
    from fastrnn import checks
    from fastrnn.errors import NonFiniteError
    rng = np.random.default_rng(8)
    src = rng.standard_normal((5, 3, 7)).astype(dtype)
    for arr in (src, src.transpose(1, 0, 2).copy().transpose(1, 0, 2)):
        out = np.full(arr.shape, 7.0, dtype)
        assert checks.finite_copy("dh", arr, out) is out
        np.testing.assert_array_equal(out, arr)
        for where in ((0, 0, 0), (2, 1, 3), (4, 2, 6)):
            for bad in (np.nan, np.inf, -np.inf):
                broken = arr.copy(order="K")
                broken[where] = bad
                with pytest.raises(NonFiniteError, match=re.escape(f"dh holds NaN or infinity (first at index {where})")):
                    checks.finite_copy("dh", broken, np.empty(arr.shape, dtype))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_vjp_results_outlive_the_upstream_scratch_array(cell):
    """dL/dh goes into a scratch array the next call reuses: results held from one call keep their values
    through the next (another dh, a strided one), each equal to the reference, and dh is never written."""
    net, x, dh, h0, _ = vjp_problem(11, 6, 3, 2, 4, cell=cell)
    dh2 = np.random.default_rng(3).standard_normal((4, 6, 3)).transpose(1, 2, 0)      # strided (T, B, n)
    kept = dh2.copy()
    first = fastrnn.vjp(net, x, dh, h0)
    held = [{k: getattr(first[0], k).copy() for k in first[0].names if getattr(first[0], k) is not None},
            first[1].copy()]
    second = fastrnn.vjp(net, x, dh2, h0)
    np.testing.assert_array_equal(dh2, kept)
    for got, upstream in ((first, dh), (second, dh2)):
        ref_grads, ref_dx, _ = R.vjp(net, x, np.ascontiguousarray(upstream), h0, None, None)
        assert_grads_close(got[0], ref_grads, np.float64)
        assert relative_error(got[1], ref_dx) < 1e-12
    for name in held[0]:
        np.testing.assert_array_equal(getattr(first[0], name), held[0][name])
    np.testing.assert_array_equal(first[1], held[1])
