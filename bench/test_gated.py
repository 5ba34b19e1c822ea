"""The gated cells, LSTM and GRU: BPTT (forward + backward, units readout with o = n/4, summed
mse) against torch.nn.LSTM / torch.nn.GRU and a JAX scan, and the RTRL sequence gradient with
the GEMM baseline of its update (W_hh (gn x n) by P (n x B*gn*J), T times; g = 4 gates for the
LSTM, 3 for the GRU).

    pytest bench/ --benchmark-only
"""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference

import peers
from common import as_tuple, check_against, lstm_problem, size_id

BPTT_SIZES = [(32, 8, 1000, 1), (128, 8, 1000, 1), (256, 32, 200, 16)]   # n, m, T, B
RTRL_SIZES = [(8, 4, 200, 1), (16, 4, 100, 1), (32, 4, 20, 1)]


def make_bptt(impl, net, x, d):
    if impl == "fastrnn":
        return lambda: as_tuple(fastrnn.bptt(net, x, d))
    if impl == "reference":
        return lambda: as_tuple(reference.bptt(net, x, d))
    if impl == "torch":
        if peers.torch is None:
            pytest.skip(peers.WHY_NO_TORCH)
        return peers.TorchGated(net, x, d)
    if peers.jax is None:
        pytest.skip(peers.WHY_NO_JAX)
    return {"lstm": peers.JaxLSTM, "gru": peers.JaxGRU}[net.cell](net, x, d)


@pytest.mark.parametrize("impl", ["fastrnn", "reference", "torch", "jax"])
@pytest.mark.parametrize("size", BPTT_SIZES, ids=size_id)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_bptt(benchmark, cell, impl, size):
    n, m, T, B = size
    if impl == "reference" and n * T * B > 128 * 1000:
        pytest.skip("the reference is too slow to time at this size")
    net, x, d = lstm_problem(*size, cell=cell)
    fn = make_bptt(impl, net, x, d)
    check_against(fn(), as_tuple(fastrnn.bptt(net, x, d)), np.float64, impl)
    benchmark.group = f"{cell}-bptt {size_id(size)} float64"
    benchmark.extra_info.update(algorithm=f"{cell}-bptt", impl=impl, n=n, m=m, T=T, B=B, dtype="float64")
    benchmark(fn)


def columns(net):
    """J: the columns of W = [W_ih | b | W_hh] (LSTM) or [W_ih | b_ih | W_hh | b_hh] (GRU)."""
    return net.n_in + 1 + net.n_hidden + (1 if net.cell == "gru" else 0)


def gemm_baseline(net, x):
    T, B, m = x.shape
    n = net.n_hidden
    rows = net.W_hh.shape[0]
    P = np.random.default_rng(1).standard_normal((n, B * rows * columns(net))).astype(net.dtype)
    out = np.empty((rows, P.shape[1]), dtype=net.dtype)

    def run():
        for _ in range(T):
            np.matmul(net.W_hh, P, out=out)
        return out
    return run


@pytest.mark.parametrize("impl", ["fastrnn", "reference", "numpy-gemm"])
@pytest.mark.parametrize("size", RTRL_SIZES, ids=size_id)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_rtrl(benchmark, cell, impl, size):
    n, m, T, B = size
    net, x, d = lstm_problem(*size, cell=cell)
    if impl == "numpy-gemm":
        fn = gemm_baseline(net, x)
        fn()
    else:
        fn = (lambda: as_tuple(fastrnn.rtrl(net, x, d))) if impl == "fastrnn" else \
             (lambda: as_tuple(reference.rtrl(net, x, d)))
        check_against(fn(), as_tuple(fastrnn.bptt(net, x, d)), np.float64, impl)
    benchmark.group = f"{cell}-rtrl {size_id(size)} float64"
    rows = net.W_hh.shape[0]
    benchmark.extra_info.update(algorithm=f"{cell}-rtrl", impl=impl, n=n, m=m, T=T, B=B, dtype="float64",
                                flops=2 * T * B * rows * n * rows * columns(net))
    benchmark(fn)
