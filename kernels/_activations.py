"""Activation functions by integer code, written so that LLVM vectorises them.

``ACTIVATIONS`` names the activations; a name's index is its kernel code. It is the only place
that order is written: ``fastrnn.models`` and the drivers read it from here.

libm's tanh and exp are scalar calls (about 15 ns each here); these are plain arithmetic on SIMD
lanes (about 3 ns per float64, measured on 128-unit rows), within a few ulp of NumPy's:

    expm1(y), 0 <= y <= 38.2: Taylor series of degree 16 at u = y/64 (|u| < 0.6, remainder
        below 1e-17), then six exact doublings expm1(2u) = expm1(u) (expm1(u) + 2);
    tanh(a) = sign(a) e / (e + 2) with e = expm1(2|a|)   (tanh(19.1) rounds to 1);
    logistic(a) = (e + 1) / (e + 2) for a >= 0 and 1 / (e + 2) for a < 0, e = expm1(|a|)
        (below a = -38.2 the result stays at 2.6e-17 instead of decaying further).

The constants travel as a tuple ``K`` in the array's dtype (from ``constants``), so float32
kernels stay in float32 and LLVM sees them as values, not memory that might alias an output.
Kernels index it by name: ``K[ONE]``, ``K[ZERO]``, ``K[TWO]``.
"""
import numpy as np

from ._jit import helper

ACTIVATIONS = ("tanh", "logistic", "relu", "identity")
TANH, LOGISTIC, RELU, IDENTITY = (ACTIVATIONS.index(name) for name in ("tanh", "logistic", "relu", "identity"))

# positions in the constants tuple K
INV64, TWO, CLAMP, ONE, ZERO = 0, 17, 18, 19, 20


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
    """expm1(min(y, 38.2)) for y >= 0."""
    u = min(y, K[CLAMP]) * K[INV64]
    p = K[16] * u + K[15]
    p = p * u + K[14]
    p = p * u + K[13]
    p = p * u + K[12]
    p = p * u + K[11]
    p = p * u + K[10]
    p = p * u + K[9]
    p = p * u + K[8]
    p = p * u + K[7]
    p = p * u + K[6]
    p = p * u + K[5]
    p = p * u + K[4]
    p = p * u + K[3]
    p = p * u + K[2]
    p = p * u + K[1]
    p = p * u
    two = K[TWO]
    p = p * (p + two)
    p = p * (p + two)
    p = p * (p + two)
    p = p * (p + two)
    p = p * (p + two)
    p = p * (p + two)
    return p


@helper
def tanh(a, K):
    e = expm1_clamped(abs(a + a), K)
    t = e / (e + K[TWO])
    return t if a >= 0 else -t


@helper
def logistic(a, K):
    e = expm1_clamped(abs(a), K)
    return (e + K[ONE]) / (e + K[TWO]) if a >= 0 else K[ONE] / (e + K[TWO])


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
