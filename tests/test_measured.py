"""The choice by the clock (``fastrnn.runtime.measured``) between one thread and two, and where the package
uses it: the helper beside a batch of one's sweep (``overlap.beside``) and the pair (``pair.forward_pays``, in
``test_pair.py``)."""
import os
import signal
import threading
import time

import pytest

from fastrnn.kernels import _bptt_sweep
from fastrnn.runtime import dispatch, measured, overlap


@pytest.fixture
def probes(monkeypatch):
    monkeypatch.setattr(measured, "PROBE_EVERY", 4)


def _runs(chooser, times, count, key="shape", steps=10**6):
    """``count`` runs of ``key``, each ended as if it took times[together] seconds a step; the ways taken."""
    ways = []
    for _ in range(count):
        choice = chooser.choose(key, steps)
        choice._start = time.perf_counter() - steps * times[choice.together]
        choice.done()
        ways.append(choice.together)
    return ways


def test_both_ways_are_measured_first_then_the_faster_is_kept_with_probes_of_the_other(probes):
    chooser = measured.Chooser()
    assert _runs(chooser, {True: 1e-6, False: 3e-6}, 12) == [True, False, True, False] + [True, True, True, False] * 2
    assert chooser.prefers_together("shape")
    record = chooser.records["shape"]
    assert record.seen == [4, 8]                       # alone, together: the first of each not counted
    assert record.times[1] == pytest.approx([1e-6] * 3, rel=1e-3) and record.times[0] == pytest.approx([3e-6] * 3,
                                                                                                      rel=1e-3)
    assert _runs(chooser, {True: 3e-6, False: 1e-6}, 8) == [True, True, True, True, False, False, False, True]
    assert not chooser.prefers_together("shape")
    assert chooser.prefers_together("another shape")   # nothing measured there


def test_one_way_never_measured_leaves_the_rules_choice():
    chooser = measured.Chooser()
    choice = chooser.choose("shape", 10)
    assert choice.together and chooser.prefers_together("shape")
    choice.done()
    choice.done()                                      # once only
    assert chooser.records["shape"].seen == [0, 1] and chooser.records["shape"].times == ([], [])


def test_without_the_clock_every_answer_is_the_rules_and_nothing_is_recorded(monkeypatch):
    monkeypatch.setattr(measured, "BY_CLOCK", False)
    chooser = measured.Chooser()
    assert _runs(chooser, {True: 5e-6, False: 1e-6}, 6) == [True] * 6
    assert chooser.records == {}
    assert not measured.NO and measured.Choice(True)
    measured.NO.done()                                 # a fixed answer records nothing
    assert chooser.records == {}


def test_a_chooser_keeps_the_newest_max_records_shapes(monkeypatch, probes):
    """Beyond MAX_RECORDS shapes the oldest record goes; its shape, run again, measures anew (both ways first)
    while the others keep their choice."""
    monkeypatch.setattr(measured, "MAX_RECORDS", 2)
    chooser = measured.Chooser()
    fast_alone = {True: 3e-6, False: 1e-6}
    assert _runs(chooser, fast_alone, 5, key="a") == [True, False, True, False, False]
    assert _runs(chooser, fast_alone, 5, key="b")[-1] is False
    assert list(chooser.records) == ["a", "b"]
    assert _runs(chooser, fast_alone, 1, key="c") == [True]
    assert list(chooser.records) == ["b", "c"]
    assert _runs(chooser, fast_alone, 1, key="b") == [False]          # still measured: one thread
    assert _runs(chooser, fast_alone, 2, key="a") == [True, False]    # anew: both ways first
    assert list(chooser.records) == ["c", "a"]


def test_threads_choosing_and_recording_at_once_lose_no_run():
    chooser = measured.Chooser()

    def work():
        for k in range(200):
            choice = chooser.choose(k % 3, 10)
            choice.done()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(chooser.records) == [0, 1, 2]
    assert sum(sum(r.seen) for r in chooser.records.values()) == 800
    assert all(len(r.times[0]) <= measured.KEPT and len(r.times[1]) <= measured.KEPT
               for r in chooser.records.values())


def test_the_helper_beside_a_sweep_is_chosen_by_the_clock_and_run_records_it(monkeypatch, probes):
    """``overlap.beside``: refused where the rule refuses; else alternating at first, and ``run`` records each
    run's time under the sweep's shape whichever way it went, with the products' results the same."""
    monkeypatch.setattr(overlap, "_runnable", lambda: 1)
    monkeypatch.setattr(overlap, "CHOOSER", measured.Chooser())
    T = 1000
    work = dispatch.Work(1, 2 * 128 * 128, T, 128 * 128 * 8)      # 128 KB: beyond L1, one core's sweep
    assert not overlap.beside(_bptt_sweep, 1, work, 10**8, (T, T))        # one thread: the rule says no
    assert overlap.CHOOSER.records == {}
    taken = []

    def products(s0, s1, threads, add):
        taken.append((s0, s1, threads, add))
    products.flops = 10**8
    ways = []
    for _ in range(6):
        taken.clear()
        choice = overlap.beside(_bptt_sweep, 2, work, 10**8, (T, T))
        ways.append(bool(choice))
        overlap.run(lambda progress: progress.__setitem__(0, 0), products, T, 2, choice)
        if choice:                  # the segments on the helper or the caller, one thread each
            assert sorted(p[:2] for p in taken) == sorted(overlap.segments(T, 10**8)) and {p[2] for p in taken} == {1}
        else:                       # after the sweep on the calling thread alone: the way the clock measures
            assert taken == [(0, T, 1, False)]
    assert ways[:4] == [True, False, True, False]
    (record,) = overlap.CHOOSER.records.values()
    assert sum(record.seen) == 6 and record.seen[0] >= 2 and record.seen[1] >= 2
    assert all(t > 0 for t in record.times[0] + record.times[1])
    taken.clear()
    overlap.run(lambda progress: progress.__setitem__(0, 0), products, T, 2, measured.NO)
    assert taken == [(0, T, 2, False)]              # a rule's refusal: after the sweep on the call's threads


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")   # JAX, if an earlier test loaded it
@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_a_child_forked_while_another_thread_held_a_choosers_lock_can_choose():
    chooser = measured.Chooser()
    _runs(chooser, {True: 1e-6, False: 2e-6}, 4)
    held, release = threading.Event(), threading.Event()

    def hold():
        with chooser._lock:
            held.set()
            release.wait()
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        pid = os.fork()
        if pid == 0:                    # the child: the holder thread is not there
            code = 1
            try:
                signal.alarm(20)
                choice = chooser.choose("shape", 10)
                choice.done()
                code = 0 if chooser.records["shape"].seen[0] + chooser.records["shape"].seen[1] == 5 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
