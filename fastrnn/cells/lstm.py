"""The driver of the LSTM, state (h, c), gate order i, f, g, o (SPEC §6).

Kernels: ``kernels.lstm_forward``, ``kernels.lstm_bptt``, ``kernels.lstm_rtrl`` and the shared
``kernels.bptt._weight_grads``; reference: ``fastrnn.reference.lstm``.
"""
import numpy as np

from .. import reference
from ..kernels import _lstm_forward, _lstm_rtrl, _lstm_sweep
from ..models import LSTM
from ..runtime import overlap, pair, workspace
from ..runtime.dispatch import Work, call, plan
from .base import (CellDriver, OnlineCell, RowProducts, Run, panel_buffer, sensitivity_buffers, split_columns,
                   state_arrays, tiles)

_PARAMS = ("W_ih", "W_hh", "b_ih")   # the column blocks of W = [W_ih | b | W_hh], as (input, recurrent, bias)


def _with_b_hh(grads):
    """b_ih and b_hh enter the gates as a sum: both get the same gradient (separate arrays)."""
    grads["b_hh"] = grads["b_ih"].copy()
    return grads


class Driver(CellDriver):
    model = LSTM
    reference = reference.lstm
    state_copies = 13     # h, c, g and the 4n gate values and deltas

    def forward(self, net, W, x, state0, forcing, threads, scratch=False):
        T, B, _ = x.shape
        n, dtype = net.n_hidden, net.dtype
        h, c = state_arrays(("h", "c"), T, B, n, dtype, scratch)
        gates = (workspace.scratch("lstm gates", (T, B, 4 * n), dtype) if scratch
                 else workspace.empty((T, B, 4 * n), dtype))
        h[0], c[0] = state0
        work = Work(B, 8 * B * n * n, T, W["W_hh"].nbytes)
        paired = (pair.forward_pays(work, threads, False, n, h.itemsize)
                  if h.flags.c_contiguous and c.flags.c_contiguous else pair.NO)
        if paired:
            G = gates.reshape(T, 4 * n)         # views: B = 1 on two threads (``runtime.pair``)
            pair.input_projection(x.reshape(T, -1), W["W_ih"], G)
            pair.lstm_forward(G, W["W_hh"], W["b_ih"] + W["b_hh"], h.reshape(T + 1, n), c.reshape(T + 1, n))
            paired.done()
            return Run((h, c), {"gates": gates})
        by_units = (pair.rows_forward_pays(work, threads, n, h.itemsize, plan(_lstm_forward, threads, work))
                    if h.flags.c_contiguous and c.flags.c_contiguous else pair.NO)
        if by_units:
            pair.input_projection(x.reshape(T * B, -1), W["W_ih"], gates.reshape(T * B, 4 * n))
            pair.lstm_rows_forward(gates, W["W_hh"], W["b_ih"] + W["b_hh"], h, c)     # a batch cut by units
            by_units.done()
            return Run((h, c), {"gates": gates})
        call(_lstm_forward, threads, work, x, W["W_ih"], W["W_hh"], W["b_ih"] + W["b_hh"],
             h, c, gates, panel_buffer(W["W_hh"].T, work, threads))
        paired.done()
        by_units.done()
        return Run((h, c), {"gates": gates})

    def backward(self, net, W, x, run, g, truncation, forcing, threads, dstate_T=None, want_dx=False):
        T, B, m = x.shape
        n, dtype = net.n_hidden, net.dtype
        h, c = run.states
        dh_T, dc_T = (None, None) if dstate_T is None else dstate_T
        if dh_T is not None:
            g[-1] += dh_T
        if dc_T is None:
            dc_T = np.zeros((B, n), dtype=dtype)
        D = workspace.scratch("lstm D", (T, B, 4 * n), dtype)
        dc0 = workspace.empty((B, n), dtype)     # the pair's halves write their units of it every step
        dh0 = np.empty((B, n), dtype)
        work = Work(B, 8 * B * n * n, T, W["W_hh"].nbytes)
        grads = {"W_ih": workspace.result((4 * n, m), dtype), "W_hh": workspace.result((4 * n, n), dtype),
                 "b_ih": np.empty(4 * n, dtype)}
        dx = workspace.result((T, B, m), dtype) if want_dx else None
        rows = RowProducts(x, h[:-1], D, grads, ("W_ih", "W_hh", "b_ih"), W["W_ih"] if want_dx else None, dx)
        gates = run.saved["gates"]
        flat = (h.flags.c_contiguous and c.flags.c_contiguous and gates.flags.c_contiguous and g.flags.c_contiguous
                and D.flags.c_contiguous)     # the pairs below take views of them
        if flat and pair.pays(work, threads, False, n, h.itemsize, truncation):       # B = 1 on two threads
            dc = workspace.empty(n, dtype)              # both halves write it every step: aligned
            dc[:] = dc_T.reshape(n)
            pair.lstm_sweep(W["W_hh"], h.reshape(T + 1, n), c.reshape(T + 1, n), gates.reshape(T, 4 * n),
                            g.reshape(T, n), dc, D.reshape(T, 4 * n))
            dc0[0] = dc
            np.dot(D[0], W["W_hh"], out=dh0)
            rows(0, T, threads, False)
            return _with_b_hh(grads), (dh0, dc0), dx
        if flat and pair.rows_pay(work, threads, n, h.itemsize, plan(_lstm_sweep, threads, work), truncation):
            # a batch cut by units on two threads
            dc0[...] = dc_T
            pair.lstm_rows_sweep(W["W_hh"], h, c, gates, g, dc0, D)
            np.dot(D[0], W["W_hh"], out=dh0)
            rows(0, T, threads, False)
            return _with_b_hh(grads), (dh0, dc0), dx
        panels = panel_buffer(W["W_hh"], work, threads)

        def sweep(progress):
            call(_lstm_sweep, threads, work, W["W_hh"], h, c, gates, g, dc_T,
                 *truncation, D, dc0, dh0, panels, progress)

        overlap.run(sweep, rows, T, threads, overlap.beside(_lstm_sweep, threads, work, rows.flops, truncation))
        return _with_b_hh(grads), (dh0, dc0), dx

    def resume(self, net, W, x, states):
        """The gate values of a forward pass from its states, one batched product over all steps."""
        h, c = states
        T, B, _ = x.shape
        n = net.n_hidden
        pre = (x.reshape(T * B, -1) @ W["W_ih"].T + h[:-1].reshape(T * B, n) @ W["W_hh"].T
               + (W["b_ih"] + W["b_hh"])).reshape(T, B, 4 * n)
        gates = np.empty_like(pre)
        gates[..., :2 * n] = 1 / (1 + np.exp(-pre[..., :2 * n]))
        gates[..., 2 * n:3 * n] = np.tanh(pre[..., 2 * n:3 * n])
        gates[..., 3 * n:] = 1 / (1 + np.exp(-pre[..., 3 * n:]))
        return Run((h, c), {"gates": gates})

    def sensitivity_size(self, net, B):
        n, J = net.n_hidden, net.n_in + 1 + net.n_hidden
        return n * 4 * n * J, 2, f"B·n·4n·J = {B}·{n}·{4 * n}·{J}"

    def _work(self, net, B, T):
        n, J = net.n_hidden, net.n_in + 1 + net.n_hidden
        return Work(4 * n, 8 * B * n * n * 4 * n * J, T)

    def _tiles(self, net, parallel):
        n, J = net.n_hidden, net.n_in + 1 + net.n_hidden
        return tiles(4 * n, 6 * n * J * np.dtype(net.dtype).itemsize, parallel)

    def rtrl(self, net, W, x, run, g, forcing, threads, method="exact", block=None):
        T, B, m = x.shape
        n = net.n_hidden
        Ph, Pc = sensitivity_buffers(self, net, B)             # checks the budget first
        work = self._work(net, B, T)
        tile_rows = self._tiles(net, plan(_lstm_rtrl, threads, work) > 1)
        dW = np.zeros((4 * n, m + 1 + n), dtype=net.dtype)
        h, c = run.states
        call(_lstm_rtrl, threads, work._replace(items=len(tile_rows) - 1), W["W_hh"], x, h, c, run.saved["gates"], g, tile_rows,
             Ph, Pc, dW)
        return _with_b_hh(split_columns(dW, m, _PARAMS))

    def online(self, net, batch, threads, method="exact", **options):
        return Online(self, net, batch, threads)


class Online(OnlineCell):
    """Online RTRL for the LSTM: the states h, c and the sensitivities Ph, Pc."""

    def __init__(self, driver, net, batch, threads):
        n = net.n_hidden
        self.net = net
        self._Ph, self._Pc = sensitivity_buffers(driver, net, batch)
        work = driver._work(net, batch, 1)
        self._tiles = driver._tiles(net, plan(_lstm_rtrl, threads, work) > 1)
        self._work = work._replace(items=len(self._tiles) - 1)
        self._h = np.zeros((2, batch, n), dtype=net.dtype)
        self._c = np.zeros((2, batch, n), dtype=net.dtype)
        self._gates = np.empty((1, batch, 4 * n), dtype=net.dtype)
        self._dW = np.empty((4 * n, net.n_in + 1 + n), dtype=net.dtype)

    @property
    def state(self):
        return (self._h[0], self._c[0])

    def reset(self, state0):
        self._h[0], self._c[0] = state0
        self._Ph[...] = 0
        self._Pc[...] = 0

    def advance(self, W, x, forcing, threads):
        B, n = x.shape[1], self.net.n_hidden
        work = Work(B, 8 * B * n * n, 1, W["W_hh"].nbytes)
        call(_lstm_forward, threads, work, x, W["W_ih"], W["W_hh"], W["b_ih"] + W["b_hh"],
             self._h, self._c, self._gates, panel_buffer(W["W_hh"].T, work, threads))
        return Run((self._h, self._c), {"gates": self._gates})

    def propagate(self, W, x, run, g, forcing, threads):
        self._dW[...] = 0
        call(_lstm_rtrl, threads, self._work, W["W_hh"], x, self._h, self._c, self._gates, g,
             self._tiles, self._Ph, self._Pc, self._dW)
        self._h[0], self._c[0] = self._h[1], self._c[1]
        return _with_b_hh(split_columns(self._dW, self.net.n_in, _PARAMS))
