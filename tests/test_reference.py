"""The reference against itself and against calculus: central finite differences, RTRL = BPTT,
and the truncation identities of SPEC §4."""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference as R
from fastrnn.compare import relative_error

from conftest import READOUT_LOSSES, assert_grads_close, make_problem


def finite_difference(net, x, d, mask, loss, h0, teacher_forcing, eps=1e-6):
    """Central differences of the reference loss for every parameter and h0."""
    out = {}
    targets = dict(net.params(), h0=h0)
    for name, arr in targets.items():
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = R.total_loss(net, x, d, mask, loss, h0, teacher_forcing)
            arr[idx] = old - eps
            down = R.total_loss(net, x, d, mask, loss, h0, teacher_forcing)
            arr[idx] = old
            fd[idx] = (up - down) / (2 * eps)
        out[name] = fd
    return out


@pytest.mark.parametrize("activation", fastrnn.ACTIVATIONS)
@pytest.mark.parametrize("readout,loss,out_act", READOUT_LOSSES)
def test_reference_bptt_matches_finite_differences(activation, readout, loss, out_act):
    net, x, d, mask, h0 = make_problem(3, T=5, B=2, m=2, n=4, o=3, readout=readout, loss=loss,
                                       out_activation=out_act, activation=activation)
    _, grads = R.bptt(net, x, d, mask, loss, None, h0)
    for name, fd in finite_difference(net, x, d, mask, loss, h0, False).items():
        err = relative_error(getattr(grads, name), fd)
        assert err < 1e-6, f"reference d{name} vs finite differences: rel err {err:.3g}"


def test_reference_teacher_forcing_matches_finite_differences():
    net, x, d, mask, h0 = make_problem(4, T=6, B=2, m=2, n=4, o=2)
    _, grads = R.bptt(net, x, d, mask, "mse", None, h0, teacher_forcing=True)
    _, plain = R.bptt(net, x, d, mask, "mse", None, h0, teacher_forcing=False)
    assert relative_error(grads.W_rec, plain.W_rec) > 1e-3, "forcing must change the gradient here"
    for name, fd in finite_difference(net, x, d, mask, "mse", h0, True).items():
        err = relative_error(getattr(grads, name), fd)
        assert err < 1e-6, f"teacher-forced d{name} vs finite differences: rel err {err:.3g}"


@pytest.mark.parametrize("activation", fastrnn.ACTIVATIONS)
@pytest.mark.parametrize("readout,loss,out_act,teacher_forcing",
                         [c + (False,) for c in READOUT_LOSSES] + [("units", "mse", "identity", True)])
def test_reference_rtrl_equals_bptt(activation, readout, loss, out_act, teacher_forcing):
    net, x, d, mask, h0 = make_problem(5, T=7, B=3, m=3, n=5, o=2, readout=readout, loss=loss,
                                       out_activation=out_act, activation=activation)
    L_b, g_b = R.bptt(net, x, d, mask, loss, None, h0, teacher_forcing)
    L_r, g_r = R.rtrl(net, x, d, mask, loss, h0, teacher_forcing)
    assert g_r.h0 is None
    g_b.h0 = None
    assert abs(L_b - L_r) <= 1e-12 * abs(L_b)
    assert_grads_close(g_r, g_b, np.float64, "rtrl vs bptt ")


def test_truncation_at_least_T_is_exact(small):
    net, x, d, mask, h0 = small
    T = x.shape[0]
    _, exact = R.bptt(net, x, d, mask, "mse", None, h0)
    for trunc in [T, T + 5, (T, T), (T + 3, T), (T + 3, 2)]:
        _, g = R.bptt(net, x, d, mask, "mse", trunc, h0)
        if isinstance(trunc, tuple) and trunc[1] < T:
            continue   # h >= T but h' < T sums several full sweeps: checked below
        assert_grads_close(g, exact, np.float64, f"truncation={trunc} ")


def test_truncation_h_ge_T_with_small_hprime_is_exact(small):
    """Each error reaches back to step 1 when h >= T, so BPTT(T; h') sums to the exact gradient."""
    net, x, d, mask, h0 = small
    T = x.shape[0]
    _, exact = R.bptt(net, x, d, mask, "mse", None, h0)
    for hp in (1, 2, 4):
        _, g = R.bptt(net, x, d, mask, "mse", (T, hp), h0)
        assert_grads_close(g, exact, np.float64, f"BPTT({T}; {hp}) ")


def test_truncation_one_is_the_no_recurrence_gradient(small):
    """h = h' = 1: delta_t = phi'(a_t) g_t, nothing travels back a step."""
    net, x, d, mask, h0 = small
    a, h, fed = R.rnn.run(net, x, h0)
    _, g_tr = R.bptt(net, x, d, mask, "mse", 1, h0)
    T, B, _ = x.shape
    mask3 = np.asarray(mask, dtype=float)
    dW_in = np.zeros_like(net.W_in)
    dW_rec = np.zeros_like(net.W_rec)
    db = np.zeros_like(net.b)
    for t in range(T):
        g = np.zeros((B, net.n_hidden))
        g[:, net.out_units] = mask3[t] * (h[t + 1][:, net.out_units] - d[t])
        delta = (1 - np.tanh(a[t]) ** 2) * g
        dW_in += delta.T @ x[t]
        dW_rec += delta.T @ h[t]
        db += delta.sum(0)
    for name, want in [("W_in", dW_in), ("W_rec", dW_rec), ("b", db)]:
        assert relative_error(getattr(g_tr, name), want) < 1e-12, name


def test_truncation_k_equals_detached_chunks(small):
    """BPTT(k; k) = the sum of exact BPTT over chunks of k steps, the state carried forward."""
    net, x, d, mask, h0 = small
    T, k = x.shape[0], 4
    _, g_tr = R.bptt(net, x, d, mask, "mse", k, h0)
    _, h, _ = R.rnn.run(net, x, h0)
    total = None
    for s in range(0, T, k):
        _, g = R.bptt(net, x[s:s + k], d[s:s + k], mask[s:s + k], "mse", None, h[s])
        g.h0 = None
        total = g if total is None else total + g
    for name in ("W_in", "W_rec", "b"):
        assert relative_error(getattr(g_tr, name), getattr(total, name)) < 1e-12, name


def test_truncation_with_hprime_one_sends_each_error_k_steps(small):
    """BPTT(k; 1): the error injected at t alone reaches back exactly k steps (a per-step sum)."""
    net, x, d, mask, h0 = small
    T, k = x.shape[0], 2
    _, g_tr = R.bptt(net, x, d, mask, "mse", (k, 1), h0)
    _, h, _ = R.rnn.run(net, x, h0)
    total = None
    for t in range(1, T + 1):
        only_t = np.zeros_like(mask)
        only_t[t - 1] = mask[t - 1]
        lo = max(t - k, 0)
        # the exact gradient of L_t alone over steps lo+1..t, the state h[lo] held fixed
        _, g = R.bptt(net, x[lo:t], d[lo:t], only_t[lo:t], "mse", None, h[lo])
        g.h0 = None
        total = g if total is None else total + g
    for name in ("W_in", "W_rec", "b"):
        assert relative_error(getattr(g_tr, name), getattr(total, name)) < 1e-12, name
