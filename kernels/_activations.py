"""Activation functions by integer code, written so that LLVM vectorises them.

``ACTIVATIONS`` names the activations; a name's index is its kernel code. It is the only place
that order is written: ``fastrnn.models`` and the drivers read it from here.

libm's tanh and exp are scalar calls (about 15 ns each here); these are plain arithmetic on SIMD
lanes. ``tanh(a, K)`` and ``logistic(a, K)`` pick their formula by the type of ``a``: kernels
compiled for float32 arrays get float32 arithmetic on twice as many lanes, float64 kernels keep
the float64 formula.

float64 (about 1.5 ns per value on 512-value rows, one AMD EPYC thread), measured against the
correctly rounded value: tanh within 8 ulp, the logistic within 128 ulp in its far negative tail
(relative error below 3e-14 everywhere):

    expm1(y), 0 <= y <= 38.2: Taylor series of degree 16 at u = y/64 (|u| < 0.6, remainder
        below 1e-17), then six exact doublings expm1(2u) = expm1(u) (expm1(u) + 2);
    tanh(a) = sign(a) e / (e + 2) with e = expm1(2|a|)   (tanh(19.1) rounds to 1);
    logistic(a) = (e + 1) / (e + 2) for a >= 0 and 1 / (e + 2) for a < 0, e = expm1(|a|)
        (below a = -38.2 the result stays at 2.6e-17 instead of decaying further).

float32 (0.4-0.8 ns per value, against 1.5 for the float64 formula on float32 rows), all in
float32:

    exp(-y), 0 <= y <= 87.3: y = k ln2 - r with k = round(y / ln2), r computed with ln2 split
        in two parts (the product k * ln2_hi is exact), |r| <= 0.347; exp(r) by a degree-6
        polynomial fitted for relative error 2.2e-9 (``_EXP``), times 2^-k built from
        its exponent bits (``_pow2``);
    tanh(a) = sign(a) (1 - e) / (1 + e), e = exp(-2|a|), for |a| >= 0.55; below, where 1 - e
        would cancel, the odd polynomial a + a^3 q(a^2) of degree 11 (relative error 1.1e-9);
    logistic(a) = 1 / (1 + e) for a >= 0 and e / (1 + e) for a < 0, e = exp(-|a|) (below
        a = -87.3 the result stays at 1.3e-38, the smallest normal float32, where NumPy's float32
        goes on into subnormals and 0).

Measured against the correctly rounded value over [-87.3, 90] (``tests/test_activations.py``):
float32 tanh within 1.5 ulp, the logistic within 2.2 ulp; NumPy's own float32 functions on the
same points are within 1.4 ulp (np.tanh) and 3.4 ulp (1 / (1 + np.exp(-a))). The reduction needs
the two parts of ln2 kept apart: the kernels' fast-math flags include reassociation, so the test
evaluates these functions under the kernels' own flags.

The other constants travel as a tuple ``K`` in the array's dtype (from ``constants``), so the
kernels' own arithmetic stays in the array's precision and LLVM sees them as values, not memory
that might alias an output. Kernels index it by name: ``K[ONE]``, ``K[ZERO]``, ``K[TWO]``.
"""
import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._jit import FASTMATH, helper

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


def _tanh64(a, K):
    """tanh(a) in float64."""
    e = expm1_clamped(abs(a + a), K)
    t = e / (e + 2.0)
    return t if a >= 0 else -t


def _logistic64(a, K):
    """1 / (1 + exp(-a)) in float64."""
    e = expm1_clamped(abs(a), K)
    return (e + 1.0) / (e + 2.0) if a >= 0 else 1.0 / (e + 2.0)


# float32: exp(r) = 1 + r p(r) on |r| <= ln2/2 and tanh(a) = a + a^3 q(a^2) on |a| <= 0.55, fitted
# by weighted least squares on Chebyshev points (relative error 2.2e-9 and 1.1e-9 in exact arithmetic;
# ``tests/test_activations.py`` checks the float32 results in ulp).
_EXP = (1.0000000360998795, 0.49999995350283305, 0.16666420909797117, 0.04166772437593537,
        0.008374766962390236, 0.0013859295886793253)
_TANH = (-0.33333318650020016, 0.1333261678740879, -0.05385511069679758, 0.021082018617048556,
         -0.0062876009150065835)
_F32 = np.float32
E1, E2, E3, E4, E5, E6 = (_F32(v) for v in _EXP)
Q0, Q1, Q2, Q3, Q4 = (_F32(v) for v in _TANH)
ONE32, HALF32, SMALL32 = _F32(1.0), _F32(0.5), _F32(0.55)
LOG2E32, LN2_HI32, LN2_LO32, CLAMP32 = _F32(1.4426950408889634), _F32(0.693359375), _F32(-2.12194440e-4), _F32(87.3)


@intrinsic
def _pow2(typingctx, k):
    """2**k as float32, for a float32 k holding a whole number in [-126, 127]: k + 127 written
    into the exponent bits (one integer add, shift and bit cast, which vectorise)."""
    if k != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        biased = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(biased, ir.Constant(i32, 23)), ir.FloatType())
    return types.float32(types.float32), codegen


@helper
def exp_neg32(y):
    """exp(-y) for float32 y >= 0, in float32 (y clamped at 87.3: exp(-87.3) = 1.3e-38)."""
    y = min(y, CLAMP32)
    k = np.floor(y * LOG2E32 + HALF32)
    r = (k * LN2_HI32 - y) + k * LN2_LO32            # -y = -k ln2 + r; k * LN2_HI32 is exact
    p = E6 * r + E5
    p = p * r + E4
    p = p * r + E3
    p = p * r + E2
    p = p * r + E1
    p = p * r + ONE32
    return p * _pow2(-k)


def _tanh32(a, K):
    """tanh(a) in float32."""
    x = abs(a)
    z = x * x
    q = Q4 * z + Q3
    q = q * z + Q2
    q = q * z + Q1
    q = q * z + Q0
    e = exp_neg32(x + x)
    t = x + x * z * q if x < SMALL32 else (ONE32 - e) / (ONE32 + e)
    return t if a >= 0 else -t


def _logistic32(a, K):
    """1 / (1 + exp(-a)) in float32."""
    e = exp_neg32(abs(a))
    return (ONE32 if a >= 0 else e) / (ONE32 + e)


# The implementations are compiled as functions of their own that LLVM inlines into the kernel,
# keeping their own fast-math flags: no reassociation, so the two parts of ln2 stay apart.
_SCALAR_OPTIONS = dict(fastmath=FASTMATH - {"reassoc"}, error_model="numpy")


def tanh(a, K):
    """tanh(a): float32 arithmetic for a float32 ``a``, the float64 formula otherwise."""
    raise NotImplementedError("kernels only: compiled through the overload below")


def logistic(a, K):
    """1 / (1 + exp(-a)): float32 arithmetic for a float32 ``a``, the float64 formula otherwise."""
    raise NotImplementedError("kernels only: compiled through the overload below")


@overload(tanh, jit_options=_SCALAR_OPTIONS)
def _tanh_by_type(a, K):
    return _tanh32 if a == types.float32 else _tanh64


@overload(logistic, jit_options=_SCALAR_OPTIONS)
def _logistic_by_type(a, K):
    return _logistic32 if a == types.float32 else _logistic64


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
