"""What the cells' references share: the readout, the losses and the injected errors (SPEC §2),
the sweeps of truncated BPTT (SPEC §4), and the summed loss of a whole sequence.

Written to be read, not to be fast; the public calls validate inputs before they get here.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


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



def defaults(net, x, d, mask, h0, loss):
    """h0 (zeros if None) and the mask as an array in the net's dtype, (T, B, o) for mse/bce."""
    T, B, _ = x.shape
    if h0 is None:
        h0 = np.zeros((B, net.n_hidden), dtype=net.dtype)
    if mask is None:
        mask = np.ones((T, B) if loss == "xent" else (T, B, net.n_out), dtype=net.dtype)
    mask = np.asarray(mask).astype(net.dtype)
    if loss != "xent" and mask.ndim == 2:
        mask = np.repeat(mask[:, :, None], net.n_out, axis=2)
    return h0, mask


def readout_grads(net, h, d, mask, loss):
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


def total_loss(net, states, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False):
    """The summed loss L = sum_t L_t of the states ``states(net, x, h0, d, mask, teacher_forcing)``
    returns (the finite-difference checks use it)."""
    _, mask = defaults(net, x, d, mask, None, loss)
    h = states(net, x, h0, d, mask, teacher_forcing)
    L = 0.0
    for t in range(1, x.shape[0] + 1):
        r, y = readout(net, h[t])
        L += step_loss(net, r, y, d[t - 1], mask[t - 1], loss)[0]
    return float(L)
