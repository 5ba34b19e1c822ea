"""The least time a fastrnn.torch training step at a batch of one can take, against torch.nn's step.

    python bench/module_least.py [rounds] [--n N ...] [--threads one|default ...] [--B 1] [--layers]

Issue 17 asks a model that swaps ``torch.nn.LSTM`` for ``fastrnn.torch.LSTM`` to train 1.5x faster at B = 1.
The step (as ``bench/test_torch_step.py``: float32, T=100, m=32, a Linear readout of 8, summed squared error,
SGD) holds more than the recurrent layer: torch's readout, loss, autograd engine and optimizer run either way.
This times, interleaved in random order, ``rounds`` times (default 80; 25 at n=512):

- ``torch.nn`` and ``fastrnn.torch``: the whole step with either layer;
- ``torch rest``: the same step with the layer's output a leaf tensor (readout, loss, backward, SGD over the
  same parameters): what any layer's step costs beyond the layer;
- ``kernels``: fastrnn's forward and backward kernels for the layer alone (the cell driver, no torch, no checks);
- ``bare Function``: the whole step with a layer that is only a ``torch.autograd.Function`` around those
  kernels (``_BareFunction``: nothing checked, no copy but the upstream gradient's, only a plain call's
  hold on the BLAS), the floor under any layer that enters torch's autograd as one node, as fastrnn.torch's
  eager path does;

and reports ``least = torch rest + kernels``, the step a layer with no cost beyond its kernels would take, the
ratio torch.nn / least (the most any layer on these kernels can reach), torch.nn / bare Function (the most a
layer in torch's autograd can reach) and torch.nn / 1.5 (the goal's time): "1.5x possible" is "yes" only
where the bare Function's step is under the goal's time. One thread (torch, fastrnn and every BLAS) and
default threads. ``--B``: another batch (the goal there is 1x torch.nn: "1x possible", torch.nn / 1).
"""
import argparse
import os
import sys

import numpy as np
import torch

import fastrnn
import fastrnn.torch as ft
from fastrnn import checks
from fastrnn.cells import driver_for
from fastrnn.runtime.dispatch import workers

from common import interleaved
from test_torch_step import thread_mode

T, M, B, OUT = 100, 32, 1, 8


def _steps(n):
    torch.manual_seed(0)
    tl = torch.nn.LSTM(M, n)
    fl = ft.LSTM(M, n)
    fl.load_state_dict(tl.state_dict())
    head = torch.nn.Linear(n, OUT)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, M, generator=g)
    y = torch.randn(T, B, OUT, generator=g)

    def step_of(layer):
        opt = torch.optim.SGD([*layer.parameters(), *head.parameters()], lr=1e-6)

        def step():
            opt.zero_grad()
            out, _ = layer(x)
            ((head(out) - y) ** 2).sum().backward()
            opt.step()
        return step

    leaf = torch.randn(T, B, n).requires_grad_(True)
    opt = torch.optim.SGD([*tl.parameters(), *head.parameters()], lr=1e-6)

    def rest():
        opt.zero_grad()
        leaf.grad = None
        ((head(leaf) - y) ** 2).sum().backward()
        opt.step()

    weights = (p.detach().numpy().copy() for p in (tl.weight_ih_l0, tl.weight_hh_l0, tl.bias_ih_l0, tl.bias_hh_l0))
    net = fastrnn.LSTM(*weights, readout="units", out_units=[0])
    driver = driver_for(net)
    W = net.checked()
    xn = x.numpy().copy()
    state0 = (np.zeros((B, n), np.float32),) * 2
    errors = np.random.default_rng(0).standard_normal((T, B, n)).astype(np.float32)
    exact = checks.truncation(None, T)
    off = checks.Forcing.off(net.dtype)

    def kernels():
        with workers() as threads:
            run = driver.forward(net, W, xn, state0, off, threads, scratch=True)
            driver.backward(net, W, xn, run, errors.copy(), exact, off, threads)

    bare = _BareLayer(tl, net, driver)
    return {"torch.nn": step_of(tl), "fastrnn.torch": step_of(fl), "torch rest": rest, "kernels": kernels,
            "bare Function": step_of(bare)}


class _BareFunction(torch.autograd.Function):
    """The least a layer in torch's autograd does around the kernels: the driver's forward and backward
    on a network over copies of the weights (``_BareLayer``), nothing checked, no copy but the upstream
    gradient's (the driver writes into it), no thread settings beyond a plain call's (``workers``: every
    BLAS on one thread)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, layer):
        with workers() as threads:
            run = layer.driver.forward(layer.net, layer.W, x.numpy(), layer.state0, layer.off, threads)
        ctx.run, ctx.layer, ctx.x = run, layer, x
        return torch.from_numpy(run.states[0][1:])

    @staticmethod
    def backward(ctx, d_out):
        layer = ctx.layer
        g = np.array(d_out.numpy(), order="C")
        with workers() as threads:
            grads, _, _ = layer.driver.backward(layer.net, layer.W, ctx.x.numpy(), ctx.run, g, layer.exact,
                                                layer.off, threads)
        return (None,) + tuple(torch.from_numpy(grads[k]) for k in ("W_ih", "W_hh", "b_ih", "b_hh")) + (None,)


class _BareLayer(torch.nn.Module):
    """``_BareFunction`` as a module over torch.nn.LSTM's parameters, on the fastrnn network ``net`` built
    from copies of them (as the ``kernels`` row's): the optimizer's steps do not reach the kernels, which
    changes the values, not the time. The floor under any autograd Function layer on these kernels:
    ``torch rest`` and ``kernels`` plus what torch's autograd spends on one more node."""

    def __init__(self, lstm, net, driver):
        super().__init__()
        self.lstm = lstm
        self.net, self.driver = net, driver
        self.W = net.checked()
        self.state0 = (np.zeros((B, lstm.hidden_size), np.float32),) * 2
        self.exact = checks.truncation(None, T)
        self.off = checks.Forcing.off(np.float32)

    def forward(self, x):
        p = self.lstm
        return _BareFunction.apply(x, p.weight_ih_l0, p.weight_hh_l0, p.bias_ih_l0, p.bias_hh_l0, self), None


def main(argv=None):
    parser = argparse.ArgumentParser(description="fastrnn.torch's step at B = 1 against its least time")
    parser.add_argument("rounds", nargs="?", type=int, default=80)
    parser.add_argument("--n", type=int, action="append", help="hidden sizes (default 32, 128, 512)")
    parser.add_argument("--threads", choices=("one", "default"), action="append", help="thread modes (default both)")
    parser.add_argument("--B", type=int, default=1, help="the batch (default 1; the goal there is 1.5x, elsewhere 1x)")
    parser.add_argument("--layers", action="store_true",
                        help="time the three layers' steps only (torch.nn, fastrnn.torch, bare Function), "
                             "for an A/B of fastrnn's Python side (``bench/with_package.py``)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    global B
    B = args.B
    speedup = 1.5 if B == 1 else 1.0
    if args.layers:
        print(f"fastrnn from {os.path.dirname(fastrnn.__file__)}\n")
        print("| threads | n | torch.nn | fastrnn.torch | bare Function | torch.nn / fastrnn.torch "
              "| fastrnn.torch - bare Function |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    else:
        print(f"B = {B}\n")
        print("| threads | n | torch.nn | fastrnn.torch | torch.nn / fastrnn.torch | torch rest | kernels | least "
              f"| torch.nn / least | bare Function | torch.nn / bare | torch.nn / {speedup:g} | {speedup:g}x possible |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for mode in args.threads or ("one", "default"):
        for n in args.n or (32, 128, 512):
            fns = _steps(n)
            if args.layers:
                fns = {k: fns[k] for k in ("torch.nn", "fastrnn.torch", "bare Function")}
            with thread_mode(mode):
                times = interleaved(fns, args.rounds if n < 512 else max(1, args.rounds * 5 // 16))
            m = {k: np.median(v) * 1e3 for k, v in times.items()}
            if args.layers:
                print(f"| {mode} | {n} | {m['torch.nn']:.3f} | {m['fastrnn.torch']:.3f} | {m['bare Function']:.3f} "
                      f"| {m['torch.nn'] / m['fastrnn.torch']:.3f} | {m['fastrnn.torch'] - m['bare Function']:.3f} |",
                      flush=True)
                continue
            least = m["torch rest"] + m["kernels"]
            goal = m["torch.nn"] / speedup
            print(f"| {mode} | {n} | {m['torch.nn']:.2f} | {m['fastrnn.torch']:.2f} | {m['torch.nn'] / m['fastrnn.torch']:.2f} "
                  f"| {m['torch rest']:.2f} | {m['kernels']:.2f} | {least:.2f} | {m['torch.nn'] / least:.2f} "
                  f"| {m['bare Function']:.2f} | {m['torch.nn'] / m['bare Function']:.2f} | {goal:.2f} | "
                  + ("no: the goal is under the least time" if least >= goal else
                     "no: under a bare Function's time" if m["bare Function"] >= goal else "yes") + " |", flush=True)

if __name__ == "__main__":
    main()
