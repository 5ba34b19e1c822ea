"""The per-step recurrent product through weight panels that the BLAS does not repack.

Every sequential step multiplies a few rows of state, ``a (rows, K)``, by the same weight matrix
``(K, N)``. OpenBLAS copies ("packs") the right-hand matrix into its own layout inside every call
once the product passes a size threshold, and at small ``rows`` the packing costs more than the
arithmetic: h (8, 256) @ W (256, 1024) ran at 49 GFLOP/s in float32 on one thread, against 112 for
the same product cut into column panels small enough to skip packing. The weights are fixed for a
whole call, so each kernel cuts them once, at its start, and every step multiplies panel by panel.

Skipping the packing is a property of the BLAS build and of the core it runs: OpenBLAS multiplies
small products unpacked only on its AVX-512 cores. On the others (AVX2: Haswell, Zen) it packs W in
every call, panels or not, and there the kernels take each step's product in compiled register tiles
instead (``_tiles``; ``split=TILES``, chosen by ``fastrnn.runtime.blas.step_products``): ``cut_panels``
then cuts panels of ``_tiles.tile_columns`` columns and ``panel_dot`` hands them to ``_tiles.tile_products``.

The rule is a property of the BLAS build and lives here alone (``tests/test_panels.py`` checks it;
``bench/panels.py`` measures it). Measured with OpenBLAS 0.3 (numpy 2.4's wheel) on AMD EPYC (AVX-512),
float32 and float64 alike, over K from 32 to 2048 and rows from 2 to 32, each step reading its own
rows of state as the kernels do: a product whose ``rows * K * w`` is at most 2**19 runs at the GEMM
rate, one above it drops to a half or two thirds, and the whole packed product never won (float32
K=512 N=2048 rows=32: 105 GFLOP/s in panels of 32, 67 whole; K=2048 N=512 rows=32: 75 in panels of
8, 69 whole; ``bench/results/2026-11-25-panels.md``). Within that bound the shape of each product
matters too (``bench/results/2026-11-26-row-blocks.md``): few rows by many columns beat many rows by
few, and panels of 256 bytes (64 float32 or 32 float64 columns) beat other widths. So:

- where the whole product fits (``rows * K * N <= 2**19``): one product, except that 2 or 3 rows
  take panels of 256 bytes (below) past 2**15 numbers (``FEW_ROWS_WHOLE``): float64 K=128 N=512 at 2
  rows 24 GFLOP/s whole against 49 in panels, at 3 rows 15 against 38, float32 K=256 N=1024 at 2 rows 50
  against 81 (float32 K=512 N=128 loses: 110 against 98; one thread, ad hoc, three runs each);
- else, where 8 rows by the whole matrix fit (the gated cells' products at n = 128): blocks of 8
  rows (``ROW_BLOCK``), each by the whole matrix: float32 K=128 N=512 at 32 rows 110 GFLOP/s
  against 91 in panels of 128 for all rows, float64 51.5 against 45 (one thread, ad hoc);
- else panels of 256 bytes, each taken by blocks of as many rows as fit beside it, a multiple of 4
  (``MIN_ROW_BLOCK``): float32 K=2048 N=512 (the LSTM's backward product at n = 512) 110-111
  against 100-104 in panels of 32 for 8-32 rows, K=1536 (the GRU's) 108-110 against 82-102, float64
  K=1536 55.5-56 against 46-53;
- where not even 4 rows fit beside such a panel (K over 2048 in float32, 4096 in float64), all rows
  at once with K cut into chunks short enough for panels of 32 (``SPLIT_WIDTH``), the chunks'
  products summed (float32 rows=32 K=2048 N=512 101 GFLOP/s against 75 for the best uncut width in
  the first table).

Each panel's product writes straight into its columns of the result (``_blas.gemm_into``, the BLAS
with a row stride) for every block of rows in turn while the panel is in cache; only chunks of K go
through a scratch copy, summed.

A batch of one multiplies by the whole matrix (a matrix-vector product). Where the weights are small
the BLAS's call costs as much as the product, and OpenBLAS's single-precision gemv is slow on short
rows: there a compiled loop over four rows of the matrix at a time (``_gemv_rows``) takes the product
instead (``bench/register_block.py``, ``bench/results/2026-11-26-register-block.md``: 0.51-0.74 of the
BLAS's time at 16-32 KB of weights, 0.77-0.93 at 64 KB of float32 and 0.80-0.91 for float32 rows of 128
(K=128 N=512, three runs); level or slower from 256 KB of float32 with longer rows and from 512 KB of
float64, which stay with the BLAS). Float64 weights up to 128 KB (``LOOP_GEMV_BYTES_64``: the simple
cell's W_rec at n=128, the LSTM's and GRU's W^T at n=64) take the loop too: 0.88-1.03 of the BLAS's
time there in three runs on 2026-11-26, 0.70-0.94 in all 15 ratios of five runs on 2026-11-27 (K=N=128,
K=64 N=256, K=256 N=64; ``bench/results/2026-11-27-batch-of-one-products.md``), and whole float64
``fastrnn.bptt`` calls at B=1, T=1000 went 1.02-1.05x faster (simple cell n=128), 1.04x (LSTM n=64) and
1.06-1.07x (GRU n=64) with it (two runs, 200 calls each interleaved in one process, ad hoc); at 512 KB of
float64 0.76-1.07, median 0.93, kept with the BLAS. The backward sweeps hand in W
itself (4n or 3n rows of n): there the product is v @ W, rows of W added up scaled by v (``_gemv_axpy``),
with no transposed copy of W a call and level with the BLAS's gemv on such a copy per product, within
noise (``bench/results/2026-11-26-batch-of-one-products.md``; ``cut_panels`` notes which way round it
keeps the weights).
"""
import numpy as np
from numba import prange

from ._blas import gemm_into
from ._jit import _jit, helper
from ._tiles import (FORWARD_ROW_TILE_MIN_K, ROW_TILE_BYTES, ROW_TILES, ROWS as TILE_ROWS, TILES, panel_order,
                     copy_edges, row_tile_products, tile_columns, tile_products,
                     turned_copy)

PANEL_ELEMENTS = 1 << 19   # rows * K * w at or below this: the BLAS multiplies without packing
ROW_BLOCK = 8              # rows a product takes at a time where so few multiply by the whole matrix unpacked
PANEL_BYTES = 256          # otherwise panels this wide (64 float32 / 32 float64 columns) ...
MIN_ROW_BLOCK = 4          # ... for blocks of at least this many rows (a multiple of it) that fit beside them
FEW_ROWS_WHOLE = 1 << 15   # fewer rows than that (2 or 3) multiply the whole matrix only up to this many numbers
SPLIT_WIDTH = 32           # past that (a long K), panels narrower than this lose: cut K into chunks (summed)
_STRIP = 16                # rows and columns of a block of the transposing copy (``_turned_blocks``)
NARROW_COPY = 64           # a transposing copy into at most this many columns goes column by column ...
NARROW_COPY_ELEMENTS = 1 << 14   # ... where it holds fewer numbers than this (else in blocks, ``_turned_blocks``)
LOOP_GEMV_BYTES = 1 << 16  # a batch of one: weights up to this many bytes multiply in a compiled loop
LOOP_GEMV_BYTES_64 = 1 << 17   # float64 weights (the product by W^T's rows) up to this many
LOOP_GEMV_ROWS = 128       # and so do float32 matrices whose rows are at most this long
_IN_TILES = -2             # ``panel_scratch``'s plan for the compiled tiles (``_tiles``)
_IN_ROW_TILES = -3         # and for a batch of one's row tiles


@_jit
def row_block(rows, K, N, itemsize):
    """How many rows of state each product (rows, K) @ (K, N) takes at a time (see the module's
    notes): all of them where the whole product stays within PANEL_ELEMENTS; ROW_BLOCK where that
    many rows multiply by the whole matrix within it; else as many as fit beside a panel of
    PANEL_BYTES, a multiple of MIN_ROW_BLOCK (at least that, else all rows: K is cut instead)."""
    if rows * K * N <= PANEL_ELEMENTS:
        return rows
    if ROW_BLOCK * K * N <= PANEL_ELEMENTS:
        return min(rows, ROW_BLOCK)
    fit = PANEL_ELEMENTS // (K * min(N, PANEL_BYTES // itemsize))
    fit -= fit % MIN_ROW_BLOCK
    if fit < MIN_ROW_BLOCK:
        return rows
    return min(rows, fit)


@_jit
def k_chunks(rows, K, N):
    """Into how many chunks the inner dimension K of (rows, K) @ (K, N) is cut (1: none), where
    ``row_block`` leaves all rows together."""
    if rows * K * N <= PANEL_ELEMENTS or rows * K * SPLIT_WIDTH <= PANEL_ELEMENTS:
        return 1
    longest = PANEL_ELEMENTS // (rows * SPLIT_WIDTH)
    if longest < 1:
        return 1
    return (K + longest - 1) // longest


@_jit
def panel_count(rows, K, N):
    """How many column panels the product (rows, K) @ (K, N) is cut into, within each K chunk
    (``k_chunks``) (1: the whole width), where ``row_block`` leaves all rows together."""
    kc = k_chunks(rows, K, N)
    Kc = (K + kc - 1) // kc
    if rows * Kc * N <= PANEL_ELEMENTS:
        return 1
    widest = PANEL_ELEMENTS // (rows * Kc)
    if widest < 1:
        return 1
    return (N + widest - 1) // widest


@_jit
def _layout(rows, K, N, itemsize):
    """The shape (kc, count, Kc, w) of the panels ``cut_panels`` makes for products with ``rows``
    rows, each taking ``row_block`` rows at a time. One row: the whole matrix (1, 1, N, K); a block
    of rows multiplying by the whole matrix: (1, 1, K, N) (2 or 3 rows only up to FEW_ROWS_WHOLE
    numbers); a block beside panels: (1, count, K, w), w about PANEL_BYTES; all rows at once past
    that: the K chunks and panels of ``k_chunks`` and ``panel_count``."""
    if rows == 1:
        return 1, 1, N, K
    r = row_block(rows, K, N, itemsize)
    if r * K * N <= PANEL_ELEMENTS and (r >= MIN_ROW_BLOCK or r * K * N <= FEW_ROWS_WHOLE):
        return 1, 1, K, N
    if r < rows or r * K * min(N, PANEL_BYTES // itemsize) <= PANEL_ELEMENTS:
        count = (N + PANEL_BYTES // itemsize - 1) // (PANEL_BYTES // itemsize)
        return 1, count, K, (N + count - 1) // count
    kc = k_chunks(rows, K, N)
    Kc = (K + kc - 1) // kc
    count = panel_count(rows, K, N)
    return kc, count, Kc, (N + count - 1) // count


@_jit
def cut_elements(B, most_blocks, K, N, itemsize):
    """The most numbers ``cut_panels`` needs for WT (K, N) of ``itemsize`` bytes a number when a
    batch of B rows is split into at most ``most_blocks`` blocks (the panels are cut for the largest
    block): the size of the buffer a caller keeps for it."""
    most = 0
    for blocks in range(1, max(1, min(B, most_blocks)) + 1):
        kc, count, Kc, w = _layout((B + blocks - 1) // blocks, K, N, itemsize)
        most = max(most, kc * count * Kc * w)
    if B > 1:                                   # or the compiled tiles' panels (``TILES``)
        tw = tile_columns(itemsize)
        most = max(most, (N + tw - 1) // tw * K * tw)
    else:                                       # or a batch of one's row tiles (``ROW_TILES``)
        tw = ROW_TILE_BYTES // itemsize
        most = max(most, (N + tw - 1) // tw * K * tw)
    return most


@_jit
def cut_panels(WT, rows, buf, split=1):
    """WT (K, N), any layout, copied into C-contiguous panels (kc, count, Kc, w) for products with
    ``rows`` rows: kc chunks of Kc rows of WT (``k_chunks``), each cut into ``count`` panels of w
    columns; rows of the last chunk beyond K and columns of the last panel beyond N are zero. With
    more than one row and ``split == TILES``: (1, count, K, w), w = ``_tiles.tile_columns``, for the
    compiled tiles.

    The panels are written into ``buf`` (1-d, the caller's buffer reused from call to call, of
    ``cut_elements`` numbers) where it is large enough, else into a fresh array: the copy is as
    large as the weights, and fresh memory of that size costs page faults in every call (1000 a
    call for a float32 LSTM n=512 sweep, inside a torch training loop). A kernel cuts once, for
    its largest block of rows, and its blocks share the panels (they only read them).

    One row (a batch of one) is a matrix-vector product: the weights are kept whole, streamed once
    a step (float32 K=512 N=2048: 57 us a step against 80 in panels; K=2048 N=512: 60 against 90),
    never copied where they are already C-contiguous one way round: as WT^T (1, 1, N, K), rows of
    the matrix for a dot product each (the forward passes hand in W^T, a view of W), or, where WT
    itself is C-contiguous, not square and larger than LOOP_GEMV_BYTES (the backward sweeps hand in W:
    K = 4n or 3n, N = n), as WT (1, 1, K, N), whose rows are added up scaled by the vector
    (``_gemv_axpy``); ``panel_dot`` tells the two apart by the shape. Otherwise a copy of WT^T: for
    a square WT; for small weights, which the loop over rows of the copy multiplies faster (float32
    K=128 N=32: 0.63 of the BLAS's time against 1.35 for the axpy form,
    ``bench/results/2026-11-26-batch-of-one-products.md``); and where the product is ``split`` over
    threads, whose BLAS gemvs on halves of the copy beat two threads adding halves of W's rows (the
    float32 LSTM training step at B=1, n=512, default threads: 11.8 ms a step with the copy, 17.2 with
    the axpy form split, ``bench/test_torch_step.py``; ``bench/results/2026-11-26-training-step-session-end.md``).
    """
    K, N = WT.shape
    kc, count, Kc, w = _layout(rows, K, N, WT.itemsize)
    if rows > 1 and split == TILES:             # panels for the compiled tiles (``_tiles``)
        w = tile_columns(WT.itemsize)
        kc, count, Kc = 1, (N + w - 1) // w, K
    tiled = rows == 1 and split == ROW_TILES
    if tiled:                                   # a batch of one's row tiles
        w = ROW_TILE_BYTES // WT.itemsize
        kc, count, Kc = 1, (N + w - 1) // w, K
    elif rows == 1 and WT.T.flags.c_contiguous:
        return np.ascontiguousarray(WT.T).reshape((1, 1, N, K))     # no copy
    elif rows == 1 and 0 <= split <= 1 and K != N and WT.flags.c_contiguous and K * N * WT.itemsize > LOOP_GEMV_BYTES:
        return np.ascontiguousarray(WT).reshape((1, 1, K, N))       # no copy: the axpy form
    size = kc * count * Kc * w
    flat = buf[:size] if buf.shape[0] >= size else np.empty(size, dtype=WT.dtype)
    P = flat.reshape((kc, count, Kc, w))
    if rows == 1 and not tiled:
        _copy(P[0, 0], WT.T)
        return P
    for q in range(kc):
        for p in range(count):
            _cut_panel(WT, P, q, p)
    return P


@_jit
def _cut_panel(WT, P, q, p):
    """Panel p of chunk q (``cut_panels``): its rows and columns of WT, zero beyond them."""
    K, N = WT.shape
    Kc, w = P.shape[2], P.shape[3]
    k0 = q * Kc
    k1 = min(K, k0 + Kc)
    j0 = p * w
    j1 = min(N, j0 + w)
    panel = P[q, p]
    _copy(panel[:k1 - k0, :j1 - j0], WT[k0:k1, j0:j1])
    panel[:k1 - k0, j1 - j0:] = 0          # the padding, whatever the buffer held
    panel[k1 - k0:, :] = 0


@helper
def shared_panels(WT, rows, buf, split, nblocks):
    """``cut_panels`` for a kernel whose ``nblocks`` parallel blocks then share the panels: the compiled
    tiles' panels (``TILES``, more than one row) cut by those blocks, each its share of them, where there are
    several and ``buf`` holds the panels; otherwise ``cut_panels`` on the calling thread. The cut is a copy as
    large as the weights, turned round for a forward pass (W^T), and on the calling thread before the blocks
    began it was a serial part of every parallel call: float32 LSTM n=512, a forward pass's 0.555 ms on one
    thread against 0.282 on two blocks, a sweep's 0.190 against 0.100; float64 0.687 / 0.358 and 0.339 / 0.193
    (interleaved in one process, ad hoc): on 16 threads it would be some 0.04 ms instead of 0.56 a forward pass.
    Inlined into the kernel (``helper``), so that its ``prange`` runs on the kernel's threads in its parallel
    twin (the serial twin cuts them all, in the same order of panels)."""
    K, N = WT.shape
    w = tile_columns(WT.itemsize)
    count = (N + w - 1) // w
    if nblocks > 1 and rows > 1 and split == TILES and buf.shape[0] >= count * K * w:
        P = buf[:count * K * w].reshape((1, count, K, w))
        for blk in prange(nblocks):
            for p in range(blk * count // nblocks, (blk + 1) * count // nblocks):
                _cut_panel(WT, P, 0, p)
        return P
    return cut_panels(WT, rows, buf, split)


@_jit
def _copy(dst, src):
    """dst[:, :] = src, dst C-ordered, src a view either way round. A src stored the other way round (the forward
    passes' panels of W^T, [x | h]^T for the weight gradients, a gradient copied out of its turned product) whose
    stored rows are contiguous, into a dst with contiguous rows, is turned round in registers a block of a
    vector's lanes square at a time (``_tiles.turned_copy``). One thread, hot, against the ways before it (ad hoc,
    AMD EPYC Zen 5, AVX-512): float64 (1000, 128) from its transpose 41 against 60 us, (800, 32) 5.6 against 10.3,
    (512, 2048) 494 against 589; float32 (1000, 128) 14 against 52, (800, 32) 2.2 against 10.6, (512, 2048) 253
    against 416; narrow panels too, where the way before went column by column: float32 (512, 64) 3.7 against
    17.9, (128, 64) 1.1 against 2.4, float64 (512, 16) 1.7 against 4.8. Other strides: column by column into a
    narrow dst (at most NARROW_COPY columns and NARROW_COPY_ELEMENTS numbers), else in blocks (``_turned_blocks``)."""
    R, C = dst.shape
    if src.strides[0] >= src.strides[1]:
        for r in range(R):
            for c in range(C):
                dst[r, c] = src[r, c]
    elif src.strides[0] == src.itemsize and dst.strides[1] == dst.itemsize:
        turned_copy(dst, src)
    elif C <= NARROW_COPY and R * C < NARROW_COPY_ELEMENTS:
        for c in range(C):
            for r in range(R):
                dst[r, c] = src[r, c]
    else:
        _turned_blocks(dst, src)


@helper
def _turned_blocks(dst, src):
    """``_copy`` of a src stored the other way round into a wide dst: blocks of _STRIP x _STRIP, each read along
    src's stored rows into a small block of its own and written from it along dst's rows (LLVM turns the block
    round in registers): float32 (2048, 512) from its transpose 0.42 ms against 0.97 in strips of _STRIP columns
    written along dst's rows with src read from a few cache lines at a time (the way before), (2048, 544) 0.44
    against 1.04 (one thread, ad hoc). The rows and columns beyond the last whole block go element by element."""
    R, C = dst.shape
    S = _STRIP
    block = np.empty((S, S), dtype=dst.dtype)
    R1, C1 = R - R % S, C - C % S
    for r0 in range(0, R1, S):
        for c0 in range(0, C1, S):
            for i in range(S):
                for j in range(S):
                    block[j, i] = src[r0 + j, c0 + i]
            for j in range(S):
                row = dst[r0 + j, c0:c0 + S]
                for i in range(S):
                    row[i] = block[j, i]
    copy_edges(dst, src, R1, C1)


@_jit
def stored_rows(split, K):
    """The ``split`` a forward pass cuts its panels of W^T (K, N) with (K: the state's units; W^T is a
    view of W). Row tiles (``ROW_TILES``, which the caller asks for where ``_tiles.row_tiles_pay``)
    need a transposing copy of W a call, repaid from FORWARD_ROW_TILE_MIN_K units; below that a batch
    of one multiplies by W's own rows (``cut_panels`` copies nothing). Whole forward kernels, one thread,
    W's rows / row tiles in every run of 2026-11-27 (the first two before the column-by-column copy
    below; ``python bench/forward_row_tiles.py``,
    ``bench/results/2026-11-27-forward-row-tiles.md``): LSTM float32 n=128 T=100 0.97-1.18 (the whole
    training step 1.02-1.07), T=1000 1.08-1.24, float64 n=128 1.02-1.21; GRU float32 n=128 0.90-1.17,
    float64 1.13-1.16; simple cell n=256 float64 T=1000 1.09-1.24, float32 T=100 0.98-1.19; level where
    the compiled loop over W's rows is as fast (simple cell float64 n=128, 128 KB: 0.94-1.13); and a loss
    below 128 units in a first version (LSTM float64 n=64: 0.34 against 0.32 ms). The copy is what
    decided it: in strips (``_copy``) it cost 80-115 us for float32 (512, 128) and the tiles did not
    pay (``bench/results/2026-11-26-row-tiles.md``). Other splits stay as they are."""
    if split == ROW_TILES and K < FORWARD_ROW_TILE_MIN_K:
        return 1
    return split


@_jit
def panel_scratch(P, cut_rows, rows, split):
    """What ``panel_dot`` works in, for a block of ``rows`` rows multiplying by panels ``P`` cut for
    ``cut_rows`` (>= rows): the per-panel results (kc, count, rows, w), one chunk of the rows'
    columns (rows, Kc), contiguous for the BLAS (empty where K is not cut), ``gemv``: 0 where
    P holds panels, else the number of parts each matrix-vector product is cut into, run in
    parallel (``_gemv_parts``; 1: whole, on the calling thread), -1: whole, in a compiled loop
    (``_gemv_rows``), or ``_IN_TILES``: the compiled tiles (``split == TILES`` at more than one row;
    then the first two hold the tiles' edge tile and the copy of the last rows, ``_tiles.tile_products``);
    and how many rows each product takes at a time (``row_block``)."""
    if cut_rows == 1 and split == ROW_TILES:     # the row tiles' scratch: an edge panel's row
        return np.empty((1, 1, 1, P.shape[3]), dtype=P.dtype), np.empty((0, 0), dtype=P.dtype), _IN_ROW_TILES, 1
    if cut_rows == 1:
        return np.empty((0, 0, 1, 1), dtype=P.dtype), np.empty((0, 0), dtype=P.dtype), _gemv_plan(P[0, 0], split), 1
    if split == TILES:                  # the tiles' scratch: an edge tile and the last rows' copy
        return (np.empty((1, 1, TILE_ROWS, P.shape[3]), dtype=P.dtype), np.zeros((TILE_ROWS, P.shape[2]), dtype=P.dtype),
                _IN_TILES, rows)
    kc, count, Kc, w = P.shape
    # the panels' widths add up to N or a little more: the same rows a product (``row_block``)
    sub = cut_rows if kc > 1 else row_block(cut_rows, Kc, count * w, P.itemsize)
    if kc == 1:                         # each product straight into ``out`` (``_products``)
        return np.empty((0, 0, 1, 1), dtype=P.dtype), np.empty((0, 0), dtype=P.dtype), 0, sub
    return np.empty((kc, count, rows, w), dtype=P.dtype), np.empty((rows, Kc), dtype=P.dtype), 0, sub


@_jit
def panel_dot(a, P, scratch, out, odd):
    """out (rows, N) = a (rows, K) @ WT, with WT given as its panels ``P`` (from ``cut_panels``); ``odd``: an
    odd step, whose product takes the panels the other way round (``_tiles.panel_order``).

    a and out are C-contiguous; scratch is ``panel_scratch`` for P and a's rows. The whole matrix
    (one row) is one matrix-vector product, or several on parallel threads; one panel is one BLAS
    call straight into ``out`` for each block of rows (``row_block``); several go through the
    scratch and are gathered row by row, the K chunks' products summed.
    """
    tmp, chunk, gemv, sub = scratch
    if gemv == _IN_ROW_TILES:
        row_tile_products(a[0], P, out[0], tmp[0, 0, 0], odd)
        return
    if gemv == _IN_TILES:
        tile_products(a, P, out, tmp[0, 0], chunk, odd)
        return
    if gemv != 0 and P.shape[2] != out.shape[1]:        # one row by WT (K, N) itself: v @ WT
        _gemv_axpy(P[0, 0], a[0], out[0])
        return
    if gemv < 0:
        _gemv_rows(P[0, 0], a[0], out[0], odd)
        return
    if gemv > 1:
        _gemv_parts(P[0, 0], a[0], out[0], gemv)
        return
    if gemv == 1:
        np.dot(P[0, 0], a[0], out[0])
        return
    kc, count, Kc, w = P.shape
    if kc == 1 and count == 1 and w == out.shape[1]:
        R = a.shape[0]
        for r0 in range(0, R, sub):
            r1 = min(R, r0 + sub)
            np.dot(a[r0:r1], P[0, 0], out[r0:r1])
        return
    _products(a, P, tmp, chunk, out, sub, odd)


@_jit
def _gemv_plan(M, split):
    """How a batch of one multiplies by M (N, K): in ``split`` parts on threads (> 1), by the BLAS
    (1) or in the compiled loop (-1; see the module's notes)."""
    if split > 1:
        return split
    N, K = M.shape
    if N * K * M.itemsize <= (LOOP_GEMV_BYTES_64 if M.itemsize == 8 else LOOP_GEMV_BYTES) or (
            M.itemsize == 4 and K <= LOOP_GEMV_ROWS):
        return -1
    return 1


@_jit
def _gemv_rows(M, v, out, odd):
    """out = M @ v, M (N, K) C-contiguous: four rows of M at a time, so each value of v is read once
    for four sums (the sums over K are vectorised: the kernels' fastmath allows reordering them).
    ``odd``: the groups of four rows from the last to the first (``_tiles.panel_order``)."""
    N, K = M.shape
    zero = out.dtype.type(0)
    groups = N // 4
    for i in range(groups):
        j = 4 * panel_order(i, groups, odd)
        m0, m1, m2, m3 = M[j], M[j + 1], M[j + 2], M[j + 3]
        s0, s1, s2, s3 = zero, zero, zero, zero
        for k in range(K):
            x = v[k]
            s0 += m0[k] * x
            s1 += m1[k] * x
            s2 += m2[k] * x
            s3 += m3[k] * x
        out[j], out[j + 1], out[j + 2], out[j + 3] = s0, s1, s2, s3
    for jj in range(4 * groups, N):
        s = zero
        for k in range(K):
            s += M[jj, k] * v[k]
        out[jj] = s


@_jit
def _gemv_axpy(WT, v, out):
    """out = v @ WT, WT (K, N) C-contiguous: rows of WT added into out four at a time, each scaled by
    its value of v (vectorised along the rows; no sums across lanes). A batch of one's backward
    product by W (4n, n) itself, with no transposed copy of W a call; per product level with the BLAS's
    gemv on such a copy, within noise (``python bench/register_block.py gemv``,
    ``bench/results/2026-11-26-batch-of-one-products.md``)."""
    K, N = WT.shape
    for j in range(N):
        out[j] = 0
    k = 0
    while k + 4 <= K:
        a0, a1, a2, a3 = v[k], v[k + 1], v[k + 2], v[k + 3]
        r0, r1, r2, r3 = WT[k], WT[k + 1], WT[k + 2], WT[k + 3]
        for j in range(N):
            out[j] += a0 * r0[j] + a1 * r1[j] + a2 * r2[j] + a3 * r3[j]
        k += 4
    for kk in range(k, K):
        a0 = v[kk]
        r0 = WT[kk]
        for j in range(N):
            out[j] += a0 * r0[j]


def _gemv_parts(M, v, out, parts):
    """out = M @ v with the rows of M (N, K) cut into ``parts`` contiguous blocks, one BLAS gemv
    each on Numba's threads: a batch of one has no rows to share out, but each step's product can
    be, and at B = 1 it is most of the step. Each part streams its own rows of M, so on separate
    cores the parts share the memory traffic that bounds a gemv. Called only from a serial kernel
    (never inside another parallel region: the workqueue layer cannot nest). One launch per step
    (about 1.5 us under tbb on the project's machine) is why ``runtime.dispatch`` asks for it only
    where each part has enough rows (``PAYS["split"]``)."""
    N = M.shape[0]
    for p in prange(parts):
        r0 = p * N // parts
        r1 = (p + 1) * N // parts
        if r1 > r0:
            np.dot(M[r0:r1], v, out[r0:r1])


_gemv_parts = _jit(_gemv_parts, parallel=True)


@_jit
def _products(a, P, tmp, chunk, out, sub, odd):
    """The panels' products for ``panel_dot``: compiled once per dtype and called, not inlined into
    every kernel (it made each kernel's first compilation slower). Each panel multiplies ``sub`` rows
    at a time, every block of rows in turn while the panel is in cache, straight into its columns of
    ``out`` (``_blas.gemm_into``: a gathering pass from a scratch copy cost 7-15 % of the products,
    float32 K=256 N=1024 rows=32 97 -> 106 GFLOP/s, K=512 N=2048 rows=8 105 -> 113, float64 49.5 ->
    54 and 52.5 -> 56, one thread, ad hoc). Panels of a K cut into chunks go through the scratch and
    are summed. ``odd``: the panels the other way round (``_tiles.panel_order``)."""
    kc, count, Kc, w = P.shape
    rows, N = out.shape
    if kc == 1:
        for i in range(count):
            p = panel_order(i, count, odd)
            j0 = p * w
            wj = min(w, N - j0)
            panel = P[0, p][:, :wj]
            for r0 in range(0, rows, sub):
                r1 = min(rows, r0 + sub)
                gemm_into(a[r0:r1], panel, out[r0:r1, j0:j0 + wj])
        return
    K = a.shape[1]
    for q in range(kc):
        k0 = q * Kc
        for r in range(rows):
            for k in range(Kc):
                chunk[r, k] = a[r, k0 + k] if k0 + k < K else 0
        for i in range(count):
            p = panel_order(i, count, odd)
            np.dot(chunk, P[q, p], tmp[q, p])
    for r in range(rows):
        o = out[r]
        for p in range(count):
            j0 = p * w
            wj = min(w, N - j0)
            src = tmp[0, p, r]
            for j in range(wj):             # one short loop per chunk: each vectorises
                o[j0 + j] = src[j]
            for q in range(1, kc):
                src = tmp[q, p, r]
                for j in range(wj):
                    o[j0 + j] += src[j]


INPUT_TILE_CHUNK = 64      # rows of the input projection taken through every panel before the next rows


@_jit
def input_panels(bT, split):
    """The panels the input projection (``block_rows_dot``) multiplies by bT (K, N) in: the compiled
    tiles' (``cut_panels`` for ``TILES``) where the batch kernels take their step products in tiles
    (``split == TILES``: a BLAS that packs its operands in every call), else none ((0, 0, 0, 0):
    the BLAS's product). A copy of bT, made once a call."""
    if split == TILES:
        return cut_panels(bT, TILE_ROWS, np.empty(0, dtype=bT.dtype), TILES)
    return np.empty((0, 0, 0, 0), dtype=bT.dtype)


@_jit
def block_rows_dot(a, bT, out, blk, nblocks, P):
    """out[r0:r1] = a[r0:r1] @ bT for block ``blk`` of ``nblocks`` even blocks of a's rows: the input
    projection of all T·B rows, one product per parallel task, so that it does not run on one
    thread while the others wait (float32 LSTM n=128 B=32 T=100: about 1.1 ms of a 7 ms forward pass).

    Where ``P`` holds the compiled tiles' panels of bT (``input_panels``) the product goes through them,
    INPUT_TILE_CHUNK rows at a time (their block of a stays in L1 while every panel passes), else through
    the BLAS. Its inner dimension is the input's m, a few dozen, and OpenBLAS's AVX2 kernels pack bT in every
    call: float64, 800-3200 rows, m=32, one thread, the BLAS ran it at 0.48-0.80 of one thread's GEMM rate,
    the tiles at 0.59-1.04 (ad hoc). Whole forward kernels, the same build either way (``python
    bench/input_tiles.py 100``, AMD EPYC Zen 3): 0.92-0.98 of the BLAS way's time in 12 of 13 cases (n 32-512,
    B 8 and 32, every cell and dtype), float32 LSTM n=128 B=32 1.015 (median of the rounds' ratios 0.978)."""
    R = a.shape[0]
    r0 = blk * R // nblocks
    r1 = (blk + 1) * R // nblocks
    if r1 <= r0:
        return
    if P.shape[1] == 0:
        np.dot(a[r0:r1], bT, out[r0:r1])
        return
    edge = np.empty((TILE_ROWS, P.shape[3]), dtype=P.dtype)
    pad = np.zeros((TILE_ROWS, P.shape[2]), dtype=P.dtype)
    for c0 in range(r0, r1, INPUT_TILE_CHUNK):
        c1 = min(r1, c0 + INPUT_TILE_CHUNK)
        tile_products(a[c0:c1], P, out[c0:c1], edge, pad, False)
