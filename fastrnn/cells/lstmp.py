"""The driver of the LSTM with a projected state (``models.LSTMP``), states (h: p units, c: n).

Kernels: ``kernels.lstmp`` and the shared ``kernels.bptt._weight_grads``; reference:
``fastrnn.reference.lstmp``. Gradients by BPTT only: ``rtrl_methods`` and ``online_methods`` are
empty, so ``fastrnn.rtrl`` and ``OnlineRTRL`` refuse it with a clear error.
"""
import numpy as np

from .. import reference
from ..errors import OptionError
from ..kernels import _lstmp_forward, _lstmp_sweep
from ..models import LSTMP
from ..runtime import overlap, workspace
from ..runtime.dispatch import Work, call
from .base import CellDriver, RowProducts, Run, panel_buffer
from .lstm import _with_b_hh


def _scratch_or_new(scratch, name, shape, dtype):
    return workspace.scratch(name, shape, dtype) if scratch else np.empty(shape, dtype=dtype)


class Driver(CellDriver):
    model = LSTMP
    reference = reference.lstmp
    rtrl_methods = ()
    online_methods = ()
    state_copies = 16     # h, c, g, m, dH and the 4n gate values and deltas (p <= n)

    def forward(self, net, W, x, state0, forcing, threads, scratch=False):
        T, B, _ = x.shape
        n, p = net.n_cell, net.n_hidden
        h = _scratch_or_new(scratch, "state h", (T + 1, B, p), net.dtype)
        c = _scratch_or_new(scratch, "state c", (T + 1, B, n), net.dtype)
        gates = _scratch_or_new(scratch, "lstm gates", (T, B, 4 * n), net.dtype)
        m = _scratch_or_new(scratch, "lstmp m", (T, B, n), net.dtype)
        h[0], c[0] = state0
        work = Work(B, 8 * B * n * (p + n // 4), T, W["W_hh"].nbytes + W["W_hr"].nbytes)
        call(_lstmp_forward, threads, work, x, W["W_ih"], W["W_hh"],
             W["b_ih"] + W["b_hh"], W["W_hr"], h, c, gates, m, panel_buffer(W["W_hh"].T, work, threads),
             panel_buffer(W["W_hr"].T, work, threads, "weight panels 2"))
        return Run((h, c), {"gates": gates, "m": m})

    def backward(self, net, W, x, run, g, truncation, forcing, threads, dstate_T=None, want_dx=False):
        T, B, m_in = x.shape
        n, p = net.n_cell, net.n_hidden
        h, c = run.states
        dh_T, dc_T = (None, None) if dstate_T is None else dstate_T
        if dh_T is not None:
            g[-1] += dh_T
        if dc_T is None:
            dc_T = np.zeros((B, n), dtype=net.dtype)
        D = workspace.scratch("lstm D", (T, B, 4 * n), net.dtype)
        dH = workspace.scratch("lstmp dH", (T, B, p), net.dtype)
        dc0 = np.empty((B, n), dtype=net.dtype)
        dh0 = np.empty((B, p), net.dtype)
        work = Work(B, 8 * B * n * (p + n // 4), T, W["W_hh"].nbytes + W["W_hr"].nbytes)
        panels = (panel_buffer(W["W_hh"], work, threads), panel_buffer(W["W_hr"], work, threads, "weight panels 2"))

        def sweep(progress):
            call(_lstmp_sweep, threads, work, W["W_hh"], W["W_hr"], c, run.saved["gates"],
                 run.saved["m"], g, dc_T, *truncation, D, dH, dc0, dh0, *panels, progress)

        grads = {"W_ih": workspace.result((4 * n, m_in), net.dtype), "W_hh": workspace.result((4 * n, p), net.dtype),
                 "b_ih": np.empty(4 * n, net.dtype), "W_hr": workspace.result((p, n), net.dtype)}
        dx = workspace.result((T, B, m_in), net.dtype) if want_dx else None
        rows = RowProducts(x, h[:-1], D, grads, ("W_ih", "W_hh", "b_ih"), W["W_ih"] if want_dx else None, dx,
                           sums=((grads["W_hr"], dH, run.saved["m"]),))
        overlap.run(sweep, rows, T, threads, overlap.beside(_lstmp_sweep, threads, work, rows.flops, truncation))
        return _with_b_hh(grads), (dh0, dc0), dx

    def resume(self, net, W, x, states):
        """The gate values and o ⊙ tanh(c) of a forward pass from its states, batched over all steps."""
        h, c = states
        T, B, _ = x.shape
        n = net.n_cell
        pre = (x.reshape(T * B, -1) @ W["W_ih"].T + h[:-1].reshape(T * B, -1) @ W["W_hh"].T
               + (W["b_ih"] + W["b_hh"])).reshape(T, B, 4 * n)
        gates = np.empty_like(pre)
        gates[..., :2 * n] = 1 / (1 + np.exp(-pre[..., :2 * n]))
        gates[..., 2 * n:3 * n] = np.tanh(pre[..., 2 * n:3 * n])
        gates[..., 3 * n:] = 1 / (1 + np.exp(-pre[..., 3 * n:]))
        m = np.ascontiguousarray(gates[..., 3 * n:] * np.tanh(c[1:]))
        return Run((h, c), {"gates": gates, "m": m})

    def sensitivity_size(self, net, B):
        raise OptionError("RTRL is not available for the projected LSTM (LSTMP): use fastrnn.bptt")

    def rtrl(self, net, W, x, run, g, forcing, threads, method="exact", block=None):
        raise OptionError("RTRL is not available for the projected LSTM (LSTMP): use fastrnn.bptt")

    def online(self, net, batch, threads, method="exact", **options):
        raise OptionError("OnlineRTRL is not available for the projected LSTM (LSTMP): use fastrnn.bptt "
                          "over windows of the stream, or an LSTM without projection")
