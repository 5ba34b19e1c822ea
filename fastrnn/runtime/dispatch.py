"""Choosing between the parallel and the serial twin of a kernel.

- One fastrnn call at a time holds Numba's thread pool: the ``workqueue`` threading layer aborts
  when two threads run parallel code at once. A call made while another holds it runs the serial
  kernels (they release the GIL, so both really run at once, with identical results).
- While a call holds the pool, the BLAS behind Numba's np.dot (scipy's OpenBLAS) is held to one
  thread and all parallelism is Numba's: each parallel task does its own BLAS calls on its own
  block (batch rows, sensitivity tiles, rows of the gradient sums), and every parallel kernel
  keeps its whole time loop inside one parallel region. Two thread pools on the same cores slow
  each other down by orders of magnitude (see ``runtime.blas``). The count is restored when the call
  ends; meanwhile, scipy BLAS calls from the caller's other threads run single-threaded.
- Where that BLAS cannot be controlled, the serial kernels run and BLAS keeps its threads.

This does not guard other libraries' parallel Numba code running at the same moment.
"""
import contextlib
import threading

import numba

from . import blas as _blas

_POOL = threading.Lock()
FORCE_PARALLEL = False   # tests: run the parallel kernels even where BLAS cannot be controlled


@contextlib.contextmanager
def workers():
    """Yield the number of Numba threads this call may use (1: the serial kernels)."""
    threads = numba.get_num_threads()
    if threads > 1 and (_blas.controllable() or FORCE_PARALLEL) and _POOL.acquire(blocking=False):
        try:
            if _blas.controllable():
                with _blas.single_threaded():
                    yield threads
            else:
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


def parallel_possible():
    """True if calls from this thread would normally run the parallel kernels."""
    return numba.get_num_threads() > 1 and (_blas.controllable() or FORCE_PARALLEL)


@contextlib.contextmanager
def serial():
    """The serial kernels and every BLAS on one thread for the enclosed calls: for fastrnn running
    inside another framework's thread pool (``fastrnn.torch``), where a second pool on the same
    cores only waits for them. Restores both on exit; per calling thread for Numba's count."""
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with _blas.single_threaded():
            yield
    finally:
        numba.set_num_threads(old)


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
