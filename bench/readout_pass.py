"""Whole gradient calls with a linear readout's squared error in one compiled pass against NumPy's formula.

    python bench/readout_pass.py [rounds] [--case CELL:N:B:DTYPE:THREADS ...]

The problem of the training-step table (``test_torch_step.py``): T=100, m=32, a linear readout of 8 identity
outputs, the summed squared error, no mask. Each round calls ``fastrnn.bptt`` with ``readout.LINEAR_PASS`` on
and off, in random order (the same build: the switch is read in Python), after checking that both give the
same loss. THREADS is ``one`` (``fastrnn.threads(1)``) or ``default``. Medians in ms; "pairs" is the median of
the rounds' ratios.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn import readout  # noqa: E402
from common import interleaved  # noqa: E402

CASES = ("rnn:128:8:float32:one", "lstm:128:8:float32:one", "gru:128:8:float32:one", "rnn:128:32:float64:one",
         "lstm:128:8:float64:one", "gru:128:8:float64:one", "lstm:32:1:float32:default", "rnn:512:8:float32:one")
T, M, OUT = 100, 32, 8


def case(cell, n, B, dtype, threads, rounds):
    rng = np.random.default_rng(0)
    net = fastrnn.MODELS[cell].init(M, n, OUT, readout="linear", dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, M)).astype(dtype)
    d = rng.standard_normal((T, B, OUT)).astype(dtype)

    def way(on):
        def call():
            readout.LINEAR_PASS = on
            if threads == "one":
                with fastrnn.threads(1):
                    return fastrnn.bptt(net, x, d)
            return fastrnn.bptt(net, x, d)
        return call
    try:
        L_pass, L_numpy = way(True)()[0], way(False)()[0]
        tol = 1e-12 if dtype == "float64" else 1e-5
        assert abs(L_pass - L_numpy) <= tol * abs(L_numpy), (L_pass, L_numpy)
        return interleaved({"pass": way(True), "numpy": way(False)}, rounds, warm=5)
    finally:
        readout.LINEAR_PASS = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=200)
    parser.add_argument("--case", action="append", help="cell:n:B:dtype:threads (default: a set of the table's rows)")
    args = parser.parse_args(argv)
    print(f"`python bench/readout_pass.py {args.rounds}`: T={T}, m={M}, linear readout of {OUT}, medians in ms\n")
    print("| cell | n | B | dtype | threads | pass | NumPy | pass / NumPy | pairs |")
    print("| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for spec in args.case or CASES:
        cell, n, B, dtype, threads = spec.split(":")
        t = case(cell, int(n), int(B), dtype, threads, args.rounds)
        a, b = np.median(t["pass"]), np.median(t["numpy"])
        pairs = np.median(np.array(t["pass"]) / np.array(t["numpy"]))
        print(f"| {cell} | {n} | {B} | {dtype} | {threads} | {a * 1e3:.3f} | {b * 1e3:.3f} | {a / b:.3f} "
              f"| {pairs:.3f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
