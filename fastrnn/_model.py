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


def _init_sizes(n_in, n_hidden, n_out, dtype, seed):
    """Checked sizes and a sampler of U(-1/sqrt(n), 1/sqrt(n)) arrays (torch's RNN/LSTM init)."""
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
    return n_in, n, o, u


class _Net:
    """What every cell shares: the readout (SPEC §2 "Readouts") and parameter bookkeeping."""

    param_names = ()

    def _setup_readout(self, n, dtype, W_out, b_out, n_out, out_activation, out_units):
        """Check the readout arguments; sets ``out_units``; returns the checked (W_out, b_out)."""
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
        return W_out, b_out

    @property
    def dtype(self):
        return self.param_dtype

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

    def _expected_shapes(self):
        raise NotImplementedError

    def checked(self):
        """The weights as the kernels need them, re-checked (a trainer may have changed them)."""
        out = {}
        expect = self._expected_shapes()
        if self.readout == "linear":
            expect["W_out"] = (self.W_out.shape[0], self.n_hidden)
            if self.b_out is not None:
                expect["b_out"] = (self.W_out.shape[0],)
        for name, shape in expect.items():
            arr = v.float_array(f"net.{name}", getattr(self, name), self.dtype)
            if arr.shape != shape:
                raise ShapeError(f"net.{name} has shape {arr.shape} but the network needs {shape}")
            out[name] = v.check_finite(f"net.{name}", v.contiguous(arr))
        return out

    def to_torch_state_dict(self):
        """The recurrent layer as a ``torch.nn.RNN``/``torch.nn.LSTM`` state_dict (keys ``*_l0``),
        ready for ``module.load_state_dict``. The readout is not part of it. Imports torch."""
        from ._torch import state_dict
        return state_dict(self)

    def _readout_repr(self):
        return (f", out_units={self.out_units.tolist()}" if self.readout == "units"
                else f", out_activation={self.out_activation!r}")


class RNN(_Net):
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
        W_out, b_out = self._setup_readout(n, dtype, W_out, b_out, n_out, out_activation, out_units)
        self._n, self._m, self.param_dtype = n, W_in.shape[1], dtype
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
        n_in, n, o, u = _init_sizes(n_in, n_hidden, n_out, dtype, seed)
        W_in, W_rec, b = u(n, n_in), u(n, n), u(n)
        if v.choice("readout", readout, READOUTS) == "linear":
            return cls(W_in, W_rec, b, u(o, n), u(o), activation=activation, readout="linear",
                       out_activation=out_activation)
        return cls(W_in, W_rec, b, activation=activation, readout="units", n_out=o,
                   out_activation=out_activation)

    @classmethod
    def from_torch(cls, module_or_state_dict, activation=None, **readout):
        """An RNN from a one-layer ``torch.nn.RNN`` or its state_dict (``b = bias_ih + bias_hh``).

        ``activation`` is read from a module; for a state_dict it defaults to "tanh". Readout
        arguments (``readout``, ``n_out``, ``W_out``, ...) are passed on; by default every unit is
        an output. The dtype follows the tensors (torch's default is float32). Imports torch.
        """
        from ._torch import rnn_from_torch
        return rnn_from_torch(cls, module_or_state_dict, activation, **readout)

    def copy(self):
        return RNN(self.W_in, self.W_rec, self.b, self.W_out, self.b_out, self.activation,
                   self.readout, None, self.out_activation,
                   None if self.out_units is None else self.out_units)

    def _expected_shapes(self):
        n, m = self.n_hidden, self.n_in
        return {"W_in": (n, m), "W_rec": (n, n), "b": (n,)}

    def __repr__(self):
        return (f"RNN(n_in={self.n_in}, n_hidden={self.n_hidden}, n_out={self.n_out}, "
                f"activation={self.activation!r}, readout={self.readout!r}{self._readout_repr()}, "
                f"dtype={self.dtype.name})")


class LSTM(_Net):
    """A forget-gate LSTM (Hochreiter & Schmidhuber 1997; Gers et al. 2000), gate order i, f, g, o:

        [i; f; g; o] = [σ; σ; tanh; σ](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

    Parameters
    ----------
    W_ih : (4n, m) array
    W_hh : (4n, n) array
    b_ih, b_hh : (4n,) arrays
        ``torch.nn.LSTM``'s layout (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``).
    W_out, b_out, readout, n_out, out_activation, out_units
        The readout of h_t, as for :class:`RNN` (default ``readout="linear"``).

    Notes
    -----
    SPEC §6. The arrays are copied; all share one dtype, float64 or float32.
    """

    cell = "lstm"
    param_names = ("W_ih", "W_hh", "b_ih", "b_hh", "W_out", "b_out")
    activation = "lstm"

    def __init__(self, W_ih, W_hh, b_ih, b_hh, W_out=None, b_out=None, readout="linear",
                 n_out=None, out_activation="identity", out_units=None):
        self.readout = v.choice("readout", readout, READOUTS)
        self.out_activation = v.choice("out_activation", out_activation, OUT_ACTIVATIONS)
        W_hh = v.float_array("W_hh", W_hh)
        dtype = W_hh.dtype
        n = W_hh.shape[1] if W_hh.ndim == 2 else 0
        v.check_shape("W_hh", W_hh, (4 * n, n), "(4n, n)", "gates i, f, g, o stacked as in torch.nn.LSTM")
        W_ih = v.float_array("W_ih", W_ih, dtype)
        v.check_shape("W_ih", W_ih, (4 * n, None), "(4n, m)")
        b_ih = v.check_shape("b_ih", v.float_array("b_ih", b_ih, dtype), (4 * n,), "(4n,)")
        b_hh = v.check_shape("b_hh", v.float_array("b_hh", b_hh, dtype), (4 * n,), "(4n,)")
        W_out, b_out = self._setup_readout(n, dtype, W_out, b_out, n_out, out_activation, out_units)
        self._n, self._m, self.param_dtype = n, W_ih.shape[1], dtype
        self.W_ih = np.array(W_ih, dtype=dtype, order="C", copy=True)
        self.W_hh = np.array(W_hh, dtype=dtype, order="C", copy=True)
        self.b_ih = np.array(b_ih, dtype=dtype, order="C", copy=True)
        self.b_hh = np.array(b_hh, dtype=dtype, order="C", copy=True)
        self.W_out = None if W_out is None else np.array(W_out, dtype=dtype, order="C", copy=True)
        self.b_out = None if b_out is None else np.array(b_out, dtype=dtype, order="C", copy=True)
        for name, arr in self.params().items():
            v.check_finite(name, arr)

    @classmethod
    def init(cls, n_in, n_hidden, n_out, readout="linear", dtype=np.float64, seed=0,
             out_activation="identity"):
        """An LSTM with ``torch.nn.LSTM``'s initialisation: every weight ~ U(-1/sqrt(n), 1/sqrt(n))."""
        n_in, n, o, u = _init_sizes(n_in, n_hidden, n_out, dtype, seed)
        W_ih, W_hh, b_ih, b_hh = u(4 * n, n_in), u(4 * n, n), u(4 * n), u(4 * n)
        if v.choice("readout", readout, READOUTS) == "linear":
            return cls(W_ih, W_hh, b_ih, b_hh, u(o, n), u(o), readout="linear", out_activation=out_activation)
        return cls(W_ih, W_hh, b_ih, b_hh, readout="units", n_out=o, out_activation=out_activation)

    @classmethod
    def from_torch(cls, module_or_state_dict, **readout):
        """An LSTM from a one-layer ``torch.nn.LSTM`` or its state_dict. Readout arguments are
        passed on; without ``W_out`` every unit is an output (``readout="units"``). Imports torch."""
        from ._torch import lstm_from_torch
        return lstm_from_torch(cls, module_or_state_dict, **readout)

    def copy(self):
        return LSTM(self.W_ih, self.W_hh, self.b_ih, self.b_hh, self.W_out, self.b_out, self.readout,
                    None, self.out_activation, None if self.out_units is None else self.out_units)

    def _expected_shapes(self):
        n, m = self.n_hidden, self.n_in
        return {"W_ih": (4 * n, m), "W_hh": (4 * n, n), "b_ih": (4 * n,), "b_hh": (4 * n,)}

    def __repr__(self):
        return (f"LSTM(n_in={self.n_in}, n_hidden={self.n_hidden}, n_out={self.n_out}, "
                f"readout={self.readout!r}{self._readout_repr()}, dtype={self.dtype.name})")


class _Sum:
    def items(self):
        """(name, array) for every field that is not None."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def __add__(self, other):
        if type(other) is not type(self):
            return NotImplemented

        def add(a, b):
            if a is None or b is None:
                return a if b is None else b
            return a + b
        return type(self)(*[add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)])


@dataclass
class Gradients(_Sum):
    """Gradients of the summed loss, one field per parameter (``None`` where the net has none)."""
    W_in: np.ndarray
    W_rec: np.ndarray
    b: np.ndarray
    W_out: Optional[np.ndarray] = None
    b_out: Optional[np.ndarray] = None
    h0: Optional[np.ndarray] = None


@dataclass
class LSTMGradients(_Sum):
    """Gradients of the summed loss for an LSTM, one field per parameter (``None`` where the net
    has none), plus the initial state (``h0``, ``c0``; None from RTRL). ``b_ih`` and ``b_hh``
    receive the same gradient, as they enter the gates as a sum."""
    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    W_out: Optional[np.ndarray] = None
    b_out: Optional[np.ndarray] = None
    h0: Optional[np.ndarray] = None
    c0: Optional[np.ndarray] = None
