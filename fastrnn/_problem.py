"""Validation of one call's inputs into a ``Problem`` the kernels and the reference can use."""
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _validate as v
from ._errors import DTypeError, OptionError, ShapeError, ValidationError
from ._model import LOSSES

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}   # SPEC §7
_EMPTY_UNITS = np.zeros(0, dtype=np.int64)


@dataclass
class Problem:
    W: dict                      # checked, contiguous weights
    x: np.ndarray                # (T, B, m)
    h0: np.ndarray               # (B, n)
    d: Optional[np.ndarray] = None       # (T, B, o) floats or (T, B) class ids; zero where masked out
    mask: Optional[np.ndarray] = None    # (T, B, o) for mse/bce, (T, B) for xent, in the net's dtype
    loss: str = "mse"
    teacher_forcing: bool = False
    c0: Optional[np.ndarray] = None      # (B, n), LSTM only

    @property
    def shape(self):
        return self.x.shape

    def readout_mask(self):
        """The mask shaped to broadcast against (T, B, o)."""
        return self.mask[..., None] if self.loss == "xent" else self.mask

    def forcing(self, net):
        """(tf, tf_units, tf_values, tf_mask) as the kernels take them."""
        if self.teacher_forcing:
            return True, net.out_units, self.d, self.mask
        T, B, _ = self.x.shape
        empty = np.zeros((0, 0, 0), dtype=net.dtype)
        return False, _EMPTY_UNITS, empty, empty


def state(net, name, value, B):
    """A (B, n) initial state; zeros for None."""
    if value is None:
        return np.zeros((B, net.n_hidden), dtype=net.dtype)
    value = v.float_array(name, value, net.dtype)
    v.check_shape(name, value, (B, net.n_hidden), "(B, n)")
    return v.check_finite(name, v.contiguous(value))


def inputs(net, x, h0):
    """Checked weights, x, h0 — and c0 for an LSTM, whose h0 may be None, h0 or (h0, c0)."""
    W = net.checked()
    x = v.float_array("x", x, net.dtype)
    v.check_shape("x", x, (None, None, net.n_in), "(T, B, m)",
                  "pass a time-major array (steps, batch, inputs)")
    x = v.check_finite("x", v.contiguous(x))
    B = x.shape[1]
    if net.cell == "lstm":
        if isinstance(h0, (tuple, list)):
            if len(h0) != 2:
                raise OptionError(f"h0 for an LSTM is None, an array h0 or a pair (h0, c0); got {len(h0)} items")
            return W, x, state(net, "h0", h0[0], B), state(net, "c0", h0[1], B)
        return W, x, state(net, "h0", h0, B), state(net, "c0", None, B)
    return W, x, state(net, "h0", h0, B), None


def problem(net, x, d, mask=None, loss="mse", h0=None, teacher_forcing=False):
    """Check everything one gradient call receives. Never writes the caller's arrays."""
    W, x, h0, c0 = inputs(net, x, h0)
    T, B, _ = x.shape
    o = net.n_out
    loss = v.choice("loss", loss, LOSSES)
    if loss == "xent" and net.out_activation not in ("identity", "softmax"):
        raise OptionError(f"loss='xent' applies softmax to the readout itself; the net has out_activation="
                          f"{net.out_activation!r}: use 'identity' or 'softmax'")
    if loss == "bce" and net.out_activation not in ("identity", "logistic"):
        raise OptionError(f"loss='bce' applies the logistic to the readout itself; the net has out_activation="
                          f"{net.out_activation!r}: use 'identity' or 'logistic'")
    if not isinstance(teacher_forcing, (bool, np.bool_)):
        raise OptionError(f"teacher_forcing must be True or False, got {teacher_forcing!r}")
    if teacher_forcing and net.cell != "rnn":
        raise OptionError("teacher_forcing=True is defined for the simple cell (fastrnn.RNN) only")
    if teacher_forcing and (net.readout != "units" or loss != "mse"):
        raise OptionError("teacher_forcing=True feeds targets back into the output units: it needs "
                          f"readout='units' and loss='mse' (got readout={net.readout!r}, loss={loss!r})")

    # mask first: it decides where targets must be valid
    mshape = (T, B) if loss == "xent" else (T, B, o)
    if mask is None:
        mask = np.ones(mshape, dtype=net.dtype)
    else:
        mask = v.as_array("mask", mask)
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
        d = v.as_array("d", d)
        if d.dtype.kind not in "iu":
            raise DTypeError(f"d has dtype {d.dtype} but loss='xent' takes integer class ids: "
                             "use d.astype(np.int64)")
        v.check_shape("d", d, (T, B), "(T, B) class ids")
        ids = d[on]
        if ids.size and (ids.min() < 0 or ids.max() >= o):
            bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
            raise OptionError(f"d holds class id {bad} but the network has {o} outputs (ids 0..{o - 1}); "
                              "mask out steps without a target")
        d = np.where(on, d, 0).astype(np.int64)
    else:
        d = v.float_array("d", d, net.dtype)
        v.check_shape("d", d, (T, B, o), "(T, B, o) targets")
        v.check_finite("d (where mask is 1)", np.where(on, d, 0))
        if loss == "bce" and ((d[on] < 0) | (d[on] > 1)).any():
            raise OptionError("d must lie in [0, 1] for loss='bce'")
        d = np.ascontiguousarray(np.where(on, d, 0), dtype=net.dtype)
    return Problem(W, x, h0, d, mask, loss, bool(teacher_forcing), c0)


# -- run-time validation against the reference -------------------------------------------------
def relative_error(a, b):
    """max|a - b| / max|b| (SPEC §7); the absolute error when b is all zeros."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    err = np.max(np.abs(a - b)) if b.size else 0.0
    return err / scale if scale > 0 else err


def validation_wanted(validate):
    if not isinstance(validate, (bool, np.bool_)):
        raise OptionError(f"validate must be True or False, got {validate!r}")
    return bool(validate) or os.environ.get("FASTRNN_VALIDATE", "") not in ("", "0")


def compare(call, dtype, ours, ref):
    """Raise ValidationError naming each field whose relative error exceeds the tolerance."""
    tol = TOLERANCE[np.dtype(dtype)]
    (L, grads), (L_ref, grads_ref) = ours, ref
    bad = []
    err = relative_error(L, L_ref)
    if err > tol:
        bad.append(f"loss rel err {err:.3g}")
    for name, g_ref in grads_ref.items():
        if getattr(grads, name, None) is None:
            bad.append(f"{name} missing")
            continue
        g = getattr(grads, name)
        err = relative_error(g, g_ref)
        if err > tol:
            bad.append(f"{name} max rel err {err:.3g}")
    if bad:
        raise ValidationError(f"{call} differs from fastrnn.reference beyond {tol:g} ({dtype}): " + "; ".join(bad))
