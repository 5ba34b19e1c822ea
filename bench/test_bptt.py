"""BPTT (forward + backward, tanh cell, units readout, mse): fastrnn against the reference.

    pytest bench/ --benchmark-only --benchmark-group-by=group
"""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference

SIZES = [(32, 8, 1000, 1), (128, 8, 1000, 1), (128, 8, 200, 32), (512, 32, 200, 16)]  # n, m, T, B


def problem(n, m, T, B, dtype=np.float64):
    rng = np.random.default_rng(0)
    net = fastrnn.RNN.init(m, n, max(1, n // 4), dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, m)).astype(dtype)
    d = rng.standard_normal((T, B, net.n_out)).astype(dtype)
    return net, x, d


IMPLEMENTATIONS = {
    "fastrnn": lambda net, x, d: fastrnn.bptt(net, x, d),
    "reference": lambda net, x, d: reference.bptt(net, x, d),
}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "n{}-m{}-T{}-B{}".format(*s))
def test_bptt(benchmark, impl, size):
    net, x, d = problem(*size)
    fn = IMPLEMENTATIONS[impl]
    fn(net, x, d)   # compile / warm up outside the timing
    benchmark.group = "bptt " + "n{}-m{}-T{}-B{}".format(*size)
    benchmark.extra_info["size"] = size
    benchmark(fn, net, x, d)
