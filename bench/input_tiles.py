"""The batch forward kernels' input projection x W_in^T in the compiled tiles against the BLAS's product.

    python bench/input_tiles.py [rounds] [--case CELL:N:B:DTYPE ...]

Each forward kernel (``kernels.forward._forward``, ``lstm_forward._lstm_forward``, ``gru_forward._gru_forward``)
is compiled here a second time, uncached, with one more argument that turns the tiles for its input projection
on or off (``_panels.input_panels``), so that both ways run the same machine code but for that; two builds of
the same source differed by up to 6 % here (``kernel_ab.py``). Each round runs both ways in random order on the
arguments a one-thread ``fastrnn.bptt`` call of the training step's problem (T=100, m=32) hands the kernel,
after touching 4 MB so that the arrays are not left in L2 by the call before. Medians of the forward kernel in
ms; "pairs" is the median of the rounds' ratios; "input" the projection's share of the kernel's multiply-adds.
"""
import argparse
import importlib
import os
import random
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn.kernels import _jit  # noqa: E402
from fastrnn.runtime import blas  # noqa: E402

from common import kernel_call  # noqa: E402

KERNELS = {"rnn": ("forward", "_forward", "W_in"), "lstm": ("lstm_forward", "_lstm_forward", "W_ih"),
           "gru": ("gru_forward", "_gru_forward", "W_ih")}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CASES = ("rnn:128:8:float32", "rnn:128:8:float64", "rnn:128:32:float64", "lstm:128:8:float32", "lstm:128:8:float64",
         "lstm:128:32:float32", "lstm:128:32:float64", "gru:128:8:float32", "gru:128:8:float64", "gru:128:32:float32",
         "lstm:32:8:float64", "lstm:512:8:float64", "gru:256:8:float32")
T, M, OUT = 100, 32, 8


def switchable(cell):
    """The cell's forward kernel with a last argument ``want`` that, False, leaves its input projection to the BLAS."""
    module_name, name, w_in = KERNELS[cell]
    module = importlib.import_module(f"fastrnn.kernels.{module_name}")
    src = open(module.__file__).read()
    fn = src[src.index("@kernel("):].split("\n", 1)[1]
    fn = fn.replace("nblocks, split):", "nblocks, split, want):", 1)
    rule = f"input_panels({w_in}.T, split)"
    assert rule in fn, "the kernel's input projection changed: update this bench"
    fn = fn.replace(rule, f"input_panels({w_in}.T, split if want else 1)")
    space = dict(vars(module))
    exec(fn, space)
    return numba.njit(**dict(_jit.OPTIONS, cache=False))(space[name]), getattr(module, name)


def arguments(cell, kernel, n, B, dtype):
    """The arguments a one-thread ``fastrnn.bptt`` call hands the forward kernel (its nblocks and split last)."""
    driver = importlib.import_module(f"fastrnn.cells.{cell}")
    rng = np.random.default_rng(0)
    net = fastrnn.MODELS[cell].init(M, n, OUT, readout="linear", dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, M)).astype(dtype)
    d = rng.standard_normal((T, B, OUT)).astype(dtype)
    args, _ = kernel_call(driver, kernel, net, x, d)
    from fastrnn.kernels._tiles import TILES, ROW_TILES
    from fastrnn.runtime.blas import step_products
    split = (TILES if step_products() == "tiles" else 1) if B > 1 else ROW_TILES
    return args + (1, split)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=100)
    parser.add_argument("--case", action="append", help="cell:n:B:dtype")
    args = parser.parse_args(argv)
    _jit.threads_started()
    print(f"`python bench/input_tiles.py {args.rounds}`: one thread, T={T}, m={M}, the forward kernel, medians in ms; "
          f"step products: {blas.step_products()}\n")
    print("| cell | n | B | dtype | input | tiles | BLAS | tiles / BLAS | pairs |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    built = {}
    for spec in args.case or CASES:
        cell, n, B, dtype = spec.split(":")
        n, B, dtype = int(n), int(B), np.dtype(dtype)
        if cell not in built:
            built[cell] = switchable(cell)
        kernel, original = built[cell]
        call_args = arguments(cell, original, n, B, dtype)
        states = [a for a in call_args if isinstance(a, np.ndarray) and a.ndim == 3 and a.shape[0] == T + 1][0]
        junk = np.ones(1 << 19)
        times = {True: [], False: []}
        with blas.single_threaded():
            kernel(*call_args, True)
            tiled = states.copy()
            kernel(*call_args, False)
            tol = 1e-4 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(tiled, states, rtol=tol, atol=tol)
            for _ in range(args.rounds):
                for want in random.sample([False, True], 2):
                    junk += 1
                    t0 = time.perf_counter()
                    kernel(*call_args, want)
                    times[want].append(time.perf_counter() - t0)
        a, b = np.median(times[True]), np.median(times[False])
        share = M / (M + n)
        print(f"| {cell} | {n} | {B} | {dtype} | {share:.2f} | {a * 1e3:.3f} | {b * 1e3:.3f} | {a / b:.3f} "
              f"| {np.median(np.array(times[True]) / np.array(times[False])):.3f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
