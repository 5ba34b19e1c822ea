"""Concurrent calls from several threads give the same results as one at a time."""
import threading

import numpy as np

import fastrnn

from conftest import assert_grads_close, make_problem


def test_concurrent_bptt_and_rtrl_calls_are_correct(parallel_kernels):
    problems = [make_problem(30 + i, 40, 1 + i % 4, 3, 12, 3) for i in range(6)]
    expected = [fastrnn.bptt(net, x, d, mask, h0=h0) for net, x, d, mask, h0 in problems]
    for L, g in expected:
        g.h0 = None    # rtrl has no h0 gradient; the rest must agree
    results = [None] * len(problems)
    errors = []
    start = threading.Barrier(len(problems))

    def work(i):
        try:
            start.wait()
            net, x, d, mask, h0 = problems[i]
            out = []
            for k in range(15):
                if k % 3 == 2:
                    out.append(fastrnn.rtrl(net, x, d, mask, h0=h0))
                else:
                    L, g = fastrnn.bptt(net, x, d, mask, h0=h0)
                    g.h0 = None
                    out.append((L, g))
            results[i] = out
        except Exception as exc:   # surfaced below with the thread's index
            errors.append((i, exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    for (L_exp, g_exp), outs in zip(expected, results):
        for L, g in outs:
            assert abs(L - L_exp) <= 1e-10 * abs(L_exp)
            assert_grads_close(g, g_exp, np.float64)


def test_blas_threads_are_restored_after_a_call():
    from fastrnn.runtime import blas as _blas, dispatch as _dispatch
    if not _blas.controllable():
        import pytest
        pytest.skip("scipy's OpenBLAS thread control is not available on this platform")
    before = _blas.threads()
    seen = []
    with _dispatch.workers() as threads:
        seen.append((threads, _blas.threads()))
    assert _blas.threads() == before
    if seen[0][0] > 1:
        assert seen[0][1] == 1, "parallel kernels must run with BLAS held to one thread"
    net, x, d, mask, h0 = make_problem(60, 5, 4, 2, 6, 2)
    fastrnn.bptt(net, x, d, mask, h0=h0)
    fastrnn.rtrl(net, x, d, mask, h0=h0)
    assert _blas.threads() == before
