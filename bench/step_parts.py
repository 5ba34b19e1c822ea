"""Where one thread's training-step call goes: ``fastrnn.bptt`` taken apart, each part timed in the same
interleaved rounds as the whole call and as one thread's GEMM (the roofline's rate).

    python bench/step_parts.py [--cell RNN] [--n 128] [--B 8] [--dtype float32] [--rounds 300]

The problem is a row of the training-step table (``test_torch_step.py``): T=100, m=32, a linear readout
of 8 outputs, summed squared error. The parts are the calls ``fastrnn.bptt`` makes, on the arrays it
would hand them: the input checks (``checks.problem``), the forward kernel (the cell driver's forward),
the readout's loss and injected errors (``readout.injected_errors``), the backward sweep with the weight
gradients (the driver's backward), and the weight-gradient products alone (``cells.base.weight_grads``).
"rest" is the whole call less those four; "sweep" the backward less its weight gradients. Each part's
GFLOP/s counts the multiply-adds of its matrix products (the whole call: those of the table, three times
the forward's), and "of GEMM rate" divides by one thread's GEMM (n = 512) timed in the same rounds.
Medians of every part. A part timed alone starts from caches the other parts and the GEMM have
filled, and runs slower than inside the whole call, where they hold what the part before it left: the
shares are upper bounds, and "rest" can come out negative.
"""
import argparse
import sys

import numpy as np

import fastrnn
from fastrnn import checks, readout
from fastrnn.cells import driver_for
from fastrnn.cells.base import weight_grads
from fastrnn.runtime.dispatch import workers

from common import interleaved

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
T, M, OUT = 100, 32, 8


def parts(cell, n, B, dtype):
    """{part: callable} and {part: flops} for one problem, each part checked to run first."""
    rng = np.random.default_rng(0)
    net = fastrnn.MODELS[cell.lower()].init(M, n, OUT, readout="linear", dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, M)).astype(dtype)
    d = rng.standard_normal((T, B, OUT)).astype(dtype)
    driver = driver_for(net)
    p = checks.problem(net, x, d)
    whole = checks.truncation(None, T)
    with workers():
        run = driver.forward(net, p.W, p.x, p.state0, p.forcing, 1, scratch=True)
        _, g, _, _ = readout.injected_errors(net, p.W, run.h[1:], p.d, p.readout_mask(), p.loss)
    g = g.copy()
    r = GATES[cell] * n
    D = rng.standard_normal((T, B, r)).astype(dtype)
    h_prev = np.ascontiguousarray(run.states[0][:-1])
    outs = (np.empty((r, M), dtype), np.empty((r, n), dtype), np.empty(r, dtype))
    a = rng.standard_normal((512, 512)).astype(dtype)
    c = np.empty_like(a)

    def forward():
        with workers():
            driver.forward(net, p.W, p.x, p.state0, p.forcing, 1, scratch=True)

    def injected():
        with workers():
            readout.injected_errors(net, p.W, run.h[1:], p.d, p.readout_mask(), p.loss)

    def backward():
        with workers():
            driver.backward(net, p.W, p.x, run, g.copy(), whole, p.forcing, 1)

    def products():
        with workers():
            weight_grads(1, p.x, h_prev, D, *outs)

    calls = {"fastrnn.bptt (the whole call)": lambda: fastrnn.bptt(net, x, d),
             "input checks (checks.problem)": lambda: checks.problem(net, x, d),
             "forward kernel (driver.forward)": forward,
             "readout, loss and injected errors": injected,
             "backward (driver.backward)": backward,
             "weight gradients (cells.base.weight_grads)": products,
             "one thread's GEMM, n = 512": lambda: np.matmul(a, a, out=c)}
    fwd = 2 * r * (M + n) * B * T
    flops = {"fastrnn.bptt (the whole call)": 3 * fwd, "forward kernel (driver.forward)": fwd,
             "readout, loss and injected errors": 3 * 2 * OUT * n * B * T, "backward (driver.backward)": 2 * fwd,
             "weight gradients (cells.base.weight_grads)": fwd, "one thread's GEMM, n = 512": 2 * 512 ** 3}
    return calls, flops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=sorted(GATES), default="RNN")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits
    with fastrnn.threads(1), threadpool_limits(1):
        calls, flops = parts(args.cell, args.n, args.B, np.dtype(args.dtype))
        times = interleaved(calls, args.rounds, warm=5)
    med = {k: float(np.median(v)) for k, v in times.items()}
    gemm = flops["one thread's GEMM, n = 512"] / med["one thread's GEMM, n = 512"]
    whole = med["fastrnn.bptt (the whole call)"]
    derived = {"rest (whole less checks, forward, readout and backward)":
               whole - sum(med[k] for k in ("input checks (checks.problem)", "forward kernel (driver.forward)",
                                            "readout, loss and injected errors", "backward (driver.backward)")),
               "sweep (backward less its weight gradients)":
               med["backward (driver.backward)"] - med["weight gradients (cells.base.weight_grads)"]}
    flops["sweep (backward less its weight gradients)"] = flops["forward kernel (driver.forward)"] * (
        args.n / (M + args.n))
    print(f"`python bench/step_parts.py --cell {args.cell} --n {args.n} --B {args.B} --dtype {args.dtype} "
          f"--rounds {args.rounds}`: one thread, T={T}, m={M}, linear readout of {OUT}, medians of {args.rounds} "
          f"interleaved rounds.\n")
    print("| part | median | of the whole call | GFLOP/s | of GEMM rate |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for k, v in list(med.items()) + list(derived.items()):
        f = flops.get(k)
        rate = f"{f / v / 1e9:.1f} | {f / v / gemm:.2f}" if f and v > 0 else "— | —"
        print(f"| {k} | {v * 1e3:.3f} ms | {v / whole:.2f} | {rate} |")
    print(f"\nAt the 0.70 of the GEMM rate that issue 17 asks for, the whole call would take "
          f"{flops['fastrnn.bptt (the whole call)'] / (0.7 * gemm) * 1e3:.3f} ms.")


if __name__ == "__main__":
    sys.exit(main())
