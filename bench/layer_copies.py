"""What a fastrnn.torch layer's two copies cost in a training step: the output copied out of the forward pass's
states, and dL/dh checked and copied into a new array before the backward sweep.

    python bench/layer_copies.py [rounds] [--n N ...] [--B B ...] [--threads one|default]

The step is ``bench/module_least.py``'s (float32 LSTM, T=100, m=32, a Linear readout of 8, summed squared error,
torch's SGD). Three ways of the layer, interleaved in random order in one process, ``rounds`` times (default 60,
a quarter of that from n=512 or B=32 up):

- ``now``: the layer as it is (the output is the states' memory; dL/dh checked while it is copied into a scratch
  array, ``checks.finite_copy``);
- ``output copied``: the forward pass's states copied into a new output tensor, as before 8e5e928;
- ``dh as before``: dL/dh checked in one pass, then copied into a new array in another (``_upstream`` before
  this script).

Medians in ms, and each way's median over ``now``'s.
"""
import argparse
import random
import sys
import time

import numpy as np
import torch

import fastrnn.torch as ft
from fastrnn import api, checks

import module_least
from test_torch_step import thread_mode


def _output_copied(ctx, layer, slot, count, x, *tensors):
    outputs = _NOW_FORWARD(ctx, layer, slot, count, x, *tensors)
    return (outputs[0].clone(),) + outputs[1:]


def _upstream_before(net, dh, T, B):
    dh_arr = checks.float_array("dh", dh, net.dtype)
    checks.check_shape("dh", dh_arr, (T, B, net.n_hidden), "(T, B, n)")
    checks.check_finite("dh", dh_arr)
    return np.array(dh_arr, dtype=net.dtype, order="C")


_NOW_FORWARD = ft._LayerFunction.forward
_NOW_UPSTREAM = api._upstream


def _use(way):
    ft._LayerFunction.forward = staticmethod(_output_copied if way == "output copied" else _NOW_FORWARD)
    api._upstream = _upstream_before if way == "dh as before" else _NOW_UPSTREAM


def main(argv=None):
    parser = argparse.ArgumentParser(description="the cost of a fastrnn.torch layer's copies in a training step")
    parser.add_argument("rounds", nargs="?", type=int, default=60)
    parser.add_argument("--n", type=int, action="append", help="hidden sizes (default 32, 128, 512)")
    parser.add_argument("--B", type=int, action="append", help="batches (default 8, 32)")
    parser.add_argument("--threads", choices=("one", "default"), default="default")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    ways = ("now", "output copied", "dh as before")
    print(f"threads: {args.threads}\n")
    print("| n | B | now | output copied | dh as before | output copied / now | dh as before / now |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in args.n or (32, 128, 512):
        for B in args.B or (8, 32):
            module_least.B = B
            step = module_least._steps(n)["fastrnn.torch"]
            rounds = args.rounds if n < 512 and B < 32 else max(3, args.rounds // 4)
            times = {way: [] for way in ways}
            with thread_mode(args.threads):
                for way in ways:
                    _use(way)
                    for _ in range(3):
                        step()
                for _ in range(rounds):
                    for way in random.sample(ways, len(ways)):
                        _use(way)
                        start = time.perf_counter()
                        step()
                        times[way].append(time.perf_counter() - start)
            _use("now")
            m = {way: np.median(t) * 1e3 for way, t in times.items()}
            print(f"| {n} | {B} | {m['now']:.3f} | {m['output copied']:.3f} | {m['dh as before']:.3f} "
                  f"| {m['output copied'] / m['now']:.3f} | {m['dh as before'] / m['now']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
