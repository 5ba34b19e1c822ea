"""The driver of the GRU, gate order r, z, n as in torch.nn.GRU (SPEC §6a).

Kernels: ``kernels.gru_forward``, ``kernels.gru_bptt``, ``kernels.gru_rtrl`` and the shared
``kernels.bptt._weight_grads``; reference (with the RTRL recursion written out):
``fastrnn.reference.gru``.
"""
import numpy as np

from .. import reference
from ..kernels import _gru_forward, _gru_rtrl, _gru_sweep
from ..models import GRU
from ..runtime import overlap, pair, workspace
from ..runtime.dispatch import Work, call, plan
from .base import CellDriver, OnlineCell, RowProducts, Run, panel_buffer, sensitivity_buffers, state_arrays, tiles


def _split(dW, m, n):
    """W = [W_ih | b_ih | W_hh | b_hh] (3n, m + n + 2) -> the four gradients, fresh arrays."""
    return {"W_ih": np.array(dW[:, :m], order="C", copy=True),
            "b_ih": np.array(dW[:, m], order="C", copy=True),
            "W_hh": np.array(dW[:, m + 1:m + 1 + n], order="C", copy=True),
            "b_hh": np.array(dW[:, m + 1 + n], order="C", copy=True)}


def _projection_buffer(rows, n, dtype):
    """The forward kernel's buffer for the input projection of ``rows`` = T·B rows (``kernels.gru_forward``), this
    thread's, kept from call to call."""
    return workspace.scratch("gru input projection", (rows, 3 * n), dtype)


class Driver(CellDriver):
    model = GRU
    reference = reference.gru
    state_copies = 12     # h, g, the 4n gate values, the 3n + n deltas

    def forward(self, net, W, x, state0, forcing, threads, scratch=False):
        T, B, _ = x.shape
        n = net.n_hidden
        (h,) = state_arrays(("h",), T, B, n, net.dtype, scratch)
        gates = (workspace.scratch("gru gates", (T, B, 4 * n), net.dtype) if scratch
                 else workspace.empty((T, B, 4 * n), net.dtype))
        h[0] = state0[0]
        work = Work(B, 6 * B * n * n, T, W["W_hh"].nbytes)
        paired = pair.forward_pays(work, threads, False, n, h.itemsize) if h.flags.c_contiguous else pair.NO
        if paired:                              # B = 1 on two threads
            proj = workspace.scratch("gru pair input", (T, 3 * n), net.dtype)
            pair.input_projection(x.reshape(T, -1), W["W_ih"], proj)
            b_ih, b_hh = W["b_ih"], W["b_hh"]
            bias = np.concatenate([b_ih[:2 * n] + b_hh[:2 * n], b_ih[2 * n:], b_hh[2 * n:]])
            pair.gru_forward(gates.reshape(T, 4 * n), W["W_hh"], bias, proj, h.reshape(T + 1, n))
            paired.done()
            return Run((h,), {"gates": gates})
        by_units = (pair.rows_forward_pays(work, threads, n, h.itemsize, plan(_gru_forward, threads, work))
                    if h.flags.c_contiguous else pair.NO)
        if by_units:
            proj = workspace.scratch("gru rows input", (T, B, 3 * n), net.dtype)     # a batch cut by units
            pair.input_projection(x.reshape(T * B, -1), W["W_ih"], proj.reshape(T * B, 3 * n))
            b_ih, b_hh = W["b_ih"], W["b_hh"]
            bias = np.concatenate([b_ih[:2 * n] + b_hh[:2 * n], b_ih[2 * n:], b_hh[2 * n:]])
            pair.gru_rows_forward(gates, W["W_hh"], bias, proj, h)
            by_units.done()
            return Run((h,), {"gates": gates})
        call(_gru_forward, threads, work, x, W["W_ih"], W["W_hh"], W["b_ih"], W["b_hh"],
             h, gates, _projection_buffer(T * B, n, net.dtype), panel_buffer(W["W_hh"].T, work, threads))
        paired.done()
        by_units.done()
        return Run((h,), {"gates": gates})

    def backward(self, net, W, x, run, g, truncation, forcing, threads, dstate_T=None, want_dx=False):
        T, B, m = x.shape
        n = net.n_hidden
        h = run.h
        if dstate_T is not None and dstate_T[0] is not None:
            g[-1] += dstate_T[0]
        D = workspace.scratch("gru D", (T, B, 3 * n), net.dtype)
        An = workspace.scratch("gru An", (T, B, n), net.dtype)
        dh0 = np.empty((B, n), net.dtype)
        work = Work(B, 6 * B * n * n, T, W["W_hh"].nbytes)
        gates = run.saved["gates"]
        flat = (h.flags.c_contiguous and gates.flags.c_contiguous and g.flags.c_contiguous and D.flags.c_contiguous
                and An.flags.c_contiguous)    # the pairs below take views of them
        paired = flat and pair.pays(work, threads, False, n, h.itemsize, truncation)     # B = 1 on two threads
        by_units = (not paired and flat                                                     # a batch cut by units
                    and pair.rows_pay(work, threads, n, h.itemsize, plan(_gru_sweep, threads, work), truncation))
        panels = None if paired or by_units else panel_buffer(W["W_hh"], work, threads)

        def sweep(progress):
            call(_gru_sweep, threads, work, W["W_hh"], h, gates, g, *truncation, D, An, dh0, panels, progress)

        def d_in(s0, s1):
            """The input side's deltas: the hidden side's but for the n block, da_n instead of dq = da_n r."""
            rows = D[s0:s1].reshape((s1 - s0) * B, 3 * n).copy()
            rows[:, 2 * n:] = An[s0:s1].reshape((s1 - s0) * B, n)
            return rows

        grads = {"W_ih": workspace.result((3 * n, m), net.dtype), "W_hh": workspace.result((3 * n, n), net.dtype),
                 "b_hh": np.empty(3 * n, net.dtype)}
        b_ih_n = np.empty(n, net.dtype)
        dx = workspace.result((T, B, m), net.dtype) if want_dx else None
        # W_ih's n block from the input side's deltas An (a_in: in the weight gradients' own products where they
        # take them in tiles; its bias, b_ih's n block, as a sum of its own)
        rows = RowProducts(x, h[:-1], D, grads, ("W_ih", "W_hh", "b_hh"), W["W_ih"] if want_dx else None, dx,
                           sums=((b_ih_n, An, None),), d_in=d_in, a_in=An)
        if paired:
            dh = workspace.zeros(n, net.dtype)          # both halves write it every step: aligned
            pair.gru_sweep(W["W_hh"], h.reshape(T + 1, n), gates.reshape(T, 4 * n), g.reshape(T, n), dh,
                           D.reshape(T, 3 * n), An.reshape(T, n))
            dh0[0] = D[0, 0] @ W["W_hh"] + dh * gates[0, 0, n:2 * n]
            rows(0, T, threads, False)
        elif by_units:
            dh = workspace.zeros((B, n), net.dtype)
            pair.gru_rows_sweep(W["W_hh"], h, gates, g, dh, D, An)
            dh0[...] = D[0] @ W["W_hh"] + dh * gates[0, :, n:2 * n]
            rows(0, T, threads, False)
        else:
            overlap.run(sweep, rows, T, threads, overlap.beside(_gru_sweep, threads, work, rows.flops, truncation))
        grads["b_ih"] = grads["b_hh"].copy()
        grads["b_ih"][2 * n:] = b_ih_n
        return grads, (dh0,), dx

    def resume(self, net, W, x, states):
        """The gate values [r, z, n, q] of a forward pass from its states, batched over all steps."""
        (h,) = states
        T, B, _ = x.shape
        n = net.n_hidden
        gi = (x.reshape(T * B, -1) @ W["W_ih"].T + W["b_ih"]).reshape(T, B, 3 * n)
        gh = (h[:-1].reshape(T * B, n) @ W["W_hh"].T + W["b_hh"]).reshape(T, B, 3 * n)
        gates = np.empty((T, B, 4 * n), dtype=net.dtype)
        gates[..., :2 * n] = 1 / (1 + np.exp(-(gi[..., :2 * n] + gh[..., :2 * n])))
        gates[..., 3 * n:] = gh[..., 2 * n:]
        gates[..., 2 * n:3 * n] = np.tanh(gi[..., 2 * n:] + gates[..., :n] * gh[..., 2 * n:])
        return Run((h,), {"gates": gates})

    def sensitivity_size(self, net, B):
        n, J = net.n_hidden, net.n_in + net.n_hidden + 2
        return n * 3 * n * J, 1, f"B·n·3n·J = {B}·{n}·{3 * n}·{J}"

    def _work(self, net, B, T):
        n, J = net.n_hidden, net.n_in + net.n_hidden + 2
        return Work(3 * n, 2 * B * 3 * n * n * 3 * n * J, T)

    def _tiles(self, net, parallel):
        n, J = net.n_hidden, net.n_in + net.n_hidden + 2
        return tiles(3 * n, 4 * n * J * np.dtype(net.dtype).itemsize, parallel)

    def rtrl(self, net, W, x, run, g, forcing, threads, method="exact", block=None):
        T, B, m = x.shape
        n = net.n_hidden
        (P,) = sensitivity_buffers(self, net, B)                  # checks the budget first
        work = self._work(net, B, T)
        tile_rows = self._tiles(net, plan(_gru_rtrl, threads, work) > 1)
        dW = np.zeros((3 * n, m + n + 2), dtype=net.dtype)
        call(_gru_rtrl, threads, work._replace(items=len(tile_rows) - 1), W["W_hh"], x, run.h,
             run.saved["gates"], g, tile_rows, P, dW)
        return _split(dW, m, n)

    def online(self, net, batch, threads, method="exact", **options):
        return Online(self, net, batch, threads)


class Online(OnlineCell):
    """Online RTRL for the GRU: the state h and the sensitivities P."""

    def __init__(self, driver, net, batch, threads):
        n = net.n_hidden
        self.net = net
        (self._P,) = sensitivity_buffers(driver, net, batch)
        work = driver._work(net, batch, 1)
        self._tiles = driver._tiles(net, plan(_gru_rtrl, threads, work) > 1)
        self._work = work._replace(items=len(self._tiles) - 1)
        self._h = np.zeros((2, batch, n), dtype=net.dtype)
        self._gates = np.empty((1, batch, 4 * n), dtype=net.dtype)
        self._dW = np.empty((3 * n, net.n_in + n + 2), dtype=net.dtype)

    @property
    def state(self):
        return (self._h[0],)

    def reset(self, state0):
        self._h[0] = state0[0]
        self._P[...] = 0

    def advance(self, W, x, forcing, threads):
        B, n = x.shape[1], self.net.n_hidden
        work = Work(B, 6 * B * n * n, 1, W["W_hh"].nbytes)
        call(_gru_forward, threads, work, x, W["W_ih"], W["W_hh"], W["b_ih"], W["b_hh"], self._h, self._gates,
             _projection_buffer(B, n, self.net.dtype), panel_buffer(W["W_hh"].T, work, threads))
        return Run((self._h,), {"gates": self._gates})

    def propagate(self, W, x, run, g, forcing, threads):
        self._dW[...] = 0
        call(_gru_rtrl, threads, self._work, W["W_hh"], x, self._h, self._gates, g, self._tiles, self._P, self._dW)
        self._h[0] = self._h[1]
        return _split(self._dW, self.net.n_in, self.net.n_hidden)
