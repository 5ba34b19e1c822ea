"""The weight-gradient product D^T [x | h] of every BPTT call (kernels.bptt._weight_grads), through
Numba's np.dot (SciPy's OpenBLAS) and through NumPy's own OpenBLAS (kernels._blas,
runtime.blas.sgemm_address), one thread, at the training-step table's shapes (T = 100, m = 32),
float32 (the kernels take NumPy's OpenBLAS for float32 only); and, float64, the product as
D^T [x | h] against the product turned round, [x | h]^T D copied out transposed; and, for the
simple cell in both dtypes, the joined product against two products D^T x and D^T h with no copy
of x and h side by side (``cells.base.weight_grad_layout`` picks among the three).

    python bench/weight_grads.py > bench/results/<date>-weight-gradient-blas.md

Both ways run in one process, interleaved (five rounds of each); medians of whole kernel calls
(the copy into [x | h], the bias sum and the copies out included). The values of the two ways
are compared first.
"""
import time

import numpy as np

import fastrnn
from fastrnn.kernels import _weight_grads
from fastrnn.cells.base import GRAD_ROW_PAD, weight_grad_layout
from fastrnn.kernels.bptt import JOINED, SPLIT, TURNED
from fastrnn.runtime import blas

ROUNDS, CALLS = 5, 10
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _median_ms(f):
    out = []
    for _ in range(CALLS):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return float(np.median(out)) * 1e3


def _case(cell, n, B, dtype, ways, T=100, m=32):
    """Two ways (sgemm address, layout) of one product: its flops and the two medians, ms."""
    rng = np.random.default_rng(0)
    r = GATES[cell] * n
    x = rng.standard_normal((T, B, m)).astype(dtype)
    h = rng.standard_normal((T, B, n)).astype(dtype)
    D = rng.standard_normal((T, B, r)).astype(dtype)
    outs = [np.empty((r, m), dtype), np.empty((r, n), dtype), np.empty(r, dtype)]
    XH = np.empty((T * B, m + n), dtype)
    turned = np.empty((m + n, r + GRAD_ROW_PAD // np.dtype(dtype).itemsize), dtype)
    G = {JOINED: np.empty((r, m + n), dtype), SPLIT: np.empty((r, m + n), dtype), TURNED: turned}

    def run(way):
        sgemm, layout = way
        _weight_grads.serial(x, h, D, *outs, XH, G[layout], np.empty(0, dtype), False, sgemm, layout,
                             np.empty((0, 0, 0), dtype), 1)
        return [o.copy() for o in outs]

    a, b = run(ways[0]), run(ways[1])
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-3)
    flops = 2 * T * B * r * (m + n)
    first, second = [], []
    for _ in range(ROUNDS):
        first.append(_median_ms(lambda: run(ways[0])))
        second.append(_median_ms(lambda: run(ways[1])))
    return flops, float(np.median(first)), float(np.median(second))


NAMES = {JOINED: "joined D^T [x h]", TURNED: "turned", SPLIT: "split"}
SHAPES = ((128, 8), (128, 32), (256, 8), (256, 32), (512, 8), (512, 32))


def main():
    address = blas.sgemm_address()
    libs = ", ".join(f"{lib['filepath'].rsplit('/', 1)[-1]} {lib['version']}" for lib in blas.info())
    print("# The weight-gradient product: Numba's np.dot (SciPy's OpenBLAS) against NumPy's OpenBLAS\n")
    print(f"`python bench/weight_grads.py`, one thread; BLAS libraries: {libs}. Whole `_weight_grads` calls "
          "(T=100, m=32, rows T·B, r = gates·n rows of D), medians of 5 interleaved rounds of 10 calls; "
          "gain = np.dot time / NumPy-OpenBLAS time.\n")
    with fastrnn.threads(1), blas.single_threaded():
        if address == 0:
            print("No ILP64 OpenBLAS sgemm in this process: nothing to compare in float32.")
        else:
            print("| cell | dtype | n | B | np.dot ms | GFLOP/s | NumPy OpenBLAS ms | GFLOP/s | gain |")
            print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for cell in ("LSTM", "GRU", "RNN"):
                for n, B in SHAPES:
                    flops, a, b = _case(cell, n, B, np.float32, ((0, JOINED), (address, JOINED)))
                    print(f"| {cell} | float32 | {n} | {B} | {a:.2f} | {flops / a / 1e6:.0f} | "
                          f"{b:.2f} | {flops / b / 1e6:.0f} | {a / b:.2f} |", flush=True)
        print("\nFloat64 through np.dot: D^T [x | h] into (r, m + n) against [x | h]^T D into (m + n, r + pad) "
              "copied out transposed; `picked`: what `weight_grad_layout` takes.\n")
        print("| cell | n | B | D^T [x h] ms | GFLOP/s | turned ms | GFLOP/s | gain | picked |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for cell in ("LSTM", "GRU", "RNN"):
            for n, B in SHAPES:
                flops, a, b = _case(cell, n, B, np.float64, ((0, JOINED), (0, TURNED)))
                picked = NAMES[weight_grad_layout(np.float64, GATES[cell] * n, 32, n)[1]]
                print(f"| {cell} | {n} | {B} | {a:.2f} | {flops / a / 1e6:.0f} | {b:.2f} | {flops / b / 1e6:.0f} | "
                      f"{a / b:.2f} | {picked} |", flush=True)
        print("\nThe simple cell (r = n): D^T [x | h] as one product from x and h copied side by side, against "
              "D^T x and D^T h as two products (float32 through NumPy's OpenBLAS where found); `picked`: what "
              "`weight_grad_layout` takes.\n")
        print("| dtype | n | B | joined ms | GFLOP/s | split ms | GFLOP/s | split / joined | picked |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for dtype in (np.float32, np.float64):
            sgemm = address if dtype == np.float32 else 0
            for n, B in ((32, 1), (32, 8), (32, 32), (64, 1), (64, 8), (64, 32), (128, 1)) + SHAPES:
                flops, a, b = _case("RNN", n, B, dtype, ((sgemm, JOINED), (sgemm, SPLIT)))
                picked = NAMES[weight_grad_layout(dtype, n, 32, n)[1]]
                print(f"| {np.dtype(dtype).name} | {n} | {B} | {a:.3f} | {flops / a / 1e6:.0f} | {b:.3f} | "
                      f"{flops / b / 1e6:.0f} | {b / a:.2f} | {picked} |", flush=True)

if __name__ == "__main__":
    main()
