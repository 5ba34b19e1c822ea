"""Measure the rule behind runtime.dispatch.SPLIT_BYTES: at a batch of one, each step's
matrix-vector product cut into one part per thread (kernels._panels._gemv_parts) against the whole
product on one thread, for whole ``fastrnn.bptt`` calls (T = 100, m = 32, units readout).

    python bench/split.py > bench/results/<date>-batch-of-one-split.md

Both ways run in one process, interleaved (five rounds of each); medians. 'weights' is the bytes of
the recurrent matrix each step streams (W_hh or W_rec), what the rule is written in.
"""
import sys
import time

import numpy as np

import fastrnn
from fastrnn.runtime import dispatch

from common import lstm_problem

SPLIT, WHOLE = 1, 1 << 62          # SPLIT_BYTES that splits every product / none
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _times(f, k):
    out = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out


def main(cells=("lstm", "gru", "rnn"), sizes=(128, 192, 256, 384, 512)):
    print("# A batch of one: each step's product split over the threads, or whole on one\n")
    print(f"`python bench/split.py`, {fastrnn.get_threads()} threads; whole `fastrnn.bptt` calls, T=100, m=32, B=1; "
          "gain = whole / split.\n")
    print("| cell | dtype | n | weights | split | whole | gain |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    kept = dispatch.SPLIT_BYTES
    try:
        for cell in cells:
            for dtype in (np.float32, np.float64):
                for n in sizes:
                    net, x, d = lstm_problem(n, 32, 100, 1, dtype=dtype, cell=cell)
                    f = lambda: fastrnn.bptt(net, x, d)      # noqa: E731
                    k = max(5, int(3e5 / n ** 2))
                    split, whole = [], []
                    for rule in (SPLIT, WHOLE):
                        dispatch.SPLIT_BYTES = rule
                        _times(f, 3)
                    for _ in range(5):
                        dispatch.SPLIT_BYTES = SPLIT
                        split += _times(f, k)
                        dispatch.SPLIT_BYTES = WHOLE
                        whole += _times(f, k)
                    s, w = np.median(split) * 1e3, np.median(whole) * 1e3
                    mb = GATES[cell] * n * n * np.dtype(dtype).itemsize / 2**20
                    print(f"| {cell} | {np.dtype(dtype).name} | {n} | {mb:.2f} MB | {s:.3f} ms | {w:.3f} ms | "
                          f"{w / s:.2f} |", flush=True)
    finally:
        dispatch.SPLIT_BYTES = kept


if __name__ == "__main__":
    main(*(tuple(a.split(",")) for a in sys.argv[1:2]))
