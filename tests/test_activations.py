"""The kernels' activation functions, in ulp of the array's dtype against the correctly rounded
value (NumPy in extended precision), evaluated under the kernels' own compile options."""
import numpy as np
import pytest
from numba import njit

from fastrnn.kernels._activations import LOGISTIC, TANH, activate, constants, logistic, tanh
from fastrnn.kernels._jit import OPTIONS

KERNEL_OPTIONS = dict(OPTIONS, cache=False)     # fast-math flags as in every kernel (reassociation included)


@njit(**KERNEL_OPTIONS)
def _apply(a, code):
    out = a.copy()
    activate(out, constants(a), code)
    return out


@njit(**KERNEL_OPTIONS)
def _scalar(a, code):
    """The scalar helpers as the LSTM kernels call them, one value at a time into another array."""
    K = constants(a)
    out = np.empty_like(a)
    for k in range(a.shape[0]):
        out[k] = tanh(a[k], K) if code == TANH else logistic(a[k], K)
    return out


def ulp_error(ours, exact, dtype):
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    return np.abs(ours.astype(np.float64) - exact) / spacing


def exact_logistic(v):
    return 1 / (1 + np.exp(-v))


# the formulas of the module docstring: float32 in float32 arithmetic, float64 by a reduction to |r| <= ln2/2
BOUNDS = {(TANH, np.float32): 1.5, (LOGISTIC, np.float32): 2.5,
          (TANH, np.float64): 5.0, (LOGISTIC, np.float64): 4.0}   # 4.0 and 3.0 measured (AVX2)
# where each formula stops following the function (the docstring): the logistic's clamped far tail
LOWEST = {(TANH, np.float32): -100.0, (LOGISTIC, np.float32): -87.3,
          (TANH, np.float64): -40.0, (LOGISTIC, np.float64): -708.0}


def _points(dtype, low):
    rng = np.random.default_rng(7)
    return np.concatenate([np.linspace(low, 40, 400_001), np.linspace(-1e-3, 1e-3, 10_001),
                           np.linspace(-1, 1, 200_001),               # both sides of tanh's switch at 0.55
                           rng.standard_normal(200_000) * 4]).astype(dtype)


@pytest.mark.parametrize("apply", [_apply, _scalar], ids=["row", "scalar"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code, exact", [(TANH, np.tanh), (LOGISTIC, exact_logistic)], ids=["tanh", "logistic"])
def test_activation_error_in_ulp(apply, dtype, code, exact):
    bound = BOUNDS[(code, dtype)]
    a = _points(dtype, LOWEST[(code, dtype)])
    a = a[a >= LOWEST[(code, dtype)]]
    ours = apply(a, code)
    assert ours.dtype == dtype
    ref = np.asarray(exact(a.astype(np.longdouble)), dtype=np.float64)
    err = ulp_error(ours, ref, dtype)
    assert err.max() <= bound, f"max {err.max():.2f} ulp at a = {a[err.argmax()]}"


@pytest.mark.parametrize("code, exact", [(TANH, np.tanh), (LOGISTIC, exact_logistic)], ids=["tanh", "logistic"])
def test_float32_within_numpys_own_float32_error(code, exact):
    """The float32 formulas are as close to the exact value as NumPy's float32 functions, to 1 ulp."""
    a = _points(np.float32, -87.0)
    ref = np.asarray(exact(a.astype(np.longdouble)), dtype=np.float64)
    with np.errstate(over="ignore"):
        numpy_err = ulp_error(exact(a), ref, np.float32).max()
    ours_err = ulp_error(_apply(a, code), ref, np.float32).max()
    assert ours_err <= numpy_err + 1.0, f"ours {ours_err:.2f} ulp, NumPy's float32 {numpy_err:.2f} ulp"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_limits_and_nan(dtype):
    """inf, nan and the far tails: NaN stays NaN (the API's finiteness checks rely on it)."""
    a = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 200.0, -200.0], dtype)
    t = _apply(a, TANH)
    assert np.isnan(t[0]) and t[1] == 1 and t[2] == -1 and t[3] == 0 and t[4] == 0
    assert t[5] == 1 and t[6] == -1
    s = _apply(a, LOGISTIC)
    assert np.isnan(s[0]) and s[1] == 1 and s[3] == 0.5 and s[5] == 1
    floor = 1.3e-38 if dtype == np.float32 else 3.4e-308    # the clamped tails (the module docstring)
    assert 0 < s[2] <= floor
    if dtype == np.float32:
        assert 0 < s[6] <= floor                              # float32 stops following at a = -87.3
    else:
        assert abs(s[6] - np.exp(-200.0)) <= 4 * np.spacing(np.exp(-200.0))     # float64 follows to -708
    np.testing.assert_array_equal(_scalar(a, TANH), t)
    np.testing.assert_array_equal(_scalar(a, LOGISTIC), s)
