"""The one place where kernel compilation options are set.

Every kernel is compiled twice from the same source: a parallel version (``prange`` runs on
Numba's thread pool) and a serial one (``prange`` runs as ``range``).  The serial version is the
deterministic baseline and what :mod:`fastrnn` runs when another call already holds the thread
pool (see ``fastrnn.runtime.dispatch``). One exception runs threads from a serial twin: at a batch of one
the ``"batch"`` kernels may be told to cut each step's matrix-vector product into parts
(``split``, ``_panels._gemv_parts``), which only the call that holds the pool does.

Numba's on-disk cache keys entries by function name, line and bytecode but not by compile
flags, so the serial twin is compiled from a copy of the function with its own qualified name;
otherwise the two versions would overwrite each other's cache entries.

The kernels copy arrays into slices with loops (``out[i, k] = a[i, k]``, or ``_panels._copy``),
never ``out[i] = a[j]`` or ``out[:, :] = a``: for an array on the right, Numba compiles a shape check whose error message is
built from strings, about 2.5 s for each dimension count in every process that compiles a kernel
(float64 LSTM, empty cache: 5.3 of the 46 s its four kernels took). Assigning a scalar costs nothing.

``helper`` functions are inlined by Numba itself, into the caller's code before typing, so that each
call site is compiled again in every kernel that has it: only the small ones that run once a row
(activations, gate deltas) are helpers. What runs once a step or once a call (``_panels``: the weight
panels' product and its plans) is an ordinary compiled function the kernels call: compiled once per
signature and process, it costs some 25 ns a call (a batch of one, n=32: 158 ns a product against
138 inlined; n=128 within 1%). The four float64 cells' serial kernels compiled in 81 s with it,
112 s with it inlined.

Caution: ``cache=True`` is only invalidated when the kernel's own file changes.  After editing a
helper in another module (``_activations.py``), delete ``kernels/__pycache__``.
"""
import functools
import os
import types
import warnings

import filelock
import numba
from numba import njit

# No 'nnan'/'ninf': NaN checks must keep working.  'reassoc' lets LLVM vectorise reductions.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}
OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)
CACHING = True    # False once no cache folder could be used: kernels then compile in every process


def _jit(fn, **options):
    """``njit`` with the on-disk cache, or without it (one warning) where no folder is writable:
    a read-only install with no writable HOME or NUMBA_CACHE_DIR."""
    global CACHING
    if CACHING:
        try:
            return _locked(njit(**dict(OPTIONS, **options))(fn))
        except RuntimeError as exc:
            if "no locator available" not in str(exc):
                raise
            CACHING = False
            warnings.warn("fastrnn: no writable folder for Numba's kernel cache (the install is read-only "
                          "and neither NUMBA_CACHE_DIR nor the home folder is writable): kernels are "
                          "compiled in every process. Set NUMBA_CACHE_DIR to a writable folder to keep them.",
                          RuntimeWarning, stacklevel=3)
    return njit(**dict(OPTIONS, **options, cache=False))(fn)


LOCK_NAME = "fastrnn-kernels.lock"
LOCK_SECONDS = 60      # a cache read or write takes milliseconds; past this, go on without the lock
_locks = {}
_unlocked = set()      # folders whose lock could not be taken (said once)


def _locked(dispatcher):
    """Hold an inter-process lock (a file in the cache folder) while ``dispatcher`` reads or writes
    its entries in Numba's on-disk cache, and return it.

    Numba's cache index is a file per function, read, extended and written back whole, and a new
    entry's machine code goes into the first data file the index it read did not name. Two processes
    that save different variants of one kernel at once (float32 and float64, say: parallel
    ``fastrnn warmup``, data-parallel workers on an empty cache) can both pick the same data file,
    and the index one wrote can then name the code the other stored, for another signature; a
    reader that comes between the index and its data file can load an older file of that name. The
    lock makes each read and each save whole. Only the cache's file access is serialised, never
    compilation. Where Numba's internals differ from those this relies on, or the lock cannot be
    taken (one warning per folder), the cache works as Numba has it."""
    store = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    folder = getattr(store, "_cache_path", None)
    if not folder or not callable(getattr(store, "save", None)) or not callable(getattr(store, "load", None)):
        return dispatcher
    store.save = _holding(folder, store.save)
    store.load = _holding(folder, store.load)
    return dispatcher


def _holding(folder, method):
    @functools.wraps(method)
    def run(*args, **kwargs):
        try:
            os.makedirs(folder, exist_ok=True)
            lock = _locks.get(folder) or _locks.setdefault(folder, filelock.FileLock(
                os.path.join(folder, LOCK_NAME), timeout=LOCK_SECONDS))
            lock.acquire()
        except (OSError, filelock.Timeout) as exc:
            if folder not in _unlocked:
                _unlocked.add(folder)
                warnings.warn(f"fastrnn: could not lock the kernel cache in {folder} ({exc}); reading or writing "
                              "it without the lock", RuntimeWarning, stacklevel=2)
            return method(*args, **kwargs)
        try:
            return method(*args, **kwargs)
        finally:
            lock.release()
    return run


def _compiler_lock():
    """Numba's process-wide compiler lock (``numba.core.compiler_lock``), or None where Numba has none by that name."""
    lock = getattr(getattr(numba.core, "compiler_lock", None), "global_compiler_lock", None)
    return lock if callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None)) else None


def _before_fork():
    """Take Numba's compiler lock before the process is copied, so that no other thread holds it then: a child
    forked while another thread compiled or loaded a kernel inherited the lock held, by a thread it does not have,
    and hung at its first call of a kernel its parent had not loaded (Numba registers no fork handler for it). A
    fork waits for a compilation under way to end."""
    lock = _compiler_lock()
    if lock is not None:
        lock.acquire()


def _after_fork_in_parent():
    lock = _compiler_lock()
    if lock is not None:
        lock.release()


def _after_fork_in_child():
    """The compiler lock let go (the forking thread took it, and is this child's thread), and the kernel cache's
    locks made anew: the parent's instances are not the child's (filelock 4.3, installed here, raises on one inherited
    across fork; a worker forked after some kernels ran and calling one its parent had not loaded raised so)."""
    _after_fork_in_parent()
    _locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


FAMILIES = ("batch", "rows", "tiles")


_THREADS_STARTED = False


def threads_started():
    """Start Numba's threading layer (once per process) before a kernel runs.

    The serial twins of the ``"batch"`` kernels hold parallel code (a batch of one may split its
    products, ``_panels._gemv_parts``). A serial twin compiled in a process that had loaded that
    parallel code from the on-disk cache is cached without Numba's note to start the threading layer
    when it is loaded, and such a kernel, loaded in a fresh process and called before anything had
    started the layer, jumped to a null address (a segmentation fault: float32 ``_lstm_forward``
    called straight after import). It is Numba's known gap (numba/numba#8578: a cached function that
    calls a ``parallel=True`` one; checked here with Numba 0.68.1, whose cache entries for our serial
    twins lacked the parfor reload note when the parallel callee had come from the cache, and had it
    when everything was compiled afresh). fastrnn's own calls always asked Numba for its thread count
    first, which starts the layer; this makes it hold for every caller of a kernel."""
    global _THREADS_STARTED
    if not _THREADS_STARTED:
        numba.get_num_threads()          # starts the threading layer chosen at import (runtime.layer)
        _THREADS_STARTED = True


class Kernel:
    """A kernel compiled as a ``parallel`` and a ``serial`` dispatcher.

    ``family`` names what its parallel loop splits — ``"batch"`` (rows of the batch, the time
    loop inside), ``"rows"`` (rows of a sum over all T·B rows), ``"tiles"`` (sensitivity tiles, the
    time loop inside) — so that the dispatch policy knows when the parallel twin pays. Either
    dispatcher, once asked for, runs with Numba's threading layer started (``threads_started``).

    ``reads`` names the array arguments the kernel only reads (inputs, weights, saved states).
    Callers hand them in as read-only views (``read_only``; ``runtime.dispatch.call`` does), so that
    one machine-code variant serves writable NumPy arrays and read-only ones alike (JAX's buffers,
    ``setflags(write=False)``): Numba compiles a separate variant for each (5-12 s a serial twin, 15-37 s a
    parallel one, on an empty cache on the project's 2-core machine).
    Typing also proves the point: a kernel that wrote to one of them would not compile.
    """

    def __init__(self, fn, family, reads=()):
        if family not in FAMILIES:
            raise ValueError(f"kernel family {family!r} is not one of {FAMILIES}")
        params = fn.__code__.co_varnames[:fn.__code__.co_argcount]
        unknown = [name for name in reads if name not in params]
        if unknown:
            raise ValueError(f"{fn.__name__} has no argument {unknown[0]!r} to read (its arguments: {params})")
        self._reads = tuple(params.index(name) for name in reads)
        self.family = family
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self._parallel = _jit(fn, parallel=True)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__ = fn.__module__
        twin.__doc__ = fn.__doc__
        self._serial = _jit(twin, parallel=False)

    @property
    def parallel(self):
        threads_started()
        return self._parallel

    @property
    def serial(self):
        threads_started()
        return self._serial

    def read_only(self, args):
        """``args`` with the arrays named in ``reads`` as read-only views (no copy; others unchanged)."""
        args = list(args)
        for i in self._reads:
            a = args[i]
            if a.flags.writeable:
                a = a.view()
                a.flags.writeable = False
                args[i] = a
        return args

    def __repr__(self):
        return f"<fastrnn kernel {self.__name__}>"


def kernel(family, reads=()):
    """Decorator: compile the function as a :class:`Kernel` (parallel and serial twins) of ``family``
    whose arguments named in ``reads`` are only read."""
    return lambda fn: Kernel(fn, family, reads)


def helper(fn):
    """Decorator for small helpers that run once a row in kernels' loops, inlined by Numba into each
    caller (see the module's notes: a larger one belongs in an ordinary ``_jit`` function)."""
    return _jit(fn, inline="always")
