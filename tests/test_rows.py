"""The kernels' row views that hold no reference (``kernels._rows.borrow`` and ``borrow2``): the values a
kernel reads and writes through them are those of NumPy's own indexing, in every layout."""
import numba
import numpy as np
import pytest

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
