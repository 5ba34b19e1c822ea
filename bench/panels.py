"""Measure the rule behind kernels/_panels.py: the per-step product a (rows, K) @ W (K, N) cut
into column panels of width w, GFLOP/s on one thread for each w, float32 and float64.

    python bench/panels.py > bench/results/<date>-panels.md

The shapes are the recurrent products of the kernels: forward (K = n, N = 4n) and backward
(K = 4n, N = n) of an LSTM with n from 32 to 512, rows (the batch block) from 2 to 32. The
column marked * is the width ``cut_panels`` picks; 'whole' is w = N (one BLAS call, packed).
"""
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from fastrnn.kernels._panels import cut_panels


@njit(error_model="numpy")
def _products(a, P, out, steps):
    for _ in range(steps):
        for p in range(P.shape[0]):
            np.dot(a, P[p], out[p])


def _rate(a, P, flops_per_step):
    out = np.empty((P.shape[0], a.shape[0], P.shape[2]), a.dtype)
    steps = max(5, int(2e7 / flops_per_step))
    _products(a, P, out, 1)
    times = []
    for _ in range(9):
        t = time.perf_counter()
        _products(a, P, out, steps)
        times.append(time.perf_counter() - t)
    return flops_per_step * steps / np.median(times) / 1e9


def main():
    print("# Weight panels for the per-step product, GFLOP/s on one thread (one run)\n")
    print("`python bench/panels.py`; * = the width kernels/_panels.py picks.\n")
    print("| dtype | K | N | rows | GFLOP/s by panel width w | picked | whole |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    shapes = [(n, 4 * n) for n in (32, 64, 128, 256, 512)] + [(4 * n, n) for n in (32, 64, 128, 256, 512)]
    with threadpool_limits(1):
        for dtype in (np.float32, np.float64):
            for K, N in shapes:
                for rows in (2, 4, 8, 16, 32):
                    rng = np.random.default_rng(0)
                    a = rng.standard_normal((rows, K)).astype(dtype)
                    W = rng.standard_normal((K, N)).astype(dtype)
                    picked = cut_panels(W, rows).shape[2]
                    cells, best = [], {}
                    w = 8
                    while w <= N:
                        P = np.ascontiguousarray(W.reshape(K, N // w, w).transpose(1, 0, 2))
                        best[w] = _rate(a, P, 2 * rows * K * N)
                        cells.append(f"{w}:{best[w]:.0f}" + ("*" if w == picked else ""))
                        w *= 2
                    P = cut_panels(W, rows)
                    got = _rate(a, P, 2 * rows * K * N)
                    print(f"| {np.dtype(dtype).name} | {K} | {N} | {rows} | {' '.join(cells)} | "
                          f"{picked}: {got:.0f} | {best[max(best)]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
