"""Exact online gradients: fixed-size storage (``rtrl(method="fss")``, O(n³) per step) against
exact RTRL (O(n⁴)) on the same sequences, n = 16 … 256, B = 1, float64. Both give the same
gradient (checked before timing); the ratio should grow roughly like n.

    pytest bench/test_fss.py --benchmark-only --benchmark-json=fss.json
    python bench/report.py fss.json
"""
import numpy as np
import pytest

import fastrnn

from common import as_tuple, check_against, problem

SIZES = [16, 32, 64, 128, 256]
M = 4


@pytest.mark.parametrize("impl", ["fastrnn", "exact-rtrl"])
@pytest.mark.parametrize("n", SIZES)
def test_fss(benchmark, impl, n):
    T = 2 * n                                         # two whole blocks of the default length n
    net, x, d = problem(n, M, T, 1)
    if impl == "fastrnn":
        fn = lambda: as_tuple(fastrnn.rtrl(net, x, d, method="fss"))      # noqa: E731
    else:
        fn = lambda: as_tuple(fastrnn.rtrl(net, x, d))                    # noqa: E731
    result = fn()
    if impl == "fastrnn":
        check_against(result, as_tuple(fastrnn.rtrl(net, x, d)), np.float64, "fss")
    benchmark.group = f"fss n={n} T={T}"
    benchmark.extra_info.update(algorithm="fss", impl=impl, n=n, m=M, T=T, B=1, dtype="float64")
    if n >= 128:
        benchmark.pedantic(fn, rounds=2 if n == 128 else 1, iterations=1)
    else:
        benchmark(fn)
