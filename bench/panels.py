"""Measure the rule behind kernels/_panels.py: the per-step product a (rows, K) @ W (K, N) cut
into column panels of width w, taken r rows at a time, GFLOP/s on one thread, float32 and float64.

    python bench/panels.py > bench/results/<date>-panels.md

The shapes are the recurrent products of the kernels: forward (K = n, N = 4n) and backward
(K = 4n, N = n) of an LSTM with n from 32 to 512, rows (the batch block) from 2 to 32. As in the
kernels, each of T = 50 steps reads its own rows of state from a (T, rows, K) array and writes one
reused (rows, N) result, each panel's product straight into its columns (``_blas.gemm_into``).
'all rows' gives the rate for each panel width w with every row in one product; 'r x w' the best
of blocks of r in (4, 8, 16, all) rows by panels w in (32, 64, 128, 256, whole); 'picked' the
layout ``cut_panels`` picks (r x w, or 'K/kc' where it cuts K into kc chunks) and its rate through
the kernels' ``panel_dot``; 'whole' is one BLAS call (w = N, all rows: packed).
"""
import time

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls: loaded before threadpool_limits holds it to one thread)
from numba import njit
from threadpoolctl import threadpool_limits

from fastrnn.kernels._blas import gemm_into
from fastrnn.kernels._panels import cut_panels, panel_dot, panel_scratch

STEPS = 50


@njit(error_model="numpy")
def _products(a, P, out, repeats):
    tmp = panel_scratch(P, a.shape[1], a.shape[1], 1)
    for _ in range(repeats):
        for t in range(a.shape[0]):
            panel_dot(a[t], P, tmp, out, t & 1 == 1)


@njit(error_model="numpy")
def _blocks(a, P, out, repeats, r):
    """Panels P (1, count, K, w) taken r rows at a time, whatever the kernels' rule would pick."""
    count, w = P.shape[1], P.shape[3]
    rows = a.shape[1]
    for _ in range(repeats):
        for t in range(a.shape[0]):
            for p in range(count):
                for r0 in range(0, rows, r):
                    gemm_into(a[t, r0:min(rows, r0 + r)], P[0, p], out[r0:min(rows, r0 + r), p * w:(p + 1) * w])


def _rate(a, P, N, r=0):
    out = np.empty((a.shape[1], N), a.dtype)
    flops_per_step = 2 * a.shape[1] * a.shape[2] * N
    repeats = max(1, int(2e7 / (flops_per_step * STEPS)))
    run = (lambda k: _products(a, P, out, k)) if r == 0 else (lambda k: _blocks(a, P, out, k, r))
    run(1)
    times = []
    for _ in range(9):
        t = time.perf_counter()
        run(repeats)
        times.append(time.perf_counter() - t)
    return flops_per_step * STEPS * repeats / np.median(times) / 1e9


def _panels(W, w):
    K, N = W.shape
    return np.ascontiguousarray(W.reshape(K, N // w, w).transpose(1, 0, 2))[None]


def main():
    print("# Weight panels for the per-step product, GFLOP/s on one thread (one run)\n")
    print("`python bench/panels.py`; see its notes for the columns.\n")
    print("| dtype | K | N | rows | all rows, by panel width w | best r x w | picked | whole |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    shapes = [(n, 4 * n) for n in (32, 64, 128, 256, 512)] + [(4 * n, n) for n in (32, 64, 128, 256, 512)]
    with threadpool_limits(1):
        for dtype in (np.float32, np.float64):
            for K, N in shapes:
                for rows in (2, 4, 8, 16, 32):
                    rng = np.random.default_rng(0)
                    a = rng.standard_normal((STEPS, rows, K)).astype(dtype)
                    W = rng.standard_normal((K, N)).astype(dtype)
                    cells, every = [], {}
                    w = 8
                    while w <= N:
                        every[w] = _rate(a, _panels(W, w), N)
                        cells.append(f"{w}:{every[w]:.0f}")
                        w *= 2
                    grid = {}
                    for r in sorted({min(rows, r) for r in (4, 8, 16, rows)}):
                        for w in sorted({min(N, w) for w in (32, 64, 128, 256, N)}):
                            grid[r, w] = every[w] if r == rows else _rate(a, _panels(W, w), N, r)
                    (r_best, w_best), rate_best = max(grid.items(), key=lambda item: item[1])
                    P = cut_panels(W, rows, np.empty(0, dtype))
                    kc, _, _, w = P.shape
                    r = panel_scratch(P, rows, rows, 1)[3]
                    got = _rate(a, P, N)
                    shape = f"{r} x {w}" if kc == 1 else f"K/{kc}, {rows} x {w}"
                    print(f"| {np.dtype(dtype).name} | {K} | {N} | {rows} | {' '.join(cells)} | "
                          f"{r_best} x {w_best}: {rate_best:.0f} | {shape}: {got:.0f} | {every[N]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
