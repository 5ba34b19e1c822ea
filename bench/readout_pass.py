"""Whole gradient calls with a linear readout's squared error in one compiled pass against NumPy's formula.

    python bench/readout_pass.py [rounds] [--case CELL:N:B:DTYPE:THREADS ...]
    python bench/readout_pass.py [rounds] --alone


The problem of the training-step table (``test_torch_step.py``): T=100, m=32, a linear readout of 8 identity
outputs, the summed squared error, no mask. Each round calls ``fastrnn.bptt`` with ``readout.LINEAR_PASS`` on
and off, in random order (the same build: the switch is read in Python), after checking that both give the
same loss. THREADS is ``one`` (``fastrnn.threads(1)``) or ``default``. Medians in ms; "pairs" is the median of
the rounds' ratios.

``--alone`` times the pass by itself (``kernels.readout.linear_mse``), hot, on one thread, against NumPy's
formula on the same arrays (``readout.outputs``, ``loss_and_grad``, ``inject``, the BLAS held to one thread),
for T=100, o=8 and the table's n and B, after checking they agree.
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


def alone(rounds):
    import time
    from threadpoolctl import threadpool_limits
    from fastrnn.kernels.readout import linear_mse
    print(f"`python bench/readout_pass.py {rounds} --alone`: T={T}, o={OUT}, one thread, hot, medians in us\n")
    print("| dtype | n | B | pass | NumPy | pass / NumPy | pass GFLOP/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for dtype in ("float32", "float64"):
        for n, B in ((128, 8), (128, 32), (512, 8), (512, 32), (128, 1)):
            rng = np.random.default_rng(n + B)
            net = fastrnn.RNN.init(M, n, OUT, readout="linear", dtype=dtype, seed=0)
            W = {"W_out": net.W_out, "b_out": net.b_out}
            h1 = rng.standard_normal((T, B, n)).astype(dtype)
            d = rng.standard_normal((T, B, OUT)).astype(dtype)
            mask = np.ones((T, B, OUT), dtype)
            g = np.empty_like(h1)
            dW, db = np.empty_like(net.W_out), np.empty_like(net.b_out)

            def compiled():
                return linear_mse(h1, net.W_out, net.b_out, d, mask, g, dW, db)

            def numpy_way():
                r, y = readout.outputs(net, W, h1)
                L, dr = readout.loss_and_grad(net, r, y, d, mask, "mse")
                g2 = np.empty_like(h1)
                readout.inject(net, W, dr, h1, g2)
                return L
            with threadpool_limits(1):
                L_pass, L_numpy = compiled(), numpy_way()
                assert abs(L_pass - L_numpy) <= (1e-12 if dtype == "float64" else 1e-5) * abs(L_numpy)
                times = {"pass": [], "numpy": []}
                for _ in range(rounds):
                    for name, f in (("pass", compiled), ("numpy", numpy_way)):
                        t0 = time.perf_counter()
                        f()
                        times[name].append(time.perf_counter() - t0)
            a, b = np.median(times["pass"]), np.median(times["numpy"])
            flops = 3 * 2 * T * B * n * OUT
            print(f"| {dtype} | {n} | {B} | {a * 1e6:.1f} | {b * 1e6:.1f} | {a / b:.2f} | {flops / a / 1e9:.1f} |",
                  flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=200)
    parser.add_argument("--case", action="append", help="cell:n:B:dtype:threads (default: a set of the table's rows)")
    parser.add_argument("--alone", action="store_true", help="the pass alone, hot, against NumPy's formula")
    args = parser.parse_args(argv)
    if args.alone:
        return alone(args.rounds)
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
