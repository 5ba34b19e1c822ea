"""Per-row pieces of the kernels: the row views that hold no reference (``kernels._rows.borrow`` and
``borrow2``), whose values are those of NumPy's own indexing in every layout, and the LSTM's gate deltas
(``kernels._lstm_cell.gate_deltas``) against SPEC §6's formula."""
import numba
import numpy as np
import pytest

from fastrnn.kernels._activations import constants
from fastrnn.kernels._lstm_cell import gate_deltas
from fastrnn.kernels._rows import borrow, borrow2


@numba.njit(cache=False)
def _sum_rows(a):
    """sum over i, k of (k + 1) * a[i, k], each row read through ``borrow``."""
    total = 0.0
    for i in range(a.shape[0]):
        row = borrow(a, i)
        for k in range(row.shape[0]):
            total += (k + 1) * row[k]
    return total


@numba.njit(cache=False)
def _copy_rows2(a, out):
    """out[i, j] = a[i, j] (the last axis), each row taken through ``borrow2``."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            src = borrow2(a, i, j)
            dst = borrow2(out, i, j)
            for k in range(src.shape[0]):
                dst[k] = src[k]


@numba.njit(cache=False)
def _scale_row(a, i, factor):
    """a[i] *= factor through a borrowed view of a 2-d array, and a[i]'s sum read back through another."""
    row = borrow(a, i)
    for k in range(row.shape[0]):
        row[k] *= factor
    return borrow(a, i).sum()


@numba.njit(cache=False)
def _blocks(a, i):
    """A 2-d block from a 3-d array: borrow(a, i) keeps the last two axes."""
    block = borrow(a, i)
    return block.shape[0], block.shape[1], block[1, 2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_borrowed_rows_read_what_numpy_indexing_reads(dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 7)).astype(dtype)
    weights = np.arange(1, 8)
    assert _sum_rows(a) == pytest.approx(float((a.astype(np.float64) * weights).sum()), rel=1e-6)
    strided = rng.standard_normal((6, 14)).astype(dtype)[::2, ::2]     # layout 'A': both axes strided
    assert not strided.flags.c_contiguous
    assert _sum_rows(strided) == pytest.approx(float((strided.astype(np.float64) * weights).sum()), rel=1e-6)
    readonly = a.copy()
    readonly.flags.writeable = False
    assert _sum_rows(readonly) == pytest.approx(float((a.astype(np.float64) * weights).sum()), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_borrow2_copies_every_row_of_a_3d_array(dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 3, 9)).astype(dtype)
    out = np.full_like(a, np.nan)
    _copy_rows2(a, out)
    np.testing.assert_array_equal(out, a)
    view = rng.standard_normal((8, 3, 18)).astype(dtype)[::2, :, 1::2]  # strided on the first and last axes
    out = np.full(view.shape, np.nan, dtype)
    _copy_rows2(view, out)
    np.testing.assert_array_equal(out, view)


def test_writes_through_a_borrowed_view_reach_the_array_and_nothing_else():
    a = np.arange(12.0).reshape(3, 4)
    before = a.copy()
    assert _scale_row(a, 1, 2.0) == 2.0 * before[1].sum()
    expected = before.copy()
    expected[1] *= 2.0
    np.testing.assert_array_equal(a, expected)


def test_borrow_of_a_3d_array_keeps_the_last_two_axes():
    a = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    assert _blocks(a, 1) == (3, 4, a[1, 1, 2])


def test_borrow_refuses_arrays_without_an_axis_left():
    @numba.njit(cache=False)
    def whole(v):
        return borrow(v, 0)

    @numba.njit(cache=False)
    def whole2(v):
        return borrow2(v, 0, 0)

    with pytest.raises(numba.core.errors.TypingError):
        whole(np.zeros(3))
    with pytest.raises(numba.core.errors.TypingError):
        whole2(np.zeros((3, 3)))


@numba.njit(cache=False)
def _deltas(gr, dout, out_now, c_prev, dc, dl):
    gate_deltas(gr, dout, out_now, c_prev, dc, dl, constants(dout))


def _deltas_by_formula(gr, dout, c_now, c_prev, dc):
    """SPEC §6's delta_t and dc_t f_t in float64, with tanh(c_t) itself."""
    n = dout.shape[0]
    i, f, g, o = (gr[k * n:(k + 1) * n].astype(np.float64) for k in range(4))
    tc = np.tanh(c_now.astype(np.float64))
    d = dc + dout * o * (1 - tc * tc)
    dl = np.concatenate([d * g * i * (1 - i), d * c_prev * f * (1 - f), d * i * (1 - g * g), dout * tc * o * (1 - o)])
    return dl, d * f


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-5)])
def test_gate_deltas_take_tanh_of_c_from_the_stored_output(dtype, rtol):
    """gate_deltas reads tanh(c_t) as out / o from the forward step's stored out = o tanh(c_t): the
    deltas agree with the formula that takes tanh(c_t) itself, over gates from 1e-30 to 1 - 1e-7."""
    rng = np.random.default_rng(2)
    n = 37
    gr = rng.uniform(0.02, 0.98, 4 * n)
    gr[3 * n:3 * n + 5] = [1e-30, 1e-12, 1e-6, 0.5, 1 - 1e-7]        # output gates near both ends
    c_now, c_prev = rng.standard_normal(n) * 3, rng.standard_normal(n)
    dout, dc_in = rng.standard_normal(n), rng.standard_normal(n)
    gr, c_now, c_prev, dout, dc_in = (a.astype(dtype) for a in (gr, c_now, c_prev, dout, dc_in))
    out_now = (gr[3 * n:] * np.tanh(c_now)).astype(dtype)
    dc, dl = dc_in.copy(), np.full(4 * n, np.nan, dtype)
    _deltas(gr, dout, out_now, c_prev, dc, dl)
    want_dl, want_dc = _deltas_by_formula(gr, dout.astype(np.float64), c_now, c_prev.astype(np.float64),
                                          dc_in.astype(np.float64))
    scale = np.max(np.abs(want_dl))
    np.testing.assert_allclose(dl, want_dl, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(dc, want_dc, rtol=rtol, atol=rtol * np.max(np.abs(want_dc)))


def test_gate_deltas_with_a_closed_output_gate_stay_finite():
    """An output gate of exactly 0 (NumPy's float32 logistic below -88: ``resume``) stores out = 0: the
    quotient out / o is taken as 0, where every term that reads it is multiplied by o."""
    n = 4
    gr = np.full(4 * n, 0.5, np.float32)
    gr[3 * n:] = 0.0
    dout = np.ones(n, np.float32)
    dc, dl = np.full(n, 0.25, np.float32), np.full(4 * n, np.nan, np.float32)
    _deltas(gr, dout, np.zeros(n, np.float32), np.ones(n, np.float32), dc, dl)
    want_dl, want_dc = _deltas_by_formula(gr, dout.astype(np.float64), np.full(n, 5.0), np.ones(n), np.full(n, 0.25))
    np.testing.assert_array_equal(dl[3 * n:], 0)
    np.testing.assert_allclose(dl, want_dl, rtol=1e-6)
    np.testing.assert_allclose(dc, want_dc, rtol=1e-6)
