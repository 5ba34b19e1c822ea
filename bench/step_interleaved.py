"""The training-step table of ``test_torch_step.py`` with the implementations of each row interleaved.

pytest-benchmark times each implementation of a row on its own, one after the other; on a shared
machine whose speed drifts by a third between minutes, a row's ratios then move from run to run
(``bench/results/2026-11-26-training-step-borrowed-products.md``). Here every row's three steps
(fastrnn, fastrnn.torch, torch.nn) are built and checked exactly as the test builds them (the test
function itself, with a stand-in for its ``benchmark`` fixture), then timed in rounds of one step
each, in a new random order each round, inside the row's thread setting; the medians go into a
JSON file that ``report.py`` reads like pytest-benchmark's, so the table, the roofline and the
verdicts are the same. One thread's GEMM (and the B = 1 rows' gemv chains) are timed before and
after the rows; each rate's samples from both times are pooled.

What differs from the pytest table: with default threads a step may follow torch.nn's or
fastrnn.torch's, whose OpenMP threads then spin for several milliseconds (8.5 ms measured on the
project's 2-core machine), so ``fastrnn.bptt``'s parallel kernels meet them as they would in a loop
that also runs torch operations; in the pytest table its steps follow only its own.

    python bench/step_interleaved.py step-interleaved.json [--only LSTM] [--seconds 1.5]
    python bench/report.py step-interleaved.json
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_step as S  # noqa: E402
from common import gemm_one_thread, gemv_one_thread  # noqa: E402

IMPLS = ("fastrnn", "fastrnn.torch", "torch")
MIN_ROUNDS, MAX_ROUNDS = 5, 40


class Captured:
    """Stands in for pytest-benchmark's fixture: keeps the step the test would time, and its labels."""

    def __init__(self):
        self.group, self.extra_info, self.fn = None, {}, None

    def __call__(self, fn, *args):
        self.fn = (lambda: fn(*args)) if args else fn


class Timed(Captured):
    """Stands in for the fixture where one function is timed alone (GEMM, gemv): its samples, kept."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.samples = seconds, []

    def __call__(self, fn, *args):
        fn(*args)
        start = time.perf_counter()
        while len(self.samples) < MIN_ROUNDS or time.perf_counter() - start < self.seconds:
            t = time.perf_counter()
            fn(*args)
            self.samples.append(time.perf_counter() - t)


def _entry(info, samples):
    return {"extra_info": dict(info), "stats": {"median": float(np.median(samples)), "rounds": len(samples)}}


def _rates(seconds, gemv_sizes):
    """GEMM and gemv timings: {key: (info, samples)}."""
    out = {}
    for dtype in S.DTYPES:
        t = Timed(seconds)
        gemm_one_thread(t, dtype)
        out[("gemm", dtype)] = (t.extra_info, t.samples)
        for n, gates in gemv_sizes:
            t = Timed(seconds / 4)
            gemv_one_thread(t, n, gates, dtype, S.T)
            out[("gemv", n, gates, dtype)] = (t.extra_info, t.samples)
    return out


def row(kind, n, B, dtype, threads, seconds, order):
    """The three steps of one row, checked by the test, timed interleaved: one entry per implementation."""
    steps = {}
    for impl in IMPLS:
        captured = Captured()
        S.test_torch_training_step(captured, impl, kind, n, B, dtype, threads)
        steps[impl] = captured
    times = {impl: [] for impl in IMPLS}
    with S.thread_mode(threads):
        start = time.perf_counter()
        for impl in IMPLS:                      # one warm round, also to size the rounds
            steps[impl].fn()
        per_round = time.perf_counter() - start
        rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, seconds / max(per_round, 1e-9))))
        for _ in range(rounds):
            for impl in order.permutation(list(IMPLS)):
                t = time.perf_counter()
                steps[impl].fn()
                times[impl].append(time.perf_counter() - t)
    return [_entry(steps[impl].extra_info, times[impl]) for impl in IMPLS]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="where to write the run (report.py reads it)")
    parser.add_argument("--only", choices=sorted(S.GATES), help="one cell only")
    parser.add_argument("--seconds", type=float, default=1.5, help="timing per row (at least 5 rounds)")
    args = parser.parse_args(argv)
    if S.torch is None:
        sys.exit("this table needs PyTorch: pip install torch==2.13.0")
    order = np.random.default_rng(0)
    gemv_sizes = sorted({(n, g) for n, _ in S.SIZES for g in set(S.GATES.values())})
    before = _rates(args.seconds, gemv_sizes)
    entries = []
    started = time.perf_counter()
    kinds = [args.only] if args.only else list(S.GATES)
    for threads in ("one", "default"):
        for kind in kinds:
            for dtype in S.DTYPES:
                for n, B in S.SIZES:
                    entries += row(kind, n, B, dtype, threads, args.seconds, order)
                    print(f"{kind} n={n} B={B} {dtype} {threads}: {time.perf_counter() - started:.0f} s",
                          file=sys.stderr, flush=True)
    after = _rates(args.seconds, gemv_sizes)
    for key, (info, samples) in before.items():
        entries.append(_entry(info, samples + after[key][1]))
    machine = {"processor": platform.processor() or platform.machine(), "node": platform.node(),
               "python": platform.python_version(), "interleaved": True}
    with open(args.json, "w") as f:
        json.dump({"machine_info": machine, "benchmarks": entries}, f, indent=1)


if __name__ == "__main__":
    main()
