"""Finiteness of an array in one pass, on the calling thread.

A BLAS dot product would be as fast on large arrays, but OpenBLAS splits it among its own threads
from about 10^4 values, and those threads wait for cores that another pool (torch's, Numba's)
holds: a fastrnn.torch training step that took 1.9 ms took 12 ms so (float64 RNN n=32 B=8).
"""
from ._jit import _jit


def _all_finite(flat, largest):
    """True when the 1-d array holds no NaN and no infinity (``largest``: its dtype's largest
    finite value). Comparisons, not arithmetic: no fast-math rule may fold them away, and the
    integer OR over them vectorises."""
    bad = False
    for k in range(flat.shape[0]):
        v = flat[k]
        bad |= (v != v) | (abs(v) > largest)
    return not bad


_all_finite = _jit(_all_finite, fastmath=False)


def _copy_finite(src, dst, largest):
    """dst[:] = src (1-d arrays of one length and dtype) in one pass, and True when the values hold no
    NaN and no infinity: a checked copy reads its source once (``fastrnn.api._upstream``)."""
    bad = False
    for k in range(src.shape[0]):
        v = src[k]
        dst[k] = v
        bad |= (v != v) | (abs(v) > largest)
    return not bad


_copy_finite = _jit(_copy_finite, fastmath=False)
