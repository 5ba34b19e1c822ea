"""How long fastrnn.torch's quiet takes (``fastrnn.torch._quiet_torch``: torch's spinning OpenMP threads put to
sleep before a parallel call) with its calling thread held to its CPU and without (``fastrnn.torch.PIN_QUIET``),
and what that does to whole training steps.

    python bench/quiet_stalls.py [rounds] [--steps ROUNDS] [--row CELL:N:B ...]

1. Quiets timed right after a torch operation on torch's own thread count (a 256 x 256 ``torch.mm``, an LSTM's
   forward and backward at n=128, B=8), each way in a new random order every round: quantiles, mean, and how many
   took over 1 ms.
2. The training-step table's steps (``test_torch_step.py``: fastrnn, fastrnn.torch and torch.nn, float32, T=100,
   m=32, default threads), interleaved in random order, each round with the pin on and off: medians, ms.

Needs PyTorch on GNU OpenMP (its Linux wheels) and two CPUs or more.
"""
import argparse
import os
import random
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fastrnn.torch as ft  # noqa: E402

WAYS = {"pinned": True, "unpinned": False}
ROWS = ("LSTM:512:1", "LSTM:128:32", "LSTM:128:8", "GRU:512:1")


def quiets(rounds):
    torch.set_num_threads(ft._CPUS)
    a = torch.randn(256, 256)
    lstm = torch.nn.LSTM(32, 128)
    x = torch.randn(100, 8, 32)
    ops = {"torch.mm 256": lambda: torch.mm(a, a),
           "LSTM n=128 B=8 forward and backward": lambda: lstm(x)[0].sum().backward()}
    times = {}
    for _ in range(rounds):
        for op in random.sample(list(ops), len(ops)):
            for way in random.sample(list(WAYS), len(WAYS)):
                ops[op]()
                ft.PIN_QUIET = WAYS[way]
                t = time.perf_counter()
                ft._quiet_torch()
                times.setdefault((op, way), []).append(time.perf_counter() - t)
    ft.PIN_QUIET = True
    print(f"Quiets right after a torch operation, torch on {ft._CPUS} threads, {rounds} rounds, ms:\n")
    print("| before | quiet | median | 75 % | 90 % | mean | over 1 ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for (op, way), v in sorted(times.items()):
        v = np.array(v) * 1e3
        q = np.quantile(v, [0.5, 0.75, 0.9])
        print(f"| {op} | {way} | {q[0]:.3f} | {q[1]:.3f} | {q[2]:.3f} | {v.mean():.3f} | {int((v > 1).sum())} of {len(v)} |")


def steps(rounds, rows):
    import step_interleaved as SI
    import test_torch_step as S
    print(f"\nTraining steps, float32, default threads, {rounds} interleaved rounds each way, medians, ms:\n")
    print("| row | quiet | fastrnn | fastrnn.torch | torch.nn | torch.nn / fastrnn.torch |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for text in rows:
        kind, n, B = text.split(":")
        fns = {}
        for impl in SI.IMPLS:
            captured = SI.Captured()
            S.test_torch_training_step(captured, impl, kind, int(n), int(B), "float32", "default")
            fns[impl] = captured.fn
        times = {}
        with S.thread_mode("default"):
            for fn in fns.values():
                fn()
            for _ in range(rounds):
                for way in random.sample(list(WAYS), len(WAYS)):
                    ft.PIN_QUIET = WAYS[way]
                    for impl in random.sample(list(fns), len(fns)):
                        t = time.perf_counter()
                        fns[impl]()
                        times.setdefault((impl, way), []).append(time.perf_counter() - t)
        ft.PIN_QUIET = True
        for way in WAYS:
            m = {impl: float(np.median(times[impl, way])) * 1e3 for impl in fns}
            print(f"| {kind} n={n} B={B} | {way} | {m['fastrnn']:.2f} | {m['fastrnn.torch']:.2f} | {m['torch']:.2f} "
                  f"| {m['torch'] / m['fastrnn.torch']:.2f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=300)
    parser.add_argument("--steps", type=int, default=30, help="rounds of the training steps (0: none)")
    parser.add_argument("--row", action="append", help=f"CELL:N:B training-step rows (default {' '.join(ROWS)})")
    args = parser.parse_args(argv)
    if not ft._GOMP or ft._CPUS < 2:
        sys.exit("needs torch on GNU OpenMP and two CPUs or more")
    print(f"`python bench/quiet_stalls.py {args.rounds} --steps {args.steps}`\n")
    quiets(args.rounds)
    if args.steps:
        steps(args.steps, args.row or ROWS)


if __name__ == "__main__":
    sys.exit(main())
