"""Where a batch of one's ``fastrnn.bptt`` call goes, timed inside the call: issue 17's JAX row taken apart.

    python bench/bptt_phases.py [calls] [--n 128] [--T 1000] [--dtype float64] [--threads default|one]
                                [--before nothing|jax|64mb]

The problem of ``bptt_jax.py`` (``common.problem``: the tanh cell, m = 8, a units readout of n/4 outputs,
summed squared error, B = 1). Each call is timed whole and in phases, by wrapping the functions
``fastrnn.bptt`` calls (so every phase runs where it runs in a real call, on the caches the phase before it
left): the input checks (``checks.problem``), the forward kernel's call (the cell driver's forward), the
states' finiteness check, the readout (loss and injected errors), the backward sweep's kernel call, the row
products left after the sweep (the overlap's tail: ``overlap.run`` less the sweep), the rest of the backward
(its buffers, the overlap's rule) and the rest of the call (threads, BLAS hold, gradients' checks). Medians over
``calls`` calls (default 200) after 20 warm ones; the phases' medians need not add up to the whole's.

``--before``: what runs, untimed, before each call: nothing (calls back to back), JAX's own gradient call of the
same problem (``peers.JaxBPTT``, as ``bptt_jax.py`` interleaves them), or a pass that reads and writes 64 MB
(the caches taken, no other threads). The last rows count the CPU yields (``os.sched_yield``) of the calling
thread and of fastrnn's helper thread (``runtime.overlap``) a call, and the time they took: a yield gives the CPU
to whatever else is ready to run on it, for as long as the scheduler lets that run; and the calling thread's
involuntary context switches (Linux: ``getrusage(RUSAGE_THREAD)``), the times the scheduler took its CPU away.
"""
import argparse
import os
import resource
import sys
import threading
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


def _preemptions():
    """The calling thread's involuntary context switches so far (None where the platform does not count them)."""
    who = getattr(resource, "RUSAGE_THREAD", None)
    return None if who is None else resource.getrusage(who).ru_nivcsw


def phases(net, x, d, calls, one_thread, before=None):
    """{phase: [seconds a call]} over ``calls`` calls of ``fastrnn.bptt(net, x, d)``, each after ``before()``
    (untimed) where given."""
    times = defaultdict(list)
    yields = []
    sched_yield = getattr(os, "sched_yield", None)

    def counted_yield():
        t0 = time.perf_counter()
        sched_yield()
        yields.append((threading.current_thread() is threading.main_thread(), time.perf_counter() - t0))
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
    if sched_yield is not None:
        os.sched_yield = counted_yield
    try:
        for k in range(calls + 20):
            if k == 20:
                times.clear()
            if before is not None:
                before()
            yields.clear()
            switched = _preemptions()
            t0 = time.perf_counter()
            if one_thread:
                with fastrnn.threads(1):
                    fastrnn.bptt(net, x, d)
            else:
                fastrnn.bptt(net, x, d)
            times["whole call"].append(time.perf_counter() - t0)
            if switched is not None:
                times["preemptions of the calling thread"].append(_preemptions() - switched)
            for main, label in ((True, "calling thread"), (False, "helper thread")):
                taken = [t for on_main, t in yields if on_main == main]
                times[f"yields of the {label}"].append(len(taken))
                times[f"time in the {label}'s yields"].append(sum(taken))
    finally:
        if sched_yield is not None:
            os.sched_yield = sched_yield
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
    parser.add_argument("--before", choices=("nothing", "jax", "64mb"), default="nothing",
                        help="what runs (untimed) before each call")
    args = parser.parse_args(argv)
    net, x, d = problem(args.n, 8, args.T, 1, dtype=np.dtype(args.dtype))
    before = None
    if args.before == "jax":
        import peers
        if peers.jax is None:
            print(peers.WHY_NO_JAX)
            return 1
        before = peers.JaxBPTT(net, x, d)
    elif args.before == "64mb":
        big = np.zeros(8 << 20)

        def before():
            np.add(big, 1, out=big)
    times = phases(net, x, d, args.calls, args.threads == "one", before)
    preempted = times.pop("preemptions of the calling thread", None)
    counts = {k: float(np.mean(times.pop(k))) for k in [k for k in times if k.startswith("yields of")]}
    spent = {k: float(np.mean(times.pop(k))) * 1e3 for k in [k for k in times if k.startswith("time in")]}
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
          f"--threads {args.threads} --before {args.before}`: B=1, units readout of {net.n_out}, medians of "
          f"{args.calls} calls, ms\n")
    print("| phase | median | of the whole call |")
    print("| --- | ---: | ---: |")
    order = ["whole call", "input checks", "forward kernel", "states' finiteness", "readout: loss and injected errors",
             "sweep kernel", "row products after the sweep"]
    for k in order:
        print(f"| {k} | {med[k]:.3f} | {med[k] / whole:.2f} |")
    for k, v in derived.items():
        print(f"| {k} | {v:.3f} | {v / whole:.2f} |")
    for (k, count), (_, ms) in zip(counts.items(), spent.items()):
        print(f"| {k} (a call, mean) | {count:.1f} ({ms:.3f} ms) | {ms / whole:.2f} |")
    if preempted is not None:
        print(f"| preemptions of the calling thread (a call, mean; calls with any) | {np.mean(preempted):.2f} "
              f"({np.mean(np.asarray(preempted) > 0):.2f}) | — |")


if __name__ == "__main__":
    sys.exit(main())
