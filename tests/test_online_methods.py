"""Beyond O(n⁴): the exact fixed-size-storage method equals RTRL, and the approximate online rules
(SnAp-1, UORO, RFLO) match their references and have their defining properties; the exact shadow
measures them."""
import numpy as np
import pytest

import fastrnn
from fastrnn.reference import online as O

from conftest import DTYPES, assert_close, make_problem

RECURRENT = ("W_in", "W_rec", "b")


def stream_sum(learner, x, d, mask=None):
    total = None
    for t in range(x.shape[0]):
        _, g, _ = learner.step(x[t], d[t], None if mask is None else mask[t])
        if g is not None:
            total = g if total is None else total + g
    last = learner.flush()
    return total if last is None else (last if total is None else total + last)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,T,block", [(1, 5, None), (5, 13, None), (6, 11, 4), (8, 9, 1), (7, 20, 30), (12, 17, 5)])
def test_fss_equals_exact_rtrl(dtype, n, T, block):
    net, x, d, mask, h0 = make_problem(n + T, T, 3, 2, n, 1, dtype, readout="linear")
    L, exact = fastrnn.rtrl(net, x, d, mask, h0=h0)
    L_f, fss = fastrnn.rtrl(net, x, d, mask, h0=h0, method="fss", block=block)
    assert_close(L_f, L, dtype, "loss")
    for name in exact:
        assert_close(fss[name], exact[name], dtype, f"fss {name}")


def test_reference_fss_equals_reference_rtrl():
    net, x, d, mask, h0 = make_problem(1, 10, 2, 3, 5, 2, activation="logistic")
    _, exact = fastrnn.reference.rtrl(net, x, d, mask, "mse", h0)
    for block in (1, 3, 10):
        _, fss = O.fss(net, x, d, mask, "mse", h0, block=block)
        for name in RECURRENT:
            assert_close(fss[name], exact[name], np.float64, f"reference fss {name} block {block}")


def test_fss_online_gives_each_blocks_exact_gradient_at_its_end():
    net, x, d, mask, h0 = make_problem(2, 11, 2, 3, 6, 2, readout="linear")
    learner = fastrnn.OnlineRTRL(net, batch=2, h0=h0, method="fss", block=4)
    returned = []
    for t in range(11):
        _, g, _ = learner.step(x[t], d[t], mask[t])
        returned.append(g is not None)
    assert returned == [False, False, False, True] * 2 + [False, False, False]
    learner.reset(h0)
    total = stream_sum(learner, x, d, mask)
    _, exact = fastrnn.rtrl(net, x, d, mask, h0=h0)
    for name in exact:
        assert_close(total[name], exact[name], np.float64, name)


def test_fss_online_refuses_weights_changed_inside_a_block():
    net, x, d, mask, h0 = make_problem(3, 6, 1, 2, 4, 1)
    learner = fastrnn.OnlineRTRL(net, method="fss", block=3)
    learner.step(x[0, :1], d[0, :1])
    net.W_rec *= 0.5
    with pytest.raises(fastrnn.OptionError, match="holds the weights fixed inside a block of 3 steps"):
        learner.step(x[1, :1], d[1, :1])


@pytest.mark.parametrize("method, kwargs, ref", [
    ("snap1", {}, lambda net, x, d, m: O.snap1(net, x, d, m)),
    ("uoro", {"seed": 7}, lambda net, x, d, m: O.uoro(net, x, d, m, seed=7)),
    ("rflo", {"feedback": "readout"}, lambda net, x, d, m: O.rflo(net, x, d, m, feedback="readout")),
    ("rflo", {"feedback": "random", "seed": 2, "tau": 3.0},
     lambda net, x, d, m: O.rflo(net, x, d, m, feedback="random", seed=2, tau=3.0)),
])
def test_approximations_match_their_reference(method, kwargs, ref):
    net, x, d, mask, _ = make_problem(4, 9, 3, 2, 5, 2, readout="linear", out_activation="tanh")
    total = stream_sum(fastrnn.OnlineRTRL(net, batch=3, method=method, **kwargs), x, d, mask)
    _, expected = ref(net, x, d, mask)
    for name in RECURRENT:
        assert_close(total[name], expected[name], np.float64, f"{method} {name}")


def test_snap1_is_exact_for_a_diagonal_recurrent_matrix():
    net, x, d, mask, h0 = make_problem(5, 10, 2, 3, 6, 2)
    net.W_rec[...] = np.diag(np.diag(net.W_rec) + 0.3)
    _, exact = fastrnn.rtrl(net, x, d, mask, h0=h0)
    total = stream_sum(fastrnn.OnlineRTRL(net, batch=2, h0=h0, method="snap1"), x, d, mask)
    for name in RECURRENT:
        assert_close(total[name], exact[name], np.float64, name)
    net.W_rec[0, 1] = 0.5                           # off the diagonal: no longer exact
    _, exact = fastrnn.rtrl(net, x, d, mask, h0=h0)
    total = stream_sum(fastrnn.OnlineRTRL(net, batch=2, h0=h0, method="snap1"), x, d, mask)
    assert fastrnn.compare.relative_error(total["W_rec"], exact["W_rec"]) > 1e-3


def test_uoro_is_unbiased():
    """The mean of UORO's estimate over many seeds approaches the exact gradient, with an error
    that shrinks like 1/sqrt(seeds)."""
    net, x, d, _, _ = make_problem(6, 6, 1, 2, 4, 1, masked=False)
    _, exact = fastrnn.rtrl(net, x, d)
    target = np.concatenate([exact[k].ravel() for k in RECURRENT])
    estimates = []
    for seed in range(1600):
        total = stream_sum(fastrnn.OnlineRTRL(net, method="uoro", seed=seed), x, d)
        estimates.append(np.concatenate([total[k].ravel() for k in RECURRENT]))
    estimates = np.array(estimates)

    def error(count):
        return np.linalg.norm(estimates[:count].mean(axis=0) - target) / np.linalg.norm(target)
    single = np.mean([np.linalg.norm(e - target) / np.linalg.norm(target) for e in estimates[:100]])
    assert error(1600) < error(100) / 2.0 < single / 5, (error(1600), error(100), single)
    assert error(1600) < 0.15


def test_rflo_with_readout_feedback_and_no_recurrence_is_exact():
    net, x, d, mask, h0 = make_problem(7, 8, 2, 3, 5, 2, readout="linear", out_activation="logistic")
    net.W_rec[...] = 0
    _, exact = fastrnn.rtrl(net, x, d, mask, h0=h0)
    total = stream_sum(fastrnn.OnlineRTRL(net, batch=2, h0=h0, method="rflo", feedback="readout"), x, d, mask)
    for name in exact:
        assert_close(total[name], exact[name], np.float64, name)


def test_shadow_measures_fidelity():
    net, x, d, mask, h0 = make_problem(8, 12, 2, 3, 6, 2, readout="linear")
    exact = fastrnn.OnlineRTRL(net, batch=2, h0=h0, shadow=True)
    stream_sum(exact, x, d, mask)
    fid = exact.fidelity
    assert len(fid["per_step"]["cosine"]) == 12
    np.testing.assert_allclose(fid["per_step"]["cosine"], 1, rtol=1e-12)
    np.testing.assert_allclose(fid["per_step"]["norm_ratio"], 1, rtol=1e-12)
    rflo = fastrnn.OnlineRTRL(net, batch=2, h0=h0, method="rflo", shadow=True, seed=1)
    stream_sum(rflo, x, d, mask)
    fid = rflo.fidelity
    assert -1 <= fid["cosine"] < 0.999 and fid["norm_ratio"] > 0
    assert fid["cosine"] == pytest.approx(np.mean(fid["per_step"]["cosine"]))
    fss = fastrnn.OnlineRTRL(net, batch=2, h0=h0, method="fss", block=5, shadow=True)
    stream_sum(fss, x, d, mask)
    assert len(fss.fidelity["per_step"]["cosine"]) == 3           # two whole blocks and the flushed rest
    np.testing.assert_allclose(fss.fidelity["per_step"]["cosine"], 1, rtol=1e-12)
    with pytest.raises(fastrnn.OptionError, match="shadow=True"):
        fastrnn.OnlineRTRL(net).fidelity


def test_shadow_checks_memory_first():
    net = fastrnn.RNN.init(1, 4096, 1, dtype=np.float32)
    with pytest.raises(fastrnn.MemoryBudgetError, match="RTRL with n=4096"):
        fastrnn.OnlineRTRL(net, method="snap1", shadow=True)


@pytest.mark.parametrize("call, match", [
    (lambda net: fastrnn.OnlineRTRL(net, method="bogus"), "method='bogus' is not available"),
    (lambda net: fastrnn.OnlineRTRL(fastrnn.LSTM.init(2, 3, 1), method="uoro"), "not available for LSTM"),
    (lambda net: fastrnn.rtrl(fastrnn.GRU.init(2, 3, 1), np.ones((2, 1, 2)), np.ones((2, 1, 1)), method="fss"),
     "method='fss' is not available for GRU in rtrl"),
    (lambda net: fastrnn.OnlineRTRL(net, method="fss", block=0), "block must be None or an integer >= 1"),
    (lambda net: fastrnn.OnlineRTRL(net, method="rflo", feedback="magic"), "feedback='magic' is not known"),
    (lambda net: fastrnn.OnlineRTRL(net, method="rflo", tau=0.5), "tau must be a number >= 1"),
    (lambda net: fastrnn.OnlineRTRL(net, method="uoro", seed=-2), "seed must be an integer >= 0"),
    (lambda net: fastrnn.OnlineRTRL(net, method="snap1", teacher_forcing=True), "does not support teacher forcing"),
    (lambda net: fastrnn.OnlineRTRL(net, shadow="yes"), "shadow must be True or False"),
])
def test_bad_methods_and_options(call, match):
    net, *_ = make_problem(9, 3, 1, 2, 4, 2)
    with pytest.raises(fastrnn.OptionError, match=match):
        call(net)
