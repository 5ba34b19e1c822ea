"""Per-thread scratch arrays reused from call to call.

Fresh large arrays cost page faults on first touch (measured here: np.zeros_like of 1 MB took
0.8 ms, as much as a quarter of a whole BPTT call at n = 128). Internal buffers (injected errors,
summed deltas, the states of a gradient call, the weight-gradient product) are therefore kept per
thread and reused when the next call has the same shape and dtype; the weight panels the kernels
cut (``at_least``) in one buffer that grows to the largest size asked for; the all-ones mask of a call
given none (``ones``). Arrays larger than ``KEEP_BYTES`` are not kept: a very long sequence should not pin its
buffers after the call returns.

Nothing handed to the caller comes from those. What a call hands out (its weight gradients, dL/dx) comes from
``result``: a new array, or, from ``RESULT_MIN_BYTES`` up, one this thread handed out before and nothing refers to
any more, so that a training loop that drops each step's gradients gets the same memory back instead of new pages.
"""
import collections
import math
import sys
import threading

import numpy as np

from ..kernels._address import address

_local = threading.local()
KEEP_BYTES = 64 * 2**20
ALIGN = 64          # bytes: a cache line

# Results (``result``): arrays of at least RESULT_MIN_BYTES handed out again once nothing refers to them; at most
# RESULTS_PER_SHAPE per shape and dtype and RESULT_KEEP_BYTES in all are remembered per thread (the least recently
# asked-for shapes forgotten first). RECYCLE False: always a new array (a switch for bench/result_pages.py).
RESULT_MIN_BYTES = 256 << 10
RESULTS_PER_SHAPE = 2
RESULT_KEEP_BYTES = 64 * 2**20
RECYCLE = True


def empty(shape, dtype):
    """An uninitialised C-contiguous array whose first number starts a cache line (ALIGN bytes), and whose
    last line holds nothing else.

    NumPy's large arrays start 16 bytes into a line (the allocator's header), so two threads that
    write the units on either side of a cut made on a cache line (``runtime.pair``'s halves) still
    wrote one line each at every cut, every step. Ad hoc, float32 LSTM n=128 T=1000, the forward
    pass paired at B = 1 (2 cores, KVM): 1.58-1.63 ms with the arrays aligned against 1.70-1.73.
    About 1 us a call (``np.empty`` 0.2): its first version, 4.4 us, cost a fastrnn.torch LSTM step at
    n=32, B=1 some 15 us in its four calls."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = dtype.itemsize * math.prod(shape)
    buf = np.empty(-(-nbytes // ALIGN) * ALIGN + ALIGN, dtype=np.uint8)     # its last line its own too
    start = -address(buf) % ALIGN
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def zeros(shape, dtype):
    """``empty``'s array filled with zeros."""
    arr = empty(shape, dtype)
    arr[...] = 0
    return arr


def _store():
    store = getattr(_local, "arrays", None)
    if store is None:
        store = _local.arrays = {}
    return store


def _keep(store, name, arr):
    if arr.nbytes <= KEEP_BYTES:
        store[name] = arr
    return arr


def _kept(name, shape, dtype, make):
    """This thread's array ``name`` if it has that shape and dtype, else a new one from ``make``, kept."""
    store = _store()
    arr = store.get(name)
    if arr is None or arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
        store.pop(name, None)
        arr = _keep(store, name, make(shape, dtype=dtype))
    return arr


def scratch(name, shape, dtype):
    """An uninitialised array for internal use (aligned, ``empty``), reused by the next call from this thread."""
    return _kept(name, shape, dtype, empty)


def at_least(name, count, dtype):
    """A 1-d array of ``count`` numbers for internal use, a view of this thread's buffer ``name``,
    which grows to the largest count asked for and is reused by every later call (calls that
    alternate between sizes share it)."""
    store = _store()
    buf = store.get(name)
    if buf is None or buf.shape[0] < count or buf.dtype != np.dtype(dtype):
        store.pop(name, None)
        buf = _keep(store, name, empty(count, dtype))
    return buf[:count]


def ones(shape, dtype):
    """An array of ones for internal use, which no one writes (the mask of a call given none): made and
    filled once, then the same array for every call from this thread with that shape and dtype. A fresh
    one took some 60 us inside a B = 1, T = 1000, o = 32 gradient call (256 KB in float64, ad hoc)."""
    return _kept("ones", shape, dtype, np.ones)


def _results():
    pool = getattr(_local, "results", None)
    if pool is None:
        pool = _local.results = collections.OrderedDict()
    return pool


def result(shape, dtype):
    """An uninitialised C-contiguous array for a call to hand to its caller (a weight gradient, dL/dx): a new one,
    or, from RESULT_MIN_BYTES up, one of that shape and dtype that this thread handed out before and that nothing
    refers to any more: not the caller, nor a view, a memoryview or a tensor over its memory (CPython's reference
    count, the rule by which NumPy itself gives the memory back: what could use this array again could as well
    have received its memory from the allocator).

    A large new array is new pages: the kernel maps and zeroes each one at its first write, and for arrays of
    4 MiB or more (which NumPy advises into huge pages) may first compact memory to find a huge page. In a
    float32 LSTM training step (n=512, B=1, T=100) right after torch.nn's own step, the weight gradients
    (dW_hh: 4 MiB) took 480-510 page faults a call and 5.8-6.0 ms instead of 0.8 in about half the calls
    (2 cores, KVM; ``bench/results/2026-11-29-result-pages.md``). A loop that drops each step's gradients before the
    next call gets the same memory back; one that holds them until the call returns (``loss, grads = bptt(...)``
    in a loop) alternates between two arrays."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = dtype.itemsize * math.prod(shape)
    if not RECYCLE or nbytes < RESULT_MIN_BYTES or nbytes * RESULTS_PER_SHAPE > RESULT_KEEP_BYTES:
        return np.empty(shape, dtype)
    pool = _results()
    key = (shape, dtype.str)
    kept = pool.get(key)
    if kept is None:
        kept = pool[key] = []
    else:
        pool.move_to_end(key)
        for k in range(len(kept)):
            if sys.getrefcount(kept[k]) == 2:      # the list's reference and the call's argument: no other
                return kept[k]
    arr = np.empty(shape, dtype)
    kept.append(arr)
    if len(kept) > RESULTS_PER_SHAPE:
        del kept[0]
    total = sum(a.nbytes for arrays in pool.values() for a in arrays)
    while total > RESULT_KEEP_BYTES:
        _, dropped = pool.popitem(last=False)
        total -= sum(a.nbytes for a in dropped)
    return arr
