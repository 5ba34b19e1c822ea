"""The plain NumPy reference: SPEC §2-5 for the simple cell, written to be read, not to be fast.

Every kernel result is checked against these functions (the tests, and ``validate=True``).
Loops run over time (and over truncation sweeps) exactly as the equations are written; only the
batch axis is vectorised. Inputs are taken as given: the public calls in ``fastrnn`` validate
them first.

Conventions (SPEC §1): x (T, B, m) time-major; d (T, B, o), or class ids (T, B) for ``xent``;
mask (T, B, o) or (T, B), None meaning all ones; h (T + 1, B, n) with h[0] = h0.
Losses are sums over time, batch and outputs.
"""
import numpy as np

from ._model import Gradients, LSTMGradients


# -- the cell --------------------------------------------------------------------------------
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


def readout(net, h_t):
    """One step's readout: (r_t, y_t) for h_t of shape (B, n). r_t is what the loss sees as logits."""
    if net.readout == "units":
        r = h_t[:, net.out_units]
        return r, r
    r = h_t @ net.W_out.T
    if net.b_out is not None:
        r = r + net.b_out
    if net.out_activation == "identity":
        return r, r
    if net.out_activation == "logistic":
        return r, 1.0 / (1.0 + np.exp(-r))
    if net.out_activation == "tanh":
        return r, np.tanh(r)
    e = np.exp(r - r.max(axis=1, keepdims=True))
    return r, e / e.sum(axis=1, keepdims=True)


def step_loss(net, r_t, y_t, d_t, m_t, loss):
    """Loss at one step and dL_t/dr_t. m_t is (B, o) for mse/bce, (B,) for xent."""
    if loss == "mse":
        e = m_t * (y_t - d_t)
        L = 0.5 * np.sum(m_t * (y_t - d_t) ** 2)
        if net.out_activation == "identity":
            return L, e
        if net.out_activation == "logistic":
            return L, e * y_t * (1 - y_t)
        if net.out_activation == "tanh":
            return L, e * (1 - y_t ** 2)
        jac_e = np.einsum("bk,bkj->bj", e, np.einsum("bk,kj->bkj", y_t, np.eye(y_t.shape[1]))
                          - np.einsum("bk,bj->bkj", y_t, y_t))
        return L, jac_e
    if loss == "xent":
        B = r_t.shape[0]
        logp = r_t - r_t.max(axis=1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
        L = -np.sum(m_t * logp[np.arange(B), d_t])
        onehot = np.zeros_like(r_t)
        onehot[np.arange(B), d_t] = 1
        return L, m_t[:, None] * (np.exp(logp) - onehot)
    # bce: sum m * (-d log s(r) - (1 - d) log(1 - s(r))) in its overflow-free form
    L = np.sum(m_t * (np.maximum(r_t, 0) - r_t * d_t + np.log1p(np.exp(-np.abs(r_t)))))
    return L, m_t * (1.0 / (1.0 + np.exp(-r_t)) - d_t)


def inject(net, dr_t):
    """g_t = dL_t/dh_t from dL_t/dr_t (units readout: scatter into the output units)."""
    if net.readout == "units":
        g = np.zeros((dr_t.shape[0], net.n_hidden), dtype=dr_t.dtype)
        g[:, net.out_units] = dr_t
        return g
    return dr_t @ net.W_out


# -- forward ---------------------------------------------------------------------------------
def _defaults(net, x, d, mask, h0, loss):
    T, B, _ = x.shape
    if h0 is None:
        h0 = np.zeros((B, net.n_hidden), dtype=net.dtype)
    if mask is None:
        mask = np.ones((T, B) if loss == "xent" else (T, B, net.n_out), dtype=net.dtype)
    mask = np.asarray(mask).astype(net.dtype)
    if loss != "xent" and mask.ndim == 2:
        mask = np.repeat(mask[:, :, None], net.n_out, axis=2)
    return h0, mask


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


def forward(net, x, h0=None):
    """h (T + 1, B, n) and outputs y (T, B, o); for an LSTM also c (T + 1, B, n): (h, y, c)."""
    if net.cell == "lstm":
        return lstm_forward(net, x, h0)
    _, h, _ = run(net, x, h0)
    y = np.stack([readout(net, h[t])[1] for t in range(1, h.shape[0])])
    return h, y


def total_loss(net, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False):
    """The summed loss L = sum_t L_t (used by the finite-difference checks)."""
    if net.cell == "lstm":
        h0, c0 = split_state(net, x, h0)
        _, mask = _defaults(net, x, d, mask, h0, loss)
        h = lstm_run(net, x, h0, c0)[1]
    else:
        h0, mask = _defaults(net, x, d, mask, h0, loss)
        _, h, _ = run(net, x, h0, d, mask, teacher_forcing)
    L = 0.0
    for t in range(1, x.shape[0] + 1):
        r, y = readout(net, h[t])
        L += step_loss(net, r, y, d[t - 1], mask[t - 1], loss)[0]
    return float(L)


def _readout_grads(net, h, d, mask, loss):
    """Loss, the injected errors g (T, B, n) and the readout weight gradients."""
    T = h.shape[0] - 1
    L = 0.0
    g = np.zeros((T,) + h.shape[1:], dtype=net.dtype)
    dW_out = None if net.W_out is None else np.zeros_like(net.W_out)
    db_out = None if net.b_out is None else np.zeros_like(net.b_out)
    for t in range(1, T + 1):
        r, y = readout(net, h[t])
        L_t, dr = step_loss(net, r, y, d[t - 1], mask[t - 1], loss)
        L += L_t
        g[t - 1] = inject(net, dr)
        if dW_out is not None:
            dW_out += dr.T @ h[t]
        if db_out is not None:
            db_out += dr.sum(axis=0)
    return float(L), g, dW_out, db_out


# -- BPTT ------------------------------------------------------------------------------------
def sweeps(T, truncation):
    """The sweeps of BPTT(h; h'): (start, end, low) — errors injected at steps start+1..end travel
    back to step low+1. None: exact; k: (k, k); (h, h')."""
    if truncation is None:
        th, thp = T, T
    elif isinstance(truncation, (tuple, list)):
        th, thp = truncation
    else:
        th = thp = truncation
    out = []
    end = 0
    while end < T:
        start, end = end, min(end + thp, T)
        out.append((start, end, start if th == thp else max(end - th, 0)))
    return out


def bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None, teacher_forcing=False):
    """Exact BPTT, or truncated BPTT(h; h') (Williams & Peng 1990), SPEC §4.

    truncation: None (exact), k (= BPTT(k; k)) or (h, h_prime). Every h' steps and at step T, the
    errors injected during the last h' steps travel back through at most the last h steps; the
    gradients of all sweeps are summed. With h = h' the sweeps are chunks of h steps: the last,
    shorter chunk stops at its own start too, so BPTT(k; k) is exactly ``detach()`` every k steps.
    """
    if net.cell == "lstm":
        return lstm_bptt(net, x, d, mask, loss, truncation, h0)
    T, B, _ = x.shape
    h0, mask = _defaults(net, x, d, mask, h0, loss)
    a, h, fed = run(net, x, h0, d, mask, teacher_forcing)
    L, g, dW_out, db_out = _readout_grads(net, h, d, mask, loss)
    dW_in = np.zeros_like(net.W_in)
    dW_rec = np.zeros_like(net.W_rec)
    db = np.zeros_like(net.b)
    dh0 = np.zeros_like(h0)
    forced = np.zeros((T, B, net.n_hidden), dtype=bool)
    if teacher_forcing:
        forced[:, :, net.out_units] = mask != 0
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
            if t == 1:
                dh0 += delta @ net.W_rec
            delta_next = delta
    return L, Gradients(dW_in, dW_rec, db, dW_out, db_out, dh0)


# -- RTRL ------------------------------------------------------------------------------------
def rtrl(net, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False):
    """Exact RTRL (Williams & Zipser 1989), SPEC §5, with W = [W_in | b | W_rec] and
    z_t = [x_t; 1; h_{t-1}]:

        P_t[k, i, j] = phi'(a_t[k]) (sum_l W_rec[k, l] P_{t-1}[l, i, j] + delta_ki z_t[j])
        dL/dW[i, j] = sum_t sum_k g_t[k] P_t[k, i, j]

    Under teacher forcing the sensitivities of a forced unit are zeroed after its error is taken.
    h0 has no sensitivity (``grads.h0`` is None).
    """
    if net.cell == "lstm":
        return lstm_rtrl(net, x, d, mask, loss, h0)
    T, B, m = x.shape
    n = net.n_hidden
    J = m + 1 + n
    h0, mask = _defaults(net, x, d, mask, h0, loss)
    a, h, fed = run(net, x, h0, d, mask, teacher_forcing)
    L, g, dW_out, db_out = _readout_grads(net, h, d, mask, loss)
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


# -- LSTM (SPEC §6) --------------------------------------------------------------------------
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def split_state(net, x, h0):
    """(h0, c0) from None, an (B, n) array (c0 = 0) or a pair."""
    B, n = x.shape[1], net.n_hidden
    zeros = np.zeros((B, n), dtype=net.dtype)
    if h0 is None:
        return zeros, zeros.copy()
    if isinstance(h0, (tuple, list)):
        return h0[0], h0[1]
    return h0, zeros


def lstm_run(net, x, h0=None, c0=None):
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


def lstm_forward(net, x, h0=None):
    """(h, y, c) for an LSTM; h0 may be None, h0, or (h0, c0)."""
    h0, c0 = split_state(net, x, h0)
    _, h, c = lstm_run(net, x, h0, c0)
    y = np.stack([readout(net, h[t])[1] for t in range(1, h.shape[0])])
    return h, y, c


def lstm_bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None):
    """Exact or truncated BPTT through the LSTM (same sweeps as the simple cell):

        dh_t = g_t + W_hh^T delta_{t+1},   dc_t = dh_t o tanh'(c_t) + dc_{t+1} f_{t+1}
        delta_t = [dc g i'; dc c_{t-1} f'; dc i g'; dh tanh(c_t) o']   (pre-activation errors)
    """
    T, B, _ = x.shape
    n = net.n_hidden
    h0, c0 = split_state(net, x, h0)
    _, mask = _defaults(net, x, d, mask, h0, loss)
    gates, h, c = lstm_run(net, x, h0, c0)
    L, g, dW_out, db_out = _readout_grads(net, h, d, mask, loss)
    dW_ih, dW_hh = np.zeros_like(net.W_ih), np.zeros_like(net.W_hh)
    db = np.zeros_like(net.b_ih)
    dh0, dc0 = np.zeros_like(h0), np.zeros_like(c0)
    for start, end, low in sweeps(T, truncation):
        dh_next = np.zeros((B, n), dtype=net.dtype)
        dc_next = np.zeros((B, n), dtype=net.dtype)
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
            dh_next = delta @ net.W_hh
            dc_next = dc * f
            if t == 1:
                dh0 += dh_next
                dc0 += dc_next
    return L, LSTMGradients(dW_ih, dW_hh, db, db.copy(), dW_out, db_out, dh0, dc0)


def lstm_rtrl(net, x, d, mask=None, loss="mse", h0=None):
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
    _, mask = _defaults(net, x, d, mask, h0, loss)
    gates, h, c = lstm_run(net, x, h0, c0)
    L, g, dW_out, db_out = _readout_grads(net, h, d, mask, loss)
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
