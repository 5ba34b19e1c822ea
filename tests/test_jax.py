"""fastrnn.jax.rnn / lstm against a plain lax.scan of the same equations, under jit, grad and vmap."""
import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed; the JAX bridge needs it")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.jax as fj  # noqa: E402

ACT = {"tanh": jnp.tanh, "logistic": jax.nn.sigmoid, "relu": jax.nn.relu, "identity": lambda a: a}


def scan_rnn(p, x, h0, activation="tanh"):
    def step(h, xt):
        h = ACT[activation](xt @ p["W_in"].T + h @ p["W_rec"].T + p["b"])
        return h, h
    hT, hs = jax.lax.scan(step, h0, x)
    return hs, hT


def scan_lstm(p, x, h0, c0):
    def step(state, xt):
        h, c = state
        i, f, g, o = jnp.split(xt @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h
    (hT, cT), hs = jax.lax.scan(step, (h0, c0), x)
    return hs, (hT, cT)


def problem(dtype=np.float64, T=7, B=3, m=2, n=4, seed=0):
    rng = np.random.default_rng(seed)
    u = lambda *s: (0.5 * rng.standard_normal(s)).astype(dtype)  # noqa: E731
    rnn = {"W_in": u(n, m), "W_rec": u(n, n), "b": u(n)}
    lstm = {"W_ih": u(4 * n, m), "W_hh": u(4 * n, n), "b_ih": u(4 * n), "b_hh": u(4 * n)}
    return rnn, lstm, u(T, B, m), u(B, n), u(B, n)


def rel(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
def test_rnn_grad_under_jit_equals_scan(activation):
    p, _, x, h0, _ = problem()

    def loss(fn):
        def L(p, x, h0):
            hs, hT = fn(p, x, h0, activation=activation)
            return jnp.sum(hs ** 3) + jnp.sum(jnp.sin(hT))
        return L
    ours = jax.jit(jax.value_and_grad(loss(fj.rnn), argnums=(0, 1, 2)))(p, x, h0)
    ref = jax.value_and_grad(loss(scan_rnn), argnums=(0, 1, 2))(p, x, h0)
    assert abs(float(ours[0] - ref[0])) <= 1e-10 * abs(float(ref[0]))
    for a, b in zip(jax.tree.leaves(ours[1]), jax.tree.leaves(ref[1])):
        assert rel(a, b) <= 1e-10


def test_lstm_grad_under_jit_equals_scan():
    _, p, x, h0, c0 = problem(seed=1)

    def loss(fn):
        def L(p, x, h0, c0):
            hs, (hT, cT) = fn(p, x, h0, c0)
            return jnp.sum(hs ** 3) + jnp.sum(jnp.sin(hT)) + jnp.sum(cT ** 2)
        return L
    ours = jax.jit(jax.grad(loss(fj.lstm), argnums=(0, 1, 2, 3)))(p, x, h0, c0)
    ref = jax.grad(loss(scan_lstm), argnums=(0, 1, 2, 3))(p, x, h0, c0)
    leaves = jax.tree.leaves(ours)
    assert len(leaves) == 7
    for a, b in zip(leaves, jax.tree.leaves(ref)):
        assert rel(a, b) <= 1e-10


def test_forward_values_and_float32():
    p, pl, x, h0, c0 = problem(np.float32, seed=2)
    hs, hT = fj.rnn(p, x, h0)
    ref_hs, _ = scan_rnn(p, x, h0)
    assert hs.dtype == jnp.float32 and rel(hs, ref_hs) <= 1e-5
    np.testing.assert_array_equal(np.asarray(hT), np.asarray(hs[-1]))
    hs, (hT, cT) = fj.lstm(pl, x, h0, c0)
    ref_hs, (_, ref_cT) = scan_lstm(pl, x, h0, c0)
    assert rel(hs, ref_hs) <= 1e-5 and rel(cT, ref_cT) <= 1e-5


def test_vmap_maps_over_a_leading_axis():
    p, _, x, h0, _ = problem(seed=3)
    xs = jnp.stack([x, 2 * x, -x])
    grad = jax.vmap(jax.grad(lambda x: jnp.sum(fj.rnn(p, x, h0)[0] ** 2)))(xs)
    ref = jax.vmap(jax.grad(lambda x: jnp.sum(scan_rnn(p, x, h0)[0] ** 2)))(xs)
    assert rel(grad, ref) <= 1e-10


def test_bad_params_say_which_key():
    p, _, x, h0, _ = problem()
    with pytest.raises(fastrnn.OptionError, match="missing W_rec"):
        fj.rnn({"W_in": p["W_in"], "b": p["b"]}, x, h0)
    with pytest.raises(fastrnn.ShapeError, match=r"x has shape \(7, 3\)"):
        fj.rnn(p, x[:, :, 0], h0)
    with pytest.raises(fastrnn.ShapeError, match=r"h0 has shape \(3, 3\) but must be \(B, n\)"):
        fj.rnn(p, x, h0[:, :3])
    with pytest.raises(fastrnn.DTypeError, match="h0 has dtype float32 but x is float64"):
        fj.rnn(p, x, h0.astype(np.float32))
    with pytest.raises(fastrnn.DTypeError, match="x has dtype int32 but must be float32 or float64"):
        fj.rnn(p, x.astype(np.int32), h0)
    with pytest.raises(fastrnn.OptionError, match="activation='gelu' is not known"):
        fj.rnn(p, x, h0, activation="gelu")


def scan_gru(p, x, h0):
    def step(h, xt):
        gi = xt @ p["W_ih"].T + p["b_ih"]
        gh = h @ p["W_hh"].T + p["b_hh"]
        n = h.shape[-1]
        r = jax.nn.sigmoid(gi[:, :n] + gh[:, :n])
        z = jax.nn.sigmoid(gi[:, n:2 * n] + gh[:, n:2 * n])
        c = jnp.tanh(gi[:, 2 * n:] + r * gh[:, 2 * n:])
        h = (1 - z) * c + z * h
        return h, h
    hT, hs = jax.lax.scan(step, h0, x)
    return hs, hT


def test_gru_grad_under_jit_equals_scan():
    _, p4, x, h0, _ = problem(seed=4)
    n = h0.shape[1]
    rng = np.random.default_rng(4)
    p = {"W_ih": p4["W_ih"][:3 * n], "W_hh": p4["W_hh"][:3 * n], "b_ih": p4["b_ih"][:3 * n],
         "b_hh": rng.standard_normal(3 * n)}

    def loss(fn):
        def L(p, x, h0):
            hs, hT = fn(p, x, h0)
            return jnp.sum(hs ** 3) + jnp.sum(jnp.sin(hT))
        return L
    ours = jax.jit(jax.grad(loss(fj.gru), argnums=(0, 1, 2)))(p, x, h0)
    ref = jax.grad(loss(scan_gru), argnums=(0, 1, 2))(p, x, h0)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        assert rel(a, b) <= 1e-10


@pytest.mark.parametrize("T, B", [(0, 3), (5, 0), (0, 0)])
def test_no_steps_or_no_sequences_give_what_lax_scan_gives(T, B):
    """A sequence of no steps (T = 0) or a batch of no sequences (B = 0): the outputs ``lax.scan`` gives (no steps
    or no rows; over no steps the final state is the initial one) and its gradients (the initial states' own,
    zeros for the parameters), under jit; fastrnn's calls take neither."""
    rnn_p, lstm_p, x, h0, c0 = problem(T=max(T, 1), B=max(B, 1), seed=6)
    x, h0, c0 = x[:T, :B], h0[:B], c0[:B]
    n = h0.shape[1]
    gru_p = {k: v[:3 * n] for k, v in lstm_p.items()}
    cases = [(fj.rnn, scan_rnn, rnn_p, (h0,)), (fj.lstm, scan_lstm, lstm_p, (h0, c0)), (fj.gru, scan_gru, gru_p, (h0,))]
    for ours, ref, p, states in cases:
        def loss(fn):
            def L(p, *states):
                hs, final = fn(p, x, *states)
                finals = final if isinstance(final, tuple) else (final,)
                return jnp.sum(hs ** 2) + sum(jnp.sum(jnp.sin(f)) for f in finals)
            return L
        got_out, want_out = ours(p, x, *states), ref(p, x, *states)
        for a, b in zip(jax.tree.leaves(got_out), jax.tree.leaves(want_out)):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
        argnums = tuple(range(1 + len(states)))
        got = jax.jit(jax.grad(loss(ours), argnums=argnums))(p, *states)
        want = jax.grad(loss(ref), argnums=argnums)(p, *states)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_gradients_jax_holds_keep_their_values_through_later_calls():
    """fastrnn hands its weight gradients out of recycled memory once nothing refers to them
    (``runtime.workspace.result``, from 256 KB). JAX copies a callback's results into its own buffers, so the
    bridge's gradients must not alias that memory: JAX's arrays from earlier calls stay as they were (were the
    bridge to hand JAX fastrnn's arrays without a reference, a later call would write them), and each equals
    the plain scan's gradient."""
    rng = np.random.default_rng(7)
    n, m, T, B = 96, 6, 9, 3                    # W_hh's gradient: 384 x 96 float64, 288 KB
    p = {"W_ih": jnp.asarray(0.2 * rng.standard_normal((4 * n, m))),
         "W_hh": jnp.asarray((0.5 / np.sqrt(n)) * rng.standard_normal((4 * n, n))),
         "b_ih": jnp.asarray(0.1 * rng.standard_normal(4 * n)), "b_hh": jnp.asarray(0.1 * rng.standard_normal(4 * n))}
    zeros = jnp.zeros((B, n))

    def ours(params, x):
        return jnp.sum(fj.lstm(params, x)[0] ** 2)

    def scan(params, x):
        return jnp.sum(scan_lstm(params, x, zeros, zeros)[0] ** 2)
    grad = jax.jit(jax.grad(ours))
    xs = [jnp.asarray(rng.standard_normal((T, B, m))) for _ in range(4)]
    held = []
    for x in xs:
        g = grad(p, x)
        held.append((g, {k: np.array(v) for k, v in g.items()}))
    for (g, copy), x in zip(held, xs):
        want = jax.grad(scan)(p, x)
        for k in p:
            assert np.array_equal(np.asarray(g[k]), copy[k]), k
            assert rel(g[k], want[k]) < 1e-10, k
    assert not np.array_equal(held[0][1]["W_hh"], held[1][1]["W_hh"])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("B, force", [(1, "FORCE"), (3, "ROWS_FORCE")])
def test_the_gated_cells_sweeps_on_two_threads_take_jaxs_read_only_states(cell, B, force, monkeypatch):
    """JAX hands the forward pass's states back to the backward pass in read-only buffers. Where a gated cell's
    sweep runs on two threads (a batch of one, a batch cut by units: forced here, as at n >= 256 on two cores),
    that raised Numba's TypingError inside jax.grad; now the gradients equal the scan's."""
    from fastrnn.runtime import pair
    monkeypatch.setattr(pair, force, True)
    _, p4, x, h0, c0 = problem(B=B, n=11, seed=5)         # n: enough units to cut in two
    n = h0.shape[1]
    p = p4 if cell == "lstm" else {k: v[:3 * n] for k, v in p4.items()}
    fn, scan = (fj.lstm, scan_lstm) if cell == "lstm" else (fj.gru, scan_gru)
    states0 = (h0, c0) if cell == "lstm" else (h0,)

    def loss(f):
        def L(p, x, *s0):
            hs, _ = f(p, x, *s0)
            return jnp.sum(hs ** 3)
        return L
    seen = []
    real = getattr(pair, f"{cell}_sweep" if B == 1 else f"{cell}_rows_sweep")
    monkeypatch.setattr(pair, real.__name__, lambda *a: seen.append(real.__name__) or real(*a))
    ours = jax.jit(jax.grad(loss(fn), argnums=(0, 1)))(p, x, *states0)
    assert seen == [real.__name__]
    ref = jax.grad(loss(scan), argnums=(0, 1))(p, x, *states0)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        assert rel(a, b) <= 1e-10
