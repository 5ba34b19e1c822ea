"""Control of the BLAS libraries' threads, through threadpoolctl.

fastrnn's parallel kernels call BLAS (scipy's OpenBLAS, behind Numba's ``np.dot``) from each of
their threads, and the API calls NumPy's own OpenBLAS for readouts and products outside the
kernels. Measured on this project's 2-core machine, a multithreaded BLAS inside or beside another
thread pool is disastrous: the pools spin against each other (RTRL at n = 32: 7 ms became 1.3 s;
a training step beside torch took whole multiples of the scheduler's 8 ms slice). So
``runtime.dispatch`` holds every BLAS that threadpoolctl finds (NumPy's and SciPy's OpenBLAS, or
MKL, BLIS, ...) to one thread while a call runs parallel kernels, or while it runs inside another
framework's pool, and restores the counts afterwards.

threadpoolctl finds the libraries by what the process has loaded, not by file names; fastrnn
imports ``scipy.linalg.cython_blas`` first so that the library Numba calls is among them. Among
them, ``sgemm_address`` finds NumPy's OpenBLAS, whose float32 GEMM the weight-gradient kernel calls
(``kernels._blas``); it is held to one thread with the rest.
"""
import ctypes
import os
import threading

_lock = threading.Lock()
_libraries = None
_sgemm = None
_SGEMM_SYMBOLS = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")   # 64-bit integers: the signature is known


def libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded in this process (a list)."""
    global _libraries
    if _libraries is None:
        with _lock:
            if _libraries is None:
                try:
                    import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba uses)
                    from threadpoolctl import ThreadpoolController
                    found = list(ThreadpoolController().select(user_api="blas").lib_controllers)
                except Exception:          # threadpoolctl or scipy unusable: treat as not controllable
                    found = []
                _libraries = found
    return _libraries


def sgemm_address():
    """The address of an ILP64 CBLAS ``sgemm`` for the float32 weight-gradient product
    (``kernels._blas``): NumPy's own OpenBLAS (its wheels export ``scipy_cblas_sgemm64_``), found
    among the libraries threadpoolctl controls, so that its threads are held like the others'.
    0 where there is none (a NumPy built on another BLAS): the kernels then use Numba's ``np.dot``.
    Looked up once per process."""
    global _sgemm
    if _sgemm is None:
        found = 0
        for lib in libraries():
            if lib.internal_api != "openblas":
                continue
            try:
                handle = ctypes.CDLL(lib.filepath)
            except OSError:
                continue
            for symbol in _SGEMM_SYMBOLS:
                fn = getattr(handle, symbol, None)
                if fn is not None:
                    found = ctypes.cast(fn, ctypes.c_void_p).value or 0
                    break
            if found:
                break
        _sgemm = found
    return _sgemm


# OpenBLAS cores with its "small matrix" kernels, which multiply small products without packing them: the AVX-512
# ones (kernel/x86_64/KERNEL.SKYLAKEX, included by COOPERLAKE and SAPPHIRERAPIDS). Names as threadpoolctl reports them.
UNPACKED_SMALL_PRODUCTS = ("skylakex", "cooperlake", "sapphirerapids")
_products = None
_row_tiles = True        # a batch of one's row tiles (``row_tiles``), read with ``_products``


def step_products():
    """How the batch kernels take each step's product h (rows, K) @ W (K, N) at a batch of more than
    one: ``"blas"`` (the BLAS, through panels it does not repack: ``kernels._panels``) or
    ``"tiles"`` (compiled register tiles: ``kernels._tiles``). The BLAS where it is an OpenBLAS whose
    core multiplies small products unpacked (``UNPACKED_SMALL_PRODUCTS``: 106-116 GFLOP/s in float32
    on an AVX-512 AMD EPYC, one thread), the tiles everywhere else: on an AVX2 AMD EPYC, whose
    OpenBLAS (Haswell kernels) packs W inside every call, the BLAS's step products ran at 10-47
    GFLOP/s in float32 and the tiles at 51-89, one thread's GEMM at 75
    (``bench/results/2026-11-26-tiles-avx2.md``). Where the tiles take 64-byte vectors (the CPU has AVX-512:
    ``_tiles.TILE_BYTES``) the tiles, whatever the core: on a Zen 5 EPYC beside OpenBLAS's SkylakeX kernels whole
    calls took tiles/BLAS float32 LSTM n=128 B=8 0.89-0.96, B=32 0.81-0.99, n=512 B=8 0.95-0.98, float64 0.82-0.96
    (one thread; 0.78-1.01 at default threads), and lost only at n=32 in float32 (1.06-1.12: a 64-column panel
    half padding at N = 32;
    ``bench/results/2026-11-28-tile-width.md``); a Zen 4, whose AVX-512 units are 256 bits wide, was not measured
    so. ``FASTRNN_STEP_PRODUCTS=blas`` or ``tiles`` chooses (another value raises OptionError); decided once per
    process, from the library behind Numba's ``np.dot`` (SciPy's)."""
    global _products, _row_tiles
    if _products is None:
        wanted = os.environ.get("FASTRNN_STEP_PRODUCTS", "").strip()
        _row_tiles = wanted.lower() != "blas"
        if wanted.lower() in ("blas", "tiles"):
            _products = wanted.lower()
        elif wanted:
            from ..errors import OptionError
            raise OptionError(f"FASTRNN_STEP_PRODUCTS={wanted!r} is not known: choose 'blas' or 'tiles', "
                              f"or leave it unset to follow the BLAS's core")
        else:
            cores = _scipys_cores()
            from ..kernels._tiles import TILE_BYTES
            _products = ("blas" if TILE_BYTES < 64 and cores and all(c in UNPACKED_SMALL_PRODUCTS for c in cores)
                         else "tiles")
    return _products


def _scipys_cores(scipys=True):
    """The cores (lower case, "" where not reported) of the OpenBLAS libraries behind Numba's ``np.dot`` (SciPy's),
    or with ``scipys`` False behind ``numpy.matmul`` (NumPy's own)."""
    return [(getattr(lib, "architecture", None) or "").lower() for lib in libraries()
            if lib.internal_api == "openblas" and _is_scipys(lib.filepath) == scipys]


def _tiles_wider_than(cores):
    """64-byte tiles (the CPU has AVX-512) beside OpenBLAS libraries of these ``cores``, each reported and none of
    them an AVX-512 core."""
    from ..kernels._tiles import TILE_BYTES
    return TILE_BYTES == 64 and bool(cores) and all(c and c not in UNPACKED_SMALL_PRODUCTS for c in cores)


def tiles_wider():
    """Whether the kernels' compiled tiles (``kernels._tiles``) take wider vectors than the BLAS's kernels: 64-byte
    tiles (the CPU has AVX-512) beside a SciPy OpenBLAS whose core has no AVX-512 (one chosen by
    ``OPENBLAS_CORETYPE``, or a build that did not know the CPU). The weight-gradient products then go through
    the tiles too (``cells.base.weight_grad_layout``). Decided once per process; False where the BLAS is not an
    OpenBLAS that reports its core."""
    global _wider
    if _wider is None:
        _wider = _tiles_wider_than(_scipys_cores())
    return _wider


_wider = None


def tiles_wider_than_numpy():
    """``tiles_wider`` for NumPy's own OpenBLAS (``numpy.matmul``, the products fastrnn takes outside its kernels):
    64-byte tiles beside a NumPy OpenBLAS whose core has no AVX-512. Decided once per process; False where NumPy's
    BLAS is not an OpenBLAS that reports its core."""
    global _wider_numpy
    if _wider_numpy is None:
        _wider_numpy = _tiles_wider_than(_scipys_cores(scipys=False))
    return _wider_numpy


_wider_numpy = None


def row_tiles():
    """Whether a batch of one may take its step products in the compiled row tiles
    (``kernels._tiles.row_tile_products``, where ``row_tiles_pay``): everywhere unless
    ``FASTRNN_STEP_PRODUCTS=blas`` asks for the BLAS's products (then the matrix-vector products of
    ``kernels._panels``). Unlike the batch's tiles this does not follow the BLAS's core: a row tile
    replaces compiled loops and the BLAS's gemv alike, and streams weights that stay in a core's L2
    cache faster than either (one thread, AVX2 AMD EPYC: float32 n=128 LSTM weights 2.7 us a
    product against 3.8-4.3, ``bench/results/2026-11-26-row-tiles.md``)."""
    step_products()         # read with it, once (a value it does not know raises OptionError here too)
    return _row_tiles


def _is_scipys(path):
    """Whether a BLAS library file is the one SciPy's bindings (and so Numba's ``np.dot``) load:
    SciPy's wheels keep it in ``scipy.libs``, NumPy's in ``numpy.libs``."""
    parts = os.path.normpath(path).split(os.sep)
    return not any(p.startswith("numpy") for p in parts)


def info():
    """One dict per BLAS library: its API, file, version, core (OpenBLAS's, else None) and current thread count."""
    return [{"internal_api": lib.internal_api, "filepath": lib.filepath, "version": lib.version,
             "architecture": getattr(lib, "architecture", None), "num_threads": lib.get_num_threads()}
            for lib in libraries()]


def threads():
    """The largest thread count among the BLAS libraries; None if none is controllable."""
    libs = libraries()
    return max(lib.get_num_threads() for lib in libs) if libs else None


def controllable():
    """True if fastrnn can set the thread count of the BLAS libraries it calls."""
    return bool(libraries())


_hold_lock = threading.Lock()  # single_threaded's blocks, counted across the process's threads
_holders = 0
_held_counts = None            # (the controls, the counts the first block found), restored by the last
_controls = None               # (the libraries, their (get, set) pairs): ``thread_controls``


def thread_controls():
    """One (get, set) pair of functions per BLAS library (``libraries``) for its thread count. An
    OpenBLAS on its own threads (not OpenMP's) is asked through its C functions, found by the names its
    builds export (``openblas_get_num_threads``, NumPy's and SciPy's wheels with a ``scipy_`` prefix and
    a ``64_`` suffix on the 64-bit-integer build): 0.2-0.4 us a query against 0.6 through threadpoolctl's
    controller. A ``single_threaded`` block that sets NumPy's and SciPy's OpenBLAS to one thread and back
    took 4.9 us against 8.1 through the controllers, one that finds them at one thread 3.0 against 3.8
    (``python bench/blas_hold.py``; the generator-based block before it, 14 us, ad hoc); every fastrnn
    call opens one, a fastrnn.torch layer two. Any other library (MKL, BLIS, an OpenMP OpenBLAS) goes
    through threadpoolctl's controller.
    A setting through the C function is the library's own, for the whole process, as the controller's is
    for the first Python thread that set it (threadpoolctl leaves an OpenBLAS to one controlling
    thread: another thread's setting was ignored, so fastrnn called from a second thread left its BLAS
    threads as they were)."""
    global _controls
    libs = libraries()
    if _controls is None or _controls[0] is not libs:
        _controls = (libs, [_c_functions(lib) or (lib.get_num_threads, lib.set_num_threads) for lib in libs])
    return _controls[1]


def _c_functions(lib):
    """(get, set) as the library's C functions where ``lib`` is an OpenBLAS on its own threads and they
    give the count threadpoolctl reads; else None."""
    if getattr(lib, "internal_api", None) != "openblas" or getattr(lib, "threading_layer", None) != "pthreads":
        return None
    try:
        handle = ctypes.CDLL(lib.filepath)
    except OSError:
        return None
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_"):
            get = getattr(handle, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(handle, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is None or put is None:
                continue
            get.argtypes, get.restype = [], ctypes.c_int
            put.argtypes, put.restype = [ctypes.c_int], None
            try:
                if get() == lib.get_num_threads():
                    return get, put
            except Exception:        # threadpoolctl could not read it: leave the library to threadpoolctl
                return None
    return None


class _SingleThreaded:
    """``single_threaded``'s block (a class, not a generator: entered twice in every fastrnn call)."""

    __slots__ = ()

    def __enter__(self):
        global _holders, _held_counts
        with _hold_lock:
            if _holders == 0:
                controls = thread_controls()
                old = [get() for get, _ in controls]
                for (_, put), count in zip(controls, old):
                    if count != 1:
                        put(1)
                _held_counts = (controls, old)
            _holders += 1

    def __exit__(self, *exc):
        global _holders, _held_counts
        with _hold_lock:
            _holders -= 1
            if _holders == 0:
                _restore(*_held_counts)
                _held_counts = None
        return False


_SINGLE_THREADED = _SingleThreaded()


def _restore(controls, counts):
    """Each library of ``controls`` back at its count in ``counts`` (those not at one thread then were never
    set)."""
    for (_, put), count in zip(controls, counts):
        if count != 1:
            put(count)


def _after_fork_in_child():
    """A forked child has only the thread that forked: blocks other threads held open are gone, and
    the lock may have been taken when the process was copied. Start again, with the counts the
    process had before those blocks."""
    global _hold_lock, _holders, _held_counts
    _hold_lock = threading.Lock()
    if _holders and _held_counts is not None:
        try:
            _restore(*_held_counts)
        except Exception:       # never the reason a child cannot start
            pass
    _holders, _held_counts = 0, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def single_threaded():
    """Every controllable BLAS on one thread inside the block (a context manager), and the previous
    counts restored when the last block open in the process ends (also when it raises). The libraries'
    counts are process-wide, so the blocks are counted across threads: the first to open asks the
    libraries and sets them, the others (blocks inside it, fastrnn.torch nests three, and calls on
    other threads meanwhile) change nothing and ask nothing. (One block object serves every call: it keeps
    nothing of its own.)"""
    return _SINGLE_THREADED
