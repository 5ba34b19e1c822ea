"""Choosing between the parallel and the serial twin of a kernel.

Numba's ``workqueue`` threading layer aborts the process when two threads run parallel code at
once, and the other layers are not installed everywhere. fastrnn therefore lets one call at a
time use the thread pool: a call that finds the pool busy runs the serial twin instead (the
kernels release the GIL, so both really run at once). This holds whatever layer Numba picks;
it does not protect against *other* libraries' parallel Numba code running at the same moment.
"""
import contextlib
import threading

import numba

_POOL = threading.Lock()


def run(kernel, *args, items):
    """Call ``kernel`` (a ``fastrnn.kernels`` Kernel whose last argument is ``nblocks``).

    ``items`` is how many independent pieces the kernel's parallel loop can split (batch rows,
    weight rows): the work is cut into ``min(items, threads)`` blocks.
    """
    threads = numba.get_num_threads()
    if threads > 1 and items > 1 and _POOL.acquire(blocking=False):
        try:
            return kernel.parallel(*args, min(items, threads))
        finally:
            _POOL.release()
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
