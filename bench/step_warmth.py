"""The roofline rows of the training-step table timed hot and after the caches were taken: how much of
issue 17's "at n >= 128 and B >= 8 the whole step runs at >= 70 % of one thread's GEMM rate" the kernels
reach, and how much the state the machine is left in between calls takes away.

    python bench/step_warmth.py [rounds] [--n 128] [--B 8 --B 32] [--cell rnn ...] [--dtype float32 ...]

One thread (``fastrnn.threads(1)``, the BLAS and torch held to one). Each row is the table's problem (T=100,
m=32, a linear readout of 8, summed squared error, ``fastrnn.bptt``), timed in every round four ways, in a new
random order each round:

- ``hot``: right after another call on the same arrays (what a loop that only calls fastrnn meets);
- ``after GEMM``: right after one thread's 512 x 512 GEMM of the row's dtype, the roofline's own rate, timed
  there as the table times it (``common.gemm_one_thread``: the faster of NumPy's BLAS and fastrnn's tiles);
- ``after 64 MB``: right after 64 MB (twice the 32 MB L3 of the machine it was written on) were read and written
  back (``np.add(big, 1, out=big)``: ordinary loads and stores, which take the caches; a fill of that size may go
  around them);
- ``after torch``: right after torch's own training step of the row (``test_torch_step.torch_step``: torch.nn's
  layer, a Linear readout, the loss, backward, SGD), what the table's interleaved rounds meet.

GFLOP/s counts the table's multiply-adds (three times the forward's products: ``test_torch_step.py``);
"of GEMM" divides by the median of the GEMMs timed in the same rounds. Medians; the rounds of one row
run within a few seconds, so its columns meet the same machine.
"""
import argparse
import os
import random
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
import torch  # noqa: E402

from common import gemm_one_thread  # noqa: E402
from test_torch_step import thread_mode, torch_step  # noqa: E402

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
T, M, OUT = 100, 32, 8
WAYS = ("hot", "after GEMM", "after 64 MB", "after torch")
KIND = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


class _Captured:
    """Stands in for pytest-benchmark's fixture: keeps the function it would time."""

    def __init__(self):
        self.group, self.extra_info, self.fn = None, {}, None

    def __call__(self, fn, *args):
        self.fn = fn


def _gemm(dtype):
    captured = _Captured()
    gemm_one_thread(captured, dtype)
    return captured.fn


def _torch_step(cell, n, B, dtype):
    tdtype = getattr(torch, np.dtype(dtype).name)
    torch.manual_seed(0)
    layer = getattr(torch.nn, KIND[cell])(M, n, dtype=tdtype)
    head = torch.nn.Linear(n, OUT, dtype=tdtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, M, generator=g, dtype=tdtype)
    y = torch.randn(T, B, OUT, generator=g, dtype=tdtype)
    return torch_step(layer, x, y, head)


def row(cell, n, B, dtype, rounds):
    """{way: [seconds]} and the GEMM's seconds, for one row."""
    rng = np.random.default_rng(0)
    net = fastrnn.MODELS[cell].init(M, n, OUT, readout="linear", dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, M)).astype(dtype)
    d = rng.standard_normal((T, B, OUT)).astype(dtype)
    gemm_fn = _gemm(dtype)
    big = np.zeros(8 << 20)                 # 64 MB
    torch_fn = _torch_step(cell, n, B, dtype)
    times = {way: [] for way in WAYS}
    gemm = []

    def timed(way):
        t0 = time.perf_counter()
        fastrnn.bptt(net, x, d)
        times[way].append(time.perf_counter() - t0)

    def before(way):
        if way == "hot":
            fastrnn.bptt(net, x, d)
        elif way == "after GEMM":
            t0 = time.perf_counter()
            gemm_fn()
            gemm.append(time.perf_counter() - t0)
        elif way == "after 64 MB":
            np.add(big, 1, out=big)
        else:
            torch_fn()

    with thread_mode("one"):
        for _ in range(3):
            fastrnn.bptt(net, x, d)
            gemm_fn()
            torch_fn()
        for _ in range(rounds):
            order = list(WAYS)
            random.shuffle(order)
            for way in order:
                before(way)
                timed(way)
    return times, gemm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=60)
    parser.add_argument("--n", type=int, action="append", help="hidden sizes (default 128)")
    parser.add_argument("--B", type=int, action="append", help="batch sizes (default 8 and 32)")
    parser.add_argument("--cell", choices=tuple(GATES), action="append", help="cells (default all three)")
    parser.add_argument("--dtype", choices=("float32", "float64"), action="append", help="(default both)")
    args = parser.parse_args(argv)
    print(f"`python bench/step_warmth.py {args.rounds}`: one thread, T={T}, m={M}, linear readout of {OUT}, "
          f"medians of {args.rounds} rounds, ms (GFLOP/s, fraction of the GEMM rate timed in the same rounds)\n")
    print("| row | GEMM rate | " + " | ".join(WAYS) + " | " + " | ".join(f"{w}: of GEMM" for w in WAYS) + " |")
    print("| --- | ---: |" + " ---: |" * (2 * len(WAYS)))
    for cell in args.cell or ("rnn", "lstm", "gru"):
        for dtype in args.dtype or ("float32", "float64"):
            for n in args.n or (128,):
                for B in args.B or (8, 32):
                    times, gemm = row(cell, n, B, np.dtype(dtype), args.rounds)
                    rate = 2 * 512 ** 3 / np.median(gemm) / 1e9
                    flops = 3 * 2 * GATES[cell] * n * (M + n) * B * T
                    med = {w: float(np.median(v)) for w, v in times.items()}
                    cells = " | ".join(f"{med[w] * 1e3:.3f} ({flops / med[w] / 1e9:.1f})" for w in WAYS)
                    fractions = " | ".join(f"{flops / med[w] / 1e9 / rate:.2f}" for w in WAYS)
                    print(f"| {cell} n={n} B={B} {dtype} | {rate:.1f} | {cells} | {fractions} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
