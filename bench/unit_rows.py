"""A gated cell over a batch cut by units between two threads (``runtime.pair.lstm_rows_forward`` and
``lstm_rows_sweep``, the GRU's ``gru_rows_*``) against the kernels' cut by rows, in whole calls interleaved in one
process.

    python bench/unit_rows.py [rounds] [--cell lstm|gru] [--call forward|bptt] [--T 100] [--case N B ...]

``common.lstm_problem`` (m = 32, units readout, summed squared error), default threads. "units": every call takes
the pair (``pair.ROWS_FORCE``, the rule aside); "rows": the batch kernels (their parallel blocks of rows, as
``dispatch.plan`` cuts them); "clock": the calls as they come, the rule and then the choice by the clock
(``pair.rows_forward_pays``), whose measurements carry over from round to round as a training loop's would. "blocks":
how many blocks the kernels run; "rule": what ``pair.rows_pay`` takes by the sizes (``pair.rows_wanted``; a call also
needs a CPU free for the helper). Medians, ms, and units / rows and clock / rows (under 1: faster).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn.kernels import _gru_forward, _lstm_forward  # noqa: E402
from fastrnn.runtime import dispatch, pair  # noqa: E402
from common import interleaved, lstm_problem  # noqa: E402

CASES = ((128, 4), (192, 4), (256, 2), (256, 4), (512, 2), (512, 4), (512, 6), (512, 8), (768, 8), (1024, 8),
         (1024, 16))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=20)
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--call", choices=("forward", "bptt"), default="bptt")
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--case", type=int, nargs=2, action="append", metavar=("N", "B"))
    args = parser.parse_args(argv)
    threads = fastrnn.get_threads()
    gates, kernel = (4, _lstm_forward) if args.cell == "lstm" else (3, _gru_forward)
    print(f"`python bench/unit_rows.py {args.rounds} --cell {args.cell} --call {args.call} --T {args.T}`: {threads} "
          f"threads, medians of {args.rounds} interleaved rounds, ms\n")
    print("| dtype | n | W_hh | B | blocks | units | rows | clock | units / rows | clock / rows | rule |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for dtype in (np.float32, np.float64):
        for n, B in args.case or CASES:
            net, x, d = lstm_problem(n, 32, args.T, B, dtype=np.dtype(dtype), cell=args.cell)
            fn = (lambda: fastrnn.forward(net, x)) if args.call == "forward" else (lambda: fastrnn.bptt(net, x, d))

            def run(force):
                pair.ROWS_FORCE = force
                try:
                    return fn()
                finally:
                    pair.ROWS_FORCE = None
            times = interleaved({"units": lambda: run(True), "rows": lambda: run(False), "clock": lambda: run(None)},
                                args.rounds, warm=3)
            m = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
            work = dispatch.Work(B, 2 * gates * B * n * n, args.T, net.W_hh.nbytes)
            blocks = dispatch.plan(kernel, threads, work)
            rule = threads >= 2 and pair.rows_wanted(work, n, blocks)
            print(f"| {np.dtype(dtype).name} | {n} | {net.W_hh.nbytes >> 10} KB | {B} | {blocks} | {m['units']:.2f} "
                  f"| {m['rows']:.2f} | {m['clock']:.2f} | {m['units'] / m['rows']:.2f} | {m['clock'] / m['rows']:.2f} "
                  f"| {'units' if rule else 'rows'} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
