"""Page faults a call in steady state, for every public gradient call, cell, dtype and a grid of sizes: the
calls that map memory afresh every time.

    python bench/page_faults.py [--threads one|default] [--calls 12] [--over 5]

A call whose buffers are kept (``runtime.workspace``) or handed back by the C library takes no page faults
once warm. One that allocates a large array the library does not reuse faults in every page of it every call,
at about 2.5 us a page on a KVM guest. ``kernels.gru_forward`` made its own T·B x 3n projection so: 2150-3821
faults a call and 2-3x the time of ``fastrnn.forward`` at n=128, B=32 (bench/results/2026-11-29-gru-projection.md).

Each case is called three times, then ``--calls`` times with ``getrusage``'s minor faults (the whole process)
counted around them. T=100, m=32, a linear readout of 8 (``fastrnn.forward``, ``bptt``, ``bptt`` truncated to
10, ``vjp``) and the fastrnn.torch layers (forward and backward of the output's sum; forward under
``torch.no_grad``), n = 128 and 512, B = 1, 8, 32 (not 512 with 32). Prints the cases over ``--over`` faults a
call, then how many cases ran.
"""
import argparse
import contextlib
import itertools
import resource
import time

import numpy as np

import fastrnn

try:
    import torch
    import fastrnn.torch as ft
except ImportError:          # the layers' rows need the [torch] extra
    torch = None

SIZES = [(n, B) for n in (128, 512) for B in (1, 8, 32) if (n, B) != (512, 32)]
T, M, OUT = 100, 32, 8


def faults_and_ms(fn, calls):
    """(page faults a call, median ms) of ``calls`` calls after three warm ones."""
    for _ in range(3):
        fn()
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / calls, float(np.median(times)) * 1e3


def array_cases():
    rng = np.random.default_rng(0)
    for cell, dtype, (n, B) in itertools.product(("rnn", "lstm", "gru", "lstmp"), ("float32", "float64"), SIZES):
        sizes = {"n_cell": 2 * n} if cell == "lstmp" else {}
        net = fastrnn.MODELS[cell].init(M, n, OUT, dtype=dtype, seed=0, **sizes)
        x = rng.standard_normal((T, B, M)).astype(dtype)
        d = rng.standard_normal((T, B, OUT)).astype(dtype)
        dh = rng.standard_normal((T, B, net.n_hidden)).astype(dtype)
        name = f"{cell} {dtype} n={n} B={B}"
        yield f"{name} forward", lambda: fastrnn.forward(net, x)
        yield f"{name} bptt", lambda: fastrnn.bptt(net, x, d)
        yield f"{name} bptt truncated", lambda: fastrnn.bptt(net, x, d, truncation=10)
        yield f"{name} vjp", lambda: fastrnn.vjp(net, x, dh)


def layer_cases():
    for cls, dtype, (n, B) in itertools.product(("RNN", "LSTM", "GRU"), ("float32", "float64"), SIZES):
        torch.manual_seed(0)
        layer = getattr(ft, cls)(M, n, dtype=getattr(torch, dtype))
        x = torch.randn(T, B, M, dtype=getattr(torch, dtype))

        def train(layer=layer, x=x):
            layer(x)[0].sum().backward()

        def infer(layer=layer, x=x):
            with torch.no_grad():
                layer(x)
        name = f"fastrnn.torch.{cls} {dtype} n={n} B={B}"
        yield f"{name} forward and backward", train
        yield f"{name} forward under no_grad", infer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", choices=("one", "default"), default="one")
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--over", type=float, default=5, help="print cases with more faults a call than this")
    args = parser.parse_args(argv)
    if torch is not None and args.threads == "one":
        torch.set_num_threads(1)
    cases = 0
    with fastrnn.threads(1) if args.threads == "one" else contextlib.nullcontext():
        for name, fn in itertools.chain(array_cases(), layer_cases() if torch is not None else ()):
            faults, ms = faults_and_ms(fn, args.calls)
            cases += 1
            if faults > args.over:
                print(f"{name}: {faults:.0f} page faults a call, {ms:.2f} ms", flush=True)
    print(f"{cases} cases, threads: {args.threads}{'' if torch is not None else ' (no torch: no layers)'}")


if __name__ == "__main__":
    main()
