"""The simple cell's backward sweep asking for the next step's rows ahead, against the same kernel not asking.

    python bench/sweep_prefetch.py [rounds] [--case N:DTYPE:T ...] [--any-size]

``kernels.bptt._bptt_sweep`` is compiled here a second time, uncached, with one more argument that turns
its ``ahead`` rule on or off, so that both ways run the same machine code but for that; two builds of
the same source (``kernel_ab.py``) differed by up to 6 % here, more than the effect. Each round runs both
ways in random order on a batch of one (row tiles), after touching 4 MB so that the arrays are not left
in L2 by the call before. ``--any-size``: ask whatever the arrays' size (the rule's threshold lifted),
to see what the rule leaves out. Medians in ms; "pairs" is the median of the rounds' ratios.
"""
import argparse
import os
import random
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastrnn import checks  # noqa: E402
from fastrnn.cells.base import panel_buffer  # noqa: E402
from fastrnn.kernels import _jit, bptt as kernels_bptt  # noqa: E402
from fastrnn.kernels._tiles import ROW_TILES  # noqa: E402
from fastrnn.runtime import blas  # noqa: E402
from fastrnn.runtime.dispatch import Work  # noqa: E402

CASES = ("96:float64:1000", "128:float64:1000", "128:float64:100", "160:float32:1000", "181:float32:1000",
         "192:float64:1000", "256:float32:1000")


def switchable(any_size):
    """The sweep with a last argument ``want`` and'ed into its rule."""
    src = open(kernels_bptt.__file__).read()
    fn = src[src.index('@kernel("batch", reads=("W_rec", "h", "g"))'):src.index("JOINED, TURNED, SPLIT")]
    fn = fn.split("\n", 1)[1].replace("progress, nblocks, split):", "progress, nblocks, split, want):")
    rule = "split == ROW_TILES and 3 * T * rows * n * h.itemsize > PREFETCH_MIN_BYTES"
    assert rule in fn, "the sweep's rule changed: update this bench"
    fn = fn.replace(rule, "want and split == ROW_TILES" if any_size else f"want and {rule}")
    space = dict(vars(kernels_bptt))
    exec(fn, space)
    return numba.njit(**dict(_jit.OPTIONS, cache=False))(space["_bptt_sweep"])


def case(sweep, n, dtype, T, rounds):
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(dtype)
    h = np.tanh(rng.standard_normal((T + 1, 1, n))).astype(dtype)
    g = (0.1 * rng.standard_normal((T, 1, n))).astype(dtype)
    D, dh0, progress = np.empty((T, 1, n), dtype), np.empty((1, n), dtype), np.full(1, T, np.int64)
    off = checks.Forcing.off(dtype)
    panels = panel_buffer(W, Work(1, 2 * n * n, T, W.nbytes), 1)

    def call(want):
        sweep(W, h, g, 0, T, T, False, off.units, off.mask, D, dh0, panels, progress, 1, ROW_TILES, want)
    junk = np.ones(1 << 19)
    times = {False: [], True: []}
    with blas.single_threaded():
        call(True)
        asked = D.copy()
        call(False)
        assert np.array_equal(asked, D), "asking ahead changed the deltas"
        for _ in range(rounds):
            for want in random.sample([False, True], 2):
                junk += 1
                t0 = time.perf_counter()
                call(want)
                times[want].append(time.perf_counter() - t0)
    return {k: np.array(v) for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=200)
    parser.add_argument("--case", action="append", help="n:dtype:T (default: a set around the rule's edges)")
    parser.add_argument("--any-size", action="store_true")
    args = parser.parse_args(argv)
    _jit.threads_started()
    sweep = switchable(args.any_size)
    print(f"`python bench/sweep_prefetch.py {args.rounds}{' --any-size' if args.any_size else ''}`: B=1, "
          "one thread, medians in ms\n")
    print("| n | dtype | T | W | asking | not asking | asking / not | pairs |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec in args.case or CASES:
        n, dtype, T = spec.split(":")
        n, T, dtype = int(n), int(T), np.dtype(dtype)
        t = case(sweep, n, dtype, T, args.rounds)
        a, b = np.median(t[True]), np.median(t[False])
        print(f"| {n} | {dtype} | {T} | {n * n * dtype.itemsize // 1024} KB | {a * 1e3:.3f} | {b * 1e3:.3f} "
              f"| {a / b:.3f} | {np.median(t[True] / t[False]):.3f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
