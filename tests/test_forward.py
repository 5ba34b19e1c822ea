"""fastrnn.forward (the forward kernel) against fastrnn.reference.forward."""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference as R

from conftest import DTYPES, READOUT_LOSSES, assert_close, make_problem

SHAPES = [(1, 1, 1, 1, 1), (7, 1, 3, 5, 2), (5, 4, 2, 6, 3), (3, 5, 1, 1, 1)]   # T, B, m, n, o


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", fastrnn.ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference(dtype, activation, shape):
    T, B, m, n, o = shape
    net, x, _, _, h0 = make_problem(1, T, B, m, n, o, dtype, activation=activation, scale=1.5)
    h, y = fastrnn.forward(net, x, h0)
    h_ref, y_ref = R.forward(net, x, h0)
    assert h.dtype == y.dtype == np.dtype(dtype)
    assert h.shape == (T + 1, B, n) and y.shape == (T, B, o)
    assert_close(h, h_ref, dtype, "h")
    assert_close(y, y_ref, dtype, "y")


@pytest.mark.parametrize("readout,_loss,out_act", [c for c in READOUT_LOSSES if c[1] == "mse"])
def test_forward_readouts(readout, _loss, out_act):
    net, x, _, _, h0 = make_problem(2, 6, 3, 2, 5, 3, readout=readout, out_activation=out_act)
    h, y = fastrnn.forward(net, x, h0)
    h_ref, y_ref = R.forward(net, x, h0)
    assert_close(y, y_ref, np.float64, "y")
    if out_act == "softmax":
        np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-12)


def test_forward_default_h0_is_zero():
    net, x, _, _, _ = make_problem(3, 4, 2, 3, 4, 2)
    h, _ = fastrnn.forward(net, x)
    assert not h[0].any()
    assert_close(h, R.forward(net, x, np.zeros((2, 4)))[0], np.float64, "h")


def test_units_readout_with_chosen_units():
    rng = np.random.default_rng(0)
    n = 5
    net = fastrnn.RNN(rng.standard_normal((n, 2)) * 0.5, rng.standard_normal((n, n)) * 0.4,
                      rng.standard_normal(n) * 0.1, out_units=[4, 1])
    x = rng.standard_normal((6, 2, 2))
    h, y = fastrnn.forward(net, x)
    np.testing.assert_array_equal(y, h[1:][:, :, [4, 1]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_and_parallel_forward_agree(dtype, parallel_kernels):
    net, x, _, _, h0 = make_problem(4, 20, 7, 3, 9, 2, dtype)
    with fastrnn.threads(1):
        h1, y1 = fastrnn.forward(net, x, h0)
    h2, y2 = fastrnn.forward(net, x, h0)
    assert_close(h1, h2, dtype, "serial vs parallel h")
    assert_close(h1, R.forward(net, x, h0)[0], dtype, "h")
