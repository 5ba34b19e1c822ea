"""fastrnn.torch beside torch's spinning threads, three settings of its thread rules in the training step
of ``test_torch_step.py`` (forward, a linear readout of 8, summed squared error, backward, SGD; T = 100,
m = 32), default threads, torch.nn's step beside for scale:

- own: fastrnn's own kernels take every product, parallel only for calls of ``BESIDE_MIN_WORK``;
- lent: as own, but the products over all T·B rows (weight gradients, dL/dx) that fastrnn would run
  serially go to torch's pool (``runtime.dispatch.borrowed_gemm``): the rule before e5d18ed;
- quieted: fastrnn.torch's default: as lent, but a call of ``QUIET_MIN_WORK`` that pays on parallel
  threads first puts torch's threads to sleep (``fastrnn.torch._quiet_torch``) and runs with the usual
  thresholds (only where torch runs GNU OpenMP on every CPU; elsewhere it equals lent).

    python bench/borrowed_products.py > bench/results/<date>-products-on-torchs-pool.md

The four steps run in one process, interleaved (ROUNDS rounds, one step each, in a new random order
each round), medians in ms. A case whose calls neither lend (``cells.base._borrow``: below 3.2e7
multiply-adds) nor pay on parallel threads runs the same code all three ways: its gains show the
noise. Before timing, each setting's gradients are compared with float64 torch.nn's. Only meaningful
where torch's OpenMP threads spin (its default policy): ``fastrnn info`` says which applies.
"""
import os
import sys
import time

import numpy as np
import torch

import fastrnn
import fastrnn.torch as ft
from fastrnn.runtime import dispatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_torch_step import M, OUT, T, torch_step  # noqa: E402

ROUNDS = 40
CASES = [("LSTM", 32, 32, "float32"), ("LSTM", 32, 8, "float32"), ("LSTM", 128, 8, "float32"),
         ("LSTM", 128, 32, "float32"), ("LSTM", 512, 8, "float32"), ("LSTM", 512, 1, "float32"),
         ("GRU", 128, 8, "float32"), ("GRU", 128, 32, "float32"), ("GRU", 512, 8, "float32"),
         ("RNN", 128, 32, "float32"), ("RNN", 512, 8, "float32"), ("LSTM", 128, 8, "float64"),
         ("GRU", 128, 32, "float64")]


def _own():
    """``fastrnn.torch``'s setting without the lent products and without quieting torch's threads."""
    return dispatch.beside(torch.get_num_threads(), spinning=ft._SPINNING)


def _lent():
    """``fastrnn.torch``'s setting with the lent products, without quieting torch's threads."""
    return dispatch.beside(torch.get_num_threads(), spinning=ft._SPINNING, gemm=ft._torch_gemm)


def _step(cls, kind, n, B, dtype):
    torch.manual_seed(0)
    module = cls(M, n, dtype=dtype)
    torch.manual_seed(1)
    head = torch.nn.Linear(n, OUT, dtype=dtype)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, M, generator=g, dtype=dtype)
    y = torch.randn(T, B, OUT, generator=g, dtype=dtype)
    return torch_step(module, x, y, head), module, head, x, y


def _gradients(module, head, x, y):
    module.zero_grad()
    out, _ = module(x)
    ((head(out) - y) ** 2).sum().backward()
    return [p.grad.double().clone() for p in module.parameters()]


def _agreement(kind, n, B, dtype, setting):
    """Largest relative difference of the module's gradients, under ``setting`` (a ``beside`` block
    maker), from float64 torch.nn's."""
    _, ours, head, x, y = _step(getattr(ft, kind), kind, n, B, dtype)
    ref = getattr(torch.nn, kind)(M, n, dtype=torch.float64)
    ref.load_state_dict({k: v.double() for k, v in ours.state_dict().items()})
    head64 = torch.nn.Linear(n, OUT, dtype=torch.float64)
    head64.load_state_dict({k: v.double() for k, v in head.state_dict().items()})
    want = _gradients(ref, head64, x.double(), y.double())
    saved = ft._beside_torch
    ft._beside_torch = setting
    try:
        got = _gradients(ours, head, x, y)
    finally:
        ft._beside_torch = saved
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, want))


def main():
    print(f"# fastrnn.torch beside torch's threads: own, lent and quieted (``{' '.join(sys.argv)}``)\n")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, fastrnn {fastrnn.__version__}, "
          f"torch's threads spin: {ft._SPINNING}, GNU OpenMP: {ft._GOMP}, CPUs: {ft._CPUS}; T={T}, m={M}, {OUT} "
          f"outputs; medians of {ROUNDS} interleaved steps, ms.\n")
    print("| step | torch.nn | own | lent | quieted (default) | lent gain | quiet gain | quieted × torch.nn "
          "| gradients against float64, own / lent / quieted |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    settings = {"own": _own, "lent": _lent, "quieted": ft._beside_torch}
    for kind, n, B, dtype_name in CASES:
        dtype = getattr(torch, dtype_name)
        errors = [_agreement(kind, n, B, dtype, make) for make in settings.values()]
        steps = {"torch": _step(getattr(torch.nn, kind), kind, n, B, dtype)[0]}
        module_step = _step(getattr(ft, kind), kind, n, B, dtype)[0]
        steps.update({name: module_step for name in settings})
        times = {name: [] for name in steps}
        order = np.random.default_rng(0)
        try:
            for _ in range(ROUNDS + 2):
                for name in order.permutation(list(steps)):     # a new order each round: no step always follows another
                    ft._beside_torch = settings.get(str(name), settings["quieted"])
                    t = time.perf_counter()
                    steps[name]()
                    times[str(name)].append(time.perf_counter() - t)
        finally:
            ft._beside_torch = settings["quieted"]
        med = {name: float(np.median(v[2:])) * 1e3 for name, v in times.items()}
        print(f"| {kind} {dtype_name} n={n} B={B} | {med['torch']:.2f} | {med['own']:.2f} | {med['lent']:.2f} "
              f"| {med['quieted']:.2f} | {med['own'] / med['lent']:.2f} | {med['lent'] / med['quieted']:.2f} "
              f"| {med['torch'] / med['quieted']:.2f} | {errors[0]:.1e} / {errors[1]:.1e} / {errors[2]:.1e} |")


if __name__ == "__main__":
    main()
