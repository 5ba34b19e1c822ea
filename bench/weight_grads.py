"""The weight-gradient product D^T [x | h] of every BPTT call (kernels.bptt._weight_grads), through
Numba's np.dot (SciPy's OpenBLAS) and through NumPy's own OpenBLAS (kernels._blas,
runtime.blas.sgemm_address), one thread, at the training-step table's shapes (T = 100, m = 32),
float32 (the kernels take NumPy's OpenBLAS for float32 only).

    python bench/weight_grads.py > bench/results/<date>-weight-gradient-blas.md

Both ways run in one process, interleaved (five rounds of each); medians of whole kernel calls
(the copy into [x | h] and the bias sum included). The values of the two ways are compared first.
"""
import time

import numpy as np

import fastrnn
from fastrnn.kernels import _weight_grads
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


def _case(cell, n, B, dtype, address, T=100, m=32):
    rng = np.random.default_rng(0)
    r = GATES[cell] * n
    x = rng.standard_normal((T, B, m)).astype(dtype)
    h = rng.standard_normal((T, B, n)).astype(dtype)
    D = rng.standard_normal((T, B, r)).astype(dtype)
    outs = [np.empty((r, m), dtype), np.empty((r, n), dtype), np.empty(r, dtype)]
    XH, G = np.empty((T * B, m + n), dtype), np.empty((r, m + n), dtype)

    def run(sgemm):
        _weight_grads.serial(x, h, D, *outs, XH, G, sgemm, 1)
        return [o.copy() for o in outs]

    a, b = run(0), run(address)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-3)
    flops = 2 * T * B * r * (m + n)
    scipy_ms, numpy_ms = [], []
    for _ in range(ROUNDS):
        scipy_ms.append(_median_ms(lambda: run(0)))
        numpy_ms.append(_median_ms(lambda: run(address)))
    return flops, float(np.median(scipy_ms)), float(np.median(numpy_ms))


def main():
    address = blas.sgemm_address()
    libs = ", ".join(f"{lib['filepath'].rsplit('/', 1)[-1]} {lib['version']}" for lib in blas.info())
    print("# The weight-gradient product: Numba's np.dot (SciPy's OpenBLAS) against NumPy's OpenBLAS\n")
    print(f"`python bench/weight_grads.py`, one thread; BLAS libraries: {libs}. Whole `_weight_grads` calls "
          "(T=100, m=32, rows T·B, r = gates·n rows of D), medians of 5 interleaved rounds of 10 calls; "
          "gain = np.dot time / NumPy-OpenBLAS time.\n")
    if address == 0:
        print("No ILP64 OpenBLAS sgemm in this process: nothing to compare.")
        return
    print("| cell | dtype | n | B | np.dot ms | GFLOP/s | NumPy OpenBLAS ms | GFLOP/s | gain |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with fastrnn.threads(1), blas.single_threaded():
        for dtype in (np.float32,):       # float64 ran level through either library: the kernels keep np.dot
            for cell in ("LSTM", "GRU", "RNN"):
                for n, B in ((128, 8), (128, 32), (512, 8), (512, 32)):
                    flops, a, b = _case(cell, n, B, dtype, address)
                    print(f"| {cell} | {np.dtype(dtype).name} | {n} | {B} | {a:.2f} | {flops / a / 1e6:.0f} | "
                          f"{b:.2f} | {flops / b / 1e6:.0f} | {a / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
