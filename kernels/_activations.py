"""Activation functions by integer code, written so that LLVM vectorises them.

``ACTIVATIONS`` names the activations; a name's index is its kernel code. It is the only place
that order is written: ``fastrnn.models`` and the drivers read it from here.

libm's tanh and exp are scalar calls (about 15 ns each here); these are plain arithmetic on SIMD
lanes. ``tanh(a, K)`` and ``logistic(a, K)`` pick their formula by the type of ``a``: kernels
compiled for float32 arrays get float32 arithmetic on twice as many lanes, float64 kernels keep
the float64 formula.

float64 (about 2 ns per value on 512-value rows, one AMD EPYC thread, against 3.3 for the earlier
formula, a Taylor series of degree 16 at y/64 and six doublings: ad hoc, rows in the L1 cache),
measured against the correctly rounded value: tanh within 4 ulp, the logistic within 3 ulp
(``tests/test_activations.py``):

    expm1(y), 0 <= y <= 708: y = k ln2 + r with k = round(y / ln2), r computed with ln2 split in
        two parts (k * ln2_hi is exact), |r| <= 0.347; expm1(r) = r q(r) with q the Taylor series
        of degree 12 (remainder below 5e-18), evaluated by Estrin's scheme (five levels of
        multiply-adds instead of twelve in a row; 3.9 against 4.1 ns per value for Horner's, ad hoc);
        then expm1(y) = 2^k expm1(r) + (2^k - 1), 2^k built from its exponent bits (``_pow2``);
        for k = 0 that is expm1(r) itself, so small arguments keep their relative precision;
    tanh(a) = sign(a) e / (e + 2) with e = expm1(2|a|)   (tanh(19.1) rounds to 1);
    logistic(a) = (e + 1) / (e + 2) for a >= 0 and 1 / (e + 2) for a < 0, e = expm1(|a|)
        (below a = -708 the result stays at 3.3e-308, near the smallest normal float64).

float32 (0.4-0.8 ns per value; the earlier float64 formula took 1.5 on the same float32 rows), all in
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
TWO, ONE, ZERO = 0, 1, 2

# float64 expm1: ln2 split in two (ln2_hi has 32 trailing zero bits, so k * ln2_hi is exact for
# every k here), and the Taylor coefficients 1/(j + 1)! of q(r) = expm1(r) / r
LOG2E, LN2_HI, LN2_LO, CLAMP64 = 1.4426950408889634, 6.93147180369123816490e-01, 1.90821492927058770002e-10, 708.0
_Q = tuple(1.0 / math.factorial(j + 1) for j in range(13))


@helper
def constants(like):
    """K: 2, 1, 0 in ``like.dtype`` (the kernels' own constants, as values of the array's precision)."""
    c = np.empty(3, dtype=like.dtype)
    c[0] = 2.0
    c[1] = 1.0
    c[2] = 0.0
    return (c[0], c[1], c[2])


@intrinsic
def _pow2(typingctx, k):
    """2**k for a float k holding a whole number in the exponent's normal range (float32: [-126,
    127], float64: [-1022, 1023]), in k's type: k plus the exponent bias written into the exponent
    bits (an integer conversion, add, shift and bit cast, which vectorise)."""
    if k not in (types.float32, types.float64):
        return None
    wide = k == types.float64
    bits, bias, shift = (64, 1023, 52) if wide else (32, 127, 23)

    def codegen(context, builder, signature, args):
        i32, iw = ir.IntType(32), ir.IntType(bits)
        whole = builder.fptosi(args[0], i32)          # to 32 bits: vectorises on AVX2 (64 would not)
        if wide:
            whole = builder.sext(whole, iw)
        biased = builder.add(whole, ir.Constant(iw, bias))
        return builder.bitcast(builder.shl(biased, ir.Constant(iw, shift)), context.get_value_type(k))
    return k(k), codegen


@helper
def expm1_clamped(y, K):
    """expm1(min(y, 708)) for y >= 0 (NaN stays NaN), evaluated in float64 whatever y's precision."""
    y = min(float(y), CLAMP64)
    k = np.floor(y * LOG2E + 0.5)
    r = (y - k * LN2_HI) - k * LN2_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    q01 = _Q[1] * r + _Q[0]
    q23 = _Q[3] * r + _Q[2]
    q45 = _Q[5] * r + _Q[4]
    q67 = _Q[7] * r + _Q[6]
    q89 = _Q[9] * r + _Q[8]
    q1011 = _Q[11] * r + _Q[10]
    q03 = q23 * r2 + q01
    q47 = q67 * r2 + q45
    q811 = q1011 * r2 + q89
    q07 = q47 * r4 + q03
    q812 = _Q[12] * r4 + q811
    p = (q812 * r8 + q07) * r
    s = _pow2(k)
    return s * p + (s - 1.0)


def _tanh64(a, K):
    """tanh(a) in float64."""
    e = expm1_clamped(abs(a + a), K)
    t = e / (e + 2.0)
    return t if a >= 0 else -t


def _logistic64(a, K):
    """1 / (1 + exp(-a)) in float64 (one division for both signs)."""
    e = expm1_clamped(abs(a), K)
    return (e + 1.0 if a >= 0 else 1.0) / (e + 2.0)


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
