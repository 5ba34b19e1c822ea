"""Activation functions by integer code, written so that LLVM vectorises them.

``ACTIVATIONS`` names the activations; a name's index is its kernel code. It is the only place
that order is written: ``fastrnn.models`` and the drivers read it from here.

libm's tanh and exp are scalar calls (about 15 ns each here); these are plain arithmetic on SIMD
lanes (about 3 ns per float64, measured on 128-unit rows). Measured against the correctly rounded
value: float32 within 1 ulp; float64 tanh within 8 ulp, the logistic within 128 ulp in its far
negative tail (relative error below 3e-14 everywhere):

    expm1(y), 0 <= y <= 38.2: Taylor series of degree 16 at u = y/64 (|u| < 0.6, remainder
        below 1e-17), then six exact doublings expm1(2u) = expm1(u) (expm1(u) + 2);
    tanh(a) = sign(a) e / (e + 2) with e = expm1(2|a|)   (tanh(19.1) rounds to 1);
    logistic(a) = (e + 1) / (e + 2) for a >= 0 and 1 / (e + 2) for a < 0, e = expm1(|a|)
        (below a = -38.2 the result stays at 2.6e-17 instead of decaying further).

The series and the doublings run in float64 for float32 arrays too: every doubling doubles the
series' relative error (up to 64 times in all), which float32 cannot afford — evaluated in float32
the logistic was up to 35 ulp and tanh 5 ulp from the correctly rounded value, against NumPy's
1.3 and 3.0; in float64 both round to within 1 ulp of float32 (``tests/test_activations.py``).
The other constants travel as a tuple ``K`` in the array's dtype (from ``constants``), so the
kernels' own arithmetic stays in the array's precision and LLVM sees them as values, not memory
that might alias an output. Kernels index it by name: ``K[ONE]``, ``K[ZERO]``, ``K[TWO]``.
"""
import math

import numpy as np

from ._jit import helper

ACTIVATIONS = ("tanh", "logistic", "relu", "identity")
TANH, LOGISTIC, RELU, IDENTITY = (ACTIVATIONS.index(name) for name in ("tanh", "logistic", "relu", "identity"))

# positions in the constants tuple K
INV64, TWO, CLAMP, ONE, ZERO = 0, 17, 18, 19, 20

_TAYLOR = tuple(1.0 / math.factorial(j) for j in range(17))   # 1/j!, float64 constants of expm1


@helper
def constants(like):
    """K: 1/64, the 16 Taylor coefficients 1/j!, 2, the clamp 38.2, 1, 0 — in ``like.dtype``."""
    c = np.empty(21, dtype=like.dtype)
    c[0] = 1.0 / 64
    f = 1.0
    for j in range(1, 17):
        f *= j
        c[j] = 1.0 / f
    c[17] = 2.0
    c[18] = 38.2
    c[19] = 1.0
    c[20] = 0.0
    return (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12],
            c[13], c[14], c[15], c[16], c[17], c[18], c[19], c[20])


@helper
def expm1_clamped(y, K):
    """expm1(min(y, 38.2)) for y >= 0, evaluated in float64 whatever y's precision."""
    u = min(float(y), 38.2) * (1.0 / 64)
    p = _TAYLOR[16] * u + _TAYLOR[15]
    p = p * u + _TAYLOR[14]
    p = p * u + _TAYLOR[13]
    p = p * u + _TAYLOR[12]
    p = p * u + _TAYLOR[11]
    p = p * u + _TAYLOR[10]
    p = p * u + _TAYLOR[9]
    p = p * u + _TAYLOR[8]
    p = p * u + _TAYLOR[7]
    p = p * u + _TAYLOR[6]
    p = p * u + _TAYLOR[5]
    p = p * u + _TAYLOR[4]
    p = p * u + _TAYLOR[3]
    p = p * u + _TAYLOR[2]
    p = p * u + _TAYLOR[1]
    p = p * u
    p = p * (p + 2.0)
    p = p * (p + 2.0)
    p = p * (p + 2.0)
    p = p * (p + 2.0)
    p = p * (p + 2.0)
    p = p * (p + 2.0)
    return p


@helper
def tanh(a, K):
    """tanh(a) in float64 (the caller's store rounds it to the array's dtype)."""
    e = expm1_clamped(abs(a + a), K)
    t = e / (e + 2.0)
    return t if a >= 0 else -t


@helper
def logistic(a, K):
    """1 / (1 + exp(-a)) in float64 (the caller's store rounds it to the array's dtype)."""
    e = expm1_clamped(abs(a), K)
    return (e + 1.0) / (e + 2.0) if a >= 0 else 1.0 / (e + 2.0)


@helper
def activate(row, K, code):
    """row[k] = phi(row[k]) in place; the branch on ``code`` sits outside the vector loops."""
    n = row.shape[0]
    if code == TANH:
        for k in range(n):
            row[k] = tanh(row[k], K)
    elif code == LOGISTIC:
        for k in range(n):
            row[k] = logistic(row[k], K)
    elif code == RELU:
        for k in range(n):
            v = row[k]
            row[k] = v if v > 0 else v - v


@helper
def scale_by_dphi(row, hrow, K, code):
    """row[k] *= phi'(a_k), with phi' written in terms of h = phi(a):
    tanh 1 - h^2, logistic h(1 - h), relu [h > 0], identity 1."""
    n = row.shape[0]
    one = K[ONE]
    if code == TANH:
        for k in range(n):
            row[k] *= one - hrow[k] * hrow[k]
    elif code == LOGISTIC:
        for k in range(n):
            row[k] *= hrow[k] * (one - hrow[k])
    elif code == RELU:
        for k in range(n):
            row[k] = row[k] if hrow[k] > 0 else row[k] - row[k]


@helper
def dphi_from_h(hv, K, code):
    """phi'(a) for one unit, from h = phi(a)."""
    one = K[ONE]
    if code == TANH:
        return one - hv * hv
    if code == LOGISTIC:
        return hv * (one - hv)
    if code == RELU:
        return one if hv > 0 else one - one
    return one
