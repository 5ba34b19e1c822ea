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


def info():
    """One dict per BLAS library: its API, file, version and current thread count."""
    return [{"internal_api": lib.internal_api, "filepath": lib.filepath, "version": lib.version,
             "num_threads": lib.get_num_threads()} for lib in libraries()]


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
