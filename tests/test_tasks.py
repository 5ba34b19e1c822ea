"""fastrnn.tasks: deterministic per seed, well-formed, targets as each task defines them."""
import numpy as np
import pytest

import fastrnn
from fastrnn import tasks


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_deterministic_and_well_formed(name):
    task = tasks.get(name)
    a, b, c = task.sample(4, 7), task.sample(4, 7), task.sample(4, 8)
    for x, y in [(a.x, b.x), (a.d, b.d), (a.mask, b.mask)]:
        np.testing.assert_array_equal(x, y)
    assert not (a.x.shape == c.x.shape and np.array_equal(a.x, c.x)), "another seed must give other data"
    T, B = a.mask.shape
    assert B == 4 and a.x.shape == (T, B, task.n_in)
    assert a.d.shape == ((T, B) if task.loss == "xent" else (T, B, task.n_out))
    assert set(np.unique(a.mask)) <= {0.0, 1.0} and a.mask.sum() > 0
    assert np.isfinite(a.x).all() and np.isfinite(a.d).all()
    if task.loss == "xent":
        assert a.d.dtype.kind == "i" and a.d.min() >= 0 and a.d.max() < task.n_out
    # a fresh network can train on it: the public API accepts the arrays as they come
    net = fastrnn.RNN.init(task.n_in, 4, task.n_out, readout="linear", out_activation=task.out_activation)
    d = a.d if task.loss == "xent" else a.d.astype(net.dtype)
    loss, _ = fastrnn.bptt(net, a.x, d, a.mask != 0, task.loss)
    assert np.isfinite(loss) and loss > 0


def test_parity_matches_the_seed_example():
    bits = np.array([0, 1, 0, 1, 1, 0, 1, 0, 1, 1])
    expected = np.array([0, 1, 1, 0, 1, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(np.cumsum(bits) % 2, expected)
    b = tasks.get("parity").sample(5, 3, length=30)
    np.testing.assert_array_equal(b.d[..., 0], np.cumsum(b.x[..., 0], axis=0) % 2)


def test_delayed_xor_and_copy_targets():
    b = tasks.get("delayed-xor", delay=3).sample(6, 1)
    x = b.x.astype(int)
    np.testing.assert_array_equal(b.d[3:, :, 0], x[:-3, :, 0] ^ x[:-3, :, 1])
    assert not b.mask[:3].any() and b.mask[3:].all()
    c = tasks.get("copy", lag=4, symbols=5).sample(6, 1)
    np.testing.assert_array_equal(c.d[4:], c.x[:-4].argmax(-1))
    assert not c.mask[:4].any()


def test_flip_flop_holds_the_last_command():
    b = tasks.get("flip-flop").sample(8, 2, length=60)
    state = np.zeros(8)
    for t in range(60):
        state = np.where(b.x[t, :, 0] > 0, 1, np.where(b.x[t, :, 1] > 0, 0, state))
        np.testing.assert_array_equal(b.d[t, :, 0], state)
    assert b.x[..., 0].sum() > 0 and b.x[..., 1].sum() > 0
    assert not (b.x[..., 0] * b.x[..., 1]).any()


def test_adding_target_is_the_marked_sum():
    b = tasks.get("adding").sample(16, 4, length=25)
    marks = b.x[..., 1]
    assert (marks.sum(axis=0) == 2).all()
    total = (b.x[..., 0] * marks).sum(axis=0)
    np.testing.assert_allclose(b.d[-1, :, 0], 0.5 + total / 4)
    assert b.mask[-1].all() and not b.mask[:-1].any()
    assert (marks[:10].sum(axis=0) >= 1).all()


def test_reber_strings_follow_the_grammar():
    b = tasks.get("reber").sample(20, 5)
    sym = tasks.REBER_SYMBOLS
    for col in range(20):
        steps = int(b.mask[:, col].sum())
        s = "".join(sym[i] for i in b.x[:steps, col].argmax(-1))
        assert s[0] == "B" and s[2] == "B" and s[1] in "TP" and s[-1] == s[1] and s[-2] == "E"
        inner, state = s[3:-2], 0
        for ch in inner:
            state = dict(tasks._REBER[state])[ch]
        assert state == 5, f"{s}: the inner string must end in the final state"
        # the legal-next sets: the actual next symbol is always among them
        for t in range(steps - 1):
            assert b.d[t, col, sym.index(s[t + 1])] == 1
        assert b.d[steps - 1, col].argmax() == sym.index("E")   # after the second c comes E
        assert b.d[steps - 2, col].sum() == 1 and b.d[steps - 2, col, sym.index(s[1])] == 1


def test_chars_targets_are_the_next_character():
    task = tasks.get("chars")
    b = task.sample(3, 0, length=15)
    text = tasks.corpus()
    assert task.text == text and len(text) > 1000
    ids = b.x.argmax(-1)
    np.testing.assert_array_equal(ids[1:], b.d[:-1])
    assert "".join(task.alphabet[i] for i in ids[:, 0]) in text


def test_unknown_task_and_bad_options():
    with pytest.raises(fastrnn.OptionError, match=r"task='xor' is not known: choose one of 'parity'"):
        tasks.get("xor")
    with pytest.raises(fastrnn.OptionError, match="copy needs lag >= 0"):
        tasks.get("copy", lag=-1)
