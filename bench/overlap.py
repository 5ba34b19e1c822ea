"""A batch of one's row products beside its backward sweep (fastrnn.runtime.overlap), on and off.

    python bench/overlap.py [seconds per row] > bench/results/<date>-row-products-beside-the-sweep.md

Whole ``fastrnn.bptt`` calls at B = 1 (m = 8 for the simple cell, m = 32 for the gated cells, units
readout with o = n/4, mse), default threads: the weight gradients taken segment by segment on a helper
thread while the sweep runs ("beside") against after it on the call's threads ("after"; the rule held
off by ``overlap.SEGMENTS = 1``), in one process, in a new random order each round; medians and least
times. Each row checks first that both ways give the same gradients (float64 1e-12, float32 1e-5 of the
largest).
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


def _grads(net, x, d, segments):
    overlap.SEGMENTS = segments
    return fastrnn.bptt(net, x, d)[1]


def _segments(net, x, d):
    """Into how many segments the call cuts its products (1: after the sweep)."""
    seen = []
    run = overlap.run

    def spied(sweep, products, T, threads, beside):
        seen.append(len(overlap.segments(T, products.flops)) if beside else 1)
        return run(sweep, products, T, threads, beside)
    overlap.run = spied
    try:
        fastrnn.bptt(net, x, d)
    finally:
        overlap.run = run
    return seen[0]


def main(seconds=6.0):
    on = overlap.SEGMENTS
    print("# Row products beside the sweep (a batch of one, exact BPTT)\n")
    print(f"`python bench/overlap.py {seconds:g}`, {fastrnn.get_threads()} threads; whole `fastrnn.bptt` calls, "
          "B=1; ms, median (least); gain = after / beside.\n")
    print("| cell | dtype | n | T | segments | after | beside | gain |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    try:
        for cell, n, T, dtype in ROWS:
            net, x, d = _problem(cell, n, T, dtype)
            a, b = _grads(net, x, d, 1), _grads(net, x, d, on)
            tol = 1e-12 if dtype == np.float64 else 1e-5
            for name in a.names:
                if getattr(a, name) is not None:
                    ref = getattr(a, name)
                    assert np.abs(getattr(b, name) - ref).max() <= tol * np.abs(ref).max(), (cell, n, name)

            def run(segments):
                def call():
                    overlap.SEGMENTS = segments
                    fastrnn.bptt(net, x, d)
                return call
            first = time.perf_counter()
            run(on)()
            once = time.perf_counter() - first
            rounds = max(5, int(seconds / max(once, 1e-4) / 2))
            times = interleaved({"after": run(1), "beside": run(on)}, rounds, warm=3)
            med = {k: np.median(v) * 1e3 for k, v in times.items()}
            least = {k: np.min(v) * 1e3 for k, v in times.items()}
            overlap.SEGMENTS = on
            segs = _segments(net, x, d)
            print(f"| {cell} | {np.dtype(dtype).name} | {n} | {T} | {segs} | {med['after']:.3f} ({least['after']:.3f}) "
                  f"| {med['beside']:.3f} ({least['beside']:.3f}) | {med['after'] / med['beside']:.2f} |")
            sys.stdout.flush()
    finally:
        overlap.SEGMENTS = on


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 6.0)
