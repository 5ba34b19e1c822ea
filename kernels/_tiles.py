"""The per-step recurrent product in compiled register tiles, for BLAS builds that pack every call.

OpenBLAS multiplies small products without copying ("packing") its operands only in its AVX-512
builds (the SkylakeX, Cooperlake and Sapphire Rapids cores: its "small matrix" kernels). Every other
core it runs — Haswell and Zen alike, the AVX2 machines most servers still are — packs the weight
matrix inside every call, and a step's product h (rows, K) @ W (K, N) is too small to repay it: on an
AVX2 AMD EPYC (Zen 3, OpenBLAS's Haswell kernels) the kernels' BLAS products ran at 10-47 GFLOP/s in
float32 against 75 for one thread's GEMM, most under 20, the tiles 51-89 (``python bench/register_block.py``,
``bench/results/2026-11-26-tiles-avx2.md``). The weights are fixed for a whole call, so they are cut
once into panels ``tile_columns`` wide (``_panels.cut_panels``) and each step multiplies them here, a
tile of ROWS rows by one panel at a time, with every sum kept in vector registers over the whole of
K: per k, the panel's row is loaded once, each row's value of h broadcast, one fused multiply-add a
register. A float32 panel is two vectors wide (4 x 2 sums in registers), a float64 panel three
(4 x 3): the tile alone (K = 128; N = 128, 384 and 512; B = 8 and 32; one thread) ran in float64 at
1.02-1.17x the narrower one's rate with a narrower tile on the last panel (ad hoc) and 0.97-1.07x
with every panel whole (``python bench/tile_width.py``), and the float64 forward and backward kernels
took 0.94-1.01 of their time (``bench/results/2026-11-27-float64-wide-tiles.md``); in float32 0.95-1.13x
and 0.96-1.06x, below 1 at N = 128, not a multiple of its 24 columns. A few per cent either way.
Where the CPU has AVX-512 the tile takes 64-byte vectors, four wide in either dtype (4 x 4 sums in registers,
64 float32 or 32 float64 columns: ``TILE_BYTES``, ``native_vector_bytes``): on an AMD EPYC of family 26 (Zen 5,
whose AVX-512 units are 512 bits wide) the 32-byte tile ran at 96-117 GFLOP/s in float32 and 48-67 in float64,
the 64-byte one at 208-268 and 97-134 (``python bench/tile_width.py``, ``bench/results/2026-11-28-tile-width.md``),
and the float32 LSTM n=512 B=8 call at one thread took 33.3 ms instead of 48.7. Numba cannot be asked for such
code (its loop vectoriser vectorises the sums over k, and
the SLP vectoriser that would pack scalar accumulators is off process-wide), so the tile is written
in LLVM's own vector types (``_tile``): LLVM picks the instructions for the machine it compiles on
(AVX2, AVX-512, NEON), nothing here names an instruction set.

Which products a call takes this way is decided by ``fastrnn.runtime.blas.step_products`` and
reaches the kernels as their ``split`` argument (``TILES``).

A batch of one has a single row: its backward sweeps multiply the deltas by W (gates·n, n) as stored,
cut once a call into panels ROW_TILE_BYTES wide, each taken by a row tile of ROW_VECTORS sums
(``row_tile_products``; ``split=ROW_TILES``, where ``row_tiles_pay``): each panel one stream, where the
compiled loops of ``_panels`` read W's rows side by side (float32 W (512, 128) 2.7 us a product against
3.8-4.3, one thread, ad hoc). Whole backward sweeps gain less, 0.1 ms of 0.5 (float32 LSTM n=128), as
the states and deltas share the L2 cache with the weights (``bench/results/2026-11-26-row-tiles.md``).
The forward passes hand in W^T, a view of W, and take row tiles from a transposing copy where the state
has FORWARD_ROW_TILE_MIN_K units or more (``_panels.stored_rows``); below that they keep W's own rows
(``bench/results/2026-11-27-forward-row-tiles.md``).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import _jit, helper
from ._rows import borrow, borrow2


def native_vector_bytes():
    """The width of the widest vector registers of the CPU Numba compiles for: 64 bytes where it has AVX-512
    (``avx512f`` among LLVM's features for it, which LLVM reports only where the operating system keeps those
    registers), else 32. The CPU is this machine's, or the one NUMBA_CPU_NAME / NUMBA_CPU_FEATURES name (a
    name alone: 32)."""
    from numba.core import config
    if config.CPU_FEATURES:
        features = {f[1:] for f in config.CPU_FEATURES.split(",") if f.startswith("+")}
    elif config.CPU_NAME:
        features = set()
    else:
        from llvmlite import binding
        features = {name for name, present in binding.get_host_cpu_features().items() if present}
    return 64 if "avx512f" in features else 32


TILES = 0            # the kernels' ``split`` argument at B > 1: the products in tiles (1: the BLAS's)
TILE_BYTES = native_vector_bytes()   # a batch tile's vectors (its sums in the machine's widest registers)
TILE_VECTORS_32 = 4 if TILE_BYTES == 64 else 2   # a float32 panel's width in vectors of TILE_BYTES ...
TILE_VECTORS_64 = 4 if TILE_BYTES == 64 else 3   # ... and a float64 panel's: ``tile_columns``
ROWS = 4             # rows of h a tile takes at a time (4 x 2, 4 x 3 or 4 x 4 accumulator registers)
VECTOR_BYTES = 32    # a row tile's vectors (LLVM splits or joins them for the machine)
ROW_TILES = -1       # the kernels' ``split`` argument at B = 1: the products in row tiles (1: whole, >1: parts)
ROW_VECTORS = 8      # a batch of one: one row by panels of 8 vectors, 8 independent sums (FMA latency x units)
ROW_TILE_BYTES = ROW_VECTORS * VECTOR_BYTES
ROW_TILE_MIN_BYTES = 1 << 16      # row tiles for weights over this size ...
ROW_TILE_WEIGHT_BYTES = 1 << 19   # ... up to this one (a core's L2 cache here) ...
ROW_TILE_MIN_STEPS = 8            # ... over at least this many steps (the copy into panels costs a few products)
FORWARD_ROW_TILE_MIN_K = 128      # a forward pass takes them too where the state has at least this many units


def _vector_types(context, builder, dtype, vector_bytes=None):
    """(size in bytes, lanes, LLVM vector type, its zero, fused multiply-add) for vectors of
    ``vector_bytes`` (VECTOR_BYTES if None) of ``dtype``."""
    fty = context.get_value_type(dtype)
    size = dtype.bitwidth // 8
    lanes = (vector_bytes or VECTOR_BYTES) // size
    vty = ir.VectorType(fty, lanes)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                         f"llvm.fmuladd.v{lanes}f{size * 8}")
    return size, lanes, vty, ir.Constant(vty, [ir.Constant(fty, 0.0)] * lanes), fma


def _broadcast(builder, vty, lanes, value):
    """A vector holding ``value`` in every lane."""
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


def _tile_codegen(rows, wide=None, vector_bytes=None, strided=False):
    """The code of a tile of ``rows`` rows: c (rows, w) = a (rows, K) @ p (K, w), a's element (r, k) at
    r·lda + k·ka (a row-major: ka = 1; a view of a row-major matrix turned round: lda = 1), p contiguous
    (w = ``tile_columns`` of columns, or ``wide`` vectors where given: ``bench/tile_width.py`` compares
    widths), c row-major with row stride ldc. ``strided``: p's rows ldp numbers apart (an argument after p:
    w columns of a row-major matrix read where they lie, ``strip_products``)."""
    def codegen(context, builder, signature, args):
        size, lanes, vty, zero, fma = _vector_types(context, builder, signature.args[0].dtype,
                                                     vector_bytes or TILE_BYTES)
        vectors = wide or (TILE_VECTORS_64 if size == 8 else TILE_VECTORS_32)
        if strided:
            a_arr, lda, ka, p_arr, width, K, c_arr, ldc = args
            c_at = 6
        else:
            a_arr, lda, ka, p_arr, K, c_arr, ldc = args
            width, c_at = ir.Constant(K.type, lanes * vectors), 5
        A = context.make_array(signature.args[0])(context, builder, a_arr).data
        P = context.make_array(signature.args[3])(context, builder, p_arr).data
        C = context.make_array(signature.args[c_at])(context, builder, c_arr).data
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)] for _ in range(rows)]
        with cgutils.for_range(builder, K) as loop:
            k = loop.index
            row = builder.gep(P, [builder.mul(k, width)])
            bvec = [builder.load(builder.bitcast(builder.gep(row, [ir.Constant(K.type, v * lanes)]),
                                                 vty.as_pointer()), align=size)
                    for v in range(vectors)]
            ak = builder.mul(k, ka)
            for r in range(rows):
                s = builder.load(builder.gep(A, [builder.add(builder.mul(ir.Constant(K.type, r), lda), ak)]))
                splat = _broadcast(builder, vty, lanes, s)
                for v in range(vectors):
                    builder.store(builder.call(fma, [splat, bvec[v], builder.load(accs[r][v])]), accs[r][v])
        for r in range(rows):
            crow = builder.gep(C, [builder.mul(ir.Constant(K.type, r), ldc)])
            for v in range(vectors):
                ptr = builder.bitcast(builder.gep(crow, [ir.Constant(K.type, v * lanes)]), vty.as_pointer())
                builder.store(builder.load(accs[r][v]), ptr, align=size)
        return context.get_dummy_value()
    return codegen


@_jit
def tile_columns(itemsize):
    """A compiled tile's panel width in columns for numbers of ``itemsize`` bytes (the tile's vectors
    of TILE_BYTES: TILE_VECTORS_32 or TILE_VECTORS_64)."""
    return (TILE_VECTORS_64 if itemsize == 8 else TILE_VECTORS_32) * TILE_BYTES // itemsize


def _tile_intrinsic(rows, wide=None, vector_bytes=None):
    def typer(typingctx, a, lda, ka, p, K, c, ldc):
        if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)):
            return None
        return types.void(a, lda, ka, p, K, c, ldc), _tile_codegen(rows, wide, vector_bytes)
    typer.__name__ = f"_tile{rows}" + (f"x{wide}" if wide else "") + (f"v{vector_bytes}" if vector_bytes else "")
    return intrinsic(typer)


def _strip_intrinsic(rows, wide):
    """A tile of ``rows`` rows by ``wide`` vectors of TILE_BYTES whose panel p is read where it lies, its rows ldp
    numbers apart: (a, lda, ka, p, ldp, K, c, ldc)."""
    def typer(typingctx, a, lda, ka, p, ldp, K, c, ldc):
        if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)):
            return None
        return types.void(a, lda, ka, p, ldp, K, c, ldc), _tile_codegen(rows, wide, None, strided=True)
    typer.__name__ = f"_strip{rows}x{wide}"
    return intrinsic(typer)


def _turn_codegen(context, builder, signature, args):
    """dst (L, L) = src (L, L) turned round, L = a vector of TILE_BYTES: src's rows loaded as vectors, turned
    round in registers by log2(L) stages of shuffles (stage d swaps, in each pair of rows d apart, the lanes whose
    bit d differs from the row's), stored as dst's rows. src's rows lds numbers apart, dst's ldd."""
    size, lanes, vty, _, _ = _vector_types(context, builder, signature.args[0].dtype, TILE_BYTES)
    s_arr, lds, d_arr, ldd = args
    S = context.make_array(signature.args[0])(context, builder, s_arr).data
    D = context.make_array(signature.args[2])(context, builder, d_arr).data
    rows = [builder.load(builder.bitcast(builder.gep(S, [builder.mul(ir.Constant(lds.type, i), lds)]),
                                         vty.as_pointer()), align=size) for i in range(lanes)]
    d = 1
    while d < lanes:
        lo = [k if k & d == 0 else lanes + k - d for k in range(lanes)]
        hi = [k + d if k & d == 0 else lanes + k for k in range(lanes)]
        out = list(rows)
        for i in range(lanes):
            if i & d == 0:
                a, b = rows[i], rows[i + d]
                out[i] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), lanes), lo))
                out[i + d] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), lanes), hi))
        rows = out
        d *= 2
    for j in range(lanes):
        ptr = builder.bitcast(builder.gep(D, [builder.mul(ir.Constant(ldd.type, j), ldd)]), vty.as_pointer())
        builder.store(rows[j], ptr, align=size)
    return context.get_dummy_value()


@intrinsic
def _turn_block(typingctx, src, lds, dst, ldd):
    if not (isinstance(src, types.Array) and src.dtype in (types.float32, types.float64) and dst.dtype == src.dtype):
        return None
    return types.void(src, lds, dst, ldd), _turn_codegen


@helper
def turn_lanes(itemsize):
    """The side of a block ``turned_copy`` turns round in registers: a vector of TILE_BYTES of such numbers."""
    return TILE_BYTES // itemsize


@helper
def turned_copy(dst, src):
    """dst (R, C) = src, src a view of a row-major matrix turned round (src[r, c] at r·1 + c·lds), dst's rows
    contiguous: in blocks of a vector's lanes square, each loaded along the matrix's rows, turned round in
    registers (``_turn_block``) and stored along dst's rows; the edges number by number."""
    R, C = dst.shape
    L = turn_lanes(dst.itemsize)
    lds = src.strides[1] // src.itemsize
    ldd = dst.strides[0] // dst.itemsize
    R1, C1 = R - R % L, C - C % L
    for r0 in range(0, R1, L):
        for c0 in range(0, C1, L):
            _turn_block(src[r0:, c0:], lds, dst[r0:, c0:], ldd)
    copy_edges(dst, src, R1, C1)


@helper
def copy_edges(dst, src, R1, C1):
    """dst = src beyond the whole blocks of a blocked copy: columns C1: of rows :R1, then rows R1: whole."""
    R, C = dst.shape
    for r in range(R1):
        for c in range(C1, C):
            dst[r, c] = src[r, c]
    for r in range(R1, R):
        for c in range(C):
            dst[r, c] = src[r, c]


STRIP_ROWS = 8           # a strip's rows: 8 sums in flight even one vector wide (FMA latency x units)
_strip1 = _strip_intrinsic(STRIP_ROWS, 1)     # a readout's outputs: o of them, a vector or a few
_strip2 = _strip_intrinsic(STRIP_ROWS, 2)     # its gradient: 8 outputs' rows by two vectors of the states' units


@helper
def strip_columns(itemsize, wide):
    """A strip's columns: ``wide`` vectors of TILE_BYTES of numbers of ``itemsize`` bytes."""
    return wide * TILE_BYTES // itemsize


_tile = _tile_intrinsic(ROWS)     # one shape only: fewer rows go through a zero-padded copy (compile time)


def _row_codegen(vectors):
    """The code of a row tile of ``vectors`` vectors: out[o0:o0 + vectors·lanes] = v (K,) @ p[:, c0:c0 +
    vectors·lanes], p a panel (K, ROW_TILE_BYTES of columns), contiguous. Always ROW_VECTORS sums in
    flight (as many as fused multiply-adds a core can have under way): a narrower tile takes
    ROW_VECTORS / vectors rows of p at a time into sums of its own, added up at the end (one sum a
    vector would wait on each multiply-add before the next)."""
    unroll = ROW_VECTORS // vectors

    def codegen(context, builder, signature, args):
        size, lanes, vty, zero, fma = _vector_types(context, builder, signature.args[0].dtype)
        v_arr, p_arr, c0, K, o_arr, o0 = args
        V = context.make_array(signature.args[0])(context, builder, v_arr).data
        P = builder.gep(context.make_array(signature.args[1])(context, builder, p_arr).data, [c0])
        O = builder.gep(context.make_array(signature.args[4])(context, builder, o_arr).data, [o0])
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)] for _ in range(unroll)]
        stride = ir.Constant(K.type, ROW_TILE_BYTES // size)

        def step(k, sums):
            row = builder.gep(P, [builder.mul(k, stride)])
            splat = _broadcast(builder, vty, lanes, builder.load(builder.gep(V, [k])))
            for i in range(vectors):
                x = builder.load(builder.bitcast(builder.gep(row, [ir.Constant(K.type, i * lanes)]), vty.as_pointer()),
                                 align=size)
                builder.store(builder.call(fma, [splat, x, builder.load(sums[i])]), sums[i])

        u = ir.Constant(K.type, unroll)
        whole = builder.udiv(K, u)
        with cgutils.for_range(builder, whole) as loop:
            base = builder.mul(loop.index, u)
            for j in range(unroll):
                step(builder.add(base, ir.Constant(K.type, j)), accs[j])
        with cgutils.for_range(builder, builder.sub(K, builder.mul(whole, u))) as loop:
            step(builder.add(builder.mul(whole, u), loop.index), accs[0])
        for i in range(vectors):
            total = builder.load(accs[0][i])
            for j in range(1, unroll):
                total = builder.fadd(total, builder.load(accs[j][i]))
            ptr = builder.bitcast(builder.gep(O, [ir.Constant(K.type, i * lanes)]), vty.as_pointer())
            builder.store(total, ptr, align=size)
        return context.get_dummy_value()
    return codegen


def _row_intrinsic(vectors):
    def typer(typingctx, v, p, c0, K, out, o0):
        if not (isinstance(v, types.Array) and v.dtype in (types.float32, types.float64)):
            return None
        return types.void(v, p, c0, K, out, o0), _row_codegen(vectors)
    typer.__name__ = f"_row_tile{vectors}"
    return intrinsic(typer)


_row8, _row4, _row2, _row1 = (_row_intrinsic(k) for k in (ROW_VECTORS, 4, 2, 1))


def row_tiles_pay(weight_bytes, steps):
    """Whether a batch of one's backward sweep takes its products in row tiles (``row_tile_products``):
    weights of more than ROW_TILE_MIN_BYTES (below, the compiled loops of ``_panels`` are as fast
    and the copy is not repaid) and at most ROW_TILE_WEIGHT_BYTES (they stay in a core's L2 cache from
    step to step), over at least ROW_TILE_MIN_STEPS steps (the panels are a copy of the weights,
    made once a call)."""
    return ROW_TILE_MIN_BYTES < weight_bytes <= ROW_TILE_WEIGHT_BYTES and steps >= ROW_TILE_MIN_STEPS


@helper
def panel_order(i, count, odd):
    """The i-th of ``count`` panels a step's product takes: from the first at even steps, from the last at odd
    ones (``odd``).

    A step reads all its weights' panels, and the next step reads them again. Where they are larger than a
    core's L2 cache, read in the same order every step, each panel has left L2 by the time it comes round
    again and every step streams all of them from L3 (or memory); read the other way round at every other step,
    a step begins with the panels the last one ended with, still in L2, and streams only the rest. Each panel's
    product is computed alike in either order, so the results do not change by one bit. (ad hoc, one thread
    multiplying one row of 512 by a float32 matrix of 2 MB 100 times, the other thread the same on its own:
    0.83-0.92 of the time; float32 4 MB one thread 0.85-0.96; float64 with 4-8 MB no gain.)"""
    return count - 1 - i if odd else i


@_jit
def row_tile_products(v, P, out, edge, odd):
    """out (N,) = v (K,) @ WT, WT given as panels P (1, count, K, w) of w = ROW_TILE_BYTES columns
    (the last zero-padded): one row tile a panel, its ROW_VECTORS sums in registers over the whole of
    K. The last panel's columns take tiles of 4, 2 and 1 vectors, as few as cover them (so that a
    panel mostly padding is not multiplied whole); its last partial vector goes through ``edge`` (w,),
    the caller's scratch. ``odd``: the panels from the last to the first (``panel_order``)."""
    K = v.shape[0]
    N = out.shape[0]
    count, w = P.shape[1], P.shape[3]
    lanes = w // ROW_VECTORS
    for i in range(count):
        p = panel_order(i, count, odd)
        j0 = p * w
        panel = borrow2(P, 0, p)
        if j0 + w <= N:
            _row8(v, panel, 0, K, out, j0)
            continue
        c = 0
        rest = N - j0
        if rest - c >= 4 * lanes:
            _row4(v, panel, c, K, out, j0 + c)
            c += 4 * lanes
        if rest - c >= 2 * lanes:
            _row2(v, panel, c, K, out, j0 + c)
            c += 2 * lanes
        if rest - c >= lanes:
            _row1(v, panel, c, K, out, j0 + c)
            c += lanes
        if c < rest:
            _row1(v, panel, c, K, edge, 0)
            for j in range(rest - c):
                out[j0 + c + j] = edge[j]


@_jit
def tile_products(a, P, out, edge, pad, odd):
    """out (rows, N) = a (rows, K) @ WT, WT given as panels P (1, count, K, w) of w = ``tile_columns``
    columns (the last zero-padded): each panel by every block of ROWS rows in turn while it is in
    cache. a may have any strides (a view of a row-major matrix turned round too: the weight gradients
    take [x | h]^T so, ``bptt._turned_in_tiles``); out's rows may have any stride. The last rows (fewer than ROWS) are
    multiplied from a copy in ``pad`` (ROWS, K), and the last panel's columns beyond N and those rows
    go through the scratch tile ``edge`` (ROWS, w); both are the caller's, made once a call
    (``_panels.panel_scratch``), not once a step; ``pad``'s other rows only reach rows of ``edge``
    that are never copied out. One tile shape, compiled once per dtype and layout and called, not inlined
    into every kernel (as ``_panels._products``), so that each kernel's first compilation stays short.
    ``odd``: the panels from the last to the first (``panel_order``)."""
    rows, K = a.shape
    N = out.shape[1]
    count, w = P.shape[1], P.shape[3]
    lda = a.strides[0] // a.itemsize
    ka = a.strides[1] // a.itemsize
    ldc = out.strides[0] // out.itemsize
    whole = rows - rows % ROWS
    for r in range(rows - whole):
        for k in range(K):            # a loop, not a row assigned to a row (``_jit``)
            pad[r, k] = a[whole + r, k]
    for i in range(count):
        p = panel_order(i, count, odd)
        j0 = p * w
        panel = borrow2(P, 0, p)
        wj = min(w, N - j0)
        for r0 in range(0, whole, ROWS):
            if wj == w:
                _tile(a[r0:], lda, ka, panel, K, borrow(out, r0)[j0:], ldc)
            else:
                _tile(a[r0:], lda, ka, panel, K, edge, w)
                for r in range(ROWS):
                    for j in range(wj):
                        out[r0 + r, j0 + j] = edge[r, j]
        if whole < rows:
            _tile(pad, K, 1, panel, K, edge, w)
            for r in range(rows - whole):
                for j in range(wj):
                    out[whole + r, j0 + j] = edge[r, j]
