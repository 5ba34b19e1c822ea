"""Input checks shared by the public calls. Each check names the argument, what was expected and
what arrived, and returns an array the kernels can use (C-contiguous, never the caller's buffer
when a copy is needed to be safe)."""
import numpy as np

from ._errors import DTypeError, NonFiniteError, OptionError, ShapeError

FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _dtype_fix(name, want):
    return f"use {name}.astype(np.{want.name})"


def as_array(name, a):
    """``np.asarray`` with a clear error for things that are not arrays of numbers."""
    if a is None:
        raise DTypeError(f"{name} is None but must be an array")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists, objects numpy refuses
        raise DTypeError(f"{name} could not be read as an array ({exc})") from None
    if arr.dtype == object:
        raise DTypeError(f"{name} has dtype object but must be a float array: pass numeric data")
    return arr


def float_array(name, a, dtype=None):
    """A float32/float64 array; ``dtype`` (if given) must match exactly."""
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
    shown = "(" + ", ".join("…" if e is None else str(e) for e in expected) + ")"
    hint = f": {hint}" if hint else ""
    if arr.ndim != len(expected):
        raise ShapeError(f"{name} has shape {arr.shape} ({arr.ndim}-d) but must be {desc} = {shown}{hint}")
    for got, want in zip(arr.shape, expected):
        if want is not None and got != want:
            raise ShapeError(f"{name} has shape {arr.shape} but must be {desc} = {shown}{hint}")
    if 0 in arr.shape:
        raise ShapeError(f"{name} has shape {arr.shape}: every axis of {desc} must be at least 1")
    return arr


def check_finite(name, arr):
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise NonFiniteError(
            f"{name} holds NaN or infinity (first at index {tuple(int(i) for i in bad)}): "
            "fastrnn computes only with finite values")
    return arr


def contiguous(arr):
    """A C-contiguous array with the same values; the caller's array is never written."""
    return np.ascontiguousarray(arr)


def choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise OptionError(f"{name}={value!r} is not known: choose one of {', '.join(map(repr, options))}")
    return value


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
