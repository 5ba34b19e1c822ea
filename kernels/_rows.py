"""Per-row arithmetic shared by the backward sweeps of every cell, and the row views the kernels read.

A view of an array in compiled code (``h[t, b]``, ``rec[bb]``) counts a reference to the array's memory:
Numba increments the count as the view is made and decrements it as the view goes, each an atomic
instruction in a function call, and an atomic instruction also holds back the loads and stores
around it. The kernels take several such views of every batch row at every step, so at small n the
counts cost as much as the row's arithmetic: the LSTM's gate deltas over 8 rows of 32 units ran at
4.6 ns a unit through plain views and at 2.6 through views that count nothing (``borrow``; rows of
128 units: 2.6 against 1.9; float32, one AMD EPYC thread, ad hoc). A kernel holds its arrays for the whole
call, longer than any view of a row, so the counts protect nothing there.

The kernels read rows through ``borrow`` and ``borrow2``, and write through them where that measured
no slower: the sweeps' scratch row of the arriving error, the forward rows of the LSTM, the projected
LSTM and the simple cell.
The other rows a loop writes keep Numba's own views, since borrowing them measured slower (below).
Whole kernels, borrowed over plain, medians of 300 interleaved calls of each serial kernel, one thread,
T=100 ("all": every row borrowed):

    float32, n=32 B=32:  LSTM forward 0.96 (all), sweep 0.78; GRU forward 0.93, sweep 0.75-0.76;
                         simple cell forward 0.93-0.95 (all), sweep 0.65-0.68
    float32, n=128 B=8:  LSTM forward 0.99-1.00 (all), sweep 0.93-0.96; GRU forward 0.98, sweep 0.97-0.98;
                         simple cell forward 0.99 (all), sweep 0.94
    float64:             0.83-1.00 at both sizes
    written rows borrowed too where they are not above: the GRU forward's gate row 1.45 (n=32) and
                         1.08 (n=128), the LSTM sweep's delta row 1.09-1.12 (n=128), the GRU sweep's
                         delta rows 0.74 of the old time (n=32) where the reads alone gave 0.68, so those
                         stay plain.

The register tiles (``_tiles``) take their operands' rows and panels the same way (0.98-0.99 of the
time a product, float32, 8-32 rows, K and N from 32 to 512, ad hoc).

Caution (``_jit``): after editing this file, delete ``kernels/__pycache__``.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

from ._jit import helper


@helper
def arriving(out, back, g, inject):
    """The error arriving at a state in a backward sweep: out = back + g where the loss injects g
    at this step (``inject``), out = back otherwise. One short loop each, so that LLVM vectorises it."""
    n = out.shape[0]
    if inject:
        for k in range(n):
            out[k] = back[k] + g[k]
    else:
        for k in range(n):
            out[k] = back[k]


@helper
def copy_columns(dst, dst_col, src, src_col, width):
    """dst[r0:r1, dst_col:dst_col + width] = src[r0:r1, src_col:src_col + width] for every row of
    dst (2-d arrays, the same number of rows), one row view at a time. Numba's slice assignment
    between two 2-d column blocks walks them element by element through a generic iterator:
    float32 (512, 32) and (512, 128) blocks out of a (512, 160) array took 33 us so, 7-10 us row
    by row (2048 rows: 462 against 101 us; ad hoc, one thread). Each row's block is taken as a
    1-d slice: indexing the whole rows at ``dst_col + j`` and ``src_col + j`` ran at the slow rate."""
    for i in range(dst.shape[0]):
        d = dst[i, dst_col:dst_col + width]
        s = src[i, src_col:src_col + width]
        for j in range(width):
            d[j] = s[j]


def _borrow_codegen(count):
    """The code of ``borrow`` (count = 1) and ``borrow2`` (2): a's leading ``count`` indices taken,
    the rest of a as an array structure with no meminfo and no parent."""
    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, arr.shape)
        strides = cgutils.unpack_tuple(builder, arr.strides)
        offset = context.get_constant(types.intp, 0)
        for d in range(count):
            index = context.cast(builder, args[1 + d], signature.args[1 + d], types.intp)
            offset = builder.add(offset, builder.mul(index, strides[d]))
        start = builder.gep(builder.bitcast(arr.data, cgutils.voidptr_t), [offset])
        out = context.make_array(signature.return_type)(context, builder)
        populate_array(out, data=builder.bitcast(start, arr.data.type), shape=shape[count:],
                       strides=strides[count:], itemsize=arr.itemsize, meminfo=None)
        return out._getvalue()
    return codegen


def _borrowed_type(a, count):
    if not isinstance(a, types.Array) or a.ndim <= count:
        return None
    return a.copy(ndim=a.ndim - count, layout="C" if a.layout == "C" else "A")


@intrinsic
def borrow(typingctx, a, i):
    """a[i] for 0 <= i < a.shape[0] (not checked, no negative indices), as a view that holds no
    reference to a's memory: the kernels take a view of each batch row at every step, and Numba
    counts every view's references to its array with atomic instructions, an increment as it is
    made and a decrement as it goes, which also order the stores around them. The kernel holds a
    for longer than any view of it, so the count is not needed (the module's notes). The view must not
    leave the kernel (returned to Python, it would point at memory nothing keeps alive)."""
    ret = _borrowed_type(a, 1)
    if ret is None or not isinstance(i, types.Integer):
        return None
    return ret(a, i), _borrow_codegen(1)


@intrinsic
def borrow2(typingctx, a, i, j):
    """a[i, j] for 0 <= i < a.shape[0], 0 <= j < a.shape[1], as ``borrow``."""
    ret = _borrowed_type(a, 2)
    if ret is None or not (isinstance(i, types.Integer) and isinstance(j, types.Integer)):
        return None
    return ret(a, i, j), _borrow_codegen(2)


LINE_BYTES = 64        # the cache line ``prefetch_rows`` steps by (x86-64's; a longer line is asked for twice)
# LLVM's prefetch is named after its pointer type: typed (i8*, as Numba's own memset is declared, which LLVM
# versions with opaque pointers rename on reading) or opaque (ptr).
_PREFETCH = "llvm.prefetch.p0i8" if str(cgutils.voidptr_t).endswith("*") else "llvm.prefetch.p0"


@intrinsic
def _prefetch(typingctx, a, offset):
    """Ask the caches for the line holding element ``offset`` of a (C-contiguous, counted flat from its
    first element): LLVM's prefetch (read, all cache levels), which never faults and changes nothing."""
    if not isinstance(a, types.Array) or not isinstance(offset, types.Integer):
        return None
    sig = types.void(a, offset)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        address = builder.bitcast(cgutils.gep(builder, arr.data, index), cgutils.voidptr_t)
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32]), _PREFETCH)
        builder.call(fn, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return sig, codegen


@helper
def prefetch_rows(a, t, b0, b1):
    """Ask for the rows a[t, b0:b1] (a C-contiguous (T, B, n)) ahead of the step that reads or writes them.

    A backward sweep walks its arrays from the last step to the first; within a step it reads each row
    upwards, so the hardware's prefetchers fetch the rows after it, which were used a step before, and
    not the ones before it, which the next step needs: at B = 1 every step waited on its rows of g, h and
    D from the L3 cache. Asked for a step ahead, while the step's product runs, they are there in time
    (the simple cell's sweep: ``kernels.bptt``'s notes and ``bench/sweep_prefetch.py``)."""
    per = LINE_BYTES // a.itemsize
    width = a.shape[2]
    start = (t * a.shape[1] + b0) * width
    stop = start + (b1 - b0) * width
    for k in range(start, stop, per):
        _prefetch(a, k)
    _prefetch(a, stop - 1)           # the last line, where the rows do not start on a line
