"""The driver of the simple cell ``h_t = phi(W_in x_t + W_rec h_{t-1} + b)`` (SPEC §2-5).

Kernels: ``kernels.forward``, ``kernels.bptt`` and ``kernels.rtrl``; reference:
``fastrnn.reference.rnn``. The only cell with teacher forcing.
"""
import numpy as np

from .. import reference
from ..checks import Forcing
from ..errors import OptionError
from ..kernels import ACTIVATIONS, _bptt_sweep, _forward, _rtrl
from ..models import RNN
from ..runtime import overlap, pair, workspace
from ..runtime.dispatch import Work, call, plan
from . import rnn_online
from .base import (CellDriver, OnlineCell, RowProducts, Run, panel_buffer, sensitivity_buffers, split_columns,
                   state_arrays, tiles)

_PARAMS = ("W_in", "W_rec", "b")   # the column blocks of W = [W_in | b | W_rec], as (input, recurrent, bias)


def fed_states(net, forcing, h):
    """The states fed into steps 1..T (h_{t-1}), with teacher-forced outputs replaced."""
    prev = h[:-1]
    if not forcing.on:
        return prev
    prev = prev.copy()
    prev[1:, :, forcing.units] = np.where(forcing.mask[:-1] != 0, forcing.values[:-1], prev[1:, :, forcing.units])
    return prev


def carried_slope(net, h_t, forced):
    """s~_t = phi'(a_t) from the unforced state h_t (B, n), zero at teacher-forced units."""
    s = rnn_online.slopes(net, h_t)
    if forced is not None:
        s[forced] = 0
    return s


class Driver(CellDriver):
    model = RNN
    reference = reference.rnn
    teacher_forcing = True
    rtrl_methods = ("exact", "fss")
    online_methods = ("exact", "fss", "snap1", "uoro", "rflo")

    def forward(self, net, W, x, state0, forcing, threads, scratch=False, out=None):
        T, B, _ = x.shape
        (h,) = state_arrays(("h",), T, B, net.n_hidden, net.dtype, scratch) if out is None else (out,)
        h[0] = state0[0]
        n = net.n_hidden
        work = Work(B, 2 * B * n * n, T, W["W_rec"].nbytes)
        paired = pair.forward_pays(work, threads, forcing.on, n, h.itemsize) if h.flags.c_contiguous else pair.NO
        if paired:                                  # B = 1 on two threads
            states = h.reshape(T + 1, n)            # a view: h is contiguous
            pair.input_projection(x.reshape(T, -1), W["W_in"], states[1:])
            total, _ = pair.forward(states, W["W_rec"], W["b"], ACTIVATIONS.index(net.activation))
        else:
            total = call(_forward, threads, work, x, W["W_in"], W["W_rec"], W["b"], h,
                         ACTIVATIONS.index(net.activation), forcing.on, forcing.units, forcing.values, forcing.mask,
                         panel_buffer(W["W_rec"].T, work, threads))
        paired.done()
        return Run((h,), checked=bool(np.isfinite(total)))      # the kernel's sum of the states it wrote

    def backward(self, net, W, x, run, g, truncation, forcing, threads, dstate_T=None, want_dx=False):
        T, B, m = x.shape
        n = net.n_hidden
        h = run.h
        if dstate_T is not None and dstate_T[0] is not None:
            g[-1] += dstate_T[0]
        D = workspace.scratch("rnn D", g.shape, net.dtype)
        dh0 = np.empty((B, n), net.dtype)
        work = Work(B, 2 * B * n * n, T, W["W_rec"].nbytes)
        grads = {"W_in": workspace.result((n, m), net.dtype), "W_rec": workspace.result((n, n), net.dtype),
                 "b": np.empty(n, net.dtype)}
        dx = workspace.result((T, B, m), net.dtype) if want_dx else None
        rows = RowProducts(x, np.ascontiguousarray(fed_states(net, forcing, h)), D, grads, ("W_in", "W_rec", "b"),
                           W["W_in"] if want_dx else None, dx)
        if (h.flags.c_contiguous and g.flags.c_contiguous and D.flags.c_contiguous     # views below, not copies
                and pair.pays(work, threads, forcing.on, n, h.itemsize, truncation)):   # B = 1 on two threads
            pair.sweep(W["W_rec"], h.reshape(T + 1, n), g.reshape(T, n), ACTIVATIONS.index(net.activation),
                       D.reshape(T, n))
            np.dot(D[0], W["W_rec"], out=dh0)
            rows(0, T, threads, False)
            return grads, (dh0,), dx
        panels = panel_buffer(W["W_rec"], work, threads)

        def sweep(progress):
            call(_bptt_sweep, threads, work, W["W_rec"], h, g, ACTIVATIONS.index(net.activation), *truncation,
                 forcing.on, forcing.units, forcing.mask, D, dh0, panels, progress)

        overlap.run(sweep, rows, T, threads, overlap.beside(_bptt_sweep, threads, work, rows.flops, truncation))
        return grads, (dh0,), dx

    def resume(self, net, W, x, states):
        return Run(tuple(states))

    def sensitivity_size(self, net, B):
        n, J = net.n_hidden, net.n_in + 1 + net.n_hidden
        return (n + 1) * n * J, 2, f"B·(n+1)·n·J = {B}·{n + 1}·{n}·{J}"

    def _work(self, net, B, T):
        n, J = net.n_hidden, net.n_in + 1 + net.n_hidden
        return Work(n, 2 * B * (n + 1) * n * n * J, T)

    def _tiles(self, net, parallel):
        n, J = net.n_hidden, net.n_in + 1 + net.n_hidden
        return tiles(n, (n + 1) * J * np.dtype(net.dtype).itemsize, parallel)

    def rtrl(self, net, W, x, run, g, forcing, threads, method="exact", block=None):
        T, B, m = x.shape
        n = net.n_hidden
        if method == "fss":
            if forcing.on:
                raise OptionError("method='fss' does not support teacher forcing: use method='exact'")
            return rnn_online.fss_gradient(net, W, x, run.h, g, block)
        Q, R = sensitivity_buffers(self, net, B, reuse=True)    # checks the budget first
        work = self._work(net, B, T)
        tile_rows = self._tiles(net, plan(_rtrl, threads, work) > 1)
        dW = np.zeros((n, m + 1 + n), dtype=net.dtype)
        call(_rtrl, threads, work._replace(items=len(tile_rows) - 1), W["W_rec"], x,
             np.ascontiguousarray(fed_states(net, forcing, run.h)), run.h, g, ACTIVATIONS.index(net.activation),
             forcing.on, forcing.units, forcing.mask, tile_rows, np.zeros((B, n), net.dtype), Q, R, dW)
        return split_columns(dW, m, _PARAMS)

    def online(self, net, batch, threads, method="exact", block=None, seed=None, feedback="random", tau=1.0):
        if method == "exact":
            return Online(self, net, batch, threads)
        if method == "fss":
            return rnn_online.FSSOnline(net, batch, block)
        if method == "snap1":
            return rnn_online.SnAp1(net, batch)
        if method == "uoro":
            return rnn_online.UORO(net, batch, seed)
        return rnn_online.RFLO(net, batch, feedback, tau, seed)


class Online(OnlineCell):
    """Online RTRL for the simple cell: the state h, the sensitivities Q (kernels.rtrl keeps
    Q = W_rec P + E rather than P) and s~, the slope carried from the last step."""

    def __init__(self, driver, net, batch, threads):
        n = net.n_hidden
        self.net = net
        self._P, self._Q = sensitivity_buffers(driver, net, batch)
        self._work = driver._work(net, batch, 1)
        self._tiles = driver._tiles(net, plan(_rtrl, threads, self._work) > 1)
        self._work = self._work._replace(items=len(self._tiles) - 1)
        self._s = np.zeros((batch, n), dtype=net.dtype)
        self._h = np.empty((2, batch, n), dtype=net.dtype)   # [h_{t-1} as fed, h_t]
        self._dW = np.empty((n, net.n_in + 1 + n), dtype=net.dtype)

    @property
    def state(self):
        return (self._h[0],)

    def reset(self, state0):
        self._h[0] = state0[0]
        self._P[...] = 0
        self._s[...] = 0

    def advance(self, W, x, forcing, threads):
        net = self.net
        unforced = Forcing.off(net.dtype)      # h[0] already holds the forced state
        B, n = x.shape[1], net.n_hidden
        work = Work(B, 2 * B * n * n, 1, W["W_rec"].nbytes)
        call(_forward, threads, work, x, W["W_in"], W["W_rec"], W["b"], self._h,
             ACTIVATIONS.index(net.activation), unforced.on, unforced.units, unforced.values, unforced.mask,
             panel_buffer(W["W_rec"].T, work, threads))
        return Run((self._h,))

    def propagate(self, W, x, run, g, forcing, threads):
        net = self.net
        h = self._h
        self._dW[...] = 0
        parity = call(_rtrl, threads, self._work, W["W_rec"], x, h[:1], h, g,
                      ACTIVATIONS.index(net.activation), forcing.on, forcing.units, forcing.mask, self._tiles,
                      self._s, self._P, self._Q, self._dW)
        if parity:
            self._P, self._Q = self._Q, self._P
        forced = None
        if forcing.on:
            forced = np.zeros(h[1].shape, dtype=bool)
            forced[:, forcing.units] = forcing.mask[0] != 0
        self._s = carried_slope(net, h[1], forced)
        h[0] = h[1]                                   # the state fed into the next step
        if forcing.on:
            h[0][:, forcing.units] = np.where(forcing.mask[0] != 0, forcing.values[0], h[0][:, forcing.units])
        return split_columns(self._dW, net.n_in, _PARAMS)
