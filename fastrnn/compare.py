"""Comparing results: the one tolerance table (SPEC §7) and the relative error.

It serves ``validate=True`` in the public calls, ``fastrnn check``, the tests and the benchmarks.
"""
import os

import numpy as np

from .errors import OptionError, ValidationError

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}   # SPEC §7


def tolerance(dtype):
    """SPEC §7's relative tolerance for results in ``dtype``."""
    return TOLERANCE[np.dtype(dtype)]


def relative_error(a, b):
    """max|a - b| / max|b| (SPEC §7); the absolute error when b is all zeros. NaN anywhere in
    ``a`` or ``b`` gives NaN (never a small number)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if not b.size:
        return 0.0
    if np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    scale = np.max(np.abs(b))
    err = np.max(np.abs(a - b))
    return err / scale if scale > 0 else err


def within(err, dtype):
    """True if a relative error passes SPEC §7's tolerance (NaN never does)."""
    return bool(err <= tolerance(dtype))


def validation_wanted(validate):
    """``validate`` (a bool), or the environment's ``FASTRNN_VALIDATE=1``."""
    if not isinstance(validate, (bool, np.bool_)):
        raise OptionError(f"validate must be True or False, got {validate!r}")
    return bool(validate) or os.environ.get("FASTRNN_VALIDATE", "") not in ("", "0")


def compare(call, dtype, ours, ref):
    """Raise ValidationError naming each field whose relative error exceeds the tolerance.

    ``ours`` and ``ref`` are (loss, grads) pairs; ``grads`` are mappings of name to array. A loss
    of None (a vjp has none) is not compared.
    """
    tol = tolerance(dtype)
    (L, grads), (L_ref, grads_ref) = ours, ref
    bad = []
    if L_ref is not None:
        err = relative_error(L, L_ref)
        if not within(err, dtype):
            bad.append(f"loss rel err {err:.3g}")
    for name, g_ref in grads_ref.items():
        g = grads.get(name) if hasattr(grads, "get") else None
        if g is None:
            bad.append(f"{name} missing")
            continue
        err = relative_error(g, g_ref)
        if not within(err, dtype):
            bad.append(f"{name} max rel err {err:.3g}")
    if bad:
        raise ValidationError(f"{call} differs from fastrnn.reference beyond {tol:g} ({dtype}): " + "; ".join(bad))
