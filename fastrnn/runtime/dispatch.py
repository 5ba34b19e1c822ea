"""How many threads a kernel call gets: the serial twin or the parallel one, chosen from the work.

Every kernel exists as a serial and a parallel twin compiled from one source (``kernels._jit``).
A parallel region costs a launch and splits each step's product into smaller, less efficient
ones, so it pays only when every thread gets enough work in every step and the whole call is
long enough to repay the launch. ``plan`` decides from the work a driver describes
(:class:`Work`: independent pieces, multiply-adds per step, steps) against the thresholds in
``PAYS``, measured per kernel family on the project's machine (``bench/test_threads.py`` checks
them: no call slower than 10 % below the serial kernel). Small calls therefore never wake the
pool, which is also what keeps them fast when other processes load every core.

- The thread budget: ``fastrnn.threads(n)`` (per calling thread, restored on exit),
  ``fastrnn.set_threads(n)`` or ``FASTRNN_NUM_THREADS`` (process-wide limits). During a call
  every BLAS library is held to one thread (``runtime.blas``): all parallelism is Numba's, so
  the two pools never oversubscribe the cores.
- One fastrnn call at a time uses Numba's pool; a call made while another holds it runs the
  serial kernels (identical results). The ``workqueue`` layer aborts on concurrent parallel
  calls; the lock also keeps two calls from oversubscribing the cores under any layer.
- The threading layer is chosen when fastrnn is imported (``runtime.layer``).
- In a process that has imported torch, whose OpenMP threads spin for milliseconds after each of its
  operations, a call long enough to pay on parallel threads first puts them to sleep (``_quiet_plain``),
  as fastrnn.torch's own operators do (``beside``).
"""
import contextlib
import importlib
import os
import sys
import threading
import warnings
from collections import namedtuple

import numba
import numpy as np

from ..errors import OptionError
from ..kernels._panels import cut_elements
from ..kernels._tiles import ROW_TILES, ROWS as TILE_ROWS, TILES, row_tiles_pay, tile_columns
from ..kernels.bptt import _tiles_matmul
from . import blas as _blas
from . import workspace
from . import layer  # noqa: F401  (chooses the threading layer before any parallel call)

_POOL = threading.Lock()
FORCE_PARALLEL = False   # tests: run the parallel twins whatever the size of the work

Work = namedtuple("Work", "items flops_per_step steps weight_bytes", defaults=(0,))
Work.__doc__ = """What a kernel call would split: ``items`` independent pieces (batch rows,
sensitivity tiles, rows of a gradient sum), ``flops_per_step`` multiply-adds in each step of the
whole call, over ``steps`` sequential steps; ``weight_bytes``: the bytes of weights each step's
products read (the ``"batch"`` family; 0: not to be split by ``parts``)."""

# kernel family (``Kernel.family``) -> (multiply-adds per step per thread, multiply-adds in all)
# below which the serial twin is at least as fast. Measured with bench/test_threads.py on 2 cores
# (tbb layer).
PAYS = {
    "batch": (200_000, 20_000_000),        # forward and BPTT sweeps: batch rows per thread
    "batch tiles": (64_000, 10_000_000),   # the same where the step products run in compiled tiles
    "rows": (0, 32_000_000),               # weight-gradient sums: one product per block of T·B rows
    "tiles": (40_000, 4_000_000),          # RTRL: sensitivity tiles, the whole time loop per tile
}
# "batch tiles": with the step products in compiled tiles of ``TILE_ROWS`` rows (``kernels._tiles``, chosen by
# ``runtime.blas.step_products``), a batch split into blocks of whole time loops paid from less work than the BLAS's
# products needed. Whole fastrnn.bptt calls, T=100, m=32, all three cells, both dtypes, two threads against the serial
# twin (bench/batch_split.py, AVX2 AMD EPYC, 2026-11-27, two runs): blocks of at least a tile's rows gained 0.99-1.48x
# from 1.3e5 multiply-adds a step (the "batch" rule kept them serial below 4e5; above, 1.15-1.60x); blocks of fewer
# rows than a tile lost (B=4 in two blocks: 0.76-1.07x, n=64-512; a tile of two rows costs a thread what the tile of
# four cost one), while blocks of one row (B=2), which take the batch-of-one products, gained 1.03-1.49x from n=64. So
# with tiles a batch of more rows than threads gets no more blocks than it has tiles (``plan``). With this rule every
# measured row ran within 0.93-1.20 of the faster of serial and split, never more than 2 % slower than serial; calls
# it newly splits ran 1.00-1.10x their unloaded one-thread time with a busy process on every core
# (bench/under_load.py). Results: bench/results/2026-11-27-batch-split.md.

_limit = None            # process-wide thread limit (set_threads / FASTRNN_NUM_THREADS)

# Beside another framework's thread pool whose threads spin (``beside``): the parallel twins only for calls of at least
# BESIDE_MIN_WORK multiply-adds, and a batch of one splits its products (``parts``) only from BESIDE_MIN_SPLIT_WORK.
# That pool's threads go on spinning for a while after each of its own operations (libgomp waits actively, 300 000
# iterations by default), and while they do, a parallel call shares the cores with them: a thread that waits for one
# at every step (the split) loses most. Measured with fastrnn.torch modules in a float32 training step, T=100, two
# cores, torch's default policy, serial against parallel twins interleaved in one process: LSTM n=128 B=32 (0.42e9
# multiply-adds a call) 22.2 ms serial against 19.6 parallel; GRU n=128 B=32 (0.31e9) 18.2 against 18.0; LSTM n=128 B=8
# (0.1e9) 5.5 against 5.6, RNN n=128 B=32 (0.05e9) 7.1 against 7.3, LSTM n=32 B=32 3.4 against 3.8; RNN n=512 B=8
# (0.42e9) 17.2 against 17.4. Split at B = 1: LSTM n=512 (0.2e9) 15.2 ms whole against 20.7 split, GRU n=512 13.1
# against 16.9 (ad hoc; the table: bench/results/2026-11-26-training-step-beside.md). (An earlier measurement, before
# the sweeps' rows vectorised, had LSTM n=128 B=32 at 28 ms serial against 31 parallel, and set one threshold of 10^9
# for both.) With OMP_WAIT_POLICY=PASSIVE (torch's threads sleep) neither is needed: fastrnn.torch.LSTM step n=128
# B=32 15.0 ms with the usual thresholds against 24.3 with the long-call rule (torch's default policy), n=128 B=8 4.1
# against 6.7 (float32, AVX-512 EPYC; bench/results/2026-11-25-passive-wait-policy.md); nor with a short
# GOMP_SPINCOUNT (SHORT_SPIN): n=128 B=32 15.7 against 23.6 ms (bench/results/2026-11-26-spin-count.md;
# torch's own operators respond to that variable, so its runtime reads it).
BESIDE_MIN_WORK = 250_000_000
BESIDE_MIN_SPLIT_WORK = 1_000_000_000
# Beside a spinning pool that ``beside`` can put to sleep (``quiet``: fastrnn.torch's, for torch's GNU OpenMP pool), a
# call of at least QUIET_MIN_WORK multiply-adds that pays on parallel threads puts it to sleep and runs parallel with
# the usual thresholds. Putting it to sleep costs about 80 us, and torch's next operation about 65 more to wake it
# (2 cores, KVM). Measured with fastrnn.torch modules in a training step (T=100, m=32, two cores, interleaved in
# random order; ``python bench/borrowed_products.py``: bench/results/2026-11-27-beside-torch-settings.md, 1.12-1.39x
# where calls pay on two threads; a wider ad hoc grid, bench/results/2026-11-27-quiet-torch.md: float32 LSTM
# n=128 B=32 35.1 -> 23.0 ms, n=512 B=8 62.0 ->
# 55.2, GRU n=128 B=32 25.8 -> 19.3, RNN n=512 B=8 25.3 -> 18.7, float64 LSTM n=128 B=8 18.9 -> 13.9; a batch of one
# at n=512 float32 level (24.5 / 24.9). A threshold of 10^7 instead: LSTM n=64 B=8 5.84 against 5.09 ms, other rows
# level.
QUIET_MIN_WORK = 50_000_000
# The same rule outside ``beside``, for fastrnn called on arrays in a process that has imported torch (a loop that mixes
# torch operations with fastrnn.bptt): a call of at least QUIET_MIN_WORK multiply-adds that pays on parallel threads
# first puts torch's spinning threads to sleep (``_quiet_plain``; fastrnn.torch says whether they spin). Measured with
# fastrnn.bptt in the training step of bench/test_torch_step.py, default threads, interleaved in random order with
# torch.nn's step and with the same call without the rule (2 cores, ``python bench/plain_quiet.py``,
# bench/results/2026-11-27-plain-calls-beside-torch.md): 22 rows that quiet, median 0.94 of the time without it, from
# 0.77 (float64 simple cell n=512 B=8 34.2 -> 26.6 ms) to 1.06 (within the noise); float64 LSTM n=128 B=8 13.3 ->
# 10.2. Where torch has been idle for longer than its threads spin (a loop of fastrnn calls alone), the quieting
# operation costs up to 0.8 ms a call (float32 LSTM n=128 B=32 17.4 -> 18.2 ms, B=8 4.95 -> 5.26).
SHORT_SPIN = 10_000      # GNU OpenMP spin iterations: about 0.1 ms at its own estimate of 100 000 a millisecond


def gomp_spin_count():
    """How many iterations a GNU OpenMP pool's threads (torch's) spin after an operation before they
    sleep, as libgomp reads it when it loads: ``GOMP_SPINCOUNT`` (a count, with an optional k, M, G or T
    suffix, or "infinite") if set, else 0 under ``OMP_WAIT_POLICY=PASSIVE``, 3·10¹⁰ under ACTIVE and
    300 000 (about 3 ms) by default. None for a value libgomp would not read."""
    text = os.environ.get("GOMP_SPINCOUNT", "").strip()
    if text:
        if text.lower() in ("infinite", "infinity"):
            return float("inf")
        scale = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}.get(text[-1:].lower(), 1)
        digits = text[:-1] if scale != 1 else text
        return int(digits) * scale if digits.strip().isdigit() else None
    policy = os.environ.get("OMP_WAIT_POLICY", "").strip().upper()
    return 0 if policy == "PASSIVE" else 30_000_000_000 if policy == "ACTIVE" else 300_000


def gomp_threads_spin():
    """Whether a GNU OpenMP pool's threads spin long after each operation (libgomp's default, about
    3 ms by its own estimate; 8.5 ms measured after a torch.mm on a 2-core AMD EPYC, Zen 3, by the
    worker's state in /proc) or sleep at once or soon (``OMP_WAIT_POLICY=PASSIVE``, ``GOMP_SPINCOUNT`` of at most
    ``SHORT_SPIN``): what ``beside`` is told for torch's pool (``fastrnn.torch``). Both variables are
    read by the OpenMP runtime when it loads, so a process reads them once."""
    count = gomp_spin_count()
    return count is None or count > SHORT_SPIN

# A batch of one has no rows to share out, but each step's product (a gemv: it streams the recurrent weights once
# and is bound by memory) can be cut into parts on separate cores (``kernels._panels._gemv_parts``). It pays
# once each part streams at least this many bytes of weights a step: whole calls at B = 1, T = 100, two threads
# against one, cross 1.0 between 0.6 and 1.1 MB of weights for every cell and both dtypes (LSTM float32 n=192
# 0.87x, n=256 1.07x, n=512 1.37x; float64 n=128 0.84x, n=192 1.14x; GRU float32 n=256 1.03x at 0.75 MB, n=384
# 1.42x; simple cell float64 n=256 0.88x, n=384 1.13x: bench/split.py, bench/results/2026-11-26-batch-of-one-
# split.md), about where the matrix outgrows one core's 1 MB L2 cache (AMD EPYC, AVX-512, tbb layer; a launch
# costs about 1.5 us a step).
SPLIT_BYTES = 1 << 19
_beside = threading.local()


def max_threads():
    """The most threads Numba can run in this process (NUMBA_NUM_THREADS, set at start)."""
    return numba.config.NUMBA_NUM_THREADS


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"{what} must be a whole number of threads >= 1, got {value!r}")
    if value < 1:
        raise OptionError(f"{what} must be a whole number of threads >= 1, got {value}")
    if value > max_threads():
        raise OptionError(f"{what}={value} but this process can run at most {max_threads()} threads "
                          f"(the cores Numba found at start; NUMBA_NUM_THREADS before Python starts "
                          f"raises the limit): use {max_threads()} or fewer")
    return value


def set_threads(count):
    """Limit every later fastrnn call in this process to ``count`` threads (None: no limit).

    ``FASTRNN_NUM_THREADS`` sets it when fastrnn is imported; ``threads`` limits a block of calls.

    Parameters
    ----------
    count : int or None
        At most this many threads for each call (1: the serial kernels); None lifts the limit.

    Returns
    -------
    int or None
        The previous limit.

    Raises
    ------
    OptionError
        For a count that is not a whole number from 1 to the threads Numba can run.

    Examples
    --------
    >>> import fastrnn
    >>> old = fastrnn.set_threads(1)
    >>> fastrnn.get_threads()
    1
    >>> _ = fastrnn.set_threads(old)
    """
    global _limit
    old = _limit
    _limit = None if count is None else _count(count, "threads")
    return old


_numba_count = None     # (get, set) of Numba's thread count for the calling thread (``_numba_threads``)


def _numba_threads():
    """(get, set) for Numba's thread count of the calling thread. ``numba.get_num_threads`` and
    ``set_num_threads`` first make sure Numba's pool is running, under a lock, at every call (2.1 and
    2.5 us here, a few of them in every fastrnn.torch call); once it runs, the C functions of the
    threading layer they then call answer alone (0.33 us against 1.0-2.1 for ``numba.get_num_threads``,
    ad hoc). Those are Numba's internals: where they are missing, the public functions. The counts set through it are never more than the current
    one, or the one it replaced, so Numba's range check has nothing to refuse."""
    global _numba_count
    if _numba_count is None:
        numba.get_num_threads()                 # starts the pool: the layer chosen at import (``layer``)
        from numba.np.ufunc import parallel
        get, put = getattr(parallel, "_get_num_threads", None), getattr(parallel, "_set_num_threads", None)
        _numba_count = ((get, put) if callable(get) and callable(put) and get() == numba.get_num_threads()
                        else (numba.get_num_threads, numba.set_num_threads))
    return _numba_count


def get_threads():
    """The number of threads a fastrnn call from this thread may use now (small calls use one).

    Returns
    -------
    int
        Numba's thread count for the calling thread, capped by ``set_threads``.

    Examples
    --------
    >>> import fastrnn
    >>> fastrnn.get_threads() >= 1
    True
    """
    n = _numba_threads()[0]()
    return n if _limit is None else min(n, _limit)


def _from_environment():
    value = os.environ.get("FASTRNN_NUM_THREADS", "").strip()
    if not value:
        return
    try:
        count = int(value)
    except ValueError:
        raise OptionError(f"FASTRNN_NUM_THREADS={value!r} is not a whole number of threads") from None
    set_threads(min(count, max_threads()) if count >= 1 else count)


def workers(work=0):
    """Yield the number of threads this call may use (1: the serial kernels only). Every BLAS
    is held to one thread for the duration of the call. A call given several threads may put
    torch's spinning threads to sleep once (``_quiet_plain``, and inside ``beside`` its ``quiet``):
    ``work``, the multiply-adds of all the call's kernels where the caller knows them
    (``call_work``), lets its first parallel kernel do so for the call as a whole, which pays for
    the sleep once for all its kernels. (A class, not a generator: every fastrnn call enters one.)

    Returns
    -------
    context manager
        ``with workers(work) as threads:``.
    """
    return _Workers(work)


class _Workers:
    """``workers``' block."""

    __slots__ = ("_work", "_held", "_blas")

    def __init__(self, work):
        self._work, self._held, self._blas = work, False, None

    def __enter__(self):
        threads = get_threads()
        self._blas = _blas.single_threaded()
        self._blas.__enter__()
        if threads > 1 and _POOL.acquire(blocking=False):
            self._held = True
            _call.may_quiet = True
            _call.work = self._work
            return threads
        return 1

    def __exit__(self, *exc):
        if self._held:
            self._held = False
            _call.may_quiet = False
            _call.work = 0
            _POOL.release()
        self._blas.__exit__(*exc)
        return False


def pays(kernel):
    """(multiply-adds per step per thread, multiply-adds in all) from which ``kernel`` runs parallel:
    ``PAYS`` for its family; a ``"batch"`` kernel whose step products run in compiled tiles
    (``runtime.blas.step_products``) reads ``PAYS["batch tiles"]``."""
    if kernel.family == "batch" and _blas.step_products() == "tiles":
        return PAYS["batch tiles"]
    return PAYS[kernel.family]


def plan(kernel, threads, work):
    """How many parallel blocks ``kernel`` should run for ``work`` (1: the serial twin): as many as
    there are threads and items, but no more than give each thread its family's work per step
    (``pays``), and for a batch whose products run in tiles of several rows, no more blocks than
    tiles unless each block gets one row."""
    blocks = min(work.items, threads)
    if blocks < 2:
        return 1
    if FORCE_PARALLEL:
        return blocks
    per_step, total = pays(kernel)
    if kernel.family == "batch" and _blas.step_products() == "tiles" and work.items > threads:
        blocks = min(blocks, -(-work.items // TILE_ROWS))     # blocks of at least a tile's rows, or of one row
    if per_step:
        blocks = min(blocks, int(work.flops_per_step // per_step))
    if blocks < 2 or work.flops_per_step * work.steps < total:
        return 1
    if _pool_spins(work.flops_per_step * work.steps, BESIDE_MIN_WORK):
        return 1
    return blocks


def parts(kernel, threads, work):
    """Into how many parts a ``"batch"`` kernel with a batch of one cuts each step's product, run
    on as many threads (1: whole, on the calling thread): as many as there are threads, but no more
    than give each part ``SPLIT_BYTES`` of the weights. Beside a spinning pool (``beside``), only
    for calls of ``BESIDE_MIN_SPLIT_WORK`` multiply-adds or more."""
    if kernel.family != "batch" or work.items != 1 or threads < 2:
        return 1
    if FORCE_PARALLEL:
        return threads
    count = min(threads, work.weight_bytes // SPLIT_BYTES)
    if count < 2:
        return 1
    if _pool_spins(work.flops_per_step * work.steps, BESIDE_MIN_SPLIT_WORK):
        return 1
    return count


TILES_MATMUL_MIN = 1 << 18      # ``product``: the compiled tiles from this many multiply-adds ...
TILES_MATMUL_MIN_ROWS = 32      # ... and this many rows of a (and b at least one tile panel wide)


def product(a, b, out, threads=1):
    """out = a @ b (2-d arrays of one float dtype; out's rows contiguous) for the products fastrnn takes outside
    its kernels: a GRU's input-side sums and dL/dx (``cells.base.RowProducts``), a pair's input projection
    (``pair``).

    In the compiled tiles of the step products (``kernels._tiles_matmul``, on ``threads`` as ``plan`` splits the
    rows) where they take wider vectors than NumPy's BLAS core (``runtime.blas.tiles_wider_than_numpy``: an AVX-512
    CPU beside an OpenBLAS on its AVX2 kernels), for products of at least TILES_MATMUL_MIN multiply-adds,
    TILES_MATMUL_MIN_ROWS rows and a whole panel of columns (``_tiles.tile_columns``: 64 in float32, 32 in
    float64 on AVX-512); else NumPy's matmul, held to one thread during fastrnn's calls. One thread, the tiles
    against NumPy's OpenBLAS on its Haswell kernels (2-core AMD EPYC Zen 5, ``OPENBLAS_CORETYPE=Haswell``, ad hoc,
    medians of 300 interleaved): float64 0.50-0.78 of the time from 2.6e5 multiply-adds; float32 0.59-0.90 with
    64 columns or more and 100 rows or more, 1.09 at 64 x 64 x 64 (taken: half a microsecond), but 1.31-1.48 with 32
    columns (a panel half padding) and 1.18 with 16 rows by 1000 (neither taken). Whole calls and the figures:
    ``bench/results/2026-11-29-after-jax-and-the-python-path.md`` section 7. The tiles' sums differ from the BLAS's
    only by rounding."""
    M, K = a.shape
    N = b.shape[1]
    if (M < TILES_MATMUL_MIN_ROWS or M * K * N < TILES_MATMUL_MIN or N < tile_columns(a.itemsize)
            or not _blas.tiles_wider_than_numpy()):
        np.matmul(a, b, out=out)
        return out
    panels = workspace.at_least("product panels", int(cut_elements(M, max(1, threads), K, N, a.itemsize)), a.dtype)
    call(_tiles_matmul, threads, Work(M, 2 * M * K * N, 1), a, b, out, panels)
    return out


def spins_beside(flops):
    """Whether work of ``flops`` multiply-adds that would use a second core must stay off it, beside
    another framework's spinning pool: the rule the parallel twins follow (``_pool_spins``, with
    ``BESIDE_MIN_WORK``), and so with its side effects (torch's threads put to sleep where that pays)."""
    return _pool_spins(flops, BESIDE_MIN_WORK)


def _pool_spins(flops, least):
    """Whether a call of ``flops`` multiply-adds that pays on parallel threads must stay on one, beside
    another framework's spinning pool (``beside``): no if that pool does not spin or the call is long
    enough to run parallel beside it anyway (``least``); else, if ``beside`` was given a way to put its
    threads to sleep and the call has ``QUIET_MIN_WORK`` multiply-adds or more, their sleep (once per
    block: the pool then counts as sleeping and lends no products, which would wake it) and no."""
    if not getattr(_beside, "spinning", False):
        _quiet_plain(flops)
        return False
    quiet = getattr(_beside, "quiet", None)
    if quiet is not None and max(flops, getattr(_call, "work", 0)) >= QUIET_MIN_WORK:
        quiet()
        _beside.spinning, _beside.gemm, _beside.quiet = False, None, None
        return False
    return flops < least


_call = threading.local()     # may_quiet: torch's threads not yet quieted in this call; work: its ``call_work``
_NO_BRIDGE = []               # why the rule is off in this process (fastrnn.torch failed to load or to quiet), if it is


def call_work(weights, T, B, passes):
    """The multiply-adds of a call's kernels, as ``Work`` counts them (two a weight a batch row a step),
    over ``passes`` passes over the sequence (a forward pass 1, its backward sweep and weight gradients
    2 more): every weight array of the network counted, its readout's too, which is small beside them."""
    return passes * 2 * T * B * sum([w.size for w in weights.values()])


def _quiet_plain(flops):
    """Outside ``beside`` (fastrnn called on arrays, not from fastrnn.torch's operators), in a process
    that has imported torch: a call of ``QUIET_MIN_WORK`` multiply-adds or more (a kernel's ``flops``,
    or the whole call's, ``workers``' ``work``) that pays on parallel threads first puts torch's
    threads to sleep, once per call, where they spin after torch's own
    operations (``fastrnn.torch._plain_call_quiet``: GNU OpenMP, torch on every CPU, its default wait
    policy), so that they do not share the cores with fastrnn's; not where a CPU is left
    (``fastrnn.torch._cpu_left``: no pool spins then). Never imports torch itself. Where
    fastrnn.torch cannot load or the quieting operation fails, the call goes on without it, and the
    rule is off for the rest of the process (one RuntimeWarning)."""
    if (max(flops, getattr(_call, "work", 0)) < QUIET_MIN_WORK or not getattr(_call, "may_quiet", False)
            or getattr(_beside, "active", False)):
        return
    _call.may_quiet = False
    if sys.modules.get("torch") is None or _NO_BRIDGE:     # None: a process that blocks torch's import
        return
    try:
        quiet = importlib.import_module("fastrnn.torch")._plain_call_quiet()
        if quiet is not None:
            quiet()
    except Exception as exc:         # an optional saving: never the reason a call fails
        _NO_BRIDGE.append(exc)
        warnings.warn(f"fastrnn: putting torch's spinning threads to sleep before parallel calls failed ({exc!r}); "
                      "fastrnn calls now run beside them as they are", RuntimeWarning, stacklevel=2)


def row_tiled(work):
    """Whether a batch of one whose products are not cut into ``parts`` takes them in row tiles
    (``kernels._tiles``: the backward sweeps; the forward passes keep W's rows): where
    ``_tiles.row_tiles_pay`` for its weights and steps and ``runtime.blas.row_tiles`` allows."""
    return work.items == 1 and _blas.row_tiles() and row_tiles_pay(work.weight_bytes, work.steps)


def call(kernel, threads, work, *args):
    """Run ``kernel`` (whose last arguments are ``nblocks``, and ``split`` for the ``"batch"``
    family) as ``plan`` and ``parts`` decide; a ``"batch"`` kernel with more than one batch row takes
    each step's product as ``runtime.blas.step_products`` says (``split``: ``TILES`` or 1); a batch of
    one cuts it into ``parts``, or takes it whole, in row tiles where ``row_tiled`` (``ROW_TILES``)."""
    blocks = plan(kernel, threads, work)
    args = kernel.read_only(args)        # one compiled variant for writable and read-only inputs
    if kernel.family != "batch":
        split = ()
    elif work.items == 1:
        count = parts(kernel, threads, work)
        split = (ROW_TILES if count == 1 and row_tiled(work) else count,)
    else:
        split = (TILES if _blas.step_products() == "tiles" else 1,)
    if blocks > 1:
        return kernel.parallel(*args, blocks, *split)
    return kernel.serial(*args, 1, *split)


def beside(pool_threads, spinning=True, gemm=None, quiet=None):
    """For fastrnn running inside another framework's operators (``fastrnn.torch``): at most
    ``pool_threads`` threads (the framework's own intra-op count; its pool idles while our operator
    runs). If that pool's threads spin after their own operations (``spinning``, GNU OpenMP's default),
    the parallel kernels run only for calls of ``BESIDE_MIN_WORK`` multiply-adds or more (a batch of
    one splits its products only from ``BESIDE_MIN_SPLIT_WORK``), so that the spinning threads cost
    little, and the matrix products over all T·B rows (weight gradients, dL/dx) go through ``gemm``,
    ``gemm(a, b, out)``: out = a @ b on that pool, whose threads are awake anyway (``borrowed_gemm``);
    if they sleep (``OMP_WAIT_POLICY=PASSIVE``), the usual thresholds apply and fastrnn's own kernels
    take the products. ``quiet()``, where given, puts the spinning threads to sleep: a call of
    ``QUIET_MIN_WORK`` multiply-adds or more that pays on parallel threads calls it (once in the block)
    and runs with the usual thresholds, as beside a sleeping pool. Every BLAS stays on one thread for
    the whole block, NumPy's work between the kernels included (OpenBLAS's own threads would wait for
    cores too). Restores Numba's count on exit; per calling thread. (A class, not a generator: fastrnn.torch
    enters one in every layer call.)"""
    return _Beside(pool_threads, spinning, gemm, quiet)


class _Beside:
    """``beside``'s block."""

    __slots__ = ("_args", "_old", "_count", "_was", "_blas")

    def __init__(self, pool_threads, spinning, gemm, quiet):
        self._args = (pool_threads, spinning, gemm, quiet)

    def __enter__(self):
        pool_threads, spinning, gemm, quiet = self._args
        get, put = _numba_threads()
        old = get()
        count = max(1, min(int(pool_threads), old))
        self._was = (getattr(_beside, "spinning", False), getattr(_beside, "gemm", None),
                     getattr(_beside, "quiet", None), getattr(_beside, "active", False))
        self._old, self._count = old, count
        if count != old:
            put(count)
        _beside.active = True
        _beside.spinning = bool(spinning)
        _beside.gemm = gemm if spinning and int(pool_threads) >= 2 else None
        _beside.quiet = quiet if spinning and count >= 2 else None
        self._blas = _blas.single_threaded()      # NumPy's work between the kernels too
        try:
            self._blas.__enter__()
        except BaseException:
            self._restore()
            raise

    def __exit__(self, *exc):
        try:
            self._blas.__exit__(*exc)
        finally:
            self._restore()
        return False

    def _restore(self):
        _beside.spinning, _beside.gemm, _beside.quiet, _beside.active = self._was
        if self._count != self._old:
            _numba_threads()[1](self._old)


def borrowed_gemm():
    """The ``gemm`` of the enclosing ``beside`` block where its pool spins and has two threads or more,
    else None: the matrix products over all T·B rows that would pay on parallel threads but that
    fastrnn's own kernels would run serially there go through it (``cells.base.weight_grads``,
    ``cells.base.matmul``). Measured with fastrnn.torch.LSTM in a float32 training step (T=100, m=32,
    two cores, torch's default policy, interleaved in random order, ``python bench/borrowed_products.py``):
    n=128 B=8 1.06× in two runs, n=32 B=32 1.04-1.09×, rows that run the same code both ways 0.95-1.06×
    (``bench/results/2026-11-26-products-on-torchs-pool.md``); on many cores the weight-gradient product,
    about a fifth of such a step, would shrink with the pool's thread count."""
    return getattr(_beside, "gemm", None)


@contextlib.contextmanager
def threads(count):
    """Run the enclosed fastrnn calls on at most ``count`` threads (1: the serial kernels, and every
    BLAS on one thread, as in every call).

    The previous count is restored on exit. The setting is per calling thread (Numba's rule);
    ``fastrnn.set_threads`` sets a process-wide limit.

    Parameters
    ----------
    count : int
        At most this many threads for each call inside the block.

    Returns
    -------
    context manager
        Use it in a ``with`` statement; it yields nothing.

    Raises
    ------
    OptionError
        For a count that is not a whole number from 1 to the threads Numba can run.

    Examples
    --------
    >>> import fastrnn
    >>> with fastrnn.threads(1):
    ...     fastrnn.get_threads()
    1
    """
    count = _count(count, "threads")
    old = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(old)


_from_environment()
