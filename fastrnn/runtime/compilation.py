"""Compilation of the kernels: a word on stderr when it happens, and where the cache lives.

Numba compiles each kernel for each dtype (and serial or parallel twin) the first time it is
called, then keeps the machine code in its on-disk cache. A first run therefore spends tens of
seconds compiling; fastrnn says so on stderr once per process, the moment the first compilation
starts (a cache hit prints nothing). ``fastrnn warmup`` compiles ahead of time.
"""
import glob
import os
import sys
import threading

from numba.core import event

# Measured on the project's 2-core machine, empty cache (``python bench/compile_time.py --kernels``): the
# first kernel a process compiles brings the helpers every kernel shares (the weight panels' products,
# about 12 s: a float64 forward pass took 19 s in all, a cold ``fastrnn train`` 40-46 s for its three
# kernels); each serial kernel after that 2-9 s.
SECONDS_FIRST, SECONDS_PER_KERNEL = 20, (2, 10)
_said = threading.Event()
quiet = False                 # tests and --json runs may silence the notice


class _Notice(event.Listener):
    def on_start(self, ev):
        dispatcher = ev.data.get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if quiet or _said.is_set() or not module.startswith("fastrnn.kernels"):
            return
        _said.set()
        low, high = SECONDS_PER_KERNEL
        sys.stderr.write(f"fastrnn: compiling kernels for this machine (first run only: about {SECONDS_FIRST} s "
                         f"for the first, {low}-{high} s for each after it; then loaded from "
                         f"{cache_folder() or 'memory'})...\n")
        sys.stderr.flush()

    def on_end(self, ev):
        pass


event.register("numba:compile", _Notice())


def cache_folder():
    """The folder of the kernels' on-disk cache, or None when caching is off."""
    from ..kernels import _forward, _jit
    if not _jit.CACHING:
        return None
    cache = getattr(_forward._serial, "_cache", None)     # the dispatcher itself: no threads started
    return getattr(cache, "cache_path", None)


def cache_entries():
    """How many kernel twins the cache folder holds (the index files of the kernels, serial and
    parallel twins counted apart; their helpers not counted)."""
    from .. import kernels
    from ..kernels._jit import Kernel
    folder = cache_folder()
    if not folder or not os.path.isdir(folder):
        return 0
    twins = [(k._serial.py_func, k._parallel.py_func) for k in vars(kernels).values() if isinstance(k, Kernel)]
    return sum(len(glob.glob(os.path.join(folder, f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__qualname__}-*.nbi")))
               for pair in twins for fn in pair)
