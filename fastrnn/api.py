"""The public calls: forward, bptt, rtrl, vjp and OnlineRTRL.

Each one checks its inputs once (``fastrnn.checks``), looks up the driver of the net's cell
(``fastrnn.cells.driver_for``), calls it inside one dispatch of the thread pool, wraps the result
in the net's gradient container, and — with ``validate=True`` — compares it against
``fastrnn.reference`` (``fastrnn.compare``). None of them asks which cell it holds.
"""
import numpy as np

from . import checks, compare, readout, reference
from .cells import driver_for
from .cells.base import bptt_memory, sensitivity_memory
from .errors import NonFiniteError, OptionError, ShapeError
from .models import Gradients
from .runtime import workspace
from .runtime.dispatch import call_work, get_threads, workers


class Outputs(tuple):
    """What :func:`forward` returns: the tuple ``(h, y)`` for the simple cell, ``(h, y, c)`` for
    the LSTM (one (T + 1, B, n) array per state after ``y``), with names.

    Attributes
    ----------
    h : (T + 1, B, n) array, ``h[0] = h0``
    y : (T, B, o) array, the readout at every step
    c : (T + 1, B, n) array, the LSTM's cell states (AttributeError for a cell without them)
    final : the final state: ``h_T`` (B, n), or for a cell with more states the tuple
        ``(h_T, c_T)``; ``h_T`` and ``c_T`` are also attributes.

    Parameters
    ----------
    net : RNN, LSTM, LSTMP or GRU
        The network whose state names the fields take.
    run : the cell driver's forward result (its states)
    y : (T, B, o) array

    :func:`forward` builds it; user code only reads it.

    Raises
    ------
    AttributeError
        For a state the cell does not have (``c`` of a GRU).

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.LSTM.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> out = fastrnn.forward(net, np.ones((4, 2, 2)))
    >>> h, y, c = out                                   # a tuple
    >>> out.h.shape, out.y.shape, out.c.shape, out.h_T.shape
    ((5, 2, 3), (4, 2, 1), (5, 2, 3), (2, 3))
    >>> bool(np.array_equal(out.final[1], c[-1]))
    True
    """

    def __new__(cls, net, run, y):
        self = super().__new__(cls, (run.states[0], y) + tuple(run.states[1:]))
        self._names = net.state_names
        self._run = run
        return self

    def __getattr__(self, name):
        names = self.__dict__.get("_names", ())
        if name == "y":
            return self[1]
        for k, state in enumerate(names):
            if name == state:
                return self._run.states[k]
            if name == f"{state}_T":
                return self._run.states[k][-1]
        raise AttributeError(f"forward's result has no {name!r}: it holds y and the states {', '.join(names)}")

    @property
    def final(self):
        finals = tuple(s[-1] for s in self._run.states)
        return finals[0] if len(finals) == 1 else finals


def _check_states(call, net, run):
    """NonFiniteError naming the state, step, sequence and unit where the forward pass overflowed.

    Inputs and weights are checked to be finite before any kernel runs, so a NaN or infinity
    here arose inside: values too large for the dtype (SPEC §1: never a silent wrong result). A run
    whose kernel found its states finite (``Run.checked``) is not passed over again."""
    if run.checked:
        return
    for name, states in zip(net.state_names, run.states):
        if not checks.all_finite(states):
            t, b, k = (int(i) for i in np.argwhere(~np.isfinite(states))[0])
            raise NonFiniteError(
                f"{call}: the state {name} overflowed to inf or NaN at step {t} (sequence {b}, unit {k}) although "
                f"every input and weight is finite: they are too large for {np.dtype(net.dtype).name}; scale them "
                "down (or use float64)")


def _check_result(call, net, loss, grads):
    """NonFiniteError naming the loss or the gradient that overflowed."""
    if loss is not None and not np.isfinite(loss):
        raise NonFiniteError(f"{call}: the loss overflowed to {loss} although every input and weight is finite: "
                             "the outputs are too large for the loss; scale the inputs, weights or targets down")
    fields = [getattr(grads, k) for k in grads.names] if isinstance(grads, Gradients) else grads.values()
    if checks.all_finite(*(g for g in fields if g is not None)):     # (a Gradients' own values() is slower)
        return
    for name, g in grads.items():
        if not checks.all_finite(g):
            raise NonFiniteError(f"{call}: the gradient {name} overflowed to inf or NaN although every input and "
                                 f"weight is finite: they are too large for {np.dtype(net.dtype).name}; scale them "
                                 "down (or clip the upstream gradient)")


def _initial_state_grads(net, dstate0):
    """The gradient-container fields of the initial states: {"h0": ..., "c0": ...}."""
    return {f"{name}0": g for name, g in zip(net.state_names, dstate0)}


def _state_result(values):
    """One state: the array; several: the tuple."""
    return values[0] if len(values) == 1 else tuple(values)


def forward(net, x, h0=None):
    """Run the network over a sequence.

    Parameters
    ----------
    net : RNN or LSTM
    x : (T, B, m) array, time-major, in the net's dtype
    h0 : (B, n) array, optional (zeros); for an LSTM also a pair (h0, c0)

    Returns
    -------
    Outputs
        The tuple ``(h, y)`` — for an LSTM ``(h, y, c)`` — with ``h`` (T + 1, B, n), ``h[0] = h0``,
        ``y`` (T, B, o) the readout at every step, ``c`` the LSTM's cell states; ``.final`` is the
        final state (``h_T``, or ``(h_T, c_T)``).

    Raises
    ------
    ShapeError, DTypeError, NonFiniteError, OptionError
        For a bad argument (the message names it), or states that overflowed.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=3, n_hidden=5, n_out=2, seed=0)
    >>> out = fastrnn.forward(net, np.ones((4, 2, 3)))
    >>> out.h.shape, out.y.shape, out.final.shape
    ((5, 2, 5), (4, 2, 2), (2, 5))

    Notes
    -----
    SPEC §2-3, §6.
    """
    run, W, y = _states(net, x, h0, read=True)
    if not checks.all_finite(y):
        raise NonFiniteError("fastrnn.forward: the readout overflowed to inf or NaN although the states are finite: "
                             "W_out or b_out is too large")
    return Outputs(net, run, y)


def _states(net, x, h0, checked=False, read=False):
    """The checked forward pass: (run, checked weights), with ``checked`` also the checked x, with
    ``read`` also the readout's outputs y (``forward``; layers that use the states alone,
    ``fastrnn.torch``, call ``states_only``).

    The readout's product runs inside the call's block, with every BLAS held to one thread as for
    the kernels: after it, NumPy's OpenBLAS took it on two threads, and where the other core was
    busy (a torch operation's threads spinning just before) the product waited for it: a float32
    LSTM ``forward`` call, n=128, B=32, T=100, one fastrnn thread, took 9.9 ms right after a
    two-thread ``torch.mm`` against 6.3 after a pause, the kernel itself 6.6 against 6.3; 7.3 with
    the readout held (ad hoc; bench/results/2026-11-26-readout-threads-and-least-time.md)."""
    driver = driver_for(net)
    W, x, state0 = checks.inputs(net, x, h0)
    with workers(call_work(W, *x.shape[:2], 1)) as threads:
        run = driver.forward(net, W, x, state0, checks.Forcing.off(net.dtype), threads)
        _check_states("fastrnn.forward", net, run)
        y = readout.outputs(net, W, run.h[1:])[1] if read else None
    return (run, W) + ((x,) if checked else ()) + ((y,) if read else ())


def states_only(net, x, h0=None):
    """``forward`` without the readout (its ``y`` is None), for callers that use the states alone
    and pass the result back to ``vjp(states=...)``; internal to fastrnn's bridges."""
    return Outputs(net, _states(net, x, h0)[0], None)


class Checked:
    """A forward pass (``run``, the cell driver's result) and the checked arrays it ran on (weights
    ``W``, sequence ``x``), kept by a bridge between its forward and backward calls so that
    ``vjp_checked`` need not check them again; internal to fastrnn's bridges, which must keep the
    arrays from changing in between (``fastrnn.torch`` lets autograd's version counters refuse
    tensors modified in place)."""

    __slots__ = ("net", "W", "x", "run")

    def __init__(self, net, x, h0=None):
        self.run, self.W, self.x = _states(net, x, h0, checked=True)
        self.net = net


def vjp_checked(fwd, dh, dh_T=None, dc_T=None, truncation=None, input_grad=True):
    """``vjp(net, x, dh, h0, states=out, ...)`` for a :class:`Checked` forward pass: the same
    values, without checking again the weights, sequence and states that the forward call checked
    (and, for ``fastrnn.torch``, about 0.1 ms less per layer call). dh and the final-state errors
    are checked as ``vjp`` checks them. The weight gradients come as the cell driver's dict by
    parameter name, not a ``Gradients`` container (building one took 3-8 us of a layer call)."""
    net, x = fwd.net, fwd.x
    T, B, _ = x.shape
    g = _upstream(net, dh, T, B)
    finals = _final_state_errors(net, dh_T, dc_T, B)
    trunc = checks.truncation(truncation, T)
    input_grad = checks.flag("input_grad", input_grad)
    with workers(call_work(fwd.W, T, B, 2)) as threads:
        cell_grads, dstate0, dx = driver_for(net).backward(net, fwd.W, x, fwd.run, g, trunc,
                                                           checks.Forcing.off(net.dtype), threads, dstate_T=finals,
                                                           want_dx=input_grad)
    _check_arrays("fastrnn.vjp", net, dict(cell_grads, **_initial_state_grads(net, dstate0)), dx)
    return cell_grads, dx, _state_result(dstate0)


def _upstream(net, dh, T, B):
    """The checked dL/dh_t copied into this thread's scratch array (the driver writes into it; nothing the
    call returns refers to it), checked in the same pass (``checks.finite_copy``): dL/dh is read once and no
    array is made per call. Alone, float32 (100, 32, 128): 32 us against 47 for a check and then a copy into a
    new array; in a fastrnn.torch training step the two measured level (``bench/layer_copies.py``)."""
    dtype, n = net.dtype, net.n_hidden
    dh_arr = checks.float_array("dh", dh, dtype)
    checks.check_shape("dh", dh_arr, (T, B, n), "(T, B, n)", "dL/dh_t for t = 1..T, like forward's h[1:]")
    return checks.finite_copy("dh", dh_arr, workspace.scratch("upstream dL/dh", (T, B, n), dtype))


def _vjp_result(net, cell_grads, dstate0, dx):
    """(grads, dx, dstate0) of a vjp, checked for overflow (from a plain dict: a Gradients' own
    mapping methods are slower)."""
    fields = dict(cell_grads, **_initial_state_grads(net, dstate0))
    _check_arrays("fastrnn.vjp", net, fields, dx)
    return net.gradients_class(**fields), dx, dstate0


def _check_arrays(call, net, fields, dx):
    """``_check_result`` for a vjp's gradients (a dict, None where a field is absent) and dL/dx (or None)."""
    arrays = [g for g in fields.values() if g is not None]
    if dx is not None:
        arrays.append(dx)
    if checks.all_finite(*arrays):
        return
    named = {k: g for k, g in fields.items() if g is not None}
    _check_result(call, net, None, named if dx is None else dict(named, x=dx))


def _problem(driver, net, x, d, mask, loss, h0, teacher_forcing):
    return checks.problem(net, x, d, mask, loss, h0, teacher_forcing, driver.teacher_forcing)


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

    Raises
    ------
    ShapeError, DTypeError, NonFiniteError, OptionError
        For a bad argument (the message names it), or results that overflowed.
    MemoryBudgetError
        Before allocating, when the states of T steps would exceed the memory budget.
    ValidationError
        With ``validate=True``, when a field differs from the reference.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=3, n_hidden=5, n_out=2, seed=0)
    >>> x, d = np.ones((4, 2, 3)), np.zeros((4, 2, 2))
    >>> loss, grads = fastrnn.bptt(net, x, d, truncation=2, validate=True)
    >>> sorted(grads)
    ['W_in', 'W_rec', 'b', 'h0']

    Notes
    -----
    SPEC §4; Williams & Zipser (1995), Williams & Peng (1990).
    """
    driver = driver_for(net)
    p = _problem(driver, net, x, d, mask, loss, h0, teacher_forcing)
    trunc = checks.truncation(truncation, p.x.shape[0])
    check = compare.validation_wanted(validate)
    bptt_memory(driver, net, *p.x.shape[:2])
    with workers(call_work(p.W, *p.x.shape[:2], 3)) as threads:
        run = driver.forward(net, p.W, p.x, p.state0, p.forcing, threads, scratch=True)
        _check_states("fastrnn.bptt", net, run)
        L, g, dW_out, db_out = readout.injected_errors(net, p.W, run.h[1:], p.d, p.readout_mask(), p.loss)
        cell_grads, dstate0, _ = driver.backward(net, p.W, p.x, run, g, trunc, p.forcing, threads)
    grads = net.gradients_class(**cell_grads, W_out=dW_out, b_out=db_out, **_initial_state_grads(net, dstate0))
    _check_result("fastrnn.bptt", net, L, grads)
    if check:
        ref = reference.bptt(net, p.x, p.d, p.mask, p.loss, truncation, _state_result(p.state0), p.teacher_forcing)
        compare.compare("fastrnn.bptt", net.dtype, (L, grads), ref)
    return L, grads


def _method(driver, net, method, kind):
    allowed = getattr(driver, f"{kind}_methods")
    if not allowed:
        raise OptionError(f"{'rtrl' if kind == 'rtrl' else 'OnlineRTRL'} is not available for {type(net).__name__}: "
                          "compute its gradients with fastrnn.bptt (or fastrnn.vjp)")
    if not isinstance(method, str) or method not in allowed:
        raise OptionError(f"method={method!r} is not available for {type(net).__name__} in "
                          f"{'rtrl' if kind == 'rtrl' else 'OnlineRTRL'}: choose one of {', '.join(map(repr, allowed))}")
    return method


def rtrl(net, x, d, mask=None, loss="mse", teacher_forcing=False, h0=None, validate=False, method="exact",
         block=None):
    """Loss and exact gradients by real-time recurrent learning (Williams & Zipser 1989).

    The same inputs and result as :func:`fastrnn.bptt` (exact), computed forward in time with
    sensitivities ``P_t = dh_t/dW`` of size B·n²·(m + 1 + n): memory independent of T, n⁴ work
    per step. The initial-state fields (``grads.h0``, ``grads.c0``) are None: h0 has no sensitivity.

    ``method="fss"`` (simple cell) computes the same gradient by fixed-size storage (Schmidhuber
    1992): BPTT inside blocks of ``block`` steps (default m + 1 + n, the longest block whose
    storage stays within the sensitivities') with the sensitivities carried only across block
    ends, O(n³) per step instead of O(n⁴) (``fastrnn.reference.online`` writes it out).

    Parameters
    ----------
    net : RNN, LSTM or GRU
        Every cell but the projected LSTM (``LSTMP``), which only :func:`bptt` computes.
    x : (T, B, m) array
    d : (T, B, o) targets, or (T, B) integer class ids for ``loss="xent"``
    mask : (T, B, o) or (T, B) array of 0/1, optional
        1 where a target exists at that step; None means everywhere.
    loss : {"mse", "xent", "bce"}
    teacher_forcing : bool
        Units readout with mse only: each output unit with a target feeds back the target.
    h0 : (B, n) array, optional; for an LSTM also a pair (h0, c0)
    validate : bool
        Recompute with ``fastrnn.reference`` and raise ``ValidationError`` on a difference.
    method : {"exact", "fss"}
        ``"fss"``: the simple cell only.
    block : int, optional
        Steps per block of ``method="fss"``.

    Returns
    -------
    loss : float
    grads : Gradients, LSTMGradients or GRUGradients
        As from :func:`bptt`, with ``h0`` (and ``c0``) None.

    Raises
    ------
    MemoryBudgetError
        Before allocating, when the sensitivities exceed the budget (``fastrnn.set_memory_budget``).
    OptionError
        For a ``method`` the cell does not have, and the errors of :func:`bptt`.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=3, n_hidden=5, n_out=2, seed=0)
    >>> x, d = np.ones((6, 2, 3)), np.zeros((6, 2, 2))
    >>> _, by_rtrl = fastrnn.rtrl(net, x, d)
    >>> _, by_fss = fastrnn.rtrl(net, x, d, method="fss", block=4)
    >>> _, by_bptt = fastrnn.bptt(net, x, d)
    >>> bool(np.allclose(by_rtrl.W_rec, by_bptt.W_rec) and np.allclose(by_fss.W_rec, by_bptt.W_rec))
    True

    Notes
    -----
    SPEC §5. With fixed weights RTRL and BPTT give the same gradient to rounding.
    """
    driver = driver_for(net)
    method = _method(driver, net, method, "rtrl")
    p = _problem(driver, net, x, d, mask, loss, h0, teacher_forcing)
    check = compare.validation_wanted(validate)
    bptt_memory(driver, net, *p.x.shape[:2])
    if method == "exact":
        sensitivity_memory(driver, net, p.x.shape[1])     # before the forward pass allocates anything
    with workers() as threads:
        run = driver.forward(net, p.W, p.x, p.state0, p.forcing, threads, scratch=True)
        _check_states("fastrnn.rtrl", net, run)
        L, g, dW_out, db_out = readout.injected_errors(net, p.W, run.h[1:], p.d, p.readout_mask(), p.loss)
        cell_grads = driver.rtrl(net, p.W, p.x, run, g, p.forcing, threads, method, block)
    grads = net.gradients_class(**cell_grads, W_out=dW_out, b_out=db_out)
    _check_result("fastrnn.rtrl", net, L, grads)
    if check:
        ref = reference.rtrl(net, p.x, p.d, p.mask, p.loss, _state_result(p.state0), p.teacher_forcing)
        compare.compare("fastrnn.rtrl", net.dtype, (L, grads), ref)
    return L, grads


class OnlineRTRL:
    """Real-time recurrent learning, one step at a time (Williams & Zipser 1989).

    Holds the states and the sensitivities of ``batch`` independent streams. Each step reads the
    network's weights as they are *now*, so a trainer may update them in place between steps
    (the real-time approximation of SPEC §5). With fixed weights, the sum of the step gradients
    over a sequence equals :func:`fastrnn.rtrl`.

    Parameters
    ----------
    net : RNN or LSTM
    batch : int
        Number of independent streams B.
    teacher_forcing : bool
        Units readout with mse: output units with a target at step t feed it back at t + 1.
    loss : {"mse", "xent", "bce"}
    h0 : (B, n) array, optional
        Initial state (zeros); for an LSTM also a pair (h0, c0).
    method : {"exact", "fss", "snap1", "uoro", "rflo"}
        ``"exact"``: RTRL (all cells). For the simple cell also: ``"fss"``, the exact gradient by
        fixed-size storage, returned at the end of every block of ``block`` steps (default m + 1 + n; the
        steps in between return ``None`` as their gradient, and the weights must not change inside
        a block: O(n³) per step); the approximations ``"snap1"`` (Menick et al. 2021), ``"uoro"``
        (Tallec & Ollivier 2018, random signs from ``seed``) and ``"rflo"`` (Murray 2019,
        ``feedback="random"`` or ``"readout"``, trace time constant ``tau``). Their update rules:
        ``fastrnn.reference.online``.
    shadow : bool
        Also run exact RTRL on the same stream and record, per step (per block for "fss"), the
        cosine and the norm ratio of this method's gradient of the cell's weights to the exact
        one: ``fidelity``. The exact sensitivities' memory is checked first.
    block : int, optional
        Steps per block of ``method="fss"``.
    seed : int, optional
        Seed of UORO's random signs and RFLO's random feedback.
    feedback : {"random", "readout"}
        RFLO's feedback weights.
    tau : float
        RFLO's trace time constant (>= 1).

    Attributes
    ----------
    steps : int
        Steps taken so far.

    With ``shadow=True`` the property ``fidelity`` holds the mean cosine and norm ratio against
    exact RTRL, and their values per step.

    Raises
    ------
    ShapeError, DTypeError, NonFiniteError
        For a bad ``h0``; ``step`` checks its own arguments.
    OptionError, MemoryBudgetError
        For an option the cell or method does not have; before allocating sensitivities that would
        exceed the memory budget.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=3, n_hidden=5, n_out=2, seed=0)
    >>> learner = fastrnn.OnlineRTRL(net, batch=1)
    >>> for t in range(3):                             # a stream: x_t (B, m), d_t (B, o)
    ...     loss_t, g, y_t = learner.step(np.ones((1, 3)), np.zeros((1, 2)))
    ...     for name, w in net.params().items():
    ...         w -= 0.01 * g[name]                  # the next step sees the new weights
    >>> learner.steps
    3
    """

    def __init__(self, net, batch=1, teacher_forcing=False, loss="mse", h0=None, method="exact", block=None,
                 seed=None, feedback="random", tau=1.0, shadow=False):
        self._driver = driver_for(net)
        self.net = net
        self.batch = checks.positive_int("batch", batch)
        self.loss = checks.loss_name(net, loss)
        self.teacher_forcing = checks.forcing_flag(net, teacher_forcing, self.loss, self._driver.teacher_forcing)
        self.method = _method(self._driver, net, method, "online")
        if self.teacher_forcing and self.method != "exact":
            raise OptionError(f"method={self.method!r} does not support teacher forcing: use method='exact'")
        shadow = checks.flag("shadow", shadow)
        seed = checks.seed("seed", seed)
        self._shape = (net.n_hidden, net.n_in, net.n_out, net.dtype)
        options = {} if self.method == "exact" else {"block": block, "seed": seed, "feedback": feedback, "tau": tau}
        self._cell = self._driver.online(net, self.batch, get_threads(), self.method, **options)   # checks memory
        self._shadow = self._driver.online(net, self.batch, get_threads(), "exact") if shadow else None
        self._pending = None
        self.reset(h0)

    def __getattr__(self, name):
        # the carried states by name: .h, .c (copies)
        cell = self.__dict__.get("_cell")
        names = self.__dict__["net"].state_names if "net" in self.__dict__ else ()
        if cell is not None and name in names:
            return cell.state[names.index(name)].copy()
        raise AttributeError(f"OnlineRTRL has no attribute {name!r}")

    def reset(self, h0=None):
        """Start new streams: state h0 (zeros by default; an LSTM also takes a pair (h0, c0)),
        sensitivities zero. The fidelity record is kept (it spans streams)."""
        state0 = checks.initial_states(self.net, h0, self.batch)
        self._cell.reset(state0)
        if self._shadow is not None:
            self._shadow.reset(state0)
            self._shadow_sum = None
        if not hasattr(self, "_fidelity"):
            self._fidelity = {"cosine": [], "norm_ratio": []}
        self._readout_sum = None
        self._pending = None
        self.steps = 0

    @property
    def fidelity(self):
        """With ``shadow=True``: {"cosine": mean, "norm_ratio": mean, "per_step": {"cosine": array,
        "norm_ratio": array}} over the recorded steps (blocks for "fss"), comparing this method's
        gradient of the cell's weights with exact RTRL's on the same stream (norm ratio: this
        method's norm over the exact one's). Steps where the exact gradient is zero are skipped."""
        if self._shadow is None:
            raise OptionError("fidelity needs OnlineRTRL(..., shadow=True)")
        cos = np.array(self._fidelity["cosine"])
        ratio = np.array(self._fidelity["norm_ratio"])
        return {"cosine": float(cos.mean()) if cos.size else float("nan"),
                "norm_ratio": float(ratio.mean()) if ratio.size else float("nan"),
                "per_step": {"cosine": cos, "norm_ratio": ratio}}

    def _record(self, ours, exact):
        """Compare the cell's weights' gradients (the readout's are exact in every method)."""
        names = self.net.recurrent_names
        a = np.concatenate([np.ravel(ours[k]) for k in names]).astype(np.float64)
        b = np.concatenate([np.ravel(exact[k]) for k in names]).astype(np.float64)
        nb = np.linalg.norm(b)
        if nb == 0:
            return
        na = np.linalg.norm(a)
        self._fidelity["cosine"].append(float(a @ b / (na * nb)) if na > 0 else 0.0)
        self._fidelity["norm_ratio"].append(float(na / nb))

    def _shadow_step(self, W, x, g, threads, cell_grads):
        """Run the exact shadow on the same step; record when this method returns a gradient."""
        self._shadow.advance(W, x, checks.Forcing.off(self.net.dtype), threads)
        exact = self._shadow.propagate(W, x, None, g, checks.Forcing.off(self.net.dtype), threads)
        if self._shadow_sum is None:
            self._shadow_sum = exact
        else:
            self._shadow_sum = {k: self._shadow_sum[k] + v for k, v in exact.items()}
        if cell_grads is not None:
            self._record(cell_grads, self._shadow_sum)
            self._shadow_sum = None

    def _readout(self, dW_out, db_out, ready):
        """Readout gradients, summed over a block for a method that defers."""
        if not self._cell.defers:
            return dW_out, db_out
        parts = (dW_out, db_out)
        if self._readout_sum is None:
            self._readout_sum = parts
        else:
            self._readout_sum = tuple(None if a is None else a + b for a, b in zip(self._readout_sum, parts))
        if not ready:
            return None, None
        summed, self._readout_sum = self._readout_sum, None
        return summed

    def _check_net(self):
        net = self.net
        if (net.n_hidden, net.n_in, net.n_out, net.dtype) != self._shape:
            raise ShapeError("the network's shape or dtype changed since this OnlineRTRL was made: make a new one")

    def _step_inputs(self, x_t):
        net = self.net
        x_t = checks.float_array("x_t", x_t, net.dtype)
        checks.check_shape("x_t", x_t, (self.batch, net.n_in), "(B, m)")
        return checks.check_finite("x_t", checks.contiguous(x_t))[None]

    def _targets(self, d_t, mask_t):
        net, B = self.net, self.batch
        d_t = checks.as_array("d_t", d_t)
        if self.loss == "xent":
            checks.check_shape("d_t", d_t, (B,), "(B,) class ids")
        else:
            checks.check_shape("d_t", d_t, (B, net.n_out), "(B, o)")
        if mask_t is not None:
            mask_t = checks.as_array("mask_t", mask_t)
            ok = [(B,)] if self.loss == "xent" else [(B, net.n_out), (B,)]
            if mask_t.shape not in ok:
                raise ShapeError(f"mask_t has shape {mask_t.shape} but must be {' or '.join(map(str, ok))}")
            mask_t = mask_t[None]
        return checks.targets(net, d_t[None], mask_t, self.loss, 1, B)

    def _finish_pending(self, threads):
        """A step that ``advance`` ran and no ``backward`` followed: carry its sensitivities on
        with no error injected, so the next step starts from the right place."""
        W, x, run = self._pending
        self._pending = None
        zero = np.zeros(run.h[1:].shape, dtype=self.net.dtype)
        cell_grads = self._cell.propagate(W, x, run, zero, checks.Forcing.off(self.net.dtype), threads)
        if self._shadow is not None:
            self._shadow_step(W, x, zero, threads, cell_grads)

    def step(self, x_t, d_t, mask_t=None):
        """Advance one step with a built-in loss; return this step's loss, gradient and output.

        Parameters
        ----------
        x_t : (B, m) array
        d_t : (B, o) targets, or (B,) integer class ids for ``loss="xent"``
        mask_t : (B, o) or (B,) array of 0/1, optional

        Returns
        -------
        loss_t : float
        grads_t : Gradients or None
            d loss_t / d parameters through the whole history (the initial-state fields are None).
            With ``method="fss"``: the exact gradient of the whole block at its last step, None
            at the steps before.
        y_t : (B, o) array
            The readout of this step (before the weights change).
        """
        self._check_net()
        net = self.net
        W = net.checked()
        x = self._step_inputs(x_t)
        d, mask = self._targets(d_t, mask_t)
        forcing = (checks.Forcing(True, net.out_units, d, mask) if self.teacher_forcing
                   else checks.Forcing.off(net.dtype))
        read_mask = mask[..., None] if self.loss == "xent" else mask
        with workers() as threads:
            if self._pending is not None:
                self._finish_pending(threads)
            run = self._cell.advance(W, x, forcing, threads)
            _check_states("OnlineRTRL.step", net, run)
            r, y_all = readout.outputs(net, W, run.h[1:])
            y = y_all[0].copy()
            L, g, dW_out, db_out = readout.injected_errors(net, W, run.h[1:], d, read_mask, self.loss,
                                                           read=(r, y_all))
            if self._cell.needs_readout_error:          # RFLO's random feedback of ∂L_t/∂r_t
                self._cell.readout_error = readout.loss_and_grad(net, r, y_all, d, read_mask, self.loss)[1][0]
            g_now = g.copy() if self._shadow is not None else g
            cell_grads = self._cell.propagate(W, x, run, g, forcing, threads)
            if self._shadow is not None:
                self._shadow_step(W, x, g_now, threads, cell_grads)
        self.steps += 1
        dW_out, db_out = self._readout(dW_out, db_out, cell_grads is not None)
        if cell_grads is None:
            return L, None, y
        grads = net.gradients_class(**cell_grads, W_out=dW_out, b_out=db_out)
        _check_result("OnlineRTRL.step", net, L, grads)
        return L, grads, y

    def flush(self):
        """``method="fss"``: the exact gradient of the steps since the last block end (a shorter
        last block; None if there are none), so that a stream's last steps are not lost. The other
        methods return None (every step already returned its gradient)."""
        cell_grads = self._cell.flush()
        dW_out, db_out = self._readout_sum if self._readout_sum is not None else (None, None)
        self._readout_sum = None
        if cell_grads is None:
            return None
        if self._shadow is not None and self._shadow_sum is not None:
            self._record(cell_grads, self._shadow_sum)
            self._shadow_sum = None
        return self.net.gradients_class(**cell_grads, W_out=dW_out, b_out=db_out)

    def advance(self, x_t):
        """Run one step on x_t (B, m) and return the new hidden state h_t (B, n) (a copy).

        Follow it with :meth:`backward` and the gradient of your own loss with respect to h_t
        to get this step's exact RTRL gradient. (Without it, the next call carries the
        sensitivities on as if that gradient were zero.)
        """
        self._check_net()
        W = self.net.checked()
        x = self._step_inputs(x_t)
        with workers() as threads:
            if self._pending is not None:
                self._finish_pending(threads)
            run = self._cell.advance(W, x, checks.Forcing.off(self.net.dtype), threads)
        _check_states("OnlineRTRL.advance", self.net, run)
        self._pending = (W, x, run)
        self.steps += 1
        return run.h[1].copy()

    def backward(self, dh_t):
        """The exact gradient of the term <dh_t, h_t> for the h_t that :meth:`advance` returned.

        Parameters
        ----------
        dh_t : (B, n) array
            dL/dh_t of your loss at this step.

        Returns
        -------
        grads_t : Gradients
            The gradient of this step's term with respect to the cell's parameters through the
            whole history (readout and initial-state fields None). Summed over the steps of a
            sequence, with fixed weights, it equals :func:`fastrnn.vjp`'s weight gradient.

        Notes
        -----
        SPEC §6b: ``g_t · P_t`` is the gradient of ``<dh_t, h_t>``.
        """
        if self._pending is None:
            raise OptionError("backward(dh_t) follows advance(x_t): call advance first (once per step)")
        net = self.net
        dh = checks.float_array("dh_t", dh_t, net.dtype)
        checks.check_shape("dh_t", dh, (self.batch, net.n_hidden), "(B, n)")
        dh = checks.check_finite("dh_t", np.array(dh, dtype=net.dtype, order="C"))[None]
        W, x, run = self._pending
        self._pending = None
        with workers() as threads:
            dh_now = dh.copy() if self._shadow is not None else dh
            cell_grads = self._cell.propagate(W, x, run, dh, checks.Forcing.off(net.dtype), threads)
            if self._shadow is not None:
                self._shadow_step(W, x, dh_now, threads, cell_grads)
        if cell_grads is None:
            return None
        grads = net.gradients_class(**cell_grads)
        _check_result("OnlineRTRL.backward", net, None, grads)
        return grads


def _final_state_errors(net, dh_T, dc_T, B):
    """One (B, n) array or None per state, for the errors injected into the final states."""
    given = {"h": dh_T, "c": dc_T}
    for name, value in given.items():
        if value is not None and name not in net.state_names:
            raise OptionError(f"d{name}_T is the gradient of a final state {name!r}, which a "
                              f"{type(net).__name__} does not have (its states: {', '.join(net.state_names)})")
    return tuple(None if given.get(name) is None else checks.state(net, f"d{name}_T", given[name], B, name)
                 for name in net.state_names)


def _given_states(driver, net, W, x, state0, states):
    """The forward pass a caller passed back as ``states``: the object :func:`forward` returned,
    or a tuple with one (T + 1, B, n) array per state."""
    if isinstance(states, Outputs):
        run = states._run
        arrays = run.states
    else:
        arrays = states if isinstance(states, (tuple, list)) else (states,)
        run = None
    T, B, _ = x.shape
    if len(arrays) < len(net.state_names):
        raise OptionError(f"states must hold the {', '.join(net.state_names)} that forward returned; got {len(arrays)} arrays")
    checked = []
    for name, arr in zip(net.state_names, arrays):
        arr = checks.float_array(f"states.{name}", arr, net.dtype)
        checks.check_shape(f"states.{name}", arr, (T + 1, B, net.state_size(name)), "(T + 1, B, n)",
                           "pass what forward(net, x, h0) returned for the same x")
        checked.append(checks.check_finite(f"states.{name}", arr))
    for k, (name, arr) in enumerate(zip(net.state_names, checked)):
        if not np.array_equal(arr[0], state0[k]):
            raise OptionError(f"states.{name}[0] differs from the initial state given: pass the h0 "
                              "that forward was called with")
    if run is not None:
        return run
    return driver.resume(net, W, x, tuple(np.ascontiguousarray(a) for a in checked))


def vjp(net, x, dh, h0=None, *, dc_T=None, dh_T=None, states=None, truncation=None, input_grad=True,
        validate=False):
    """The vector-Jacobian product of the recurrent layer: gradients for an upstream loss.

    For outputs h_1..h_T of ``forward(net, x, h0)`` and a loss L computed by the caller, take
    ``dh`` = dL/dh_t and return dL/d(weights), dL/dx and dL/d(initial state). The net's readout
    is not involved (a net built with ``readout="units"`` and every unit an output is fine).

    Parameters
    ----------
    net : RNN or LSTM
    x : (T, B, m) array
    dh : (T, B, n) array
        dL/dh_t for t = 1..T (the states ``forward`` returns as ``h[1:]``).
    h0 : (B, n) array, optional; for an LSTM also a pair (h0, c0)
    dc_T : (B, n) array, optional
        LSTM only: dL/dc_T of the final cell state.
    dh_T : (B, n) array, optional
        dL/dh_T through the final state, added to ``dh[-1]`` (convenience for ``h_n`` outputs).
    states : the result of ``forward(net, x, h0)``, optional
        Reuse that forward pass instead of running it again (``Outputs`` or the tuple of its
        state arrays).
    truncation : None, int k or (h, h_prime)
        As in :func:`bptt`.
    input_grad : bool
        False: dL/dx is not computed and ``dx`` is None (as autograd skips inputs that need no
        gradient), which saves one product of T·B·(gates·n)·m multiply-adds.
    validate : bool
        Compare against ``fastrnn.reference`` (SPEC §7's tolerance).

    Returns
    -------
    grads : Gradients or LSTMGradients
        The cell's own weights (readout fields None) and the initial state(s).
    dx : (T, B, m) array, or None with ``input_grad=False``
    dstate0 : (B, n) array ``dh0``; for an LSTM the pair ``(dh0, dc0)``

    Raises
    ------
    ShapeError, DTypeError, NonFiniteError, OptionError
        For a bad argument (the message names it), or results that overflowed.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> lstm = fastrnn.LSTM.init(n_in=3, n_hidden=4, n_out=4, readout="units", seed=0)
    >>> x = np.ones((5, 2, 3))
    >>> out = fastrnn.forward(lstm, x)
    >>> grads, dx, (dh0, dc0) = fastrnn.vjp(lstm, x, np.ones((5, 2, 4)), states=out)
    >>> dx.shape, grads.W_hh.shape
    ((5, 2, 3), (16, 4))

    Notes
    -----
    SPEC §6b. One backward sweep serves :func:`bptt` and ``vjp``: the loss's errors and an
    upstream gradient are two sources of the same injected error.
    """
    driver = driver_for(net)
    W, x, state0 = checks.inputs(net, x, h0)
    T, B, _ = x.shape
    g = _upstream(net, dh, T, B)
    finals = _final_state_errors(net, dh_T, dc_T, B)
    trunc = checks.truncation(truncation, T)
    input_grad = checks.flag("input_grad", input_grad)
    check = compare.validation_wanted(validate)
    forcing = checks.Forcing.off(net.dtype)
    dh_arr = g.copy() if check else None                  # the driver may write into g
    if states is None:
        bptt_memory(driver, net, T, B)
    with workers(call_work(W, T, B, 3 if states is None else 2)) as threads:
        run = (driver.forward(net, W, x, state0, forcing, threads, scratch=True) if states is None
               else _given_states(driver, net, W, x, state0, states))
        if states is None:
            _check_states("fastrnn.vjp", net, run)
        result = driver.backward(net, W, x, run, g, trunc, forcing, threads, dstate_T=finals, want_dx=input_grad)
    grads, dx, dstate0 = _vjp_result(net, *result)
    if check:
        ref_grads, ref_dx, ref_dstate0 = reference.vjp(net, x, dh_arr, _state_result(state0),
                                                       _state_result(finals), truncation)
        compare.compare("fastrnn.vjp", net.dtype, (None, grads), (None, ref_grads))
        if dx is not None:
            compare.compare("fastrnn.vjp", net.dtype, (None, {"x": dx}), (None, {"x": ref_dx}))
    return grads, dx, _state_result(dstate0)
