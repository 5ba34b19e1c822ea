"""Shared pieces of the benchmarks: problems, the gradient check before timing, ids."""
import numpy as np
import pytest

import fastrnn

# a benchmark that compares different computations would be a lie: every peer must agree first
AGREE = {np.dtype(np.float64): 1e-8, np.dtype(np.float32): 2e-3}


def size_id(size):
    return "n{}-m{}-T{}-B{}".format(*size)


def problem(n, m, T, B, dtype=np.float64):
    """tanh cell, units readout with o = n/4 outputs, mse (the issue's benchmark problem)."""
    rng = np.random.default_rng(0)
    net = fastrnn.RNN.init(m, n, max(1, n // 4), dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, m)).astype(dtype)
    d = rng.standard_normal((T, B, net.n_out)).astype(dtype)
    return net, x, d


def lstm_problem(n, m, T, B, dtype=np.float64, cell="lstm"):
    """``problem`` for a gated cell (LSTM by default): units readout with o = n/4 outputs, mse."""
    rng = np.random.default_rng(0)
    net = fastrnn.MODELS[cell].init(m, n, max(1, n // 4), readout="units", dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, m)).astype(dtype)
    d = rng.standard_normal((T, B, net.n_out)).astype(dtype)
    return net, x, d


def check_against(result, expected, dtype, who):
    """result and expected: (loss, dW_in, dW_rec, db)."""
    tol = AGREE[np.dtype(dtype)]
    for name, a, b in zip(("loss", "dW_in", "dW_rec", "db"), result, expected):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        err = np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)
        if err > tol:
            pytest.fail(f"{who} disagrees with fastrnn on {name}: rel err {err:.2g} > {tol:g}")


def as_tuple(loss_grads):
    loss, g = loss_grads
    if "W_ih" in g:                  # the gated cells
        return loss, g.W_ih, g.W_hh, g.b_ih
    return loss, g.W_in, g.W_rec, g.b
