"""Measure the rule behind runtime.dispatch.PAYS["batch tiles"] and ``plan``'s cap by tiles: a
batch split into one block of rows per thread (each block runs the whole time loop: no meeting
per step) against one thread, and what ``plan`` chooses, for whole ``fastrnn.bptt`` calls
(T = 100, m = 32, linear readout of 8 outputs, the training step's shape).

    python bench/batch_split.py > bench/results/<date>-batch-split.md

Both ways run in one process, interleaved in random order for ``SECONDS`` per row; medians.
"split" sets PAYS["batch"] and PAYS["batch tiles"] to (0, 0) and lifts the cap by tiles, so the
forward pass and the sweep split the batch into one block per thread, "serial" sets them to
thresholds no call reaches, "rule" is ``runtime.dispatch.plan`` as it is; every other rule (the
weight gradients' ``"rows"`` family) is left as it is.
"""
import random
import sys
import time

import numpy as np

import fastrnn
from fastrnn.runtime import dispatch

SECONDS = 3.0
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def row(cell, dtype, n, B, T=100, m=32):
    net = getattr(fastrnn, cell).init(m, n, 8, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, m)).astype(dtype)
    d = rng.standard_normal((T, B, 8)).astype(dtype)
    kept = dict(dispatch.PAYS), dispatch.TILE_ROWS

    def run(rule=None):
        if rule is not None:            # both batch rules, and no cap on the blocks by tiles
            dispatch.PAYS.update({"batch": rule, "batch tiles": rule})
            dispatch.TILE_ROWS = 1
        try:
            return fastrnn.bptt(net, x, d)
        finally:
            dispatch.PAYS.update(kept[0])
            dispatch.TILE_ROWS = kept[1]

    ways = {"rule": run, "split": lambda: run((0, 0)), "serial": lambda: run((1 << 62, 1 << 62))}
    l1, g1 = ways["rule"]()
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for way in ("split", "serial"):
        l2, g2 = ways[way]()
        assert abs(l1 - l2) <= tol * abs(l1) and all(np.allclose(g1[k], g2[k], rtol=tol, atol=tol) for k in g1)
    times = {k: [] for k in ways}
    end = time.perf_counter() + SECONDS
    while time.perf_counter() < end or min(len(v) for v in times.values()) < 5:
        for k in random.sample(list(ways), len(ways)):
            t = time.perf_counter()
            ways[k]()
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def main(cells=("LSTM", "GRU", "RNN"), sizes=((16, 32), (32, 2), (32, 8), (32, 32), (64, 2), (64, 4), (64, 8),
                                            (64, 16), (128, 2), (128, 4), (128, 8), (128, 16), (256, 4))):
    print("# A batch split over the threads, each block the whole time loop, against one thread\n")
    print(f"`python bench/batch_split.py`, {fastrnn.get_threads()} threads; whole `fastrnn.bptt` calls, T=100, "
          "m=32, linear readout of 8; gain = serial / split (above 1: splitting pays). 'per step' is the Work "
          "estimate PAYS reads (the recurrent product's multiply-adds of all rows, twice); 'rule' is what "
          "runtime.dispatch.plan chooses.\n")
    print("| cell | dtype | n | B | per step | rule | split | serial | gain |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cell in cells:
        for dtype in (np.float32, np.float64):
            for n, B in sizes:
                t = row(cell, dtype, n, B)
                flops = 2 * GATES[cell] * B * n * n
                print(f"| {cell} | {np.dtype(dtype).name} | {n} | {B} | {flops / 1e3:.0f} K | {t['rule'] * 1e3:.3f} ms "
                      f"| {t['split'] * 1e3:.3f} ms | {t['serial'] * 1e3:.3f} ms | {t['serial'] / t['split']:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main(*[a.split(",") for a in sys.argv[1:2]])
