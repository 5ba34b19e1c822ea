"""The LSTM with a projected state in plain NumPy (SPEC §6, ``torch.nn.LSTM(proj_size=p)``):
forward, BPTT (exact and truncated) and the vector-Jacobian product over the state (h, c), with
h_t = W_hr (o ⊙ tanh c_t) of p units and c_t of n. Written to be read, not to be fast.
"""
import numpy as np

from ..errors import OptionError
from ..models import LSTMPGradients
from .common import defaults, readout, readout_grads, sigmoid, sweeps


def split_state(net, x, h0):
    """(h0 (B, p), c0 (B, n)) from None, an h0 array (c0 = 0) or a pair."""
    B = x.shape[1]
    if isinstance(h0, (tuple, list)):
        return h0[0], h0[1]
    c0 = np.zeros((B, net.n_cell), dtype=net.dtype)
    return (np.zeros((B, net.n_hidden), dtype=net.dtype) if h0 is None else h0), c0


def run(net, x, h0, c0):
    """The recursion. Returns gates (T, B, 4n) = [i, f, g, o] after their nonlinearities,
    h (T + 1, B, p), c (T + 1, B, n) and m (T, B, n) = o tanh(c_t) before the projection."""
    T, B, _ = x.shape
    n, p = net.n_cell, net.n_hidden
    gates = np.zeros((T, B, 4 * n), dtype=net.dtype)
    h = np.zeros((T + 1, B, p), dtype=net.dtype)
    c = np.zeros((T + 1, B, n), dtype=net.dtype)
    m = np.zeros((T, B, n), dtype=net.dtype)
    h[0], c[0] = h0, c0
    for t in range(1, T + 1):
        a = x[t - 1] @ net.W_ih.T + net.b_ih + h[t - 1] @ net.W_hh.T + net.b_hh
        i, f = sigmoid(a[:, :n]), sigmoid(a[:, n:2 * n])
        g, o = np.tanh(a[:, 2 * n:3 * n]), sigmoid(a[:, 3 * n:])
        c[t] = f * c[t - 1] + i * g
        m[t - 1] = o * np.tanh(c[t])
        h[t] = m[t - 1] @ net.W_hr.T
        gates[t - 1] = np.concatenate([i, f, g, o], axis=1)
    return gates, h, c, m


def states(net, x, h0=None, d=None, mask=None, teacher_forcing=False):
    """The states h (T + 1, B, p) the readout sees; h0 may be None, h0 or (h0, c0)."""
    return run(net, x, *split_state(net, x, h0))[1]


def forward(net, x, h0=None):
    """(h, y, c); h0 may be None, h0, or (h0, c0)."""
    _, h, c, _ = run(net, x, *split_state(net, x, h0))
    y = np.stack([readout(net, h[t])[1] for t in range(1, h.shape[0])])
    return h, y, c


def backward(net, x, gates, h, c, m, g, dc_T, truncation):
    """The sweeps of BPTT(h; h') for injected errors g (T, B, p) and dL/dc_T (or None):

        dh_t = g_t + W_hh^T delta_{t+1},   dm_t = W_hr^T dh_t,
        dc_t = dm_t o tanh'(c_t) + dc_{t+1} f_{t+1},
        delta_t = [dc g i'; dc c_{t-1} f'; dc i g'; dm tanh(c_t) o'],   dW_hr += dh_t m_t^T

    Returns (dW_ih, dW_hh, db, dW_hr, dh0, dc0, dx)."""
    T, B, _ = x.shape
    n, p = net.n_cell, net.n_hidden
    dW_ih, dW_hh, dW_hr = np.zeros_like(net.W_ih), np.zeros_like(net.W_hh), np.zeros_like(net.W_hr)
    db = np.zeros_like(net.b_ih)
    dh0, dc0 = np.zeros((B, p), dtype=net.dtype), np.zeros((B, n), dtype=net.dtype)
    dx = np.zeros_like(x)
    for start, end, low in sweeps(T, truncation):
        dh_next = np.zeros((B, p), dtype=net.dtype)
        dc_next = np.zeros((B, n), dtype=net.dtype)
        if end == T and dc_T is not None:
            dc_next = dc_T.copy()
        for t in range(end, low, -1):
            i, f = gates[t - 1][:, :n], gates[t - 1][:, n:2 * n]
            gg, o = gates[t - 1][:, 2 * n:3 * n], gates[t - 1][:, 3 * n:]
            dh = (g[t - 1] if t > start else 0) + dh_next
            dW_hr += dh.T @ m[t - 1]
            dm = dh @ net.W_hr
            tc = np.tanh(c[t])
            dc = dm * o * (1 - tc ** 2) + dc_next
            delta = np.concatenate([dc * gg * i * (1 - i), dc * c[t - 1] * f * (1 - f),
                                    dc * i * (1 - gg ** 2), dm * tc * o * (1 - o)], axis=1)
            dW_ih += delta.T @ x[t - 1]
            dW_hh += delta.T @ h[t - 1]
            db += delta.sum(axis=0)
            dx[t - 1] += delta @ net.W_ih
            dh_next = delta @ net.W_hh
            dc_next = dc * f
            if t == 1:
                dh0 += dh_next
                dc0 += dc_next
    return dW_ih, dW_hh, db, dW_hr, dh0, dc0, dx


def bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None):
    """Exact or truncated BPTT through the projected LSTM (the sweeps of the simple cell)."""
    h0, c0 = split_state(net, x, h0)
    _, mask = defaults(net, x, d, mask, h0, loss)
    gates, h, c, m = run(net, x, h0, c0)
    L, g, dW_out, db_out = readout_grads(net, h, d, mask, loss)
    dW_ih, dW_hh, db, dW_hr, dh0, dc0, _ = backward(net, x, gates, h, c, m, g, None, truncation)
    return L, LSTMPGradients(W_ih=dW_ih, W_hh=dW_hh, b_ih=db, b_hh=db.copy(), W_hr=dW_hr, W_out=dW_out,
                             b_out=db_out, h0=dh0, c0=dc0)


def vjp(net, x, dh, h0=None, final=None, truncation=None):
    """SPEC §6b: upstream errors dh (T, B, p) into h, ``final`` = (dh_T, dc_T) (either may be
    None) into the final state. Returns (grads, dx, (dh0, dc0))."""
    h0, c0 = split_state(net, x, h0)
    gates, h, c, m = run(net, x, h0, c0)
    dh_T, dc_T = (None, None) if final is None else final
    g = dh.copy()
    if dh_T is not None:
        g[-1] = g[-1] + dh_T
    dW_ih, dW_hh, db, dW_hr, dh0, dc0, dx = backward(net, x, gates, h, c, m, g, dc_T, truncation)
    grads = LSTMPGradients(W_ih=dW_ih, W_hh=dW_hh, b_ih=db, b_hh=db.copy(), W_hr=dW_hr, h0=dh0, c0=dc0)
    return grads, dx, (dh0, dc0)


def rtrl(net, x, d, mask=None, loss="mse", h0=None):
    """Not written for the projected LSTM: the gradient is the one :func:`bptt` computes."""
    raise OptionError("RTRL is not available for the projected LSTM (LSTMP): use fastrnn.bptt, "
                      "or an LSTM without projection for RTRL")
