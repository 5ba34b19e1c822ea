"""The input projection before a pair's forward pass split between the calling thread and the helper
(``runtime.pair.input_projection``) against NumPy's product on the calling thread alone, whole calls interleaved.

    python bench/split_projection.py [rounds] [--case CELL:DTYPE:N:T:B ...]

Each case (``common.problem`` for the simple cell, ``common.lstm_problem`` for the gated cells; m = 32) is timed as
a whole ``fastrnn.bptt`` call and a whole ``fastrnn.forward`` call at default threads, with ``pair.SPLIT_PROJECTION``
on and off in the same rounds, the rule choosing the pair (B = 1) or the cut by units (a few rows) as usual; below
``pair.SPLIT_PROJECTION_MIN`` multiply-adds, and where the batch kernels take the call (B = 8 at n = 512), both
ways run the same code. Medians, ms, and split / whole (under 1: faster).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn.runtime import pair  # noqa: E402

from common import cell_case, cell_problem, interleaved  # noqa: E402

CASES = ("lstm:float32:512:100:4", "gru:float32:512:100:4", "lstm:float32:512:100:8", "lstm:float32:512:1000:1",
         "gru:float64:512:1000:1", "rnn:float64:256:1000:1", "lstm:float64:256:100:4", "lstm:float32:512:100:1")


def _switched(fn, split):
    def call():
        pair.SPLIT_PROJECTION = split
        try:
            fn()
        finally:
            pair.SPLIT_PROJECTION = True
    return call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=40)
    parser.add_argument("--case", type=cell_case, action="append", help="CELL:DTYPE:N:T:B (default: a set of cases)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"`python bench/split_projection.py {args.rounds}`: m = 32, default threads, medians of {args.rounds} "
          "interleaved rounds, ms\n")
    print("| case | R·m·r | bptt split | whole | ratio | forward split | whole | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cell, dtype, n, T, B in args.case or [cell_case(c) for c in CASES]:
        net, x, d = cell_problem(cell, n, 32, T, B, dtype)
        rows = {}
        for split in (True, False):
            rows[("bptt", split)] = _switched(lambda: fastrnn.bptt(net, x, d), split)
            rows[("forward", split)] = _switched(lambda: fastrnn.forward(net, x), split)
        m = {k: np.median(v) * 1e3 for k, v in interleaved(rows, args.rounds, warm=3).items()}
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
        cells = []
        for call in ("bptt", "forward"):
            cells += [f"{m[call, True]:.3f}", f"{m[call, False]:.3f}", f"{m[call, True] / m[call, False]:.3f}"]
        print(f"| {cell} {dtype.name} n={n} T={T} B={B} | {T * B * 32 * gates * n:.1e} | " + " | ".join(cells) + " |",
              flush=True)


if __name__ == "__main__":
    main()
