"""New pages against recycled memory for what a call hands out: ``runtime.workspace.result`` on and off.

    python bench/result_pages.py [rounds] [--row LSTM,512,1,float32 ...] [--threads default|one]

A row of the training-step table (``test_torch_step.py``: T=100, m=32, a linear readout of 8, summed squared
error, SGD on the weights) is built as the table builds it, and ``fastrnn.bptt``'s step is timed right after one
of three steps, untimed: torch.nn's own step of the row, fastrnn.torch's, or fastrnn's own (the three a row of the
table meets in its random order), with ``workspace.RECYCLE`` on (weight gradients and dL/dx handed out again once
nothing refers to them) and off (a new array each call), all six in a new random order each round. Each cell gives
the median time and the median count of page faults (``getrusage``'s minor faults, the whole process) in the timed
step. Default rows: the float32 LSTM at n=512 (dW_hh 4 MiB, which NumPy advises into huge pages) at B=1 and B=8,
the float64 LSTM and the float32 GRU at n=512, B=1.
"""
import argparse
import os
import random
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_step as S  # noqa: E402
from step_interleaved import Captured  # noqa: E402

from fastrnn.runtime import workspace  # noqa: E402

ROWS = ("LSTM,512,1,float32", "LSTM,512,8,float32", "LSTM,512,1,float64", "GRU,512,1,float32")
BEFORE = ("torch", "fastrnn.torch", "fastrnn")


def _faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def row(kind, n, B, dtype, threads, rounds):
    """{(recycle, before): (seconds, faults) lists} for one row."""
    steps = {}
    for impl in BEFORE:
        captured = Captured()
        S.test_torch_training_step(captured, impl, kind, n, B, dtype, threads)
        steps[impl] = captured.fn
    cells = [(recycle, before) for recycle in (True, False) for before in BEFORE]
    out = {cell: ([], []) for cell in cells}
    with S.thread_mode(threads):
        for _ in range(2):
            for fn in steps.values():
                fn()
        try:
            for _ in range(rounds):
                for recycle, before in random.sample(cells, len(cells)):
                    workspace.RECYCLE = recycle
                    steps[before]()
                    f0, t0 = _faults(), time.perf_counter()
                    steps["fastrnn"]()
                    t1, f1 = time.perf_counter(), _faults()
                    out[recycle, before][0].append(t1 - t0)
                    out[recycle, before][1].append(f1 - f0)
        finally:
            workspace.RECYCLE = True
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=40)
    parser.add_argument("--row", action="append", help="kind,n,B,dtype (default: %s)" % " ".join(ROWS))
    parser.add_argument("--threads", choices=("default", "one"), default="default")
    args = parser.parse_args(argv)
    if S.torch is None:
        sys.exit("this bench needs PyTorch: pip install torch==2.13.0")
    print(f"`python bench/result_pages.py {args.rounds}` ({args.threads} threads): fastrnn.bptt's training step "
          f"after each step, medians of {args.rounds} rounds, ms (page faults)\n")
    print("| row | after | recycled | new arrays | recycled / new |")
    print("| --- | --- | ---: | ---: | ---: |")
    for spec in args.row or ROWS:
        kind, n, B, dtype = spec.split(",")
        out = row(kind, int(n), int(B), dtype, args.threads, args.rounds)
        every = {True: [], False: []}
        for before in BEFORE:
            cells = []
            for recycle in (True, False):
                seconds, faults = out[recycle, before]
                every[recycle] += seconds
                cells.append((np.median(seconds), np.median(faults)))
            print(f"| {kind} n={n} B={B} {dtype} | {before} | {cells[0][0] * 1e3:.2f} ({cells[0][1]:.0f}) | "
                  f"{cells[1][0] * 1e3:.2f} ({cells[1][1]:.0f}) | {cells[0][0] / cells[1][0]:.2f} |")
        both = [np.median(every[r]) for r in (True, False)]
        print(f"| {kind} n={n} B={B} {dtype} | all three | {both[0] * 1e3:.2f} | {both[1] * 1e3:.2f} | "
              f"{both[0] / both[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
