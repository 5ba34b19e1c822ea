"""The training-step table of ``test_torch_step.py`` with the implementations of each row interleaved.

pytest-benchmark times each implementation of a row on its own, one after the other; on a shared
machine whose speed drifts by a third between minutes, a row's ratios then move from run to run
(``bench/results/2026-11-26-training-step-borrowed-products.md``). Here every row's three steps
(fastrnn, fastrnn.torch, torch.nn) are built and checked exactly as the test builds them (the test
function itself, with a stand-in for its ``benchmark`` fixture), then timed in rounds of one step
each, in a new random order each round, inside the row's thread setting; the medians go into a
JSON file that ``report.py`` reads like pytest-benchmark's, so the table, the roofline and the
verdicts are the same. Each one-thread row also times one thread's GEMM (and at B = 1 the chain of
products by W_hh) in its own rounds, and ``report.py`` divides that row by those rates: the roofline
and the least time then compare a row with the machine as it ran in the same seconds
(``_baselines``). The rates are also timed before and after the grid, pooled, for the table's
last lines and for runs without the rows' own.

What differs from the pytest table: with default threads a step may follow torch.nn's or
fastrnn.torch's, whose OpenMP threads then spin for several milliseconds (8.5 ms measured on the
project's 2-core machine), so ``fastrnn.bptt``'s parallel kernels meet them as they would in a loop
that also runs torch operations; in the pytest table its steps follow only its own.

    python bench/step_interleaved.py step-interleaved.json [--only LSTM] [--batch 1] [--dtype float32] [--seconds 1.5]
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
from common import gemm_one_thread, gemv_one_thread, gemv_two_threads  # noqa: E402

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


def _baselines(kind, n, B, dtype, threads):
    """The one-thread rows' baselines, timed in the row's own rounds: one thread's GEMM (the roofline's
    rate) and, at B = 1, the chain of products by W_hh (the least time's gemv rate). On a machine whose
    speed drifts between minutes, a rate timed before and after the whole grid can meet a row in another
    phase: in one run the one-thread n = 128 rows ran 1.15-1.7x slower than in the run before while the
    GEMM rate measured around them was the same (83 against 81.5 GFLOP/s). Timed beside the row, the
    ratio compares the row with the machine as it was then. At default threads only a B = 1 row has one: two
    threads streaming the halves of W_hh at once (``gemv_two_threads``). {name: Captured}"""
    if threads != "one":
        if B != 1:
            return {}
        out = {"gemv-pair-rounds": Captured()}
        gemv_two_threads(out["gemv-pair-rounds"], n, S.GATES[kind], dtype, S.T)
        return out
    out = {"gemm-rounds": Captured()}
    gemm_one_thread(out["gemm-rounds"], dtype)
    if B == 1:
        out["gemv-rounds"] = Captured()
        gemv_one_thread(out["gemv-rounds"], n, S.GATES[kind], dtype, S.T)
    return out


def row(kind, n, B, dtype, threads, seconds, order):
    """The three steps of one row, checked by the test, timed interleaved (with the row's baselines,
    ``_baselines``): one entry per implementation, the baselines' under the row's own key."""
    steps = {}
    for impl in IMPLS:
        captured = Captured()
        S.test_torch_training_step(captured, impl, kind, n, B, dtype, threads)
        steps[impl] = captured
    info = steps["fastrnn"].extra_info
    for name, captured in _baselines(kind, n, B, dtype, threads).items():
        captured.extra_info = dict(info, impl=name, flops=captured.extra_info.get("flops"),
                                   bytes=captured.extra_info.get("bytes"))
        steps[name] = captured
    names = list(steps)
    times = {name: [] for name in names}
    with S.thread_mode(threads):
        start = time.perf_counter()
        for name in names:                      # one warm round, also to size the rounds
            steps[name].fn()
        per_round = time.perf_counter() - start
        rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, seconds / max(per_round, 1e-9))))
        for _ in range(rounds):
            for name in order.permutation(names):
                t = time.perf_counter()
                steps[name].fn()
                times[name].append(time.perf_counter() - t)
    return [_entry(steps[name].extra_info, times[name]) for name in names]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="where to write the run (report.py reads it)")
    parser.add_argument("--only", choices=sorted(S.GATES), help="one cell only")
    parser.add_argument("--batch", type=int, action="append", help="these batch sizes only (default: all)")
    parser.add_argument("--dtype", choices=S.DTYPES, action="append", help="these dtypes only (default: both)")
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
            for dtype in args.dtype or S.DTYPES:
                for n, B in S.SIZES:
                    if args.batch and B not in args.batch:
                        continue
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
