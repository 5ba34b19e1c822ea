"""Choices between two ways of running the same work, one thread or two, made by the clock.

Whether a second thread pays depends on what else holds the machine's cores and on how fast they exchange cache
lines, and neither is fixed: on a shared machine (2 vCPUs on KVM, 2026-11-29) a batch of one's forced pair
(``runtime.pair``) ran at 0.83-1.00 of the time without in one run and at 1.17-1.75 in the next, minutes apart
(``python bench/pair_floor.py``), while a pass on one thread kept its time; right after a JAX call, whose pool's
threads go on spinning for a few ms, a float64 simple-cell call at n = 128 (T = 1000) took 3.02 ms with its weight
gradients on the helper beside the sweep (``runtime.overlap``) against 2.59 after it (ad hoc, medians of 80).
The rules (``pair.pays``, ``overlap.pays``) say where the second thread can pay at all; a ``Chooser`` then times
every run of a shape both ways and takes the way whose least time a step over its last KEPT runs is lower, with
one run in PROBE_EVERY taken the other way to see whether that has changed. The least of a few: a run is slowed by
what ran before it (another pool's threads spinning), seldom sped up, so one slow run does not turn the choice;
KEPT slow ones in a row do. The first run each way is not counted (compilation, first-touch page faults). A probe
costs at most one run in PROBE_EVERY at the slower way's time.
"""
import os
import threading
import time
import weakref

PROBE_EVERY = 16         # of a shape's runs, one in this many the way not chosen
MARGIN = 0.97            # the second thread is chosen while its time a step is under this fraction of one thread's
KEPT = 3                 # the runs of each way whose least time counts
BY_CLOCK = True          # tests: False takes the second thread wherever the rules allow it, unrecorded
MAX_RECORDS = 256        # shapes a Chooser keeps records of; beyond, the oldest record goes (its shape measures anew)


class Record:
    """What the runs of one shape measured: seconds a step of the last KEPT runs each way (alone, together),
    the runs of each way seen, the runs since the way not chosen last ran."""

    __slots__ = ("times", "seen", "since")

    def __init__(self):
        self.times = ([], [])
        self.seen = [0, 0]
        self.since = 0

    def prefers_together(self):
        alone, together = self.times
        return not alone or not together or min(together) < MARGIN * min(alone)

    def next_way(self):
        if self.seen[1] < 2 or self.seen[0] < 2:        # a run each way not counted, then one counted
            return self.seen[1] <= self.seen[0]
        self.since += 1
        if self.since >= PROBE_EVERY:
            self.since = 0
            return not self.prefers_together()
        return self.prefers_together()


class Choice:
    """A ``Chooser``'s answer: true for the second thread. ``done()``, once the run has ended, records its time
    (nothing for an answer no rule left open: ``Choice(False)``, ``Choice(True)``)."""

    __slots__ = ("together", "_chooser", "_key", "_steps", "_start")

    def __init__(self, together, chooser=None, key=None, steps=1):
        self.together, self._chooser, self._key, self._steps = together, chooser, key, steps
        self._start = time.perf_counter() if chooser is not None else 0.0

    def __bool__(self):
        return self.together

    @property
    def by_clock(self):
        """Whether a ``Chooser`` gave this answer (a way it is measuring), not a rule alone."""
        return self._chooser is not None

    def done(self):
        chooser, self._chooser = self._chooser, None
        if chooser is not None:
            chooser.record(self._key, self.together, (time.perf_counter() - self._start) / self._steps)


class Chooser:
    """The records of one choice (the pair, the helper beside a sweep), by shape, shared by the process's threads."""

    def __init__(self):
        self.records = {}
        self._lock = threading.Lock()
        _CHOOSERS.add(self)

    def choose(self, key, steps):
        """The way for a run of shape ``key`` (hashable) over ``steps`` steps that a rule has left open."""
        if not BY_CLOCK:
            return Choice(True)
        with self._lock:
            together = self._record(key).next_way()
        return Choice(together, self, key, steps)

    def _record(self, key):
        """The record of ``key``, new if there is none; at most MAX_RECORDS kept, the oldest made going first (a
        process whose shapes keep changing, many lengths or sizes, does not grow without end). Under the lock."""
        record = self.records.get(key)
        if record is None:
            while self.records and len(self.records) >= MAX_RECORDS:
                del self.records[next(iter(self.records))]
            record = self.records[key] = Record()
        return record

    def prefers_together(self, key):
        """Whether the runs of ``key`` last measured the second thread faster (or have not measured both ways)."""
        with self._lock:
            record = self.records.get(key)
            return record is None or record.prefers_together()

    def record(self, key, together, per_step):
        with self._lock:
            record = self._record(key)
            way = int(together)
            if record.seen[way] > 0:
                kept = record.times[way]
                kept.append(per_step)
                del kept[:-KEPT]
            record.seen[way] += 1


NO = Choice(False)
_CHOOSERS = weakref.WeakSet()


def _after_fork_in_child():
    """A forked child has only the thread that forked: a lock another thread held then would never be let go.
    Each chooser starts again with a new lock and its records (the machine's, measured by the parent)."""
    for chooser in list(_CHOOSERS):
        chooser._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
