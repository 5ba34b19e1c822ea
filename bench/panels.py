"""Measure the rule behind kernels/_panels.py: the per-step product a (rows, K) @ W (K, N) cut
into column panels of width w, GFLOP/s on one thread for each w, float32 and float64.

    python bench/panels.py > bench/results/<date>-panels.md

The shapes are the recurrent products of the kernels: forward (K = n, N = 4n) and backward
(K = 4n, N = n) of an LSTM with n from 32 to 512, rows (the batch block) from 2 to 32. As in the
kernels, each of T = 50 steps reads its own rows of state from a (T, rows, K) array and writes one
reused (rows, N) result. The column marked * is the width ``cut_panels`` picks; 'picked' is its
rate, 'K/kc, w' where it cuts K into kc chunks of panels w wide; 'whole' is w = N (one BLAS call,
packed).
"""
import time

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls: loaded before threadpool_limits holds it to one thread)
from numba import njit
from threadpoolctl import threadpool_limits

from fastrnn.kernels._panels import cut_panels, panel_dot, panel_scratch

STEPS = 50


@njit(error_model="numpy")
def _products(a, P, out, repeats):
    tmp = panel_scratch(P, a.shape[1], a.shape[1], 1)
    for _ in range(repeats):
        for t in range(a.shape[0]):
            panel_dot(a[t], P, tmp, out)


def _rate(a, P, N):
    out = np.empty((a.shape[1], N), a.dtype)
    flops_per_step = 2 * a.shape[1] * a.shape[2] * N
    repeats = max(1, int(2e7 / (flops_per_step * STEPS)))
    _products(a, P, out, 1)
    times = []
    for _ in range(9):
        t = time.perf_counter()
        _products(a, P, out, repeats)
        times.append(time.perf_counter() - t)
    return flops_per_step * STEPS * repeats / np.median(times) / 1e9


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
                    a = rng.standard_normal((STEPS, rows, K)).astype(dtype)
                    W = rng.standard_normal((K, N)).astype(dtype)
                    kc, _, _, picked = cut_panels(W, rows, np.empty(0, dtype)).shape
                    picked = picked if kc == 1 else None     # K cut into kc chunks: none of the columns below
                    cells, best = [], {}
                    w = 8
                    while w <= N:
                        P = np.ascontiguousarray(W.reshape(K, N // w, w).transpose(1, 0, 2))[None]
                        best[w] = _rate(a, P, N)
                        cells.append(f"{w}:{best[w]:.0f}" + ("*" if w == picked else ""))
                        w *= 2
                    P = cut_panels(W, rows, np.empty(0, dtype))
                    got = _rate(a, P, N)
                    shape = f"{P.shape[3]}" if kc == 1 else f"K/{kc}, {P.shape[3]}"
                    print(f"| {np.dtype(dtype).name} | {K} | {N} | {rows} | {' '.join(cells)} | "
                          f"{shape}: {got:.0f} | {best[max(best)]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
