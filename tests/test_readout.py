"""The compiled losses of a units readout and of a linear readout with identity outputs, with mse
(``kernels.readout``), against NumPy's formula (``readout.outputs``, ``readout.loss_and_grad`` and
``readout.inject``), and through gradient calls against the reference."""
import numpy as np
import pytest

import fastrnn
from fastrnn import readout, reference
from fastrnn.kernels.readout import linear_mse, units_mse

from conftest import assert_close, assert_grads_close, make_problem


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("start, o, n", [(0, 3, 7), (2, 3, 7), (4, 3, 7), (0, 7, 7), (5, 32, 128)])
def test_the_compiled_pass_gives_numpys_loss_and_injected_errors(dtype, start, o, n):
    rng = np.random.default_rng(start * 100 + o)
    T, B = 9, 3
    h1 = rng.standard_normal((T, B, n)).astype(dtype)
    d = rng.standard_normal((T, B, o)).astype(dtype)
    mask = (rng.random((T, B, o)) < 0.7).astype(dtype)
    g = np.full((T, B, n), np.nan, dtype=dtype)              # every value overwritten
    L = units_mse(h1, start, d, mask, g)
    y = h1[..., start:start + o]
    expected_L, dr = readout.loss_and_grad(fastrnn.RNN.init(2, n, o, dtype=dtype, seed=0), y, y, d, mask, "mse")
    expected_g = np.zeros_like(g)
    expected_g[..., start:start + o] = dr
    tol = 1e-13 if dtype == np.float64 else 2e-6
    assert abs(L - expected_L) <= tol * abs(expected_L)
    np.testing.assert_array_equal(g, expected_g)            # the same products, elementwise
    e = y - d
    terms = (mask * e * e).astype(np.float64)               # each term in the dtype ...
    assert abs(L - 0.5 * np.sum(terms)) <= 1e-13 * L        # ... summed in float64


@pytest.mark.parametrize("units", [[0, 1, 2], [3, 4], [4, 1, 6]])
def test_a_units_readout_gradient_call_matches_the_reference(units):
    """Consecutive units take the compiled pass, any other order NumPy's; both against the reference."""
    rng = np.random.default_rng(len(units))
    base = fastrnn.RNN.init(3, 7, len(units), dtype=np.float64, seed=1)
    net = fastrnn.RNN(base.W_in, base.W_rec, base.b, out_units=units)
    x = rng.standard_normal((12, 2, 3))
    d = rng.standard_normal((12, 2, len(units)))
    mask = (rng.random((12, 2, len(units))) < 0.8).astype(np.float64)
    L, grads = fastrnn.bptt(net, x, d, mask)
    L_ref, ref = reference.bptt(net, x, d, mask)
    assert abs(L - L_ref) <= 1e-12 * abs(L_ref)
    assert_grads_close(grads, ref, np.float64)


def _numpy_linear(net, W, h1, d, mask):
    r, y = readout.outputs(net, W, h1)
    L, dr = readout.loss_and_grad(net, r, y, d, mask, "mse")
    g = np.empty_like(h1)
    dW_out, db_out = readout.inject(net, W, dr, h1, g)
    return L, g, dW_out, db_out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("T, B, n, o, bias", [(9, 3, 7, 5, True), (9, 3, 7, 5, False), (10, 2, 16, 8, True),
                                              (1, 1, 3, 1, True), (7, 1, 33, 4, False), (25, 8, 128, 8, True),
                                              (13, 7, 100, 19, True), (4, 8, 64, 32, False), (5, 3, 512, 8, True),
                                              (6, 5, 40, 2, True), (3, 3, 128, 1, False)])
def test_the_compiled_linear_pass_gives_numpys_loss_errors_and_readout_gradients(dtype, T, B, n, o, bias):
    """T·B rows that are and are not a multiple of the pass's groups (four rows, a strip's eight), o that is and
    is not a multiple of four or eight, below and above a strip's eight rows, n that is and is not a multiple of a
    strip's columns; both ways of the outputs and of dW_out (``outputs_in_strips``, ``grads_in_strips``: o of 1 and
    2, and float32 at n = 512, four rows at a time); with and without an output bias; the inputs are left as
    they were."""
    rng = np.random.default_rng(T * B + n + o)
    h1 = rng.standard_normal((T, B, n)).astype(dtype)
    d = rng.standard_normal((T, B, o)).astype(dtype)
    mask = (rng.random((T, B, o)) < 0.7).astype(dtype)
    W_out = rng.standard_normal((o, n)).astype(dtype)
    b_out = rng.standard_normal(o).astype(dtype) if bias else np.empty(0, dtype)
    net = fastrnn.RNN.init(2, n, o, readout="linear", dtype=dtype, seed=0)
    W = {"W_out": W_out, "b_out": b_out} if bias else {"W_out": W_out}
    kept = [a.copy() for a in (h1, d, mask, W_out, b_out)]
    g = np.full((T, B, n), np.nan, dtype=dtype)              # every value overwritten
    dW_out = np.full((o, n), np.nan, dtype=dtype)
    db_out = np.full(o if bias else 0, np.nan, dtype=dtype)
    L = linear_mse(h1, W_out, b_out, d, mask, g, dW_out, db_out)
    expected_L, expected_g, expected_dW, expected_db = _numpy_linear(net, W, h1, d, mask)
    tol = 1e-13 if dtype == np.float64 else 2e-6
    assert abs(L - expected_L) <= tol * abs(expected_L)
    assert_close(g, expected_g, dtype, "g")
    assert_close(dW_out, expected_dW, dtype, "dW_out")
    if bias:
        assert_close(db_out, expected_db, dtype, "db_out")
    for before, after in zip(kept, (h1, d, mask, W_out, b_out)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_linear_readout_gradient_call_takes_the_compiled_pass_and_matches_numpys_and_the_reference(
        cell, dtype, monkeypatch):
    net, x, d, mask, h0 = make_problem(3, T=11, B=3, m=4, n=9, o=3, dtype=dtype, readout="linear", cell=cell)
    seen = []
    monkeypatch.setattr(readout, "linear_mse", lambda *a: seen.append(1) or linear_mse(*a))
    L, grads = fastrnn.bptt(net, x, d, mask, h0=h0)
    assert seen, "the compiled pass did not run"
    monkeypatch.setattr(readout, "LINEAR_PASS", False)
    L_np, grads_np = fastrnn.bptt(net, x, d, mask, h0=h0)
    L_ref, ref = reference.bptt(net, x, d, mask, h0=h0)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert abs(L - L_np) <= tol * abs(L_np)
    assert_grads_close(grads, grads_np, dtype)
    assert abs(L - L_ref) <= tol * abs(L_ref)
    assert_grads_close(grads, ref, dtype)


def test_a_readout_without_bias_or_with_other_outputs_keeps_its_own_path():
    """No b_out: the pass runs and returns no db_out; logistic outputs and other losses stay in NumPy."""
    rng = np.random.default_rng(5)
    base = fastrnn.RNN.init(3, 6, 2, readout="linear", seed=2)
    net = fastrnn.RNN(base.W_in, base.W_rec, base.b, W_out=base.W_out, readout="linear")
    x = rng.standard_normal((8, 2, 3))
    d = rng.random((8, 2, 2))
    L, grads = fastrnn.bptt(net, x, d)
    L_ref, ref = reference.bptt(net, x, d)
    assert grads.b_out is None and ref.b_out is None
    assert abs(L - L_ref) <= 1e-12 * abs(L_ref)
    assert_grads_close(grads, ref, np.float64)
    logistic = fastrnn.RNN.init(3, 6, 2, readout="linear", seed=2, out_activation="logistic")
    calls = []
    original = readout.linear_mse
    try:
        readout.linear_mse = lambda *a: calls.append(1) or original(*a)
        fastrnn.bptt(logistic, x, d)
        fastrnn.bptt(base, x, d, loss="bce")
    finally:
        readout.linear_mse = original
    assert not calls
