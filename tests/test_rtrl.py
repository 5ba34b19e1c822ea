"""fastrnn.rtrl and OnlineRTRL: against the reference, against BPTT, online sums, memory guard."""
import tracemalloc

import numpy as np
import pytest

import fastrnn
from fastrnn import reference as R
from fastrnn.compare import relative_error

from conftest import DTYPES, READOUT_LOSSES, assert_close, assert_grads_close, make_problem

CASES = [c + (False,) for c in READOUT_LOSSES] + [("units", "mse", "identity", True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", fastrnn.ACTIVATIONS)
@pytest.mark.parametrize("B", [1, 3])
def test_rtrl_matches_reference(dtype, activation, B):
    net, x, d, mask, h0 = make_problem(40, 8, B, 3, 6, 2, dtype, activation=activation)
    L, g = fastrnn.rtrl(net, x, d, mask, h0=h0)
    L_ref, g_ref = R.rtrl(net, x, d, mask, "mse", h0)
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(g, g_ref, dtype)


@pytest.mark.parametrize("activation", fastrnn.ACTIVATIONS)
@pytest.mark.parametrize("readout,loss,out_act,tf", CASES)
@pytest.mark.parametrize("B,masked", [(1, False), (4, True)])
def test_rtrl_equals_bptt(activation, readout, loss, out_act, tf, B, masked):
    """SPEC §5's main cross-check: float64, relative 1e-10."""
    net, x, d, mask, h0 = make_problem(41, 10, B, 3, 7, 3, np.float64, readout, loss, out_act,
                                       activation, masked=masked)
    L_r, g_r = fastrnn.rtrl(net, x, d, mask, loss, tf, h0)
    L_b, g_b = fastrnn.bptt(net, x, d, mask, loss, None, h0, teacher_forcing=tf)
    assert g_r.h0 is None and g_b.h0 is not None
    g_b.h0 = None
    assert_close(L_r, L_b, np.float64, "loss")
    assert_grads_close(g_r, g_b, np.float64, "rtrl vs bptt ")


@pytest.mark.parametrize("dtype", DTYPES)
def test_teacher_forcing_rtrl_matches_reference(dtype):
    net, x, d, mask, h0 = make_problem(42, 12, 3, 2, 6, 3, dtype)
    L, g = fastrnn.rtrl(net, x, d, mask, teacher_forcing=True, h0=h0)
    L_ref, g_ref = R.rtrl(net, x, d, mask, "mse", h0, teacher_forcing=True)
    assert_close(L, L_ref, dtype, "loss")
    assert_grads_close(g, g_ref, dtype)
    _, g_free = fastrnn.rtrl(net, x, d, mask, h0=h0)
    assert relative_error(g.W_rec, g_free.W_rec) > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("readout,loss,out_act,tf", CASES)
def test_online_sum_equals_sequence_gradient(dtype, readout, loss, out_act, tf):
    B = 2
    net, x, d, mask, h0 = make_problem(43, 9, B, 3, 5, 2, dtype, readout, loss, out_act)
    L_seq, g_seq = fastrnn.rtrl(net, x, d, mask, loss, tf, h0)
    learner = fastrnn.OnlineRTRL(net, batch=B, teacher_forcing=tf, loss=loss, h0=h0)
    total, L_sum = None, 0.0
    for t in range(x.shape[0]):
        L_t, g_t, _ = learner.step(x[t], d[t], mask[t])
        assert isinstance(L_t, float) and g_t.h0 is None
        L_sum += L_t
        total = g_t if total is None else total + g_t
    assert learner.steps == x.shape[0]
    assert_close(L_sum, L_seq, dtype, "summed loss")
    assert_grads_close(total, g_seq, dtype, "online sum ")


def test_online_step_gradient_is_that_steps_loss_gradient():
    """grads_t is d loss_t / dW: compare with BPTT on a mask that keeps only step t."""
    net, x, d, mask, h0 = make_problem(44, 6, 2, 2, 4, 2)
    learner = fastrnn.OnlineRTRL(net, batch=2, h0=h0)
    for t in range(6):
        _, g_t, _ = learner.step(x[t], d[t], mask[t])
        only = np.zeros_like(mask)
        only[t] = mask[t]
        _, g_b = fastrnn.bptt(net, x, d, only, h0=h0)
        g_b.h0 = None
        assert_grads_close(g_t, g_b, np.float64, f"step {t} ")


def test_reset_restarts_the_streams():
    net, x, d, mask, h0 = make_problem(45, 5, 1, 2, 4, 1)
    learner = fastrnn.OnlineRTRL(net, h0=h0)
    first = [learner.step(x[t], d[t])[1].W_rec.copy() for t in range(5)]
    learner.reset(h0)
    second = [learner.step(x[t], d[t])[1].W_rec.copy() for t in range(5)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    learner.reset()
    np.testing.assert_array_equal(learner.h, 0)


def test_online_reads_updated_weights():
    """After an in-place update, the next step uses the new weights."""
    net, x, d, mask, h0 = make_problem(46, 3, 1, 2, 4, 1)
    a = fastrnn.OnlineRTRL(net)
    b_net = net.copy()
    b = fastrnn.OnlineRTRL(b_net)
    a.step(x[0], d[0])
    b.step(x[0], d[0])
    b_net.W_rec *= 0.5
    La, _, _ = a.step(x[1], d[1])
    Lb, _, _ = b.step(x[1], d[1])
    assert La != Lb
    _, h = R.rnn.run(net, x[:1], None)[:2]
    expect = np.tanh(x[1] @ net.W_in.T + h[1] @ (0.5 * net.W_rec).T + net.b)
    np.testing.assert_allclose(b.h, expect, rtol=1e-13)


def echo_task(rng, T, lag=2):
    bits = rng.integers(0, 2, size=(T, 1, 1)).astype(float)
    d = np.zeros_like(bits)
    d[lag:] = bits[:-lag]
    return bits - 0.5, d - 0.5


def test_online_learning_lowers_the_loss():
    """Real-time learning with a per-step SGD update learns to echo a bit two steps later."""
    rng = np.random.default_rng(0)
    net = fastrnn.RNN.init(1, 8, 1, readout="linear", seed=3)
    learner = fastrnn.OnlineRTRL(net)
    x, d = echo_task(rng, 6000)
    losses = []
    for t in range(x.shape[0]):
        L_t, g, _ = learner.step(x[t], d[t], None if t >= 2 else np.zeros((1, 1)))
        losses.append(L_t)
        for name, w in net.params().items():
            w -= 0.05 * getattr(g, name)
    early, late = np.mean(losses[2:500]), np.mean(losses[-500:])
    assert late < 0.2 * early, (early, late)
    # and the learned net echoes fresh bits
    xf, df = echo_task(np.random.default_rng(1), 300)
    _, y = fastrnn.forward(net, xf)
    assert (np.sign(y[2:]) == np.sign(df[2:])).mean() > 0.95


def test_memory_guard_fires_before_allocating():
    net = fastrnn.RNN.init(1, 4096, 1, dtype=np.float32)
    x = np.zeros((2, 1, 1), np.float32)
    d = np.zeros((2, 1, 1), np.float32)
    tracemalloc.start()
    try:
        with pytest.raises(fastrnn.MemoryBudgetError,
                           match=r"RTRL with n=4096, m=1, B=1 in float32 .* needs 512.4 GiB .*smaller batch.*bptt"):
            fastrnn.rtrl(net, x, d)
        with pytest.raises(fastrnn.MemoryBudgetError):
            fastrnn.OnlineRTRL(net)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak {peak} bytes: the guard must fire before allocating"
    assert issubclass(fastrnn.MemoryBudgetError, MemoryError)


def test_memory_budget_is_settable():
    net, x, d, mask, _ = make_problem(47, 3, 2, 2, 4, 1)
    need = 2 * 2 * (4 + 1) * 4 * (2 + 1 + 4) * 8      # 2 buffers of B (n + 1) n J float64
    old = fastrnn.set_memory_budget(need - 1)
    try:
        assert fastrnn.memory_budget() == need - 1
        with pytest.raises(fastrnn.MemoryBudgetError, match=r"needs 4.4 KiB \(4480 bytes\) but the memory budget is 4.4 KiB \(4479 bytes\)"):
            fastrnn.rtrl(net, x, d)
        fastrnn.set_memory_budget(need)
        fastrnn.rtrl(net, x, d)
    finally:
        fastrnn.set_memory_budget(old)
    assert fastrnn.memory_budget() > 0
    with pytest.raises(fastrnn.OptionError, match="memory budget must be a positive number of bytes"):
        fastrnn.set_memory_budget(-5)


def test_default_budget_reads_memory_afresh_for_large_requests(monkeypatch):
    from fastrnn.runtime import memory
    reads = []

    def available():
        reads.append(1)
        return avail[0]
    avail = [8000]
    monkeypatch.setattr(memory, "available_bytes", available)
    monkeypatch.setattr(memory, "_reading", (-memory.FRESH, None))
    memory.check(100, "small", "")                      # first reading: 8000 bytes, budget 4000
    memory.check(100, "small", "")                      # far below it: the reading serves
    assert len(reads) == 1
    avail[0] = 1000                                      # memory taken meanwhile: budget 500
    with pytest.raises(fastrnn.MemoryBudgetError, match=r"large needs 1.5 KiB \(1500 bytes\) but the memory "
                                                        r"budget is 500 B \(500 bytes\)"):
        memory.check(1500, lambda: "large", "")         # a quarter of the old budget or more: read again
    assert len(reads) == 2
    monkeypatch.setattr(memory, "_reading", (-memory.FRESH, 8000))   # a stale reading is read again
    memory.check(100, "small", "")
    assert len(reads) == 3 and memory._reading[1] == 1000


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tf", [False, True])
def test_serial_and_parallel_rtrl_agree(dtype, tf, parallel_kernels):
    net, x, d, mask, h0 = make_problem(48, 6, 3, 2, 9, 2, dtype)
    with fastrnn.threads(1):
        L1, g1 = fastrnn.rtrl(net, x, d, mask, teacher_forcing=tf, h0=h0)
    L2, g2 = fastrnn.rtrl(net, x, d, mask, teacher_forcing=tf, h0=h0)
    assert_grads_close(g1, g2, dtype, "serial vs parallel ")
    assert_grads_close(g2, R.rtrl(net, x, d, mask, "mse", h0, tf)[1], dtype, "parallel vs reference ")


def test_online_parallel_matches_sequence(parallel_kernels):
    net, x, d, mask, h0 = make_problem(52, 7, 2, 3, 10, 2)
    learner = fastrnn.OnlineRTRL(net, batch=2, h0=h0)
    total = None
    for t in range(7):
        g_t = learner.step(x[t], d[t], mask[t])[1]
        total = g_t if total is None else total + g_t
    assert_grads_close(total, R.rtrl(net, x, d, mask, "mse", h0)[1], np.float64, "online parallel ")


def test_rtrl_validate(monkeypatch):
    net, x, d, mask, h0 = make_problem(49, 5, 2, 2, 4, 2)
    fastrnn.rtrl(net, x, d, mask, h0=h0, validate=True)
    real = R.rtrl

    def wrong(*a, **k):
        L, g = real(*a, **k)
        g.W_in[0, 0] += 1
        return L, g
    monkeypatch.setattr(R, "rtrl", wrong)
    with pytest.raises(fastrnn.ValidationError, match="fastrnn.rtrl .* W_in max rel err"):
        fastrnn.rtrl(net, x, d, mask, h0=h0, validate=True)


@pytest.fixture
def learner():
    net, *_ = make_problem(50, 2, 2, 3, 4, 2)
    return fastrnn.OnlineRTRL(net, batch=2)


@pytest.mark.parametrize("x_t,d_t,mask_t,exc,match", [
    (np.zeros((3, 3)), np.zeros((2, 2)), None, fastrnn.ShapeError, r"x_t has shape \(3, 3\) but must be \(B, m\) = \(2, 3\)"),
    (np.zeros((2, 3, 1)), np.zeros((2, 2)), None, fastrnn.ShapeError, r"x_t has shape \(2, 3, 1\) \(3-d\)"),
    (np.zeros((2, 3)), np.zeros((2,)), None, fastrnn.ShapeError, r"d_t has shape \(2,\) \(1-d\) but must be \(B, o\)"),
    (np.zeros((2, 3), np.float32), np.zeros((2, 2)), None, fastrnn.DTypeError, r"x_t has dtype float32"),
    (np.zeros((2, 3), int), np.zeros((2, 2)), None, fastrnn.DTypeError, r"x_t has dtype int64"),
    (np.zeros((2, 3)), np.zeros((2, 2), np.float32), None, fastrnn.DTypeError, r"d has dtype float32"),
    (np.full((2, 3), np.nan), np.zeros((2, 2)), None, fastrnn.NonFiniteError, r"x_t holds NaN"),
    (np.zeros((2, 3)), np.zeros((2, 2)), np.ones((3, 2)), fastrnn.ShapeError, r"mask_t has shape \(3, 2\)"),
])
def test_bad_step_inputs(learner, x_t, d_t, mask_t, exc, match):
    with pytest.raises(exc, match=match):
        learner.step(x_t, d_t, mask_t)
    assert learner.steps == 0


def test_online_options():
    net, *_ = make_problem(51, 2, 1, 2, 4, 2, readout="linear")
    with pytest.raises(fastrnn.OptionError, match=r"batch must be an integer >= 1, got 0"):
        fastrnn.OnlineRTRL(net, batch=0)
    with pytest.raises(fastrnn.OptionError, match=r"teacher_forcing=True .* needs readout='units'"):
        fastrnn.OnlineRTRL(net, teacher_forcing=True)
    with pytest.raises(fastrnn.OptionError, match=r"teacher_forcing=True .* needs readout='units'"):
        fastrnn.rtrl(net, np.zeros((2, 1, 2)), np.zeros((2, 1, 2)), teacher_forcing=True)
    with pytest.raises(fastrnn.ShapeError, match=r"h0 has shape \(3, 4\) but must be \(B, n\) = \(1, 4\)"):
        fastrnn.OnlineRTRL(net, h0=np.zeros((3, 4)))
