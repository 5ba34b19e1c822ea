"""Whole calls of this install against another install of fastrnn (another commit), each in fresh processes.

    git worktree add /tmp/base COMMIT && python3 -m venv /tmp/vb && /tmp/vb/bin/pip install -e /tmp/base threadpoolctl pytest
    python bench/install_ab.py --base-python /tmp/vb/bin/python CELL N B DTYPE THREADS CALLS [--call forward|bptt]
        [--T 100] [--alternations 5] [--linear]

CELL: rnn, lstm or gru (``common.problem`` / ``common.lstm_problem``: m = 32, units readout, summed squared error;
``--linear``: the training-step table's problem instead, a linear readout of 8 outputs);
THREADS: 0 for the default threads, else that many (``fastrnn.threads``). Each alternation runs one process of each
install in turn (the order swapped every other time), which times CALLS calls after three warm ones and prints their
median; the line gives both installs' medians in ms and new / base of their medians (under 1: this install is
faster). ``kernel_ab.py`` compares two builds inside one process; its two builds of the same code differed by
4-10 % on a 2-core Zen 5 here, so the figures of ``bench/results/2026-11-28-panel-order-and-units.md`` come from
this script's separate processes instead.
"""
import argparse
import contextlib
import os
import subprocess
import sys
import time

import numpy as np


def _child(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import fastrnn
    from common import lstm_problem, problem
    dtype = np.dtype(args.dtype)
    if args.linear:
        rng = np.random.default_rng(0)
        net = fastrnn.MODELS[args.cell].init(32, args.n, 8, readout="linear", dtype=dtype, seed=0)
        x = rng.standard_normal((args.T, args.B, 32)).astype(dtype)
        d = rng.standard_normal((args.T, args.B, 8)).astype(dtype)
    elif args.cell == "rnn":
        net, x, d = problem(args.n, 32, args.T, args.B, dtype=dtype)
    else:
        net, x, d = lstm_problem(args.n, 32, args.T, args.B, dtype=dtype, cell=args.cell)
    fn = (lambda: fastrnn.forward(net, x)) if args.call == "forward" else (lambda: fastrnn.bptt(net, x, d))
    times = []
    with fastrnn.threads(args.threads) if args.threads else contextlib.nullcontext():
        for _ in range(args.calls + 3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    print(f"{np.median(times[3:]) * 1e3:.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell", choices=("rnn", "lstm", "gru"))
    parser.add_argument("n", type=int)
    parser.add_argument("B", type=int)
    parser.add_argument("dtype", choices=("float32", "float64"))
    parser.add_argument("threads", type=int)
    parser.add_argument("calls", type=int)
    parser.add_argument("--call", choices=("forward", "bptt"), default="bptt")
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--alternations", type=int, default=5)
    parser.add_argument("--linear", action="store_true", help="a linear readout of 8 outputs (the table's problem)")
    parser.add_argument("--base-python", help="the other install's python")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if not args.base_python:
        parser.error("--base-python is required: the python of the install to compare with")
    rest = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--base-python")]
    rest = [a for a in rest if a != args.base_python] + ["--child"]
    pythons = {"new": sys.executable, "base": args.base_python}
    medians = {"new": [], "base": []}
    for k in range(args.alternations):
        for name in (("new", "base") if k % 2 == 0 else ("base", "new")):
            out = subprocess.run([pythons[name], os.path.abspath(__file__)] + rest, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"the {name} install failed:\n{out.stderr[-2000:]}")
            medians[name].append(float(out.stdout.strip().splitlines()[-1]))
    new, base = np.array(medians["new"]), np.array(medians["base"])
    print(f"{args.cell} n={args.n} B={args.B} {args.dtype} threads={args.threads or 'default'} {args.call}"
          f"{' linear' if args.linear else ''}: "
          f"new {np.round(new, 2).tolist()} base {np.round(base, 2).tolist()} ms, "
          f"new / base {np.median(new) / np.median(base):.3f}")


if __name__ == "__main__":
    sys.exit(main())
