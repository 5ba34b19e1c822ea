"""A batch's LSTM forward pass with each step cut by units between two threads that meet at every step, against
the kernel's cut by batch rows: a measurement for issue 17, not a kernel of the package.

    python bench/unit_split.py [rounds] [--n 512 ...] [--B 8 ...]

At B > 1 the forward kernel (``kernels.lstm_forward``) cuts the batch into blocks of rows, one a thread for the
whole sequence (no meetings), and every thread streams all of W_hh at every step; where W_hh outgrows a core's L2
cache (float32 n = 512: 4 MB) that stream from L3 bounds the step, and a batch of 8 has two blocks at most. Cut by
units instead, each thread takes every row by the gate rows of its own half of the units (half of W_hh, cut
into the tiles' panels by the thread itself, every call, a gate at a time), updates those units' cells, and waits for the
other half before the next step (flags set with release stores, as ``kernels.chain`` does for the simple cell at
B = 1; no taking over: this is the calling thread and the process's helper thread, ``runtime.overlap``, both
running). The input projection is NumPy's product, in the timing. Products in the package's tiles
(``_tiles.tile_products``), the cell's arithmetic with its helpers; the states are compared with
``fastrnn.forward``'s first. float32, T = 100, m = 32, the BLAS held to one thread; medians of interleaved
rounds: the kernel on two threads (rows), the units split, the kernel on one thread.
"""
import argparse
import os
import sys
import threading
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn.kernels._activations import LOGISTIC, TANH, activate, constants, tanh  # noqa: E402
from fastrnn.kernels._panels import cut_elements, cut_panels, panel_scratch  # noqa: E402
from fastrnn.kernels._sync import load_acquire, store_release  # noqa: E402
from fastrnn.kernels._tiles import TILES, tile_products  # noqa: E402
from fastrnn.runtime import overlap  # noqa: E402

FASTMATH = {"contract", "reassoc", "nsz", "arcp"}


@njit(fastmath=FASTMATH, nogil=True)
def _half(mine, u0, u1, W_hh, pre, h, c, flags):
    """Units u0:u1 of h[1:] and c[1:] for every row. pre (T, B, 4n): x W_ih^T + b; flags (T, 2) int64, this
    half's step t done when flags[t, mine] is 1."""
    T, B, n4 = pre.shape
    n = n4 // 4
    hu = u1 - u0
    K = constants(h)
    size = cut_elements(B, 2, n, hu, W_hh.itemsize)
    bufs = np.empty((4, size), W_hh.dtype)
    P0 = cut_panels(W_hh[u0:u1].T, B, bufs[0], TILES)        # each gate's rows of these units, turned round,
    P1 = cut_panels(W_hh[n + u0:n + u1].T, B, bufs[1], TILES)     # in the tiles' panels (``_panels._copy``)
    P2 = cut_panels(W_hh[2 * n + u0:2 * n + u1].T, B, bufs[2], TILES)
    P3 = cut_panels(W_hh[3 * n + u0:3 * n + u1].T, B, bufs[3], TILES)
    edge, pad = panel_scratch(P0, B, B, TILES)[:2]
    rec = np.empty((4, B, hu), h.dtype)
    seg = np.empty(4 * hu, h.dtype)
    other = 1 - mine
    for t in range(T):
        tile_products(h[t], P0, rec[0], edge[0, 0], pad, False)
        tile_products(h[t], P1, rec[1], edge[0, 0], pad, False)
        tile_products(h[t], P2, rec[2], edge[0, 0], pad, False)
        tile_products(h[t], P3, rec[3], edge[0, 0], pad, False)
        for b in range(B):
            for g in range(4):
                for k in range(hu):
                    seg[g * hu + k] = pre[t, b, g * n + u0 + k] + rec[g, b, k]
            activate(seg[:2 * hu], K, LOGISTIC)
            activate(seg[2 * hu:3 * hu], K, TANH)
            activate(seg[3 * hu:], K, LOGISTIC)
            for k in range(hu):
                cc = seg[hu + k] * c[t, b, u0 + k] + seg[k] * seg[2 * hu + k]
                c[t + 1, b, u0 + k] = cc
                h[t + 1, b, u0 + k] = seg[3 * hu + k] * tanh(cc, K)
        store_release(flags, 2 * t + mine, 1)
        while load_acquire(flags, 2 * t + other) != 1:
            pass
    return 0


def split_forward(W, x):
    """h (T + 1, B, n) of the LSTM from h0 = c0 = 0, each step cut by units between this thread and the helper."""
    T, B, m = x.shape
    n = W["W_hh"].shape[1]
    pre = (x.reshape(T * B, m) @ W["W_ih"].T + (W["b_ih"] + W["b_hh"])).reshape(T, B, 4 * n)
    h = np.zeros((T + 1, B, n), x.dtype)
    c = np.zeros((T + 1, B, n), x.dtype)
    cut = n // 2 // 16 * 16
    flags = np.zeros(2 * T, np.int64)
    done = threading.Event()

    def helper_half():
        _half(1, cut, n, W["W_hh"], pre, h, c, flags)
        done.set()
    overlap._helper().submit(helper_half)
    _half(0, 0, cut, W["W_hh"], pre, h, c, flags)
    done.wait()
    return h


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=30)
    parser.add_argument("--n", type=int, action="append")
    parser.add_argument("--B", type=int, action="append")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"`python bench/unit_split.py {args.rounds}`: float32 LSTM forward, T=100, m=32, medians of "
          f"{args.rounds} interleaved rounds, ms\n")
    print("| n | W_hh | B | rows, 2 threads (kernel) | units, 2 threads | one thread (kernel) | units / rows | "
          "units / one thread |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with threadpool_limits(1):
        for n in args.n or (256, 512, 1024):
            for B in args.B or (8, 32):
                net = fastrnn.LSTM.init(32, n, 8, dtype=np.float32, seed=0)
                W = net.params()
                x = rng.standard_normal((100, B, 32)).astype(np.float32)
                with fastrnn.threads(2):
                    want = fastrnn.forward(net, x)[0]
                got = split_forward(W, x)
                err = float(np.max(np.abs(got - want)))
                assert err < 1e-4, err
                times = {"rows": [], "units": [], "one": []}
                for _ in range(args.rounds):
                    for way in np.random.default_rng(len(times["rows"])).permutation(3):
                        t0 = time.perf_counter()
                        if way == 0:
                            with fastrnn.threads(2):
                                fastrnn.forward(net, x)
                        elif way == 1:
                            split_forward(W, x)
                        else:
                            with fastrnn.threads(1):
                                fastrnn.forward(net, x)
                        times[("rows", "units", "one")[way]].append(time.perf_counter() - t0)
                med = {k: np.median(v) * 1e3 for k, v in times.items()}
                print(f"| {n} | {16 * n * n >> 10} KB | {B} | {med['rows']:.2f} | {med['units']:.2f} | {med['one']:.2f} | "
                      f"{med['units'] / med['rows']:.2f} | {med['units'] / med['one']:.2f} |")


if __name__ == "__main__":
    main()
