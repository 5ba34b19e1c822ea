"""forward and bptt for the simple cell: validate, dispatch to the kernels, wrap."""
import numpy as np

from . import _problem, _readout, _workspace, reference
from . import _validate as v
from ._dispatch import call, workers
from ._model import ACTIVATIONS, LSTM, Gradients, RNN
from ._errors import OptionError
from .kernels import _bptt_sweep, _forward, _weight_grads


def _check_net(net):
    if not isinstance(net, (RNN, LSTM)):
        raise OptionError(f"net must be a fastrnn.RNN or fastrnn.LSTM, got {type(net).__name__}")


def run_forward(net, W, x, h0, forcing, threads, out=None):
    """The states h (T + 1, B, n), unforced; h[0] = h0. Written into ``out`` if given."""
    T, B, _ = x.shape
    h = np.empty((T + 1, B, net.n_hidden), dtype=net.dtype) if out is None else out
    h[0] = h0
    call(_forward, threads, B, x, W["W_in"], W["W_rec"], W["b"], h,
         ACTIVATIONS.index(net.activation), *forcing)
    return h


def forward(net, x, h0=None):
    """Run the network over a sequence.

    Parameters
    ----------
    net : RNN or LSTM
    x : (T, B, m) array, time-major, in the net's dtype
    h0 : (B, n) array, optional (zeros); for an LSTM also a pair (h0, c0)

    Returns
    -------
    h : (T + 1, B, n) array, ``h[0] = h0``
    y : (T, B, o) array, the readout at every step
    c : (T + 1, B, n) array, the cell states — LSTM only, so an LSTM returns ``(h, y, c)``

    Notes
    -----
    SPEC §2-3, §6.
    """
    _check_net(net)
    if net.cell == "lstm":
        from ._lstm import forward as lstm_forward
        return lstm_forward(net, x, h0)
    W, x, h0, _ = _problem.inputs(net, x, h0)
    with workers() as threads:
        h = run_forward(net, W, x, h0, _problem.Problem(W, x, h0).forcing(net), threads)
    return h, _readout.outputs(net, W, h[1:])[1]


def fed_states(net, p, h):
    """The states fed into steps 1..T (h_{t-1}), with teacher-forced outputs replaced."""
    prev = h[:-1]
    if not p.teacher_forcing:
        return prev
    prev = prev.copy()
    S = net.out_units
    prev[1:, :, S] = np.where(p.mask[:-1] != 0, p.d[:-1], prev[1:, :, S])
    return prev


def readout_errors(net, p, h):
    """Loss, injected errors g (T, B, n) (a scratch array) and readout gradients for states h."""
    r, y = _readout.outputs(net, p.W, h[1:])
    L, dr = _readout.loss_and_grad(net, r, y, p.d, p.readout_mask(), p.loss)
    g = _workspace.scratch("g", h[1:].shape, net.dtype)
    dW_out, db_out = _readout.inject(net, p.W, dr, h[1:], g)
    return float(L), g, dW_out, db_out


def internal_states(net, p):
    """A scratch (T + 1, B, n) array for the states of a gradient call."""
    T, B, _ = p.x.shape
    return _workspace.scratch("h", (T + 1, B, net.n_hidden), net.dtype)


def bptt(net, x, d, mask=None, loss="mse", truncation=None, h0=None, validate=False,
         teacher_forcing=False):
    """Loss and exact gradients by backpropagation through time, exact or truncated.

    Parameters
    ----------
    net : RNN or LSTM
    x : (T, B, m) array
    d : (T, B, o) targets, or (T, B) integer class ids for ``loss="xent"``
    mask : (T, B, o) or (T, B) array of 0/1, optional
        1 where a target exists at that step (Williams & Zipser's T(t)); None means everywhere.
    loss : {"mse", "xent", "bce"}
        Summed over time, batch and outputs.
    truncation : None, int k or (h, h_prime)
        None: exact BPTT. k: BPTT(k; k), chunks of k steps with no gradient across chunk borders
        (``detach()`` every k steps). (h, h_prime): Williams & Peng's BPTT(h; h'), h >= h' >= 1.
    h0 : (B, n) array, optional; for an LSTM also a pair (h0, c0)
    validate : bool
        Recompute with ``fastrnn.reference`` and raise ``ValidationError`` if any field differs
        beyond SPEC §7's tolerance. ``FASTRNN_VALIDATE=1`` turns it on for every call.
    teacher_forcing : bool
        Units readout with mse only: each output unit with a target feeds back the target.

    Returns
    -------
    loss : float
    grads : Gradients (RNN) or LSTMGradients (LSTM)
        One field per parameter of the net (None where it has none), and ``h0`` (and ``c0``).

    Notes
    -----
    SPEC §4; Williams & Zipser (1995), Williams & Peng (1990).
    """
    _check_net(net)
    p = _problem.problem(net, x, d, mask, loss, h0, teacher_forcing)
    T, B, m = p.x.shape
    th, thp = v.truncation(truncation, T)
    check = _problem.validation_wanted(validate)
    if net.cell == "lstm":
        from ._lstm import bptt as lstm_bptt
        L, grads = lstm_bptt(net, p, th, thp)
        if check:
            ref = reference.bptt(net, p.x, p.d, p.mask, p.loss, truncation, (p.h0, p.c0))
            _problem.compare("fastrnn.bptt", net.dtype, (L, grads), ref)
        return L, grads
    forcing = p.forcing(net)
    n = net.n_hidden
    with workers() as threads:
        h = run_forward(net, p.W, p.x, p.h0, forcing, threads, internal_states(net, p))
        L, g, dW_out, db_out = readout_errors(net, p, h)
        D = _workspace.scratch("D", g.shape, net.dtype)
        call(_bptt_sweep, threads, B, p.W["W_rec"], h, g, ACTIVATIONS.index(net.activation), th, thp,
             forcing[0], forcing[1], forcing[3], D)
        grads = Gradients(np.empty((n, m), net.dtype), np.empty((n, n), net.dtype),
                          np.empty(n, net.dtype), dW_out, db_out, np.empty((B, n), net.dtype))
        call(_weight_grads, threads, T * B, p.x, np.ascontiguousarray(fed_states(net, p, h)), D,
             p.W["W_rec"], grads.W_in, grads.W_rec, grads.b, grads.h0)
    if check:
        ref = reference.bptt(net, p.x, p.d, p.mask, p.loss, truncation, p.h0, p.teacher_forcing)
        _problem.compare("fastrnn.bptt", net.dtype, (L, grads), ref)
    return L, grads
