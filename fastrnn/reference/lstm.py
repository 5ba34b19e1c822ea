"""The LSTM in plain NumPy (SPEC §6): forward, BPTT (exact and truncated) and exact RTRL over
the state (h, c). Written to be read, not to be fast.
"""
import numpy as np

from ..models import LSTMGradients
from .common import defaults, readout, readout_grads, sigmoid, sweeps


def split_state(net, x, h0):
    """(h0, c0) from None, an (B, n) array (c0 = 0) or a pair."""
    B, n = x.shape[1], net.n_hidden
    zeros = np.zeros((B, n), dtype=net.dtype)
    if h0 is None:
        return zeros, zeros.copy()
    if isinstance(h0, (tuple, list)):
        return h0[0], h0[1]
    return h0, zeros


def run(net, x, h0=None, c0=None):
    """The LSTM recursion. Returns gates (T, B, 4n) = [i, f, g, o] after their nonlinearities,
    h (T + 1, B, n) and c (T + 1, B, n)."""
    T, B, _ = x.shape
    n = net.n_hidden
    h0, c0 = split_state(net, x, (h0, c0) if c0 is not None else h0)
    gates = np.zeros((T, B, 4 * n), dtype=net.dtype)
    h = np.zeros((T + 1, B, n), dtype=net.dtype)
    c = np.zeros((T + 1, B, n), dtype=net.dtype)
    h[0], c[0] = h0, c0
    for t in range(1, T + 1):
        a = x[t - 1] @ net.W_ih.T + net.b_ih + h[t - 1] @ net.W_hh.T + net.b_hh
        i, f = sigmoid(a[:, :n]), sigmoid(a[:, n:2 * n])
        g, o = np.tanh(a[:, 2 * n:3 * n]), sigmoid(a[:, 3 * n:])
        c[t] = f * c[t - 1] + i * g
        h[t] = o * np.tanh(c[t])
        gates[t - 1] = np.concatenate([i, f, g, o], axis=1)
    return gates, h, c


def states(net, x, h0=None, d=None, mask=None, teacher_forcing=False):
    """The hidden states h (T + 1, B, n) the readout sees; h0 may be None, h0 or (h0, c0)."""
    h0, c0 = split_state(net, x, h0)
    return run(net, x, h0, c0)[1]


def forward(net, x, h0=None):
    """(h, y, c) for an LSTM; h0 may be None, h0, or (h0, c0)."""
    h0, c0 = split_state(net, x, h0)
    _, h, c = run(net, x, h0, c0)
    y = np.stack([readout(net, h[t])[1] for t in range(1, h.shape[0])])
    return h, y, c


def bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None):
    """Exact or truncated BPTT through the LSTM (same sweeps as the simple cell):

        dh_t = g_t + W_hh^T delta_{t+1},   dc_t = dh_t o tanh'(c_t) + dc_{t+1} f_{t+1}
        delta_t = [dc g i'; dc c_{t-1} f'; dc i g'; dh tanh(c_t) o']   (pre-activation errors)
    """
    h0, c0 = split_state(net, x, h0)
    _, mask = defaults(net, x, d, mask, h0, loss)
    gates, h, c = run(net, x, h0, c0)
    L, g, dW_out, db_out = readout_grads(net, h, d, mask, loss)
    dW_ih, dW_hh, db, dh0, dc0, _ = backward(net, x, gates, h, c, g, None, truncation)
    return L, LSTMGradients(dW_ih, dW_hh, db, db.copy(), dW_out, db_out, dh0, dc0)


def backward(net, x, gates, h, c, g, dc_T, truncation):
    """The sweeps of BPTT(h; h') for injected errors g (T, B, n) and dL/dc_T (or None), which
    enters the last sweep: (dW_ih, dW_hh, db, dh0, dc0, dx)."""
    T, B, _ = x.shape
    n = net.n_hidden
    dW_ih, dW_hh = np.zeros_like(net.W_ih), np.zeros_like(net.W_hh)
    db = np.zeros_like(net.b_ih)
    dh0, dc0 = np.zeros((B, n), dtype=net.dtype), np.zeros((B, n), dtype=net.dtype)
    dx = np.zeros_like(x)
    for start, end, low in sweeps(T, truncation):
        dh_next = np.zeros((B, n), dtype=net.dtype)
        dc_next = np.zeros((B, n), dtype=net.dtype)
        if end == T and dc_T is not None:
            dc_next = dc_T.copy()
        for t in range(end, low, -1):
            i, f = gates[t - 1][:, :n], gates[t - 1][:, n:2 * n]
            gg, o = gates[t - 1][:, 2 * n:3 * n], gates[t - 1][:, 3 * n:]
            dh = (g[t - 1] if t > start else 0) + dh_next
            tc = np.tanh(c[t])
            dc = dh * o * (1 - tc ** 2) + dc_next
            delta = np.concatenate([dc * gg * i * (1 - i), dc * c[t - 1] * f * (1 - f),
                                    dc * i * (1 - gg ** 2), dh * tc * o * (1 - o)], axis=1)
            dW_ih += delta.T @ x[t - 1]
            dW_hh += delta.T @ h[t - 1]
            db += delta.sum(axis=0)
            dx[t - 1] += delta @ net.W_ih
            dh_next = delta @ net.W_hh
            dc_next = dc * f
            if t == 1:
                dh0 += dh_next
                dc0 += dc_next
    return dW_ih, dW_hh, db, dh0, dc0, dx


def vjp(net, x, dh, h0=None, final=None, truncation=None):
    """SPEC §6b: the upstream gradient dh (T, B, n) injected into h, ``final`` = (dh_T, dc_T)
    (either may be None) into the final state. Returns (grads, dx, (dh0, dc0))."""
    h0, c0 = split_state(net, x, h0)
    gates, h, c = run(net, x, h0, c0)
    dh_T, dc_T = (None, None) if final is None else final
    g = dh.copy()
    if dh_T is not None:
        g[-1] = g[-1] + dh_T
    dW_ih, dW_hh, db, dh0, dc0, dx = backward(net, x, gates, h, c, g, dc_T, truncation)
    return LSTMGradients(dW_ih, dW_hh, db, db.copy(), h0=dh0, c0=dc0), dx, (dh0, dc0)


def rtrl(net, x, d, mask=None, loss="mse", h0=None):
    """Exact RTRL for the LSTM over the state s_t = (h_t, c_t), W = [W_ih | b | W_hh] (4n, J):

        A_t[r, p, j] = d a_t[r] / d W[p, j] = sum_l W_hh[r, l] Ph_{t-1}[l, p, j] + delta_rp z_t[j]
        Pc_t[k] = f Pc_{t-1}[k] + c_{t-1} f' A_f[k] + g i' A_i[k] + i g' A_g[k]
        Ph_t[k] = tanh(c_t) o' A_o[k] + o tanh'(c_t) Pc_t[k]
        dL/dW = sum_t sum_k g_t[k] Ph_t[k]
    with Ph, Pc of shape (n, 4n, J) per sequence. h0 and c0 have no sensitivity.
    """
    T, B, m = x.shape
    n = net.n_hidden
    J = m + 1 + n
    h0, c0 = split_state(net, x, h0)
    _, mask = defaults(net, x, d, mask, h0, loss)
    gates, h, c = run(net, x, h0, c0)
    L, g, dW_out, db_out = readout_grads(net, h, d, mask, loss)
    Ph = np.zeros((B, n, 4 * n, J), dtype=net.dtype)
    Pc = np.zeros((B, n, 4 * n, J), dtype=net.dtype)
    dW = np.zeros((4 * n, J), dtype=net.dtype)
    for t in range(1, T + 1):
        z = np.concatenate([x[t - 1], np.ones((B, 1), dtype=net.dtype), h[t - 1]], axis=1)
        A = (net.W_hh @ Ph.reshape(B, n, 4 * n * J)).reshape(B, 4 * n, 4 * n, J)
        for r in range(4 * n):
            A[:, r, r, :] += z
        i, f = gates[t - 1][:, :n], gates[t - 1][:, n:2 * n]
        gg, o = gates[t - 1][:, 2 * n:3 * n], gates[t - 1][:, 3 * n:]

        def col(v):
            return v[:, :, None, None]
        tc = np.tanh(c[t])
        Pc = (col(f) * Pc + col(c[t - 1] * f * (1 - f)) * A[:, n:2 * n] + col(gg * i * (1 - i)) * A[:, :n]
              + col(i * (1 - gg ** 2)) * A[:, 2 * n:3 * n])
        Ph = col(tc * o * (1 - o)) * A[:, 3 * n:] + col(o * (1 - tc ** 2)) * Pc
        dW += np.einsum("bk,bkpj->pj", g[t - 1], Ph)
    db = dW[:, m].copy()
    return L, LSTMGradients(dW[:, :m].copy(), dW[:, m + 1:].copy(), db, db.copy(), dW_out, db_out, None, None)
