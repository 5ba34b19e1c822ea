"""The GRU in plain NumPy (SPEC §6a, torch.nn.GRU's gate order r, z, n): forward, BPTT (exact and
truncated), the vector-Jacobian product and exact RTRL. Written to be read, not to be fast.

RTRL for the GRU. Write the parameters as one matrix W = [W_ih | b_ih | W_hh | b_hh] of shape
(3n, J), J = m + n + 2, and ẑ_t = [x_t; 1; h_{t-1}; 1]. Row p of W feeds gate block p // n at unit
k = p % n. With P_t[k, p, j] = ∂h_t[k] / ∂W[p, j] (P_0 = 0) and A = W_hh P_{t-1} (3n x 3n·J), split
into A_r, A_z, A_q (rows 0..n, n..2n, 2n..3n):

    ∂a_r[k] = A_r[k] + δ(p = k) ẑ                   (r's pre-activation)
    ∂a_z[k] = A_z[k] + δ(p = n + k) ẑ
    ∂q[k]   = A_q[k] + δ(p = 2n + k) [0; 0; h_{t-1}; 1]      (q = W_hn h_{t-1} + b_hn)
    ∂a_n[k] = δ(p = 2n + k) [x_t; 1; 0; 0] + r ∂q[k] + q r(1 − r) ∂a_r[k]
    P_t[k]  = z P_{t-1}[k] + (1 − z)(1 − n²) ∂a_n[k] + (h_{t-1} − n) z(1 − z) ∂a_z[k]

and ∂L/∂W = Σ_t Σ_k g_t[k] P_t[k]. The state Jacobian this carries is SPEC §6a's
∂h_t/∂h_{t-1} = diag(z) + diag(α_r) W_hr + diag(α_z) W_hz + diag(α_n) W_hn with
α_r = (1 − z)(1 − n²) q r(1 − r), α_z = (h_{t-1} − n) z(1 − z), α_n = (1 − z)(1 − n²) r.
O(n⁴) work and n·3n·J numbers per sequence, as for the other cells. h0 has no sensitivity.
"""
import numpy as np

from ..models import GRUGradients
from .common import defaults, readout, readout_grads, sigmoid, sweeps


def run(net, x, h0=None):
    """The GRU recursion. Returns gates (T, B, 4n) = [r, z, n, q] (q = W_hn h_{t-1} + b_hn) and
    h (T + 1, B, n)."""
    T, B, _ = x.shape
    n = net.n_hidden
    h = np.zeros((T + 1, B, n), dtype=net.dtype)
    gates = np.zeros((T, B, 4 * n), dtype=net.dtype)
    if h0 is not None:
        h[0] = h0
    for t in range(1, T + 1):
        gi = x[t - 1] @ net.W_ih.T + net.b_ih
        gh = h[t - 1] @ net.W_hh.T + net.b_hh
        r = sigmoid(gi[:, :n] + gh[:, :n])
        z = sigmoid(gi[:, n:2 * n] + gh[:, n:2 * n])
        q = gh[:, 2 * n:]
        nn = np.tanh(gi[:, 2 * n:] + r * q)
        h[t] = (1 - z) * nn + z * h[t - 1]
        gates[t - 1] = np.concatenate([r, z, nn, q], axis=1)
    return gates, h


def states(net, x, h0=None, d=None, mask=None, teacher_forcing=False):
    """The states h (T + 1, B, n) the readout sees."""
    return run(net, x, h0)[1]


def forward(net, x, h0=None):
    """h (T + 1, B, n) and outputs y (T, B, o)."""
    _, h = run(net, x, h0)
    y = np.stack([readout(net, h[t])[1] for t in range(1, h.shape[0])])
    return h, y


def backward(net, x, gates, h, g, truncation):
    """The sweeps of BPTT(h; h') for injected errors g (T, B, n):
    (dW_ih, dW_hh, db_ih, db_hh, dh0, dx).

        dh = g_t + (error from step t + 1)
        dn = dh (1 − z),  dz = dh (h_{t-1} − n),  da_n = dn (1 − n²),  da_r = da_n q r(1 − r),
        da_z = dz z(1 − z),  dq = da_n r
        error to h_{t-1}: dh z + W_hr^T da_r + W_hz^T da_z + W_hn^T dq
    """
    T, B, _ = x.shape
    n = net.n_hidden
    dW_ih, dW_hh = np.zeros_like(net.W_ih), np.zeros_like(net.W_hh)
    db_ih, db_hh = np.zeros_like(net.b_ih), np.zeros_like(net.b_hh)
    dh0 = np.zeros((B, n), dtype=net.dtype)
    dx = np.zeros_like(x)
    for start, end, low in sweeps(T, truncation):
        dh_next = np.zeros((B, n), dtype=net.dtype)
        for t in range(end, low, -1):
            r, z = gates[t - 1][:, :n], gates[t - 1][:, n:2 * n]
            nn, q = gates[t - 1][:, 2 * n:3 * n], gates[t - 1][:, 3 * n:]
            dh = (g[t - 1] if t > start else 0) + dh_next
            da_n = dh * (1 - z) * (1 - nn ** 2)
            da_r = da_n * q * r * (1 - r)
            da_z = dh * (h[t - 1] - nn) * z * (1 - z)
            dq = da_n * r
            d_in = np.concatenate([da_r, da_z, da_n], axis=1)
            d_hid = np.concatenate([da_r, da_z, dq], axis=1)
            dW_ih += d_in.T @ x[t - 1]
            db_ih += d_in.sum(axis=0)
            dW_hh += d_hid.T @ h[t - 1]
            db_hh += d_hid.sum(axis=0)
            dx[t - 1] += d_in @ net.W_ih
            dh_next = dh * z + d_hid @ net.W_hh
            if t == 1:
                dh0 += dh_next
    return dW_ih, dW_hh, db_ih, db_hh, dh0, dx


def bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None):
    """Exact or truncated BPTT through the GRU (the sweeps of SPEC §4)."""
    h0, mask = defaults(net, x, d, mask, h0, loss)
    gates, h = run(net, x, h0)
    L, g, dW_out, db_out = readout_grads(net, h, d, mask, loss)
    dW_ih, dW_hh, db_ih, db_hh, dh0, _ = backward(net, x, gates, h, g, truncation)
    return L, GRUGradients(dW_ih, dW_hh, db_ih, db_hh, dW_out, db_out, dh0)


def vjp(net, x, dh, h0=None, dh_T=None, truncation=None):
    """SPEC §6b: the upstream gradient dh (T, B, n) injected as g. Returns (grads, dx, dh0)."""
    gates, h = run(net, x, h0)
    g = dh.copy()
    if dh_T is not None:
        g[-1] = g[-1] + dh_T
    dW_ih, dW_hh, db_ih, db_hh, dh0, dx = backward(net, x, gates, h, g, truncation)
    return GRUGradients(dW_ih, dW_hh, db_ih, db_hh, h0=dh0), dx, dh0


def rtrl(net, x, d, mask=None, loss="mse", h0=None):
    """Exact RTRL for the GRU (the recursion in this module's docstring)."""
    T, B, m = x.shape
    n = net.n_hidden
    J = m + n + 2
    h0, mask = defaults(net, x, d, mask, h0, loss)
    gates, h = run(net, x, h0)
    L, g, dW_out, db_out = readout_grads(net, h, d, mask, loss)
    P = np.zeros((B, n, 3 * n, J), dtype=net.dtype)
    dW = np.zeros((3 * n, J), dtype=net.dtype)
    one = np.ones((B, 1), dtype=net.dtype)
    zero_x = np.zeros((B, m + 1), dtype=net.dtype)
    zero_h = np.zeros((B, n + 1), dtype=net.dtype)
    for t in range(1, T + 1):
        r, z = gates[t - 1][:, :n], gates[t - 1][:, n:2 * n]
        nn, q = gates[t - 1][:, 2 * n:3 * n], gates[t - 1][:, 3 * n:]
        full = np.concatenate([x[t - 1], one, h[t - 1], one], axis=1)       # ẑ_t
        hidden = np.concatenate([zero_x, h[t - 1], one], axis=1)            # [0; 0; h; 1]
        inputs = np.concatenate([x[t - 1], one, zero_h], axis=1)            # [x; 1; 0; 0]
        A = (net.W_hh @ P.reshape(B, n, 3 * n * J)).reshape(B, 3 * n, 3 * n, J)
        a_r, a_z, a_q = A[:, :n].copy(), A[:, n:2 * n].copy(), A[:, 2 * n:].copy()
        a_in = np.zeros_like(a_r)
        for k in range(n):
            a_r[:, k, k, :] += full
            a_z[:, k, n + k, :] += full
            a_q[:, k, 2 * n + k, :] += hidden
            a_in[:, k, 2 * n + k, :] += inputs

        def col(v):
            return v[:, :, None, None]
        a_n = a_in + col(r) * a_q + col(q * r * (1 - r)) * a_r
        P = col(z) * P + col((1 - z) * (1 - nn ** 2)) * a_n + col((h[t - 1] - nn) * z * (1 - z)) * a_z
        dW += np.einsum("bk,bkpj->pj", g[t - 1], P)
    grads = GRUGradients(dW[:, :m].copy(), dW[:, m + 1:m + 1 + n].copy(), dW[:, m].copy(),
                         dW[:, m + 1 + n].copy(), dW_out, db_out, None)
    return L, grads
