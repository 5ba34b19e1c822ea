"""A matrix product through a BLAS other than the one behind Numba's ``np.dot``.

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
from numba.extending import intrinsic

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
