"""fastrnn inside JAX: ``fastrnn.jax.rnn`` and ``fastrnn.jax.lstm``.

Functions of JAX arrays, usable under ``jax.jit`` and ``jax.grad``: the forward pass and the
vector-Jacobian product run fastrnn's kernels on the host through ``jax.pure_callback``, tied
together by ``jax.custom_vjp``. Parameters are a dict with fastrnn's names (``W_in, W_rec, b``;
``W_ih, W_hh, b_ih, b_hh``). Under ``jax.vmap`` the callbacks run once per mapped element
(``vmap_method="sequential"``): correct, not batched into one kernel call — fold the mapped axis
into the batch axis B for speed.

float64 needs ``jax.config.update("jax_enable_x64", True)``, as everywhere in JAX.
JAX is an optional dependency: ``pip install 'fastrnn[jax]'``.
"""
from functools import partial

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:                    # pragma: no cover - only without the extra
    raise ImportError("fastrnn.jax needs JAX: pip install 'fastrnn[jax]'") from exc

import numpy as np

from . import api, checks, models
from ._docs import fill
from .kernels import ACTIVATIONS
from .errors import DTypeError, OptionError, ShapeError

__all__ = ["rnn", "lstm", "gru"]

_RNN_PARAMS = ("W_in", "W_rec", "b")
_GATED_PARAMS = ("W_ih", "W_hh", "b_ih", "b_hh")


def _names(kind):
    return _RNN_PARAMS if kind == "rnn" else _GATED_PARAMS


def _net(kind, params, activation):
    arrays = [np.asarray(p) for p in params]
    if kind == "rnn":
        return models.RNN._over(*arrays, activation=activation, readout="units")
    return models.MODELS[kind]._over(*arrays, readout="units")


def _check_params(params, names, what):
    if not isinstance(params, dict):
        raise OptionError(f"params must be a dict with the keys {', '.join(names)}, got {type(params).__name__}")
    missing = [k for k in names if k not in params]
    extra = [k for k in params if k not in names]
    if missing or extra:
        raise OptionError(f"params for fastrnn.jax.{what} must have exactly the keys {', '.join(names)}"
                          + (f"; missing {', '.join(missing)}" if missing else "")
                          + (f"; unknown {', '.join(extra)}" if extra else ""))
    return tuple(params[k] for k in names)


def _shapes(x, n, count):
    """Result shapes of the forward callback: all states (T + 1, B, n), ``count`` of them."""
    T, B = x.shape[0], x.shape[1]
    return tuple(jax.ShapeDtypeStruct((T + 1, B, n), x.dtype) for _ in range(count))


def _forward_host(kind, activation, params, x, states0):
    net = _net(kind, params, activation)
    h0 = tuple(np.asarray(s) for s in states0)
    out = api.states_only(net, np.asarray(x), h0 if len(h0) > 1 else h0[0])
    return tuple(getattr(out, name) for name in net.state_names)


def _vjp_host(kind, activation, params, x, states0, states, dh, dfinals):
    net = _net(kind, params, activation)
    x = np.asarray(x)
    h0 = tuple(np.asarray(s) for s in states0)
    finals = [np.asarray(f) for f in dfinals]
    extra = {"dc_T": finals[1]} if len(finals) > 1 else {}
    grads, dx, dstate0 = api.vjp(net, x, np.asarray(dh), h0 if len(h0) > 1 else h0[0], dh_T=finals[0],
                                 states=tuple(np.asarray(s) for s in states), **extra)
    names = _names(kind)
    dstate0 = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
    return tuple(grads[k] for k in names) + (dx,) + tuple(dstate0)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _layer(kind, activation, params, x, states0):
    n = params[1].shape[1]
    states = jax.pure_callback(partial(_forward_host, kind, activation), _shapes(x, n, len(states0)),
                               params, x, states0, vmap_method="sequential")
    return states


def _layer_fwd(kind, activation, params, x, states0):
    states = _layer(kind, activation, params, x, states0)
    return states, (params, x, states0, states)


def _layer_bwd(kind, activation, residuals, cotangents):
    params, x, states0, states = residuals
    dh = cotangents[0][1:]                         # dL/dh_t for t = 1..T
    dh0_direct = cotangents[0][0]                  # h[0] = h0 itself
    finals = tuple(c[-1] * 0 for c in cotangents)  # final states are read through the sequence
    if len(cotangents) > 1:                        # the LSTM's cell states: only c_T is an output
        finals = (finals[0], cotangents[1][-1])
    shapes = (tuple(jax.ShapeDtypeStruct(p.shape, p.dtype) for p in params) + (jax.ShapeDtypeStruct(x.shape, x.dtype),)
              + tuple(jax.ShapeDtypeStruct(s.shape, s.dtype) for s in states0))
    out = jax.pure_callback(partial(_vjp_host, kind, activation), shapes, params, x, states0, states, dh, finals,
                            vmap_method="sequential")
    count = len(params)
    dparams, dx, dstates0 = out[:count], out[count], list(out[count + 1:])
    dstates0[0] = dstates0[0] + dh0_direct
    if len(cotangents) > 1:
        dstates0[1] = dstates0[1] + cotangents[1][0]
    return tuple(dparams), dx, tuple(dstates0)


_layer.defvjp(_layer_fwd, _layer_bwd)


def _run(kind, activation, params, x, states0):
    """The states (T + 1, B, size) each, h first, of ``_layer``. fastrnn's calls take no empty sequence or batch;
    here they give what ``lax.scan`` gives: over no steps (T = 0) the initial states alone (scan's initial carry:
    the final states equal to the initial ones), for no sequences (B = 0) states with no rows; the parameters'
    gradients are zero either way."""
    T, B = x.shape[0], x.shape[1]
    if T == 0:
        return tuple(s[None] for s in states0)
    if B == 0:
        return tuple(jnp.zeros((T + 1,) + s.shape, s.dtype) for s in states0)
    return _layer(kind, activation, params, x, states0)


def _check_arrays(x, states, n, m):
    x = jnp.asarray(x)
    if x.ndim != 3 or x.shape[2] != m:
        raise ShapeError(f"x has shape {x.shape} but must be (T, B, m) = (…, …, {m}): pass a time-major array")
    if x.dtype not in (jnp.float32, jnp.float64):
        raise DTypeError(f"x has dtype {x.dtype} but must be float32 or float64")
    out = []
    for name, s in states:
        s = jnp.zeros((x.shape[1], n), x.dtype) if s is None else jnp.asarray(s)
        if s.shape != (x.shape[1], n):
            raise ShapeError(f"{name} has shape {s.shape} but must be (B, n) = ({x.shape[1]}, {n})")
        if s.dtype != x.dtype:
            raise DTypeError(f"{name} has dtype {s.dtype} but x is {x.dtype}: dtypes are never mixed")
        out.append(s)
    return x, tuple(out)


def rnn(params, x, h0=None, activation="tanh"):
    """The simple cell over a sequence: ``h_t = activation(W_in x_t + W_rec h_{t-1} + b)``.

    Parameters
    ----------
    params : dict with ``W_in`` (n, m), ``W_rec`` (n, n), ``b`` (n,)
    x : (T, B, m) array, time-major
    h0 : (B, n) array, optional (zeros)
    activation : {"tanh", "logistic", "relu", "identity"}

    Returns
    -------
    hs : (T, B, n) array, the states h_1..h_T
    h_T : (B, n) array, the final state

    {raises}

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastrnn.jax
    >>> params = {"W_in": jnp.ones((4, 3)) * 0.1, "W_rec": jnp.eye(4) * 0.5, "b": jnp.zeros(4)}
    >>> loss = jax.jit(lambda p, x: jnp.sum(fastrnn.jax.rnn(p, x)[0] ** 2))
    >>> grads = jax.grad(loss)(params, jnp.ones((5, 2, 3)))
    >>> sorted(grads), grads["W_rec"].shape
    (['W_in', 'W_rec', 'b'], (4, 4))
    """
    checks.choice("activation", activation, ACTIVATIONS)
    p = _check_params(params, _RNN_PARAMS, "rnn")
    n, m = p[0].shape
    x, states0 = _check_arrays(x, (("h0", h0),), n, m)
    (h,) = _run("rnn", activation, p, x, states0)
    return h[1:], h[-1]


def lstm(params, x, h0=None, c0=None):
    """The LSTM (gate order i, f, g, o, torch.nn.LSTM's layout) over a sequence.

    Parameters
    ----------
    params : dict with ``W_ih`` (4n, m), ``W_hh`` (4n, n), ``b_ih``, ``b_hh`` (4n,)
    x : (T, B, m) array, time-major
    h0, c0 : (B, n) arrays, optional (zeros)

    Returns
    -------
    hs : (T, B, n) array, the states h_1..h_T
    (h_T, c_T) : the final state

    {raises}

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, fastrnn.jax
    >>> rng = np.random.default_rng(0)
    >>> params = {"W_ih": jnp.asarray(rng.normal(size=(12, 2)) * 0.3), "W_hh": jnp.asarray(rng.normal(size=(12, 3)) * 0.3),
    ...           "b_ih": jnp.zeros(12), "b_hh": jnp.zeros(12)}
    >>> hs, (h_T, c_T) = jax.jit(fastrnn.jax.lstm)(params, jnp.ones((5, 2, 2)))
    >>> hs.shape, c_T.shape
    ((5, 2, 3), (2, 3))
    >>> g = jax.grad(lambda p: jnp.sum(fastrnn.jax.lstm(p, jnp.ones((5, 2, 2)))[0]))(params)
    >>> g["W_hh"].shape
    (12, 3)
    """
    p = _check_params(params, _GATED_PARAMS, "lstm")
    n, m = p[1].shape[1], p[0].shape[1]
    x, states0 = _check_arrays(x, (("h0", h0), ("c0", c0)), n, m)
    h, c = _run("lstm", "lstm", p, x, states0)
    return h[1:], (h[-1], c[-1])


def gru(params, x, h0=None):
    """The GRU (gate order r, z, n, torch.nn.GRU's layout) over a sequence.

    Parameters
    ----------
    params : dict with ``W_ih`` (3n, m), ``W_hh`` (3n, n), ``b_ih``, ``b_hh`` (3n,)
    x : (T, B, m) array, time-major
    h0 : (B, n) array, optional (zeros)

    Returns
    -------
    hs : (T, B, n) array, the states h_1..h_T
    h_T : (B, n) array, the final state

    {raises}

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, fastrnn.jax
    >>> rng = np.random.default_rng(0)
    >>> params = {"W_ih": jnp.asarray(rng.normal(size=(9, 2)) * 0.3), "W_hh": jnp.asarray(rng.normal(size=(9, 3)) * 0.3),
    ...           "b_ih": jnp.zeros(9), "b_hh": jnp.zeros(9)}
    >>> loss = lambda p, x: jnp.sum(fastrnn.jax.gru(p, x)[1] ** 2)      # the final state
    >>> value, g = jax.value_and_grad(loss)(params, jnp.ones((5, 2, 2)))
    >>> sorted(g), g["b_hh"].shape
    (['W_hh', 'W_ih', 'b_hh', 'b_ih'], (9,))
    """
    p = _check_params(params, _GATED_PARAMS, "gru")
    n, m = p[1].shape[1], p[0].shape[1]
    x, states0 = _check_arrays(x, (("h0", h0),), n, m)
    (h,) = _run("gru", "gru", p, x, states0)
    return h[1:], h[-1]


# The three functions' Raises sections, written once (each docstring holds ``{raises}``).
_RAISES = """Raises
    ------
    OptionError
        For params that are not a dict with exactly these keys{activation}.
    ShapeError, DTypeError
        For x or an initial state of the wrong shape or dtype (float32 or float64, never mixed);
        NonFiniteError and the other checks of :func:`fastrnn.forward` when the callback runs. A sequence of
        no steps or a batch of no sequences is not an error: the result is ``lax.scan``'s."""
fill(rnn, "{raises}", _RAISES.format(activation=", or an unknown activation"))
fill(lstm, "{raises}", _RAISES.format(activation=""))
fill(gru, "{raises}", _RAISES.format(activation=""))
