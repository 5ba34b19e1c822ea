"""Input checking: every argument of a public call is checked here, once, before any kernel runs.

Each check names the argument, what was expected and what arrived, and returns an array the
kernels can use (C-contiguous, never the caller's buffer when a copy is needed to be safe).
``problem`` and ``initial_states`` turn one call's arguments into a :class:`Problem`.
Comparing results against the reference is another module's job (``fastrnn.compare``).
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import DTypeError, NonFiniteError, OptionError, ShapeError
from .kernels.checks import _all_finite as _finite_kernel
from .kernels.checks import _copy_finite
from .readout import LOSSES
from .runtime import workspace

FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _dtype_fix(name, want):
    return f"use {name}.astype(np.{want.name})"


def as_array(name, a):
    """``np.asarray`` with a clear error for things that are not arrays of numbers.

    A masked array is refused (its mask would be lost); a non-native byte order is converted
    to the native one (the same values)."""
    if a is None:
        raise DTypeError(f"{name} is None but must be an array")
    if isinstance(a, np.ma.MaskedArray):
        raise DTypeError(f"{name} is a numpy masked array, and fastrnn reads no masks from arrays (the mask "
                         f"would be lost): pass {name}.filled(0) and say which targets exist with mask=")
    if isinstance(a, (str, bytes)):
        raise DTypeError(f"{name} is a {type(a).__name__} but must be an array of numbers")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists, objects numpy refuses
        raise DTypeError(f"{name} could not be read as an array ({exc})") from None
    if arr.dtype == object:
        raise DTypeError(f"{name} has dtype object but must be a float array: pass numeric data")
    if arr.dtype.byteorder not in ("=", "|") and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def float_array(name, a, dtype=None):
    """A float32/float64 array; ``dtype`` (if given) must match exactly."""
    if type(a) is np.ndarray and a.dtype in FLOAT_DTYPES and (dtype is None or a.dtype == dtype):
        return a            # the usual case: a plain array of the right native dtype, nothing to convert
    arr = as_array(name, a)
    if arr.dtype.kind != "f" or arr.dtype not in FLOAT_DTYPES:
        want = np.dtype(dtype) if dtype is not None else np.dtype(np.float64)
        raise DTypeError(
            f"{name} has dtype {arr.dtype} but must be float64 or float32: {_dtype_fix(name, want)}")
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise DTypeError(
            f"{name} has dtype {arr.dtype} but the network computes in {np.dtype(dtype).name}; "
            f"dtypes are never mixed: {_dtype_fix(name, np.dtype(dtype))}")
    return arr


def check_shape(name, arr, expected, desc, hint=""):
    """``expected`` is a tuple of ints or None (any size >= 1); ``desc`` names the axes."""
    shape = arr.shape
    if len(shape) == len(expected) and 0 not in shape:
        for got, want in zip(shape, expected):
            if want is not None and got != want:
                break
        else:
            return arr                # the usual case: no message to build (a loop: a generator costs more)
    shown = "(" + ", ".join("…" if e is None else str(e) for e in expected) + ")"
    hint = f": {hint}" if hint else ""
    if arr.ndim != len(expected):
        raise ShapeError(f"{name} has shape {arr.shape} ({arr.ndim}-d) but must be {desc} = {shown}{hint}")
    for got, want in zip(arr.shape, expected):
        if want is not None and got != want:
            raise ShapeError(f"{name} has shape {arr.shape} but must be {desc} = {shown}{hint}")
    raise ShapeError(f"{name} has shape {arr.shape}: every axis of {desc} must be at least 1")


_LARGEST = {np.dtype(t): t(np.finfo(t).max) for t in (np.float32, np.float64)}   # native byte order only


def all_finite(*arrays):
    """True if the arrays hold no NaN or infinity: one compiled pass over each float32/float64
    array on the calling thread (``kernels.checks``), NumPy's isfinite for other float or complex
    dtypes; integer and boolean arrays are finite."""
    for arr in arrays:
        if arr.size == 0 or arr.dtype.kind not in "fc":
            continue
        largest = _LARGEST.get(arr.dtype)
        if largest is not None:
            if not _finite_kernel(arr.reshape(-1), largest):     # a view for contiguous arrays
                return False
        elif not np.isfinite(arr).all():
            return False
    return True


def check_finite(name, arr):
    if not all_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise NonFiniteError(
            f"{name} holds NaN or infinity (first at index {tuple(int(i) for i in bad)}): "
            "fastrnn computes only with finite values")
    return arr


def finite_copy(name, arr, out):
    """Copy ``arr`` into ``out`` (C-contiguous, its shape and dtype) and check it as ``check_finite``
    does: one compiled pass over a C-contiguous float32/float64 array, reading it once."""
    largest = _LARGEST.get(arr.dtype)
    if largest is None or not arr.flags.c_contiguous or arr.size == 0:
        out[...] = arr
        check_finite(name, arr)
        return out
    if not _copy_finite(arr.reshape(-1), out.reshape(-1), largest):
        check_finite(name, arr)                     # the message names the first bad index
    return out


def contiguous(arr):
    """A C-contiguous array with the same values; the caller's array is never written."""
    return np.ascontiguousarray(arr)


def choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise OptionError(f"{name}={value!r} is not known: choose one of {', '.join(map(repr, options))}")
    return value


def float_dtype(name, value):
    """float64 or float32 from anything ``np.dtype`` reads, with a clear error for the rest."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise DTypeError(f"{name}={value!r} is not a dtype: use np.float64 or np.float32") from None
    if dtype not in FLOAT_DTYPES:
        raise DTypeError(f"{name} must be float64 or float32, got {dtype}")
    return dtype


def seed(name, value):
    """A seed for np.random.default_rng: None, an integer >= 0, or a Generator/SeedSequence."""
    if value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise OptionError(f"{name} must be None or an integer >= 0, got {value!r}")
    if value < 0:
        raise OptionError(f"{name} must be an integer >= 0, got {value}")
    return int(value)


def unit_indices(name, value, n):
    """Distinct integer unit indices in [0, n), as an int64 array."""
    try:
        arr = np.asarray(value)
    except Exception:
        arr = np.asarray([], dtype=object)
    if arr.dtype.kind not in "iu" or arr.ndim > 1 or arr.size == 0:
        raise OptionError(f"{name} must be a non-empty sequence of distinct integer unit indices in [0, {n}), "
                          f"got {value!r}")
    units = arr.astype(np.int64).reshape(-1)
    if units.min() < 0 or units.max() >= n or np.unique(units).size != units.size:
        raise OptionError(f"{name} must be distinct unit indices in [0, {n}), got {units.tolist()}")
    return units


def positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise OptionError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise OptionError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def truncation(value, T):
    """(h, h') for BPTT(h; h'), capped at T. None -> exact (T, T); k -> (k, k)."""
    if value is None:
        return T, T
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise OptionError(f"truncation must be None, an int k or a pair (h, h_prime); got {value!r}")
        h = positive_int("truncation h", value[0])
        hp = positive_int("truncation h_prime", value[1])
        if h < hp:
            raise OptionError(f"truncation (h, h_prime) = ({h}, {hp}) needs h >= h_prime (Williams & Peng's BPTT(h; h'))")
    else:
        h = hp = positive_int("truncation", value)
    return min(h, T), min(hp, T)


def flag(name, value):
    """A bool argument: True or False, nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# -- one call's inputs ---------------------------------------------------------------------------
_NO_UNITS = np.zeros(0, dtype=np.int64)
_OFF = {}


@dataclass(frozen=True)
class Forcing:
    """Teacher forcing as the kernels take it (SPEC §2, "units" readout).

    on: whether it applies; units (o,) int64: the output units; values (T, B, o): the targets fed
    back; mask (T, B, o): 1 where unit ``units[k]`` is forced after step t. Off, the arrays are empty.
    """
    on: bool
    units: np.ndarray
    values: np.ndarray
    mask: np.ndarray

    @classmethod
    def off(cls, dtype):
        """No teacher forcing: one instance per dtype, made once (every call asks for it). Its arrays are
        empty, so nothing can be written into them; they stay writable, as the kernels were compiled
        for (a read-only array is another type to Numba, and another compilation)."""
        key = np.dtype(dtype)
        off = _OFF.get(key)
        if off is None:
            empty = np.zeros((0, 0, 0), dtype=key)
            off = _OFF[key] = cls(False, _NO_UNITS, empty, empty)
        return off


@dataclass
class Problem:
    """The checked inputs of one call.

    W: the net's weights, checked and contiguous; x (T, B, m); state0: the initial states, one
    (B, n) array per name in the net's ``state_names`` (``h0``, and ``c0`` for an LSTM); d: targets
    (T, B, o) floats or (T, B) class ids, zero where masked out (None for a vjp); mask: (T, B, o)
    for mse/bce, (T, B) for xent, in the net's dtype; forcing: :class:`Forcing`.
    """
    W: dict
    x: np.ndarray
    state0: tuple
    d: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    loss: str = "mse"
    forcing: Optional[Forcing] = None

    @property
    def h0(self):
        return self.state0[0]

    @property
    def teacher_forcing(self):
        return self.forcing.on

    def readout_mask(self):
        """The mask shaped to broadcast against (T, B, o)."""
        return self.mask[..., None] if self.loss == "xent" else self.mask


def state(net, name, value, B, which="h"):
    """A (B, size) array for the net's state ``which`` (size = ``net.state_size(which)``: n, or
    n_cell for the projected LSTM's c), checked under the argument name ``name``; zeros for None."""
    size = net.state_size(which)
    if value is None:
        return np.zeros((B, size), dtype=net.dtype)
    value = float_array(name, value, net.dtype)
    check_shape(name, value, (B, size), "(B, n)" if size == net.n_hidden else "(B, n_cell)")
    return check_finite(name, contiguous(value))


def initial_states(net, value, B, name="h0"):
    """The initial states of a net with ``state_names`` s: from None (zeros), one array (the first
    state; the others zero) or a tuple with one array (or None) per state."""
    if value is None:                   # the usual case: zeros
        return tuple(np.zeros((B, net.state_size(which)), dtype=net.dtype) for which in net.state_names)
    names = [f"{s}0" for s in net.state_names]
    per_state = isinstance(value, tuple) or (
        isinstance(value, list) and all(v is None or isinstance(v, np.ndarray) for v in value))
    if per_state:
        if len(value) != len(names):
            raise OptionError(f"{name} for {type(net).__name__} is None, an array {names[0]} or a "
                              f"{'pair' if len(names) == 2 else 'tuple'} ({', '.join(names)}); got {len(value)} items")
        parts = list(value)
    else:
        parts = [value] + [None] * (len(names) - 1)
    return tuple(state(net, n, part, B, which) for n, part, which in zip(names, parts, net.state_names))


def sequence(net, x):
    """x (T, B, m) in the net's dtype, finite and contiguous."""
    x = float_array("x", x, net.dtype)
    check_shape("x", x, (None, None, net.n_in), "(T, B, m)", "pass a time-major array (steps, batch, inputs)")
    return check_finite("x", contiguous(x))


def inputs(net, x, h0):
    """Checked weights, x and the initial states."""
    W = net.checked()
    x = sequence(net, x)
    return W, x, initial_states(net, h0, x.shape[1])


def forcing_flag(net, value, loss, supported):
    """Check the teacher_forcing flag against the net, its readout and the loss."""
    value = flag("teacher_forcing", value)
    if value and not supported:
        raise OptionError(f"teacher_forcing=True is defined for the simple cell (fastrnn.RNN) only, "
                          f"not for {type(net).__name__}")
    if value and (net.readout != "units" or loss != "mse"):
        raise OptionError("teacher_forcing=True feeds targets back into the output units: it needs "
                          f"readout='units' and loss='mse' (got readout={net.readout!r}, loss={loss!r})")
    return value


def loss_name(net, loss):
    """The loss, checked against the net's output activation."""
    loss = choice("loss", loss, LOSSES)
    if loss == "xent" and net.out_activation not in ("identity", "softmax"):
        raise OptionError(f"loss='xent' applies softmax to the readout itself; the net has out_activation="
                          f"{net.out_activation!r}: use 'identity' or 'softmax'")
    if loss == "bce" and net.out_activation not in ("identity", "logistic"):
        raise OptionError(f"loss='bce' applies the logistic to the readout itself; the net has out_activation="
                          f"{net.out_activation!r}: use 'identity' or 'logistic'")
    return loss


def targets(net, d, mask, loss, T, B):
    """Checked (d, mask): the mask in the net's dtype, targets zero where masked out (without a
    mask, d itself, C-contiguous: fastrnn only reads it)."""
    o = net.n_out
    mshape = (T, B) if loss == "xent" else (T, B, o)
    if mask is None:
        mask = workspace.ones(mshape, net.dtype)    # read, never written
        on = None                               # every target exists: nothing to zero
    else:
        mask = as_array("mask", mask)
        if mask.dtype.kind == "f" and mask.dtype != net.dtype:
            raise DTypeError(f"mask has dtype {mask.dtype} but the network computes in {net.dtype}: "
                             f"pass a bool mask or use mask.astype(np.{net.dtype.name})")
        if mask.dtype.kind not in "biuf":
            raise DTypeError(f"mask has dtype {mask.dtype} but must be bool, integer or {net.dtype}")
        if loss != "xent" and mask.shape == (T, B):
            mask = np.broadcast_to(mask[:, :, None], (T, B, o))
        if mask.shape != mshape:
            allowed = "(T, B)" if loss == "xent" else "(T, B, o) or (T, B)"
            raise ShapeError(f"mask has shape {mask.shape} but must be {allowed} = {mshape} for loss={loss!r}")
        if not np.isin(mask, (0, 1)).all():
            raise OptionError("mask must hold only 0 and 1 (1 where a target exists)")
        mask = np.ascontiguousarray(mask, dtype=net.dtype)
        on = mask != 0
    if loss == "xent":
        d = as_array("d", d)
        if d.dtype.kind not in "iu":
            raise DTypeError(f"d has dtype {d.dtype} but loss='xent' takes integer class ids: "
                             "use d.astype(np.int64)")
        check_shape("d", d, (T, B), "(T, B) class ids")
        kept = d if on is None else np.where(on, d, 0)
        if kept.min() < 0 or kept.max() >= o:
            bad = int(kept.min()) if kept.min() < 0 else int(kept.max())
            raise OptionError(f"d holds class id {bad} but the network has {o} outputs (ids 0..{o - 1}); "
                              "mask out steps without a target")
        return kept.astype(np.int64), mask
    d = float_array("d", d, net.dtype)
    check_shape("d", d, (T, B, o), "(T, B, o) targets")
    kept = d if on is None else np.where(on, d, 0)
    check_finite("d (where mask is 1)", kept)
    if loss == "bce" and ((kept < 0) | (kept > 1)).any():
        raise OptionError("d must lie in [0, 1] for loss='bce'")
    return np.ascontiguousarray(kept), mask


def problem(net, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False, forcing_supported=False):
    """Check everything one gradient call receives. Never writes the caller's arrays."""
    W, x, state0 = inputs(net, x, h0)
    T, B, _ = x.shape
    loss = loss_name(net, loss)
    tf = forcing_flag(net, teacher_forcing, loss, forcing_supported)
    d, mask = targets(net, d, mask, loss, T, B)
    forcing = Forcing(True, net.out_units, d, mask) if tf else Forcing.off(net.dtype)
    return Problem(W, x, state0, d, mask, loss, forcing)
