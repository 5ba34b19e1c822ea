"""Readouts and losses, vectorised over all T*B rows (SPEC §2, "Readouts" and "Losses"); the squared error
of a units readout, and of a linear one with identity outputs, in one compiled pass (``kernels.readout``).

The loss becomes the error ``g_t = dL_t/dh_t`` injected into the hidden state at each step; the
recurrent kernels see only ``g``. Readout gradients are direct sums over time.
"""
import numpy as np

from .kernels.readout import linear_mse, units_mse
from .runtime import workspace

READOUTS = ("units", "linear")
OUT_ACTIVATIONS = ("identity", "logistic", "tanh", "softmax")
LOSSES = ("mse", "xent", "bce")


def _rows(a):
    return a.reshape(-1, a.shape[-1])


def _softmax(r):
    e = np.exp(r - r.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def outputs(net, W, h1):
    """Readout of the states ``h1`` (T, B, n) -> ``r`` (pre-activation / logits), ``y`` (outputs)."""
    if net.readout == "units":
        r = h1[..., net.out_units]
        return r, r
    T, B, n = h1.shape
    r = (_rows(h1) @ W["W_out"].T).reshape(T, B, -1)
    if "b_out" in W:
        r += W["b_out"]
    act = net.out_activation
    if act == "identity":
        y = r
    elif act == "logistic":
        y = np.empty_like(r)
        pos = r >= 0
        y[pos] = 1 / (1 + np.exp(-r[pos]))
        e = np.exp(r[~pos])
        y[~pos] = e / (1 + e)
    elif act == "tanh":
        y = np.tanh(r)
    else:
        y = _softmax(r)
    return r, y


def loss_and_grad(net, r, y, d, mask, loss):
    """Summed loss and its gradient with respect to ``r`` (T, B, o). ``mask`` is broadcastable."""
    if loss == "mse":
        diff = y - d
        e = mask * diff
        L = 0.5 * np.sum(e * diff)
        act = net.out_activation
        if act == "identity":
            dr = e
        elif act == "logistic":
            dr = e * y * (1 - y)
        elif act == "tanh":
            dr = e * (1 - y * y)
        else:   # softmax: J^T e
            dr = y * (e - np.sum(e * y, axis=-1, keepdims=True))
        return L, dr
    if loss == "xent":
        m = mask   # (T, B, 1)
        shift = r - r.max(axis=-1, keepdims=True)
        logz = np.log(np.exp(shift).sum(axis=-1, keepdims=True))
        logp = shift - logz
        picked = np.take_along_axis(logp, d[..., None], axis=-1)
        L = -np.sum(m * picked)
        dr = np.exp(logp)
        np.put_along_axis(dr, d[..., None], np.take_along_axis(dr, d[..., None], axis=-1) - 1, axis=-1)
        return L, m * dr
    # bce on logits r, stable form
    L = np.sum(mask * (np.maximum(r, 0) - r * d + np.log1p(np.exp(-np.abs(r)))))
    s = np.empty_like(r)
    pos = r >= 0
    s[pos] = 1 / (1 + np.exp(-r[pos]))
    ex = np.exp(r[~pos])
    s[~pos] = ex / (1 + ex)
    return L, mask * (s - d)


def _unit_run(units):
    """The slice of a units readout's ``out_units`` when they are consecutive, ascending units (the
    default: the first o), else None. A slice reads the outputs as a view of the states and writes
    their errors without gathering and scattering by index: in a float64 gradient call at B=1, n=128,
    o=32, T=1000 (4.2-4.7 ms), ``injected_errors`` took 0.21 ms by index, 0.09 ms by slice (ad hoc).
    Asked in Python on a list: NumPy's operations on the 32 indices took some 50 us inside such a call."""
    listed = units.tolist()
    first = listed[0]
    if listed == list(range(first, first + len(listed))):
        return slice(first, first + len(listed))
    return None


def inject(net, W, dr, h1, g, run=None):
    """Write the error injected into each h_t into ``g`` (T, B, n, C-contiguous); return the
    readout gradients (dW_out, db_out). ``run``: the units readout's ``_unit_run``, if any."""
    n = h1.shape[-1]
    if net.readout == "units":
        if run is None:
            g[...] = 0
            g[..., net.out_units] = dr
        else:
            g[..., :run.start] = 0
            g[..., run] = dr
            g[..., run.stop:] = 0
        return None, None
    rows = _rows(dr)
    np.matmul(rows, W["W_out"], out=g.reshape(-1, n))
    dW_out = rows.T @ _rows(h1)
    db_out = column_sums(rows) if "b_out" in W else None
    return dW_out, db_out


def column_sums(rows):
    """The sum of the rows of a 2-d array, as a matrix-vector product with a vector of ones: NumPy's
    ``sum(axis=0)`` adds one row at a time, 3-12x slower on the T·B rows of a gradient and less exact
    in float32 (one thread, ad hoc: (3200, 8) 76 us against 6, (3200, 128) 114 against 41, float32 error
    against a float64 sum 1.7e-4 against 8.2e-5). The BLAS is on one thread during fastrnn's calls."""
    return np.ones(rows.shape[0], rows.dtype) @ rows


def injected_errors(net, W, h1, d, mask, loss, read=None):
    """Loss, injected errors g (T, B, n) (a per-thread scratch array) and readout gradients for
    the states h1 (T, B, n). ``mask`` is the one ``checks.Problem.readout_mask`` gives;
    ``read`` the (r, y) of ``outputs(net, W, h1)`` if the caller has them already."""
    run = _unit_run(net.out_units) if net.readout == "units" else None
    if read is None and run is not None and loss == "mse":      # one compiled pass (``kernels.readout``)
        g = workspace.scratch("g", h1.shape, net.dtype)
        return float(units_mse(h1, run.start, d, mask, g)), g, None, None
    if read is None and loss == "mse" and net.readout == "linear" and net.out_activation == "identity" and LINEAR_PASS:
        return _linear_pass(net, W, h1, d, mask)
    if read is None and run is not None:
        read = (h1[..., run],) * 2           # a view of the states, only read here (never handed out)
    r, y = outputs(net, W, h1) if read is None else read
    L, dr = loss_and_grad(net, r, y, d, mask, loss)
    g = workspace.scratch("g", h1.shape, net.dtype)
    dW_out, db_out = inject(net, W, dr, h1, g, run)
    return float(L), g, dW_out, db_out


# A linear readout with identity outputs and the squared error takes one compiled pass (``_linear_pass``); False
# sends it through NumPy's formula as every other readout, for the tests and benches that compare the two.
# Whole gradient calls, T=100, m=32, o=8, the pass against NumPy's, interleaved (``python bench/readout_pass.py
# 150``, bench/results/2026-11-28-readout-pass-and-table.md): one thread, float32 simple cell n=128 B=8 0.94,
# LSTM 0.98, GRU 0.98, simple cell n=512 0.98; float64 simple cell n=128 B=32 0.97, LSTM B=8 0.99, GRU 0.98;
# float32 LSTM n=32 B=1 at default threads 0.89.
LINEAR_PASS = True


def _linear_pass(net, W, h1, d, mask):
    """``injected_errors`` for a linear readout with identity outputs and the squared error, in one
    compiled pass (``kernels.readout``)."""
    g = workspace.scratch("g", h1.shape, net.dtype)
    W_out = W["W_out"]
    b_out = W.get("b_out")
    dW_out = np.empty(W_out.shape, net.dtype)
    db_out = np.empty(W_out.shape[0], net.dtype) if b_out is not None else None
    none = workspace.at_least("no bias", 0, net.dtype)
    L = linear_mse(h1, W_out, none if b_out is None else b_out, d, mask, g, dW_out, none if db_out is None else db_out)
    return float(L), g, dW_out, db_out
