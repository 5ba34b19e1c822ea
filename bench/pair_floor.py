"""Where the pair starts to pay (``runtime.pair.MIN_WEIGHT_BYTES``): whole ``fastrnn.bptt`` calls at B = 1 with the pair
forced, without it, and as the rule and the measured choice take it (``pair.forward_pays``), at default threads.

    python bench/pair_floor.py [rounds] [CELL:DTYPE:N ...]

Each case (default: the sizes around the floor, ``rnn:float64:128`` ... ``lstm:float64:128``) is the problem of
``pair_forward.py`` (T = 1000, m = 8, a units readout of n/4, summed squared error; the gated cells' from
``common.lstm_problem``). Each round takes both ways in a new random order, each as three calls back to back of
which the last is timed: a call then follows one of its own kind, as in a training loop, not the other way's (a
forced pair's weight gradients on Numba's pool leave its worker spinning for most of a millisecond, which the next
call's helper meets). The rule's calls keep their measurements from round to round, as a training loop's would.
Medians, ms, and their ratios to without (under 1: faster).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn.runtime import pair  # noqa: E402

from common import lstm_problem, problem  # noqa: E402

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CASES = ("rnn:float64:128", "rnn:float64:160", "rnn:float32:160", "rnn:float32:192", "rnn:float32:224",
         "rnn:float32:256", "gru:float32:128", "lstm:float32:128", "gru:float64:128", "lstm:float64:128")


def _case(text):
    cell, dtype, n = text.split(":")
    if cell not in GATES or dtype not in ("float32", "float64"):
        raise argparse.ArgumentTypeError(f"expected CELL:DTYPE:N with CELL rnn, lstm or gru, got {text}")
    return cell, np.dtype(dtype), int(n)


def _block(fn, force):
    def timed():
        pair.FORCE = force
        try:
            for _ in range(2):
                fn()
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        finally:
            pair.FORCE = None
    return timed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=20)
    parser.add_argument("cases", nargs="*", type=_case)
    args = parser.parse_args(argv)
    cases = args.cases or [_case(c) for c in CASES]
    order = np.random.default_rng(1)
    print(f"`python bench/pair_floor.py {args.rounds}`: whole bptt calls, B=1, T=1000, default threads, medians of "
          f"{args.rounds} rounds, ms\n")
    print("| cell | dtype | n | recurrent weights | pair | without | rule | pair / without | rule / without |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cell, dtype, n in cases:
        if cell == "rnn":
            net, x, d = problem(n, 8, 1000, 1, dtype=dtype)
        else:
            net, x, d = lstm_problem(n, 8, 1000, 1, dtype=dtype, cell=cell)
        ways = {"pair": _block(lambda: fastrnn.bptt(net, x, d), True),
                "without": _block(lambda: fastrnn.bptt(net, x, d), False),
                "rule": _block(lambda: fastrnn.bptt(net, x, d), None)}
        times = {k: [] for k in ways}
        for _ in range(args.rounds):
            for k in order.permutation(list(ways)):
                times[k].append(ways[k]())
        med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
        kb = GATES[cell] * n * n * dtype.itemsize // 1024
        print(f"| {cell} | {dtype.name} | {n} | {kb} KB | {med['pair']:.3f} | {med['without']:.3f} | {med['rule']:.3f} | "
              f"{med['pair'] / med['without']:.2f} | {med['rule'] / med['without']:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
