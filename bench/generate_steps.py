"""Generating a step at a time: fastrnn.torch's layer against torch.nn's, one call a step, the final states fed
back, under ``torch.no_grad()`` (how a trained model samples a sequence, or runs on a stream).

    python bench/generate_steps.py [rounds] [--n N ...] [--cell LSTM] [--threads one|default]

Each round runs ``STEPS`` steps of each layer (T = 1, B = 1, m = 32, float32), the layers in a new random order
each round (``common.interleaved``); the table gives the median microseconds a step and torch.nn / fastrnn.torch.
At these sizes a call is mostly fixed cost (the checks, the thread settings, Python), not kernels: this is the
row where that cost shows. For an A/B of fastrnn's Python side, ``bench/with_package.py``.
"""
import argparse
import os
import sys

import numpy as np
import torch

import fastrnn
import fastrnn.torch as ft

from common import interleaved
from test_torch_step import thread_mode

STEPS, M = 20, 32


def _generator(layer, x):
    def run():
        with torch.no_grad():
            state = None
            for _ in range(STEPS):
                _, state = layer(x, state)
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description="one step a call, states fed back, fastrnn.torch against torch.nn")
    parser.add_argument("rounds", nargs="?", type=int, default=60)
    parser.add_argument("--n", type=int, action="append", help="hidden sizes (default 32, 128, 512)")
    parser.add_argument("--cell", choices=("RNN", "LSTM", "GRU"), default="LSTM")
    parser.add_argument("--threads", choices=("one", "default"), default="one")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"fastrnn from {os.path.dirname(fastrnn.__file__)}; {args.cell}, float32, B=1, m={M}, {args.threads} "
          f"thread(s), {STEPS} steps a round, {args.rounds} rounds\n")
    print("| n | torch.nn (us a step) | fastrnn.torch (us a step) | torch.nn / fastrnn.torch |")
    print("| ---: | ---: | ---: | ---: |")
    for n in args.n or (32, 128, 512):
        torch.manual_seed(0)
        ref = getattr(torch.nn, args.cell)(M, n)
        ours = getattr(ft, args.cell)(M, n)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(1, 1, M)
        with torch.no_grad():          # the two agree before they are timed
            torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-4, atol=1e-5)
        with thread_mode(args.threads):
            times = interleaved({"torch.nn": _generator(ref, x), "fastrnn.torch": _generator(ours, x)},
                                args.rounds, warm=3)
        t, f = (np.median(times[k]) / STEPS * 1e6 for k in ("torch.nn", "fastrnn.torch"))
        print(f"| {n} | {t:.1f} | {f:.1f} | {t / f:.2f} |", flush=True)


if __name__ == "__main__":
    main()
