"""RTRL sequence gradient: fastrnn against the reference and the GEMM of the update's shape.

    pytest bench/test_rtrl.py --benchmark-only --benchmark-group-by=group

Each size's group also times ``numpy.matmul`` of W_rec (n x n) by P (n x B*n*J) repeated T times:
the matrix-multiply work of one sequence, the ceiling the kernel is judged against.
GFLOP/s below count 2·B·n²·n·J flops per step for that product.
"""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference

SIZES = [(16, 4, 200, 1), (32, 4, 100, 1), (64, 4, 20, 1), (128, 4, 5, 1), (32, 4, 50, 8)]  # n, m, T, B


def problem(n, m, T, B, dtype=np.float64):
    rng = np.random.default_rng(0)
    net = fastrnn.RNN.init(m, n, max(1, n // 4), dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, m)).astype(dtype)
    d = rng.standard_normal((T, B, net.n_out)).astype(dtype)
    return net, x, d


def gemm_baseline(net, x, d):
    T, B, m = x.shape
    n = net.n_hidden
    P = np.random.default_rng(1).standard_normal((n, B * n * (m + 1 + n))).astype(net.dtype)
    out = np.empty_like(P)
    for _ in range(T):
        np.matmul(net.W_rec, P, out=out)
    return out


IMPLEMENTATIONS = {
    "fastrnn": lambda net, x, d: fastrnn.rtrl(net, x, d),
    "reference": lambda net, x, d: reference.rtrl(net, x, d),
    "numpy-gemm": gemm_baseline,
}


def size_id(s):
    return "n{}-m{}-T{}-B{}".format(*s)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_rtrl(benchmark, impl, size, dtype):
    n, m, T, B = size
    if dtype == np.float32 and n < 64:
        pytest.skip("float32 rows only for the largest sizes (n >= 64)")
    net, x, d = problem(*size, dtype=dtype)
    fn = IMPLEMENTATIONS[impl]
    fn(net, x, d)   # compile / warm up outside the timing
    benchmark.group = f"rtrl {size_id(size)} {np.dtype(dtype).name}"
    benchmark.extra_info.update(size=size, steps=T, flops=2 * T * B * n * n * n * (m + 1 + n))
    benchmark(fn, net, x, d)
