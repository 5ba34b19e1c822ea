"""The network and gradient containers."""
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from . import _validate as v
from ._errors import OptionError, ShapeError

ACTIVATIONS = ("tanh", "logistic", "relu", "identity")   # index = kernel code
READOUTS = ("units", "linear")
OUT_ACTIVATIONS = ("identity", "logistic", "tanh", "softmax")
LOSSES = ("mse", "xent", "bce")


class RNN:
    """A simple (Elman / fully recurrent) network: ``h_t = phi(W_in x_t + W_rec h_{t-1} + b)``.

    Parameters
    ----------
    W_in : (n, m) array
    W_rec : (n, n) array
    b : (n,) array
        One bias; a ``torch.nn.RNN`` has ``bias_ih_l0 + bias_hh_l0``.
    W_out, b_out : (o, n) and (o,) arrays, optional
        Readout weights for ``readout="linear"`` (``b_out=None`` means no output bias).
    activation : {"tanh", "logistic", "relu", "identity"}
    readout : {"units", "linear"}
        ``"units"``: the outputs are the units ``out_units`` (Williams & Zipser's fully recurrent
        network). ``"linear"``: ``y_t = out_activation(W_out h_t + b_out)`` (Elman).
    n_out : int, optional
        Number of output units for ``readout="units"`` (default: all n units); for ``"linear"``
        it must equal ``W_out.shape[0]`` if given.
    out_activation : {"identity", "logistic", "tanh", "softmax"}
        Output nonlinearity of the linear readout; ``"identity"`` for the units readout.
    out_units : sequence of int, optional
        Which units are the outputs (units readout); default ``range(n_out)``.

    The arrays are copied: the network owns its weights, and a trainer may update them in place
    (``net.W_rec -= lr * grads.W_rec``). All weights share one dtype, float64 or float32.

    Notes
    -----
    SPEC §2. Layout matches ``torch.nn.RNN`` (``weight_ih_l0 = W_in``, ``weight_hh_l0 = W_rec``).
    """

    cell = "rnn"
    param_names = ("W_in", "W_rec", "b", "W_out", "b_out")

    def __init__(self, W_in, W_rec, b, W_out=None, b_out=None, activation="tanh",
                 readout="units", n_out=None, out_activation="identity", out_units=None):
        self.activation = v.choice("activation", activation, ACTIVATIONS)
        self.readout = v.choice("readout", readout, READOUTS)
        self.out_activation = v.choice("out_activation", out_activation, OUT_ACTIVATIONS)
        W_rec = v.float_array("W_rec", W_rec)
        dtype = W_rec.dtype
        n = W_rec.shape[0] if W_rec.ndim >= 1 else 0
        v.check_shape("W_rec", W_rec, (n, n), "(n, n)")
        W_in = v.float_array("W_in", W_in, dtype)
        v.check_shape("W_in", W_in, (n, None), "(n, m)")
        b = v.check_shape("b", v.float_array("b", b, dtype), (n,), "(n,)")
        if self.readout == "units":
            if W_out is not None or b_out is not None:
                raise OptionError("W_out and b_out belong to readout='linear'; the units readout has none")
            if self.out_activation != "identity":
                raise OptionError(f"out_activation={out_activation!r} needs readout='linear'; "
                                  "the units readout reads the units themselves (out_activation='identity')")
            if out_units is None:
                o = n if n_out is None else v.positive_int("n_out", n_out)
                if o > n:
                    raise OptionError(f"n_out={o} but the network has only n={n} units to read out")
                units = np.arange(o, dtype=np.int64)
            else:
                units = np.array(out_units, dtype=np.int64).reshape(-1)
                if units.size == 0 or units.min() < 0 or units.max() >= n or np.unique(units).size != units.size:
                    raise OptionError(f"out_units must be distinct unit indices in [0, {n}), got {list(out_units)}")
                if n_out is not None and n_out != units.size:
                    raise OptionError(f"n_out={n_out} but out_units names {units.size} units")
            self.out_units = units
        else:
            if W_out is None:
                raise OptionError("readout='linear' needs W_out of shape (n_out, n)")
            W_out = v.float_array("W_out", W_out, dtype)
            o = W_out.shape[0] if W_out.ndim == 2 else (n_out or 1)
            v.check_shape("W_out", W_out, (o, n), "(n_out, n)")
            if n_out is not None and n_out != o:
                raise OptionError(f"n_out={n_out} but W_out has {o} rows")
            if b_out is not None:
                b_out = v.check_shape("b_out", v.float_array("b_out", b_out, dtype), (o,), "(n_out,)")
            self.out_units = None
        self._n, self._m = n, W_in.shape[1]
        self.W_in = np.array(W_in, dtype=dtype, order="C", copy=True)
        self.W_rec = np.array(W_rec, dtype=dtype, order="C", copy=True)
        self.b = np.array(b, dtype=dtype, order="C", copy=True)
        self.W_out = None if W_out is None else np.array(W_out, dtype=dtype, order="C", copy=True)
        self.b_out = None if b_out is None else np.array(b_out, dtype=dtype, order="C", copy=True)
        for name, arr in self.params().items():
            v.check_finite(name, arr)

    @classmethod
    def init(cls, n_in, n_hidden, n_out, readout="units", activation="tanh", dtype=np.float64,
             seed=0, out_activation="identity"):
        """A network with ``torch.nn.RNN``'s initialisation: every weight ~ U(-1/sqrt(n), 1/sqrt(n)).

        ``n_out`` is the number of output units (units readout) or readout rows (linear).
        """
        n_in = v.positive_int("n_in", n_in)
        n = v.positive_int("n_hidden", n_hidden)
        o = v.positive_int("n_out", n_out)
        dtype = np.dtype(dtype)
        if dtype not in v.FLOAT_DTYPES:
            raise v.DTypeError(f"dtype must be float64 or float32, got {dtype}")
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(n)

        def u(*shape):
            return rng.uniform(-k, k, size=shape).astype(dtype)

        W_in, W_rec, b = u(n, n_in), u(n, n), u(n)
        if v.choice("readout", readout, READOUTS) == "linear":
            return cls(W_in, W_rec, b, u(o, n), u(o), activation=activation, readout="linear",
                       out_activation=out_activation)
        return cls(W_in, W_rec, b, activation=activation, readout="units", n_out=o,
                   out_activation=out_activation)

    # -- shape facts --------------------------------------------------------------------------
    @property
    def dtype(self):
        return self.W_rec.dtype

    @property
    def n_in(self):
        return self._m

    @property
    def n_hidden(self):
        return self._n

    @property
    def n_out(self):
        return self.out_units.size if self.readout == "units" else self.W_out.shape[0]

    def params(self):
        """The parameters the network has, by name (``None`` ones left out). The arrays themselves."""
        return {k: getattr(self, k) for k in self.param_names if getattr(self, k) is not None}

    def copy(self):
        return RNN(self.W_in, self.W_rec, self.b, self.W_out, self.b_out, self.activation,
                   self.readout, None, self.out_activation,
                   None if self.out_units is None else self.out_units)

    def checked(self):
        """The weights as the kernels need them, re-checked (a trainer may have changed them)."""
        n, m = self.n_hidden, self.n_in
        dtype = self.dtype
        out = {}
        expect = {"W_in": (n, m), "W_rec": (n, n), "b": (n,)}
        if self.readout == "linear":
            expect["W_out"] = (self.W_out.shape[0], n)
            if self.b_out is not None:
                expect["b_out"] = (self.W_out.shape[0],)
        for name, shape in expect.items():
            arr = v.float_array(f"net.{name}", getattr(self, name), dtype)
            if arr.shape != shape:
                raise ShapeError(f"net.{name} has shape {arr.shape} but the network needs {shape}")
            out[name] = v.check_finite(f"net.{name}", v.contiguous(arr))
        return out

    def __repr__(self):
        extra = (f", out_units={self.out_units.tolist()}" if self.readout == "units"
                 else f", out_activation={self.out_activation!r}")
        return (f"RNN(n_in={self.n_in}, n_hidden={self.n_hidden}, n_out={self.n_out}, "
                f"activation={self.activation!r}, readout={self.readout!r}{extra}, dtype={self.dtype.name})")


@dataclass
class Gradients:
    """Gradients of the summed loss, one field per parameter (``None`` where the net has none)."""
    W_in: np.ndarray
    W_rec: np.ndarray
    b: np.ndarray
    W_out: Optional[np.ndarray] = None
    b_out: Optional[np.ndarray] = None
    h0: Optional[np.ndarray] = None

    def items(self):
        """(name, array) for every field that is not None."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def __add__(self, other):
        def add(a, b):
            if a is None or b is None:
                return None if (a is None and b is None) else (a if b is None else b)
            return a + b
        return Gradients(*[add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)])
