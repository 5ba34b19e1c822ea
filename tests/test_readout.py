"""The compiled loss of a units readout with mse (``kernels.readout``) against NumPy's formula
(``readout.loss_and_grad`` and ``readout.inject``), and through a gradient call against the reference."""
import numpy as np
import pytest

import fastrnn
from fastrnn import readout, reference
from fastrnn.kernels.readout import units_mse

from conftest import assert_grads_close


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
