"""A batch of one's forward chain and backward sweep on two threads (``runtime.pair``) against the kernels
without them, in whole calls interleaved in one process: ``fastrnn.forward`` and ``fastrnn.bptt`` at default
threads.

    python bench/pair_forward.py [rounds] [--n 128 ...] [--T 1000] [--call forward|bptt] [--cell rnn|lstm|gru]
        [--half-rows]

The simple cell (``common.problem``: tanh, m = 8, units readout of n/4, summed squared error), or with ``--cell lstm``
or ``--cell gru`` a gated cell (``common.lstm_problem``, the same readout and loss), B = 1. "pair":
every call takes the pair (``runtime.pair.FORCE``, the rule aside), in the forward pass and in exact BPTT's sweep;
"forward only": the forward pass paired, the sweep as without (``pair.SWEEP`` off: the sweep on one thread with the
weight gradients beside it, ``runtime.overlap``, where its rule says so); "without": the same build with the
pair turned off (the one-thread kernels, or ``_gemv_parts``'s split where ``dispatch.parts`` asks for it). Each
round times all in a new random order; medians, ms, and their ratios to without (under 1: faster).
``--half-rows``: also "pair by rows", the pair with each half's products by the weights' rows
(``pair.HALF_TILES`` off) where ``pair.half_tiles`` would give them row tiles.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn.runtime import pair  # noqa: E402

from common import interleaved, lstm_problem, problem  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=100)
    parser.add_argument("--n", type=int, action="append", help="hidden sizes (default 64 96 128 192 256 512)")
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--call", choices=("forward", "bptt"), default="bptt")
    parser.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="rnn")
    parser.add_argument("--half-rows", action="store_true", help="also the pair with its halves by rows")
    args = parser.parse_args(argv)
    print(f"`python bench/pair_forward.py {args.rounds} --T {args.T} --call {args.call} --cell {args.cell}`: B=1, "
          f"default threads, medians of {args.rounds} interleaved rounds, ms\n")
    rows = args.half_rows
    print("| dtype | n | W | pair | forward only | without | pair / without | forward only / without |"
          + (" pair by rows | pair by rows / without |" if rows else ""))
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if rows else ""))
    for dtype in (np.float64, np.float32):
        for n in args.n or (64, 96, 128, 192, 256, 512):
            if args.cell == "rnn":
                net, x, d = problem(n, 8, args.T, 1, dtype=np.dtype(dtype))
            else:
                net, x, d = lstm_problem(n, 8, args.T, 1, dtype=np.dtype(dtype), cell=args.cell)
            fn = (lambda: fastrnn.forward(net, x)) if args.call == "forward" else (lambda: fastrnn.bptt(net, x, d))

            def run(force, sweep=True, tiles=True):
                pair.FORCE, pair.SWEEP, pair.HALF_TILES = force, sweep, tiles
                try:
                    return fn()
                finally:
                    pair.FORCE, pair.SWEEP, pair.HALF_TILES = None, True, True
            ways = {"pair": lambda: run(True), "forward only": lambda: run(True, False), "without": lambda: run(False)}
            if rows:
                ways["by rows"] = lambda: run(True, True, False)
            times = interleaved(ways, args.rounds, warm=3)
            m = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
            kb = (net.W_rec if args.cell == "rnn" else net.W_hh).nbytes / 1024
            print(f"| {np.dtype(dtype).name} | {n} | {kb:.0f} KB | {m['pair']:.3f} | {m['forward only']:.3f} "
                  f"| {m['without']:.3f} | {m['pair'] / m['without']:.2f} | {m['forward only'] / m['without']:.2f} |"
                  + (f" {m['by rows']:.3f} | {m['by rows'] / m['without']:.2f} |" if rows else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
