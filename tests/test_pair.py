"""A batch of one's forward chain on two threads (``fastrnn.runtime.pair``, ``kernels.chain``): the same states
as the reference and as one thread, whichever thread computes which half and whenever the helper comes; the
claim it is built on; and the rule for when it runs."""
import os
import threading
import time

import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from fastrnn.kernels import ACTIVATIONS, chain
from fastrnn.kernels._jit import _jit
from fastrnn.kernels._sync import claim
from fastrnn.runtime import dispatch, measured, overlap, pair

from conftest import DTYPES, assert_close, assert_grads_close, make_problem


@pytest.fixture
def paired(monkeypatch):
    monkeypatch.setattr(pair, "FORCE", True)
    monkeypatch.setattr(pair, "SPLIT_PROJECTION_MIN", 0)    # the input projection split with the helper at any size


@pytest.fixture
def unpaired(monkeypatch):
    monkeypatch.setattr(pair, "FORCE", False)


@pytest.fixture
def by_units(monkeypatch):
    monkeypatch.setattr(pair, "ROWS_FORCE", True)
    monkeypatch.setattr(pair, "SPLIT_PROJECTION_MIN", 0)


def _forward_half(out, W, b, act, cut, mine, flags, grace):
    """The forward chain's part of one thread (``chain.half``), as ``pair.forward`` hands it the arrays."""
    arrays = (out, W, b.reshape(1, -1), pair._read_only(out), np.empty((0, 0), out.dtype))
    return chain.half(chain.FORWARD, arrays, act, out.shape[0] - 1, cut, mine, flags, grace, _scratch(out, 1))


def _sweep_half(D, W, WT, g, h, act, cut, mine, flags, grace):
    """The sweep's part of one thread, as ``pair.sweep`` hands it the arrays (WT: the buffer for W^T): the halves
    of the other's it took."""
    return chain.half(chain.SWEEP, (D, W, g, h, WT), act, D.shape[0], cut, mine, flags, grace, _scratch(D, 1))[1]


def _scratch(like, width):
    """A thread's scratch for the halves of ``like``'s units (``pair._run``'s)."""
    return np.empty(width * like.shape[1], like.dtype)


@pytest.fixture
def spied(monkeypatch):
    """The pair's calls, in order: "forward" and "sweep", and the gated cells' "lstm_forward", "gru_sweep", ..."""
    seen = []
    for name in ("forward", "sweep", "lstm_forward", "lstm_sweep", "gru_forward", "gru_sweep", "lstm_rows_forward",
                 "lstm_rows_sweep", "gru_rows_forward", "gru_rows_sweep"):
        real = getattr(pair, name)
        monkeypatch.setattr(pair, name, lambda *a, real=real, name=name: seen.append(name) or real(*a))
    return seen


def _claim(arr, idx, expected, value):
    return claim(arr, idx, expected, value)


_claim = _jit(_claim)


def test_a_claim_succeeds_once_from_the_value_it_expects():
    flags = np.zeros(3, dtype=np.int64)
    assert _claim(flags, 1, 0, 7)
    assert not _claim(flags, 1, 0, 9)           # taken: holds 7, not 0
    assert list(flags) == [0, 7, 0]
    assert _claim(flags, 1, 7, -2) and list(flags) == [0, -2, 0]


def test_threads_claiming_one_flag_each_win_it_once():
    """Four threads race for each of 20000 flags: every flag is won by exactly one of them."""
    flags = np.zeros(20000, dtype=np.int64)
    wins = np.zeros(4, dtype=np.int64)

    @_jit
    def race(flags, me, wins):
        for i in range(flags.shape[0]):
            if claim(flags, i, 0, me + 1):
                wins[me] += 1

    workers = [threading.Thread(target=race, args=(flags, k, wins)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert wins.sum() == flags.size
    for k in range(4):
        assert (flags == k + 1).sum() == wins[k]


@pytest.mark.parametrize("shape, dtype", [((7,), np.float32), ((3, 5), np.float64), ((2, 3, 17), np.float32),
                                          ((0,), np.float64), (5, np.int64), ((1001, 1, 128), np.float64)])
def test_workspace_arrays_start_a_cache_line_and_own_their_last_one(shape, dtype):
    """``workspace.empty``: the shape and dtype asked for, C-contiguous and writable, its first number at a cache
    line's start and its buffer reaching to the end of its last line, so that nothing else is allocated in the
    lines it writes."""
    from fastrnn.runtime import workspace
    for _ in range(20):                 # allocations of many sizes between them: any offset the allocator gives
        a = workspace.empty(shape, dtype)
        np.empty(np.random.default_rng().integers(1, 200), np.uint8)
        want = (shape,) if isinstance(shape, int) else shape
        assert a.shape == want and a.dtype == np.dtype(dtype)
        assert a.flags.c_contiguous and a.flags.writeable
        if a.size == 0:             # no number, no line
            continue
        assert a.ctypes.data % workspace.ALIGN == 0
        base = a.base
        while base.base is not None:
            base = base.base
        end = a.ctypes.data + a.nbytes
        assert base.ctypes.data + base.nbytes >= -(-end // workspace.ALIGN) * workspace.ALIGN
        a[...] = 1
        assert (a == 1).all()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_arrays_both_halves_write_start_a_cache_line(paired, monkeypatch, cell):
    """The halves are cut on a cache line of units, so each thread writes lines of its own only where the arrays
    themselves start a line: those a paired call hands its two threads, writable ones (states, gates, deltas, the
    cell's carried error, the halves' panels and scratch, the flags) all do."""
    seen = []
    real = pair._run

    def run(loop, kind, arrays, T, width, act=0, size=None):
        seen.append([a for a in arrays if a.flags.writeable and a.size])
        return real(loop, kind, arrays, T, width, act, size)
    monkeypatch.setattr(pair, "_run", run)
    monkeypatch.setattr(pair.workspace, "_local", threading.local())    # fresh buffers: allocated in this test
    if cell == "rnn":
        net, x, d, _, _ = make_problem(5, T=9, B=1, m=3, n=48, o=2, dtype=np.float32, readout="linear")
    else:
        net = fastrnn.MODELS[cell].init(3, 48, 2, readout="linear", dtype=np.float32, seed=5)
        x = np.random.default_rng(5).standard_normal((9, 1, 3)).astype(np.float32)
        d = np.random.default_rng(6).standard_normal((9, 1, 2)).astype(np.float32)
    fastrnn.bptt(net, x, d)
    fastrnn.forward(net, x)
    assert len(seen) == 3           # the forward pass and the sweep, then the forward call's
    for arrays in seen:
        assert arrays and all(a.ctypes.data % pair.workspace.ALIGN == 0 for a in arrays), \
            [(a.shape, a.ctypes.data % pair.workspace.ALIGN) for a in arrays]
    flags = []
    real_empty = pair.workspace.empty

    def spy(shape, dtype):
        out = real_empty(shape, dtype)
        if np.dtype(dtype) == np.int64:
            flags.append(out)
        return out
    monkeypatch.setattr(pair.workspace, "empty", spy)
    fastrnn.forward(net, x)
    assert flags and all(f.ctypes.data % pair.workspace.ALIGN == 0 for f in flags)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, act", [(8, "tanh"), (13, "logistic"), (40, "relu"), (130, "tanh"), (64, "identity")])
def test_paired_forward_and_gradients_equal_the_reference(paired, spied, dtype, n, act):
    net, x, d, mask, h0 = make_problem(4, T=23, B=1, m=3, n=n, o=2, dtype=dtype, readout="linear", activation=act,
                                       scale=0.5)
    out = fastrnn.forward(net, x, h0)
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0)
    assert spied == ["forward", "forward", "sweep"]     # both calls' forward passes and the sweep as pairs
    ref_h, _ = reference.rnn.forward(net, x, h0)
    assert_close(out.h, ref_h, dtype, "h")
    ref_L, ref_g = reference.rnn.bptt(net, x, d, mask=mask, h0=h0)
    assert_close(np.array(L), np.array(ref_L), dtype, "loss")
    assert_grads_close(g, ref_g, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pairs_states_equal_one_threads_where_both_take_w_by_its_rows(dtype, monkeypatch):
    """Below 128 units the one-thread kernel multiplies by W's rows in the same compiled loop: the same bits."""
    net, x, d, mask, h0 = make_problem(5, T=300, B=1, m=4, n=72, o=3, dtype=dtype, readout="linear")
    monkeypatch.setattr(pair, "FORCE", False)
    with fastrnn.threads(1):
        alone = fastrnn.forward(net, x, h0).h
    monkeypatch.setattr(pair, "FORCE", True)
    for _ in range(3):
        np.testing.assert_array_equal(fastrnn.forward(net, x, h0).h, alone)


def _chain_problem(dtype, T=400, n=48, seed=6):
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(dtype)
    b = (0.1 * rng.standard_normal(n)).astype(dtype)
    h = rng.standard_normal((T + 1, n)).astype(dtype)     # h[0] the initial state, h[1:] the "projection"
    return pair._read_only(W), pair._read_only(b), h      # as the calls hand them in: one compiled variant


def _one_thread(W, b, h, act):
    """The chain with the other thread absent: this thread takes every half after its grace."""
    out = h.copy()
    flags = np.zeros(2 * (h.shape[0] - 1), dtype=np.int64)
    total, taken = _forward_half(out, W, b, act, pair.cut_of(W.shape[0], W.itemsize), 0, flags, 10)
    assert taken == h.shape[0] - 1             # every one of the other's halves
    assert (flags == chain.DONE).all()
    return out, total


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_thread_left_alone_takes_every_half_and_a_late_one_changes_nothing(dtype):
    W, b, h = _chain_problem(dtype)
    act = ACTIVATIONS.index("tanh")
    out, total = _one_thread(W, b, h, act)
    # the reference's recurrence on the same input projection
    expect = h.copy()
    for t in range(h.shape[0] - 1):
        expect[t + 1] = np.tanh(expect[t + 1] + W @ expect[t] + b)
    assert_close(out[1:], expect[1:], dtype, "h")
    np.testing.assert_allclose(total, out[1:].sum(dtype=np.float64), rtol=1e-6)
    # the helper arriving after the call has ended finds every half done: it computes and writes nothing
    flags = np.full(2 * (h.shape[0] - 1), chain.DONE, dtype=np.int64)
    before = out.copy()
    assert _forward_half(out, W, b, act, pair.cut_of(W.shape[0], W.itemsize), 1, flags, 10) == (0.0, 0)
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.02])
def test_the_states_do_not_depend_on_when_the_other_thread_comes(delay):
    """The helper's half started at once, a little late (mid-call) or after the first thread has done all: each
    half of each step is computed once, by one thread or the other, with the same arithmetic."""
    W, b, h = _chain_problem(np.float64, T=3000, n=64, seed=7)
    act = ACTIVATIONS.index("tanh")
    alone, _ = _one_thread(W, b, h, act)
    out = h.copy()
    flags = np.zeros(2 * (h.shape[0] - 1), dtype=np.int64)
    cut = pair.cut_of(64, 8)
    result = {}

    def late():
        time.sleep(delay)
        result["helper"] = _forward_half(out, W, b, act, cut, 1, flags, pair.GRACE)
    helper = threading.Thread(target=late)
    helper.start()
    result["main"] = _forward_half(out, W, b, act, cut, 0, flags, pair.GRACE)
    helper.join()
    np.testing.assert_array_equal(out, alone)
    assert (flags == chain.DONE).all()
    (main_sum, main_took), (helper_sum, helper_took) = result["main"], result["helper"]
    assert main_took + helper_took <= h.shape[0] - 1     # each half of a step taken by one thread only
    np.testing.assert_allclose(main_sum + helper_sum, alone[1:].sum(dtype=np.float64), rtol=1e-9)


def test_a_helper_closed_before_it_began_never_touches_the_arrays():
    W, b, h = _chain_problem(np.float32, T=10, n=16)
    out = h.copy()
    flags = np.zeros(20, dtype=np.int64)
    half = pair._Half(_forward_half, (out, W, b, 0, 8, 1, flags, 10), (0.0, 0))
    half.close()                                # the calling thread is done first
    half()                                      # the helper gets to it later
    assert half.done.is_set() and half.result == (0.0, 0)
    np.testing.assert_array_equal(out, h)
    assert not flags.any()


def _submitted(monkeypatch):
    """The jobs handed to the helper from now on (each still run)."""
    jobs = []
    helper = overlap._helper()
    real = helper.submit
    monkeypatch.setattr(helper, "submit", lambda job: (jobs.append(job), real(job)))
    return jobs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("R", [1, 2, 7, 300])
def test_the_input_projection_split_with_the_helper_is_the_product(dtype, R, monkeypatch):
    """``pair.input_projection``: out = x W_in^T, the first R // 2 rows on the helper (one job; none for a single
    row), the rest on this thread; inputs unchanged."""
    monkeypatch.setattr(pair, "SPLIT_PROJECTION_MIN", 0)
    rng = np.random.default_rng(R)
    x, W = rng.standard_normal((R, 5)).astype(dtype), rng.standard_normal((12, 5)).astype(dtype)
    before = x.copy(), W.copy()
    out = np.full((R, 12), np.nan, dtype)
    jobs = _submitted(monkeypatch)
    pair.input_projection(x, W, out)
    assert len(jobs) == (1 if R > 1 else 0)
    assert_close(out, x.astype(np.float64) @ W.astype(np.float64).T, dtype, "x W_in^T")
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(W, before[1])


def test_a_small_input_projection_stays_on_this_thread(monkeypatch):
    """Below ``SPLIT_PROJECTION_MIN`` multiply-adds (R·m·r) no job goes to the helper; from it, one."""
    jobs = _submitted(monkeypatch)
    x, W = np.ones((100, 32), np.float32), np.ones((2048, 32), np.float32)      # 6.5e6: a float32 LSTM n=512, B=1
    out = np.empty((100, 2048), np.float32)
    pair.input_projection(x, W, out)
    assert jobs == [] and (out == 32).all()
    x = np.ones((400, 32), np.float32)                                          # 2.6e7: B=4
    out = np.empty((400, 2048), np.float32)
    pair.input_projection(x, W, out)
    assert len(jobs) == 1 and (out == 32).all()


def test_a_busy_helper_leaves_the_whole_projection_to_this_thread_and_never_touches_it_after(monkeypatch):
    """With the helper held by another job, this thread takes both halves and closes the helper's before it begins:
    when the helper gets to it, it writes nothing."""
    monkeypatch.setattr(pair, "SPLIT_PROJECTION_MIN", 0)
    hold, held = threading.Event(), threading.Event()
    overlap._helper().submit(lambda: (held.set(), hold.wait(30)))
    assert held.wait(30)
    try:
        rng = np.random.default_rng(3)
        x, W = rng.standard_normal((9, 4)), rng.standard_normal((6, 4))
        out = np.full((9, 6), np.nan)
        jobs = _submitted(monkeypatch)
        pair.input_projection(x, W, out)
        np.testing.assert_allclose(out, x @ W.T, rtol=1e-13, atol=1e-13)
        out[:] = 0
        (job,) = jobs
    finally:
        hold.set()
    ran = threading.Event()
    overlap._helper().submit(ran.set)               # after the closed job: the helper has passed it
    assert ran.wait(30)
    assert job.result is False and job.done.is_set() and not out.any()


def test_an_error_in_the_helpers_half_is_raised_by_the_call(monkeypatch, paired):
    net, x, d, mask, h0 = make_problem(8, T=12, B=1, m=3, n=16, o=2, readout="linear")
    real = chain.half

    def failing(kind, arrays, act, T, cut, mine, flags, grace, tmp):
        if mine == 1:
            raise RuntimeError("the helper's half failed")
        time.sleep(0.05)            # the helper begins first (a helper that begins after the call is closed out)
        return real(kind, arrays, act, T, cut, mine, flags, grace, tmp)
    monkeypatch.setattr(chain, "half", failing)
    with pytest.raises(RuntimeError, match="the helper's half failed"):
        fastrnn.forward(net, x, h0)
    monkeypatch.setattr(chain, "half", real)
    assert_close(fastrnn.forward(net, x, h0).h, reference.rnn.forward(net, x, h0)[0], np.float64, "h")


def test_a_non_finite_state_from_either_half_is_reported(paired):
    net, x, d, mask, h0 = make_problem(9, T=30, B=1, m=3, n=16, o=2, readout="linear", activation="identity")
    for unit in (1, 12):                        # one in each half (cut at 8)
        net2 = net.copy()
        net2.W_rec[unit, unit] = 1e308
        with pytest.raises(fastrnn.NonFiniteError):
            fastrnn.bptt(net2, x, d, h0=h0)


def test_the_rule(monkeypatch):
    monkeypatch.setattr(overlap, "_runnable", lambda: 1)            # a CPU free for the helper
    monkeypatch.setattr(pair, "CHOOSER", measured.Chooser())        # no measured choice yet
    work = dispatch.Work
    n = 256
    w = n * n * 8
    assert pair.pays(work(1, 2 * n * n, 1000, w), 2, False, n, 8)
    assert not pair.pays(work(1, 2 * 128 * 128, 1000, 128 * 128 * 8), 2, False, 128, 8)    # 128 KB: too few bytes
    assert pair.pays(work(1, 8 * 128 * 128, 1000, 4 * 128 * 128 * 4), 2, False, 128, 4)    # 256 KB (the LSTM's)
    assert not pair.pays(work(1, 2 * n * n, 1000, w), 1, False, n, 8)        # the call holds one thread
    assert not pair.pays(work(2, 4 * n * n, 1000, w), 2, False, n, 8)        # a batch of two
    assert not pair.pays(work(1, 2 * n * n, 1000, w), 2, True, n, 8)         # teacher forcing
    assert not pair.pays(work(1, 2 * 96 * 96, 1000, 96 * 96 * 8), 2, False, 96, 8)   # too few units
    assert not pair.pays(work(1, 2 * n * n, 100, w), 2, False, n, 8)         # too few steps for its fixed cost
    big = 512 * 512 * 4
    assert pair.pays(work(1, 2 * 512 * 512, 100, big), 2, False, 512, 4)     # unless the weights are large
    monkeypatch.setattr(overlap, "_runnable", lambda: 64)           # every CPU busy
    monkeypatch.setattr(overlap, "_own_running", lambda: 0)         # with other processes' threads
    assert not pair.pays(work(1, 2 * n * n, 1000, w), 2, False, n, 8)
    monkeypatch.setattr(pair, "FORCE", True)
    assert pair.pays(work(1, 2 * n * n, 10, w), 1, False, n, 8)
    assert not pair.pays(work(1, 2 * n * n, 10, w), 1, True, n, 8)          # never with teacher forcing
    assert pair.cut_of(128, 8) == 64 and pair.cut_of(40, 8) == 16 and pair.cut_of(13, 4) == 4
    assert pair.cut_of(7, 8) == 0 and not pair.pays(work(1, 98, 1000, 392), 2, False, 7, 8)


def _passes(record_times, choices, rows=False):
    """Each forward pass's choice at a shape the rule pairs, ended as if it took the given seconds a step:
    ``record_times`` (paired, alone). A batch of one (``pair.forward_pays``), or with ``rows`` a batch the rule
    cuts by units (``pair.rows_forward_pays``: float32 LSTM n=512, B=4, one block of the kernels)."""
    if rows:
        work = dispatch.Work(4, 8 * 4 * 512 * 512, 100, 4 * 512 * 512 * 4)
        choose = lambda: pair.rows_forward_pays(work, 2, 512, 4, 1)        # noqa: E731
    else:
        work = dispatch.Work(1, 2 * 256 * 256, 1000, 256 * 256 * 8)
        choose = lambda: pair.forward_pays(work, 2, False, 256, 8)         # noqa: E731
    out = []
    for _ in range(choices):
        choice = choose()
        choice._start = time.perf_counter() - work.steps * record_times[not choice.together]
        choice.done()
        out.append(choice.together)
    return out, work


@pytest.fixture
def by_clock(monkeypatch):
    """The measured choice on its own records, a free CPU for the helper, and a probe every fourth pass."""
    monkeypatch.setattr(overlap, "_runnable", lambda: 1)
    monkeypatch.setattr(pair, "CHOOSER", measured.Chooser())
    monkeypatch.setattr(measured, "PROBE_EVERY", 4)


def test_the_pair_is_kept_while_it_measures_faster_and_left_while_it_does_not(by_clock):
    """A pass each way not counted, one each way counted, then the way whose least time over its last KEPT passes
    is lower, with the other every PROBE_EVERY passes; the sweep follows the forward passes' measurements; when
    the times change, so does the choice: after KEPT slow passes of the way chosen, or at the first fast probe
    of the other."""
    ways, work = _passes((1e-6, 2e-6), 4 + 8)         # the pair twice as fast
    assert ways[:4] == [True, False, True, False]
    assert ways[4:] == [True, True, True, False, True, True, True, False]
    assert pair.pays(work, 2, False, 256, 8, (1000, 1000))
    ways, _ = _passes((3e-6, 2e-6), 10)                # the pair's meetings slow
    assert ways == [True, True, True, True, False, False, False, True, False, False]   # three slow, then probes
    assert not pair.pays(work, 2, False, 256, 8, (1000, 1000))    # nor the sweep
    assert pair.pays(work, 2, False, 256, 8)           # the rule itself still allows it
    ways, _ = _passes((1e-6, 2e-6), 6)                 # the pair fast again: its next probe brings it back
    assert ways == [False, True, True, True, True, False]
    assert pair.pays(work, 2, False, 256, 8, (1000, 1000))


def test_one_slow_pass_does_not_turn_the_choice(by_clock):
    ways, _ = _passes((1e-6, 2e-6), 5)
    assert ways == [True, False, True, False, True]
    ways, work = _passes((5e-6, 2e-6), 1)              # one pass slowed by what ran before it
    assert ways == [True] and pair.pays(work, 2, False, 256, 8, (1000, 1000))
    ways, _ = _passes((1e-6, 2e-6), 1)
    assert ways == [True]


def test_a_pair_within_the_margin_of_one_thread_is_not_taken(by_clock):
    ways, work = _passes((0.99e-6, 1e-6), 8)
    assert ways[4:] == [False, False, False, True]
    assert not pair.pays(work, 2, False, 256, 8, (1000, 1000))


def test_forced_or_refused_pairs_and_other_shapes_record_nothing(by_clock, monkeypatch):
    monkeypatch.setattr(pair, "FORCE", True)
    assert _passes((1e-6, 2e-6), 3)[0] == [True] * 3
    monkeypatch.setattr(pair, "FORCE", False)
    assert _passes((1e-6, 2e-6), 3)[0] == [False] * 3
    monkeypatch.setattr(pair, "FORCE", None)
    small = dispatch.Work(1, 2 * 128 * 128, 1000, 128 * 128 * 8)       # under MIN_WEIGHT_BYTES: the rule says no
    assert not pair.forward_pays(small, 2, False, 128, 8)
    assert not pair.forward_pays(dispatch.Work(1, 2 * 256 * 256, 1000, 256 * 256 * 8), 1, False, 256, 8)
    assert pair.CHOOSER.records == {}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_calls_that_alternate_while_measuring_equal_the_reference(by_clock, spied, cell):
    """Whole calls at a shape the rule pairs: the first passes go both ways and every call's gradients are the
    reference's whichever way it went."""
    n, T = (256, 180) if cell == "rnn" else (128, 180)       # 64 MB streamed or more
    dtype = np.float64
    if cell == "rnn":
        net, x, d, _, _ = make_problem(6, T=T, B=1, m=3, n=n, o=2, dtype=dtype, readout="linear", scale=0.5)
        ref = reference.rnn.bptt(net, x, d)
    else:
        net = fastrnn.MODELS[cell].init(3, n, 2, readout="linear", dtype=dtype, seed=6)
        x = np.random.default_rng(6).standard_normal((T, 1, 3))
        d = np.random.default_rng(7).standard_normal((T, 1, 2))
        ref = getattr(reference, cell).bptt(net, x, d)
    for _ in range(5):
        L, g = fastrnn.bptt(net, x, d)
        assert_close(np.array(L), np.array(ref[0]), dtype, "loss")
        assert_grads_close(g, ref[1], dtype)
    forwards = [name for name in spied if name.endswith("forward")]
    assert 1 <= len(forwards) < 5                     # some passes paired, some alone
    (record,) = pair.CHOOSER.records.values()
    assert record.seen[0] >= 2 and record.seen[1] >= 1


def test_a_batch_of_ones_halves_take_row_tiles_where_the_one_thread_kernels_do(monkeypatch):
    """Row tiles from 128 units and more than 64 KB of W_rec, while each half's weights stay within 512 KB."""
    assert pair.half_tiles(128, 8) and pair.half_tiles(192, 4) and pair.half_tiles(256, 8)
    assert not pair.half_tiles(128, 4)              # 64 KB: the compiled loops by rows are as fast
    assert not pair.half_tiles(96, 8)               # fewer units
    assert pair.half_tiles(352, 8) and not pair.half_tiles(368, 8)       # a half of 368 x 184 is over 512 KB
    assert pair.half_tiles(512, 4) and not pair.half_tiles(520, 4)
    # the gated cells' halves: their units' rows of each of W_hh's gate blocks
    assert pair.half_tiles(128, 8, 4) and not pair.half_tiles(192, 8, 4)   # a half of 4 x 96 rows of 192: 576 KB
    assert pair.half_tiles(256, 4, 4) and pair.half_tiles(128, 4, 3) and not pair.half_tiles(96, 4, 3)
    monkeypatch.setattr(pair, "HALF_TILES", False)
    assert not pair.half_tiles(256, 8) and not pair.half_tiles(128, 8, 4)


def _tiled_half(kind, A, W, v, h, PB, act, cut, mine, flags, grace):
    """A thread's part of the simple cell's chain with its halves in row tiles, as ``pair.forward`` / ``pair.sweep``
    hand it the arrays: (the sum of the states written, the halves of the other's it took)."""
    n = W.shape[0]
    width = max(cut, n - cut) + chain.ROW_TILE_BYTES // W.itemsize
    T = A.shape[0] - 1 if kind == chain.FORWARD_TILES else A.shape[0]
    return chain.half(kind, (A, W, v, h, PB), act, T, cut, mine, flags, grace, np.empty(width, W.dtype))


def _delta_recursion(W, g, h):
    """The simple tanh cell's deltas in float64: delta_s = (g_s + W^T delta_{s+1}) (1 - h_{s+1}^2), the last step's
    without the product."""
    T, n = g.shape
    expect = np.empty((T, n))
    nxt = np.zeros(n)
    for s in range(T - 1, -1, -1):
        nxt = expect[s] = (g[s] + W.T.astype(np.float64) @ nxt) * (1 - h[s + 1].astype(np.float64) ** 2)
    return expect


def _tiled_chain(kind, A, W, v, h, per, cut, delay):
    """The simple cell's chain ``kind`` in row tiles on A (filled), panels in a NaN buffer of ``per`` numbers a half:
    this thread alone (``delay`` None), or with a second thread ``delay`` seconds late. Returns the sum of the
    states written (0 for a sweep)."""
    PB = np.full((2, per), np.nan, W.dtype)
    T = A.shape[0] - 1 if kind == chain.FORWARD_TILES else A.shape[0]
    flags = np.zeros(2 * T, dtype=np.int64)
    args = (kind, A, W, v, h, PB, ACTIVATIONS.index("tanh"), cut)
    if delay is None:
        total, taken = _tiled_half(*args, 0, flags, 10)
        assert taken == T and (flags == chain.DONE).all()
        return total
    result = {}

    def late():
        time.sleep(delay)
        result["helper"] = _tiled_half(*args, 1, flags, pair.GRACE)
    helper = threading.Thread(target=late)
    helper.start()
    result["main"] = _tiled_half(*args, 0, flags, pair.GRACE)
    helper.join()
    assert (flags == chain.DONE).all() and result["main"][1] + result["helper"][1] <= T
    return result["main"][0] + result["helper"][0]


@pytest.mark.parametrize("dtype, n", [(np.float64, 128), (np.float32, 200)])
@pytest.mark.parametrize("delay", [None, 0.0, 0.002])
def test_the_tiled_halves_follow_the_recurrences_whenever_the_other_thread_comes(dtype, n, delay):
    """The forward chain h_t = tanh(h_t + W h_{t-1} + b) and the sweep's delta recursion, each half's products in
    row tiles on panels it cuts at its first step into a buffer that held NaN: alone against the recurrences, and
    with the other thread at once or a little late the same bits as alone."""
    W, b, h = _chain_problem(dtype, T=300, n=n, seed=8)
    cut = pair.cut_of(n, W.itemsize)
    per = chain.tile_halves(n, cut, W.itemsize)
    assert pair.half_tiles(n, W.itemsize)
    alone = h.copy()
    total = _tiled_chain(chain.FORWARD_TILES, alone, W, b.reshape(1, -1), pair._read_only(alone), per, cut, None)
    expect = h.astype(np.float64)
    for t in range(h.shape[0] - 1):
        expect[t + 1] = np.tanh(expect[t + 1] + W.astype(np.float64) @ expect[t] + b)
    assert_close(alone[1:], expect[1:], dtype, "h")
    np.testing.assert_allclose(total, alone[1:].sum(dtype=np.float64), rtol=1e-6)
    T = h.shape[0] - 1
    g = pair._read_only(np.random.default_rng(9).standard_normal((T, n)).astype(dtype))
    states = pair._read_only(np.tanh(h).astype(dtype))
    D = np.full((T, n), np.nan, dtype)
    _tiled_chain(chain.SWEEP_TILES, D, W, g, states, per, cut, None)
    assert_close(D, _delta_recursion(W, g, states), dtype, "D")
    if delay is None:
        return
    out = h.copy()
    both = _tiled_chain(chain.FORWARD_TILES, out, W, b.reshape(1, -1), pair._read_only(out), per, cut, delay)
    np.testing.assert_array_equal(out, alone)
    np.testing.assert_allclose(both, total, rtol=1e-9)
    D2 = np.full((T, n), np.nan, dtype)
    _tiled_chain(chain.SWEEP_TILES, D2, W, g, states, per, cut, delay)
    np.testing.assert_array_equal(D2, D)


@pytest.mark.parametrize("tiles", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_paired_calls_by_row_tiles_or_by_rows_equal_the_reference(paired, spied, monkeypatch, tiles, dtype):
    """n = 200: each half's products in row tiles (``pair.half_tiles``), or by W_rec's rows with them off."""
    monkeypatch.setattr(pair, "HALF_TILES", tiles)
    net, x, d, mask, h0 = make_problem(12, T=40, B=1, m=3, n=200, o=2, dtype=dtype, readout="linear", scale=0.5)
    assert pair.half_tiles(200, np.dtype(dtype).itemsize) == tiles
    out = fastrnn.forward(net, x, h0)
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0)
    assert spied == ["forward", "forward", "sweep"]
    ref_h, _ = reference.rnn.forward(net, x, h0)
    assert_close(out.h, ref_h, dtype, "h")
    ref_L, ref_g = reference.rnn.bptt(net, x, d, mask=mask, h0=h0)
    assert_close(np.array(L), np.array(ref_L), dtype, "loss")
    assert_grads_close(g, ref_g, dtype)


def test_a_batch_of_one_under_teacher_forcing_keeps_the_one_thread_kernel(paired, spied):
    net, x, d, mask, h0 = make_problem(10, T=15, B=1, m=3, n=8, o=2, readout="units")
    L, g = fastrnn.bptt(net, x, d, h0=h0, teacher_forcing=True)
    assert spied == []
    ref_L, ref_g = reference.rnn.bptt(net, x, d, h0=h0, teacher_forcing=True)
    assert_grads_close(g, ref_g, np.float64)


def _sweep_problem(dtype, T=400, n=48, seed=11):
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(dtype)
    h = np.tanh(rng.standard_normal((T + 1, n))).astype(dtype)
    g = rng.standard_normal((T, n)).astype(dtype)
    return tuple(pair._read_only(a) for a in (W, g, h))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delay", [None, 0.0, 0.002])
def test_the_paired_sweep_is_the_delta_recursion_whenever_the_other_thread_comes(dtype, delay):
    """delta_s = (g_s + W^T delta_{s+1}) * (1 - h_{s+1}^2), the last step's without the product: alone (None),
    with the other thread at once and a little late, each half of each step computed once, the same bits."""
    W, g, h = _sweep_problem(dtype)
    T, n = g.shape
    act = ACTIVATIONS.index("tanh")
    cut = pair.cut_of(n, W.itemsize)
    alone = np.empty((T, n), dtype)
    flags = np.zeros(2 * T, dtype=np.int64)
    WT = np.full((n, n), np.nan, dtype)
    assert _sweep_half(alone, W, WT, g, h, act, cut, 0, flags, 10) == T
    np.testing.assert_array_equal(WT, W.T)          # each half's rows of W^T, copied at its first step
    assert_close(alone, _delta_recursion(W, g, h), dtype, "D")
    if delay is None:
        return
    D = np.full((T, n), np.nan, dtype)
    flags = np.zeros(2 * T, dtype=np.int64)
    result = {}

    def late():
        time.sleep(delay)
        result["helper"] = _sweep_half(D, W, WT, g, h, act, cut, 1, flags, pair.GRACE)
    WT = np.full((n, n), np.nan, dtype)
    helper = threading.Thread(target=late)
    helper.start()
    main = _sweep_half(D, W, WT, g, h, act, cut, 0, flags, pair.GRACE)
    helper.join()
    np.testing.assert_array_equal(D, alone)
    assert (flags == chain.DONE).all() and main + result["helper"] <= T


def test_truncated_bptt_keeps_the_one_thread_sweep(paired, spied):
    net, x, d, mask, h0 = make_problem(12, T=40, B=1, m=3, n=16, o=2, readout="linear")
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0, truncation=(10, 5))
    assert spied == ["forward"]                 # the forward pass paired, the truncated sweep not
    ref_L, ref_g = reference.rnn.bptt(net, x, d, mask=mask, h0=h0, truncation=(10, 5))
    assert_grads_close(g, ref_g, np.float64)


def test_the_sweeps_rule(monkeypatch):
    monkeypatch.setattr(overlap, "_runnable", lambda: 1)
    monkeypatch.setattr(pair, "CHOOSER", measured.Chooser())        # no measured choice yet
    work = dispatch.Work
    for n, itemsize, paired in ((128, 8, False), (192, 8, True), (192, 4, False), (256, 4, True)):
        w = work(1, 2 * n * n, 1000, n * n * itemsize)
        assert pair.pays(w, 2, False, n, itemsize) == paired                # the forward pass
        assert pair.pays(w, 2, False, n, itemsize, (1000, 1000)) == paired
        assert not pair.pays(w, 2, False, n, itemsize, (1000, 500))         # truncated: never
        assert not pair.pays(w, 2, False, n, itemsize, (50, 50))            # chunks: never


# -- the LSTM's chain (``chain.lstm_half``) -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [8, 13, 40, 130])
def test_the_paired_lstm_equals_the_reference(paired, spied, dtype, n):
    """Forward states, loss and weight gradients (fastrnn.bptt), and with an error injected into c_T the
    gradients with respect to the inputs and both initial states (fastrnn.vjp), n cut on a cache line, on four
    units, and n = 13 (halves of 4 and 9 units)."""
    net, x, d, mask, h0 = make_problem(13, T=23, B=1, m=3, n=n, o=2, dtype=dtype, readout="linear", cell="lstm")
    out = fastrnn.forward(net, x, h0)
    ref = reference.lstm.forward(net, x, h0)
    assert_close(out.h, ref[0], dtype, "h")
    assert_close(out.c, ref[2], dtype, "c")
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0)
    ref_L, ref_g = reference.lstm.bptt(net, x, d, mask=mask, h0=h0)
    assert_close(np.array(L), np.array(ref_L), dtype, "loss")
    assert_grads_close(g, ref_g, dtype)
    rng = np.random.default_rng(14)
    dh = rng.standard_normal((23, 1, n)).astype(dtype)
    dc_T = rng.standard_normal((1, n)).astype(dtype)
    grads, dx, (dh0, dc0) = fastrnn.vjp(net, x, dh, h0, dc_T=dc_T)
    ref_grads, ref_dx, (ref_dh0, ref_dc0) = reference.vjp(net, x, dh, h0, (None, dc_T))
    assert_grads_close(grads, ref_grads, dtype, "vjp ")
    assert_close(dx, ref_dx, dtype, "dx")
    assert_close(dh0, ref_dh0, dtype, "dh0")
    assert_close(dc0, ref_dc0, dtype, "dc0")
    assert spied == ["lstm_forward"] + ["lstm_forward", "lstm_sweep"] * 2     # forward, bptt, vjp: each a pair


def _lstm_problem(dtype, T=300, n=48, seed=15):
    """The arrays of an LSTM chain (``chain.lstm_half``): W_hh, the bias, the input projection, the initial state,
    and for a sweep the errors injected into the states and into c_T."""
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((4 * n, n)) / np.sqrt(n)).astype(dtype)
    bias = (0.1 * rng.standard_normal(4 * n)).astype(dtype)
    xW = rng.standard_normal((T, 4 * n)).astype(dtype)
    state0 = (0.3 * rng.standard_normal((2, n))).astype(dtype)
    g = rng.standard_normal((T, n)).astype(dtype)
    dc_T = rng.standard_normal(n).astype(dtype)
    return pair._read_only(W), pair._read_only(bias), xW, state0, pair._read_only(g), dc_T


def _lstm_chain(kind, arrays, mine, flags, grace):
    """One thread's part of an LSTM chain, as ``pair.lstm_forward`` / ``pair.lstm_sweep`` hand it the arrays."""
    n = arrays[3].shape[1]
    return chain.lstm_half(kind, arrays, 0, flags.shape[0] // 2, pair.cut_of(n, arrays[0].itemsize), mine, flags,
                           grace, _gated_scratch(arrays[3], 4))


def _gated_scratch(like, gates):
    """A gated cell's thread's scratch, by rows or in row tiles (``pair._tile_halves``'s size at most)."""
    return np.empty(gates * like.shape[1] + chain.ROW_TILE_BYTES // like.itemsize, like.dtype)


def _row_tile_panels(n, dtype, gates):
    """The halves' panels of row tiles (``FORWARD_TILES``, ``SWEEP_TILES``), NaN: each half cuts its own."""
    return np.full((2, chain.tile_halves(n, pair.cut_of(n, np.dtype(dtype).itemsize), np.dtype(dtype).itemsize,
                                         gates)), np.nan, dtype)


def _both_chains(part, arrays, T, delay, kinds=(chain.FORWARD, chain.SWEEP)):
    """A gated cell's forward chain, then its sweep (``arrays``: each one's), ``part`` (``_lstm_chain``,
    ``_gru_chain``) on this thread and, ``delay`` seconds late, on another (None: this thread alone). Every half of
    every step done; returns how many of the other's halves were taken in each chain."""
    taken = []
    for kind, args in zip(kinds, arrays):
        flags = np.zeros(2 * T, dtype=np.int64)
        result = {}

        def late():
            time.sleep(delay)
            result["helper"] = part(kind, args, 1, flags, pair.GRACE)
        helper = None if delay is None else threading.Thread(target=late)
        if helper:
            helper.start()
        result["main"] = part(kind, args, 0, flags, 10 if delay is None else pair.GRACE)
        if helper:
            helper.join()
        assert (flags == chain.DONE).all()
        taken.append(sum(r[1] for r in result.values()))
    return taken


def _lstm_states(W, bias, xW, state0):
    T, n = xW.shape[0], W.shape[1]
    h, c = np.empty((T + 1, n), W.dtype), np.empty((T + 1, n), W.dtype)
    h[0], c[0] = state0
    return xW.copy(), h, c


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delay", [None, 0.0, 0.002])
@pytest.mark.parametrize("tiles", [False, True])
def test_the_lstm_chain_whenever_the_other_thread_comes(dtype, delay, tiles):
    """The LSTM's forward chain and sweep, one thread alone against the float64 recurrences of SPEC §6; then with
    the other thread at once or a little late: each half of each step computed once, the same bits. By W_hh's
    rows, or in row tiles on panels each half cuts at its first step (``tiles``)."""
    W, bias, xW, state0, g, dc_T = _lstm_problem(dtype)
    T, n = g.shape
    none = np.empty(0, dtype)
    kinds = (chain.FORWARD_TILES, chain.SWEEP_TILES) if tiles else (chain.FORWARD, chain.SWEEP)

    def run(delay):
        """Both chains, the helper's half started ``delay`` seconds late (None: no helper)."""
        G, h, c = _lstm_states(W, bias, xW, state0)
        PB = _row_tile_panels(n, dtype, 4) if tiles else np.empty((0, 0), dtype)
        D, dc = np.full((T, 4 * n), np.nan, dtype), dc_T.copy()
        WT = _row_tile_panels(n, dtype, 4) if tiles else np.full((n, 4 * n), np.nan, dtype)
        taken = _both_chains(_lstm_chain, ((G, W, bias.reshape(1, -1), h, c, G, none, PB), (D, W, g, h, c, G, dc, WT)),
                             T, delay, kinds)
        return G, h, c, D, dc, WT, taken

    G, h, c, D, dc, WT, taken = run(None)
    assert taken == [T, T]                               # alone: every one of the other's halves
    if not tiles:
        np.testing.assert_array_equal(WT, W.T)
    # SPEC §6 in float64
    w, b = W.astype(np.float64), bias.astype(np.float64)
    sig = lambda a: 1 / (1 + np.exp(-a))                # noqa: E731
    hr, cr = np.empty((T + 1, n)), np.empty((T + 1, n))
    hr[0], cr[0] = state0
    gates = np.empty((T, 4 * n))
    for t in range(T):
        a = xW[t] + w @ hr[t] + b
        gates[t] = np.concatenate([sig(a[:2 * n]), np.tanh(a[2 * n:3 * n]), sig(a[3 * n:])])
        i, f, gg, o = np.split(gates[t], 4)
        cr[t + 1] = f * cr[t] + i * gg
        hr[t + 1] = o * np.tanh(cr[t + 1])
    assert_close(h, hr, dtype, "h")
    assert_close(c, cr, dtype, "c")
    assert_close(G, gates, dtype, "gates")
    Dr = np.empty((T, 4 * n))
    dcr = dc_T.astype(np.float64)
    nxt = np.zeros(4 * n)
    for s in range(T - 1, -1, -1):
        i, f, gg, o = np.split(gates[s], 4)
        dh = g[s] + nxt @ w
        tc = np.tanh(cr[s + 1])
        dct = dh * o * (1 - tc ** 2) + dcr
        nxt = Dr[s] = np.concatenate([dct * gg * i * (1 - i), dct * cr[s] * f * (1 - f), dct * i * (1 - gg ** 2),
                                      dh * tc * o * (1 - o)])
        dcr = dct * f
    assert_close(D, Dr, dtype, "D")
    assert_close(dc, dcr, dtype, "dc0")
    if delay is None:
        return
    for a, b in zip(run(delay)[:6], (G, h, c, D, dc, WT)):
        np.testing.assert_array_equal(a, b)


def test_the_lstm_keeps_the_one_thread_kernels_where_the_pair_is_off(unpaired, spied):
    net, x, d, mask, h0 = make_problem(16, T=20, B=1, m=3, n=16, o=2, readout="linear", cell="lstm")
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0)
    assert spied == []
    assert_grads_close(g, reference.lstm.bptt(net, x, d, mask=mask, h0=h0)[1], np.float64)



# -- the GRU's chain (``chain.gru_half``) -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [8, 13, 40, 130])
def test_the_paired_gru_equals_the_reference(paired, spied, dtype, n):
    """As the LSTM's: forward states, loss and weight gradients, and through fastrnn.vjp the gradients with
    respect to the inputs and to h0."""
    net, x, d, mask, h0 = make_problem(17, T=23, B=1, m=3, n=n, o=2, dtype=dtype, readout="linear", cell="gru")
    out = fastrnn.forward(net, x, h0)
    assert_close(out.h, reference.gru.forward(net, x, h0)[0], dtype, "h")
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0)
    ref_L, ref_g = reference.gru.bptt(net, x, d, mask=mask, h0=h0)
    assert_close(np.array(L), np.array(ref_L), dtype, "loss")
    assert_grads_close(g, ref_g, dtype)
    dh = np.random.default_rng(18).standard_normal((23, 1, n)).astype(dtype)
    grads, dx, dh0 = fastrnn.vjp(net, x, dh, h0)
    ref_grads, ref_dx, ref_dh0 = reference.vjp(net, x, dh, h0)
    assert_grads_close(grads, ref_grads, dtype, "vjp ")
    assert_close(dx, ref_dx, dtype, "dx")
    assert_close(dh0, ref_dh0, dtype, "dh0")
    assert spied == ["gru_forward"] + ["gru_forward", "gru_sweep"] * 2     # forward, bptt, vjp: each a pair


def _gru_chain(kind, arrays, mine, flags, grace):
    """One thread's part of a GRU chain, as ``pair.gru_forward`` / ``pair.gru_sweep`` hand it the arrays."""
    n = arrays[3].shape[1]
    return chain.gru_half(kind, arrays, 0, flags.shape[0] // 2, pair.cut_of(n, arrays[0].itemsize), mine, flags,
                          grace, _gated_scratch(arrays[3], 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delay", [None, 0.0, 0.002])
@pytest.mark.parametrize("tiles", [False, True])
def test_the_gru_chain_whenever_the_other_thread_comes(dtype, delay, tiles):
    """The GRU's forward chain and sweep, one thread alone against the float64 recurrences of SPEC §6a; then with
    the other thread at once or a little late: each half of each step computed once, the same bits. By W_hh's
    rows, or in row tiles on panels each half cuts at its first step (``tiles``)."""
    T, n = 300, 48
    rng = np.random.default_rng(19)
    W = pair._read_only((rng.standard_normal((3 * n, n)) / np.sqrt(n)).astype(dtype))
    b_ih, b_hh = (0.1 * rng.standard_normal((2, 3 * n))).astype(dtype)
    bias = pair._read_only(np.concatenate([b_ih[:2 * n] + b_hh[:2 * n], b_ih[2 * n:], b_hh[2 * n:]]))
    proj = rng.standard_normal((T, 3 * n)).astype(dtype)
    h0 = (0.3 * rng.standard_normal(n)).astype(dtype)
    g = pair._read_only(rng.standard_normal((T, n)).astype(dtype))
    empty1, empty2 = np.empty(0, dtype), np.empty((0, 0), dtype)

    def run(delay):
        """Both chains, the helper's half started ``delay`` seconds late (None: no helper)."""
        G, h = np.full((T, 4 * n), np.nan, dtype), np.empty((T + 1, n), dtype)
        h[0] = h0
        D, An = np.full((T, 3 * n), np.nan, dtype), np.full((T, n), np.nan, dtype)
        WT = _row_tile_panels(n, dtype, 3) if tiles else np.full((n, 3 * n), np.nan, dtype)
        PB = _row_tile_panels(n, dtype, 3) if tiles else empty2
        dh = np.zeros(n, dtype)
        kinds = (chain.FORWARD_TILES, chain.SWEEP_TILES) if tiles else (chain.FORWARD, chain.SWEEP)
        taken = _both_chains(_gru_chain, ((G, W, bias.reshape(1, -1), h, proj, empty1, PB, empty2),
                                          (D, W, g, h, G, dh, WT, An)), T, delay, kinds)
        return G, h, D, An, dh, WT, taken

    G, h, D, An, dh, WT, taken = run(None)
    assert taken == [T, T]
    if not tiles:
        np.testing.assert_array_equal(WT, W.T)
    # SPEC §6a in float64: r, z, n as torch.nn.GRU, q = W_hn h_{t-1} + b_hn
    w, bi, bh, p = W.astype(np.float64), b_ih.astype(np.float64), b_hh.astype(np.float64), proj.astype(np.float64)
    sig = lambda a: 1 / (1 + np.exp(-a))                # noqa: E731
    hr = np.empty((T + 1, n))
    hr[0] = h0
    gates = np.empty((T, 4 * n))
    for t in range(T):
        a = w @ hr[t]
        r = sig(p[t, :n] + bi[:n] + a[:n] + bh[:n])
        z = sig(p[t, n:2 * n] + bi[n:2 * n] + a[n:2 * n] + bh[n:2 * n])
        q = a[2 * n:] + bh[2 * n:]
        nn = np.tanh(p[t, 2 * n:] + bi[2 * n:] + r * q)
        gates[t] = np.concatenate([r, z, nn, q])
        hr[t + 1] = (1 - z) * nn + z * hr[t]
    assert_close(h, hr, dtype, "h")
    assert_close(G, gates, dtype, "gates")
    Dr, Anr = np.empty((T, 3 * n)), np.empty((T, n))
    dh_next = np.zeros(n)
    for s in range(T - 1, -1, -1):
        r, z, nn, q = np.split(gates[s], 4)
        back = np.zeros(n) if s == T - 1 else Dr[s + 1] @ w + dh_next * gates[s + 1, n:2 * n]
        dht = g[s] + back
        da_n = dht * (1 - z) * (1 - nn ** 2)
        Anr[s] = da_n
        Dr[s] = np.concatenate([da_n * q * r * (1 - r), dht * (hr[s] - nn) * z * (1 - z), da_n * r])
        dh_next = dht
    assert_close(D, Dr, dtype, "D")
    assert_close(An, Anr, dtype, "An")
    assert_close(dh, dh_next, dtype, "dh")
    if delay is None:
        return
    for a, b in zip(run(delay)[:6], (G, h, D, An, dh, WT)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_gated_cells_truncated_bptt_pairs_its_forward_pass_only(paired, spied, cell):
    net, x, d, mask, h0 = make_problem(20, T=40, B=1, m=3, n=16, o=2, readout="linear", cell=cell)
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0, truncation=(10, 5))
    assert spied == [f"{cell}_forward"]         # the truncated sweep keeps the one-thread kernel
    ref = getattr(reference, cell).bptt(net, x, d, mask=mask, h0=h0, truncation=(10, 5))
    assert_grads_close(g, ref[1], np.float64)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_gated_cells_batch_of_two_keeps_the_batch_kernels(paired, spied, cell):
    net, x, d, mask, h0 = make_problem(21, T=20, B=2, m=3, n=16, o=2, readout="linear", cell=cell)
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0)
    assert spied == []
    assert_grads_close(g, getattr(reference, cell).bptt(net, x, d, mask=mask, h0=h0)[1], np.float64)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, force", [(1, "FORCE"), (3, "ROWS_FORCE")])
def test_states_passed_back_read_only_take_the_pairs_sweep(cell, dtype, B, force, spied, monkeypatch):
    """States a caller passes back to ``vjp(states=...)`` may be read-only (fastrnn.jax's buffers always are). The
    gated cells' sweeps on two threads (a batch of one, and a batch cut by units) hand them to loops compiled for the
    forward pass's writable states: a read-only pair raised Numba's TypingError there. Now the sweep runs on a
    copy, gives the reference's gradients, and leaves the caller's arrays as they were."""
    monkeypatch.setattr(pair, force, True)
    monkeypatch.setattr(pair, "SPLIT_PROJECTION_MIN", 0)
    T, n = 9, 11
    net, x, _, _, h0 = make_problem(40 + B, T=T, B=B, m=3, n=n, o=2, dtype=dtype, readout="units", cell=cell)
    out = fastrnn.forward(net, x, h0)
    states = tuple(np.array(s) for s in ((out.h, out.c) if cell == "lstm" else (out.h,)))
    kept = [s.copy() for s in states]
    for s in states:
        s.flags.writeable = False
    dh = np.random.default_rng(B).standard_normal((T, B, n)).astype(dtype)
    spied.clear()
    grads, dx, dstate0 = fastrnn.vjp(net, x, dh, h0, states=states if cell == "lstm" else states[0])
    assert spied == [f"{cell}_sweep" if B == 1 else f"{cell}_rows_sweep"], spied
    ref_grads, ref_dx, ref_dstate0 = reference.vjp(net, x, dh, h0)
    assert_grads_close(grads, ref_grads, dtype, "vjp ")
    assert_close(dx, ref_dx, dtype, "dx")
    for ours, ref in zip(dstate0 if cell == "lstm" else (dstate0,), ref_dstate0 if cell == "lstm" else (ref_dstate0,)):
        assert_close(ours, ref, dtype, "initial state's gradient")
    for s, k in zip(states, kept):
        np.testing.assert_array_equal(s, k)


# -- the LSTM over a batch cut by units (``chain.lstm_rows_half``) --------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, B", [(8, 2), (13, 5), (40, 3), (130, 6)])
def test_the_lstm_cut_by_units_equals_the_reference(by_units, spied, dtype, n, B):
    """A batch's forward states, loss and weight gradients (fastrnn.bptt), and with errors injected into c_T the
    gradients with respect to the inputs and both initial states (fastrnn.vjp), each thread taking its units of
    every row: n cut on a cache line or on four units (13: halves of 4 and 9), batches that are not a tile's four
    rows."""
    net, x, d, mask, h0 = make_problem(30 + n, T=17, B=B, m=3, n=n, o=2, dtype=dtype, readout="linear", cell="lstm")
    out = fastrnn.forward(net, x, h0)
    ref = reference.lstm.forward(net, x, h0)
    assert_close(out.h, ref[0], dtype, "h")
    assert_close(out.c, ref[2], dtype, "c")
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0)
    ref_L, ref_g = reference.lstm.bptt(net, x, d, mask=mask, h0=h0)
    assert_close(np.array(L), np.array(ref_L), dtype, "loss")
    assert_grads_close(g, ref_g, dtype)
    rng = np.random.default_rng(n + B)
    dh = rng.standard_normal((17, B, n)).astype(dtype)
    dc_T = rng.standard_normal((B, n)).astype(dtype)
    dc_T0 = dc_T.copy()
    grads, dx, (dh0, dc0) = fastrnn.vjp(net, x, dh, h0, dc_T=dc_T)
    np.testing.assert_array_equal(dc_T, dc_T0)           # the caller's error is left as it was
    ref_grads, ref_dx, (ref_dh0, ref_dc0) = reference.vjp(net, x, dh, h0, (None, dc_T))
    assert_grads_close(grads, ref_grads, dtype, "vjp ")
    assert_close(dx, ref_dx, dtype, "dx")
    assert_close(dh0, ref_dh0, dtype, "dh0")
    assert_close(dc0, ref_dc0, dtype, "dc0")
    assert spied == ["lstm_rows_forward"] + ["lstm_rows_forward", "lstm_rows_sweep"] * 2


def _rows_chain(kind, arrays, mine, flags, grace):
    """One thread's part of the LSTM's chain over a batch, as ``pair.lstm_rows_forward`` / ``lstm_rows_sweep``
    hand it the arrays."""
    B, n = arrays[3].shape[1], arrays[3].shape[2]
    cut = pair.cut_of(n, arrays[0].itemsize)
    size = chain.rows_scratch(B, n, cut, arrays[0].itemsize)[0]
    return chain.lstm_rows_half(kind, arrays, 0, flags.shape[0] // 2, cut, mine, flags, grace,
                                np.full(size, np.nan, arrays[0].dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delay", [None, 0.0, 0.002])
def test_the_lstm_rows_chain_whenever_the_other_thread_comes(dtype, delay):
    """The LSTM's forward chain and sweep over a batch of 5 rows of 72 units (halves of 32 / 16 and 40 / 56 units,
    panels whole and partial), one thread alone against the float64 recurrences of SPEC §6; then with the other
    thread at once or a little late: each half of each step computed once, the same bits. The panels' buffer
    holds NaN on entry: nothing of it is read before it is written."""
    T, B, n = 60, 5, 72
    rng = np.random.default_rng(21)
    W = pair._read_only((rng.standard_normal((4 * n, n)) / np.sqrt(n)).astype(dtype))
    bias = pair._read_only((0.1 * rng.standard_normal(4 * n)).astype(dtype))
    xW = rng.standard_normal((T, B, 4 * n)).astype(dtype)
    state0 = (0.3 * rng.standard_normal((2, B, n))).astype(dtype)
    g = pair._read_only(rng.standard_normal((T, B, n)).astype(dtype))
    dc_T = rng.standard_normal((B, n)).astype(dtype)
    per = chain.rows_scratch(B, n, pair.cut_of(n, np.dtype(dtype).itemsize), np.dtype(dtype).itemsize)[1]

    def run(delay):
        G = xW.copy()
        h, c = np.empty((T + 1, B, n), dtype), np.empty((T + 1, B, n), dtype)
        h[0], c[0] = state0
        D, dc = np.full((T, B, 4 * n), np.nan, dtype), dc_T.copy()
        forward = (G, W, bias.reshape(1, 1, -1), h, c, G, np.empty((0, 0), dtype), np.full((2, per), np.nan, dtype))
        sweep = (D, W, g, h, c, G, dc, np.full((2, per), np.nan, dtype))
        taken = _both_chains(_rows_chain, (forward, sweep), T, delay)
        return G, h, c, D, dc, taken

    G, h, c, D, dc, taken = run(None)
    assert taken == [T, T]
    w, b = W.astype(np.float64), bias.astype(np.float64)
    sig = lambda a: 1 / (1 + np.exp(-a))                # noqa: E731
    hr, cr = np.empty((T + 1, B, n)), np.empty((T + 1, B, n))
    hr[0], cr[0] = state0
    gates = np.empty((T, B, 4 * n))
    for t in range(T):
        a = xW[t] + hr[t] @ w.T + b
        gates[t] = np.concatenate([sig(a[:, :2 * n]), np.tanh(a[:, 2 * n:3 * n]), sig(a[:, 3 * n:])], axis=1)
        i, f, gg, o = np.split(gates[t], 4, axis=1)
        cr[t + 1] = f * cr[t] + i * gg
        hr[t + 1] = o * np.tanh(cr[t + 1])
    assert_close(h, hr, dtype, "h")
    assert_close(c, cr, dtype, "c")
    assert_close(G, gates, dtype, "gates")
    Dr = np.empty((T, B, 4 * n))
    dcr = dc_T.astype(np.float64)
    nxt = np.zeros((B, 4 * n))
    for s in range(T - 1, -1, -1):
        i, f, gg, o = np.split(gates[s], 4, axis=1)
        dh = g[s] + nxt @ w
        tc = np.tanh(cr[s + 1])
        dct = dh * o * (1 - tc ** 2) + dcr
        nxt = Dr[s] = np.concatenate([dct * gg * i * (1 - i), dct * cr[s] * f * (1 - f), dct * i * (1 - gg ** 2),
                                      dh * tc * o * (1 - o)], axis=1)
        dcr = dct * f
    assert_close(D, Dr, dtype, "D")
    assert_close(dc, dcr, dtype, "dc0")
    if delay is None:
        return
    for a, b in zip(run(delay)[:5], (G, h, c, D, dc)):
        np.testing.assert_array_equal(a, b)


def test_the_rule_for_a_batch_cut_by_units(monkeypatch):
    """``rows_pay``: a batch the kernels would run in one block, or in blocks of one row, from 1 MB of weights;
    in blocks of several rows only beyond ROWS_HUGE_BYTES; never for more than two blocks, ROWS_MAX rows, too few
    units or steps, one thread, truncated BPTT's sweep or a busy machine."""
    monkeypatch.setattr(overlap, "_runnable", lambda: 1)
    work = dispatch.Work

    def lstm(n, B, itemsize=4, T=100):
        return work(B, 8 * B * n * n, T, 4 * n * n * itemsize)
    assert pair.rows_pay(lstm(512, 4), 2, 512, 4, 1)                   # one block of four rows
    assert pair.rows_pay(lstm(256, 2), 2, 256, 4, 2)                   # blocks of one row, 1 MB
    assert not pair.rows_pay(lstm(192, 4), 2, 192, 4, 1)               # 576 KB
    assert not pair.rows_pay(lstm(512, 8), 2, 512, 4, 2)               # two blocks of four rows, 4 MB
    assert not pair.rows_pay(lstm(1024, 8), 2, 1024, 4, 2)             # 16 MB
    assert pair.rows_pay(lstm(768, 8, 8), 2, 768, 8, 2)                # 18 MB
    assert not pair.rows_pay(lstm(1024, 32, 8), 2, 1024, 8, 2)         # more than ROWS_MAX rows
    assert not pair.rows_pay(lstm(512, 4), 2, 512, 4, 3)               # the kernels would run three blocks
    assert not pair.rows_pay(lstm(512, 4), 1, 512, 4, 1)               # one thread
    assert not pair.rows_pay(lstm(512, 1), 2, 512, 4, 1)               # a batch of one: ``pays``
    assert not pair.rows_pay(lstm(512, 4, T=10), 2, 512, 4, 1)         # 40 MB over the steps: its fixed cost
    assert pair.rows_pay(lstm(512, 4, T=16), 2, 512, 4, 1)
    assert pair.rows_pay(lstm(512, 4), 2, 512, 4, 1, (100, 100))       # exact BPTT's sweep
    assert not pair.rows_pay(lstm(512, 4), 2, 512, 4, 1, (20, 10))     # truncated BPTT's
    monkeypatch.setattr(overlap, "_runnable", lambda: 64)
    monkeypatch.setattr(overlap, "_own_running", lambda: 0)
    assert not pair.rows_pay(lstm(512, 4), 2, 512, 4, 1)
    monkeypatch.setattr(pair, "ROWS_FORCE", True)
    assert pair.rows_pay(lstm(16, 2), 1, 16, 8, 1)
    assert not pair.rows_pay(lstm(16, 2), 1, 16, 8, 1, (20, 10))


def test_a_batch_cut_by_units_is_chosen_by_the_clock_and_its_sweep_follows(by_clock):
    """As a batch of one's pair: a pass each way not counted, one each way counted, then the faster way with a probe
    of the other every PROBE_EVERY passes; the sweep by units only where the forward passes last measured it faster;
    a batch of one at the same units keeps a record of its own."""
    ways, work = _passes((1e-6, 2e-6), 4 + 8, rows=True)      # the pair twice as fast as the kernels' block
    assert ways[:4] == [True, False, True, False]
    assert ways[4:] == [True, True, True, False, True, True, True, False]
    assert pair.rows_pay(work, 2, 512, 4, 1, (100, 100))
    ways, _ = _passes((3e-6, 2e-6), 10, rows=True)            # the pair's meetings slow
    assert ways == [True, True, True, True, False, False, False, True, False, False]
    assert not pair.rows_pay(work, 2, 512, 4, 1, (100, 100))    # nor the sweep
    assert pair.rows_pay(work, 2, 512, 4, 1)            # the rule itself still allows it
    assert list(pair.CHOOSER.records) == [pair._rows_shape(work, 512, 4)]
    ways, _ = _passes((1e-6, 2e-6), 6, rows=True)             # fast again: its next probe brings it back
    assert ways == [False, True, True, True, True, False]
    assert pair.rows_pay(work, 2, 512, 4, 1, (100, 100))


def test_forced_refused_or_ruled_out_batches_record_nothing(by_clock, monkeypatch):
    monkeypatch.setattr(pair, "ROWS_FORCE", True)
    assert _passes((1e-6, 2e-6), 3, rows=True)[0] == [True] * 3
    monkeypatch.setattr(pair, "ROWS_FORCE", False)
    assert _passes((1e-6, 2e-6), 3, rows=True)[0] == [False] * 3
    monkeypatch.setattr(pair, "ROWS_FORCE", None)
    small = dispatch.Work(4, 8 * 4 * 192 * 192, 100, 4 * 192 * 192 * 4)      # 576 KB: the rule says no
    assert not pair.rows_forward_pays(small, 2, 192, 4, 1)
    big = dispatch.Work(4, 8 * 4 * 512 * 512, 100, 4 * 512 * 512 * 4)
    assert not pair.rows_forward_pays(big, 1, 512, 4, 1)                     # one thread
    assert not pair.rows_forward_pays(big, 2, 512, 4, 3)                     # the kernels would run three blocks
    assert pair.CHOOSER.records == {}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batches_that_alternate_while_measuring_equal_the_reference(by_clock, spied, cell):
    """Whole calls at a batch the rule cuts by units (float64, over ROWS_MIN_BYTES of weights and MIN_STREAMED bytes
    streamed): the first passes go both ways, and every call's gradients are the reference's whichever way it
    went."""
    n, T, B = (192, 64, 2) if cell == "lstm" else (224, 64, 2)
    net = fastrnn.MODELS[cell].init(3, n, 2, readout="linear", dtype=np.float64, seed=8)
    x = np.random.default_rng(8).standard_normal((T, B, 3))
    d = np.random.default_rng(9).standard_normal((T, B, 2))
    ref = getattr(reference, cell).bptt(net, x, d)
    for _ in range(5):
        L, g = fastrnn.bptt(net, x, d)
        assert_close(np.array(L), np.array(ref[0]), np.float64, "loss")
        assert_grads_close(g, ref[1], np.float64)
    by_units = [name for name in spied if name.endswith("rows_forward")]
    assert 1 <= len(by_units) < 5                       # some passes cut by units, some by the kernels' rows
    assert [key[:2] for key in pair.CHOOSER.records] == [("rows", B)]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_truncated_sweep_over_a_batch_keeps_the_kernels(by_units, spied, cell):
    net, x, d, mask, h0 = make_problem(22, T=40, B=3, m=3, n=16, o=2, readout="linear", cell=cell)
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0, truncation=(10, 5))
    assert spied == [f"{cell}_rows_forward"]
    ref = getattr(reference, cell).bptt(net, x, d, mask=mask, h0=h0, truncation=(10, 5))
    assert_grads_close(g, ref[1], np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, B", [(8, 2), (13, 5), (40, 3), (130, 6)])
def test_the_gru_cut_by_units_equals_the_reference(by_units, spied, dtype, n, B):
    """The GRU over a batch with each thread taking its units of every row: forward states, loss and weight
    gradients (fastrnn.bptt), and the gradients with respect to the inputs and the initial state (fastrnn.vjp)."""
    net, x, d, mask, h0 = make_problem(40 + n, T=17, B=B, m=3, n=n, o=2, dtype=dtype, readout="linear", cell="gru")
    out = fastrnn.forward(net, x, h0)
    assert_close(out.h, reference.gru.forward(net, x, h0)[0], dtype, "h")
    L, g = fastrnn.bptt(net, x, d, mask=mask, h0=h0)
    ref_L, ref_g = reference.gru.bptt(net, x, d, mask=mask, h0=h0)
    assert_close(np.array(L), np.array(ref_L), dtype, "loss")
    assert_grads_close(g, ref_g, dtype)
    dh = np.random.default_rng(n + B).standard_normal((17, B, n)).astype(dtype)
    grads, dx, dh0 = fastrnn.vjp(net, x, dh, h0)
    ref_grads, ref_dx, ref_dh0 = reference.vjp(net, x, dh, h0)
    assert_grads_close(grads, ref_grads, dtype, "vjp ")
    assert_close(dx, ref_dx, dtype, "dx")
    assert_close(dh0, ref_dh0, dtype, "dh0")
    assert spied == ["gru_rows_forward"] + ["gru_rows_forward", "gru_rows_sweep"] * 2


def _gru_rows_chain(kind, arrays, mine, flags, grace):
    """One thread's part of the GRU's chain over a batch, as ``pair.gru_rows_forward`` / ``gru_rows_sweep`` hand
    it the arrays."""
    B, n = arrays[3].shape[1], arrays[3].shape[2]
    cut = pair.cut_of(n, arrays[0].itemsize)
    size = chain.rows_scratch(B, n, cut, arrays[0].itemsize, 3)[0]
    return chain.gru_rows_half(kind, arrays, 0, flags.shape[0] // 2, cut, mine, flags, grace,
                               np.full(size, np.nan, arrays[0].dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delay", [None, 0.0, 0.002])
def test_the_gru_rows_chain_whenever_the_other_thread_comes(dtype, delay):
    """The GRU's forward chain and sweep over a batch of 5 rows of 72 units, one thread alone against the float64
    recurrences of SPEC §6a, then with the other thread at once or a little late: the same bits; the panels'
    buffer holds NaN on entry."""
    T, B, n = 50, 5, 72
    rng = np.random.default_rng(23)
    W = pair._read_only((rng.standard_normal((3 * n, n)) / np.sqrt(n)).astype(dtype))
    bias = pair._read_only((0.1 * rng.standard_normal(4 * n)).astype(dtype))       # [b_r, b_z, b_in, b_hn]
    proj = pair._read_only(rng.standard_normal((T, B, 3 * n)).astype(dtype))
    h0 = (0.3 * rng.standard_normal((B, n))).astype(dtype)
    g = pair._read_only(rng.standard_normal((T, B, n)).astype(dtype))
    per = chain.rows_scratch(B, n, pair.cut_of(n, np.dtype(dtype).itemsize), np.dtype(dtype).itemsize, 3)[1]

    def run(delay):
        G = np.full((T, B, 4 * n), np.nan, dtype)
        h = np.empty((T + 1, B, n), dtype)
        h[0] = h0
        D, An, dh = np.full((T, B, 3 * n), np.nan, dtype), np.full((T, B, n), np.nan, dtype), np.zeros((B, n), dtype)
        forward = (G, W, bias.reshape(1, 1, -1), h, proj, np.empty((0, 0), dtype), np.full((2, per), np.nan, dtype),
                   np.empty((0, 0, 0), dtype))
        sweep = (D, W, g, h, G, dh, np.full((2, per), np.nan, dtype), An)
        taken = _both_chains(_gru_rows_chain, (forward, sweep), T, delay)
        return G, h, D, An, dh, taken

    G, h, D, An, dh, taken = run(None)
    assert taken == [T, T]
    w, b = W.astype(np.float64), bias.astype(np.float64)
    sig = lambda a: 1 / (1 + np.exp(-a))                # noqa: E731
    hr = np.empty((T + 1, B, n))
    hr[0] = h0
    gates = np.empty((T, B, 4 * n))
    for t in range(T):
        rec = hr[t] @ w.T
        r = sig(proj[t, :, :n] + rec[:, :n] + b[:n])
        z = sig(proj[t, :, n:2 * n] + rec[:, n:2 * n] + b[n:2 * n])
        q = rec[:, 2 * n:] + b[3 * n:]
        nn = np.tanh(proj[t, :, 2 * n:] + b[2 * n:3 * n] + r * q)
        gates[t] = np.concatenate([r, z, nn, q], axis=1)
        hr[t + 1] = (1 - z) * nn + z * hr[t]
    assert_close(h, hr, dtype, "h")
    assert_close(G, gates, dtype, "gates")
    Dr, Anr = np.empty((T, B, 3 * n)), np.empty((T, B, n))
    carry = np.zeros((B, n))               # dh_{s+1} z_{s+1}: the error reaching h_s straight through
    nxt = np.zeros((B, 3 * n))
    for s in range(T - 1, -1, -1):
        r, z, nn, q = np.split(gates[s], 4, axis=1)
        dhs = g[s] + nxt @ w + carry
        dn = dhs * (1 - z) * (1 - nn ** 2)
        dz = dhs * (hr[s] - nn) * z * (1 - z)
        dr = dn * q * r * (1 - r)
        Anr[s] = dn
        nxt = Dr[s] = np.concatenate([dr, dz, dn * r], axis=1)
        carry = dhs * z
    assert_close(D, Dr, dtype, "D")
    assert_close(An, Anr, dtype, "An")
    assert_close(dh, dhs, dtype, "the error arriving at h_1")
    if delay is None:
        return
    for a, b_ in zip(run(delay)[:5], (G, h, D, An, dh)):
        np.testing.assert_array_equal(a, b_)


def test_a_cpu_held_by_this_processs_pools_is_free_for_the_pair_and_for_a_batch_cut_by_units(monkeypatch):
    """The machine busy with this process's own pools' spinning threads: a batch of one's pair and a batch cut by
    units run (their measured choice sees what sharing a CPU with them costs); neither where the threads are
    another process's."""
    monkeypatch.setattr(overlap, "_runnable", lambda: os.cpu_count())
    monkeypatch.setattr(overlap, "_own_running", lambda: 1)
    monkeypatch.setattr(pair, "CHOOSER", measured.Chooser())
    work = dispatch.Work
    lstm = work(1, 8 * 512 * 512, 100, 4 * 512 * 512 * 4)
    simple = work(1, 2 * 256 * 256, 1000, 256 * 256 * 4)
    batch = work(4, 8 * 4 * 256 * 256, 100, 4 * 256 * 256 * 4)     # 1 MB of weights, 100 MB streamed
    assert pair.pays(lstm, 2, False, 512, 4)
    assert pair.pays(simple, 2, False, 256, 4)
    assert pair.rows_pay(lstm._replace(items=4), 2, 512, 4, 1)
    assert pair.rows_pay(batch, 2, 256, 4, 1)
    monkeypatch.setattr(overlap, "_own_running", lambda: 0)
    assert not pair.pays(lstm, 2, False, 512, 4)
    assert not pair.pays(simple, 2, False, 256, 4)
    assert not pair.rows_pay(batch, 2, 256, 4, 1)


def test_a_pool_thread_seen_running_by_either_reading_is_not_counted_busy(monkeypatch):
    """The machine's count (/proc/loadavg) and the threads' states are read at different instants: Numba's worker,
    running when the states are read before the second count, may be asleep when they are read after it while the
    count still holds it; either reading that finds it running takes it off. Threads that are not this process's
    pools', or a caller that counts them, still read busy."""
    monkeypatch.setattr(overlap, "_cpus", lambda: 2)
    monkeypatch.setattr(overlap, "_runnable", lambda: 2)
    for readings, free in (((1, 0), True), ((0, 1), True), ((0, 0), False)):
        seen = iter(readings)
        monkeypatch.setattr(overlap, "_own_running", lambda: next(seen))
        assert overlap._idle_core(True) is free
    monkeypatch.setattr(overlap, "_own_running", lambda: 1)
    assert not overlap._idle_core(False)
    monkeypatch.setattr(overlap, "_runnable", lambda: 1)
    assert overlap._idle_core(False)
