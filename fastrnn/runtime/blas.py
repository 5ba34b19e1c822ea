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
import contextlib
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
    (``bench/results/2026-11-26-tiles-avx2.md``). ``FASTRNN_STEP_PRODUCTS=blas`` or ``tiles`` chooses (another
    value raises OptionError); decided once per process, from the library behind Numba's ``np.dot`` (SciPy's)."""
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
            cores = [(getattr(lib, "architecture", None) or "").lower() for lib in libraries()
                     if lib.internal_api == "openblas" and _is_scipys(lib.filepath)]
            _products = "blas" if cores and all(c in UNPACKED_SMALL_PRODUCTS for c in cores) else "tiles"
    return _products


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


_held = threading.local()      # how deep this thread is inside single_threaded blocks


@contextlib.contextmanager
def single_threaded():
    """Every controllable BLAS on one thread inside the block; the previous counts restored after
    it (also when the block raises). A block inside another on the same thread changes nothing
    and asks the libraries nothing (each query costs about 2 us; fastrnn.torch nests three)."""
    depth = getattr(_held, "depth", 0)
    if depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth = depth
        return
    libs = libraries()
    old = [lib.get_num_threads() for lib in libs]
    for lib, count in zip(libs, old):
        if count != 1:
            lib.set_num_threads(1)
    _held.depth = 1
    try:
        yield
    finally:
        _held.depth = 0
        for lib, count in zip(libs, old):
            if count != 1:
                lib.set_num_threads(count)
