"""Bad input gets a clear fastrnn error naming the argument; inputs are never written."""
import numpy as np
import pytest

import fastrnn
from fastrnn import DTypeError, NonFiniteError, OptionError, ShapeError

from conftest import assert_grads_close, make_problem


@pytest.fixture
def p():
    return make_problem(21, T=5, B=2, m=3, n=4, o=2)


def test_errors_are_standard_subclasses():
    assert issubclass(ShapeError, ValueError) and issubclass(NonFiniteError, ValueError)
    assert issubclass(OptionError, ValueError) and issubclass(DTypeError, TypeError)
    assert issubclass(fastrnn.ValidationError, fastrnn.FastRNNError)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((5, 3)), r"x has shape \(5, 3\) \(2-d\) but must be \(T, B, m\)"),
    (np.zeros((5, 2, 4)), r"x has shape \(5, 2, 4\) but must be \(T, B, m\) = \(…, …, 3\)"),
    (np.zeros((0, 2, 3)), r"x has shape \(0, 2, 3\): every axis"),
    (np.zeros((5, 0, 3)), r"x has shape \(5, 0, 3\): every axis"),
])
def test_x_shape(p, bad, match):
    net, _, d, _, _ = p
    with pytest.raises(ShapeError, match=match):
        fastrnn.forward(net, bad)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((5, 2, 3), dtype=np.float32), r"x has dtype float32 but the network computes in float64.*astype\(np.float64\)"),
    (np.zeros((5, 2, 3), dtype=np.int64), r"x has dtype int64 but must be float64 or float32"),
    (np.zeros((5, 2, 3), dtype=complex), r"x has dtype complex128"),
    (np.zeros((5, 2, 3), dtype=bool), r"x has dtype bool"),
    (np.empty((5, 2, 3), dtype=object), r"x has dtype object"),
    (None, r"x is None"),
])
def test_x_dtype(p, bad, match):
    net, _, d, _, _ = p
    with pytest.raises(DTypeError, match=match):
        fastrnn.bptt(net, bad, d)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_arrays_pass_as_they_are_and_everything_else_is_read_or_refused(dtype):
    """``checks.float_array``: a plain array of a native float dtype comes back itself (no copy, no
    conversion: its fast path); lists, other byte orders and subclasses go the long way, read into a
    native array of the same values or refused by name."""
    from fastrnn import checks
    other = np.float32 if dtype == np.float64 else np.float64
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    assert checks.float_array("x", a) is a
    assert checks.float_array("x", a, dtype) is a
    strided = a[:, ::2]
    assert checks.float_array("x", strided) is strided          # a view as it is: layout is for contiguous()
    swapped = a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder != ">" else "<"))
    native = checks.float_array("x", swapped, dtype)
    assert native.dtype == np.dtype(dtype) and native.dtype.isnative and np.array_equal(native, a)
    listed = checks.float_array("x", [[0.0, 1.0], [2.0, 3.0]])
    assert listed.dtype == np.float64 and np.array_equal(listed, [[0, 1], [2, 3]])
    with pytest.raises(DTypeError, match=rf"x has dtype {np.dtype(dtype).name} but the network computes in "
                                         rf"{np.dtype(other).name}"):
        checks.float_array("x", a, other)
    with pytest.raises(DTypeError, match=r"x is a numpy masked array"):
        checks.float_array("x", np.ma.masked_array(a))
    with pytest.raises(DTypeError, match=r"x has dtype int64 but must be float64 or float32"):
        checks.float_array("x", a.astype(np.int64), dtype)


@pytest.mark.parametrize("where", ["x", "d", "h0", "W_rec", "W_in", "b"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite(p, where, value):
    net, x, d, _, h0 = p
    args = {"x": x.copy(), "d": d.copy(), "h0": h0.copy()}
    if where in args:
        args[where][0, 0] = value
        name = where
    else:
        getattr(net, where).flat[0] = value
        name = f"net.{where}"
    with pytest.raises(NonFiniteError, match=rf"{name}.* holds NaN or infinity"):
        fastrnn.bptt(net, args["x"], args["d"], h0=args["h0"])


def test_non_finite_weights_at_construction():
    with pytest.raises(NonFiniteError, match="W_rec holds NaN"):
        fastrnn.RNN(np.zeros((2, 1)), np.array([[np.nan, 0], [0, 0]]), np.zeros(2))


def test_mixed_dtypes_in_network():
    with pytest.raises(DTypeError, match=r"W_in has dtype float32 but the network computes in float64"):
        fastrnn.RNN(np.zeros((2, 1), np.float32), np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(DTypeError, match=r"b has dtype int64"):
        fastrnn.RNN(np.zeros((2, 1)), np.zeros((2, 2)), np.zeros(2, dtype=np.int64))


def test_network_shapes():
    with pytest.raises(ShapeError, match=r"W_rec has shape \(2, 3\) but must be \(n, n\)"):
        fastrnn.RNN(np.zeros((2, 1)), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ShapeError, match=r"W_in has shape \(3, 1\) but must be \(n, m\) = \(2, …\)"):
        fastrnn.RNN(np.zeros((3, 1)), np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ShapeError, match=r"b has shape \(3,\)"):
        fastrnn.RNN(np.zeros((2, 1)), np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(ShapeError, match=r"W_out has shape \(2, 3\) but must be \(n_out, n\)"):
        fastrnn.RNN(np.zeros((2, 1)), np.zeros((2, 2)), np.zeros(2), np.zeros((2, 3)), readout="linear")


def test_weight_changed_to_wrong_shape_after_construction(p):
    net, x, d, _, _ = p
    net.W_rec = np.zeros((3, 3))
    with pytest.raises(ShapeError, match=r"net.W_rec has shape \(3, 3\) but the network needs \(4, 4\)"):
        fastrnn.bptt(net, x, d)


@pytest.mark.parametrize("kwargs,match", [
    (dict(activation="sigmoid"), r"activation='sigmoid' is not known: choose one of 'tanh', 'logistic', 'relu', 'identity'"),
    (dict(readout="dense"), r"readout='dense' is not known: choose one of 'units', 'linear'"),
    (dict(out_activation="softplus"), r"out_activation='softplus' is not known"),
    (dict(out_activation="softmax"), r"needs readout='linear'"),
    (dict(n_out=9), r"n_out=9 but the network has only n=4 units"),
    (dict(out_units=[0, 0]), r"out_units must be distinct"),
    (dict(out_units=[7]), r"out_units must be distinct unit indices in \[0, 4\)"),
])
def test_network_options(kwargs, match):
    with pytest.raises(OptionError, match=match):
        fastrnn.RNN(np.zeros((4, 1)), np.zeros((4, 4)), np.zeros(4), **kwargs)


def test_init_options():
    with pytest.raises(OptionError, match=r"n_hidden must be an integer >= 1, got 0"):
        fastrnn.RNN.init(2, 0, 1)
    with pytest.raises(DTypeError, match=r"dtype must be float64 or float32, got float16"):
        fastrnn.RNN.init(2, 3, 1, dtype=np.float16)


def test_unknown_loss_lists_the_valid_ones(p):
    net, x, d, _, _ = p
    with pytest.raises(OptionError, match=r"loss='l2' is not known: choose one of 'mse', 'xent', 'bce'"):
        fastrnn.bptt(net, x, d, loss="l2")


@pytest.mark.parametrize("truncation,match", [
    (0, r"truncation must be an integer >= 1, got 0"),
    (-3, r"truncation must be an integer >= 1, got -3"),
    ((2, 5), r"needs h >= h_prime"),
    ((3, 0), r"truncation h_prime must be an integer >= 1, got 0"),
    ((1, 2, 3), r"pair \(h, h_prime\)"),
    (2.5, r"truncation must be an integer >= 1, got 2.5"),
    (True, r"truncation must be an integer"),
])
def test_bad_truncation(p, truncation, match):
    net, x, d, _, _ = p
    with pytest.raises(OptionError, match=match):
        fastrnn.bptt(net, x, d, truncation=truncation)


def test_class_ids_out_of_range():
    net, x, _, _, _ = make_problem(22, 5, 2, 3, 4, 3, readout="linear", loss="xent")
    d = np.zeros((5, 2), dtype=np.int64)
    d[3, 1] = 3
    with pytest.raises(OptionError, match=r"d holds class id 3 but the network has 3 outputs"):
        fastrnn.bptt(net, x, d, loss="xent")
    d[3, 1] = -1
    with pytest.raises(OptionError, match=r"class id -1"):
        fastrnn.bptt(net, x, d, loss="xent")
    mask = np.ones((5, 2), bool)
    mask[3, 1] = False   # a masked-out step may hold any id (padding)
    L, _ = fastrnn.bptt(net, x, d, mask, loss="xent")
    assert np.isfinite(L)
    with pytest.raises(DTypeError, match=r"d has dtype float64 but loss='xent' takes integer class ids"):
        fastrnn.bptt(net, x, d.astype(float), loss="xent")


def test_bce_targets_outside_unit_interval():
    net, x, d, _, _ = make_problem(23, 5, 2, 3, 4, 2, readout="linear", loss="bce", out_activation="logistic")
    d = d.copy()
    d[0, 0, 0] = 2.0
    with pytest.raises(OptionError, match=r"d must lie in \[0, 1\]"):
        fastrnn.bptt(net, x, d, loss="bce")


def test_loss_and_out_activation_mismatch():
    net, x, d, _, _ = make_problem(24, 5, 2, 3, 4, 2, readout="linear", out_activation="tanh")
    with pytest.raises(OptionError, match=r"loss='xent' applies softmax"):
        fastrnn.bptt(net, x, np.zeros((5, 2), int), loss="xent")
    with pytest.raises(OptionError, match=r"loss='bce' applies the logistic"):
        fastrnn.bptt(net, x, d, loss="bce")


@pytest.mark.parametrize("mask,exc,match", [
    (np.ones((5, 2, 3)), ShapeError, r"mask has shape \(5, 2, 3\) but must be \(T, B, o\) or \(T, B\) = \(5, 2, 2\)"),
    (np.ones((5, 3)), ShapeError, r"mask has shape \(5, 3\)"),
    (np.full((5, 2, 2), 0.5), OptionError, r"mask must hold only 0 and 1"),
    (np.ones((5, 2, 2), np.float32), DTypeError, r"mask has dtype float32"),
])
def test_bad_mask(p, mask, exc, match):
    net, x, d, _, _ = p
    with pytest.raises(exc, match=match):
        fastrnn.bptt(net, x, d, mask)


def test_bad_targets_and_h0(p):
    net, x, d, _, h0 = p
    with pytest.raises(ShapeError, match=r"d has shape \(5, 2\) \(2-d\) but must be \(T, B, o\) targets"):
        fastrnn.bptt(net, x, d[..., 0])
    with pytest.raises(ShapeError, match=r"h0 has shape \(4,\) \(1-d\) but must be \(B, n\) = \(2, 4\)"):
        fastrnn.bptt(net, x, d, h0=h0[0])
    with pytest.raises(DTypeError, match=r"d has dtype float32"):
        fastrnn.bptt(net, x, d.astype(np.float32))


def test_teacher_forcing_needs_units_and_mse():
    net, x, d, _, _ = make_problem(25, 5, 2, 3, 4, 2, readout="linear")
    with pytest.raises(OptionError, match=r"teacher_forcing=True .* needs readout='units' and loss='mse'"):
        fastrnn.bptt(net, x, d, teacher_forcing=True)


def test_net_must_be_an_rnn(p):
    _, x, d, _, _ = p
    with pytest.raises(OptionError, match=r"net must be a fastrnn network \(fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU, fastrnn.LSTMP\), got dict"):
        fastrnn.bptt({}, x, d)


def test_read_only_and_non_contiguous_inputs_are_accepted_and_untouched(p):
    net, x, d, mask, h0 = p
    L_ref, g_ref = fastrnn.bptt(net, x, d, mask, h0=h0)
    # the same values, as a strided view of a bigger array and as read-only arrays
    big = np.zeros((5, 2, 6))
    big[:, :, ::2] = x
    x_view = big[:, :, ::2]
    assert not x_view.flags.c_contiguous
    d_ro, h0_ro, mask_ro = d.copy(), np.asfortranarray(h0), mask.copy()
    for a in (d_ro, h0_ro, mask_ro, big):
        a.setflags(write=False)
    before = [a.copy() for a in (x_view, d_ro, h0_ro, mask_ro)]
    weights_before = {k: v.copy() for k, v in net.params().items()}
    L, g = fastrnn.bptt(net, x_view, d_ro, mask_ro, h0=h0_ro, validate=True)
    assert L == L_ref
    assert_grads_close(g, g_ref, np.float64)
    for a, b in zip((x_view, d_ro, h0_ro, mask_ro), before):
        np.testing.assert_array_equal(a, b)
    for k, v in net.params().items():
        np.testing.assert_array_equal(v, weights_before[k])


def test_network_copies_its_weights():
    W_in, W_rec, b = np.ones((2, 1)), np.eye(2) * 0.5, np.zeros(2)
    net = fastrnn.RNN(W_in, W_rec, b)
    net.W_rec *= 2
    np.testing.assert_array_equal(W_rec, np.eye(2) * 0.5)
