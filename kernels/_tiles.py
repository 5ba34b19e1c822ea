"""The per-step recurrent product in compiled register tiles, for BLAS builds that pack every call.

OpenBLAS multiplies small products without copying ("packing") its operands only in its AVX-512
builds (the SkylakeX, Cooperlake and Sapphire Rapids cores: its "small matrix" kernels). Every other
core it runs — Haswell and Zen alike, the AVX2 machines most servers still are — packs the weight
matrix inside every call, and a step's product h (rows, K) @ W (K, N) is too small to repay it: on an
AVX2 AMD EPYC (Zen 3, OpenBLAS's Haswell kernels) the kernels' BLAS products ran at 10-47 GFLOP/s in
float32 against 75 for one thread's GEMM, most under 20, the tiles 51-89 (``python bench/register_block.py``,
``bench/results/2026-11-26-tiles-avx2.md``). The weights are fixed for a whole call, so they are cut
once into panels TILE_BYTES wide (``_panels.cut_panels``) and each step multiplies them here, a tile
of ROWS rows by one panel at a time, with every sum kept in vector registers over the whole of
K: per k, the panel's row is loaded once, each row's value of h broadcast, one fused multiply-add a
register. Numba cannot be asked for such code (its loop vectoriser vectorises the sums over k, and
the SLP vectoriser that would pack scalar accumulators is off process-wide), so the tile is written
in LLVM's own vector types (``_tile``): LLVM picks the instructions for the machine it compiles on
(AVX2, AVX-512, NEON), nothing here names an instruction set.

Which products a call takes this way is decided by ``fastrnn.runtime.blas.step_products`` and
reaches the kernels as their ``split`` argument (``TILES``).
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import _jit

TILES = 0            # the kernels' ``split`` argument at B > 1: the products in tiles (1: the BLAS's)
TILE_BYTES = 64      # a panel's width: two vectors of 32 bytes (16 float32 or 8 float64 columns)
ROWS = 4             # rows of h a tile takes at a time (4 x 2 accumulator registers)
_VECTORS = 2         # vectors across a panel


def _tile_codegen(rows):
    """The code of a tile of ``rows`` rows: c (rows, w) = a (rows, K) @ p (K, w), all row-major,
    a with row stride lda, p contiguous (w = TILE_BYTES of columns), c with row stride ldc."""
    def codegen(context, builder, signature, args):
        fty = context.get_value_type(signature.args[0].dtype)
        size = signature.args[0].dtype.bitwidth // 8
        lanes = TILE_BYTES // _VECTORS // size
        vty = ir.VectorType(fty, lanes)
        a_arr, lda, p_arr, K, c_arr, ldc = args
        A = context.make_array(signature.args[0])(context, builder, a_arr).data
        P = context.make_array(signature.args[2])(context, builder, p_arr).data
        C = context.make_array(signature.args[4])(context, builder, c_arr).data
        name = f"llvm.fmuladd.v{lanes}f{size * 8}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), name)
        zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * lanes)
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(_VECTORS)] for _ in range(rows)]
        width = ir.Constant(K.type, lanes * _VECTORS)
        mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
        with cgutils.for_range(builder, K) as loop:
            k = loop.index
            row = builder.gep(P, [builder.mul(k, width)])
            bvec = [builder.load(builder.bitcast(builder.gep(row, [ir.Constant(K.type, v * lanes)]),
                                                 vty.as_pointer()), align=size)
                    for v in range(_VECTORS)]
            for r in range(rows):
                s = builder.load(builder.gep(A, [builder.add(builder.mul(ir.Constant(K.type, r), lda), k)]))
                splat = builder.shuffle_vector(builder.insert_element(ir.Constant(vty, ir.Undefined), s,
                                                                      ir.Constant(ir.IntType(32), 0)),
                                               ir.Constant(vty, ir.Undefined), mask)
                for v in range(_VECTORS):
                    builder.store(builder.call(fma, [splat, bvec[v], builder.load(accs[r][v])]), accs[r][v])
        for r in range(rows):
            crow = builder.gep(C, [builder.mul(ir.Constant(K.type, r), ldc)])
            for v in range(_VECTORS):
                ptr = builder.bitcast(builder.gep(crow, [ir.Constant(K.type, v * lanes)]), vty.as_pointer())
                builder.store(builder.load(accs[r][v]), ptr, align=size)
        return context.get_dummy_value()
    return codegen


def _tile_intrinsic(rows):
    def typer(typingctx, a, lda, p, K, c, ldc):
        if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)):
            return None
        return types.void(a, lda, p, K, c, ldc), _tile_codegen(rows)
    typer.__name__ = f"_tile{rows}"
    return intrinsic(typer)


_tile = _tile_intrinsic(ROWS)     # one shape only: fewer rows go through a zero-padded copy (compile time)


@_jit
def tile_products(a, P, out, edge, pad):
    """out (rows, N) = a (rows, K) @ WT, WT given as panels P (1, count, K, w) of w = TILE_BYTES
    columns (the last zero-padded): each panel by every block of ROWS rows in turn while it is in
    cache. a's rows may have any stride; out is C-contiguous. The last rows (fewer than ROWS) are
    multiplied from a copy in ``pad`` (ROWS, K), and the last panel's columns beyond N and those rows
    go through the scratch tile ``edge`` (ROWS, w); both are the caller's, made once a call
    (``_panels.panel_scratch``), not once a step; ``pad``'s other rows only reach rows of ``edge``
    that are never copied out. One tile shape, compiled once per dtype and layout and called, not inlined
    into every kernel (as ``_panels._products``), so that each kernel's first compilation stays short."""
    rows, K = a.shape
    N = out.shape[1]
    count, w = P.shape[1], P.shape[3]
    lda = a.strides[0] // a.itemsize
    ldc = out.strides[0] // out.itemsize
    whole = rows - rows % ROWS
    for r in range(rows - whole):
        pad[r] = a[whole + r]
    for p in range(count):
        j0 = p * w
        panel = P[0, p]
        wj = min(w, N - j0)
        for r0 in range(0, whole, ROWS):
            if wj == w:
                _tile(a[r0:], lda, panel, K, out[r0:, j0:], ldc)
            else:
                _tile(a[r0:], lda, panel, K, edge, w)
                for r in range(ROWS):
                    for j in range(wj):
                        out[r0 + r, j0 + j] = edge[r, j]
        if whole < rows:
            _tile(pad, K, panel, K, edge, w)
            for r in range(rows - whole):
                for j in range(wj):
                    out[whole + r, j0 + j] = edge[r, j]
