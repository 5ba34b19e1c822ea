"""The compiled register tile (``kernels._tiles``) two vectors wide against three, per dtype.

    python bench/tile_width.py [rounds] > bench/results/<date>-tile-width.md

Each step product a (B, K) @ W (K, N) of the training-step table's n = 128 cells (K = 128; N = 128, 384,
512: the simple cell, GRU, LSTM forward products), taken as the kernels take it at B > 1: W cut into
panels of the tile's width (the last zero-padded), each panel by every block of 4 rows. The tiles are the
package's own (``_tiles._tile_intrinsic(4, wide)``); the loop around them is this script's. One thread,
200 products per timing, both widths alternated in every round; GFLOP/s counted on the N real columns
(a last panel mostly padding is work too). Every result is compared with NumPy's product first.
"""
import sys
import time

import numpy as np
from numba import njit

from fastrnn.kernels._jit import threads_started
from fastrnn.kernels._rows import borrow, borrow2
from fastrnn.kernels._tiles import ROWS, VECTOR_BYTES, _tile_intrinsic

threads_started()
WIDTHS = (2, 3)
CASES = [(dtype, N, B) for dtype in ("float32", "float64") for N in (128, 384, 512) for B in (8, 32)]
K = 128


def products(wide):
    tile = _tile_intrinsic(ROWS, wide)

    @njit
    def run(a, P, out, reps):
        rows = a.shape[0]
        count, k = P.shape[0], P.shape[1]
        w = P.shape[2]
        lda = a.strides[0] // a.itemsize
        ldc = out.strides[0] // out.itemsize
        for _ in range(reps):
            for p in range(count):
                panel = borrow(P, p)
                for r0 in range(0, rows, ROWS):
                    tile(borrow(a, r0), lda, panel, k, borrow(out, r0)[p * w:], ldc)
    return run


def main(rounds):
    rng = np.random.default_rng(0)
    runs = {wide: products(wide) for wide in WIDTHS}
    print(f"`python bench/tile_width.py {rounds}`: GFLOP/s, medians of {rounds} rounds, one thread, K = {K}.\n")
    print("| dtype | N | B | " + " | ".join(f"4 x {w}" for w in WIDTHS) + " | 4 x 3 / 4 x 2 |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in WIDTHS) + " | ---: |")
    for dtype, N, B in CASES:
        a = rng.standard_normal((B, K)).astype(dtype)
        W = rng.standard_normal((K, N)).astype(dtype)
        args = {}
        for wide in WIDTHS:
            cols = wide * VECTOR_BYTES // np.dtype(dtype).itemsize
            count = -(-N // cols)
            padded = np.zeros((K, count * cols), dtype)
            padded[:, :N] = W
            P = np.ascontiguousarray(padded.reshape(K, count, cols).transpose(1, 0, 2))
            out = np.zeros((B, count * cols), dtype)
            runs[wide](a, P, out, 1)
            err = np.max(np.abs(out[:, :N] - a @ W)) / np.max(np.abs(a @ W))
            assert err < (1e-5 if dtype == "float32" else 1e-12), (dtype, N, B, wide, err)
            args[wide] = (a, P, out)
        times = {wide: [] for wide in WIDTHS}
        for _ in range(rounds):
            for wide in WIDTHS:
                t0 = time.perf_counter()
                runs[wide](*args[wide], 200)
                times[wide].append(time.perf_counter() - t0)
        rate = {wide: 2 * B * K * N * 200 / np.median(times[wide]) / 1e9 for wide in WIDTHS}
        print(f"| {dtype} | {N} | {B} | " + " | ".join(f"{rate[w]:.1f}" for w in WIDTHS)
              + f" | {rate[3] / rate[2]:.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 25)
