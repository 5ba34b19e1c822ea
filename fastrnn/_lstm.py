"""forward, bptt and rtrl for the LSTM: the kernel side of the public calls (validated inputs in)."""
import numpy as np

from . import _memory, _problem, _workspace
from ._dispatch import call, workers
from ._model import LSTMGradients
from ._rnn import readout_errors
from ._readout import outputs
from .kernels import _lstm_forward, _lstm_rtrl, _lstm_sweep, _weight_grads

TILE_BYTES = 1024 * 1024   # one tile of (Ph, Pc, A): large enough for an efficient GEMM
MIN_TILES = 4


def run_forward(net, W, x, h0, c0, threads, scratch):
    """h, c (T + 1, B, n) and gates (T, B, 4n); scratch arrays for gradient calls, fresh otherwise."""
    T, B, _ = x.shape
    n = net.n_hidden
    shapes = {"h": (T + 1, B, n), "c": (T + 1, B, n), "gates": (T, B, 4 * n)}
    if scratch:
        h, c, gates = (_workspace.scratch("lstm " + k, s, net.dtype) for k, s in shapes.items())
    else:
        h, c, gates = (np.empty(s, dtype=net.dtype) for s in shapes.values())
    h[0], c[0] = h0, c0
    call(_lstm_forward, threads, B, x, W["W_ih"], W["W_hh"], W["b_ih"] + W["b_hh"], h, c, gates)
    return h, c, gates


def forward(net, x, h0=None):
    W, x, h0, c0 = _problem.inputs(net, x, h0)
    with workers() as threads:
        h, c, _ = run_forward(net, W, x, h0, c0, threads, scratch=False)
    return h, outputs(net, W, h[1:])[1], c


def bptt(net, p, th, thp):
    T, B, m = p.x.shape
    n = net.n_hidden
    with workers() as threads:
        h, c, gates = run_forward(net, p.W, p.x, p.h0, p.c0, threads, scratch=True)
        L, g, dW_out, db_out = readout_errors(net, p, h)
        D = _workspace.scratch("lstm D", (T, B, 4 * n), net.dtype)
        dc0 = np.empty((B, n), dtype=net.dtype)
        call(_lstm_sweep, threads, B, p.W["W_hh"], c, gates, g, th, thp, D, dc0)
        dW_ih = np.empty((4 * n, m), net.dtype)
        dW_hh = np.empty((4 * n, n), net.dtype)
        db = np.empty(4 * n, net.dtype)
        dh0 = np.empty((B, n), net.dtype)
        call(_weight_grads, threads, T * B, p.x, h[:-1], D, p.W["W_hh"], dW_ih, dW_hh, db, dh0)
    return L, LSTMGradients(dW_ih, dW_hh, db, db.copy(), dW_out, db_out, dh0, dc0)


def tiles(n, J, itemsize, parallel):
    """Row boundaries of W (4n rows) per sensitivity tile (see ``kernels.lstm_rtrl``)."""
    rows_total = 4 * n
    if not parallel:
        return np.array([0, rows_total], dtype=np.int64)
    rows = max(1, min(rows_total, TILE_BYTES // (6 * n * J * itemsize)))
    count = min(rows_total, max(-(-rows_total // rows), MIN_TILES))
    return np.linspace(0, rows_total, count + 1).round().astype(np.int64)


def sensitivity_buffers(net, B, parallel):
    """Check the memory budget, then allocate Ph = Pc = 0, (B, n·4n·J) each, and the tiles."""
    n, m = net.n_hidden, net.n_in
    J = m + 1 + n
    itemsize = np.dtype(net.dtype).itemsize
    nbytes = 2 * B * n * 4 * n * J * itemsize
    _memory.check(
        nbytes,
        f"LSTM RTRL with n={n}, m={m}, B={B} in {np.dtype(net.dtype).name} (2 buffers of B·n·4n·J = "
        f"{B}·{n}·{4 * n}·{J} numbers of {itemsize} bytes)",
        "a smaller batch (the memory grows with B), "
        + ("float32 (half the size), " if net.dtype == np.float64 else "")
        + "fewer units, or fastrnn.bptt, whose memory grows with T·B·n instead of B·n²·J")
    Ph = np.zeros((B, n * 4 * n * J), dtype=net.dtype)
    return Ph, np.zeros_like(Ph), tiles(n, J, itemsize, parallel)


def rtrl(net, p):
    T, B, m = p.x.shape
    n = net.n_hidden
    with workers() as threads:
        Ph, Pc, tile_rows = sensitivity_buffers(net, B, threads > 1)
        dW = np.zeros((4 * n, m + 1 + n), dtype=net.dtype)
        h, c, gates = run_forward(net, p.W, p.x, p.h0, p.c0, threads, scratch=True)
        L, g, dW_out, db_out = readout_errors(net, p, h)
        call(_lstm_rtrl, threads, len(tile_rows) - 1, p.W["W_hh"], p.x, h, c, gates, g, tile_rows,
             Ph, Pc, dW)
    db = np.ascontiguousarray(dW[:, m])
    return L, LSTMGradients(np.ascontiguousarray(dW[:, :m]), np.ascontiguousarray(dW[:, m + 1:]), db,
                            db.copy(), dW_out, db_out, None, None)


class OnlineState:
    """The per-stream state of OnlineRTRL for an LSTM: h, c, Ph, Pc."""

    def __init__(self, net, B, parallel):
        n = net.n_hidden
        self.Ph, self.Pc, self.tiles = sensitivity_buffers(net, B, parallel)
        self.h = np.zeros((2, B, n), dtype=net.dtype)
        self.c = np.zeros((2, B, n), dtype=net.dtype)
        self.gates = np.empty((1, B, 4 * n), dtype=net.dtype)
        self.dW = np.empty((4 * n, net.n_in + 1 + n), dtype=net.dtype)

    def reset(self, h0, c0):
        self.h[0], self.c[0] = h0, c0
        self.Ph[...] = 0
        self.Pc[...] = 0

    def step(self, net, p):
        m = net.n_in
        B = p.x.shape[1]
        self.dW[...] = 0
        W = p.W
        with workers() as threads:
            call(_lstm_forward, threads, B, p.x, W["W_ih"], W["W_hh"], W["b_ih"] + W["b_hh"],
                 self.h, self.c, self.gates)
            L, g, dW_out, db_out = readout_errors(net, p, self.h)
            call(_lstm_rtrl, threads, len(self.tiles) - 1, W["W_hh"], p.x, self.h, self.c, self.gates,
                 g, self.tiles, self.Ph, self.Pc, self.dW)
        self.h[0], self.c[0] = self.h[1], self.c[1]
        db = np.ascontiguousarray(self.dW[:, m])
        return L, LSTMGradients(np.ascontiguousarray(self.dW[:, :m]),
                                np.ascontiguousarray(self.dW[:, m + 1:]), db, db.copy(), dW_out, db_out)
