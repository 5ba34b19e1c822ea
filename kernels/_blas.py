"""Matrix products called straight into the BLAS: through a BLAS other than the one behind Numba's
``np.dot`` (``_cblas_sgemm_tn``), and through that one with row strides ``np.dot`` does not take
(``gemm_into``, and ``gemm_tn_into`` for a^T @ b).

Numba's ``np.dot`` calls the BLAS that SciPy's bindings load (OpenBLAS 0.3.30 in SciPy 1.17's
wheels). NumPy 2's wheels bring their own OpenBLAS, often a newer one, and on this project's machine
(AMD EPYC, AVX-512, one thread) NumPy's OpenBLAS 0.3.31 ran the float32 weight-gradient product
D^T [x | h] faster than SciPy's 0.3.30: whole ``bptt._weight_grads`` calls 4-11 % faster at the
training-step table's shapes (76-94 against 84-99 GFLOP/s; ``python bench/weight_grads.py``,
``bench/results/2026-11-26-weight-gradient-blas.md``). Float64 and the per-step panel products ran level
through either (ad hoc scripts, not kept) and keep ``np.dot``. ``fastrnn.runtime.blas.sgemm_address``
finds that library's CBLAS ``sgemm`` (the 64-bit-integer build NumPy ships); the kernels receive its
address as a number, so their on-disk cache holds no address of this process.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas, make_constant_slot

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


@intrinsic
def _cblas_sgemm_tn(typingctx, address, M, N, K, a, lda, b, ldb, c, ldc):
    """c (M, N) = a^T @ b through the ILP64 CBLAS sgemm at ``address``: a (K, M) with row stride
    lda, b (K, N) with row stride ldb, c with row stride ldc, all row-major float32; the pointers
    are passed as integers (``arr.ctypes.data``)."""
    sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64,
                     types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        f32, ptr = ir.FloatType(), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64])
        address, M, N, K, a, lda, b, ldb, c, ldc = args
        fn = builder.inttoptr(address, fnty.as_pointer())
        builder.call(fn, [ir.Constant(i32, _ROW_MAJOR), ir.Constant(i32, _TRANS), ir.Constant(i32, _NO_TRANS),
                          M, N, K, ir.Constant(f32, 1.0), builder.inttoptr(a, ptr), lda,
                          builder.inttoptr(b, ptr), ldb, ir.Constant(f32, 0.0), builder.inttoptr(c, ptr), ldc])
        return context.get_dummy_value()

    return sig, codegen


def _gemm_codegen(trans_a):
    """The code of ``gemm_into`` (``trans_a`` False) and ``gemm_tn_into`` (True)."""
    def codegen(context, builder, signature, args):
        aty, bty, cty = signature.args
        A = context.make_array(aty)(context, builder, args[0])
        B = context.make_array(bty)(context, builder, args[1])
        C = context.make_array(cty)(context, builder, args[2])
        a0, a1 = cgutils.unpack_tuple(builder, A.shape, 2)
        m, k = (a1, a0) if trans_a else (a0, a1)
        n = cgutils.unpack_tuple(builder, B.shape, 2)[1]
        size = context.get_constant(types.intp, aty.dtype.bitwidth // 8)
        lda, ldb, ldc = (builder.sdiv(cgutils.unpack_tuple(builder, X.strides, 2)[0], size) for X in (A, B, C))
        char, intp, vp = ir.IntType(8), context.get_value_type(types.intp), cgutils.voidptr_t
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, vp, vp, intp, vp, intp, vp, vp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        one = builder.bitcast(make_constant_slot(context, builder, aty.dtype, 1.0), vp)
        zero = builder.bitcast(make_constant_slot(context, builder, aty.dtype, 0.0), vp)
        kind = ir.Constant(char, ord("s" if aty.dtype == types.float32 else "d"))
        plain = ir.Constant(char, ord("n"))
        second = ir.Constant(char, ord("t" if trans_a else "n"))
        builder.call(fn, (kind, plain, second, n, m, k, one, builder.bitcast(B.data, vp), ldb,
                          builder.bitcast(A.data, vp), lda, zero, builder.bitcast(C.data, vp), ldc))
        return context.get_dummy_value()
    return codegen


def _gemm_types(a, b, c):
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in (a, b, c)):
        return False
    if not (a.dtype == b.dtype == c.dtype) or a.dtype not in (types.float32, types.float64):
        return False
    ensure_blas()
    return True


@intrinsic
def gemm_into(typingctx, a, b, c):
    """c (m, n) = a (m, k) @ b (k, n) for 2-d arrays of one float dtype whose rows are contiguous
    (unit stride along them; the caller guarantees it) with any row strides: c may be a block of
    columns of a wider array, which ``np.dot`` cannot write (it asks for a contiguous ``out``).
    The call goes where Numba's own ``np.dot`` goes, its helper ``numba_xxgemm`` (column-major
    BLAS gemm from SciPy's bindings, the BLAS on one thread as for ``np.dot``), with the row-major
    product turned round as Numba turns it: c^T = b^T a^T."""
    if not _gemm_types(a, b, c):
        return None
    return types.void(a, b, c), _gemm_codegen(False)


@intrinsic
def gemm_tn_into(typingctx, a, b, c):
    """c (m, n) = a^T @ b for a (k, m), b (k, n), c (m, n) under the same rules as ``gemm_into``
    (rows contiguous, any row strides): c may have rows longer than n (a padded leading
    dimension)."""
    if not _gemm_types(a, b, c):
        return None
    return types.void(a, b, c), _gemm_codegen(True)
