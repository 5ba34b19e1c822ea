"""The compiled register tile (``kernels._tiles``) in each width it can take: vectors of 32 bytes two or three
wide, of 64 bytes two to four wide, four or eight rows.

    python bench/tile_width.py [rounds] > bench/results/<date>-tile-width.md

Each step product a (B, K) @ W (K, N) of the training-step table (K = 128, N = 512: the LSTM n=128's forward
product; K = 512, N = 2048 and 512: n = 512's), taken as the kernels take it at B > 1: W cut into panels of the
tile's width (the last zero-padded), each panel by every block of rows. The tiles are the package's own
(``_tiles._tile_intrinsic(rows, vectors, vector_bytes)``); the loop around them is this script's. One thread,
about 2e8 multiply-adds per timing, the widths alternated in every round; GFLOP/s counted on the N real columns.
Every result is compared with NumPy's product first. On a CPU without AVX-512, LLVM splits 64-byte vectors in
two: those columns then tell what the wider tile costs there.
"""
import sys
import time

import numpy as np
from numba import njit

from fastrnn.kernels._jit import threads_started
from fastrnn.kernels._rows import borrow
from fastrnn.kernels._tiles import TILE_BYTES, _tile_intrinsic

threads_started()
VARIANTS = {"float32": [(4, 2, 32), (4, 2, 64), (4, 3, 64), (4, 4, 64), (8, 2, 64), (8, 3, 64)],
            "float64": [(4, 3, 32), (4, 2, 64), (4, 3, 64), (4, 4, 64), (8, 2, 64), (8, 3, 64)]}
SHAPES = [(128, 512, 8), (128, 512, 32), (512, 2048, 8), (512, 2048, 32), (512, 512, 8)]


def products(rows, vectors, vector_bytes):
    tile = _tile_intrinsic(rows, vectors, vector_bytes)

    @njit
    def run(a, P, out, reps):
        count, k, w = P.shape
        lda = a.strides[0] // a.itemsize
        ldc = out.strides[0] // out.itemsize
        for _ in range(reps):
            for p in range(count):
                panel = borrow(P, p)
                for r0 in range(0, a.shape[0] - rows + 1, rows):
                    tile(borrow(a, r0), lda, 1, panel, k, borrow(out, r0)[p * w:], ldc)
    return run


def main(rounds):
    rng = np.random.default_rng(0)
    print(f"`python bench/tile_width.py {rounds}`: GFLOP/s, medians of {rounds} rounds, one thread; the kernels take "
          f"{TILE_BYTES}-byte vectors on this machine. Columns: (rows, vectors, bytes a vector).\n")
    for dtype, variants in VARIANTS.items():
        runs = {v: products(*v) for v in variants}
        print(f"| {dtype}: K | N | B | " + " | ".join(str(v) for v in variants) + " |")
        print("| --- | ---: | ---: | " + " | ".join("---:" for _ in variants) + " |")
        for K, N, B in SHAPES:
            a = rng.standard_normal((B, K)).astype(dtype)
            W = rng.standard_normal((K, N)).astype(dtype)
            args = {}
            for v in variants:
                rows, vectors, vector_bytes = v
                cols = vectors * vector_bytes // np.dtype(dtype).itemsize
                count = -(-N // cols)
                padded = np.zeros((K, count * cols), dtype)
                padded[:, :N] = W
                P = np.ascontiguousarray(padded.reshape(K, count, cols).transpose(1, 0, 2))
                out = np.zeros((B, count * cols), dtype)
                runs[v](a, P, out, 1)
                err = np.max(np.abs(out[:, :N] - a @ W)) / np.max(np.abs(a @ W))
                assert err < (1e-5 if dtype == "float32" else 1e-12), (dtype, K, N, B, v, err)
                args[v] = (a, P, out)
            reps = max(1, int(2e8 / (2 * B * K * N)))
            times = {v: [] for v in variants}
            for _ in range(rounds):
                for v in variants:
                    t0 = time.perf_counter()
                    runs[v](*args[v], reps)
                    times[v].append(time.perf_counter() - t0)
            print(f"| {K} | {N} | {B} | " + " | ".join(f"{2 * B * K * N * reps / np.median(times[v]) / 1e9:.0f}"
                                                     for v in variants) + " |")
        print()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
