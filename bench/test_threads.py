"""Threads: every call at the default thread count against the same call on one thread.

The grid runs from tiny (n=4, T=10, B=1) to large problems for each kernel family (BPTT of the
simple cell and the LSTM, RTRL of both). The dispatch policy (``fastrnn.runtime.dispatch.plan``)
must make the default never more than 10 % slower than one thread, and the large calls use every
core. ``latency`` rows time the small per-sequence calls of online training (T 12-50, n 8-32,
B 1) against torch.nn.RNN + autograd and JAX's jit(value_and_grad(lax.scan)).

    pytest bench/test_threads.py --benchmark-only --benchmark-json=threads.json
    python bench/report.py threads.json
"""
import numpy as np
import pytest

import fastrnn

import peers
from common import as_tuple, check_against, lstm_problem, problem

GRID = {
    "bptt": [(4, 10, 1), (8, 12, 1), (32, 50, 1), (32, 1000, 1), (128, 1000, 1), (128, 200, 4), (32, 12, 32),
             (32, 50, 32), (128, 200, 32), (256, 200, 32)],
    "rtrl": [(8, 200, 1), (16, 200, 1), (24, 100, 1), (32, 100, 1), (64, 20, 1), (128, 5, 1), (16, 50, 8),
             (32, 50, 8)],
    "lstm-bptt": [(8, 12, 1), (32, 100, 1), (128, 200, 1), (256, 100, 1), (512, 100, 1), (512, 100, 4), (32, 50, 32),
                  (128, 200, 32)],
    "lstm-rtrl": [(8, 100, 1), (16, 100, 1), (32, 20, 1)],
}
ROWS = [(algo, size) for algo, sizes in GRID.items() for size in sizes]
M = 4


def call(algo, net, x, d):
    fn = fastrnn.rtrl if algo.endswith("rtrl") else fastrnn.bptt
    return lambda: as_tuple(fn(net, x, d))


@pytest.mark.parametrize("threads", ["default", "one"])
@pytest.mark.parametrize("algo,size", ROWS, ids=[f"{a}-n{n}-T{T}-B{B}" for a, (n, T, B) in ROWS])
def test_threads(benchmark, algo, size, threads):
    n, T, B = size
    net, x, d = (lstm_problem if algo.startswith("lstm") else problem)(n, M, T, B)
    fn = call(algo, net, x, d)
    if threads == "one":
        with fastrnn.threads(1):
            expected = fn()
        run = fn

        def fn():
            with fastrnn.threads(1):
                return run()
    else:
        expected = fn()
    check_against(fn(), expected, np.float64, f"threads={threads}")
    benchmark.group = f"threads {algo} n={n} T={T} B={B}"
    benchmark.extra_info.update(algorithm=f"threads-{algo}", impl="fastrnn" if threads == "default" else "one-thread",
                                n=n, m=M, T=T, B=B, dtype="float64")
    benchmark(fn)


LATENCY = [(n, T) for n in (8, 16, 32) for T in (12, 50)]


@pytest.mark.parametrize("impl", ["fastrnn", "torch", "jax"])
@pytest.mark.parametrize("n,T", LATENCY, ids=[f"n{n}-T{T}" for n, T in LATENCY])
def test_latency(benchmark, impl, n, T):
    net, x, d = problem(n, M, T, 1)
    if impl == "fastrnn":
        fn = call("bptt", net, x, d)
    elif impl == "torch":
        if peers.torch is None:
            pytest.skip(peers.WHY_NO_TORCH)
        fn = peers.TorchBPTT(net, x, d)
    else:
        if peers.jax is None:
            pytest.skip(peers.WHY_NO_JAX)
        fn = peers.JaxBPTT(net, x, d)
    check_against(fn(), as_tuple(fastrnn.bptt(net, x, d)), np.float64, impl)
    benchmark.group = f"latency bptt n={n} T={T} B=1"
    benchmark.extra_info.update(algorithm="latency-bptt", impl=impl, n=n, m=M, T=T, B=1, dtype="float64")
    benchmark(fn)
