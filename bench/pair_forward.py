"""A batch of one's forward chain on two threads (``runtime.pair``) against the kernels without it, in whole
calls interleaved in one process: ``fastrnn.forward`` and ``fastrnn.bptt`` at default threads.

    python bench/pair_forward.py [rounds] [--n 128 ...] [--T 1000] [--call forward|bptt]

The simple cell (``common.problem``: tanh, m = 8, units readout of n/4, summed squared error), B = 1. "pair":
every call takes the pair (``runtime.pair.FORCE``, the rule aside); "without": the same build with the pair
turned off (the one-thread kernel, or ``_gemv_parts``'s split where ``dispatch.parts`` asks for it).
Each round times both in a new random order; medians, ms, and pair / without (under 1: the pair is faster).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn.runtime import pair  # noqa: E402

from common import interleaved, problem  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=100)
    parser.add_argument("--n", type=int, action="append", help="hidden sizes (default 64 96 128 192 256 512)")
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--call", choices=("forward", "bptt"), default="bptt")
    args = parser.parse_args(argv)
    print(f"`python bench/pair_forward.py {args.rounds} --T {args.T} --call {args.call}`: B=1, default threads, "
          f"medians of {args.rounds} interleaved rounds, ms\n")
    print("| dtype | n | W_rec | pair | without | pair / without |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for dtype in (np.float64, np.float32):
        for n in args.n or (64, 96, 128, 192, 256, 512):
            net, x, d = problem(n, 8, args.T, 1, dtype=np.dtype(dtype))
            fn = (lambda: fastrnn.forward(net, x)) if args.call == "forward" else (lambda: fastrnn.bptt(net, x, d))

            def with_pair(force=True):
                pair.FORCE = force
                try:
                    return fn()
                finally:
                    pair.FORCE = None
            times = interleaved({"pair": with_pair, "without": lambda: with_pair(False)}, args.rounds, warm=3)
            m = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
            kb = net.W_rec.nbytes / 1024
            print(f"| {np.dtype(dtype).name} | {n} | {kb:.0f} KB | {m['pair']:.3f} | {m['without']:.3f} "
                  f"| {m['pair'] / m['without']:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
