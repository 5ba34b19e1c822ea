"""Plain ``fastrnn.bptt`` calls beside torch's spinning threads: torch's threads put to sleep by the
call's whole work (``workers(call_work(...))``, the rule now) or by one kernel's work alone (the rule
before), against one fastrnn thread, in a process that imports torch, default threads.

    python bench/quiet_call_work.py [rounds] > bench/results/<date>-quiet-by-call-work.md

Each round runs every case in a new random order: "after a torch op" follows a small torch forward and
backward on its default threads (its OpenMP threads still spin), "torch idle" follows a 12 ms pause
(longer than they spin). The rule before is the same code with the call's work given as 0. Medians in ms.
Only meaningful where torch's OpenMP threads spin (GNU OpenMP on every CPU, its default policy):
``fastrnn info`` says which applies. T=100, m=32, a linear readout of 8, summed squared error.
"""
import sys
import time

import numpy as np
import torch

import fastrnn
import fastrnn.api as api
from fastrnn import checks

CASES = [("rnn", 128, 8, "float32"), ("rnn", 128, 8, "float64"), ("gru", 64, 8, "float32"),
         ("lstm", 32, 32, "float32"), ("gru", 128, 8, "float32"), ("lstm", 32, 8, "float32")]
VARIANTS = (("one thread", 1, True), ("kernel's work", 2, False), ("call's work", 2, True))


def main(rounds):
    rng = np.random.default_rng(0)
    real = api.call_work
    lin, inp = torch.nn.Linear(128, 128), torch.randn(256, 128)
    T, m, o = 100, 32, 8
    print(f"`python bench/quiet_call_work.py {rounds}`: medians of {rounds} rounds, ms; torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, fastrnn {fastrnn.get_threads()} threads.\n")
    print("| case | call's work | when | " + " | ".join(v[0] for v in VARIANTS) + " | call / kernel rule |")
    print("| --- | ---: | --- | " + " | ".join("---:" for _ in VARIANTS) + " | ---: |")
    for cell, n, B, dtype in CASES:
        net = fastrnn.MODELS[cell].init(m, n, o, readout="linear", dtype=dtype, seed=0)
        x = rng.standard_normal((T, B, m)).astype(dtype)
        d = rng.standard_normal((T, B, o)).astype(dtype)
        keys = [(op, v) for op in (True, False) for v in VARIANTS]
        times = {k: [] for k in keys}
        try:
            for _ in range(rounds):
                for i in rng.permutation(len(keys)):
                    op, (name, threads, by_call) = keys[i]
                    api.call_work = real if by_call else (lambda *a: 0)
                    if op:
                        lin(inp).sum().backward()
                    else:
                        time.sleep(0.012)
                    with fastrnn.threads(threads):
                        t0 = time.perf_counter()
                        fastrnn.bptt(net, x, d)
                        times[keys[i]].append(time.perf_counter() - t0)
        finally:
            api.call_work = real
        work = real(checks.problem(net, x, d).W, T, B, 3)
        for op in (True, False):
            med = [np.median(times[(op, v)]) * 1e3 for v in VARIANTS]
            print(f"| {cell} n={n} B={B} {dtype} | {work / 1e6:.0f}M | {'after a torch op' if op else 'torch idle'} | "
                  + " | ".join(f"{t:.2f}" for t in med) + f" | {med[2] / med[1]:.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
