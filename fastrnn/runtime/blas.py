"""Control of the BLAS that Numba's ``np.dot`` calls (scipy's OpenBLAS).

fastrnn's parallel kernels call BLAS from each of their threads. Measured on this project's
2-core machine, a multithreaded BLAS inside or beside Numba's parallel regions is disastrous:
the two thread pools spin against each other (RTRL at n = 32: 7 ms became 1.3 s). Held to one
thread for the duration of a fastrnn call, it is not. So ``runtime.dispatch.workers`` sets scipy's
OpenBLAS to one thread while a call runs its parallel kernels and restores the count afterwards.
Where that control is not found (another BLAS, another platform), only the serial kernels run.

NumPy ships its own OpenBLAS (numpy.libs/libscipy_openblas64_...), which Numba does not call;
it is left alone.
"""
import contextlib
import ctypes

_GETTERS = ("scipy_openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
            "openblas_get_num_threads", "openblas_get_num_threads64_")


def _find():
    """(get, set) thread counts of the OpenBLAS behind scipy.linalg.cython_blas, or None."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba uses)
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower()}
    except (ImportError, OSError):
        return None
    # scipy's own copy (wheels: site-packages/scipy.libs/); NumPy ships a separate OpenBLAS
    # (numpy.libs/libscipy_openblas64_...) that Numba's np.dot does not call
    paths = {p for p in paths if "scipy.libs" in p or "/scipy/" in p}
    for path in sorted(paths):
        if ".so" not in path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _GETTERS:
            setter = name.replace("get_", "set_")
            if hasattr(lib, name) and hasattr(lib, setter):
                get, set_ = getattr(lib, name), getattr(lib, setter)
                get.restype = ctypes.c_int
                set_.argtypes = [ctypes.c_int]
                return get, set_
    return None


_CONTROL = _find()


def threads():
    """How many threads the BLAS behind Numba's np.dot uses; None if that cannot be read."""
    return None if _CONTROL is None else int(_CONTROL[0]())


def controllable():
    """True if fastrnn can set the thread count of the BLAS behind Numba's np.dot."""
    return _CONTROL is not None


@contextlib.contextmanager
def single_threaded():
    """That BLAS on one thread inside the block; the previous count restored after it."""
    get, set_ = _CONTROL
    old = int(get())
    set_(1)
    try:
        yield
    finally:
        set_(old)
