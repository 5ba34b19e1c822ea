"""Regression tests of defects found with hostile inputs, and a sweep of bad values through every
public function: each gets a fastrnn error (a ValueError/TypeError subclass) that names the
argument, never a crash, a hang, a silent cast, a modified input or a foreign exception."""
import numpy as np
import pytest

import fastrnn
from fastrnn import DTypeError, NonFiniteError, OptionError, ShapeError

from conftest import make_problem


# -- the listed defects ---------------------------------------------------------------------------
def test_validate_catches_nan_gradients(monkeypatch):
    net, x, d, mask, h0 = make_problem(1, 5, 2, 3, 4, 2)
    from fastrnn.cells import rnn

    original = rnn.Driver.backward

    def poisoned(self, *args, **kwargs):
        grads, dstate0, dx = original(self, *args, **kwargs)
        grads["W_rec"][0, 0] = np.nan
        return grads, dstate0, dx
    monkeypatch.setattr(rnn.Driver, "backward", poisoned)
    with pytest.raises((fastrnn.ValidationError, NonFiniteError), match="W_rec"):
        fastrnn.bptt(net, x, d, mask, h0=h0, validate=True)
    from fastrnn.compare import relative_error, within
    assert not within(relative_error([np.nan, 1.0], [1.0, 1.0]), np.float64)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_online_gradients_never_alias_internal_buffers(cell):
    net, x, d, mask, h0 = make_problem(2, 4, 1, 2, 1, 1, cell=cell)     # n_hidden = 1
    learner = fastrnn.OnlineRTRL(net, batch=1, h0=h0)
    _, first, y = learner.step(x[0], d[0])
    kept = {k: v.copy() for k, v in first.items()}
    y_kept = y.copy()
    for t in range(1, 4):
        learner.step(x[t], d[t])
    for name, value in first.items():
        np.testing.assert_array_equal(value, kept[name], err_msg=name)
    np.testing.assert_array_equal(y, y_kept)
    learner.advance(x[0])
    g = learner.backward(np.ones((1, 1)))
    kept = {k: v.copy() for k, v in g.items()}
    learner.advance(x[1])
    learner.backward(np.ones((1, 1)))
    for name, value in g.items():
        np.testing.assert_array_equal(value, kept[name], err_msg=name)


@pytest.mark.parametrize("call", ["forward", "bptt", "rtrl", "vjp"])
def test_overflow_raises_naming_where_it_arose(call):
    net = fastrnn.RNN.init(2, 3, 1, activation="identity", seed=0)
    net.W_rec[...] = 1e300 * np.eye(3)
    x = np.ones((4, 1, 2))
    d = np.zeros((4, 1, 1))
    with pytest.raises(NonFiniteError, match=r"overflowed to inf or NaN at step \d+ \(sequence 0, unit \d\)"):
        if call == "forward":
            fastrnn.forward(net, x)
        elif call == "vjp":
            fastrnn.vjp(net, x, np.ones((4, 1, 3)))
        else:
            getattr(fastrnn, call)(net, x, d)


@pytest.mark.parametrize("B, overflows", [(1, 0), (4, 2), (4, 3)])
def test_the_simple_cells_forward_kernel_finds_overflow_in_any_block(parallel_kernels, B, overflows):
    """The forward kernel sums the states it writes (``Run.checked``), block by parallel block: an
    overflow in one sequence of the batch, whichever block holds it, is still found and named."""
    net = fastrnn.RNN.init(2, 3, 1, activation="identity", seed=0)
    net.W_rec[...] = 1e300 * np.eye(3)
    net.b[...] = 0
    x = np.zeros((4, B, 2))
    x[:, overflows] = 1.0                                   # the other sequences stay at zero
    with fastrnn.threads(2):
        with pytest.raises(NonFiniteError, match=rf"overflowed to inf or NaN at step \d+ \(sequence {overflows}, "):
            fastrnn.forward(net, x)
        with pytest.raises(NonFiniteError, match=rf"\(sequence {overflows}, "):
            fastrnn.bptt(net, x, np.zeros((4, B, 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_states_whose_sum_overflows_are_not_refused(dtype):
    """Each state finite, their sum not: the kernel's sum says nothing then, and the states are
    passed over one by one (no error); with ordinary states the kernel's word is taken."""
    from fastrnn import checks
    from fastrnn.cells import driver_for
    big = np.finfo(dtype).max / 2
    net = fastrnn.RNN(np.full((2, 1), big, dtype), np.zeros((2, 2), dtype), np.zeros(2, dtype),
                      activation="identity")
    x = np.ones((3, 1, 1), dtype)
    out = fastrnn.forward(net, x)
    np.testing.assert_array_equal(out.h[1:], np.full((3, 1, 2), big, dtype))
    driver = driver_for(net)
    off = checks.Forcing.off(dtype)
    run = driver.forward(net, net.checked(), x, (np.zeros((1, 2), dtype),), off, 1)
    assert not run.checked                                  # the sum overflowed: not known, checked apart
    ordinary, x, _, _, h0 = make_problem(3, 7, 2, 3, 5, 2, dtype=dtype)
    run = driver.forward(ordinary, ordinary.checked(), x, (h0,), off, 1)
    assert run.checked and np.isfinite(run.h).all()


def test_a_call_without_a_mask_equals_one_with_a_mask_of_ones_and_leaves_the_shared_ones_alone():
    """mask=None reads one array of ones kept per thread (``workspace.ones``): the same results as an
    explicit mask of ones, bit for bit, and the array still all ones after calls of every kind."""
    from fastrnn.runtime import workspace
    for loss, readout_ in (("mse", "units"), ("mse", "linear"), ("xent", "linear"), ("bce", "linear")):
        net, x, d, _, h0 = make_problem(4, 6, 3, 2, 5, 3, readout=readout_, loss=loss,
                                        out_activation="logistic" if loss == "bce" else "identity")
        shape = d.shape if loss != "xent" else d.shape[:2]
        for call in (fastrnn.bptt, fastrnn.rtrl):
            L, grads = call(net, x, d, loss=loss, h0=h0)
            L1, grads1 = call(net, x, d, mask=np.ones(shape), loss=loss, h0=h0)
            assert L == L1
            for name in grads:
                if grads[name] is not None:
                    np.testing.assert_array_equal(grads[name], grads1[name], err_msg=f"{loss} {name}")
            ones = workspace.ones(shape, net.dtype)
            assert (ones == 1).all() and ones.shape == shape


@pytest.mark.parametrize("cell, first", [("RNN", "W_in"), ("LSTM", "W_ih"), ("GRU", "W_ih")])
def test_a_vjp_whose_gradients_overflow_names_the_first_one(cell, first):
    """Finite states and a finite upstream gradient too large for the dtype: the result is checked in
    one pass, and the error still names the first gradient that overflowed."""
    net = getattr(fastrnn, cell).init(3, 4, 1, readout="units", seed=0)
    x = np.ones((5, 2, 3))
    with pytest.raises(NonFiniteError, match=rf"fastrnn.vjp: the gradient {first} overflowed to inf or NaN"):
        fastrnn.vjp(net, x, np.full((5, 2, 4), 1e308))
    grads, dx, _ = fastrnn.vjp(net, x, np.full((5, 2, 4), 1e300))     # large and finite: no error
    assert all(np.isfinite(g).all() for g in grads.values()) and np.isfinite(dx).all()


def test_overflow_in_the_online_step_raises():
    net = fastrnn.RNN.init(2, 3, 1, activation="identity", seed=0)
    net.W_in[...] = 1e300
    learner = fastrnn.OnlineRTRL(net)
    with pytest.raises(NonFiniteError, match="OnlineRTRL.step"):
        learner.step(np.full((1, 2), 1e10), np.zeros((1, 1)))


def test_masked_arrays_are_refused_and_big_endian_converted():
    net, x, d, mask, h0 = make_problem(3, 5, 2, 3, 4, 2)
    with pytest.raises(DTypeError, match="x is a numpy masked array.*mask would be lost"):
        fastrnn.bptt(net, np.ma.masked_array(x, mask=np.zeros_like(x, bool)), d)
    with pytest.raises(DTypeError, match="d is a numpy masked array"):
        fastrnn.bptt(net, x, np.ma.masked_invalid(d))
    swapped = x.astype(x.dtype.newbyteorder(">"))
    L_be, g_be = fastrnn.bptt(net, swapped, d, mask, h0=h0)
    L, g = fastrnn.bptt(net, x, d, mask, h0=h0)
    assert L_be == L
    np.testing.assert_array_equal(g_be.W_rec, g.W_rec)
    assert swapped.dtype.byteorder == ">"                  # the caller's array is untouched


@pytest.mark.parametrize("units, match", [
    ([99], r"out_units must be distinct unit indices in \[0, 5\), got \[99\]"),
    ([0.5, 1.0], "integer unit indices"),
    ([1, 1], "distinct"),
    ([], "non-empty"),
    ("ab", "integer unit indices"),
    ([[0, 1]], "integer unit indices"),
    ([-1], r"got \[-1\]"),
])
def test_out_units_are_checked(units, match):
    with pytest.raises(OptionError, match=match):
        fastrnn.RNN(np.zeros((5, 2)), np.zeros((5, 5)), np.zeros(5), out_units=units)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fastrnn.RNN.init(2, 3, 1, dtype="foo"), DTypeError, r"dtype='foo' is not a dtype"),
    (lambda: fastrnn.RNN.init(2, 3, 1, dtype=np.int32), DTypeError, "float64 or float32, got int32"),
    (lambda: fastrnn.RNN.init(2, 3, 1, seed=-1), OptionError, "seed must be an integer >= 0, got -1"),
    (lambda: fastrnn.LSTM.init(2, 3, 1, seed="x"), OptionError, "seed must be None or an integer"),
    (lambda: fastrnn.threads(0).__enter__(), OptionError, "whole number of threads"),
    (lambda: fastrnn.threads("2").__enter__(), OptionError, "whole number of threads"),
])
def test_foreign_exceptions_become_fastrnn_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_linear_readout_without_w_out():
    net, x, d, mask, h0 = make_problem(4, 5, 2, 3, 4, 2, readout="linear")
    net.W_out = None
    with pytest.raises(OptionError, match="net.W_out is None but the network's readout is 'linear'"):
        fastrnn.bptt(net, x, d)


def test_bptt_checks_its_memory_before_allocating():
    net = fastrnn.RNN.init(1, 4000, 1, seed=0, dtype=np.float32)
    x = np.broadcast_to(np.float32(0.0), (1_000_000, 1, 1))      # no memory of its own
    d = np.broadcast_to(np.float32(0.0), (1_000_000, 1, 1))
    with pytest.raises(fastrnn.MemoryBudgetError, match=r"RNN over T=1000000 steps with n=4000.*needs .* GiB"):
        fastrnn.bptt(net, x, d)


# -- the sweep: every public function, bad values of every kind -----------------------------------
def _problem():
    return make_problem(5, 4, 2, 3, 4, 2)


def _bad_arrays(good):
    """(label, value, expected exception) for an array argument."""
    nan = good.copy()
    nan.flat[0] = np.nan
    inf = good.copy()
    inf.flat[-1] = np.inf
    return [
        ("wrong type", "abc", DTypeError),
        ("None", None, DTypeError),
        ("NaN", nan, NonFiniteError),
        ("inf", inf, NonFiniteError),
        ("integer", good.astype(np.int64), DTypeError),
        ("float32", good.astype(np.float32), DTypeError),
        ("empty", good[:0], ShapeError),
        ("wrong shape", good[..., :-1] if good.shape[-1] > 1 else good[:, :0], ShapeError),
        ("too few axes", good[0], ShapeError),
        ("ragged", [[1.0], [1.0, 2.0]], DTypeError),
    ]


ARRAY_ARGS = {
    "forward": ["x", "h0"],
    "bptt": ["x", "d", "h0"],
    "rtrl": ["x", "d", "h0"],
    "vjp": ["x", "dh", "h0"],
}


def _call(name, net, args):
    fn = getattr(fastrnn, name)
    if name == "forward":
        return fn(net, args["x"], args["h0"])
    if name == "vjp":
        return fn(net, args["x"], args["dh"], args["h0"])
    return fn(net, args["x"], args["d"], h0=args["h0"])


NOT_BAD = {("h0", "None"),                                # None means zeros
           ("d", "integer"), ("d", "float32")}              # d's dtype rules: tests/test_errors.py
CASES = [(name, arg, label) for name, arrays in ARRAY_ARGS.items() for arg in arrays
         for label, _, _ in _bad_arrays(np.zeros((2, 2, 2))) if (arg, label) not in NOT_BAD]


@pytest.mark.parametrize("name,arg,label", CASES, ids=[f"{n}-{a}-{lbl}" for n, a, lbl in CASES])
def test_every_array_argument_rejects_bad_values(name, arg, label):
    net, x, d, mask, h0 = _problem()
    args = {"x": x, "d": d, "h0": h0, "dh": np.ones((4, 2, 4))}
    value, exc = {lbl: (v, e) for lbl, v, e in _bad_arrays(args[arg])}[label]
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    args[arg] = value
    with pytest.raises(exc) as info:
        _call(name, net, args)
    assert isinstance(info.value, (ValueError, TypeError)) and isinstance(info.value, fastrnn.FastRNNError)
    assert arg in str(info.value), str(info.value)
    for k, v in before.items():                            # nothing the caller passed was written
        if k != arg and isinstance(v, np.ndarray):
            np.testing.assert_array_equal(args[k], v)


@pytest.mark.parametrize("name, kwargs, match", [
    ("bptt", {"loss": "l1"}, "loss='l1' is not known"),
    ("bptt", {"truncation": 0}, "truncation must be an integer >= 1"),
    ("bptt", {"truncation": (2, 3)}, "needs h >= h_prime"),
    ("bptt", {"truncation": "4"}, "truncation must be an integer"),
    ("bptt", {"validate": "yes"}, "validate must be True or False"),
    ("bptt", {"teacher_forcing": 1}, "teacher_forcing must be True or False"),
    ("bptt", {"mask": np.full((4, 2, 2), 2)}, "mask must hold only 0 and 1"),
    ("rtrl", {"mask": np.ones((4, 2, 3))}, "mask has shape"),
    ("rtrl", {"loss": None}, "loss=None is not known"),
    ("vjp", {"truncation": -1}, "truncation must be an integer >= 1"),
    ("vjp", {"dc_T": np.ones((2, 4))}, "dc_T is the gradient of a final state 'c'"),
])
def test_every_option_rejects_bad_values(name, kwargs, match):
    net, x, d, mask, h0 = _problem()
    with pytest.raises(fastrnn.FastRNNError, match=match):
        if name == "vjp":
            fastrnn.vjp(net, x, np.ones((4, 2, 4)), **kwargs)
        else:
            getattr(fastrnn, name)(net, x, d, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch": 0}, "batch must be an integer >= 1"),
    ({"batch": 2.5}, "batch must be an integer"),
    ({"loss": "hinge"}, "loss='hinge' is not known"),
    ({"teacher_forcing": "no"}, "teacher_forcing must be True or False"),
    ({"h0": np.zeros((3, 4))}, r"h0 has shape \(3, 4\)"),
])
def test_online_rtrl_rejects_bad_options(kwargs, match):
    net, *_ = _problem()
    with pytest.raises(fastrnn.FastRNNError, match=match):
        fastrnn.OnlineRTRL(net, **kwargs)


def test_online_step_inputs_and_read_only_non_contiguous_arrays():
    net, x, d, mask, h0 = _problem()
    learner = fastrnn.OnlineRTRL(net, batch=2)
    with pytest.raises(ShapeError, match="x_t has shape"):
        learner.step(x[0, :1], d[0])
    with pytest.raises(NonFiniteError, match="dh_t holds NaN"):
        learner.advance(x[0])
        learner.backward(np.full((2, 4), np.nan))
    ro = np.asfortranarray(x)[:, :, :]
    ro.flags.writeable = False
    L1, g1 = fastrnn.bptt(net, ro, d)                       # read-only, non-contiguous: accepted
    L2, g2 = fastrnn.bptt(net, np.ascontiguousarray(x), d)
    assert L1 == L2


@pytest.mark.parametrize("call, match", [
    (lambda: fastrnn.set_memory_budget(-1), "memory budget must be a positive number"),
    (lambda: fastrnn.load("/nonexistent/net.npz"), "No such file"),
    (lambda: fastrnn.RNN.from_state_dict({"cell": "gru2"}), "not known"),
    (lambda: fastrnn.RNN.from_state_dict([1, 2]), "state must be a mapping"),
    (lambda: fastrnn.RNN.from_state_dict({"cell": "rnn", "W_in": np.ones((2, 2))}), "has no 'W_rec', 'b'"),
])
def test_other_public_functions(call, match):
    with pytest.raises((fastrnn.FastRNNError, OSError), match=match):
        call()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_fast_path_and_exact_test(dtype):
    """The finiteness check behind every input and result check: NaN and infinities anywhere,
    huge finite values whose squares overflow, strided views and empty arrays."""
    from fastrnn.checks import all_finite
    big = np.finfo(dtype).max
    a = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    assert all_finite(a, a[:, ::2, 1:], np.empty((0, 3), dtype))
    assert all_finite(np.full(5, big, dtype), np.full(3, -big / 2, dtype))    # squares overflow: still finite
    assert all_finite(np.arange(5), np.ones(3, bool), np.ones(2, np.float16), np.ones(2, np.complex128))
    assert all_finite(np.ones(4, dtype=">f8"), np.asfortranarray(np.ones((3, 2), dtype)))
    assert not all_finite(np.array([1.0, np.nan], np.float16)) and not all_finite(np.array([np.inf + 0j]))
    assert not all_finite(np.array([2.0, np.inf], dtype=">f8"))
    for bad in (np.nan, np.inf, -np.inf):
        b = a.copy()
        b[1, 2, 3] = bad
        assert not all_finite(a, b)
        assert not all_finite(b[:, ::2, 1:])                                 # strided view holding it
        h = np.full(4, big, dtype)
        h[0] = bad
        assert not all_finite(h)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_network_over_given_arrays_shares_them_and_its_copy_does_not(cell):
    """``_over`` (the bridges' constructor) keeps the caller's arrays, and checks their values
    where a call uses them; the public constructor and ``copy()`` own copies."""
    net = fastrnn.MODELS[cell].init(3, 4, 2, readout="units", seed=1)
    arrays = list(net.params().values())
    kw = {"activation": "tanh"} if cell == "rnn" else {}
    over = type(net)._over(*arrays, readout="units", **kw)
    owned = type(net)(*arrays, readout="units", **kw)
    for a, b, c, d in zip(arrays, over.params().values(), owned.params().values(), over.copy().params().values()):
        assert b is a and not np.shares_memory(c, a) and not np.shares_memory(d, a)
    x = np.ones((5, 2, 3))
    np.testing.assert_array_equal(fastrnn.forward(over, x).h, fastrnn.forward(owned, x).h)
    arrays[1][0, 0] = np.nan
    with pytest.raises(fastrnn.NonFiniteError, match=r"net\.W_(hh|rec) holds NaN"):
        fastrnn.forward(over, x)
