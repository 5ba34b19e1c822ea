"""The networks (RNN, LSTM) and the gradient containers.

A network holds its weights and its readout; it knows nothing of kernels. Every model class
names its recurrent parameters, its states and its gradient container; the cell driver that
computes with it lives in ``fastrnn.cells``.
"""
from collections.abc import Mapping
import os

import numpy as np

from . import checks as v
from ._docs import fill
from .errors import OptionError, ShapeError
from .kernels._activations import ACTIVATIONS
from .readout import LOSSES, OUT_ACTIVATIONS, READOUTS  # noqa: F401  (LOSSES: re-exported)

MODELS = {}   # cell name -> model class, filled by _Net.__init_subclass__


# -- gradients -----------------------------------------------------------------------------------
class Gradients(Mapping):
    """Gradients of the summed loss, one entry per parameter of the net.

    A read-only mapping of name to array (``grads["W_rec"]``, ``dict(grads)``, iteration over the
    names that hold an array) that also answers by attribute (``grads.W_rec``; ``None`` where the
    net has no such parameter). Gradients of the same kind add (``g1 + g2``) and scale
    (``0.5 * g``); ``None`` entries stay ``None`` unless the other side has an array.

    The names a container can hold are its class's ``names``: the simple cell's ``W_in, W_rec, b``,
    the readout's ``W_out, b_out`` and the initial state ``h0``.

    Parameters
    ----------
    *args : arrays or None
        The fields in the order of ``names``.
    **kwargs : arrays or None
        Fields by name; a field not given is None.

    Raises
    ------
    TypeError
        For a name the container does not have, a field given twice, or too many arrays.
    AttributeError
        When setting an attribute that is not a field.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> g = fastrnn.Gradients(W_in=np.ones((2, 1)), W_rec=np.ones((2, 2)), b=np.ones(2))
    >>> sorted(g), g["b"].tolist(), (g + g).b.tolist(), (0.5 * g).b.tolist()
    (['W_in', 'W_rec', 'b'], [1.0, 1.0], [2.0, 2.0], [0.5, 0.5])
    """

    names = ("W_in", "W_rec", "b", "W_out", "b_out", "h0")

    def __init__(self, *args, **kwargs):
        if len(args) > len(self.names):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.names)} arrays, got {len(args)}")
        values = dict(zip(self.names, args))
        for name, value in kwargs.items():
            if name not in self.names:
                raise TypeError(f"{type(self).__name__} has no field {name!r}: its fields are {', '.join(self.names)}")
            if name in values:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            values[name] = value
        for name in self.names:
            object.__setattr__(self, name, values.get(name))

    def __setattr__(self, name, value):
        if name not in self.names:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        object.__setattr__(self, name, value)

    # Mapping: the names that hold an array
    def __getitem__(self, name):
        value = getattr(self, name, None) if name in self.names else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self):
        return (name for name in self.names if getattr(self, name) is not None)

    def __len__(self):
        return sum(1 for _ in self)

    def __add__(self, other):
        if type(other) is not type(self):
            return NotImplemented

        def add(a, b):
            if a is None or b is None:
                return a if b is None else b
            return a + b
        return type(self)(*[add(getattr(self, k), getattr(other, k)) for k in self.names])

    def __mul__(self, factor):
        if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, float, np.integer, np.floating)):
            return NotImplemented
        return type(self)(*[None if getattr(self, k) is None else getattr(self, k) * factor for k in self.names])

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        if isinstance(divisor, (bool, np.bool_)) or not isinstance(divisor, (int, float, np.integer, np.floating)):
            return NotImplemented
        return self * (1.0 / divisor)

    def __repr__(self):
        shown = ", ".join(f"{k}={getattr(self, k).shape}" for k in self)
        return f"{type(self).__name__}({shown})"


class LSTMGradients(Gradients):
    """Gradients for an LSTM: ``W_ih, W_hh, b_ih, b_hh``, the readout's ``W_out, b_out`` and the
    initial state ``h0, c0`` (None from RTRL). ``b_ih`` and ``b_hh`` receive the same gradient, as
    they enter the gates as a sum. Constructed, added and scaled as :class:`Gradients`.

    {fields}

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.LSTM.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> loss, g = fastrnn.bptt(net, np.ones((4, 1, 2)), np.zeros((4, 1, 1)))
    >>> type(g).__name__, list(g)
    ('LSTMGradients', ['W_ih', 'W_hh', 'b_ih', 'b_hh', 'W_out', 'b_out', 'h0', 'c0'])
    >>> bool(np.array_equal(g.b_ih, g.b_hh))
    True
    """

    names = ("W_ih", "W_hh", "b_ih", "b_hh", "W_out", "b_out", "h0", "c0")


class LSTMPGradients(Gradients):
    """Gradients for a projected LSTM: ``W_ih, W_hh, b_ih, b_hh, W_hr``, the readout's
    ``W_out, b_out`` and the initial state ``h0, c0``. Constructed, added and scaled as
    :class:`Gradients`.

    {fields}

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.LSTMP.init(n_in=2, n_hidden=2, n_out=1, n_cell=4, seed=0)
    >>> loss, g = fastrnn.bptt(net, np.ones((4, 1, 2)), np.zeros((4, 1, 1)))
    >>> type(g).__name__, g.W_hr.shape, g.h0.shape, g.c0.shape
    ('LSTMPGradients', (2, 4), (1, 2), (1, 4))
    """

    names = ("W_ih", "W_hh", "b_ih", "b_hh", "W_hr", "W_out", "b_out", "h0", "c0")


class GRUGradients(Gradients):
    """Gradients for a GRU: ``W_ih, W_hh, b_ih, b_hh`` (gate blocks r, z, n), the readout's
    ``W_out, b_out`` and the initial state ``h0`` (None from RTRL). ``b_ih`` and ``b_hh`` agree on
    the r and z blocks and differ on the n block, where b_hn sits inside the reset product.
    Constructed, added and scaled as :class:`Gradients`.

    {fields}

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.GRU.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> loss, g = fastrnn.bptt(net, np.ones((4, 1, 2)), np.zeros((4, 1, 1)))
    >>> n = 3
    >>> bool(np.array_equal(g.b_ih[:2 * n], g.b_hh[:2 * n])), bool(np.array_equal(g.b_ih[2 * n:], g.b_hh[2 * n:]))
    (True, False)
    """

    names = ("W_ih", "W_hh", "b_ih", "b_hh", "W_out", "b_out", "h0")


# The constructor of every gradient container is Gradients'; its entry is written once.
_FIELDS = """Parameters
    ----------
    *args, **kwargs : arrays or None
        The fields, in the order of ``names`` or by name.

    Raises
    ------
    TypeError
        For a name the container does not have, a field given twice, or too many arrays."""
for _cls in (LSTMGradients, LSTMPGradients, GRUGradients):
    fill(_cls, "{fields}", _FIELDS)
del _cls


# -- networks ------------------------------------------------------------------------------------
def _init_sizes(n_in, n_hidden, n_out, dtype, seed):
    """Checked sizes and a sampler of U(-1/sqrt(n), 1/sqrt(n)) arrays (torch's RNN/LSTM init)."""
    n_in = v.positive_int("n_in", n_in)
    n = v.positive_int("n_hidden", n_hidden)
    o = v.positive_int("n_out", n_out)
    dtype = v.float_dtype("dtype", dtype)
    rng = np.random.default_rng(v.seed("seed", seed))
    k = 1.0 / np.sqrt(n)

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)
    return n_in, n, o, u


def _own(arr, dtype):
    """A C-contiguous copy the network owns."""
    return None if arr is None else np.array(arr, dtype=dtype, order="C", copy=True)


def _torch_arrays(obj, cls_name):
    """(state_dict as NumPy arrays, module or None) for a torch module or a state_dict, read by
    duck typing so that this module never imports torch."""
    module = None
    if hasattr(obj, "state_dict") and hasattr(obj, "num_layers"):
        if type(obj).__name__ != cls_name:
            raise OptionError(f"expected a torch.nn.{cls_name}, got {type(obj).__name__}")
        if obj.num_layers != 1 or obj.bidirectional or getattr(obj, "proj_size", 0):
            raise OptionError(f"fastrnn holds one unidirectional layer; this torch.nn.{cls_name} has "
                              f"num_layers={obj.num_layers}, bidirectional={obj.bidirectional}"
                              + (f", proj_size={obj.proj_size}" if getattr(obj, "proj_size", 0) else ""))
        module, obj = obj, obj.state_dict()
    if not isinstance(obj, Mapping):
        raise OptionError(f"expected a torch.nn.{cls_name} or its state_dict, got {type(obj).__name__}")
    extra = sorted(k for k in obj if not k.endswith("_l0"))
    if extra:
        raise OptionError(f"the state_dict has keys of more layers or directions ({', '.join(extra)}); "
                          "fastrnn holds one unidirectional layer")
    for key in ("weight_ih_l0", "weight_hh_l0"):
        if key not in obj:
            raise OptionError(f"the state_dict has no {key!r}: pass a torch.nn.{cls_name} state_dict")
    arrays = {k: (t.detach().cpu().numpy().copy() if hasattr(t, "detach") else np.array(t)) for k, t in obj.items()}
    rows = arrays["weight_hh_l0"].shape[0]
    zero = np.zeros(rows, dtype=arrays["weight_hh_l0"].dtype)
    arrays.setdefault("bias_ih_l0", zero)
    arrays.setdefault("bias_hh_l0", zero)
    return arrays, module


class _Net:
    """What every cell shares: the readout (SPEC §2 "Readouts"), parameter bookkeeping, state_dict.

    A subclass sets ``cell`` (its name), ``recurrent_names`` (its own parameters, in the order of
    its constructor), ``state_names`` and ``gradients_class``, and is registered in ``MODELS``.
    """

    cell = ""
    recurrent_names = ()
    state_names = ("h",)
    gradients_class = Gradients
    activation = None
    rtrl_available = True     # fastrnn.rtrl and OnlineRTRL compute for this cell

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.cell:
            MODELS[cls.cell] = cls

    @property
    def param_names(self):
        return self.recurrent_names + ("W_out", "b_out")

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
                units = v.unit_indices("out_units", out_units, n)
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

    def _own_params(self, dtype, arrays):
        """Keep copies of the checked arrays and check that all are finite; for ``_over``, keep
        the arrays themselves, whose values every gradient call checks (``checked``)."""
        if getattr(self, "_views", False):
            for name, arr in arrays.items():
                setattr(self, name, arr)
            return
        for name, arr in arrays.items():
            setattr(self, name, _own(arr, dtype))
        for name, arr in self.params().items():
            v.check_finite(name, arr)

    @classmethod
    def _over(cls, *arrays, **options):
        """A network that computes with the given arrays themselves, not copies: for the bridges
        (``fastrnn.torch``, ``fastrnn.jax``), whose arrays are views of the framework's parameters
        and live for one call. Their dtypes and shapes are checked here, their values by every call
        that uses them (``checked``). Copying them made every fastrnn.torch forward call copy the
        weights and check them twice (float32 LSTM n=512: 4 MB in fresh memory each step, 0.2 ms
        before the kernels). ``copy()`` of such a network owns copies again."""
        net = cls.__new__(cls)
        net._views = True
        net.__init__(*arrays, **options)
        return net

    @property
    def dtype(self):
        return self.param_dtype

    @property
    def n_in(self):
        return self._m

    @property
    def n_hidden(self):
        return self._n

    def state_size(self, name):
        """The units of state ``name`` (one of ``state_names``): n for every state but the
        projected LSTM's cell state c, which has ``n_cell``."""
        return self.n_hidden

    @property
    def n_out(self):
        return self.out_units.size if self.readout == "units" else self.W_out.shape[0]

    def params(self):
        """The parameters the network has, by name (``None`` ones left out). The arrays themselves."""
        return {k: getattr(self, k) for k in self.param_names if getattr(self, k) is not None}

    def _expected_shapes(self):
        raise NotImplementedError

    def checked(self):
        """The weights as the kernels need them, re-checked (a trainer may have changed them).
        A network ``_over`` a bridge's arrays, whose dtypes and shapes ``_over`` checked and which
        are views that keep them, has its values checked only: one pass for all its weights."""
        if getattr(self, "_views", False) and self.readout == "units":
            out = {name: v.contiguous(getattr(self, name)) for name in self.recurrent_names}
            if v.all_finite(*out.values()):
                return out
        out = {}
        expect = self._expected_shapes()
        if self.readout == "linear":
            if self.W_out is None:
                raise OptionError("net.W_out is None but the network's readout is 'linear': give it an "
                                  "(n_out, n) array, or build the net with readout='units'")
            W_out = v.as_array("net.W_out", self.W_out)
            if W_out.ndim != 2:
                raise ShapeError(f"net.W_out has shape {W_out.shape} but must be (n_out, n)")
            expect["W_out"] = (W_out.shape[0], self.n_hidden)
            if self.b_out is not None:
                expect["b_out"] = (W_out.shape[0],)
        for name, shape in expect.items():
            arr = v.float_array(f"net.{name}", getattr(self, name), self.dtype)
            if arr.shape != shape:
                raise ShapeError(f"net.{name} has shape {arr.shape} but the network needs {shape}")
            out[name] = v.contiguous(arr)
        if not v.all_finite(*out.values()):         # one pass for all; the first non-finite one by name
            for name, arr in out.items():
                v.check_finite(f"net.{name}", arr)
        return out

    def _options(self):
        """The constructor's keyword arguments other than the arrays."""
        opts = {"readout": self.readout, "out_activation": self.out_activation}
        if self.readout == "units":
            opts["out_units"] = self.out_units.tolist()
        return opts

    def copy(self):
        """An independent copy (weights copied)."""
        arrays = {k: getattr(self, k) for k in self.param_names}
        return type(self)(**arrays, **self._options())

    # -- state_dict, save, load --------------------------------------------------------------
    def state_dict(self):
        """Everything that defines the network, as a dict of plain values: copies of the
        parameters (``None`` ones left out) and the options (``cell``, ``activation``, ``readout``,
        ``out_activation``, ``out_units``) as strings and lists. ``Cls.from_state_dict`` and
        ``fastrnn.load`` rebuild the network from it."""
        state = {k: a.copy() for k, a in self.params().items()}
        state["cell"] = self.cell
        state.update(self._options())
        return state

    @classmethod
    def from_state_dict(cls, state):
        """The network a ``state_dict()`` (or the arrays of a saved ``.npz``) describes."""
        if not isinstance(state, Mapping):
            raise OptionError(f"state must be a mapping such as net.state_dict(), got {type(state).__name__}")
        cell = _plain(state.get("cell", cls.cell))
        target = MODELS.get(cell)
        if target is None:
            raise OptionError(f"the state's cell {cell!r} is not known: choose one of {', '.join(map(repr, MODELS))}")
        if cls is not _Net and target is not cls:
            raise OptionError(f"the state describes a {cell!r} network, not a {cls.cell!r} one: "
                              f"use fastrnn.load or fastrnn.{target.__name__}.from_state_dict")
        args = {}
        for name in target.recurrent_names + ("W_out", "b_out"):
            if name in state:
                args[name] = np.asarray(state[name])
        missing = [k for k in target.recurrent_names if k not in args]
        if missing:
            raise OptionError(f"the state has no {', '.join(map(repr, missing))}, which a {cell!r} network needs")
        for key in ("readout", "out_activation", "activation"):
            if key in state:
                args[key] = _plain(state[key])
        if "out_units" in state and args.get("readout", "units") == "units":
            args["out_units"] = np.asarray(state["out_units"]).astype(np.int64).tolist()
        return target(**args)

    def save(self, path):
        """Write ``state_dict()`` to ``path`` as ``.npz`` (plain arrays and strings, no pickle)."""
        state = self.state_dict()
        arrays = {k: (np.asarray(val) if not isinstance(val, str) else np.array(val)) for k, val in state.items()}
        with open(os.fspath(path), "wb") as f:
            np.savez(f, **arrays)

    # -- PyTorch layout ----------------------------------------------------------------------
    def to_torch_state_dict(self):
        """The recurrent layer as a ``torch.nn.RNN``/``LSTM`` state_dict (keys ``*_l0``), ready for
        ``module.load_state_dict``. The readout is not part of it. Needs PyTorch."""
        try:
            import torch
        except ImportError:
            raise OptionError("PyTorch is not installed: pip install 'fastrnn[torch]'") from None
        return {k: torch.from_numpy(a.copy()) for k, a in self._torch_arrays().items()}

    def _torch_arrays(self):
        raise NotImplementedError

    def _readout_repr(self):
        return (f", out_units={self.out_units.tolist()}" if self.readout == "units"
                else f", out_activation={self.out_activation!r}")


def _plain(value):
    """A str from a str or a 0-d string array (as ``np.load`` returns it)."""
    return value.item() if isinstance(value, np.ndarray) else value


def load(path):
    """The network saved with ``net.save(path)`` (any cell). Reads without pickle.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` file written by ``net.save``.

    Returns
    -------
    RNN, LSTM, LSTMP or GRU
        The network, of the cell it was saved from, with its readout and dtype.

    Raises
    ------
    OptionError
        For a file without the entries ``net.save`` writes.
    ShapeError, DTypeError, NonFiniteError
        For saved arrays that do not make a valid network.
    OSError
        When the file cannot be read.

    Examples
    --------
    >>> import os, tempfile, fastrnn
    >>> net = fastrnn.GRU.init(n_in=2, n_hidden=3, n_out=1, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> net.save(path)
    >>> fastrnn.load(path)
    GRU(n_in=2, n_hidden=3, n_out=1, readout='linear', out_activation='identity', dtype=float64)
    """
    with np.load(os.fspath(path), allow_pickle=False) as data:
        state = {k: data[k] for k in data.files}
    if "cell" not in state:
        raise OptionError(f"{os.fspath(path)} holds no 'cell' entry: it was not written by net.save")
    return _Net.from_state_dict(state)


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

    Raises
    ------
    ShapeError, DTypeError, NonFiniteError, OptionError
        For a bad array or option; the message names it.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> net = fastrnn.RNN.init(n_in=3, n_hidden=5, n_out=2, readout="linear", seed=0)
    >>> net
    RNN(n_in=3, n_hidden=5, n_out=2, activation='tanh', readout='linear', out_activation='identity', dtype=float64)
    >>> again = fastrnn.RNN(net.W_in, net.W_rec, net.b, activation="tanh")     # every unit an output
    >>> again.n_out
    5

    Notes
    -----
    SPEC §2. Layout matches ``torch.nn.RNN`` (``weight_ih_l0 = W_in``, ``weight_hh_l0 = W_rec``).
    The arrays are copied: the network owns its weights, and a trainer may update them in place
    (``net.W_rec -= lr * grads.W_rec``). All weights share one dtype, float64 or float32.
    """

    cell = "rnn"
    recurrent_names = ("W_in", "W_rec", "b")
    state_names = ("h",)
    gradients_class = Gradients

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
        self._own_params(dtype, {"W_in": W_in, "W_rec": W_rec, "b": b, "W_out": W_out, "b_out": b_out})

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
        an output. The dtype follows the tensors (torch's default is float32).
        """
        arrays, module = _torch_arrays(module_or_state_dict, "RNN")
        if module is not None:
            if activation is not None and activation != module.nonlinearity:
                raise OptionError(f"activation={activation!r} but the module's nonlinearity is {module.nonlinearity!r}")
            activation = module.nonlinearity
        return cls(arrays["weight_ih_l0"], arrays["weight_hh_l0"], arrays["bias_ih_l0"] + arrays["bias_hh_l0"],
                   activation=activation or "tanh", **readout)

    def _torch_arrays(self):
        return {"weight_ih_l0": self.W_in, "weight_hh_l0": self.W_rec, "bias_ih_l0": self.b,
                "bias_hh_l0": np.zeros_like(self.b)}

    def _options(self):
        return {"activation": self.activation, **super()._options()}

    def _expected_shapes(self):
        n, m = self.n_hidden, self.n_in
        return {"W_in": (n, m), "W_rec": (n, n), "b": (n,)}

    def __repr__(self):
        return (f"RNN(n_in={self.n_in}, n_hidden={self.n_hidden}, n_out={self.n_out}, "
                f"activation={self.activation!r}, readout={self.readout!r}{self._readout_repr()}, "
                f"dtype={self.dtype.name})")


class _Gated(_Net):
    """What the gated cells share: torch's layout ``W_ih`` (g·n, m), ``W_hh`` (g·n, n), ``b_ih``,
    ``b_hh`` (g·n,) for ``gates`` = g gate blocks, named ``gate_names`` in torch's order."""

    recurrent_names = ("W_ih", "W_hh", "b_ih", "b_hh")
    gates = 1
    gate_names = ""

    def __init__(self, W_ih, W_hh, b_ih, b_hh, W_out=None, b_out=None, readout="linear",
                 n_out=None, out_activation="identity", out_units=None):
        g, rows = self.gates, f"{self.gates}n"
        self.readout = v.choice("readout", readout, READOUTS)
        self.out_activation = v.choice("out_activation", out_activation, OUT_ACTIVATIONS)
        W_hh = v.float_array("W_hh", W_hh)
        dtype = W_hh.dtype
        n = W_hh.shape[1] if W_hh.ndim == 2 else 0
        v.check_shape("W_hh", W_hh, (g * n, n), f"({rows}, n)",
                      f"gates {self.gate_names} stacked as in torch.nn.{type(self).__name__}")
        W_ih = v.float_array("W_ih", W_ih, dtype)
        v.check_shape("W_ih", W_ih, (g * n, None), f"({rows}, m)")
        b_ih = v.check_shape("b_ih", v.float_array("b_ih", b_ih, dtype), (g * n,), f"({rows},)")
        b_hh = v.check_shape("b_hh", v.float_array("b_hh", b_hh, dtype), (g * n,), f"({rows},)")
        W_out, b_out = self._setup_readout(n, dtype, W_out, b_out, n_out, out_activation, out_units)
        self._n, self._m, self.param_dtype = n, W_ih.shape[1], dtype
        self._own_params(dtype, {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh,
                                 "W_out": W_out, "b_out": b_out})

    @classmethod
    def init(cls, n_in, n_hidden, n_out, readout="linear", dtype=np.float64, seed=0,
             out_activation="identity"):
        """A network with torch's initialisation: every weight ~ U(-1/sqrt(n), 1/sqrt(n))."""
        n_in, n, o, u = _init_sizes(n_in, n_hidden, n_out, dtype, seed)
        g = cls.gates
        W_ih, W_hh, b_ih, b_hh = u(g * n, n_in), u(g * n, n), u(g * n), u(g * n)
        if v.choice("readout", readout, READOUTS) == "linear":
            return cls(W_ih, W_hh, b_ih, b_hh, u(o, n), u(o), readout="linear", out_activation=out_activation)
        return cls(W_ih, W_hh, b_ih, b_hh, readout="units", n_out=o, out_activation=out_activation)

    @classmethod
    def from_torch(cls, module_or_state_dict, **readout):
        """The network of a one-layer torch module of the same cell, or its state_dict. Readout
        arguments are passed on; without ``W_out`` every unit is an output (``readout="units"``)."""
        arrays, _ = _torch_arrays(module_or_state_dict, cls.__name__)
        readout.setdefault("readout", "units" if "W_out" not in readout else "linear")
        return cls(arrays["weight_ih_l0"], arrays["weight_hh_l0"], arrays["bias_ih_l0"], arrays["bias_hh_l0"],
                   **readout)

    def _torch_arrays(self):
        return {"weight_ih_l0": self.W_ih, "weight_hh_l0": self.W_hh, "bias_ih_l0": self.b_ih,
                "bias_hh_l0": self.b_hh}

    def _expected_shapes(self):
        n, m, g = self.n_hidden, self.n_in, self.gates
        return {"W_ih": (g * n, m), "W_hh": (g * n, n), "b_ih": (g * n,), "b_hh": (g * n,)}

    def __repr__(self):
        return (f"{type(self).__name__}(n_in={self.n_in}, n_hidden={self.n_hidden}, n_out={self.n_out}, "
                f"readout={self.readout!r}{self._readout_repr()}, dtype={self.dtype.name})")


class LSTM(_Gated):
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

    Raises
    ------
    ShapeError
        When the arrays' shapes do not fit one n and m (4 gate blocks of n rows).
    DTypeError, NonFiniteError, OptionError
        As for :class:`RNN`: one float dtype, finite values, known readout options.

    Examples
    --------
    >>> import fastrnn
    >>> fastrnn.LSTM.init(n_in=3, n_hidden=4, n_out=2, seed=0).W_hh.shape
    (16, 4)

    Notes
    -----
    SPEC §6. The arrays are copied; all share one dtype, float64 or float32.
    """

    cell = "lstm"
    state_names = ("h", "c")
    gradients_class = LSTMGradients
    activation = "lstm"
    gates = 4
    gate_names = "i, f, g, o"


class LSTMP(_Net):
    """An LSTM whose state is projected to fewer units (``torch.nn.LSTM(proj_size=p)``), gate
    order i, f, g, o, n cell units and p < n state units:

        [i; f; g; o] = [σ; σ; tanh; σ](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = W_hr (o ⊙ tanh(c_t))

    ``n_hidden`` is p (the units of h, which the readout and ``h0`` see); ``n_cell`` is n (the
    units of c and ``c0``). Computed by BPTT (``fastrnn.forward``, ``bptt``, ``vjp``); exact RTRL
    and the online methods are written for the LSTM without projection only.

    Parameters
    ----------
    W_ih : (4n, m) array
    W_hh : (4n, p) array
    b_ih, b_hh : (4n,) arrays
    W_hr : (p, n) array
        ``torch.nn.LSTM``'s layout (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
        ``bias_hh_l0``, ``weight_hr_l0``).
    W_out, b_out, readout, n_out, out_activation, out_units
        The readout of h_t, as for :class:`RNN` (default ``readout="linear"``).

    Raises
    ------
    ShapeError
        When the arrays' shapes do not fit one n, p and m (p must be smaller than n, as in torch).
    DTypeError, NonFiniteError, OptionError
        As for :class:`RNN`: one float dtype, finite values, known readout options.

    Examples
    --------
    >>> import fastrnn
    >>> net = fastrnn.LSTMP.init(n_in=3, n_hidden=2, n_out=1, n_cell=6, seed=0)
    >>> net.W_hh.shape, net.W_hr.shape, net.n_hidden, net.n_cell
    ((24, 2), (2, 6), 2, 6)
    """

    cell = "lstmp"
    recurrent_names = ("W_ih", "W_hh", "b_ih", "b_hh", "W_hr")
    state_names = ("h", "c")
    gradients_class = LSTMPGradients
    activation = "lstm"

    def __init__(self, W_ih, W_hh, b_ih, b_hh, W_hr, W_out=None, b_out=None, readout="linear",
                 n_out=None, out_activation="identity", out_units=None):
        self.readout = v.choice("readout", readout, READOUTS)
        self.out_activation = v.choice("out_activation", out_activation, OUT_ACTIVATIONS)
        W_hr = v.float_array("W_hr", W_hr)
        dtype = W_hr.dtype
        p, n = W_hr.shape if W_hr.ndim == 2 else (0, 0)
        v.check_shape("W_hr", W_hr, (p, n), "(p, n)", "the projection of o ⊙ tanh(c) (n units) to h (p units)")
        if not 0 < p < n:
            raise ShapeError(f"W_hr has shape {W_hr.shape} but must be (p, n) with 0 < p < n (proj_size "
                             "below the cell units, as in torch.nn.LSTM)")
        W_hh = v.check_shape("W_hh", v.float_array("W_hh", W_hh, dtype), (4 * n, p), "(4n, p)",
                             "gates i, f, g, o stacked as in torch.nn.LSTM, read from the p projected units")
        W_ih = v.float_array("W_ih", W_ih, dtype)
        v.check_shape("W_ih", W_ih, (4 * n, None), "(4n, m)")
        b_ih = v.check_shape("b_ih", v.float_array("b_ih", b_ih, dtype), (4 * n,), "(4n,)")
        b_hh = v.check_shape("b_hh", v.float_array("b_hh", b_hh, dtype), (4 * n,), "(4n,)")
        W_out, b_out = self._setup_readout(p, dtype, W_out, b_out, n_out, out_activation, out_units)
        self._n, self._m, self._cell_units, self.param_dtype = p, W_ih.shape[1], n, dtype
        self._own_params(dtype, {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh, "W_hr": W_hr,
                                 "W_out": W_out, "b_out": b_out})

    rtrl_available = False

    @classmethod
    def init(cls, n_in, n_hidden, n_out, readout="linear", dtype=np.float64, seed=0,
             out_activation="identity", n_cell=None):
        """A network of ``n_hidden`` = p projected units and ``n_cell`` cell units (default 2p) with
        torch's initialisation: every weight ~ U(-1/sqrt(n_cell), 1/sqrt(n_cell))."""
        p = v.positive_int("n_hidden", n_hidden)
        n_cell = 2 * p if n_cell is None else v.positive_int("n_cell", n_cell)
        if n_cell <= p:
            raise OptionError(f"n_cell={n_cell} must be larger than n_hidden={p} (the projected units)")
        n_in, n, o, u = _init_sizes(n_in, n_cell, n_out, dtype, seed)
        W_ih, W_hh, b_ih, b_hh, W_hr = u(4 * n, n_in), u(4 * n, p), u(4 * n), u(4 * n), u(p, n)
        if v.choice("readout", readout, READOUTS) == "linear":
            return cls(W_ih, W_hh, b_ih, b_hh, W_hr, u(o, p), u(o), readout="linear", out_activation=out_activation)
        return cls(W_ih, W_hh, b_ih, b_hh, W_hr, readout="units", n_out=o, out_activation=out_activation)

    @property
    def n_cell(self):
        """The units of the cell state c (torch's ``hidden_size``)."""
        return self._cell_units

    def state_size(self, name):
        return self._cell_units if name == "c" else self._n

    def _torch_arrays(self):
        return {"weight_ih_l0": self.W_ih, "weight_hh_l0": self.W_hh, "bias_ih_l0": self.b_ih,
                "bias_hh_l0": self.b_hh, "weight_hr_l0": self.W_hr}

    def _expected_shapes(self):
        n, p, m = self.n_cell, self.n_hidden, self.n_in
        return {"W_ih": (4 * n, m), "W_hh": (4 * n, p), "b_ih": (4 * n,), "b_hh": (4 * n,), "W_hr": (p, n)}

    def __repr__(self):
        return (f"LSTMP(n_in={self.n_in}, n_cell={self.n_cell}, proj_size={self.n_hidden}, n_out={self.n_out}, "
                f"readout={self.readout!r}{self._readout_repr()}, dtype={self.dtype.name})")


class GRU(_Gated):
    """A gated recurrent unit (Cho et al. 2014) in ``torch.nn.GRU``'s form, gate order r, z, n:

        r = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)     z = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t-1} + b_hn))
        h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

    Parameters
    ----------
    W_ih : (3n, m) array
    W_hh : (3n, n) array
    b_ih, b_hh : (3n,) arrays
        ``torch.nn.GRU``'s layout (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``).
        b_hn sits inside the reset product, so b_in and b_hn are not interchangeable.
    W_out, b_out, readout, n_out, out_activation, out_units
        The readout of h_t, as for :class:`RNN` (default ``readout="linear"``).

    Raises
    ------
    ShapeError
        When the arrays' shapes do not fit one n and m (3 gate blocks of n rows).
    DTypeError, NonFiniteError, OptionError
        As for :class:`RNN`: one float dtype, finite values, known readout options.

    Examples
    --------
    >>> import fastrnn
    >>> fastrnn.GRU.init(n_in=3, n_hidden=4, n_out=2, seed=0).W_hh.shape
    (12, 4)

    Notes
    -----
    SPEC §6a. The arrays are copied; all share one dtype, float64 or float32.
    """

    cell = "gru"
    state_names = ("h",)
    gradients_class = GRUGradients
    activation = "gru"
    gates = 3
    gate_names = "r, z, n"
