"""What a call costs beyond its kernels: the fixed cost of fastrnn's public calls and of the
fastrnn.torch layer, on one thread.

    python bench/overhead.py [rounds] > bench/results/<date>-call-overhead.md

Two sizes. "tiny": an LSTM with n = 2, m = 2, T = 1, B = 1, where a call is all overhead (the
kernels take about 2 us). "n=32": an LSTM with n = 32, m = 32, T = 100, B = 1, float32, the
smallest row of the training-step table (``bench/test_torch_step.py``), where fastrnn.torch's step
missed 1.5x torch.nn. Each row is timed one call at a time, all rows of a size in a new random
order each round, in one process (the machine is noisy: compare rows of one run only). "kernels"
calls the cell driver's forward and backward directly on checked arrays: the floor under every
other row. torch.nn's rows are the drop-in's competitor at the same size (forward and backward
of the layer with a given output gradient, no readout).
"""
import sys

import numpy as np

import fastrnn
from fastrnn import api, checks
from fastrnn.cells import driver_for
from fastrnn.runtime.dispatch import workers

from common import interleaved

try:
    import torch
    import fastrnn.torch as ft
except ImportError:          # the torch rows need the [torch] extra
    torch = None


def _rows(n, m, T, dtype):
    rng = np.random.default_rng(0)
    net = fastrnn.LSTM.init(m, n, 4, dtype=dtype, seed=0)
    units = fastrnn.LSTM(net.W_ih, net.W_hh, net.b_ih, net.b_hh, readout="units")
    x = rng.standard_normal((T, 1, m)).astype(dtype)
    d = rng.standard_normal((T, 1, 4)).astype(dtype)
    g = rng.standard_normal((T, 1, n)).astype(dtype)
    driver = driver_for(units)
    W, xc, state0 = checks.inputs(units, x, None)
    off, whole = checks.Forcing.off(units.dtype), checks.truncation(None, T)

    def kernels():
        with workers() as threads:
            run = driver.forward(units, W, xc, state0, off, threads)
            driver.backward(units, W, xc, run, g.copy(), whole, off, threads, want_dx=False)

    rows = {"kernels (driver forward + backward)": kernels,
            "fastrnn.forward": lambda: fastrnn.forward(units, x),
            "fastrnn.vjp (forward inside)": lambda: fastrnn.vjp(units, x, g, input_grad=False),
            "fastrnn.bptt (linear readout, mse)": lambda: fastrnn.bptt(net, x, d)}
    if torch is not None:
        tdtype = getattr(torch, np.dtype(dtype).name)
        tx, tg = torch.from_numpy(x), torch.from_numpy(g)
        for name, lib in (("fastrnn.torch.LSTM", ft), ("torch.nn.LSTM", torch.nn)):
            torch.manual_seed(0)
            module = lib.LSTM(m, n, dtype=tdtype)

            def layer(module=module):
                out, _ = module(tx)
                out.backward(tg)
            rows[f"{name} forward + backward"] = layer
    return rows


def main(rounds=2000):
    from threadpoolctl import threadpool_limits
    print("# Call overhead: fastrnn's calls beyond their kernels (one thread)\n")
    print(f"`python bench/overhead.py {rounds}`: LSTM, B=1, every row timed {rounds} times, interleaved; "
          "microseconds.\n")
    if torch is not None:
        torch.set_num_threads(1)
    with fastrnn.threads(1), threadpool_limits(1):
        for label, (n, m, T, dtype, k) in {"tiny (n=2, m=2, T=1, float64)": (2, 2, 1, np.float64, rounds),
                                           "n=32, m=32, T=100, float32": (32, 32, 100, np.float32, rounds // 4)}.items():
            times = interleaved(_rows(n, m, T, dtype), k, warm=10)
            floor = np.median(times["kernels (driver forward + backward)"])
            print(f"\n## {label}\n")
            print("| call | median | mean | beyond kernels (median) |")
            print("| --- | ---: | ---: | ---: |")
            for name, t in times.items():
                med = np.median(t)
                print(f"| {name} | {med * 1e6:.1f} | {np.mean(t) * 1e6:.1f} | {(med - floor) * 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
