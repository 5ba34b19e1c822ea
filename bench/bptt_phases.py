"""Where a batch of one's ``fastrnn.bptt`` call goes, timed inside the call: issue 17's JAX row taken apart.

    python bench/bptt_phases.py [calls] [--n 128] [--T 1000] [--dtype float64] [--threads default|one]

The problem of ``bptt_jax.py`` (``common.problem``: the tanh cell, m = 8, a units readout of n/4 outputs,
summed squared error, B = 1). Each call is timed whole and in phases, by wrapping the functions
``fastrnn.bptt`` calls (so every phase runs where it runs in a real call, on the caches the phase before it
left): the input checks (``checks.problem``), the forward kernel's call (the cell driver's forward), the
states' finiteness check, the readout (loss and injected errors), the backward sweep's kernel call, the row
products left after the sweep (the overlap's tail: ``overlap.run`` less the sweep), the rest of the backward
(its buffers, the overlap's rule) and the rest of the call (threads, BLAS hold, gradients' checks). Medians over
``calls`` calls (default 200) after 20 warm ones; the phases' medians need not add up to the whole's.
"""
import argparse
import os
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastrnn  # noqa: E402
from fastrnn import api, checks  # noqa: E402
from fastrnn.cells import rnn  # noqa: E402
from fastrnn.runtime import overlap, pair  # noqa: E402

from common import problem  # noqa: E402


def _timed(times, name, fn):
    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[name].append(time.perf_counter() - t0)
    return wrapped


def phases(net, x, d, calls, one_thread):
    """{phase: [seconds a call]} over ``calls`` calls of ``fastrnn.bptt(net, x, d)``."""
    times = defaultdict(list)
    saved = (checks.problem, api._check_states, api.readout.injected_errors, rnn.Driver.forward,
             rnn.Driver.backward, overlap.run, rnn.call, pair.forward, pair.sweep)
    kernel_call = rnn.call

    def call(kernel, *args):
        name = "sweep kernel" if kernel.__name__ == "_bptt_sweep" else "forward kernel"
        return _timed(times, name, kernel_call)(kernel, *args)

    def run(sweep, products, T, threads, beside):
        def timed_sweep(progress):
            t0 = time.perf_counter()
            sweep(progress)
            end[0] = time.perf_counter()
            times["sweep (overlap's view)"].append(end[0] - t0)
        end = [None]
        saved[5](timed_sweep, products, T, threads, beside)
        times["row products after the sweep"].append(time.perf_counter() - end[0])

    checks.problem = _timed(times, "input checks", saved[0])
    api._check_states = _timed(times, "states' finiteness", saved[1])
    api.readout.injected_errors = _timed(times, "readout: loss and injected errors", saved[2])
    rnn.Driver.forward = _timed(times, "forward (driver)", saved[3])
    rnn.Driver.backward = _timed(times, "backward (driver)", saved[4])
    overlap.run, rnn.call = run, call
    pair.forward = _timed(times, "forward kernel", saved[7])     # a batch of one on two threads: the pair's kernels
    pair.sweep = _timed(times, "sweep kernel", saved[8])
    try:
        for k in range(calls + 20):
            if k == 20:
                times.clear()
            t0 = time.perf_counter()
            if one_thread:
                with fastrnn.threads(1):
                    fastrnn.bptt(net, x, d)
            else:
                fastrnn.bptt(net, x, d)
            times["whole call"].append(time.perf_counter() - t0)
    finally:
        (checks.problem, api._check_states, api.readout.injected_errors, rnn.Driver.forward, rnn.Driver.backward,
         overlap.run, rnn.call, pair.forward, pair.sweep) = saved
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", type=int, default=200)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--threads", choices=("default", "one"), default="default")
    args = parser.parse_args(argv)
    net, x, d = problem(args.n, 8, args.T, 1, dtype=np.dtype(args.dtype))
    times = phases(net, x, d, args.calls, args.threads == "one")
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    whole = med["whole call"]
    med.setdefault("row products after the sweep", 0.0)     # the pair's backward runs them after its sweep itself
    derived = {
        "forward: driver less kernel": med["forward (driver)"] - med["forward kernel"],
        "backward: driver less sweep and tail": med["backward (driver)"] - med["sweep kernel"]
        - med["row products after the sweep"],
        "rest of the call": whole - med["input checks"] - med["forward (driver)"] - med["states' finiteness"]
        - med["readout: loss and injected errors"] - med["backward (driver)"]}
    print(f"`python bench/bptt_phases.py {args.calls} --n {args.n} --T {args.T} --dtype {args.dtype} "
          f"--threads {args.threads}`: B=1, units readout of {net.n_out}, medians of {args.calls} calls, ms\n")
    print("| phase | median | of the whole call |")
    print("| --- | ---: | ---: |")
    order = ["whole call", "input checks", "forward kernel", "states' finiteness", "readout: loss and injected errors",
             "sweep kernel", "row products after the sweep"]
    for k in order:
        print(f"| {k} | {med[k]:.3f} | {med[k] / whole:.2f} |")
    for k, v in derived.items():
        print(f"| {k} | {v:.3f} | {v / whole:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
