"""A batch of one's forward chain on the calling thread and the helper thread, meeting at every step
(``kernels.chain``: the simple cell).

At B = 1 a step is one matrix-vector product by W_rec, bound by how fast one core reads W_rec from its
cache; the two threads each read half of it (their own caches' half) and exchange their halves of the
state through flags (``kernels._sync``), with no launch of a thread pool at each step.

``pays`` takes it where it paid (``python bench/pair_forward.py``, whole ``fastrnn.bptt`` calls, default
threads, pair / without, 2-core AMD EPYC Zen 3 on KVM, 2026-11-28, ``bench/results/2026-11-28-pair-forward.md``):
a batch of one without teacher forcing, in a call that holds at least two threads, with ``MIN_UNITS`` units or
more (T=1000: float64 n=128 0.89, n=192 0.81, n=256 0.83, n=512 0.90; float32 n=128 0.86, n=256 0.88, n=512
0.91; below, the two threads' meeting costs as much as a step: float64 n=64 1.26, float32 n=64 1.11, n=96
1.02), and either ``MIN_STEPS`` steps or more (the call's fixed cost, mostly the helper's wake-up, is some
0.1-0.2 ms: n=128 T=300 1.02 and 1.15, T=100 1.18 and 1.22) or weights of ``ALWAYS_BYTES`` or more, where
the kernel without it cuts each step's product on Numba's pool (T=300 float64 n=512 0.81, float32 0.83;
T=100 0.95 and 1.00); not beside another framework's spinning pool (``dispatch.spins_beside``), and with a
CPU free for the helper (``overlap._idle_core``).
Whichever thread computes a half of a step, the states are the same (``kernels.chain``); they differ from
the one-thread kernel's only by rounding (another order of the products' sums).

The helper is the process's one helper thread (``overlap``). A call that finds it late does not wait for it:
the calling thread takes the helper's halves until the helper claims one, and at the end, if the helper has
not begun by then, closes the job, so that the helper never touches the call's arrays after it returns.
"""
import threading

import numpy as np

from ..kernels import chain
from ..kernels._sync import claim
from ..kernels._jit import _jit
from . import dispatch, overlap

MIN_UNITS = 128          # fewer units: one thread
MIN_STEPS = 500          # fewer steps: one thread, unless the weights take ALWAYS_BYTES or more
ALWAYS_BYTES = 1 << 20
GRACE = 2000             # polls (some microseconds) a thread waits for the other's claim before it takes the half
LINE = 64                # bytes: the halves are cut on a cache line where the units allow
FORCE = None             # tests: True takes the pair wherever it can run (B = 1, no teacher forcing, 8 units or
                         # more), False never


def _mark(state, value):
    return claim(state, 0, 0, value)


_mark = _jit(_mark)
STARTED, CLOSED = 1, -1


def cut_of(n, itemsize):
    """Where the state's n units are cut into the two halves: on a cache line if n allows, else on four
    units (``kernels.chain``); 0 where n is too small to cut."""
    line = LINE // itemsize
    cut = n // 2 // line * line
    return cut if cut > 0 else n // 2 // 4 * 4


def pays(work, threads, forcing_on, n, itemsize):
    """Whether the simple cell's forward of ``work`` (``dispatch.Work``) runs as a pair (see the module's notes)."""
    if work.items != 1 or forcing_on or cut_of(n, itemsize) == 0:
        return False
    if FORCE is not None:
        return FORCE
    return (threads >= 2 and n >= MIN_UNITS and (work.steps >= MIN_STEPS or work.weight_bytes >= ALWAYS_BYTES)
            and not dispatch.spins_beside(work.flops_per_step * work.steps) and overlap._idle_core())


class _Half:
    """The helper's half: runs ``chain.forward_half`` unless the calling thread closed it first."""

    def __init__(self, args):
        self.args = args
        self.state = np.zeros(1, dtype=np.int64)
        self.result = (0.0, 0)
        self.error = None
        self.done = threading.Event()

    def __call__(self):
        try:
            if _mark(self.state, STARTED):
                self.result = chain.forward_half(*self.args)
        except BaseException as exc:        # raised again by the calling thread
            self.error = exc
        finally:
            self.done.set()

    def close(self):
        """Wait for the helper's half if it has begun; else make sure it never will."""
        if not _mark(self.state, CLOSED):
            self.done.wait()
        if self.error is not None:
            raise self.error


def _read_only(a):
    view = a.view()
    view.flags.writeable = False
    return view


def forward(h, W_rec, b, act):
    """The states h[1:] (T + 1, n; holding the input projection on entry) of the simple cell at B = 1, on
    this thread and the helper. Returns (the sum of the states written, float64; the halves of the other
    thread's that each thread took, a pair of counts)."""
    T, n = h.shape[0] - 1, h.shape[1]
    W_rec, b = _read_only(W_rec), _read_only(b)     # one compiled variant, whether the caller's are writable
    flags = np.zeros(2 * T, dtype=np.int64)
    cut = cut_of(n, h.itemsize)
    half = _Half((h, W_rec, b, act, cut, 1, flags, GRACE))
    overlap._helper().submit(half)
    try:
        total, taken = chain.forward_half(h, W_rec, b, act, cut, 0, flags, GRACE)
    finally:
        half.close()
    return total + half.result[0], (taken, half.result[1])
