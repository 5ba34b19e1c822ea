"""rtrl and OnlineRTRL for the simple cell: validate, guard memory, dispatch, wrap."""
import numpy as np

from . import _memory, _problem, _workspace, reference
from . import _validate as v
from ._dispatch import call, parallel_possible, workers
from ._errors import OptionError, ShapeError
from ._model import ACTIVATIONS, LOSSES, Gradients
from ._rnn import _check_net, fed_states, internal_states, readout_errors, run_forward
from .kernels import _forward, _rtrl

_NO_UNITS = np.zeros(0, dtype=np.int64)


TILE_BYTES = 1024 * 1024   # one tile of Q: large enough for an efficient GEMM
MIN_TILES = 4             # enough tiles to share among threads


def tiles(n, J, itemsize, parallel):
    """Rows of W per sensitivity tile, as boundaries (ntiles + 1,). P's layout depends on them,
    so they are fixed when P is allocated (any later call works with any tiling).

    Serial kernels with multithreaded BLAS do best with one tile (one large GEMM per step);
    parallel kernels with cache-sized tiles, at least MIN_TILES of them to share out."""
    if not parallel:
        return np.array([0, n], dtype=np.int64)
    rows = max(1, min(n, TILE_BYTES // ((n + 1) * J * itemsize)))
    count = min(n, max(-(-n // rows), MIN_TILES))
    return np.linspace(0, n, count + 1).round().astype(np.int64)


def sensitivity_buffers(net, B, parallel, reuse=False):
    """Check the memory budget, then allocate the sensitivities (Q = 0, P_0 = 0) and their scratch
    twin, (B, (n + 1)·n·J) each, and the tile boundaries of their layout (``kernels.rtrl._rtrl``)."""
    n, m = net.n_hidden, net.n_in
    J = m + 1 + n
    itemsize = np.dtype(net.dtype).itemsize
    nbytes = 2 * B * (n + 1) * n * J * itemsize
    _memory.check(
        nbytes,
        f"RTRL with n={n}, m={m}, B={B} in {np.dtype(net.dtype).name} (2 buffers of B·(n+1)·n·J = "
        f"{B}·{n + 1}·{n}·{J} numbers of {itemsize} bytes)",
        "a smaller batch (the memory grows with B), "
        + ("float32 (half the size), " if net.dtype == np.float64 else "")
        + "fewer units, or fastrnn.bptt, whose memory grows with T·B·n instead of B·n²·J")
    shape = (B, (n + 1) * n * J)
    if reuse and nbytes <= _workspace.KEEP_BYTES:
        Q = _workspace.scratch("rtrl Q", shape, net.dtype)
        Q[...] = 0
        R = _workspace.scratch("rtrl R", shape, net.dtype)
    else:
        Q = np.zeros(shape, dtype=net.dtype)
        R = np.empty_like(Q)
    return Q, R, tiles(n, J, itemsize, parallel)


def carried_slope(net, h_t, forced):
    """s~_t = phi'(a_t) from the unforced state h_t (B, n), zero at teacher-forced units."""
    act = net.activation
    if act == "tanh":
        s = 1 - h_t * h_t
    elif act == "logistic":
        s = h_t * (1 - h_t)
    elif act == "relu":
        s = (h_t > 0).astype(h_t.dtype)
    else:
        s = np.ones_like(h_t)
    if forced is not None:
        s[forced] = 0
    return s


def split(dW, m):
    """W = [W_in | b | W_rec] -> (dW_in, db, dW_rec) as contiguous arrays."""
    return (np.ascontiguousarray(dW[:, :m]), np.ascontiguousarray(dW[:, m]),
            np.ascontiguousarray(dW[:, m + 1:]))


def rtrl(net, x, d, mask=None, loss="mse", teacher_forcing=False, h0=None, validate=False):
    """Loss and exact gradients by real-time recurrent learning (Williams & Zipser 1989).

    The same inputs and result as :func:`fastrnn.bptt` (exact), computed forward in time with
    sensitivities ``P_t = dh_t/dW`` of size B·n²·(m + 1 + n): memory independent of T, n⁴ work
    per step. ``grads.h0`` is None (h0 has no sensitivity).

    Raises
    ------
    MemoryBudgetError
        Before allocating, when the sensitivities exceed the budget (``fastrnn.set_memory_budget``).

    Notes
    -----
    SPEC §5. With fixed weights RTRL and BPTT give the same gradient to rounding.
    """
    _check_net(net)
    p = _problem.problem(net, x, d, mask, loss, h0, teacher_forcing)
    T, B, m = p.x.shape
    check = _problem.validation_wanted(validate)
    if net.cell == "lstm":
        from ._lstm import rtrl as lstm_rtrl
        L, grads = lstm_rtrl(net, p)
        if check:
            ref = reference.rtrl(net, p.x, p.d, p.mask, p.loss, (p.h0, p.c0))
            _problem.compare("fastrnn.rtrl", net.dtype, (L, grads), ref)
        return L, grads
    forcing = p.forcing(net)
    with workers() as threads:
        P, Q, tile_rows = sensitivity_buffers(net, B, threads > 1, reuse=True)   # checks the budget first
        dW = np.zeros((net.n_hidden, m + 1 + net.n_hidden), dtype=net.dtype)
        h = run_forward(net, p.W, p.x, p.h0, forcing, threads, internal_states(net, p))
        L, g, dW_out, db_out = readout_errors(net, p, h)
        call(_rtrl, threads, len(tile_rows) - 1, p.W["W_rec"], p.x,
             np.ascontiguousarray(fed_states(net, p, h)), h, g, ACTIVATIONS.index(net.activation),
             forcing[0], forcing[1], forcing[3], tile_rows, np.zeros((B, net.n_hidden), net.dtype),
             P, Q, dW)
    dW_in, db, dW_rec = split(dW, m)
    grads = Gradients(dW_in, dW_rec, db, dW_out, db_out, None)
    if check:
        ref = reference.rtrl(net, p.x, p.d, p.mask, p.loss, p.h0, p.teacher_forcing)
        _problem.compare("fastrnn.rtrl", net.dtype, (L, grads), ref)
    return L, grads


class OnlineRTRL:
    """Real-time recurrent learning, one step at a time (Williams & Zipser 1989).

    Holds the state h and the sensitivities P of ``batch`` independent streams. Each
    :meth:`step` reads the network's weights as they are *now*, so a trainer may update them in
    place between steps (the real-time approximation of SPEC §5). With fixed weights, the sum of
    the step gradients over a sequence equals :func:`fastrnn.rtrl`.

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

    Examples
    --------
    >>> learner = fastrnn.OnlineRTRL(net, batch=1)
    >>> for x_t, d_t in stream:                        # x_t (B, m), d_t (B, o)
    ...     loss_t, g = learner.step(x_t, d_t)
    ...     for name, w in net.params().items():
    ...         w -= lr * getattr(g, name)
    """

    def __init__(self, net, batch=1, teacher_forcing=False, loss="mse", h0=None):
        _check_net(net)
        self.net = net
        self.batch = v.positive_int("batch", batch)
        self.loss = v.choice("loss", loss, LOSSES)
        if not isinstance(teacher_forcing, (bool, np.bool_)):
            raise OptionError(f"teacher_forcing must be True or False, got {teacher_forcing!r}")
        if teacher_forcing and net.cell != "rnn":
            raise OptionError("teacher_forcing=True is defined for the simple cell (fastrnn.RNN) only")
        if teacher_forcing and (net.readout != "units" or self.loss != "mse"):
            raise OptionError("teacher_forcing=True feeds targets back into the output units: it needs "
                              f"readout='units' and loss='mse' (got readout={net.readout!r}, loss={self.loss!r})")
        self.teacher_forcing = bool(teacher_forcing)
        self._shape = (net.n_hidden, net.n_in, net.n_out, net.dtype)
        if net.cell == "lstm":
            from ._lstm import OnlineState
            self._lstm = OnlineState(net, self.batch, parallel_possible())
            self.reset(h0)
            return
        self._P, self._Q, self._tiles = sensitivity_buffers(net, self.batch, parallel_possible())
        self._s = np.zeros((self.batch, net.n_hidden), dtype=net.dtype)   # s~ of the last step
        n = net.n_hidden
        self._h = np.empty((2, self.batch, n), dtype=net.dtype)   # [h_{t-1} as fed, h_t]
        self._dW = np.empty((n, net.n_in + 1 + n), dtype=net.dtype)
        self._empty3 = np.zeros((0, 0, 0), dtype=net.dtype)
        self.reset(h0)

    @property
    def h(self):
        """The state carried into the next step (B, n), teacher-forced where that applied (a copy)."""
        return (self._lstm.h if self.net.cell == "lstm" else self._h)[0].copy()

    @property
    def c(self):
        """The LSTM cell state carried into the next step (B, n) (a copy)."""
        if self.net.cell != "lstm":
            raise OptionError("only an LSTM has a cell state c")
        return self._lstm.c[0].copy()

    def reset(self, h0=None):
        """Start new streams: state h0 (zeros by default; an LSTM also takes a pair (h0, c0)),
        sensitivities zero."""
        net = self.net
        if net.cell == "lstm":
            pair = h0 if isinstance(h0, (tuple, list)) else (h0, None)
            if len(pair) != 2:
                raise OptionError(f"h0 for an LSTM is None, an array h0 or a pair (h0, c0); got {len(pair)} items")
            self._lstm.reset(_problem.state(net, "h0", pair[0], self.batch),
                             _problem.state(net, "c0", pair[1], self.batch))
            self.steps = 0
            return
        if h0 is None:
            self._h[0] = 0
        else:
            h0 = v.float_array("h0", h0, net.dtype)
            v.check_shape("h0", h0, (self.batch, net.n_hidden), "(B, n)")
            self._h[0] = v.check_finite("h0", h0)
        self._P[...] = 0
        self._s[...] = 0
        self.steps = 0

    def step(self, x_t, d_t, mask_t=None):
        """Advance one step; return this step's loss and its gradient.

        Parameters
        ----------
        x_t : (B, m) array
        d_t : (B, o) targets, or (B,) integer class ids for ``loss="xent"``
        mask_t : (B, o) or (B,) array of 0/1, optional

        Returns
        -------
        loss_t : float
        grads_t : Gradients
            d loss_t / d parameters through the whole history (``h0`` is None).
        """
        net = self.net
        if (net.n_hidden, net.n_in, net.n_out, net.dtype) != self._shape:
            raise ShapeError("the network's shape or dtype changed since this OnlineRTRL was made: "
                             "make a new one")
        B, m = self.batch, net.n_in
        x_t = v.float_array("x_t", x_t, net.dtype)
        v.check_shape("x_t", x_t, (B, m), "(B, m)")
        d_t = v.as_array("d_t", d_t)
        if self.loss == "xent":
            v.check_shape("d_t", d_t, (B,), "(B,) class ids")
        else:
            v.check_shape("d_t", d_t, (B, net.n_out), "(B, o)")
        if mask_t is not None:
            mask_t = v.as_array("mask_t", mask_t)
            ok = [(B,)] if self.loss == "xent" else [(B, net.n_out), (B,)]
            if mask_t.shape not in ok:
                raise ShapeError(f"mask_t has shape {mask_t.shape} but must be "
                                 f"{' or '.join(map(str, ok))}")
            mask_t = mask_t[None]
        if net.cell == "lstm":
            p = _problem.problem(net, x_t[None], d_t[None], mask_t, self.loss,
                                 (self._lstm.h[0], self._lstm.c[0]))
            self.steps += 1
            return self._lstm.step(net, p)
        p = _problem.problem(net, x_t[None], d_t[None], mask_t, self.loss, self._h[0],
                             self.teacher_forcing)
        h = self._h
        act = ACTIVATIONS.index(net.activation)
        tf, units, _, tf_mask = p.forcing(net)
        self._dW[...] = 0
        with workers() as threads:
            call(_forward, threads, B, p.x, p.W["W_in"], p.W["W_rec"], p.W["b"], h, act,
                 False, _NO_UNITS, self._empty3, self._empty3)
            L, g, dW_out, db_out = readout_errors(net, p, h)
            parity = call(_rtrl, threads, len(self._tiles) - 1, p.W["W_rec"], p.x, h[:1], h, g, act,
                          tf, units, tf_mask, self._tiles, self._s, self._P, self._Q, self._dW)
        if parity:
            self._P, self._Q = self._Q, self._P
        forced = None
        if tf:
            forced = np.zeros((B, net.n_hidden), dtype=bool)
            forced[:, units] = tf_mask[0] != 0
        self._s = carried_slope(net, h[1], forced)
        dW_in, db, dW_rec = split(self._dW, m)
        # the state fed into the next step
        h[0] = h[1]
        if self.teacher_forcing:
            S = net.out_units
            h[0][:, S] = np.where(p.mask[0] != 0, p.d[0], h[0][:, S])
        self.steps += 1
        return L, Gradients(dW_in, dW_rec, db, dW_out, db_out, None)
