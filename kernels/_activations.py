"""Activation functions by integer code, and their derivatives written in terms of the output.

Codes: 0 tanh, 1 logistic, 2 relu, 3 identity (``fastrnn._model.ACTIVATIONS`` holds the same order).
``one`` is 1 in the array's dtype so that float32 kernels stay in float32.
"""
import numpy as np

from ._jit import helper

TANH, LOGISTIC, RELU, IDENTITY = 0, 1, 2, 3


@helper
def phi(a, one, code):
    """phi(a) for activation ``code``."""
    if code == TANH:
        return np.tanh(a)
    if code == LOGISTIC:
        if a >= 0:
            return one / (one + np.exp(-a))
        e = np.exp(a)
        return e / (one + e)
    if code == RELU:
        return a if a > 0 else a - a
    return a


@helper
def dphi_from_h(hv, one, code):
    """phi'(a) written with h = phi(a): tanh 1 - h^2, logistic h(1 - h), relu [h > 0], identity 1."""
    if code == TANH:
        return one - hv * hv
    if code == LOGISTIC:
        return hv * (one - hv)
    if code == RELU:
        return one if hv > 0 else one - one
    return one
