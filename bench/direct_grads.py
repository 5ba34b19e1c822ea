"""The weight gradients over few rows written where they belong (``DIRECT``) against the tiles' turned product
(``TILED``), whole kernel calls and whole training-step calls, in the same interleaved rounds.

    python bench/direct_grads.py [rounds] [--case CELL:DTYPE:N:T:B ...]

Where the step products' tiles are wider than the BLAS's (``blas.tiles_wider``) every weight-gradient product
runs in them. ``TILED`` takes [x | h]^T D: it copies D into panels and copies the product out transposed into
dW_in and dW_rec. Over few rows T·B (a batch of one at T = 100) D is small, the product large
(gates·n by m + n), and those copies are a large part of the work. ``DIRECT`` takes D^T x and D^T h in the same
tiles, reading D where it lies and writing the gradients in place (``cells.base.weight_grad_layout`` takes it
over at most ``DIRECT_MAX_ROWS`` rows for gradients of ``DIRECT_MIN_BYTES`` or more; here both layouts are forced
at every size, to place those bounds).

Each case (default: the table's rows at B = 1, T = 100, m = 32, and a few beside the rule's bound) is timed:
``cells.base.weight_grads`` alone on one thread and on two, and a whole ``fastrnn.bptt`` call (the LSTM and
the GRU with a units readout of n/4, the simple cell as ``common.problem``) at default threads, each with the
layout switched by ``cells.base.DIRECT_LAYOUT``. Medians, ms, and direct / tiled.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn.cells import base  # noqa: E402
from fastrnn.runtime.dispatch import workers  # noqa: E402

from common import cell_case, cell_problem, interleaved  # noqa: E402

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CASES = ("lstm:float32:512:100:1", "lstm:float32:128:100:1", "lstm:float32:32:100:1", "lstm:float64:512:100:1",
         "gru:float32:512:100:1", "gru:float64:128:100:1", "rnn:float32:512:100:1", "rnn:float64:128:100:1",
         "lstm:float32:512:128:1", "lstm:float32:512:160:1", "lstm:float32:512:50:2")
M = 32


def _switched(fn, direct):
    """``fn`` with the layout forced: DIRECT at every size and row count, or TILED."""
    def call():
        kept = base.DIRECT_LAYOUT, base.DIRECT_MIN_BYTES, base.DIRECT_MAX_ROWS
        base.DIRECT_LAYOUT, base.DIRECT_MIN_BYTES, base.DIRECT_MAX_ROWS = direct, 0, 1 << 62
        try:
            fn()
        finally:
            base.DIRECT_LAYOUT, base.DIRECT_MIN_BYTES, base.DIRECT_MAX_ROWS = kept
    return call


def _rows(cell, dtype, n, T, B):
    rng = np.random.default_rng(0)
    r = GATES[cell] * n
    x, h, D = (rng.standard_normal(s).astype(dtype) for s in ((T, B, M), (T, B, n), (T, B, r)))
    outs = (np.empty((r, M), dtype), np.empty((r, n), dtype), np.empty(r, dtype))

    def kernel(threads):
        def call():
            with workers() as count:
                base.weight_grads(min(threads, count), x, h, D, *outs)
        return call

    net, xs, d = cell_problem(cell, n, M, T, B, dtype)
    rows = {}
    for direct, name in ((True, "direct"), (False, "tiled")):
        rows[f"one thread {name}"] = _switched(kernel(1), direct)
        rows[f"two threads {name}"] = _switched(kernel(2), direct)
        rows[f"bptt {name}"] = _switched(lambda: fastrnn.bptt(net, xs, d), direct)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=60)
    parser.add_argument("--case", type=cell_case, action="append", help="CELL:DTYPE:N:T:B (default: a set of cases)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"`python bench/direct_grads.py {args.rounds}`: m = {M}, medians of {args.rounds} interleaved rounds, ms; "
          "ratio direct / tiled (under 1: direct faster)\n")
    print("| case | T·B | weight grads, one thread: direct | tiled | ratio | two threads: direct | tiled | ratio "
          "| fastrnn.bptt, default threads: direct | tiled | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case in args.case or [cell_case(c) for c in CASES]:
        cell, dtype, n, T, B = case
        m = {k: np.median(v) * 1e3 for k, v in interleaved(_rows(*case), args.rounds, warm=3).items()}
        cells = []
        for part in ("one thread", "two threads", "bptt"):
            d, t = m[f"{part} direct"], m[f"{part} tiled"]
            cells += [f"{d:.3f}", f"{t:.3f}", f"{d / t:.2f}"]
        print(f"| {cell} {dtype.name} n={n} T={T} B={B} | {T * B} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
