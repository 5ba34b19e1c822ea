"""A backward sweep asking for the next step's rows ahead, against the same kernel not asking.

    python bench/sweep_prefetch.py [rounds] [--cell rnn|lstm|gru] [--case N:DTYPE:T ...] [--any-size]

The cell's sweep (``kernels.bptt._bptt_sweep``, ``kernels.lstm_bptt._lstm_sweep``, ``kernels.gru_bptt._gru_sweep``)
is compiled here a second time, uncached, with one more argument that turns its ``ahead`` rule on or off,
so that both ways run the same machine code but for that; two builds of the same source (``kernel_ab.py``)
differed by up to 6 % here, more than the effect. Each round runs both ways in random order on a batch of
one (row tiles), after touching 4 MB so that the arrays are not left in L2 by the call before. The gated
cells' sweeps take the arguments a ``fastrnn.bptt`` call of the same size hands them. ``--any-size``: ask
whatever the arrays' size (the rule's threshold lifted), to see what the rule leaves out. Medians in ms;
"pairs" is the median of the rounds' ratios.
"""
import argparse
import os
import random
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn import checks  # noqa: E402
from fastrnn.cells import gru as gru_driver, lstm as lstm_driver  # noqa: E402
from fastrnn.cells.base import panel_buffer  # noqa: E402
from fastrnn.kernels import _jit, bptt as kernels_bptt, gru_bptt, lstm_bptt  # noqa: E402
from fastrnn.kernels._tiles import ROW_TILES  # noqa: E402
from fastrnn.runtime import blas  # noqa: E402
from fastrnn.runtime.dispatch import Work, row_tiled  # noqa: E402

from common import kernel_call  # noqa: E402

CASES = {"rnn": ("96:float64:1000", "128:float64:1000", "128:float64:100", "160:float32:1000", "181:float32:1000",
                 "192:float64:1000", "256:float32:1000"),
         "lstm": ("32:float64:1000", "48:float64:1000", "64:float64:1000", "64:float64:100", "64:float32:1000",
                  "90:float32:1000", "128:float32:1000", "128:float64:1000"),
         "gru": ("32:float64:1000", "64:float64:1000", "64:float64:100", "74:float64:1000", "64:float32:1000",
                 "104:float32:1000", "128:float32:1000")}
# (module, the decorator line the sweep's source starts at, where it ends, the sweep's name, its rule)
SWEEPS = {"rnn": (kernels_bptt, '@kernel("batch", reads=("W_rec", "h", "g"))', "JOINED, TURNED, SPLIT", "_bptt_sweep",
                  "split == ROW_TILES and 3 * T * rows * n * h.itemsize > PREFETCH_MIN_BYTES"),
          "lstm": (lstm_bptt, '@kernel("batch", reads=("W_hh", "h", "c", "gates", "g", "dcT"))', None, "_lstm_sweep",
                   "split == ROW_TILES and 11 * T * rows * n * D.itemsize > PREFETCH_MIN_BYTES"),
          "gru": (gru_bptt, '@kernel("batch", reads=("W_hh", "h", "gates", "g"))', "@helper", "_gru_sweep",
                  "split == ROW_TILES and 10 * T * rows * n * D.itemsize > PREFETCH_MIN_BYTES")}


def switchable(cell, any_size):
    """The cell's sweep with a last argument ``want`` and'ed into its rule."""
    module, first, after, name, rule = SWEEPS[cell]
    src = open(module.__file__).read()
    fn = src[src.index(first):src.index(after) if after else len(src)]
    fn = fn.split("\n", 1)[1].replace("progress, nblocks, split):", "progress, nblocks, split, want):")
    assert rule in fn, "the sweep's rule changed: update this bench"
    fn = fn.replace(rule, "want and split == ROW_TILES" if any_size else f"want and {rule}")
    space = dict(vars(module))
    exec(fn, space)
    return numba.njit(**dict(_jit.OPTIONS, cache=False))(space[name])


def gated_arguments(cell, n, dtype, T):
    """The arguments a ``fastrnn.bptt`` call at B = 1 on one thread hands the gated cell's sweep (its ``split``
    last), or None where that call does not take the products in row tiles (the rule would not apply)."""
    driver, kernel = (lstm_driver, lstm_bptt._lstm_sweep) if cell == "lstm" else (gru_driver, gru_bptt._gru_sweep)
    rng = np.random.default_rng(0)
    net = fastrnn.MODELS[cell].init(8, n, 4, readout="linear", dtype=dtype, seed=0)
    x = rng.standard_normal((T, 1, 8)).astype(dtype)
    d = rng.standard_normal((T, 1, 4)).astype(dtype)
    args, work = kernel_call(driver, kernel, net, x, d)
    return args + (1, ROW_TILES) if row_tiled(work) else None


def case(cell, sweep, n, dtype, T, rounds):
    if cell == "rnn":
        rng = np.random.default_rng(0)
        W = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(dtype)
        h = np.tanh(rng.standard_normal((T + 1, 1, n))).astype(dtype)
        g = (0.1 * rng.standard_normal((T, 1, n))).astype(dtype)
        D, dh0, progress = np.empty((T, 1, n), dtype), np.empty((1, n), dtype), np.full(1, T, np.int64)
        off = checks.Forcing.off(dtype)
        panels = panel_buffer(W, Work(1, 2 * n * n, T, W.nbytes), 1)
        args = (W, h, g, 0, T, T, False, off.units, off.mask, D, dh0, panels, progress, 1, ROW_TILES)
    else:
        args = gated_arguments(cell, n, dtype, T)
        if args is None:
            return None
        D = args[8] if cell == "lstm" else args[6]       # the deltas, written by the sweep

    def call(want):
        sweep(*args, want)
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


GATES = {"rnn": 1, "lstm": 4, "gru": 3}       # rows of the recurrent weights per unit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=200)
    parser.add_argument("--cell", choices=sorted(SWEEPS), default="rnn")
    parser.add_argument("--case", action="append", help="n:dtype:T (default: a set around the rule's edges)")
    parser.add_argument("--any-size", action="store_true")
    args = parser.parse_args(argv)
    _jit.threads_started()
    sweep = switchable(args.cell, args.any_size)
    print(f"`python bench/sweep_prefetch.py {args.rounds} --cell {args.cell}{' --any-size' if args.any_size else ''}`: "
          "B=1, one thread, medians in ms\n")
    print("| n | dtype | T | W | asking | not asking | asking / not | pairs |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec in args.case or CASES[args.cell]:
        n, dtype, T = spec.split(":")
        n, T, dtype = int(n), int(T), np.dtype(dtype)
        t = case(args.cell, sweep, n, dtype, T, args.rounds)
        if t is None:
            print(f"| {n} | {dtype} | {T} | | not in row tiles | | | |", flush=True)
            continue
        a, b = np.median(t[True]), np.median(t[False])
        weights = GATES[args.cell] * n * n * dtype.itemsize // 1024
        print(f"| {n} | {dtype} | {T} | {weights} KB | {a * 1e3:.3f} | {b * 1e3:.3f} "
              f"| {a / b:.3f} | {np.median(t[True] / t[False]):.3f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
