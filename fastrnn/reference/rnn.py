"""The simple cell in plain NumPy: SPEC §2-5, written to be read, not to be fast.

Loops run over time (and over truncation sweeps) exactly as the equations are written; only the
batch axis is vectorised.
"""
import numpy as np

from ..models import Gradients
from .common import defaults, readout, readout_grads, sweeps


def phi(a, activation):
    """The unit activation."""
    if activation == "tanh":
        return np.tanh(a)
    if activation == "logistic":
        return 1.0 / (1.0 + np.exp(-a))
    if activation == "relu":
        return np.maximum(a, 0)
    return a.copy()


def phi_prime(a, activation):
    """phi'(a), from the pre-activation."""
    if activation == "tanh":
        return 1 - np.tanh(a) ** 2
    if activation == "logistic":
        s = 1.0 / (1.0 + np.exp(-a))
        return s * (1 - s)
    if activation == "relu":
        return (a > 0).astype(a.dtype)
    return np.ones_like(a)


def run(net, x, h0=None, d=None, mask=None, teacher_forcing=False):
    """The recursion a_t = W_in x_t + W_rec h_{t-1} + b, h_t = phi(a_t).

    Returns ``a`` (T, B, n), ``h`` (T + 1, B, n) the unit values, and ``fed`` (T + 1, B, n): the
    state carried into the next step, which differs from ``h`` only under teacher forcing
    (output unit k takes its target d_t[k] wherever mask_t[k] = 1).
    """
    T, B, _ = x.shape
    n = net.n_hidden
    a = np.zeros((T, B, n), dtype=net.dtype)
    h = np.zeros((T + 1, B, n), dtype=net.dtype)
    fed = np.zeros((T + 1, B, n), dtype=net.dtype)
    h[0] = fed[0] = np.zeros((B, n), dtype=net.dtype) if h0 is None else h0
    for t in range(1, T + 1):
        a[t - 1] = x[t - 1] @ net.W_in.T + fed[t - 1] @ net.W_rec.T + net.b
        h[t] = phi(a[t - 1], net.activation)
        fed[t] = h[t]
        if teacher_forcing:
            S = net.out_units
            fed[t][:, S] = np.where(mask[t - 1] != 0, d[t - 1], h[t][:, S])
    return a, h, fed


def states(net, x, h0=None, d=None, mask=None, teacher_forcing=False):
    """The unit values h (T + 1, B, n) the readout sees."""
    return run(net, x, h0, d, mask, teacher_forcing)[1]


def forward(net, x, h0=None):
    """h (T + 1, B, n) and outputs y (T, B, o)."""
    _, h, _ = run(net, x, h0)
    y = np.stack([readout(net, h[t])[1] for t in range(1, h.shape[0])])
    return h, y


# -- BPTT ------------------------------------------------------------------------------------
def bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None, teacher_forcing=False):
    """Exact BPTT, or truncated BPTT(h; h') (Williams & Peng 1990), SPEC §4.

    truncation: None (exact), k (= BPTT(k; k)) or (h, h_prime). Every h' steps and at step T, the
    errors injected during the last h' steps travel back through at most the last h steps; the
    gradients of all sweeps are summed. With h = h' the sweeps are chunks of h steps: the last,
    shorter chunk stops at its own start too, so BPTT(k; k) is exactly ``detach()`` every k steps.
    """
    T, B, _ = x.shape
    h0, mask = defaults(net, x, d, mask, h0, loss)
    a, h, fed = run(net, x, h0, d, mask, teacher_forcing)
    L, g, dW_out, db_out = readout_grads(net, h, d, mask, loss)
    forced = np.zeros((T, B, net.n_hidden), dtype=bool)
    if teacher_forcing:
        forced[:, :, net.out_units] = mask != 0
    dW_in, dW_rec, db, dh0, _ = backward(net, x, a, fed, g, truncation, forced)
    return L, Gradients(dW_in, dW_rec, db, dW_out, db_out, dh0)


def backward(net, x, a, fed, g, truncation, forced):
    """The sweeps of BPTT(h; h') for injected errors g (T, B, n): (dW_in, dW_rec, db, dh0, dx)."""
    T, B, _ = x.shape
    dW_in = np.zeros_like(net.W_in)
    dW_rec = np.zeros_like(net.W_rec)
    db = np.zeros_like(net.b)
    dh0 = np.zeros((B, net.n_hidden), dtype=net.dtype)
    dx = np.zeros_like(x)
    for start, end, low in sweeps(T, truncation):
        delta_next = None
        for t in range(end, low, -1):               # back through at most th steps
            eps = g[t - 1] if t > start else np.zeros_like(g[t - 1])
            if delta_next is not None:
                eps = eps + np.where(forced[t - 1], 0, delta_next @ net.W_rec)
            delta = phi_prime(a[t - 1], net.activation) * eps
            dW_in += delta.T @ x[t - 1]
            dW_rec += delta.T @ fed[t - 1]
            db += delta.sum(axis=0)
            dx[t - 1] += delta @ net.W_in
            if t == 1:
                dh0 += delta @ net.W_rec
            delta_next = delta
    return dW_in, dW_rec, db, dh0, dx


def vjp(net, x, dh, h0=None, dh_T=None, truncation=None):
    """SPEC §6b: the upstream gradient dh (T, B, n) injected as g. Returns (grads, dx, dh0)."""
    T, B, _ = x.shape
    a, _, fed = run(net, x, h0)
    g = dh.copy()
    if dh_T is not None:
        g[-1] = g[-1] + dh_T
    dW_in, dW_rec, db, dh0, dx = backward(net, x, a, fed, g, truncation, np.zeros(g.shape, dtype=bool))
    return Gradients(dW_in, dW_rec, db, h0=dh0), dx, dh0


# -- RTRL ------------------------------------------------------------------------------------
def rtrl(net, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False):
    """Exact RTRL (Williams & Zipser 1989), SPEC §5, with W = [W_in | b | W_rec] and
    z_t = [x_t; 1; h_{t-1}]:

        P_t[k, i, j] = phi'(a_t[k]) (sum_l W_rec[k, l] P_{t-1}[l, i, j] + delta_ki z_t[j])
        dL/dW[i, j] = sum_t sum_k g_t[k] P_t[k, i, j]

    Under teacher forcing the sensitivities of a forced unit are zeroed after its error is taken.
    h0 has no sensitivity (``grads.h0`` is None).
    """
    T, B, m = x.shape
    n = net.n_hidden
    J = m + 1 + n
    h0, mask = defaults(net, x, d, mask, h0, loss)
    a, h, fed = run(net, x, h0, d, mask, teacher_forcing)
    L, g, dW_out, db_out = readout_grads(net, h, d, mask, loss)
    P = np.zeros((B, n, n, J), dtype=net.dtype)
    dW = np.zeros((n, J), dtype=net.dtype)
    for t in range(1, T + 1):
        z = np.concatenate([x[t - 1], np.ones((B, 1), dtype=net.dtype), fed[t - 1]], axis=1)
        P_new = (net.W_rec @ P.reshape(B, n, n * J)).reshape(B, n, n, J)
        for i in range(n):
            P_new[:, i, i, :] += z
        P_new *= phi_prime(a[t - 1], net.activation)[:, :, None, None]
        dW += np.einsum("bk,bkij->ij", g[t - 1], P_new)
        if teacher_forcing:
            for k, unit in enumerate(net.out_units):
                P_new[mask[t - 1, :, k] != 0, unit] = 0
        P = P_new
    return L, Gradients(dW[:, :m].copy(), dW[:, m + 1:].copy(), dW[:, m].copy(), dW_out, db_out, None)
