"""Hypothesis: random shapes (down to n = m = T = B = 1), kernels against the reference."""
import numpy as np
from hypothesis import given, settings, strategies as st

import fastrnn
from fastrnn import reference as R

from conftest import assert_close, assert_grads_close, make_problem

dims = st.integers(1, 5)


@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 12), B=dims, m=dims, n=dims, o_frac=st.floats(0, 1), seed=st.integers(0, 2**16),
       activation=st.sampled_from(fastrnn.ACTIVATIONS), dtype=st.sampled_from([np.float64, np.float32]),
       trunc=st.one_of(st.none(), st.integers(1, 14), st.tuples(st.integers(1, 14), st.integers(1, 14))))
def test_bptt_random_shapes(T, B, m, n, o_frac, seed, activation, dtype, trunc):
    o = 1 + int(o_frac * (n - 1))
    if isinstance(trunc, tuple):
        trunc = (max(trunc), min(trunc))
    net, x, d, mask, h0 = make_problem(seed, T, B, m, n, o, dtype, activation=activation)
    L, g = fastrnn.bptt(net, x, d, mask, truncation=trunc, h0=h0)
    L_ref, g_ref = R.bptt(net, x, d, mask, "mse", trunc, h0)
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(g, g_ref, dtype)


@settings(max_examples=20, deadline=None)
@given(T=st.integers(1, 10), B=dims, m=dims, n=dims, seed=st.integers(0, 2**16))
def test_truncation_at_least_T_equals_exact(T, B, m, n, seed):
    net, x, d, mask, h0 = make_problem(seed, T, B, m, n, 1)
    _, exact = fastrnn.bptt(net, x, d, mask, h0=h0)
    _, trunc = fastrnn.bptt(net, x, d, mask, truncation=(T + seed % 3, 1 + seed % T), h0=h0)
    assert_grads_close(trunc, exact, np.float64)
