"""fastrnn.train: each optimizer step matches its formula, clipping, the trainers."""
import numpy as np
import pytest

import fastrnn
from fastrnn import tasks, train


def params_and_grads():
    rng = np.random.default_rng(0)
    p = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    g = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    return p, g


def test_sgd_step():
    p, g = params_and_grads()
    before = {k: v.copy() for k, v in p.items()}
    train.SGD(lr=0.1).step(p, g)
    for k in p:
        np.testing.assert_allclose(p[k], before[k] - 0.1 * g[k], rtol=1e-15)


def test_momentum_steps():
    p, g = params_and_grads()
    p0 = {k: v.copy() for k, v in p.items()}
    opt = train.SGD(lr=0.1, momentum=0.9)
    opt.step(p, g)
    g2 = {k: 2 * v for k, v in g.items()}
    opt.step(p, g2)
    for k in p:   # v1 = g, v2 = 0.9 g + 2 g
        np.testing.assert_allclose(p[k], p0[k] - 0.1 * g[k] - 0.1 * (0.9 * g[k] + g2[k]), rtol=1e-14)


def test_adam_steps():
    p, g = params_and_grads()
    p0 = {k: v.copy() for k, v in p.items()}
    opt = train.Adam(lr=0.01, beta1=0.8, beta2=0.9, eps=1e-7)
    opt.step(p, g)
    g2 = {k: -0.5 * v for k, v in g.items()}
    opt.step(p, g2)
    for k in p:
        m1, v1 = 0.2 * g[k], 0.1 * g[k] ** 2
        step1 = 0.01 * (m1 / 0.2) / (np.sqrt(v1 / 0.1) + 1e-7)
        m2, v2 = 0.8 * m1 + 0.2 * g2[k], 0.9 * v1 + 0.1 * g2[k] ** 2
        step2 = 0.01 * (m2 / (1 - 0.8 ** 2)) / (np.sqrt(v2 / (1 - 0.9 ** 2)) + 1e-7)
        np.testing.assert_allclose(p[k], p0[k] - step1 - step2, rtol=1e-12)


def test_optimizers_take_gradients_objects():
    net = fastrnn.RNN.init(2, 3, 1)
    x, d = np.ones((4, 1, 2)), np.zeros((4, 1, 1))
    _, g = fastrnn.bptt(net, x, d)
    before = net.W_rec.copy()
    train.SGD(0.5).step(net.params(), g)
    np.testing.assert_allclose(net.W_rec, before - 0.5 * g.W_rec)
    with pytest.raises(fastrnn.OptionError, match="the gradients have no 'W_rec'"):
        train.SGD(0.1).step(net.params(), {"W_in": g.W_in})
    with pytest.raises(fastrnn.OptionError, match="SGD needs lr > 0"):
        train.SGD(lr=0)


def test_clip_by_global_norm():
    _, g = params_and_grads()
    norm = np.sqrt(sum((v ** 2).sum() for v in g.values()))
    assert train.global_norm(g) == pytest.approx(norm, rel=1e-14)
    clipped, before = train.clip_by_global_norm(g, norm / 4)
    assert before == pytest.approx(norm)
    assert train.global_norm(clipped) == pytest.approx(norm / 4, rel=1e-12)
    for k in g:
        np.testing.assert_allclose(clipped[k], g[k] / 4, rtol=1e-12)
    same, _ = train.clip_by_global_norm(g, 10 * norm)
    for k in g:
        np.testing.assert_array_equal(same[k], g[k])
    with pytest.raises(fastrnn.OptionError, match="max_norm must be > 0"):
        train.clip_by_global_norm(g, 0)


def test_curriculum_grows_from_one_to_k():
    ks = [train.curriculum_truncation(s, 100, 8) for s in range(1, 101)]
    assert ks[0] == 1 and ks[-1] == 8 and ks == sorted(ks) and ks[49] == 8


def test_bptt_and_rtrl_trainers_take_identical_steps():
    task = tasks.get("parity")
    runs = []
    for algo in ("bptt", "rtrl"):
        net = fastrnn.RNN.init(1, 6, 1, readout="linear", out_activation="logistic", seed=2)
        hist = train.train(net, task, steps=20, algorithm=algo, batch=4, seed=3, eval_every=10)
        runs.append((hist, net))
    np.testing.assert_allclose(runs[0][0].loss, runs[1][0].loss, rtol=1e-9)
    np.testing.assert_allclose(runs[0][1].W_rec, runs[1][1].W_rec, rtol=1e-8)


@pytest.mark.parametrize("algo,kwargs", [("tbptt", {"truncation": 4, "curriculum": True}),
                                         ("online-rtrl", {}), ("bptt", {"clip": 1.0})])
def test_trainers_lower_the_loss(algo, kwargs):
    task = tasks.get("copy", lag=1, symbols=3)
    net = fastrnn.RNN.init(3, 12, 3, readout="linear", seed=1)
    hist = train.train(net, task, steps=60 if algo != "online-rtrl" else 15, algorithm=algo, batch=8,
                       length=12, seed=0, eval_every=5, **kwargs)
    assert np.mean(hist.loss[-5:]) < 0.7 * np.mean(hist.loss[:5])
    assert hist.accuracy and 0 <= hist.final_accuracy <= 1


def test_train_lstm_and_stop_early():
    task = tasks.get("flip-flop")
    net = fastrnn.LSTM.init(2, 6, 1, out_activation="logistic", seed=0)
    hist = train.train(net, task, steps=50, batch=4, length=15, callback=lambda step, h: step >= 7)
    assert len(hist.loss) == 7
    with pytest.raises(fastrnn.OptionError, match="algorithm='sgd' is not known"):
        train.train(net, task, algorithm="sgd")


@pytest.mark.parametrize("layout", ["contiguous", "strided gradients"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_steps_equal_their_formulas_bit_for_bit_and_leave_the_gradients(dtype, layout):
    """The updates are computed in one pass (``kernels.update``: contiguous arrays of one dtype) or into arrays
    each optimizer keeps (strided gradients), in the formulas' order of operations either way: the parameters
    come out as NumPy's expressions give them, to the last bit, and the gradients are not written."""
    rng = np.random.default_rng(5)
    shapes = {"W": (64, 48), "b": (64,)}
    p0 = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}

    def gradient(shape):
        if layout == "contiguous":
            return rng.standard_normal(shape).astype(dtype)
        return rng.standard_normal(shape[:-1] + (2 * shape[-1],)).astype(dtype)[..., ::2]    # every other number
    grads = [{k: gradient(s) for k, s in shapes.items()} for _ in range(3)]
    assert all(g[k].flags.c_contiguous == (layout == "contiguous") for g in grads for k in g)
    kept = [{k: v.copy() for k, v in g.items()} for g in grads]

    p = {k: v.copy() for k, v in p0.items()}
    want = {k: v.copy() for k, v in p0.items()}
    sgd = train.SGD(lr=0.03)
    for g in grads:
        sgd.step(p, g)
        for k in want:
            want[k] -= 0.03 * g[k]
    assert all(np.array_equal(p[k], want[k]) and p[k].dtype == dtype for k in p)

    p = {k: v.copy() for k, v in p0.items()}
    want = {k: v.copy() for k, v in p0.items()}
    vel = {k: np.zeros_like(v) for k, v in p0.items()}
    momentum = train.SGD(lr=0.03, momentum=0.9)
    for g in grads:
        momentum.step(p, g)
        for k in want:
            vel[k] *= 0.9
            vel[k] += g[k]
            want[k] -= 0.03 * vel[k]
    assert all(np.array_equal(p[k], want[k]) for k in p)

    p = {k: v.copy() for k, v in p0.items()}
    want = {k: v.copy() for k, v in p0.items()}
    m = {k: np.zeros_like(v) for k, v in p0.items()}
    v2 = {k: np.zeros_like(v) for k, v in p0.items()}
    adam = train.Adam(lr=0.002, beta1=0.85, beta2=0.95, eps=1e-6)
    for t, g in enumerate(grads, start=1):
        adam.step(p, g)
        c1, c2 = 1 - 0.85 ** t, 1 - 0.95 ** t
        for k in want:
            m[k] *= 0.85
            m[k] += (1 - 0.85) * g[k]
            v2[k] *= 0.95
            v2[k] += (1 - 0.95) * g[k] * g[k]
            want[k] -= 0.002 * (m[k] / c1) / (np.sqrt(v2[k] / c2) + 1e-6)
    assert all(np.array_equal(p[k], want[k]) for k in p)
    assert all(np.array_equal(g[k], c[k]) for g, c in zip(grads, kept) for k in g)
