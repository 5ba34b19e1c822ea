"""A batch of one's row products beside its backward sweep (fastrnn.runtime.overlap), on and off.

    python bench/overlap.py [seconds per row] > bench/results/<date>-row-products-beside-the-sweep.md

Whole ``fastrnn.bptt`` calls at B = 1 (m = 8 for the simple cell, m = 32 for the gated cells, units
readout with o = n/4, mse), default threads: the weight gradients taken segment by segment on a helper
thread while the sweep runs ("beside") against after it on the call's threads ("after"; the rule held
off by ``overlap.SEGMENTS = 1``), and beside with the helper taking every segment ("helper alone": the
calling thread does not take the segments the helper has not begun once the sweep has ended; its
products lose their ``aside``), in one process, in a new random order each round; medians and least
times. Each row checks first that the ways give the same gradients (float64 1e-12, float32 1e-5 of the
largest; the two beside bit for bit).
"""
import sys
import time

import numpy as np

import fastrnn
from fastrnn.runtime import overlap

from common import interleaved, lstm_problem, problem

ROWS = [("rnn", 64, 1000, np.float64), ("rnn", 128, 1000, np.float64), ("rnn", 256, 1000, np.float64),
        ("rnn", 128, 1000, np.float32), ("rnn", 128, 300, np.float64),
        ("lstm", 64, 1000, np.float32), ("lstm", 128, 1000, np.float32), ("lstm", 128, 1000, np.float64),
        ("gru", 128, 1000, np.float32), ("gru", 128, 1000, np.float64),
        ("lstmp", 128, 1000, np.float32),
        ("lstm", 256, 1000, np.float32),     # 1 MB of weights: the sweep's products split over both threads
        ("rnn", 256, 100, np.float32)]       # one segment: after the sweep either way


def _problem(cell, n, T, dtype):
    if cell == "rnn":
        return problem(n, 8, T, 1, dtype=dtype)
    return lstm_problem(n, 32, T, 1, dtype=dtype, cell=cell)


class _HelperAlone:
    """Row products without ``aside``: ``overlap.run`` then leaves every segment to the helper."""

    def __init__(self, products):
        self.products, self.flops = products, products.flops

    def __call__(self, s0, s1, threads, add):
        return self.products(s0, s1, threads, add)


_RUN = overlap.run


def _helper_alone(sweep, products, T, threads, beside):
    return _RUN(sweep, _HelperAlone(products), T, threads, beside)


def _grads(net, x, d, segments, alone=False):
    overlap.SEGMENTS = segments
    overlap.run = _helper_alone if alone else _RUN
    try:
        return fastrnn.bptt(net, x, d)[1]
    finally:
        overlap.run = _RUN


def _segments(net, x, d):
    """Into how many segments the call cuts its products (1: after the sweep). The rule also asks whether a CPU
    is free at that moment (``overlap._idle_core``): a call that found the machine busy is tried again, up to
    five calls."""
    seen = []
    run = overlap.run

    def spied(sweep, products, T, threads, beside):
        seen.append(len(overlap.segments(T, products.flops)) if beside else 1)
        return run(sweep, products, T, threads, beside)
    overlap.run = spied
    try:
        for _ in range(5):
            fastrnn.bptt(net, x, d)
            if seen[-1] > 1:
                break
    finally:
        overlap.run = run
    return max(seen)


def main(seconds=6.0):
    on = overlap.SEGMENTS
    print("# Row products beside the sweep (a batch of one, exact BPTT)\n")
    print(f"`python bench/overlap.py {seconds:g}`, {fastrnn.get_threads()} threads; whole `fastrnn.bptt` calls, "
          "B=1; ms, median (least); gain = after / beside; caller's part = helper alone / beside.\n")
    print("| cell | dtype | n | T | segments | after | helper alone | beside | gain | caller's part |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    try:
        for cell, n, T, dtype in ROWS:
            net, x, d = _problem(cell, n, T, dtype)
            runnable = overlap._runnable      # both beside ways checked beside, whatever else runs meanwhile
            overlap._runnable = lambda: 1
            try:
                a, b, c = _grads(net, x, d, 1), _grads(net, x, d, on), _grads(net, x, d, on, alone=True)
            finally:
                overlap._runnable = runnable
            for name in a.names:
                if getattr(a, name) is not None:
                    assert np.array_equal(getattr(b, name), getattr(c, name)), (cell, n, name)
            tol = 1e-12 if dtype == np.float64 else 1e-5
            for name in a.names:
                if getattr(a, name) is not None:
                    ref = getattr(a, name)
                    assert np.abs(getattr(b, name) - ref).max() <= tol * np.abs(ref).max(), (cell, n, name)

            def run(segments, alone=False):
                def call():
                    _grads(net, x, d, segments, alone)
                return call
            first = time.perf_counter()
            run(on)()
            once = time.perf_counter() - first
            rounds = max(5, int(seconds / max(once, 1e-4) / 3))
            times = interleaved({"after": run(1), "alone": run(on, True), "beside": run(on)}, rounds, warm=3)
            med = {k: np.median(v) * 1e3 for k, v in times.items()}
            least = {k: np.min(v) * 1e3 for k, v in times.items()}
            overlap.SEGMENTS = on
            segs = _segments(net, x, d)
            print(f"| {cell} | {np.dtype(dtype).name} | {n} | {T} | {segs} | {med['after']:.3f} ({least['after']:.3f}) "
                  f"| {med['alone']:.3f} ({least['alone']:.3f}) | {med['beside']:.3f} ({least['beside']:.3f}) "
                  f"| {med['after'] / med['beside']:.2f} | {med['alone'] / med['beside']:.2f} |")
            sys.stdout.flush()
    finally:
        overlap.SEGMENTS = on


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 6.0)
