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
At B > 1, where the batch kernels take their step products in compiled tiles (``runtime.blas.step_products``),
the products are also timed alone: the forward's T products h_t W_rec^T and the sweep's T products delta_t W_rec
in the kernels' own tiles and panels (each step on its own rows, as in a call), and the input projection x W_in^T
as the kernels take it (``_panels.block_rows_dot`` in the tiles). With the weight gradients they are "the products
alone"; the whole call less them is what it spends beyond its products (nonlinearities, readout, checks, Python).
Medians of every part. A part timed alone starts from caches the other parts and the GEMM have
filled, and runs slower than inside the whole call, where they hold what the part before it left: the
shares are upper bounds, and "rest" can come out negative.
"""
import argparse
import sys

import numba
import numpy as np

import fastrnn
from fastrnn import checks, readout
from fastrnn.cells import driver_for
from fastrnn.cells.base import weight_grads
from fastrnn.kernels._jit import FASTMATH
from fastrnn.kernels._panels import block_rows_dot, cut_panels, input_panels, panel_dot, panel_scratch
from fastrnn.kernels._tiles import TILES
from fastrnn.runtime import blas
from fastrnn.runtime.dispatch import workers

from common import interleaved

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
T, M, OUT = 100, 32, 8
FORWARD_PRODUCTS = "forward's step products alone (h_t W_rec^T, compiled tiles)"
SWEEP_PRODUCTS = "sweep's step products alone (delta_t W_rec, compiled tiles)"
INPUT_PRODUCT = "input projection alone (x W_in^T, compiled tiles)"
PRODUCTS = "the products alone (the three above and the weight gradients)"


@numba.njit(fastmath=FASTMATH)
def _chain(a, P, scratch, out):
    """out[t] = a[t] @ WT for every step, WT given as the kernels' panels P: the step products alone."""
    for t in range(a.shape[0]):
        panel_dot(a[t], P, scratch, out[t], t & 1 == 1)


@numba.njit
def _projection(a, bT, out, P):
    block_rows_dot(a, bT, out, 0, 1, P)        # the kernels' input projection, one block


def _step_products(WT, rows, steps, dtype, rng):
    """A callable taking ``steps`` products (rows, K) @ WT (K, N) in the kernels' compiled tiles, each on its
    own rows, and the check that its results are those of NumPy's product."""
    P = cut_panels(WT, rows, np.empty(0, dtype), TILES)
    scratch = panel_scratch(P, rows, rows, TILES)
    a = rng.standard_normal((steps, rows, WT.shape[0])).astype(dtype)
    out = np.empty((steps, rows, WT.shape[1]), dtype)
    _chain(a, P, scratch, out)
    np.testing.assert_allclose(out, a @ WT, rtol=1e-3 if dtype == np.float32 else 1e-10,
                               atol=1e-3 if dtype == np.float32 else 1e-10)
    return lambda: _chain(a, P, scratch, out)


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
    if B > 1 and blas.step_products() == "tiles":       # the products the batch kernels take, alone
        W_in, W_rec = (p.W["W_in"], p.W["W_rec"]) if cell == "RNN" else (p.W["W_ih"], p.W["W_hh"])
        x2 = np.ascontiguousarray(x.reshape(T * B, M))
        proj = np.empty((T * B, r), dtype)
        calls[FORWARD_PRODUCTS] = _step_products(W_rec.T, B, T, dtype, rng)
        calls[SWEEP_PRODUCTS] = _step_products(W_rec, B, T, dtype, rng)
        P_in = input_panels(W_in.T, TILES)
        calls[INPUT_PRODUCT] = lambda: _projection(x2, W_in.T, proj, P_in)
        calls[INPUT_PRODUCT]()
        np.testing.assert_allclose(proj, x2 @ W_in.T, rtol=1e-3 if dtype == np.float32 else 1e-10,
                                   atol=1e-3 if dtype == np.float32 else 1e-10)
    flops = {FORWARD_PRODUCTS: 2 * r * n * B * T, SWEEP_PRODUCTS: 2 * r * n * B * T, INPUT_PRODUCT: 2 * r * M * B * T,
             PRODUCTS: 4 * r * n * B * T + 2 * r * M * B * T + fwd,
             "fastrnn.bptt (the whole call)": 3 * fwd, "forward kernel (driver.forward)": fwd,
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
    if FORWARD_PRODUCTS in med:
        derived[PRODUCTS] = (med[FORWARD_PRODUCTS] + med[SWEEP_PRODUCTS] + med[INPUT_PRODUCT]
                             + med["weight gradients (cells.base.weight_grads)"])
        derived["beyond the products (whole less the products alone)"] = whole - derived[PRODUCTS]
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
    if PRODUCTS in derived:
        print(f"Its products alone take {derived[PRODUCTS] * 1e3:.3f} ms, "
              f"{flops[PRODUCTS] / derived[PRODUCTS] / gemm:.2f} of the GEMM rate; the rest of the call, "
              f"{derived['beyond the products (whole less the products alone)'] * 1e3:.3f} ms.")


if __name__ == "__main__":
    sys.exit(main())
