"""What fastrnn can learn about the BLAS that Numba's ``np.dot`` calls (scipy's OpenBLAS).

Measured on this project's 2-core machine: a parallel Numba kernel beside a multithreaded BLAS
is disastrous (the two thread pools spin against each other: RTRL at n = 32 went from 11 ms to
1.3 s), and so is calling a BLAS whose thread count was lowered at run time from inside a
parallel region (weight gradients: 0.7 ms became 76 ms). Calling a BLAS that was started
single-threaded (``OPENBLAS_NUM_THREADS=1``) from parallel tasks works well. So fastrnn uses one
kind of parallelism at a time, and reads which one is possible here.
"""
import ctypes

_GETTERS = ("scipy_openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
            "openblas_get_num_threads", "openblas_get_num_threads64_")


def _find():
    """The thread-count getter of the OpenBLAS behind scipy.linalg.cython_blas, or None."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba uses)
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and "scipy" in line.lower()}
    except (ImportError, OSError):
        return None
    for path in sorted(paths):
        if ".so" not in path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _GETTERS:
            if hasattr(lib, name):
                get = getattr(lib, name)
                get.restype = ctypes.c_int
                return get
    return None


_GET = _find()


def threads():
    """How many threads the BLAS behind Numba's np.dot uses; None if that cannot be read."""
    return None if _GET is None else int(_GET())
