"""Row products beside a batch of one's backward sweep (``fastrnn.runtime.overlap``): the same
gradients as the products after the sweep, errors raised in the caller, and the rule for when it runs."""
import multiprocessing
import os
import threading
import time

import numba
import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from fastrnn.cells import base
from fastrnn.kernels._sync import load_acquire, store_release
from fastrnn.kernels.bptt import DIRECT
from fastrnn.runtime import blas, dispatch, measured, overlap

from conftest import assert_grads_close, make_problem

two_threads = pytest.mark.skipif(dispatch.max_threads() < 2, reason="Numba runs one thread here: the "
                                 "products are taken beside the sweep only by a call that holds two")

T = 96


_RUNNABLE = overlap._runnable     # the machine's own count, before the fixture below stands in for it


@pytest.fixture(autouse=True)
def free_cpu(monkeypatch):
    """A CPU free for the helper whatever else runs on the machine meanwhile (``overlap._idle_core``): the
    tests below check what the helper does, and a busy moment would leave the products after the sweep."""
    monkeypatch.setattr(overlap, "_runnable", lambda: 1)
    monkeypatch.setattr(measured, "BY_CLOCK", False)    # the rule's answer every time (``test_measured`` the clock's)


@pytest.fixture
def short_segments(monkeypatch):
    """Segments of 16 steps whatever their work, whatever the weights: a small problem is then cut into six."""
    monkeypatch.setattr(overlap, "SEGMENT_ROWS", 16)
    monkeypatch.setattr(overlap, "SEGMENT_WORK", 1)
    monkeypatch.setattr(overlap, "SWEEP_MIN_BYTES", 0)


@pytest.fixture
def spy(monkeypatch):
    """The (segments, whether beside) of every ``overlap.run`` call, and the segments its products took."""
    seen = {"beside": [], "parts": []}
    run = overlap.run

    def spied(sweep, products, T_, threads, beside):
        seen["beside"].append(bool(beside))

        def counted(s0, s1, threads_, add):
            seen["parts"].append((s0, s1, threads_, add))
            products(s0, s1, threads_, add)
        counted.flops = products.flops
        return run(sweep, counted, T_, threads, beside)
    monkeypatch.setattr(overlap, "run", spied)
    return seen


def _problem(cell, dtype):
    return make_problem(3, T=T, B=1, m=3, n=8, o=2, dtype=dtype, readout="linear", cell=cell)


@pytest.fixture(params=["rule", "direct"])
def layout(request, monkeypatch):
    """The weight gradients as the rule takes them for these small problems, or written in place from the tiles
    (``kernels.bptt.DIRECT``) at every size, whole or a segment at a time."""
    if request.param == "direct":
        monkeypatch.setattr(blas, "_wider", True)
        monkeypatch.setattr(base, "DIRECT_MIN_BYTES", 0)
    return request.param


@two_threads
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstmp"])
def test_bptt_with_the_products_beside_the_sweep_matches_the_reference_and_one_thread(cell, dtype, short_segments,
                                                                                     spy, layout):
    net, x, d, mask, h0 = _problem(cell, dtype)
    if layout == "direct":
        assert base.weight_grad_layout(dtype, 8, 3, 8, T)[1] == DIRECT
    with fastrnn.threads(2):
        L, grads = fastrnn.bptt(net, x, d, mask, h0=h0)
    assert spy["beside"] == [True]
    assert [p[:2] for p in spy["parts"]] == overlap.segments(T, 10**9) == [(80, 96), (64, 80), (48, 64), (32, 48),
                                                                       (16, 32), (0, 16)]
    assert [p[2:] for p in spy["parts"]] == [(1, False)] + [(1, True)] * 5
    ref = reference.bptt(net, x, d, mask, h0=h0)
    assert_grads_close(grads, ref[1], dtype)
    with fastrnn.threads(1):
        L1, one = fastrnn.bptt(net, x, d, mask, h0=h0)
    assert spy["beside"] == [True, False]
    tol = 1e-13 if dtype == np.float64 else 2e-6
    for name in one.names:
        a, b = getattr(grads, name), getattr(one, name)
        if b is not None:
            assert np.abs(a - b).max() <= tol * np.abs(b).max(), name
    assert L == L1


@two_threads
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstmp"])
def test_a_vjp_with_its_input_gradient_beside_the_sweep_matches_the_one_after_it(cell, short_segments, spy):
    net, x, _, _, _ = _problem(cell, np.float64)
    dh = np.random.default_rng(5).standard_normal((T, 1, 8))
    with fastrnn.threads(2):
        grads, dx, dstate0 = fastrnn.vjp(net, x, dh)
    with fastrnn.threads(1):
        grads1, dx1, dstate01 = fastrnn.vjp(net, x, dh)
    assert spy["beside"] == [True, False]
    np.testing.assert_allclose(dx, dx1, rtol=0, atol=1e-14 * np.abs(dx1).max())
    for name in grads1.names:
        b = getattr(grads1, name)
        if b is not None:
            np.testing.assert_allclose(getattr(grads, name), b, rtol=0, atol=1e-13 * np.abs(b).max(), err_msg=name)
    states = (dstate0, dstate01) if isinstance(dstate0, tuple) else ((dstate0,), (dstate01,))
    assert len(states[0]) == len(states[1])
    for a, b in zip(*states):
        assert np.array_equal(a, b)          # the sweep's own result: the same kernel either way


@two_threads
def test_the_segments_are_summed_in_a_fixed_order_so_repeated_calls_agree_bit_for_bit(short_segments, spy):
    net, x, d, mask, h0 = _problem("lstm", np.float32)
    with fastrnn.threads(2):
        first = fastrnn.bptt(net, x, d, mask, h0=h0)[1]
        for _ in range(5):
            again = fastrnn.bptt(net, x, d, mask, h0=h0)[1]
            for name in first.names:
                if getattr(first, name) is not None:
                    assert np.array_equal(getattr(again, name), getattr(first, name)), name
    assert spy["beside"] == [True] * 6


@two_threads
@pytest.mark.parametrize("truncation", [16, (32, 16)])
def test_truncated_bptt_takes_its_products_after_the_sweep(truncation, short_segments, spy):
    net, x, d, mask, h0 = _problem("rnn", np.float64)
    with fastrnn.threads(2):
        L, grads = fastrnn.bptt(net, x, d, mask, h0=h0, truncation=truncation)
    assert spy["beside"] == [False] and spy["parts"] == [(0, T, 2, False)]
    assert_grads_close(grads, reference.bptt(net, x, d, mask, h0=h0, truncation=truncation)[1], np.float64)


def test_the_rule_asks_for_a_batch_of_one_exact_bptt_two_threads_weights_beyond_l1_and_four_segments(short_segments,
                                                                                                   monkeypatch):
    from fastrnn.kernels import _bptt_sweep
    work = dispatch.Work(1, 64, T, 512)
    assert overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))
    assert not overlap.pays(_bptt_sweep, 1, work, 10**6, (T, T))                 # one thread
    assert not overlap.pays(_bptt_sweep, 2, work._replace(items=2), 10**6, (T, T))   # a batch of two
    assert not overlap.pays(_bptt_sweep, 2, work, 10**6, (16, 16))                # truncated
    assert overlap.pays(_bptt_sweep, 2, work._replace(steps=64), 10**6, (64, 64))     # four segments of 16 steps
    assert not overlap.pays(_bptt_sweep, 2, work._replace(steps=63), 10**6, (63, 63))  # three
    monkeypatch.setattr(overlap, "SWEEP_MIN_BYTES", 1024)
    assert not overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))                 # weights that sit in L1
    assert overlap.pays(_bptt_sweep, 2, work._replace(weight_bytes=1024), 10**6, (T, T))
    # the step products cut into parts on both threads: no thread left for the products
    assert not overlap.pays(_bptt_sweep, 2, work._replace(weight_bytes=2 * dispatch.SPLIT_BYTES), 10**6, (T, T))


def test_on_many_threads_the_products_stay_after_the_sweep_where_all_threads_would_take_them_faster():
    from fastrnn.kernels import _bptt_sweep
    work = dispatch.Work(1, 128 * 128, 1000, 128 * 128 * 8)
    small, large = 10**7, 1000 * 128 * 136                      # below and above PAYS["rows"] in all
    assert small * 2 < dispatch.PAYS["rows"][1] <= large * 2
    assert overlap.pays(_bptt_sweep, 2, work, large, (1000, 1000))      # 7 segments against 2 threads
    assert overlap.pays(_bptt_sweep, 64, work, small, (1000, 1000))     # one thread would take them anyway
    assert not overlap.pays(_bptt_sweep, 64, work, large, (1000, 1000))  # a seventh serially against 1/64th


def test_segments_have_their_least_steps_and_work_and_come_latest_first():
    assert overlap.segments(2000, 10**9) == [(1750, 2000), (1500, 1750), (1250, 1500), (1000, 1250), (750, 1000),
                                             (500, 750), (250, 500), (0, 250)]             # SEGMENTS at most
    assert overlap.segments(1000, 17.4e6) == [(857, 1000), (714, 857), (571, 714), (428, 571), (285, 428),
                                              (142, 285), (0, 142)]
    assert overlap.segments(300, 10**9) == [(150, 300), (0, 150)]           # 128 steps or more each
    assert overlap.segments(1000, 3.5e6) == [(666, 1000), (333, 666), (0, 333)]   # 1e6 multiply-adds or more each
    assert overlap.segments(100, 10**9) == [(0, 100)]


def test_an_error_in_the_products_is_raised_in_the_caller_and_the_helper_serves_the_next_call():
    done = []

    def sweep(progress):
        for s in range(255, -1, -1):
            progress[0] = s

    def failing(s0, s1, threads, add):
        if s0 < 128:
            raise ValueError("from the helper")
        done.append((s0, s1))
    failing.flops = 10**9
    with pytest.raises(ValueError, match="from the helper"):
        overlap.run(sweep, failing, 256, 2, True)
    assert done == [(128, 256)]

    def fine(s0, s1, threads, add):
        done.append((s0, s1))
    fine.flops = 10**9
    done.clear()
    overlap.run(sweep, fine, 300, 2, True)
    assert done == [(150, 300), (0, 150)]


def test_an_error_in_the_sweep_stops_the_helper_before_it_takes_unfinished_rows():
    taken = []

    def sweep(progress):
        progress[0] = 200                  # rows 200: final, then the sweep fails
        raise RuntimeError("the sweep failed")

    def products(s0, s1, threads, add):
        taken.append((s0, s1))
    products.flops = 10**9
    with pytest.raises(RuntimeError, match="the sweep failed"):
        overlap.run(sweep, products, 1000, 2, True)
    assert all(s0 >= 200 for s0, _ in taken)     # never a segment the sweep had not passed

    def whole(progress):
        progress[0] = 0
    taken.clear()
    overlap.run(whole, products, 1000, 2, True)
    assert taken == overlap.segments(1000, 10**9)


def test_a_forked_child_starts_its_own_helper(monkeypatch):
    first = overlap._helper()
    assert overlap._helper() is first
    monkeypatch.setattr(first, "pid", -1)         # as a forked child sees its parent's
    second = overlap._helper()
    assert second is not first and second.thread.is_alive()
    taken = []

    def products(s0, s1, threads, add):
        taken.append((s0, s1))
    products.flops = 10**9
    overlap.run(lambda progress: progress.__setitem__(0, 0), products, 300, 2, True)
    assert taken == [(150, 300), (0, 150)]


@two_threads
def test_the_helper_takes_only_rows_the_sweep_has_finished(spy):
    """A sweep long against its row products (n=128, T=2048, the helper several times faster), after a call
    on other data has left other deltas in the scratch rows: a helper that read a segment before the sweep had
    passed it would sum those."""
    net, x, d, mask, h0 = make_problem(4, T=2048, B=1, m=3, n=128, o=2, readout="linear")
    other = make_problem(5, T=2048, B=1, m=3, n=128, o=2, readout="linear")
    with fastrnn.threads(1):
        expected = fastrnn.bptt(net, x, d, mask, h0=h0)[1]
    for _ in range(3):
        with fastrnn.threads(2):
            fastrnn.bptt(*other[:4], h0=other[4])
            grads = fastrnn.bptt(net, x, d, mask, h0=h0)[1]
        for name in expected.names:
            b = getattr(expected, name)
            if b is not None:
                assert np.abs(getattr(grads, name) - b).max() <= 1e-12 * np.abs(b).max(), name
    assert spy["beside"] == [False] + [True] * 6


def test_beside_a_spinning_pool_the_helper_runs_only_where_a_parallel_kernel_would(short_segments):
    from fastrnn.kernels import _bptt_sweep
    work = dispatch.Work(1, 64, T, 512)
    quieted = []
    with dispatch.beside(2, spinning=True):
        assert not overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))      # would share a core with a spinning thread
    with dispatch.beside(2, spinning=True, quiet=lambda: quieted.append(1)):
        assert not overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))      # too short to put them to sleep
        assert quieted == []
        assert overlap.pays(_bptt_sweep, 2, work, dispatch.QUIET_MIN_WORK, (T, T))
        assert quieted == [1]
        assert overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))          # asleep for the rest of the block
    assert quieted == [1]
    with dispatch.beside(2, spinning=False):
        assert overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))


def _child_call_beside(seed):
    """In a forked child: a call that takes its products beside the sweep, against the reference and whether
    the helper ran (a child of a process whose helper had run: the thread is not there)."""
    overlap.SEGMENT_ROWS, overlap.SEGMENT_WORK, overlap.SWEEP_MIN_BYTES = 16, 1, 0
    net, x, d, mask, h0 = make_problem(seed, T=T, B=1, m=3, n=8, o=2, readout="linear")
    with fastrnn.threads(2):
        L, g = fastrnn.bptt(net, x, d, mask, h0=h0)
    ref = reference.bptt(net, x, d, mask, h0=h0)[1]
    helper = overlap._HELPER
    return (float(np.max(np.abs(g.W_rec - ref.W_rec)) / np.max(np.abs(ref.W_rec))),
            helper is not None and helper.pid == os.getpid() and helper.thread.is_alive())


@two_threads
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no fork")
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")   # JAX, if an earlier test loaded it
@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_forked_children_take_their_products_beside_the_sweep_on_their_own_helper(short_segments, spy):
    assert _child_call_beside(7)[1]                  # the parent's helper runs first
    assert spy["beside"] == [True]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map_async(_child_call_beside, [8, 9, 10]).get(timeout=120)
    assert all(err <= 1e-10 and own for err, own in results), results


def test_a_long_wait_yields_the_cpu_between_polls_and_still_ends(monkeypatch):
    import time
    naps = []
    monkeypatch.setattr(overlap, "_yield", lambda: naps.append(1))
    taken = []

    def slow_sweep(progress):
        time.sleep(0.03)                 # 30 ms before the first rows are final
        progress[0] = 0

    def products(s0, s1, threads, add):
        taken.append((s0, s1))
    products.flops = 10**9
    overlap.run(slow_sweep, products, 300, 2, True)
    assert taken == [(150, 300), (0, 150)]
    assert len(naps) > 10          # 30 ms of waiting: far more than PATIENCE rounds of polls


def test_with_every_cpu_busy_the_products_stay_after_the_sweep(short_segments, monkeypatch):
    from fastrnn.kernels import _bptt_sweep
    work = dispatch.Work(1, 64, T, 512)
    cpus = os.cpu_count()
    monkeypatch.setattr(overlap, "_runnable", lambda: cpus)            # the caller and cpus - 1 others
    monkeypatch.setattr(overlap, "_own_running", lambda: 0)            # none of them this process's
    assert not overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))
    monkeypatch.setattr(overlap, "_runnable", lambda: cpus - 1)
    assert overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))
    monkeypatch.setattr(overlap, "_runnable", lambda: None)            # no count to read: assumed free
    assert overlap.pays(_bptt_sweep, 2, work, 10**6, (T, T))


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="no /proc/loadavg (not Linux): nothing to read")
def test_the_runnable_count_counts_the_calling_thread():
    assert 1 <= _RUNNABLE() <= 10**6


def test_segments_are_claimed_from_both_ends_until_they_meet():
    job = overlap._Job(None, overlap.segments(1000, 10**9), None)
    assert len(job.parts) == 7
    first, last = job.claim, lambda: job.claim(last=True)
    assert [first(), last(), first(), last(), last()] == [0, 6, 1, 5, 4]
    assert [first(), last(), first(), last()] == [2, 3, None, None]


class _Sums:
    """Row products that record who took each segment: the helper through ``__call__`` (made to wait
    ``hold`` seconds before each), the calling thread through ``aside``; ``merge`` records the order."""

    def __init__(self, hold):
        self.flops, self.hold, self.log = 10**9, hold, []

    def __call__(self, s0, s1, threads, add):
        time.sleep(self.hold)
        self.log.append(("helper", s0, add))

    def aside(self, s0, s1):
        self.log.append(("caller", s0))
        return s0

    def merge(self, sums, add):
        self.log.append(("merge", sums, add))


def test_once_the_sweep_ends_the_caller_takes_the_segments_the_helper_has_not_begun_and_adds_them_in_order():
    sums = _Sums(hold=0.05)

    def sweep(progress):
        time.sleep(0.02)                # the helper has claimed the first segment and waits on it
        progress[0] = 0
    overlap.run(sweep, sums, 1000, 2, True)
    bounds = [s0 for s0, _ in overlap.segments(1000, 10**9)]       # 857, 714, ..., 0: latest first
    helper = [entry for entry in sums.log if entry[0] == "helper"]
    caller = [entry[1] for entry in sums.log if entry[0] == "caller"]
    merged = [entry[1:] for entry in sums.log if entry[0] == "merge"]
    assert len(helper) == 1 and len(caller) == 6     # 50 ms for its first segment: the caller takes the rest
    assert [e[1:] for e in helper] == [(bounds[k], k > 0) for k in range(len(helper))]
    assert caller == bounds[len(helper):][::-1]                     # earliest steps first
    assert merged == [(s0, True) for s0 in bounds[len(helper):]]    # after the helper's, in the segments' order
    assert sums.log.index(("merge", caller[-1], True)) > sums.log.index(helper[-1])


def test_a_caller_that_takes_every_segment_writes_the_first_and_adds_the_rest():
    sums = _Sums(hold=0)
    helper = overlap._helper()
    started = threading.Event()
    release = threading.Event()

    def busy():                         # holds the helper until the call below has taken every segment
        started.set()
        release.wait(10)
    helper.submit(busy)
    assert started.wait(10)

    def sweep(progress):
        progress[0] = 0
    try:
        timer = threading.Timer(0.2, release.set)
        timer.start()
        overlap.run(sweep, sums, 300, 2, True)
    finally:
        release.set()
    assert [e for e in sums.log if e[0] == "helper"] == []
    assert [e[1:] for e in sums.log if e[0] == "merge"] == [(150, False), (0, True)]


@two_threads
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_segments_the_caller_takes_give_the_same_gradients_bit_for_bit(cell, short_segments, monkeypatch, layout):
    """A helper held back (each segment 20 ms late) leaves most segments to the calling thread; the
    gradients equal those of a call whose helper took every segment, and the reference's."""
    net, x, d, mask, h0 = _problem(cell, np.float64)
    monkeypatch.delattr(base.RowProducts, "aside")                 # the helper takes every segment
    with fastrnn.threads(2):
        expected = fastrnn.bptt(net, x, d, mask, h0=h0)[1]
    monkeypatch.undo()                                  # every patch goes: the fixtures' come back below
    if layout == "direct":
        monkeypatch.setattr(blas, "_wider", True)
        monkeypatch.setattr(base, "DIRECT_MIN_BYTES", 0)
    monkeypatch.setattr(overlap, "_runnable", lambda: 1)
    monkeypatch.setattr(measured, "BY_CLOCK", False)    # (else the first call's clock may keep the helper off)
    monkeypatch.setattr(overlap, "SEGMENT_ROWS", 16)
    monkeypatch.setattr(overlap, "SEGMENT_WORK", 1)
    monkeypatch.setattr(overlap, "SWEEP_MIN_BYTES", 0)
    taken = []
    call, aside = base.RowProducts.__call__, base.RowProducts.aside

    def late(self, s0, s1, threads, add):
        time.sleep(0.02)
        return call(self, s0, s1, threads, add)

    def counted(self, s0, s1):
        taken.append(s0)
        return aside(self, s0, s1)
    monkeypatch.setattr(base.RowProducts, "__call__", late)
    monkeypatch.setattr(base.RowProducts, "aside", counted)
    with fastrnn.threads(2):
        grads = fastrnn.bptt(net, x, d, mask, h0=h0)[1]
    assert len(taken) >= 3
    for name in expected.names:
        if getattr(expected, name) is not None:
            assert np.array_equal(getattr(grads, name), getattr(expected, name)), name
    assert_grads_close(grads, reference.bptt(net, x, d, mask, h0=h0)[1], np.float64)


def test_an_error_in_a_segment_the_caller_takes_is_raised_once_the_helper_has_stopped():
    sums = _Sums(hold=0.05)

    def failing(s0, s1):
        raise ValueError("from the caller's segment")
    sums.aside = failing

    def sweep(progress):
        time.sleep(0.02)
        progress[0] = 0
    with pytest.raises(ValueError, match="the caller's segment"):
        overlap.run(sweep, sums, 1000, 2, True)
    assert [e[0] for e in sums.log] in ([], ["helper"])   # at most the segment it had claimed: the call was abandoned
    fine = _Sums(hold=0)
    overlap.run(lambda progress: progress.__setitem__(0, 0), fine, 300, 2, True)
    assert sorted(e[1] for e in fine.log if e[0] != "merge") == [0, 150]


def test_this_processs_pools_running_threads_do_not_hold_a_cpu(monkeypatch):
    """``_idle_core``: a machine that reads busy after a yield is free for a long call where the threads that
    make it busy are this process's pools' (Numba's worker spinning after a parallel region gives its CPU way),
    busy for a short call and where they are not; and those are the process's threads in state R that Python did not start: a thread running
    compiled code started by Python (another fastrnn call's) still holds its CPU, one started outside Python
    does not."""
    cpus = os.cpu_count()
    monkeypatch.setattr(overlap, "_runnable", lambda: cpus)
    monkeypatch.setattr(overlap, "_own_running", lambda: 1)
    assert overlap._idle_core(beside_own_pools=True)
    assert not overlap._idle_core()                                     # a short call waits for them
    monkeypatch.setattr(overlap, "_own_running", lambda: 0)
    assert not overlap._idle_core(beside_own_pools=True)
    monkeypatch.undo()
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc/self/task (not Linux): nothing to read")
    import ctypes
    spin, release = _spin_until_set, _set
    spin(np.ones(1, dtype=np.int64))                                    # compiled before the counts
    release(np.zeros(1, dtype=np.int64))

    def counts(start, stop):
        flag = np.zeros(1, dtype=np.int64)
        before = overlap._own_running()
        handle = start(flag)
        try:
            time.sleep(0.01)
            return before, [overlap._own_running() for _ in range(20)]
        finally:
            release(flag)
            stop(handle)

    def python_thread(flag):
        thread = threading.Thread(target=spin, args=(flag,))            # running, without the GIL
        thread.start()
        return thread
    before, seen = counts(python_thread, threading.Thread.join)
    assert max(seen) <= before                                          # Python's own: not a pool's
    try:
        libc = ctypes.CDLL(None)
        create, join = libc.pthread_create, libc.pthread_join
    except (OSError, AttributeError):
        pytest.skip("no pthread_create to start a thread outside Python")
    entry = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
    loop = numba.cfunc(numba.types.intp(numba.types.CPointer(numba.types.int64)), nogil=True)(_spin_on_pointer)
    keep = []

    def outside(flag):
        tid = ctypes.c_ulong()
        keep.append(flag)
        assert create(ctypes.byref(tid), None, ctypes.cast(loop.address, entry), flag.ctypes.data_as(ctypes.c_void_p)) == 0
        return tid

    before, seen = counts(outside, lambda tid: join(tid, None))
    assert min(seen) >= 1 and max(seen) <= before + 1


@numba.njit(nogil=True)
def _spin_until_set(flag):
    while load_acquire(flag, 0) == 0:
        pass


@numba.njit
def _set(flag):
    store_release(flag, 0, 1)


def _spin_on_pointer(pointer):
    """The body of a thread started outside Python (pthread_create): spins until its flag is set."""
    _spin_until_set(numba.carray(pointer, (1,)))
    return 0
