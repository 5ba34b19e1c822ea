"""BPTT, forward + backward (tanh cell, units readout with o = n/4, summed mse), float64; float32
on the largest row. fastrnn against its reference, torch.nn.RNN + autograd and JAX.

    pytest bench/ --benchmark-only
"""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference

import peers
from common import as_tuple, check_against, gemm_one_thread, gemv_one_thread, problem, size_id

SIZES = [(32, 8, 1000, 1), (128, 8, 1000, 1), (128, 8, 200, 32), (512, 32, 200, 16)]  # n, m, T, B
SCALING = [(64, 8, 1000, 1), (256, 8, 1000, 1)]   # extra B = 1 rows for the fitted exponent
ROWS = [(s, np.float64) for s in SIZES + SCALING] + [(SIZES[-1], np.float32)]


def make(impl, net, x, d):
    if impl == "fastrnn":
        return lambda: as_tuple(fastrnn.bptt(net, x, d))
    if impl == "reference":
        return lambda: as_tuple(reference.bptt(net, x, d))
    if impl == "torch":
        if peers.torch is None:
            pytest.skip(peers.WHY_NO_TORCH)
        return peers.TorchBPTT(net, x, d)
    if peers.jax is None:
        pytest.skip(peers.WHY_NO_JAX)
    return peers.JaxBPTT(net, x, d)


@pytest.mark.parametrize("impl", ["fastrnn", "reference", "torch", "jax"])
@pytest.mark.parametrize("size,dtype", ROWS, ids=[f"{size_id(s)}-{np.dtype(t).name}" for s, t in ROWS])
def test_bptt(benchmark, impl, size, dtype):
    n, m, T, B = size
    if impl == "reference" and n * T * B > 128 * 1000 * 1 * 8:
        pytest.skip("the reference is too slow to time at this size")
    net, x, d = problem(*size, dtype=dtype)
    fn = make(impl, net, x, d)
    check_against(fn(), as_tuple(fastrnn.bptt(net, x, d)), dtype, impl)   # also warms the JIT
    benchmark.group = f"bptt {size_id(size)} {np.dtype(dtype).name}"
    benchmark.extra_info.update(algorithm="bptt", impl=impl, n=n, m=m, T=T, B=B,
                                dtype=np.dtype(dtype).name)
    benchmark(fn)


@pytest.mark.parametrize("n,T", sorted({(n, T) for n, m, T, B in SIZES + SCALING if B == 1}))
def test_gemv_one_thread(benchmark, n, T):
    """The B = 1 rows' products by W_rec on one thread: the report's least time for those rows."""
    gemv_one_thread(benchmark, n, 1, np.float64, T)


def test_gemm_one_thread(benchmark):
    gemm_one_thread(benchmark, np.float64)
