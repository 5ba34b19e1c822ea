"""The choice of Numba's threading layer, made once, before any parallel kernel runs.

fastrnn asks for Numba's ``"forksafe"`` layer set: ``tbb`` if it loads, else ``omp`` only where
it is Intel's OpenMP, else ``workqueue``. Why (measured on 2 cores, see the project's
MEASUREMENTS and ``bench/test_threads.py``):

- GNU OpenMP (``omp``, Numba's default where TBB is missing) kills a process forked after a
  parallel call ("fork() called from a process already using GNU OpenMP"): PyTorch DataLoader
  workers and process pools fork. ``tbb`` and ``workqueue`` survive a fork.
- ``tbb`` is also thread-safe and as fast as ``omp`` on the large calls that run in parallel;
  ``workqueue`` aborts on concurrent parallel calls (fastrnn's lock prevents that) and is slow.
- Small calls run the serial kernels whatever the layer (``runtime.dispatch.plan``).

TBB comes from the ``tbb`` package on PyPI (installed with fastrnn where a wheel exists). Its
library sits in ``<prefix>/lib``, which the loader does not search, so it is loaded here by its
path before Numba looks for it.

Overrides, in order: ``NUMBA_THREADING_LAYER`` (Numba's own variable: fastrnn leaves the choice to
it), ``FASTRNN_THREADING_LAYER`` (any name Numba accepts: ``tbb``, ``omp``, ``workqueue``,
``safe``, ``forksafe``, ``threadsafe``, ``default``). The setting is process-wide: it also applies
to other libraries' parallel Numba code, and cannot change once a parallel region has run.
"""
import ctypes
import os
import sys

import numba

REQUESTED = None        # what fastrnn asked Numba for (None: left to NUMBA_THREADING_LAYER)
TBB_LIBRARY = None      # the path of the TBB library fastrnn loaded, if any


def _tbb_candidates():
    names = ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll")
    folders = [os.path.join(sys.prefix, "lib"), os.path.join(sys.prefix, "Library", "bin")]
    try:
        from importlib import metadata
        for f in metadata.files("tbb") or ():
            if os.path.basename(str(f)) in names:
                folders.insert(0, os.path.dirname(str(f.locate())))
    except Exception:        # tbb not installed, or metadata unreadable
        pass
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                yield path


def _load_tbb():
    """Load the TBB library by its path so that Numba's tbb layer finds it; the path or None."""
    for path in _tbb_candidates():
        try:
            ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
            return path
        except OSError:
            continue
    return None


def _already_running():
    try:
        from numba.np.ufunc import parallel
        return bool(getattr(parallel, "_is_initialized", False))
    except ImportError:
        return False


def choose():
    """Set Numba's threading layer unless the user or an earlier parallel call already decided."""
    global REQUESTED, TBB_LIBRARY
    if "NUMBA_THREADING_LAYER" in os.environ or _already_running():
        return
    TBB_LIBRARY = _load_tbb()
    REQUESTED = os.environ.get("FASTRNN_THREADING_LAYER", "").strip() or "forksafe"
    numba.config.THREADING_LAYER = REQUESTED


def active():
    """The layer Numba runs ("tbb", "omp", "workqueue"), or None before the first parallel call."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


choose()
