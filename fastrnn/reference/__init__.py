"""The plain NumPy reference: SPEC §2-6 written to be read, not to be fast.

One module per cell (``rnn``, ``lstm``) beside ``common`` (readouts, losses, truncation sweeps),
so that a cell's kernel, driver and reference can be read side by side. Every kernel result is
checked against these functions (the tests, and ``validate=True``). Inputs are taken as given:
the public calls in ``fastrnn`` validate them first.

Conventions (SPEC §1): x (T, B, m) time-major; d (T, B, o), or class ids (T, B) for ``xent``;
mask (T, B, o) or (T, B), None meaning all ones; h (T + 1, B, n) with h[0] = h0. Losses are sums
over time, batch and outputs. The functions below take any net and call its cell's module.
"""
import importlib

from . import common, gru, lstm, lstmp, rnn  # noqa: F401  (attributes; cell() finds them by name)


def cell(net):
    """The reference module of ``net``'s cell: the module of this package named after the model's
    ``cell`` (a new cell's reference needs no registration)."""
    return importlib.import_module(f"{__name__}.{net.cell}")


def forward(net, x, h0=None):
    """h (T + 1, B, n) and outputs y (T, B, o); then the cell's other states (an LSTM: c)."""
    return cell(net).forward(net, x, h0)


def bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None, teacher_forcing=False):
    """Loss and gradients by exact or truncated BPTT (SPEC §4, §6), as :func:`fastrnn.bptt`.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(3, 5, 2, seed=0)
    >>> x, d = np.ones((4, 2, 3)), np.zeros((4, 2, 2))
    >>> ours, ref = fastrnn.bptt(net, x, d)[1], fastrnn.reference.bptt(net, x, d)[1]
    >>> bool(np.allclose(ours.W_rec, ref.W_rec, rtol=1e-12))
    True
    """
    extra = {"teacher_forcing": True} if teacher_forcing else {}
    return cell(net).bptt(net, x, d, mask, loss, truncation, h0, **extra)


def rtrl(net, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False):
    """Loss and gradients by exact RTRL (SPEC §5, §6)."""
    extra = {"teacher_forcing": True} if teacher_forcing else {}
    return cell(net).rtrl(net, x, d, mask, loss, h0, **extra)


def vjp(net, x, dh, h0=None, final=None, truncation=None):
    """SPEC §6b: gradients for upstream errors dh (T, B, n) = dL/dh_t and ``final``, the errors
    injected into the final states (one array or None per state; a single state: the array).
    Returns (grads, dx, dstate0)."""
    return cell(net).vjp(net, x, dh, h0, final, truncation)


def total_loss(net, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False):
    """The summed loss L = sum_t L_t (used by the finite-difference checks)."""
    return common.total_loss(net, cell(net).states, x, d, mask, loss, h0, teacher_forcing)


__all__ = ["forward", "bptt", "rtrl", "vjp", "total_loss", "cell", "common", "rnn", "lstm", "lstmp", "gru"]
