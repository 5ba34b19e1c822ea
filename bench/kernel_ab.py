"""The kernels of another commit against the work tree's, in one process, call by call.

    python bench/kernel_ab.py --base COMMIT [--cell lstm] [--n 32] [--B 32] [--T 100] [--dtype float32] [--rounds 300]
                              [--whole]

On a machine whose speed moves between minutes, two versions timed in separate processes differ by the
machine more than by the code. Here the base commit's ``kernels/`` folder (``git archive``) is imported
beside the work tree's as a package of its own, in a temporary folder with its own Numba cache, so that
both compile and run in this process.

Without ``--whole``: every kernel one ``fastrnn.bptt`` call makes (one thread; T=100 unless ``--T``, m=32, a linear
readout of 8) is captured with its arguments, and its serial twin is timed against the base commit's,
alternated call by call; the base's arguments are taken by name, so a kernel that gained an argument is
still compared. Each line gives the medians, new / base, the median of the pairwise ratios, and whether the
outputs are identical (else the largest relative difference; arrays with NaN or infinity, such as unwritten
scratch, are left out of it, and so is the buffer of weight panels, ``SCRATCH``). With ``--whole``: whole ``fastrnn.bptt`` calls with the cell's forward and
sweep kernels and the weight-gradient kernel of each commit in turn (only where each takes the same
arguments in both commits, since the work tree's driver calls them).

Below 1: the work tree is faster. The base commit must have the same kernel names and a driver layer that
calls them the same way (``fastrnn.runtime.dispatch.call``).
"""
import argparse
import importlib
import inspect
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

import fastrnn
import fastrnn.cells.base as base
import fastrnn.runtime.dispatch as dispatch
from fastrnn.kernels import _jit

from common import interleaved

T, M, OUT = 100, 32, 8
PACKAGE = "fastrnn_base_kernels"
CELL_KERNELS = {"rnn": ("rnn", "_forward", "_bptt_sweep"), "lstm": ("lstm", "_lstm_forward", "_lstm_sweep"),
                "gru": ("gru", "_gru_forward", "_gru_sweep"), "lstmp": ("lstmp", "_lstmp_forward", "_lstmp_sweep")}


def base_kernels(commit, folder):
    """The base commit's kernels/ imported as PACKAGE from ``folder``. Its __init__ refuses any name but
    fastrnn.kernels, to keep a source checkout's kernels out of fastrnn's cache index; this copy lives in a
    folder of its own under another name, so the guard is taken out of the copy."""
    root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                               check=True, cwd=Path(__file__).parent).stdout.strip())
    got = subprocess.run(["git", "archive", commit, "kernels"], capture_output=True, cwd=root)
    if got.returncode != 0:
        raise SystemExit(f"--base {commit!r}: git archive found no kernels/ folder at that commit in {root} "
                         f"({got.stderr.decode(errors='replace').strip()})")
    data = got.stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    package = Path(folder) / PACKAGE
    (Path(folder) / "kernels").rename(package)
    init = package / "__init__.py"
    init.write_text(init.read_text().replace('if __name__ != "fastrnn.kernels":', "if False:"))
    sys.path.insert(0, str(folder))
    return importlib.import_module(PACKAGE)


def problem(cell, n, B, dtype, T=T):
    rng = np.random.default_rng(0)
    net = fastrnn.MODELS[cell].init(M, n, OUT, readout="linear", dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, M)).astype(dtype)
    d = rng.standard_normal((T, B, OUT)).astype(dtype)
    return net, x, d


def captured_calls(net, x, d):
    """[(kernel, {argument name: value}, split)] for every kernel call one fastrnn.bptt makes."""
    calls = []
    real = dispatch.call

    def spy(kernel, threads, work, *args):
        split = () if kernel.family != "batch" else ((0,) if work.items > 1 else (-1,))
        names = list(inspect.signature(kernel._serial.py_func).parameters)
        values = [a.copy() if isinstance(a, np.ndarray) else a for a in kernel.read_only(args)]
        calls.append((kernel, dict(zip(names, values)), split))
        return real(kernel, threads, work, *args)

    modules = [m for name, m in sys.modules.items() if name.startswith("fastrnn.cells") and hasattr(m, "call")]
    for m in modules:
        m.call = spy
    try:
        fastrnn.bptt(net, x, d)
    finally:
        for m in modules:
            m.call = real
    return calls


def arguments(kernel, named):
    """The kernel's arguments, in its own order, from the captured ones (fresh copies of the arrays)."""
    names = list(inspect.signature(kernel._serial.py_func).parameters)
    names = names[:-2] if kernel.family == "batch" else names[:-1]      # less nblocks (and split)
    return [named[k].copy() if isinstance(named[k], np.ndarray) else named[k] for k in names]


SCRATCH = ("panels",)    # the weight panels: a layout of the weights, not a result (it may change between commits)


def compare_kernels(old, net, x, d, rounds, label):
    for kernel, named, split in captured_calls(net, x, d):
        pair = {"base": getattr(old, kernel.__name__), "new": kernel}
        args = {k: arguments(kern, named) for k, kern in pair.items()}
        outs = {}
        for k, kern in pair.items():
            a = arguments(kern, named)
            kern.serial(*a, 1, *split)
            outs[k] = {name: v for name, v in zip(inspect.signature(kern._serial.py_func).parameters, a)
                       if isinstance(v, np.ndarray)}
        shared = [name for name in outs["base"] if name in outs["new"] and name not in SCRATCH]
        same = all(np.array_equal(outs["base"][k], outs["new"][k]) for k in shared)
        worst = max((float(np.max(np.abs(outs["base"][k] - outs["new"][k])) / max(float(np.max(np.abs(outs["base"][k]))), 1e-30))
                     for k in shared if outs["base"][k].size and np.all(np.isfinite(outs["base"][k]))
                     and np.all(np.isfinite(outs["new"][k]))), default=0.0)
        times = interleaved({k: (lambda kern=kern, a=args[k]: kern.serial(*a, 1, *split)) for k, kern in pair.items()},
                            rounds)
        b, nw = np.array(times["base"]), np.array(times["new"])
        print(f"| {label} {kernel.__name__} | {np.median(b) * 1e3:.3f} ms | {np.median(nw) * 1e3:.3f} ms | "
              f"{np.median(nw) / np.median(b):.3f} | {np.median(nw / b):.3f} | "
              f"{'identical' if same else f'within {worst:.1e}'} |")


def compare_whole(old, cell, net, x, d, rounds, label):
    module = importlib.import_module(f"fastrnn.cells.{CELL_KERNELS[cell][0]}")
    names = CELL_KERNELS[cell][1:]
    sets = {"new": {k: getattr(module, k) for k in names}, "base": {k: getattr(old, k) for k in names}}
    sets["new"]["_weight_grads"], sets["base"]["_weight_grads"] = base._weight_grads, old._weight_grads
    for k in sets["new"]:
        params = [list(inspect.signature(sets[w][k]._serial.py_func).parameters) for w in ("base", "new")]
        if params[0] != params[1]:
            raise SystemExit(f"--whole: {k} takes other arguments in the base commit ({', '.join(params[0])}) than in "
                             f"the work tree ({', '.join(params[1])}); the driver calls only the work tree's. "
                             "Compare the kernels one by one (without --whole).")

    def use(which):
        for k, v in sets[which].items():
            setattr(base if k == "_weight_grads" else module, k, v)

    def run(which):
        use(which)
        fastrnn.bptt(net, x, d)

    try:
        times = interleaved({k: (lambda k=k: run(k)) for k in sets}, rounds)
    finally:
        use("new")
    b, nw = np.array(times["base"]), np.array(times["new"])
    print(f"| {label} fastrnn.bptt | {np.median(b) * 1e3:.3f} ms | {np.median(nw) * 1e3:.3f} ms | "
          f"{np.median(nw) / np.median(b):.3f} | {np.median(nw / b):.3f} | — |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit whose kernels/ to compare against")
    parser.add_argument("--cell", default="lstm", choices=sorted(CELL_KERNELS))
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--T", type=int, default=T, help="steps (default 100)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--whole", action="store_true", help="whole fastrnn.bptt calls instead of each kernel")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        old = base_kernels(a.base, folder)
        fastrnn.threads(1)
        _jit.threads_started()
        net, x, d = problem(a.cell, a.n, a.B, a.dtype, a.T)
        label = f"{a.cell} n={a.n} B={a.B} {a.dtype}"
        print(f"`python bench/kernel_ab.py --base {a.base} --cell {a.cell} --n {a.n} --B {a.B} --T {a.T} "
              f"--dtype {a.dtype} --rounds {a.rounds}{' --whole' if a.whole else ''}`: one thread, T={a.T}, m={M}, medians of "
              f"{a.rounds} interleaved calls.\n")
        print("| kernel | base | work tree | new / base | median of pair ratios | outputs |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        if a.whole:
            compare_whole(old, a.cell, net, x, d, a.rounds, label)
        else:
            compare_kernels(old, net, x, d, a.rounds, label)


if __name__ == "__main__":
    main()
