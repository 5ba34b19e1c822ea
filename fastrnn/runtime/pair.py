"""A batch of one's forward chain, and exact BPTT's backward sweep, on the calling thread and the helper
thread, meeting at every step (``kernels.chain``: the simple cell, the LSTM and the GRU).

At B = 1 a step is one matrix-vector product, bound by how fast one core reads the recurrent weights from its
cache; the two threads each read half of them (their own caches' half: the simple cell's rows of W_rec, the
gated cells' rows of their units in each gate block of W_hh) and exchange their halves of the state (or of the deltas)
through flags (``kernels._sync``), with no launch of a thread pool at each step. A sweep reads W^T's rows of its
units, which each half copies at its first step (which has no product) into a buffer kept from call to call
(a new 4 MB array a call made 5 to 17 of 40 float32 LSTM n=512 sweeps 2.6x slower beside torch, ad hoc).

``pays`` takes it where it paid (``python bench/pair_forward.py``: whole ``fastrnn.bptt`` calls at default
threads, two runs at T=1000 and two at T=300, 2-core AMD EPYC Zen 3 on KVM, 2026-11-28,
``bench/results/2026-11-28-pair-forward.md``): a batch of one without teacher forcing, in a call that holds at
least two threads, with ``MIN_UNITS`` units or more, ``MIN_WEIGHT_BYTES`` of recurrent weights and
``MIN_STREAMED`` bytes of weights read over the steps (T times W_rec's bytes; the call's fixed cost, mostly the
helper's wake-up, is some 0.1-0.2 ms); not beside another framework's spinning pool (``dispatch.spins_beside``),
and with a CPU free for the helper (``overlap._idle_core``, this process's own pools' threads not counted). Where
the rule allows it, the clock chooses (``forward_pays``, ``runtime.measured``): the machine's cores do not always
exchange cache lines as fast (the same forced pairs at 0.83-1.00 of the time without in one run, 1.17-1.75 in the
next, minutes apart; ``python bench/pair_floor.py``). MIN_WEIGHT_BYTES, from the good runs (2-core Zen 5 on KVM,
2026-11-29, the arrays aligned, whole calls, the pair forced / one thread): the simple cell float64 n=128 (128 KB)
1.10, float32 n=160-192 (100-144 KB) 1.14-1.15, 196-200 KB 0.98-1.00, float32 n=256 (256 KB) 0.89-0.92; the GRU
float32 n=128 (192 KB) 0.98-1.02; the LSTM float32 n=128 (256 KB) 0.89-0.90, LSTM and GRU float64 n=128
0.82-0.85. The figures below, from before it, were taken on other machines and days. The forward pass alone paired, T=1000: float64 n=192-512 0.81-0.94 of the time
without, float32 n=512 0.82-0.91; at n=128, where the meetings cost about what they save, 0.89-1.07 (float64)
and 0.86-1.01 (float32); fewer units lose (n=64 0.96-1.39). The sweep too from ``SWEEP_MIN_BYTES`` of weights
(exact BPTT only; the weight gradients then follow it on the call's threads instead of running beside it on the
helper, ``runtime.overlap``): float64 n=192-512 0.72-0.90, float32 n=512 0.64-0.65, n=256 0.79-1.01; at n=128
0.93-1.24. T=300: n=256-512 0.69-0.84 in the second run (1.01 and 0.81-0.83 forward alone in the first).
The LSTM by the same rule (``python bench/pair_forward.py --cell lstm``, 2-core AMD EPYC Zen 5 on KVM,
2026-11-28, ``bench/results/2026-11-28-lstm-pair.md``): T=1000, n=128 0.79-0.92 of the time without, n=192-256
0.64-0.81, n=512 0.88-0.91; T=300, n=128 0.95-1.02, n=192 0.70; T=100, n=192-512 0.51-0.89 (n=128 1.06-1.15,
under ``MIN_STREAMED``: not taken). The GRU likewise (``--cell gru``): T=1000, float64 n=128-512 0.68-0.90, float32
n=192 0.87 (1.02 in a shorter run), n=256-512 0.60-0.84, n=160 0.99; T=100, n=256-512 0.69-0.91.
Whichever thread computes a half of a step, the results are the same (``kernels.chain``); they differ from the
one-thread kernels' only by rounding (another order of the products' sums).

The halves take their products in row tiles (``half_tiles``: from 128 units and more than 64 KB of recurrent
weights, while a half's weights stay within a core's 512 KB, where the one-thread kernels take row tiles too), on
panels of the half's columns of W^T or W (each gate block's, for the gated cells) that each half cuts at its first
step (``chain.FORWARD_TILES``, ``SWEEP_TILES``); by the weights' rows they ran at the one-thread loops' rate
instead of the tiles'. Whole calls, the pair forced, tiles against rows in the same rounds (``python
bench/pair_forward.py 40 --half-rows [--cell lstm|gru]``, T=1000, 2-core AMD EPYC Zen 5 on KVM, 2026-11-28): the
simple cell float64 n=128 2.15 against 2.22 ms, n=256 5.45 against 6.62; float32 n=256 3.31 against 3.55, n=512
8.43 against 10.94 (an earlier run of 20 rounds: float64 n=192 3.78 against 4.11, float32 n=384 5.95 against 7.54;
float32 n=128, 64 KB, 1.58 against 1.39 by tiles: it keeps the rows); 25 rounds, the LSTM float64 n=128-160
0.96-0.98 of the rows' time, float32 n=128-256 0.94-0.98; the GRU float64 n=128-192 0.85-0.94, float32
n=128-256 0.84-0.97.

The gated cells' batches of a few rows, and of weights far beyond the caches, run the same way (``rows_pay``,
``lstm_rows_forward``, ``lstm_rows_sweep``, ``gru_rows_forward``, ``gru_rows_sweep``): each thread its units for
every row, in the compiled tiles; where the rule allows it, the clock chooses between that and the batch kernels
(``rows_forward_pays``).

The helper is the process's one helper thread (``overlap``). A call that finds it late does not wait for it:
the calling thread takes the helper's halves until the helper claims one, and at the end, if the helper has
not begun by then, closes the job, so that the helper never touches the call's arrays after it returns.
"""
import threading

import numpy as np

from ..kernels import chain
from ..kernels._sync import claim
from ..kernels._jit import _jit
from ..kernels._tiles import FORWARD_ROW_TILE_MIN_K, ROW_TILE_BYTES, ROW_TILE_MIN_BYTES, ROW_TILE_WEIGHT_BYTES
from . import dispatch, measured, overlap, workspace

MIN_UNITS = 128          # fewer units: one thread
MIN_WEIGHT_BYTES = 256 << 10   # fewer bytes of recurrent weights: one thread (the meetings cost what the halves save)
MIN_STREAMED = 64 << 20  # bytes of weights read over the steps (T times W_rec's): fewer, one thread
SWEEP_MIN_BYTES = 256 << 10   # a sweep on two threads from this many bytes of weights: its weight gradients follow it
GRACE = 2000             # polls (some microseconds) a thread waits for the other's claim before it takes the half
LINE = 64                # bytes: the halves are cut on a cache line where the units allow
SWEEP = True             # the backward sweep too (a switch for ``bench/pair_forward.py``)
FORCE = None             # tests: True takes the pair wherever it can run (B = 1, no teacher forcing, 8 units or
                         # more), False never
ROWS_MIN_BYTES = 1 << 20    # a batch cut by units (``rows_pay``): weights of at least this many bytes ...
ROWS_HUGE_BYTES = 16 << 20  # ... and where the kernels would cut it into blocks of several rows, more than this
ROWS_MAX = 16               # ... for at most this many rows
ROWS_FORCE = None        # tests and benches: True cuts every batch of 2 rows or more by units, False none
HALF_TILES = True        # the simple cell's halves in row tiles where ``half_tiles`` says (a switch for the benches)


def _mark(state, value):
    return claim(state, 0, 0, value)


_mark = _jit(_mark)
STARTED, CLOSED = 1, -1


def cut_of(n, itemsize):
    """Where the state's n units are cut into the two halves: on a cache line if n allows, else on four
    units (``kernels.chain``); 0 where n is too small to cut."""
    line = LINE // itemsize
    cut = n // 2 // line * line
    return cut if cut > 0 else n // 2 // 4 * 4


def pays(work, threads, forcing_on, n, itemsize, truncation=None):
    """Whether a forward pass of ``work`` (``dispatch.Work``) may run as a pair by the rule (see the module's
    notes; ``forward_pays`` then chooses by what the pairs and the passes alone have measured), or with
    ``truncation`` (trunc_h, trunc_hp), whether its backward sweep runs as a pair: a sweep only in exact BPTT, by
    the rule and where the forward passes of its shape last measured the pair faster (``_measured``)."""
    if work.items != 1 or forcing_on or cut_of(n, itemsize) == 0:
        return False
    if truncation is not None and not (SWEEP and truncation[0] == truncation[1] >= work.steps
                                       and (FORCE or work.weight_bytes >= SWEEP_MIN_BYTES)):
        return False
    if FORCE is not None:
        return FORCE
    return (threads >= 2 and n >= MIN_UNITS and work.weight_bytes >= MIN_WEIGHT_BYTES
            and work.steps * work.weight_bytes >= MIN_STREAMED
            and not dispatch.spins_beside(work.flops_per_step * work.steps)
            and overlap._idle_core(True)          # this process's pools' spinning: the measured choice sees its cost
            and (truncation is None or _measured(_shape(work, n, itemsize))))


CHOOSER = measured.Chooser()   # the pair's measured choice (``runtime.measured``), by shape (``_shape``)
NO = measured.NO               # a pass the pair cannot take (its arrays not contiguous): nothing to record


def _shape(work, n, itemsize):
    """A shape's key: units, bytes a number and of the recurrent weights (the cell), steps to a power of two."""
    return n, itemsize, work.weight_bytes, int(work.steps).bit_length()


def _measured(key):
    return CHOOSER.prefers_together(key)


def forward_pays(work, threads, forcing_on, n, itemsize):
    """Whether this forward pass runs as a pair: ``pays``' rule, then the choice by the clock
    (``runtime.measured``: whether the pair or one thread has lately been faster at this shape). A
    ``measured.Choice``, whose ``done()`` the caller calls when the pass has ended, either way; the sweep
    follows what the forward passes measured (``pays`` with its truncation)."""
    allowed = pays(work, threads, forcing_on, n, itemsize)
    if not allowed or FORCE is not None:
        return measured.Choice(allowed)
    return CHOOSER.choose(_shape(work, n, itemsize), work.steps)


def rows_pay(work, threads, n, itemsize, blocks, truncation=None):
    """Whether a gated cell's forward pass of a batch of ``work.items`` rows, or with ``truncation`` its backward
    sweep in exact BPTT, runs as a pair cut by units (``lstm_rows_forward``, ``lstm_rows_sweep``, the GRU's
    ``gru_rows_forward``, ``gru_rows_sweep``) instead of the kernels' cut by rows into ``blocks`` parallel blocks
    (``dispatch.plan``).

    Each thread of the pair multiplies every row by half of W_hh's gate rows, so it streams half of the weights a
    step; each of the kernels' blocks streams all of them for its rows. Measured (``python bench/unit_rows.py``
    and a forerunner, whole ``fastrnn.bptt`` calls at default threads, T=100, 2-core AMD EPYC Zen 5, 2026-11-28;
    units / rows, two runs): where the kernels run one block (B = 3 or 4: blocks of a tile's four rows) or blocks
    of one row (B = 2), the pair pays from 1 MB of weights: float32 n=256 0.89-0.99, n=512 0.75-0.80, float64 n=192
    0.94-0.97, n=256-512 0.75-0.95 (n=128 1.08-1.41, float32 n=192 1.18-1.21). Against two blocks of several rows
    it pays only where the weights are far beyond the caches: float64 n=768-1024 (18-32 MB) 0.63-0.89; float32
    n=1024 (16 MB) B=8 0.84-0.97 and B=16 0.90-1.07, not taken; float32 n=512 B=6-8 1.11-1.12, n=768 0.99-1.05,
    float64 n=512 B=6-8 0.99-1.10: there each block's rows repay its reading all of W_hh. The GRU by the same rule
    (``--cell gru``, one run): float32 n=512 B=2-4 0.69-0.72, float64 n=256-512 0.69-0.80 (n=128 1.14-1.35, float32
    n=256 at 768 KB 0.93-0.96, float64 n=192 at 864 KB 0.92, not taken); B=6-8 at n=512-768 1.06-1.11; float64
    n=1024 (24 MB) B=8-16 1.02 and 0.98, taken, level: its weights still fit this L3 of 32 MB. One of the pair's
    threads is the helper (``overlap``): it runs two threads whatever the machine has, so it is not taken where
    the kernels would run more than two blocks. Where the rule allows it, the clock chooses, as for a batch of one
    (``rows_forward_pays``); a sweep (``truncation`` given) runs as a pair only where the forward passes of its
    shape last measured the pair faster.
    """
    if work.items < 2 or cut_of(n, itemsize) == 0:
        return False
    if truncation is not None and not (SWEEP and truncation[0] == truncation[1] >= work.steps):
        return False
    if ROWS_FORCE is not None:
        return ROWS_FORCE
    return (threads >= 2 and rows_wanted(work, n, blocks)
            and not dispatch.spins_beside(work.flops_per_step * work.steps)
            and overlap._idle_core(True)        # this process's pools' spinning: the measured choice sees its cost
            and (truncation is None or _measured(_rows_shape(work, n, itemsize))))


def _rows_shape(work, n, itemsize):
    """A batch's key for the clock: its rows, then as a batch of one's (``_shape``)."""
    return ("rows", work.items) + _shape(work, n, itemsize)


def rows_forward_pays(work, threads, n, itemsize, blocks):
    """Whether this forward pass of a batch runs as a pair cut by units: ``rows_pay``'s rule, then, as for a batch
    of one (``forward_pays``), the choice by the clock between the pair and the kernels' ``blocks``; the sweep
    follows what the forward passes measured (``rows_pay`` with its truncation). A ``measured.Choice``, whose
    ``done()`` the caller calls when the pass has ended, either way."""
    allowed = rows_pay(work, threads, n, itemsize, blocks)
    if not allowed or ROWS_FORCE is not None:
        return measured.Choice(allowed)
    return CHOOSER.choose(_rows_shape(work, n, itemsize), work.steps)


def rows_wanted(work, n, blocks):
    """``rows_pay``'s rule of sizes alone, the machine's state aside; as at B = 1 (``pays``), the weights read over
    the steps at least MIN_STREAMED bytes, for the pair's fixed cost (the helper's wake-up, each half's panels)."""
    few = blocks == 1 or -(-work.items // blocks) == 1
    big = work.weight_bytes >= ROWS_MIN_BYTES if few else work.weight_bytes > ROWS_HUGE_BYTES
    return (big and blocks <= 2 and n >= MIN_UNITS and work.items <= ROWS_MAX
            and work.steps * work.weight_bytes >= MIN_STREAMED)


class _Half:
    """The helper's half: runs ``fn(*args)`` (``chain.half``) unless the calling
    thread closed it first; ``result`` holds what it returned, else ``empty``."""

    def __init__(self, fn, args, empty):
        self.fn, self.args = fn, args
        self.state = np.zeros(1, dtype=np.int64)
        self.result = empty
        self.error = None
        self.done = threading.Event()

    def __call__(self):
        try:
            if _mark(self.state, STARTED):
                self.result = self.fn(*self.args)
        except BaseException as exc:        # raised again by the calling thread
            self.error = exc
        finally:
            self.done.set()

    def close(self):
        """Wait for the helper's half if it has begun; else make sure it never will."""
        if not _mark(self.state, CLOSED):
            self.done.wait()
        if self.error is not None:
            raise self.error


def _read_only(a):
    view = a.view()
    view.flags.writeable = False
    return view


def _writable(a, name):
    """``a``, or where it is read-only a copy of it in this thread's scratch ``name``: the gated cells' sweeps hand
    the helper's loops the states as the forward pass does, writable (one compiled variant for both, and the
    forward's branch in it writes them), and states a caller passed back (``vjp(states=...)``, fastrnn.jax's
    buffers) may be read-only. The sweep never writes them."""
    if a.flags.writeable:
        return a
    copy = workspace.scratch(name, a.shape, a.dtype)
    copy[...] = a
    return copy


SPLIT_PROJECTION = True   # the input projection's rows split with the helper (a switch for the benches) ...
SPLIT_PROJECTION_MIN = 1 << 24   # ... from this many multiply-adds (R·m·r)


def _dot_into(a, b, out):
    dispatch.product(a, b, out)
    return True


def input_projection(x2, W_in, out2):
    """out2 (R, r) = x2 (R, m) W_in^T (all C-contiguous), before a pair's forward pass: the rows cut in two, the
    first half on the helper, the second on this thread; the helper's half, if it has not begun by the time this
    thread's has ended, this thread takes too (``_Half``). Taken by NumPy's BLAS on one thread, the projection ran
    before the pair on one core (float32 LSTM n=512, T=100, B=8: 800 rows by 32 by 2048, about 1 ms of a 5.7 ms
    forward pass cut by units; the batch kernels take it in their parallel tiles). From SPLIT_PROJECTION_MIN
    multiply-adds: below, the helper's hand-off costs what the half saves. Whole calls at default threads, split /
    whole (``python bench/split_projection.py 40``, 2-core AMD EPYC Zen 5, three runs, the first two ad hoc):
    float32 LSTM n=512 B=4 forward passes 0.92-0.97, bptt 0.975-0.986; GRU B=4 0.98-0.99 and 0.95-1.00; B=1, T=1000
    (the pair) 0.975-0.99 and 0.99-1.00. Float32 LSTM n=512 B=1, T=100 (6.6e6 multiply-adds), split in the first
    run: forward 1.02, hence the bound; the same code both ways in the last: 0.99-1.04, that run's noise. A few
    per cent, within the machine's noise in a single run.
    ``bench/results/2026-11-29-direct-weight-gradients.md`` has the last run's table."""
    R = x2.shape[0]
    cut = R // 2
    if not SPLIT_PROJECTION or cut == 0 or R * x2.shape[1] * W_in.shape[0] < SPLIT_PROJECTION_MIN:
        dispatch.product(x2, W_in.T, out2)
        return
    job = _Half(_dot_into, (x2[:cut], W_in.T, out2[:cut]), False)
    overlap._helper().submit(job)
    try:
        dispatch.product(x2[cut:], W_in.T, out2[cut:])
    finally:
        job.close()
    if not job.result:              # the helper had not begun: closed, it never will
        dispatch.product(x2[:cut], W_in.T, out2[:cut])


def half_tiles(n, itemsize, gates=1):
    """Whether a batch of one's halves take their products in row tiles (``chain.FORWARD_TILES``, ``SWEEP_TILES``)
    rather than by the weights' rows (``_panels._gemv_rows``): with n >= ``_tiles.FORWARD_ROW_TILE_MIN_K`` units and
    more than ``ROW_TILE_MIN_BYTES`` of recurrent weights (``gates`` blocks of n x n: 1 the simple cell, 4 the LSTM,
    3 the GRU), where the one-thread kernels take row tiles too, and each half's weights within
    ``ROW_TILE_WEIGHT_BYTES`` (a core's L2 cache)."""
    return (HALF_TILES and n >= FORWARD_ROW_TILE_MIN_K and gates * n * n * itemsize > ROW_TILE_MIN_BYTES
            and gates * n * max(cut_of(n, itemsize), n - cut_of(n, itemsize)) * itemsize <= ROW_TILE_WEIGHT_BYTES)


def _tile_halves(n, dtype, gates=1):
    """The halves' panels, a buffer kept from call to call, and the scratch size of a half."""
    itemsize = np.dtype(dtype).itemsize
    cut = cut_of(n, itemsize)
    PB = workspace.scratch(f"pair row-tile panels {gates}", (2, chain.tile_halves(n, cut, itemsize, gates)), dtype)
    return PB, gates * max(cut, n - cut) + ROW_TILE_BYTES // itemsize


def forward(h, W_rec, b, act):
    """The states h[1:] (T + 1, n; holding the input projection on entry) of the simple cell at B = 1, on
    this thread and the helper. Returns (the sum of the states written, float64; the halves of the other
    thread's that each thread took, a pair of counts)."""
    T, n = h.shape[0] - 1, h.shape[1]
    W_rec, b = _read_only(W_rec), _read_only(b)     # one compiled variant, whether the caller's are writable
    if half_tiles(n, h.itemsize):
        PB, size = _tile_halves(n, h.dtype)
        arrays = (h, W_rec, b.reshape(1, n), _read_only(h), PB)
        return _run(chain.half, chain.FORWARD_TILES, arrays, T, 1, act, size=size)
    arrays = (h, W_rec, b.reshape(1, n), _read_only(h), np.empty((0, 0), h.dtype))
    return _run(chain.half, chain.FORWARD, arrays, T, 1, act)


def sweep(W_rec, h, g, act, D):
    """Exact BPTT's deltas D (T, n) of the simple cell at B = 1 from the states h (T + 1, n) and the injected
    errors g (T, n), on this thread and the helper (``chain.half``). Returns the halves of the other thread's
    that each thread took."""
    n = W_rec.shape[0]
    if half_tiles(n, D.itemsize):
        PB, size = _tile_halves(n, D.dtype)
        arrays = (D, _read_only(W_rec), _read_only(g), _read_only(h), PB)
        return _run(chain.half, chain.SWEEP_TILES, arrays, D.shape[0], 1, act, size=size)[1]
    WT = workspace.scratch("pair W_rec^T", W_rec.shape, W_rec.dtype)    # each half's rows copied at its first step
    arrays = (D, _read_only(W_rec), _read_only(g), _read_only(h), WT)
    return _run(chain.half, chain.SWEEP, arrays, D.shape[0], 1, act)[1]


def lstm_forward(G, W_hh, bias, h, c):
    """The LSTM at B = 1 on this thread and the helper (``chain.lstm_half``): G (T, 4n) holds x_t W_ih^T on
    entry, the gates after their nonlinearities on return; bias = b_ih + b_hh (4n,); h, c (T + 1, n) hold the
    initial state in [0], the states in [1:] on return. Returns the halves of the other's that each took."""
    n = h.shape[1]
    tiles = half_tiles(n, G.itemsize, 4)
    PB, size = _tile_halves(n, G.dtype, 4) if tiles else (np.empty((0, 0), G.dtype), None)
    arrays = (G, _read_only(W_hh), _read_only(bias).reshape(1, -1), h, c, G, np.empty(0, G.dtype), PB)
    return _run(chain.lstm_half, chain.FORWARD_TILES if tiles else chain.FORWARD, arrays, G.shape[0], 4,
                size=size)[1]


def lstm_sweep(W_hh, h, c, G, g, dc, D):
    """Exact BPTT's deltas D (T, 4n) of the LSTM at B = 1 from the states h, c (T + 1, n), the gates G (T, 4n)
    and the injected errors g (T, n), on this thread and the helper. dc (n,): the error injected into c_T on
    entry, the gradient with respect to c_0 on return. Returns the halves of the other's that each took."""
    n = h.shape[1]
    h, c = _writable(h, "pair given h"), _writable(c, "pair given c")
    if half_tiles(n, D.itemsize, 4):
        PB, size = _tile_halves(n, D.dtype, 4)
        arrays = (D, _read_only(W_hh), _read_only(g), h, c, G, dc, PB)
        return _run(chain.lstm_half, chain.SWEEP_TILES, arrays, D.shape[0], 4, size=size)[1]
    WT = workspace.scratch("pair LSTM W_hh^T", W_hh.shape[::-1], W_hh.dtype)    # each half copies its rows at step 0
    arrays = (D, _read_only(W_hh), _read_only(g), h, c, G, dc, WT)  # the forward's types: one compiled variant
    return _run(chain.lstm_half, chain.SWEEP, arrays, D.shape[0], 4)[1]


def gru_forward(G, W_hh, bias, proj, h):
    """The GRU at B = 1 on this thread and the helper (``chain.gru_half``): G (T, 4n) written with the gates
    [r, z, n, q]; bias (4n,) = [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]; proj (T, 3n) the input projection
    x_t W_ih^T; h (T + 1, n) holds the initial state in [0], the states in [1:] on return. Returns the halves of
    the other's that each took."""
    n = h.shape[1]
    empty = np.empty((0, 0), G.dtype)
    tiles = half_tiles(n, G.itemsize, 3)
    PB, size = _tile_halves(n, G.dtype, 3) if tiles else (empty, None)
    arrays = (G, _read_only(W_hh), _read_only(bias).reshape(1, -1), h, proj, np.empty(0, G.dtype), PB, empty)
    return _run(chain.gru_half, chain.FORWARD_TILES if tiles else chain.FORWARD, arrays, G.shape[0], 3,
                size=size)[1]


def gru_sweep(W_hh, h, G, g, dh, D, An):
    """Exact BPTT's deltas D (T, 3n) = [da_r; da_z; dq] and An (T, n) = da_n of the GRU at B = 1 from the states
    h (T + 1, n), the gates G (T, 4n) and the injected errors g (T, n), on this thread and the helper. dh (n,):
    zeros on entry, the error arriving at h_1 on return. Returns the halves of the other's that each took."""
    n = h.shape[1]
    h = _writable(h, "pair given h")
    if half_tiles(n, D.itemsize, 3):
        PB, size = _tile_halves(n, D.dtype, 3)
        arrays = (D, _read_only(W_hh), _read_only(g), h, G, dh, PB, An)
        return _run(chain.gru_half, chain.SWEEP_TILES, arrays, D.shape[0], 3, size=size)[1]
    WT = workspace.scratch("pair GRU W_hh^T", W_hh.shape[::-1], W_hh.dtype)    # each half copies its rows at step 0
    arrays = (D, _read_only(W_hh), _read_only(g), h, G, dh, WT, An)     # the forward's types: one compiled variant
    return _run(chain.gru_half, chain.SWEEP, arrays, D.shape[0], 3)[1]


def lstm_rows_forward(G, W_hh, bias, h, c):
    """The LSTM over a batch of rows on this thread and the helper, each half of the units for every row
    (``chain.lstm_rows_half``): G (T, B, 4n) holds x_t W_ih^T on entry, the gates after their nonlinearities on
    return; bias = b_ih + b_hh (4n,); h, c (T + 1, B, n) hold the initial state in [0], the states in [1:] on
    return. Returns the halves of the other's that each took."""
    B, n = h.shape[1], h.shape[2]
    PB = _rows_panels(B, n, G.dtype)
    arrays = (G, _read_only(W_hh), _read_only(bias).reshape(1, 1, -1), h, c, G, np.empty((0, 0), G.dtype), PB)
    return _run(chain.lstm_rows_half, chain.FORWARD, arrays, G.shape[0], 0,
                size=chain.rows_scratch(B, n, cut_of(n, G.itemsize), G.itemsize)[0])[1]


def lstm_rows_sweep(W_hh, h, c, G, g, dc, D):
    """Exact BPTT's deltas D (T, B, 4n) of the LSTM over a batch of rows from the states h, c (T + 1, B, n), the
    gates G (T, B, 4n) and the injected errors g (T, B, n), on this thread and the helper. dc (B, n): the error
    injected into c_T on entry, the gradient with respect to c_0 on return. Returns the halves of the other's
    that each took."""
    B, n = h.shape[1], h.shape[2]
    h, c = _writable(h, "pair given h"), _writable(c, "pair given c")
    PB = _rows_panels(B, n, D.dtype)
    arrays = (D, _read_only(W_hh), _read_only(g), h, c, G, dc, PB)
    return _run(chain.lstm_rows_half, chain.SWEEP, arrays, D.shape[0], 0,
                size=chain.rows_scratch(B, n, cut_of(n, D.itemsize), D.itemsize)[0])[1]


def gru_rows_forward(G, W_hh, bias, proj, h):
    """The GRU over a batch of rows on this thread and the helper, each half of the units for every row
    (``chain.gru_rows_half``): G (T, B, 4n) written with the gates [r, z, n, q]; bias (4n,) = [b_ir + b_hr, b_iz +
    b_hz, b_in, b_hn]; proj (T, B, 3n) the input projection; h (T + 1, B, n) holds the initial state in [0], the
    states in [1:] on return. Returns the halves of the other's that each took."""
    B, n = h.shape[1], h.shape[2]
    PB = _rows_panels(B, n, G.dtype, 3)
    arrays = (G, _read_only(W_hh), _read_only(bias).reshape(1, 1, -1), h, proj, np.empty((0, 0), G.dtype), PB,
              np.empty((0, 0, 0), G.dtype))
    return _run(chain.gru_rows_half, chain.FORWARD, arrays, G.shape[0], 0,
                size=chain.rows_scratch(B, n, cut_of(n, G.itemsize), G.itemsize, 3)[0])[1]


def gru_rows_sweep(W_hh, h, G, g, dh, D, An):
    """Exact BPTT's deltas D (T, B, 3n) = [da_r; da_z; dq] and An (T, B, n) = da_n of the GRU over a batch of rows
    from the states h (T + 1, B, n), the gates G (T, B, 4n) and the injected errors g (T, B, n), on this thread and
    the helper. dh (B, n): zeros on entry, the error arriving at h_1 on return. Returns the halves of the other's
    that each took."""
    B, n = h.shape[1], h.shape[2]
    h = _writable(h, "pair given h")
    PB = _rows_panels(B, n, D.dtype, 3)
    arrays = (D, _read_only(W_hh), _read_only(g), h, G, dh, PB, An)
    return _run(chain.gru_rows_half, chain.SWEEP, arrays, D.shape[0], 0,
                size=chain.rows_scratch(B, n, cut_of(n, D.itemsize), D.itemsize, 3)[0])[1]


def _rows_panels(B, n, dtype, gates=4):
    """The two halves' panels (``chain.lstm_rows_half``, ``gru_rows_half``), a buffer kept from call to call
    (fresh pages of some MB a call fault in every call)."""
    per = chain.rows_scratch(B, n, cut_of(n, np.dtype(dtype).itemsize), np.dtype(dtype).itemsize, gates)[1]
    return workspace.scratch(f"pair rows panels {gates}", (2, per), dtype)


def _run(loop, kind, arrays, T, width, act=0, size=None):
    """``loop`` (``chain.half``, ``chain.lstm_half``, ``chain.gru_half``, ``chain.lstm_rows_half``) on this thread
    and the helper, each with scratch of ``width`` numbers a unit of its half (or ``size`` numbers): (the sum of
    the states written, the halves of the other thread's that each took)."""
    n = arrays[3].shape[-1]
    cut = cut_of(n, arrays[0].itemsize)
    flags = workspace.empty(2 * T, np.int64)      # lines of its own: the threads poll them
    flags[:] = chain.FREE

    def scratch():          # each thread's own cache lines (``workspace.empty``): both write theirs every step
        return workspace.empty(size if size is not None else width * max(cut, n - cut), arrays[0].dtype)
    half = _Half(loop, (kind, arrays, act, T, cut, 1, flags, GRACE, scratch()), (0.0, 0))
    overlap._helper().submit(half)
    try:
        total, taken = loop(kind, arrays, act, T, cut, 0, flags, GRACE, scratch())
    finally:
        half.close()
    return total + half.result[0], (taken, half.result[1])
