"""The cell-driver interface: what every recurrent cell implements, written down once.

A cell is four modules side by side: its model class (``fastrnn.models``), its driver (a module
in this package), its kernels (``fastrnn.kernels``) and its NumPy reference
(``fastrnn.reference``). The public calls (``fastrnn.api``) check their inputs, look the driver up
by the net's class (``fastrnn.cells.driver_for``), call one of the operations below and wrap the
result; they never ask which cell they hold.

Every operation receives arrays that are already checked: the right dtype, shape and layout,
finite, C-contiguous. ``threads`` is the number of Numba threads the call may use (1: the serial
kernels; see ``fastrnn.runtime.dispatch``).

The loss never reaches a driver. The readout turns it into ``g`` (T, B, n), the error injected
into the hidden state at each step (SPEC §2); an upstream gradient from another framework is
another such error (SPEC §6b). Drivers see only ``g``.
"""
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..kernels import _weight_grads
from ..kernels._panels import LOOP_GEMV_BYTES, cut_elements
from ..kernels.bptt import DIRECT, JOINED, SPLIT, TILED, TURNED
from ..kernels._tiles import FORWARD_ROW_TILE_MIN_K
from ..readout import column_sums
from ..runtime import blas, memory, workspace
from ..runtime import dispatch
from ..runtime.dispatch import SPLIT_BYTES, Work, borrowed_gemm, call, product, row_tiled


@dataclass
class Run:
    """What a forward pass leaves behind.

    states: one (T + 1, B, n) array per name in the model's ``state_names`` (``h`` first;
    ``states[k][0]`` is the initial state); saved: whatever the backward sweep or RTRL needs
    besides the states (the LSTM's gate values, ...), by name; checked: True where the forward kernel
    found every state it wrote finite, so that no second pass over them is needed (False: not known).
    """
    states: tuple
    saved: dict = field(default_factory=dict)
    checked: bool = False

    @property
    def h(self):
        return self.states[0]


class CellDriver(ABC):
    """The operations a cell implements. One instance per cell, registered by model class.

    Attributes
    ----------
    model : type
        The network class this driver computes for (``RNN``, ``LSTM``, ...). Its ``state_names``
        and ``recurrent_names`` name the states and the parameters of the cell.
    reference : module
        The cell's NumPy reference (``fastrnn.reference.<cell>``): ``forward``, ``bptt``, ``rtrl``.
    teacher_forcing : bool
        Whether the cell supports teacher forcing (SPEC §2); the others raise a clear error.
    """

    model = None
    reference = None
    teacher_forcing = False
    rtrl_methods = ("exact",)      # what rtrl(method=...) accepts for this cell
    online_methods = ("exact",)    # what OnlineRTRL(method=...) accepts for this cell
    state_copies = 4      # (T + 1, B, n)-sized arrays a gradient call keeps (see ``bptt_memory``)

    @abstractmethod
    def forward(self, net, W, x, state0, forcing, threads, scratch=False):
        """Run the cell over x (T, B, m) from ``state0`` (a tuple of (B, n) arrays).

        Returns a :class:`Run`. With ``scratch=True`` the arrays come from the per-thread
        workspace (for gradient calls, which hand none of them to the caller); otherwise they are
        fresh. ``forcing`` is a ``checks.Forcing``.
        """

    @abstractmethod
    def backward(self, net, W, x, run, g, truncation, forcing, threads, dstate_T=None, want_dx=False):
        """The backward sweep, exact or BPTT(h; h') (SPEC §4), given the injected errors g (T, B, n)
        (a scratch array the driver may overwrite).

        ``truncation`` is the checked pair (h, h'). ``dstate_T``, if given, holds one (B, n) array
        (or None) per state: the error injected into the final states beyond g (SPEC §6b).
        Returns ``(grads, dstate0, dx)``: a dict of the cell's parameter gradients by name, one
        (B, n) gradient per initial state, and dL/dx (T, B, m) if ``want_dx`` else None.
        """

    @abstractmethod
    def resume(self, net, W, x, states):
        """The :class:`Run` of a forward pass from its states alone (one (T + 1, B, n) array per
        state, as ``forward`` returned them), without running the recurrence again: what
        ``vjp(..., states=...)`` needs."""

    @abstractmethod
    def sensitivity_size(self, net, B):
        """(numbers per sensitivity buffer, how many buffers, a description of their shape) for
        RTRL over B sequences: what the memory budget is checked against before allocating."""

    @abstractmethod
    def rtrl(self, net, W, x, run, g, forcing, threads, method="exact", block=None):
        """Exact RTRL (SPEC §5) over the forward pass ``run``: a dict of the cell's parameter
        gradients. Checks the memory budget before allocating the sensitivities. ``method`` is one
        of ``rtrl_methods`` (``"fss"``: fixed-size storage in blocks of ``block`` steps)."""

    @abstractmethod
    def online(self, net, batch, threads, method="exact", **options):
        """An :class:`OnlineCell` for ``batch`` streams (memory budget checked first); ``threads``
        (what ``runtime.dispatch.get_threads`` allows) decides the sensitivity layout: one tile
        for the serial kernel, cache-sized tiles for the parallel one. ``method`` is one of
        ``online_methods``; ``options`` are the method's own (block, seed, feedback, tau)."""


class OnlineCell(ABC):
    """The per-stream state of online RTRL: the states carried into the next step and the
    sensitivities. One step is two phases, so that a caller's own loss fits between them:
    ``advance`` runs the cell one step; ``propagate`` updates the sensitivities with the error
    injected into that step's state and returns the step's gradient.

    ``defers``: propagate returns None except at the end of a block (fixed-size storage).
    ``needs_readout_error``: the caller sets ``readout_error`` (∂L_t/∂r_t) before propagate (RFLO).
    """

    defers = False
    needs_readout_error = False

    def flush(self):
        """The gradient of steps whose gradient was deferred (None: nothing pending)."""
        return None

    @property
    @abstractmethod
    def state(self):
        """The states carried into the next step, a tuple of (B, n) arrays (the arrays themselves)."""

    @abstractmethod
    def reset(self, state0):
        """New streams: the states from ``state0`` (a tuple of (B, n) arrays), sensitivities zero."""

    @abstractmethod
    def advance(self, W, x, forcing, threads):
        """Run one step on x (1, B, m) from the carried state; return the :class:`Run` (T = 1)."""

    @abstractmethod
    def propagate(self, W, x, run, g, forcing, threads):
        """Carry the sensitivities over the step ``advance`` ran, with g (1, B, n) the error injected
        into its state; move the carried state on; return the step's gradient as a dict (fresh
        arrays)."""


# -- helpers the drivers share -------------------------------------------------------------------
TILE_BYTES = 1024 * 1024   # one sensitivity tile: large enough for an efficient GEMM, small enough for cache
MIN_TILES = 4              # enough tiles to share among threads


def tiles(rows, bytes_per_row, parallel):
    """Boundaries (ntiles + 1,) of the tiles of ``rows`` parameter rows that the RTRL kernels
    cut their sensitivity columns into. The sensitivities' layout depends on them, so they are
    fixed when the sensitivities are allocated.

    Tiles are cache-sized for both twins (the BLAS runs on one thread during calls, so one large
    product per step gains nothing and spills the cache: measured 0-20 % slower); the parallel
    twin gets at least MIN_TILES of them to share out."""
    per_tile = max(1, min(rows, TILE_BYTES // bytes_per_row))
    count = min(rows, max(-(-rows // per_tile), MIN_TILES if parallel else 1))
    return np.linspace(0, rows, count + 1).round().astype(np.int64)


def sensitivity_memory(driver, net, B):
    """Check the memory of the driver's exact RTRL sensitivities against the budget; the bytes."""
    size, count, shape = driver.sensitivity_size(net, B)
    dtype = np.dtype(net.dtype)
    nbytes = count * B * size * dtype.itemsize
    memory.check(
        nbytes,
        f"{type(net).__name__} RTRL with n={net.n_hidden}, m={net.n_in}, B={B} in {dtype.name} "
        f"({count} buffers of {shape} numbers of {dtype.itemsize} bytes)",
        "a smaller batch (the memory grows with B), "
        + ("float32 (half the size), " if dtype == np.float64 else "")
        + "fewer units, or fastrnn.bptt, whose memory grows with T·B·n instead of B·n²·J")
    return nbytes


def sensitivity_buffers(driver, net, B, reuse=False):
    """Check the memory budget, then allocate the driver's sensitivity buffers, all zero:
    a list of ``count`` arrays of shape (B, size). ``reuse`` keeps small ones in the per-thread
    workspace between calls."""
    nbytes = sensitivity_memory(driver, net, B)
    size, count, _ = driver.sensitivity_size(net, B)
    dtype = np.dtype(net.dtype)
    if reuse and nbytes <= workspace.KEEP_BYTES:
        buffers = [workspace.scratch(f"{net.cell} sensitivities {k}", (B, size), dtype) for k in range(count)]
        for buf in buffers:
            buf[...] = 0
        return buffers
    return [np.zeros((B, size), dtype=dtype) for _ in range(count)]


def bptt_memory(driver, net, T, B):
    """Check the memory a gradient call over T steps will allocate against the budget: the
    states, the injected errors and the summed deltas, (T + 1) B n numbers each, times the
    driver's ``state_copies`` (the LSTM also keeps its 4n gate values twice)."""
    dtype = np.dtype(net.dtype)
    numbers = driver.state_copies * (T + 1) * B * net.n_hidden
    memory.check(
        numbers * dtype.itemsize,
        lambda: f"{type(net).__name__} over T={T} steps with n={net.n_hidden}, B={B} in {dtype.name} "
                f"({driver.state_copies} arrays of (T + 1)·B·n = {T + 1}·{B}·{net.n_hidden} numbers)",
        "shorter sequences (split them: truncation=k with state carried between calls), a smaller batch, "
        + ("float32, " if dtype == np.float64 else "") + "or fastrnn.rtrl / OnlineRTRL, whose memory does not grow with T")


def panel_buffer(WT, work, threads, name="weight panels"):
    """This thread's buffer for the panels a batch kernel cuts from WT (K, N) (``kernels._panels``)
    for ``work`` (its ``Work``: B = work.items), large enough for a batch of B rows split into any
    number of blocks up to ``threads``; empty where the kernel multiplies by the weights as they are
    stored (one row: WT = W^T with W C-contiguous, the forward passes, unless they take row tiles,
    ``runtime.dispatch.row_tiled`` with at least ``FORWARD_ROW_TILE_MIN_K`` rows of WT, as
    ``_panels.stored_rows`` has them; or WT = W itself, C-contiguous,
    not square and over ``LOOP_GEMV_BYTES``, the backward sweeps' axpy form, unless the call may split
    each product over threads, which needs a copy: at least two threads and ``SPLIT_BYTES`` of weights
    for each, or takes them in row tiles, ``runtime.dispatch.row_tiled``; ``_panels.cut_panels`` keeps the
    same rules). The forward pass and the sweep of a call share it."""
    K, N = WT.shape
    B = work.items
    if B == 1 and WT.T.flags.c_contiguous and not (K >= FORWARD_ROW_TILE_MIN_K and row_tiled(work)):
        return workspace.at_least(name, 0, WT.dtype)
    if (B == 1 and WT.flags.c_contiguous and K != N and WT.nbytes > LOOP_GEMV_BYTES and not row_tiled(work)
            and (threads < 2 or WT.nbytes < 2 * SPLIT_BYTES)):
        return workspace.at_least(name, 0, WT.dtype)
    return workspace.at_least(name, int(cut_elements(B, threads, K, N, WT.itemsize)), WT.dtype)


GRAD_ROW_PAD = 64      # bytes added to each row of a weight-gradient product turned round (cache sets)
SPLIT_MAX_ROWS = 64    # float32 weight-gradient products of at most this many rows r <= n taken in two


DIRECT_LAYOUT = True   # a switch for the benches: False keeps TILED at every size
DIRECT_MAX_ROWS = 128  # weight gradients taken DIRECT over at most this many rows T·B (a panel of them in L1) ...
DIRECT_MIN_BYTES = 384 << 10   # ... and of at least this many bytes (gates·n by m + n numbers)


def weight_grad_layout(dtype, r, m, n, rows=None):
    """The shape of the weight-gradient product's buffer G and how the product is taken
    (``kernels.bptt._weight_grads``: ``JOINED``, ``TURNED``, ``SPLIT``, ``TILED`` or ``DIRECT``), for
    ``rows`` = T·B rows of D (None: any number).

    - Where ``TILED`` would be taken, over at most DIRECT_MAX_ROWS rows, for gradients of DIRECT_MIN_BYTES or
      more: ``DIRECT``, D^T x and D^T h in the same tiles, written into the gradients as they lie (G unused:
      shape (0, 0)). Over few rows D is small and the product large, and ``TILED``'s copies (D into panels,
      the product out transposed) are a large part of its work; ``DIRECT`` copies only x and h into panels,
      but pads each to whole panels (64 float32 or 32 float64 columns on AVX-512), which weighs where m or n
      is small. Both forced, T=100, B=1, m=32, direct / tiled: the kernel on one thread and on two, then whole
      ``fastrnn.bptt`` calls at default threads (``python bench/direct_grads.py 40``, 2-core AMD EPYC Zen 5,
      ``OPENBLAS_CORETYPE=Haswell``, two runs, ``bench/results/2026-11-29-direct-weight-gradients.md``):
      float32 LSTM n=512 0.82-0.91, 0.93-0.96; n=384 0.68-0.81, 0.92-0.98; n=256 0.80-0.99, 0.92-0.99; GRU
      n=256-512 0.67-0.89, 0.91-0.98; simple cell n=512 0.67-0.90, 0.91-0.98; float64 LSTM n=512 0.84-0.93,
      0.97-1.00; GRU n=128 0.84-0.85, 0.97-0.98; LSTM n=128 (640 KB) 0.97-1.00, 1.01. Below the bound: float32
      LSTM n=128 (320 KB) 1.03-1.04, simple cell n=128 1.13-1.14, LSTM n=32 1.44-1.52 (whole calls 1.08-1.09);
      float64 simple cell n=32 1.04-1.12; float32 simple cell n=256 (288 KB) 0.97-0.99, whole calls level. Over
      more rows each panel outgrows the L1 cache: float32 LSTM n=512 at T=128 0.82-0.96, at T=160 0.94-1.00 (one run).
    - Wherever the step products' tiles take wider vectors than the BLAS's core (``blas.tiles_wider``): ``TILED``,
      [x | h]^T D in those tiles. On an AVX-512 CPU whose OpenBLAS runs its AVX2 kernels (Zen 5 with
      ``OPENBLAS_CORETYPE=Haswell``) the tiles ran at 208-268 GFLOP/s in float32, the BLAS's GEMM at 134
      (``bench/results/2026-11-28-tile-width.md``).

    - Float64, where D has more columns than [x | h] (r > m + n: the gated cells): ``TURNED``, the
      product computed as [x | h]^T D into (m + n, r + pad) and copied out transposed: SciPy's float64
      OpenBLAS runs it faster with r as the long side of its output (one thread, whole kernel calls,
      ``python bench/weight_grads.py``, two runs: LSTM 1.01-1.19×, GRU 1.00-1.12×; the simple cell,
      r = n, ran 0.91-0.99× so).
    - Float32 with no more columns of D than units, up to SPLIT_MAX_ROWS of them (r <= n, r <= 64:
      the simple cell up to n = 64): ``SPLIT``, D^T x and D^T h as two products into (r, m + n),
      without copying x and h side by side first. The copy costs T·B·(m + n) numbers against the
      product's r times as many multiply-adds, so it weighs most at small r. Whole kernel calls, one
      thread, T=100, m=32, split / joined (three ad hoc runs of best times in one process, and medians
      from ``python bench/weight_grads.py``, ``bench/results/2026-11-27-weight-gradient-split.md``):
      n=32 B=8 0.85-0.92, B=32 0.81-0.95; n=64 B=8 0.74-0.95, B=32 0.92-0.94; B=1 0.94-1.00. From
      n=128 the runs disagree (n=128 B=32 0.90 to 1.13) and the joined product stays. In float64
      (SciPy's OpenBLAS) the split ran 0.83-1.18 at n=32 and 64 from run to run, and every float64
      product stays joined.
    - Everything else: ``JOINED``, D^T [x | h] into (r, m + n) (the gated cells in float32: two
      products would leave a thin one below the BLAS's rate)."""
    dtype = np.dtype(dtype)
    if blas.tiles_wider():
        if (DIRECT_LAYOUT and rows is not None and rows <= DIRECT_MAX_ROWS
                and r * (m + n) * dtype.itemsize >= DIRECT_MIN_BYTES):
            return (0, 0), DIRECT
        return (m + n, r + GRAD_ROW_PAD // dtype.itemsize), TILED
    if dtype == np.float64 and r > m + n:
        return (m + n, r + GRAD_ROW_PAD // dtype.itemsize), TURNED
    if dtype == np.float32 and r <= min(n, SPLIT_MAX_ROWS):
        return (r, m + n), SPLIT
    return (r, m + n), JOINED


KEEP_PARTIALS_BYTES = 64 << 20     # partial weight gradients kept for the next call up to this size


def weight_grad_split(rows, r):
    """Whether the weight-gradient product's parallel blocks (``kernels.bptt._weight_grads``) each
    take columns of D (the gradients' rows) over all T·B ``rows`` (True), or rows of D and [x | h],
    summing partial products: columns where there are no more rows than columns (r: gates · n).
    Split by rows, a short T·B gives each block a product with a short inner dimension and leaves
    an addition of whole partial gradients; split by columns, many rows against few columns give
    thin products. Whole kernel calls, two threads, T=100, m=32, one run (``bench/results/
    2026-11-26-weight-gradient-columns.md``): columns/rows 0.58-0.86 at B=1 from n=128, every cell and
    dtype; at B=8 and 32 (rows > r but for LSTM and GRU n=512 B=8) 0.74-1.73, 27 of 36 above 1."""
    return rows <= r


_NO_INPUT_SIDE = {}


def no_input_side(dtype):
    """The ``a_in`` of a cell whose input side's deltas are D's own (an empty (0, 0, 0) array, one per dtype)."""
    key = np.dtype(dtype)
    if key not in _NO_INPUT_SIDE:
        _NO_INPUT_SIDE[key] = np.empty((0, 0, 0), dtype=key)
    return _NO_INPUT_SIDE[key]


def input_side_rows(x, a_in, dW_in):
    """dW_in's last a rows = a_in^T x over all rows (a_in (T, B, a)): the input side's own deltas where a layout
    other than ``TILED`` took D's (``kernels.bptt._weight_grads``)."""
    a = a_in.shape[2]
    rows = x.shape[0] * x.shape[1]
    product(a_in.reshape(rows, a).T, x.reshape(rows, x.shape[2]), dW_in[dW_in.shape[0] - a:])


def weight_grads(threads, x, h_prev, D, dW_in, dW_rec, db, a_in=None):
    """The weight gradients every cell's BPTT ends with (``kernels.bptt._weight_grads``): dW_in,
    dW_rec and db from the summed deltas D (T, B, r) over all T·B rows; its large scratch arrays
    ([x | h], the product, the partial products of a split by rows up to KEEP_PARTIALS_BYTES) are
    this thread's workspace. Beside another framework's spinning pool (``runtime.dispatch.beside``),
    products large enough to pay on parallel threads go through that pool instead (``matmul``).
    ``a_in`` (T, B, a): dW_in's last a rows from those deltas instead of D's last a columns (the GRU's n block:
    in the kernel's ``TILED`` products, else by one more product, ``input_side_rows``)."""
    T, B, m = x.shape
    r = D.shape[2]
    n = h_prev.shape[2]
    work = Work(T * B, 2 * T * B * r * (m + n), 1)
    if _borrow(work, threads):          # one product D^T [x | h | 1]: the bias too (NumPy's float64 sum
        rows = D.reshape(T * B, r)      # over T·B rows took longer than the product: 1.0 ms at 3200 x 512)
        XH1 = workspace.scratch("weight-gradient rows [x | h | 1]", (T * B, m + n + 1), D.dtype)
        XH1[:, :m] = x.reshape(T * B, m)
        XH1[:, m:m + n] = h_prev.reshape(T * B, n)
        XH1[:, m + n] = 1
        G = workspace.scratch("weight-gradient product, borrowed pool", (r, m + n + 1), D.dtype)
        matmul(rows.T, XH1, out=G)
        dW_in[...] = G[:, :m]
        dW_rec[...] = G[:, m:m + n]
        db[...] = G[:, m + n]
        if a_in is not None:
            input_side_rows(x, a_in, dW_in)
        return
    shape, layout = weight_grad_layout(D.dtype, r, m, n, T * B)
    XH = workspace.scratch("weight-gradient rows [x | h]", (0 if layout in (SPLIT, DIRECT) else T * B, m + n), D.dtype)
    G = workspace.scratch("weight-gradient product", shape, D.dtype)
    sgemm = blas.sgemm_address() if D.dtype == np.float32 else 0
    by_columns = weight_grad_split(T * B, r)
    partials = 0 if by_columns else (threads - 1) * G.size
    if partials * G.itemsize > KEEP_PARTIALS_BYTES:
        partials = 0                        # the kernel makes them for this call alone
    rest = workspace.at_least("weight-gradient partial sums", partials, D.dtype)
    call(_weight_grads, threads, work, x, h_prev, D, dW_in, dW_rec, db, XH, G, rest, by_columns, sgemm, layout,
         no_input_side(D.dtype) if a_in is None else a_in)
    if a_in is not None and layout != TILED:
        input_side_rows(x, a_in, dW_in)


class RowProducts:
    """The products over the rows of a backward sweep's summed deltas D (T, B, r), over steps s0:s1
    (``runtime.overlap.run`` calls it, for all steps or a segment at a time): the weight gradients
    (``weight_grads``) into the arrays ``grads[name]`` for the three ``names`` (input, recurrent, bias);
    each of ``sums``, (out, a, b) with a (T, B, ra) and b (T, B, rb), out (ra, rb) = the sum of a_t^T b_t
    (b None: out (ra,) = the sum of a_t); and where ``dx`` (T, B, m) is given, dL/dx = D_in W_in,
    where D_in is D or, for a cell whose input side differs, ``d_in(s0, s1)``, its rows (s1 - s0)·B.
    ``add``: add to the sums instead of writing them (dx has no sum over steps: its rows are written
    either way). ``flops``: its multiply-adds over all steps. All steps on ``threads`` go through
    ``weight_grads`` and ``matmul``; a segment (on one thread, beside the sweep) calls the serial
    kernel with buffers set up once a call, which costs a few microseconds a segment instead of
    some thirty; ``aside`` takes a segment on a second thread into sums of its own, ``merge`` adds them in."""

    def __init__(self, x, h_prev, D, grads, names, W_in=None, dx=None, sums=(), d_in=None, a_in=None):
        self.x, self.h_prev, self.D, self.W_in, self.dx, self.d_in = x, h_prev, D, W_in, dx, d_in
        self.a_in = a_in
        self.outs = [grads[name] for name in names]
        self.sums = list(sums)
        T, B, m = x.shape
        r, n = D.shape[2], h_prev.shape[2]
        self.flops = (T * B * r * (m + n) + (T * B * r * m if dx is not None else 0)
                      + sum(a.size * (1 if b is None else b.shape[2]) for _, a, b in self.sums))
        self._segments = None
        self._lock = threading.Lock()
        self._aside_taken = 0         # numbers of the per-thread buffer ``aside`` has cut this call

    def __call__(self, s0, s1, threads, add):
        whole = s0 == 0 and s1 == self.x.shape[0] and not add
        if whole:
            weight_grads(threads, self.x, self.h_prev, self.D, *self.outs, a_in=self.a_in)
            rows = self.x.shape[0] * self.x.shape[1]
            for out, a, b in self.sums:
                a2 = a.reshape(rows, a.shape[2])
                if b is None:
                    out[...] = column_sums(a2)
                else:
                    matmul(a2.T, b.reshape(rows, b.shape[2]), out=out, threads=threads)
        else:
            _, G, _, _, _, parts = self._buffers()
            self._segment(s0, s1, parts if add else self._totals(), G)
            if add:
                self.merge(parts, True)
        self._dx(s0, s1, whole, threads)

    def aside(self, s0, s1):
        """The products of steps s0:s1 on the calling thread into sums of its own (``merge`` adds them to
        the results; dx's rows are written): a second thread's segments beside those of ``__call__``'s, in
        buffers kept per thread (``workspace``) and cut anew for each segment of a call."""
        _, G, _, _, _, parts = self._buffers()
        count = sum(out.size for out in parts)
        taken = self._aside_taken
        flat = workspace.at_least("row products aside", taken + count, self.D.dtype)[taken:]
        self._aside_taken = taken + count
        own = []
        for out in parts:
            own.append(flat[:out.size].reshape(out.shape))
            flat = flat[out.size:]
        self._segment(s0, s1, own, workspace.scratch("row products aside G", G.shape, G.dtype))
        self._dx(s0, s1, False, 1)
        return own

    def merge(self, sums, add):
        """The sums of a segment (``aside``, or this thread's own) added to the results, or written (not ``add``)."""
        for total, part in zip(self._totals(), sums):
            if add:
                total += part
            else:
                total[...] = part

    def _totals(self):
        return self.outs + [out for out, _, _ in self.sums]

    def _buffers(self):
        with self._lock:              # the helper's first segment and the calling thread's ``aside`` may meet here
            if self._segments is None:
                self._segments = self._new_buffers()
        return self._segments

    def _new_buffers(self):
        """[x | h] (T·B rows), the product G, the empty partial sums, sgemm, the layout and one set of sums."""
        T, B, m = self.x.shape
        r, n = self.D.shape[2], self.h_prev.shape[2]
        shape, layout = weight_grad_layout(self.D.dtype, r, m, n, T * B)
        sgemm = blas.sgemm_address() if self.D.dtype == np.float32 else 0
        XH = np.empty((0 if layout in (SPLIT, DIRECT) else T * B, m + n), self.D.dtype)
        return (XH, np.empty(shape, self.D.dtype), np.empty(0, self.D.dtype), sgemm, layout,
                [np.empty_like(out) for out in self._totals()])

    def _segment(self, s0, s1, outs, G):
        """The sums of steps s0:s1 written into ``outs`` (shaped as the results), with ``G`` the product's
        scratch; [x | h]'s rows s0:s1 are copied into this call's XH (each segment its own rows)."""
        XH, _, rest, sgemm, layout, _ = self._buffers()
        B = self.x.shape[1]
        rows = (s1 - s0) * B
        a_in = no_input_side(self.D.dtype) if self.a_in is None else self.a_in[s0:s1]
        args = _weight_grads.read_only((self.x[s0:s1], self.h_prev[s0:s1], self.D[s0:s1], *outs[:3],
                                        XH[s0 * B:s1 * B], G, rest, False, sgemm, layout, a_in))
        _weight_grads.serial(*args, 1)
        if self.a_in is not None and layout != TILED:
            input_side_rows(self.x[s0:s1], a_in, outs[0])
        for out, (_, a, b) in zip(outs[3:], self.sums):
            a2 = a[s0:s1].reshape(rows, a.shape[2])
            if b is None:
                out[...] = column_sums(a2)
            else:
                product(a2.T, b[s0:s1].reshape(rows, b.shape[2]), out)

    def _dx(self, s0, s1, whole, threads):
        if self.dx is not None:
            B, m = self.x.shape[1:]
            rows = (s1 - s0) * B
            d_in = self.D[s0:s1].reshape(rows, -1) if self.d_in is None else self.d_in(s0, s1)
            rows_out = self.dx[s0:s1].reshape(rows, m)
            if whole:
                matmul(d_in, self.W_in, out=rows_out, threads=threads)
            else:                       # a segment, on the thread that took it
                product(d_in, self.W_in, rows_out)


def _borrow(work, threads=1):
    """Whether a product of ``work`` goes through the borrowed pool (``runtime.dispatch.borrowed_gemm``):
    there is one, the product is large enough to pay on parallel threads (the weight-gradient sums'
    rule, ``PAYS["rows"]``, without the long-call rule for spinning pools: that pool's threads are
    awake), and fastrnn's own kernel on ``threads`` would run it serially (beside a spinning pool:
    below ``BESIDE_MIN_WORK``). Where fastrnn's own parallel kernel takes it, it stays there: float32
    LSTM n=512 B=8 (1.8e9 multiply-adds), lent against own 0.91-0.99 in four runs."""
    if borrowed_gemm() is None or work.items < 2:
        return False
    if not (dispatch.FORCE_PARALLEL or work.flops_per_step * work.steps >= dispatch.PAYS["rows"][1]):
        return False
    return threads < 2 or dispatch.FORCE_PARALLEL or dispatch.plan(_weight_grads, threads, work) == 1


def matmul(a, b, out=None, threads=1):
    """a @ b (2-d arrays, one dtype) into ``out`` (fresh if None), through another framework's
    spinning pool where ``beside`` lent one and the product pays on two threads, else as ``product``
    takes it (the compiled tiles or NumPy's BLAS, on ``threads``)."""
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    gemm = borrowed_gemm()
    if gemm is not None and _borrow(Work(a.shape[0], 2 * a.shape[0] * a.shape[1] * b.shape[1], 1)):
        gemm(a, b, out)
    else:
        product(a, b, out, threads)
    return out


def state_arrays(names, T, B, n, dtype, scratch):
    """One (T + 1, B, n) array per name: workspace scratch, or fresh; aligned either way (``workspace.empty``)."""
    if scratch:
        return tuple(workspace.scratch(f"state {name}", (T + 1, B, n), dtype) for name in names)
    return tuple(workspace.empty((T + 1, B, n), dtype) for _ in names)


def split_columns(dW, m, names):
    """W = [W_input | b | W_recurrent] (r, m + 1 + n) -> {input: dW[:, :m], bias: dW[:, m],
    recurrent: dW[:, m + 1:]} as fresh contiguous arrays (always copies: ``dW`` may be a buffer
    the caller reuses, and a slice can already be contiguous); ``names`` = (input, recurrent, bias)."""
    input_name, recurrent_name, bias_name = names
    return {input_name: np.array(dW[:, :m], order="C", copy=True),
            recurrent_name: np.array(dW[:, m + 1:], order="C", copy=True),
            bias_name: np.array(dW[:, m], order="C", copy=True)}
