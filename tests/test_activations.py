"""The kernels' activation functions, in ulp of the array's dtype against the correctly rounded
value (NumPy in float64 and higher)."""
import numpy as np
import pytest
from numba import njit

from fastrnn.kernels._activations import LOGISTIC, TANH, activate, constants


@njit(cache=False)
def _apply(a, code):
    out = a.copy()
    activate(out, constants(a), code)
    return out


def ulp_error(ours, exact, dtype):
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    return np.abs(ours.astype(np.float64) - exact) / spacing


BOUNDS = {(TANH, np.float32): 1.0, (LOGISTIC, np.float32): 1.0,     # correctly rounded or next to it
          (TANH, np.float64): 8.0, (LOGISTIC, np.float64): 128.0}   # the doublings amplify the series' error


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code, exact", [(TANH, np.tanh), (LOGISTIC, lambda v: 1 / (1 + np.exp(-v)))],
                         ids=["tanh", "logistic"])
def test_activation_error_in_ulp(dtype, code, exact):
    bound = BOUNDS[(code, dtype)]
    # the logistic's far negative tail is clamped at a = -38.2 (2.6e-17 instead of less: the docstring)
    low = -38 if code == LOGISTIC else -40
    a = np.concatenate([np.linspace(low, 40, 400_001), np.linspace(-1e-3, 1e-3, 10_001)]).astype(dtype)
    ours = _apply(a, code)
    ref = np.asarray(exact(a.astype(np.longdouble)), dtype=np.float64)
    err = ulp_error(ours, ref, dtype)
    assert err.max() <= bound, f"max {err.max():.2f} ulp at a = {a[err.argmax()]}"
