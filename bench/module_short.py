"""fastrnn.torch against torch.nn on short sequences: where a layer call's fixed cost decides.

    python bench/module_short.py [rounds]

A layer call (forward, and forward + backward of ``output.sum()``) at a batch of one, float32, m=32,
n=64, for T = 1, 10, 30 and 100 steps: an agent that steps its recurrent layer one input at a time,
or a stream cut into short windows, calls the layer with small T. Both layers start from the same
weights and their outputs are compared before timing. Every row's four callables are timed in
rounds of one call each, in a new random order each round (``rounds``, default 400), one thread
(torch, fastrnn and every BLAS) and default threads. Medians in microseconds; the ratio is torch.nn's
time over fastrnn.torch's (above 1: fastrnn.torch faster).
"""
import sys

import numpy as np
import torch

import fastrnn.torch as ft

from common import interleaved
from test_torch_step import thread_mode

M, B, N = 32, 1, 64
KINDS = ("LSTM", "GRU", "RNN")
STEPS = (1, 10, 30, 100)


def _calls(kind, T):
    torch.manual_seed(0)
    ours = getattr(ft, kind)(M, N)
    theirs = getattr(torch.nn, kind)(M, N)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(T, B, M, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x)[0] - theirs(x)[0]).abs().max().item()
    if diff > 1e-5:
        raise SystemExit(f"{kind} T={T}: fastrnn.torch's output differs from torch.nn's by {diff:g}")

    def call(layer, backward):
        def run():
            out, _ = layer(x)
            if backward:
                out.sum().backward()
        return run
    return {f"{name} {what}": call(layer, what == "fwd+bwd")
            for name, layer in (("fastrnn.torch", ours), ("torch.nn", theirs)) for what in ("fwd", "fwd+bwd")}


def main(rounds=400):
    print("| threads | cell | T | fastrnn.torch fwd | torch.nn fwd | ratio | fastrnn.torch fwd+bwd | torch.nn fwd+bwd | ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in ("one", "default"):
        for kind in KINDS:
            for T in STEPS:
                with thread_mode(mode):
                    times = interleaved(_calls(kind, T), rounds, warm=10)
                us = {k: float(np.median(v)) * 1e6 for k, v in times.items()}
                f, t = us["fastrnn.torch fwd"], us["torch.nn fwd"]
                fb, tb = us["fastrnn.torch fwd+bwd"], us["torch.nn fwd+bwd"]
                print(f"| {mode} | {kind} | {T} | {f:.0f} | {t:.0f} | {t / f:.2f} | {fb:.0f} | {tb:.0f} | {tb / fb:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
