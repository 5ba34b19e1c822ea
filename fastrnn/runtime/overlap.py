"""Row products taken beside a batch of one's backward sweep, on a thread that would otherwise idle.

At a batch of one the backward sweep is a chain of matrix-vector products, one step after
another on one thread, and the products over all T rows that follow it (the weight gradients, and
dL/dx for a vjp) wait for it to end. Yet the deltas of step s are final as soon as the sweep has
passed it: in exact BPTT the sweep publishes how far it has come (``kernels._sync``, the sweep's
``progress`` argument), and a helper thread takes the row products segment by segment, latest
steps first, while the sweep goes on; only the last segment's products remain after the sweep.

``run`` does it where it pays: exact BPTT (one sweep from the last step to the first), a batch of
one whose sweep runs on one thread (its products not split over threads, ``dispatch.parts``), a call
holding at least two threads, beside another framework's spinning pool (``dispatch.beside``) only as a
parallel kernel would run there (``dispatch.spins_beside``: torch's threads put to sleep first), recurrent
weights of ``SWEEP_MIN_BYTES`` or more (smaller ones sit in L1 and the sweep's products run about as
fast as the helper's, which then lags), and long enough for ``MIN_SEGMENTS`` segments (``segments``:
each of ``SEGMENT_ROWS`` steps and ``SEGMENT_WORK`` multiply-adds or more; shorter products run far
below the BLAS's rate; fewer segments leave too much after the sweep), and where the products of the
last segment, on one thread after the sweep, take no longer than all of them on the call's threads
would: more segments than threads (on 2 cores, always), or products the parallel kernel would leave on
one thread anyway (under ``PAYS["rows"]``: 1.6·10⁷ multiply-adds). On 64 threads the simple cell at n=128,
T=1000 (1.7·10⁷, seven segments) keeps its products after the sweep: a seventh of them on one thread would
take longer than a 64th each on all. Last, a CPU must be free for the helper (``_idle_core``). Elsewhere
it runs the sweep, then the products on the call's threads, as before.

Measured (2-core AMD EPYC, Zen 3; ``python bench/overlap.py``: whole ``fastrnn.bptt`` calls at B = 1,
T = 1000, on and off interleaved in one process, four runs, bench/results/2026-11-27-row-products-beside-
the-sweep.md): 1.03-1.13x on every row the rule takes (all four cells, n = 64-256, both dtypes). Before
the rules that now leave them alone: float64 n=64 (32 KB of weights) 0.96x, T=300 (two segments)
0.97-1.02x, T=100 (segments of 12-17 steps) float32 n=256 0.78x, and with a busy process on each core
a float32 LSTM n=128 0.82x.

Beside the sweep the helper's segments run slower than alone (0.3-0.45 ms against 0.15-0.23 a segment at
n = 128, float64, ad hoc timelines; not from sharing a core: their rows, which the other core has just
written, are the likely cause, not proven), so it often still has one or two segments to take when the
sweep ends. The calling thread then takes those it has not begun, from the earliest steps
back, into sums of its own, added after the helper's in the segments' order (``python bench/overlap.py``:
1.00-1.04x against the helper alone over the rows that cut segments, 2026-11-28).

The helper is one thread per process, started on first use (and again in a forked child); one call
at a time uses it, the call that holds Numba's pool (``dispatch.workers``). The segments' products are
added in a fixed order whichever thread took them, so a call's results do not depend on timing; they
differ from the one-product sums only by rounding.
"""
import os
import queue
import threading
import time

import numpy as np

from ..kernels import _weight_grads
from ..kernels._sync import publish, wait_at_most
from . import dispatch, measured

SEGMENT_WORK = 1_000_000  # multiply-adds of the row products in a segment, at least
SEGMENT_ROWS = 128        # steps in a segment, at least: the products' inner dimension (shorter ones run slowly)
SEGMENTS = 8              # segments of the time axis at most; the products of the last follow the sweep
MIN_SEGMENTS = 4          # fewer leave too much of the products after the sweep
SWEEP_MIN_BYTES = 64 << 10  # recurrent weights below this sit in L1 and the sweep runs as fast as the products
POLLS = 200_000           # polls of a counter between looks at whether the call was abandoned (60 us here)
PATIENCE = 2              # rounds of POLLS (about 0.1 ms) before a waiting thread yields its CPU between rounds


def pays(kernel, threads, work, row_flops, truncation):
    """Whether ``run`` takes the row products beside ``kernel``'s sweep (see the module's notes):
    ``work`` is the sweep's (``dispatch.Work``), ``row_flops`` the row products' multiply-adds,
    ``truncation`` the sweep's (h, h')."""
    if not (work.items == 1 and threads >= 2 and truncation[1] >= work.steps and work.weight_bytes >= SWEEP_MIN_BYTES):
        return False
    count = len(segments(work.steps, row_flops))
    return (count >= MIN_SEGMENTS and dispatch.parts(kernel, threads, work) == 1
            and (count > threads or dispatch.plan(_weight_grads, threads, dispatch.Work(work.steps, 2 * row_flops, 1)) == 1)
            and not dispatch.spins_beside(work.flops_per_step * work.steps + row_flops)
            and _idle_core())


CHOOSER = measured.Chooser()    # ``beside``'s measured choice (``runtime.measured``), by shape


def beside(kernel, threads, work, row_flops, truncation):
    """Whether ``run`` takes the row products beside this sweep: ``pays``' rule, then the choice by the clock
    (``runtime.measured``: whether the products beside the sweep or after it have lately been faster at this
    shape, T = 1000 float64 n = 128 right after a JAX call 3.02 against 2.59 ms). A ``measured.Choice``; ``run``
    records its time."""
    if not pays(kernel, threads, work, row_flops, truncation):
        return measured.NO
    key = (getattr(kernel, "__name__", None), int(work.steps).bit_length(), work.weight_bytes, row_flops)
    return CHOOSER.choose(key, work.steps)


def _idle_core(beside_own_pools=False):
    """Whether a CPU is free for the helper now: fewer threads running or ready to run on the whole
    machine than it has CPUs, the calling thread included (the kernel's count in /proc/loadavg, Linux;
    where it cannot be read, assumed). With a busy process on each of the 2 cores here, the products
    beside the sweep made a float32 LSTM n=128, T=1000 call 0.82-0.83x (the helper took the sweep's
    share of a core), after them 1.00. A machine count: a process held to a few CPUs of many is not
    told whether its own are busy.

    A count of threads that are only passing through (another pool's going to sleep or waking, after
    torch's operations) is read again once after yielding the CPU: in a training step beside torch.nn's
    (float32 LSTM n=512, B=1), the first reading said 2-4 in 6 of 10 calls and one made microseconds later
    said 1 in 5 of those 6 (ad hoc, 2 cores, KVM). A machine that stays busy reads busy twice.

    ``beside_own_pools``: this process's pools' threads running then are not counted (``_own_running``: Numba's
    worker spinning after the last call's parallel region, which gives its CPU way as it spins): for a batch of
    one's pair and a batch cut by units (``runtime.pair``), whose measured choice (``runtime.measured``) sees what
    sharing a CPU with them costs. Back-to-back float32 LSTM n=512 B=1 calls, alone in a process, took 10.6 ms with
    the pair refused in 98 of 100 calls, 6.2-6.9 with it in all; the simple cell at n=128, T=1000 (float64), whose
    pair gains little, ran its forward pass 1.2-1.5x slower beside the spinning worker (``python
    bench/pair_forward.py 60 --n 128``, the pair forced; ad hoc, 2 cores): there the clock chooses one thread.
    The machine's count and the threads' states are read at different instants, and the worker going to sleep
    in between left the count with it and the states without: it is taken off if either reading, before the
    second count or after it, finds it running. Float64 LSTM n=512, B=2 calls back to back: a batch cut by units
    refused in 16 of 30 calls with the states read after the count alone, in none of 30 (and 1 of 30 in a second
    run) so; 17.2 ms a call against 19.5-21 refused (ad hoc, 2 cores, KVM)."""
    count = _runnable()
    if count is not None and count >= _cpus() and hasattr(os, "sched_yield"):
        os.sched_yield()
        own = _own_running() if beside_own_pools else 0
        count = _runnable()
        if beside_own_pools and count is not None and count >= _cpus():
            count -= max(own, _own_running())
    return count is None or count < _cpus()


_TASKS = {}          # pid -> {thread id: the open /proc/self/task/<id>/stat}


def _own_running():
    """This process's threads running or ready to run now that Python did not start (Linux: their state in
    /proc/self/task; 0 where it cannot be read): the pools of Numba, the BLAS and OpenMP. ``_idle_core`` does not
    count them as holding a CPU: after a call's last parallel region Numba's TBB worker spins for some
    0.65-0.85 ms before it sleeps, yielding its CPU as it spins, and the next call's check read the machine busy
    in 10 of 10 back-to-back float32 LSTM n=512 B=1 calls (the count 2 for 0.65-0.85 ms after each, ad hoc, 2
    cores): the pair ran in 2 of 100 calls. Python's own threads still count (another thread's fastrnn call, a
    data loader), and another framework's pool spinning in the process is ``dispatch.spins_beside``'s to refuse
    or put to sleep first."""
    try:
        python = {t.native_id for t in threading.enumerate()}
        fds = _TASKS.setdefault(os.getpid(), {})
        alive = set()
        running = 0
        for name in os.listdir("/proc/self/task"):
            tid = int(name)
            alive.add(tid)
            if tid in python:
                continue
            stat = _task_stat(fds, tid)
            if stat is not None and stat[stat.rindex(b")") + 2:][:1] == b"R":
                running += 1
        for tid in set(fds) - alive:        # threads gone: their files closed
            os.close(fds.pop(tid))
        return running
    except (OSError, ValueError, AttributeError):
        return 0


def _task_stat(fds, tid):
    """The stat line of this process's thread ``tid`` through a file kept open (a thread that ended and whose id
    came back to a new one: opened again), or None."""
    for _ in range(2):
        fd = fds.get(tid)
        if fd is None:
            try:
                fd = fds[tid] = os.open(f"/proc/self/task/{tid}/stat", os.O_RDONLY)
            except OSError:
                return None
        try:
            return os.pread(fd, 512, 0)
        except OSError:
            os.close(fds.pop(tid))
    return None


_CPUS = {}           # pid -> os.cpu_count() (it reads /sys each time: 20-70 us a call here)


def _cpus():
    cpus = _CPUS.get(os.getpid())
    if cpus is None:
        cpus = _CPUS[os.getpid()] = os.cpu_count() or 1
    return cpus


_LOADAVG = {}        # pid -> the open /proc/loadavg (a read of an open file: 2 us; opened each time, 21)


def _runnable():
    """Threads running or ready to run on the machine now, or None where the count cannot be read."""
    try:
        fd = _LOADAVG.get(os.getpid())
        if fd is None:
            fd = _LOADAVG[os.getpid()] = os.open("/proc/loadavg", os.O_RDONLY)
        return int(os.pread(fd, 128, 0).split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def segments(T, row_flops):
    """The time axis of a batch of one cut into segments (s0, s1), latest first (the order in which a
    sweep finishes them): at most ``SEGMENTS``, each of ``SEGMENT_ROWS`` steps and ``SEGMENT_WORK`` of
    the ``row_flops`` or more."""
    count = max(1, min(SEGMENTS, T // SEGMENT_ROWS, int(row_flops // SEGMENT_WORK)))
    bounds = [T * k // count for k in range(count + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(count - 1, -1, -1)]


def run(sweep, products, T, threads, beside):
    """Run ``sweep(progress)``, the kernel call, and ``products(s0, s1, threads, add)``, which takes
    the row products over steps s0:s1 on ``threads`` threads, writing its results (``add`` False) or
    adding to them (``products.flops``: its multiply-adds over all steps). With ``beside`` (``pays``),
    the products of each segment run on the helper thread on one thread each as soon as the sweep has
    published them, the first writing and the rest adding; once the sweep has ended, the calling thread
    takes the segments the helper has not begun, earliest steps first, where ``products`` can hold them
    apart (``products.aside(s0, s1)``, added in by ``products.merge(sums, add)`` after the helper's, in the
    segments' order: the sums are the same whichever thread took a segment);
    else one call over all steps after the sweep. An exception in either is raised here, once both
    have stopped. ``beside`` may be a ``measured.Choice`` (``beside``), whose time is recorded when both have
    ended; where the clock chose the products after the sweep, they run on the calling thread alone (the way
    it measures against the helper: what slows the helper, another pool's spinning threads, slows a second
    thread of the products as much)."""
    progress = np.empty(1, dtype=np.int64)      # (np.full: 1-2 us a call)
    progress[0] = T
    if not beside:
        sweep(progress)
        alone = isinstance(beside, measured.Choice) and beside.by_clock   # the clock's other way: one thread
        products(0, T, 1 if alone else threads, False)
        _done(beside)
        return
    job = _Job(products, segments(T, products.flops), progress)
    _helper().submit(job)
    mine = []
    try:
        sweep(progress)
        publish(progress, 0)      # every row final, whatever the kernel published
        if hasattr(products, "aside"):
            k = job.claim(last=True)
            while k is not None:
                mine.append((k, products.aside(*job.parts[k])))
                k = job.claim(last=True)
        _wait(job.left, 0, lambda: False)               # polled, not a futex wake-up (some 50 us here)
    except BaseException:         # the sweep failed, or an interrupt: the helper stops after its segment
        job.abandoned = True
        publish(progress, -1)     # ends the helper's wait: it then sees the call abandoned
        job.done.wait()
        raise
    job.done.wait()
    if job.error is not None:
        raise job.error
    for k, sums in reversed(mine):                      # claimed latest segment first: added in their order
        products.merge(sums, k > 0)
    _done(beside)


def _done(choice):
    if isinstance(choice, measured.Choice):
        choice.done()


def _yield():
    """Give the CPU to another thread that is ready to run, if any (at once where none is). Not a
    sleep: ``time.sleep(50e-6)`` took 150 us here, which would follow the sweep's last rows."""
    if hasattr(os, "sched_yield"):
        os.sched_yield()
    else:
        time.sleep(0)


def _wait(counter, target, abandoned):
    """Wait until counter[0] <= target (whether it came, False once ``abandoned()``): polled without the
    GIL, then, after ``PATIENCE`` rounds, yielding the CPU between rounds, so that a long wait on a
    machine that has become busy does not hold a core the other thread or another process could use."""
    rounds = 0
    while not wait_at_most(counter, target, POLLS):
        if abandoned():
            return False
        rounds += 1
        if rounds > PATIENCE:
            _yield()
    return True


class _Job:
    """The segments of one call, claimed one at a time: the helper's from the first (the latest steps)
    on, the calling thread's, once the sweep has ended, from the last back, until they meet."""

    def __init__(self, products, parts, progress):
        self.products, self.parts, self.progress = products, parts, progress
        self.abandoned = False
        self.error = None
        self.left = np.ones(1, dtype=np.int64)       # 0 once the helper has stopped (``_sync.publish``)
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._first, self._last = 0, len(parts) - 1  # the unclaimed segments

    def claim(self, last=False):
        """The index of an unclaimed segment (the last of them, or the first), or None where none is left."""
        with self._lock:
            if self._first > self._last:
                return None
            if last:
                self._last -= 1
                return self._last + 1
            self._first += 1
            return self._first - 1

    def __call__(self):
        try:
            k = self.claim()
            while k is not None:
                s0, s1 = self.parts[k]
                if not _wait(self.progress, s0, lambda: self.abandoned) or self.abandoned:
                    return
                self.products(s0, s1, 1, k > 0)
                k = self.claim()
        except BaseException as exc:       # raised again by the calling thread
            self.error = exc
        finally:
            publish(self.left, 0)
            self.done.set()


class _Helper:
    def __init__(self):
        self.pid = os.getpid()
        self.jobs = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="fastrnn row products", daemon=True)
        self.thread.start()

    def submit(self, job):
        self.jobs.put(job)

    def _serve(self):
        while True:
            self.jobs.get()()


_HELPER = None
_HELPER_LOCK = threading.Lock()


def _helper():
    """This process's helper thread (a forked child starts its own: the parent's is not there)."""
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None or _HELPER.pid != os.getpid():
            _HELPER = _Helper()
        return _HELPER
