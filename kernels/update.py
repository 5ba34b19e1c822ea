"""Optimizer updates in one pass over each parameter (``fastrnn.train``'s SGD and Adam).

NumPy takes ``p -= lr * g`` in two passes through a third array (the product, then the difference), and
Adam's update in some ten; a pass reads and writes whole parameters, which for the 4 MiB weights of a float32
LSTM at n = 512 is the memory's time, not the arithmetic's. Here each number of p (and of Adam's moments) is
read and written once. Every operation is NumPy's, in NumPy's order and the array's dtype, with its
constants in that dtype (as NumPy takes a Python float beside an array), compiled without fast-math
(no multiply-add fused from two roundings): the results equal NumPy's expressions bit for bit.

Arrays: 1-d, C-contiguous, one float dtype (the caller's flat views of equal-shaped arrays).
"""
import numpy as np

from ._jit import _jit


def _sgd(p, g, lr):
    """p -= lr * g."""
    for k in range(p.shape[0]):
        p[k] = p[k] - lr * g[k]


def _momentum(p, vel, g, lr, mu):
    """vel = mu * vel + g (as vel *= mu; vel += g), then p -= lr * vel."""
    for k in range(p.shape[0]):
        v = vel[k] * mu
        v = v + g[k]
        vel[k] = v
        p[k] = p[k] - lr * v


def _adam(p, m, v, g, lr, b1, one_b1, b2, one_b2, c1, c2, eps):
    """Adam's step as ``fastrnn.train.Adam`` writes it with NumPy: m = b1·m + (1 - b1)·g, v = b2·v + ((1 - b2)·g)·g,
    p -= (m / c1)·lr / (sqrt(v / c2) + eps), each product and sum rounded where NumPy rounds it."""
    for k in range(p.shape[0]):
        gk = g[k]
        mk = m[k] * b1
        mk = mk + one_b1 * gk
        m[k] = mk
        vk = v[k] * b2
        vk = vk + (one_b2 * gk) * gk
        v[k] = vk
        step = (mk / c1) * lr
        p[k] = p[k] - step / (np.sqrt(vk / c2) + eps)


sgd = _jit(_sgd, fastmath=False)
momentum = _jit(_momentum, fastmath=False)
adam = _jit(_adam, fastmath=False)
