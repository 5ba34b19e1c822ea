"""Choosing between the parallel and the serial twin of a kernel.

fastrnn uses one kind of parallelism at a time (see ``_blas`` for the measurements behind it):

- BLAS's threads (the default): the serial kernels run, and their matrix products (np.dot on
  scipy's OpenBLAS) use every core.
- Numba's threads: when that BLAS runs single-threaded (start Python with
  ``OPENBLAS_NUM_THREADS=1``), the parallel kernels run, each task doing its own BLAS calls on
  its own block (batch rows, sensitivity tiles, rows of the gradient sums).

And one call at a time holds Numba's thread pool: the ``workqueue`` threading layer aborts when
two threads run parallel code at once. A call made while another holds the pool runs the serial
kernels (they release the GIL, so both really run at once, with identical results). This does
not guard other libraries' parallel Numba code running at the same moment.
"""
import contextlib
import threading

import numba

from . import _blas

_POOL = threading.Lock()


FORCE_PARALLEL = False   # tests set this to run the parallel kernels whatever the BLAS


def numba_parallel_ok():
    """True when Numba's threads should do the parallel work (BLAS is single-threaded)."""
    return FORCE_PARALLEL or _blas.threads() == 1


@contextlib.contextmanager
def workers():
    """Yield the number of Numba threads this call may use (1: the serial kernels)."""
    threads = numba.get_num_threads()
    if threads > 1 and numba_parallel_ok() and _POOL.acquire(blocking=False):
        try:
            yield threads
        finally:
            _POOL.release()
    else:
        yield 1


def call(kernel, threads, items, *args):
    """Run ``kernel`` (whose last argument is ``nblocks``) on ``min(items, threads)`` blocks.

    ``items`` is how many independent pieces the kernel's parallel loop can split (batch rows,
    sensitivity tiles, rows of the gradient sums).
    """
    blocks = min(items, threads)
    if blocks > 1:
        return kernel.parallel(*args, blocks)
    return kernel.serial(*args, 1)


@contextlib.contextmanager
def threads(count):
    """Run the enclosed fastrnn calls on ``count`` threads (1: the serial kernels).

    The previous count is restored on exit. The setting is per calling thread (Numba's rule).
    """
    old = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(old)
