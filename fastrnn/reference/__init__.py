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

from .._docs import fill
from . import common, gru, lstm, lstmp, rnn  # noqa: F401  (attributes; cell() finds them by name)


def cell(net):
    """The reference module of ``net``'s cell: the module of this package named after the model's
    ``cell`` (a new cell's reference needs no registration)."""
    return importlib.import_module(f"{__name__}.{net.cell}")


_NOT_CHECKED = """    Raises
    ------
    ValueError, IndexError
        Nothing of its own: the reference takes its inputs as given (the public calls in
        ``fastrnn`` check them), so a wrong shape surfaces as NumPy's error."""


def forward(net, x, h0=None):
    """The states and outputs of a forward pass, as :func:`fastrnn.forward` (SPEC §2, §6).

    Parameters
    ----------
    net : RNN, LSTM, LSTMP or GRU
    x : (T, B, m) array
    h0 : (B, n) array, or a tuple of one array per state (an LSTM: (h0, c0)), optional
        Zeros when None.

    Returns
    -------
    h : (T + 1, B, n) array
        ``h[0] = h0``.
    y : (T, B, o) array
        The readout at every step.
    *states : (T + 1, B, n) arrays
        The cell's other states, after y (an LSTM: c).

    {raises}

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.LSTM.init(2, 3, 1, seed=0)
    >>> x = np.ones((4, 2, 2))
    >>> h, y, c = fastrnn.reference.forward(net, x)
    >>> bool(np.allclose(h, fastrnn.forward(net, x).h, rtol=1e-12))
    True
    """
    return cell(net).forward(net, x, h0)


def bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None, teacher_forcing=False):
    """Loss and gradients by exact or truncated BPTT (SPEC §4, §6), as :func:`fastrnn.bptt`.

    Parameters
    ----------
    net : RNN, LSTM, LSTMP or GRU
    x : (T, B, m) array
    d : (T, B, o) targets, or (T, B) integer class ids for ``loss="xent"``
    mask : (T, B, o) or (T, B) array of 0/1, optional
    loss : {"mse", "xent", "bce"}
    truncation : None, int k or (h, h_prime)
        As in :func:`fastrnn.bptt`.
    h0 : (B, n) array or a tuple of one array per state, optional
    teacher_forcing : bool
        The units readout with mse: output units with a target feed it back.

    Returns
    -------
    loss : float
    grads : the net's gradient container
        With the initial states' gradients (``h0``, ``c0``).

    {raises}

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
    """Loss and gradients by exact RTRL (SPEC §5, §6), as :func:`fastrnn.rtrl`: the sensitivities
    P_t = dh_t/dW carried forward step by step, written out with ``einsum``.

    Parameters
    ----------
    net : RNN, LSTM or GRU
    x : (T, B, m) array
    d : (T, B, o) targets, or (T, B) integer class ids for ``loss="xent"``
    mask : (T, B, o) or (T, B) array of 0/1, optional
    loss : {"mse", "xent", "bce"}
    h0 : (B, n) array or a tuple of one array per state, optional
    teacher_forcing : bool
        The units readout with mse: output units with a target feed it back.

    Returns
    -------
    loss : float
    grads : the net's gradient container
        The initial states' fields are None.

    {raises}

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.GRU.init(2, 3, 1, seed=0)
    >>> x, d = np.ones((5, 1, 2)), np.zeros((5, 1, 1))
    >>> by_rtrl = fastrnn.reference.rtrl(net, x, d)[1]
    >>> by_bptt = fastrnn.reference.bptt(net, x, d)[1]
    >>> bool(np.allclose(by_rtrl.W_hh, by_bptt.W_hh, rtol=1e-10))
    True
    """
    extra = {"teacher_forcing": True} if teacher_forcing else {}
    return cell(net).rtrl(net, x, d, mask, loss, h0, **extra)


def vjp(net, x, dh, h0=None, final=None, truncation=None):
    """The vector-Jacobian product of the recurrence (SPEC §6b), as :func:`fastrnn.vjp`.

    Parameters
    ----------
    net : RNN, LSTM, LSTMP or GRU
    x : (T, B, m) array
    dh : (T, B, n) array
        Upstream errors dL/dh_t.
    h0 : (B, n) array or a tuple of one array per state, optional
    final : array, tuple or None
        The errors injected into the final states: one array or None per state (a single
        state: the array itself).
    truncation : None, int k or (h, h_prime)

    Returns
    -------
    grads : the net's gradient container
        The cell's weights (no readout entries).
    dx : (T, B, m) array
    dstate0 : the errors reaching the initial states (an array, or a tuple per state)

    {raises}

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(3, 4, 1, seed=0)
    >>> x, dh = np.ones((5, 2, 3)), np.full((5, 2, 4), 0.1)
    >>> grads, dx, dh0 = fastrnn.reference.vjp(net, x, dh)
    >>> ours = fastrnn.vjp(net, x, dh)
    >>> bool(np.allclose(ours[0].W_rec, grads.W_rec, rtol=1e-12) and np.allclose(ours[1], dx, rtol=1e-12))
    True
    """
    return cell(net).vjp(net, x, dh, h0, final, truncation)


def total_loss(net, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False):
    """The summed loss L = sum_t L_t of a forward pass (what the finite-difference checks perturb).

    Parameters
    ----------
    net : RNN, LSTM, LSTMP or GRU
    x : (T, B, m) array
    d : (T, B, o) targets, or (T, B) integer class ids for ``loss="xent"``
    mask : (T, B, o) or (T, B) array of 0/1, optional
    loss : {"mse", "xent", "bce"}
    h0 : (B, n) array or a tuple of one array per state, optional
    teacher_forcing : bool

    Returns
    -------
    float

    {raises}

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(3, 5, 2, seed=0)
    >>> x, d = np.ones((4, 2, 3)), np.zeros((4, 2, 2))
    >>> bool(np.isclose(fastrnn.reference.total_loss(net, x, d), fastrnn.bptt(net, x, d)[0]))
    True
    """
    return common.total_loss(net, cell(net).states, x, d, mask, loss, h0, teacher_forcing)


for _f in (forward, bptt, rtrl, vjp, total_loss):
    fill(_f, "    {raises}", _NOT_CHECKED)
del _f
