"""RTRL sequence gradient (tanh cell, units readout, summed mse): fastrnn against its reference
(plain NumPy), a batched-matmul RTRL in PyTorch, RTRL inside JAX's lax.scan, and the GEMM of the
update's shape.

    pytest bench/ --benchmark-only

``numpy-gemm`` times numpy.matmul of W_rec (n x n) by P (n x B*n*J), T times: the multiply-adds
of one sequence at the machine's matrix-multiply rate. The RTRL kernel is judged as a fraction
of that rate (bench/report.py). fastrnn's time includes its forward pass and readout; the torch
and JAX peers get the forward pass precomputed, outside the timing.
"""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference

import peers
from common import as_tuple, check_against, problem, size_id

SIZES = [(16, 4, 200, 1), (32, 4, 100, 1), (64, 4, 20, 1), (128, 4, 5, 1), (32, 4, 50, 8)]  # n, m, T, B
ROWS = [(s, np.float64) for s in SIZES] + [(s, np.float32) for s in SIZES if s[0] >= 64]


def gemm_baseline(net, x):
    T, B, m = x.shape
    n = net.n_hidden
    P = np.random.default_rng(1).standard_normal((n, B * n * (m + 1 + n))).astype(net.dtype)
    out = np.empty_like(P)

    def run():
        for _ in range(T):
            np.matmul(net.W_rec, P, out=out)
        return out
    return run


def make(impl, net, x, d):
    if impl == "fastrnn":
        return lambda: as_tuple(fastrnn.rtrl(net, x, d))
    if impl == "reference":
        return lambda: as_tuple(reference.rtrl(net, x, d))
    if impl == "torch":
        if peers.torch is None:
            pytest.skip(peers.WHY_NO_TORCH)
        return peers.TorchRTRL(net, x, d)
    if peers.jax is None:
        pytest.skip(peers.WHY_NO_JAX)
    return peers.JaxRTRL(net, x, d)


@pytest.mark.parametrize("impl", ["fastrnn", "reference", "torch", "jax", "numpy-gemm"])
@pytest.mark.parametrize("size,dtype", ROWS, ids=[f"{size_id(s)}-{np.dtype(t).name}" for s, t in ROWS])
def test_rtrl(benchmark, impl, size, dtype):
    n, m, T, B = size
    net, x, d = problem(*size, dtype=dtype)
    if impl == "numpy-gemm":
        fn = gemm_baseline(net, x)
        fn()
    else:
        fn = make(impl, net, x, d)
        check_against(fn(), as_tuple(fastrnn.rtrl(net, x, d)), dtype, impl)   # also warms the JIT
    benchmark.group = f"rtrl {size_id(size)} {np.dtype(dtype).name}"
    benchmark.extra_info.update(algorithm="rtrl", impl=impl, n=n, m=m, T=T, B=B,
                                dtype=np.dtype(dtype).name, flops=2 * T * B * n * n * n * (m + 1 + n))
    benchmark(fn)
