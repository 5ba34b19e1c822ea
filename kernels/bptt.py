"""Backpropagation through time, exact and truncated BPTT(h; h') (SPEC §4)."""
import numpy as np
from numba import prange

from ._activations import constants, scale_by_dphi
from ._blas import _cblas_sgemm_tn, gemm_tn_into
from ._jit import _jit, kernel
from ._panels import _copy, _cut_panel, panel_dot, panel_scratch, shared_panels
from ._rows import arriving, borrow, borrow2, copy_columns, prefetch_rows
from ._sync import store_release
from ._tiles import ROW_TILE_WEIGHT_BYTES, ROW_TILES, ROWS, TILES, tile_columns, tile_products

# A batch of one's sweep in row tiles asks for the next step's rows of g, h and D a step ahead
# (``_rows.prefetch_rows``) where those arrays hold more than this over all steps: beyond a core's L2
# cache here, so that they come from L3 (the notes of ``_bptt_sweep``). The gated cells' sweeps read it too:
# after changing it, delete kernels/__pycache__ (their cached code keeps the old value).
PREFETCH_MIN_BYTES = ROW_TILE_WEIGHT_BYTES


@kernel("batch", reads=("W_rec", "h", "g"))
def _bptt_sweep(W_rec, h, g, act, trunc_h, trunc_hp, tf, tf_units, tf_mask, D, dh0, panels, progress, nblocks, split):
    """The sequential delta recursion, summed over the BPTT(h; h') sweeps.

    Array contract (one float dtype, C-contiguous):

    W_rec (n, n); h (T + 1, B, n) the unforced states from ``_forward``; g (T, B, n) the error
    injected into h_t by the loss at step t.
    trunc_h >= trunc_hp >= 1: every trunc_hp steps the errors injected during the last trunc_hp
        steps are propagated back through at most the last trunc_h steps. With trunc_h == trunc_hp the
        sweeps are chunks (the last, shorter one stops at its start: ``detach()`` every k steps).
        trunc_h = trunc_hp = T is exact BPTT.
    tf, tf_units (o,), tf_mask (T, B, o): teacher forcing; a unit forced after step t passes no
        error from step t + 1 back to step t.
    D (T, B, n) is overwritten with the sum over sweeps of delta_t = phi'(a_t) * eps_t, from which
        every weight gradient follows by one matrix product (``_weight_grads``).
    dh0 (B, n) is overwritten with the error to h0, delta_1 W_rec: the step before the first, through
        the same panels (the BLAS's product of a few rows by the whole of a large W repacks W: float32
        LSTM n=512 B=8, 0.48 ms a call).
    panels: a buffer for the weight panels (``_panels.cut_panels``; 1-d, reused by the caller).
    progress (1,) int64: in exact BPTT on one block, ``progress[0] = s`` is published (``_sync``)
        once D[s:] is final, so that another thread may take the products over those rows meanwhile
        (``fastrnn.runtime.overlap``); untouched otherwise.
    nblocks: batch blocks, one per parallel task; each block owns its rows of D and dh0.
    split: with one batch row in the block, each step's product is cut into this many parts on
        parallel threads (``_panels._gemv_parts``; the serial twin at B = 1 only); 1: whole;
        ``_tiles.ROW_TILES`` (-1): whole, in row tiles (forward passes: ``_panels.stored_rows``). With more
        rows, ``_tiles.TILES`` (0) takes each product in compiled register tiles, 1 through the BLAS.

    Where the sweeps do not overlap (trunc_h == trunc_hp: exact BPTT and chunks), every step is
    visited once and delta_t is written straight into D, the next step's product reading it from
    there (``once``); overlapping sweeps compute into a scratch row and add it to D. The two cases
    call the row arithmetic in separate branches, each on its own view: one variable holding either
    view (``crow = D[s, b] if once else cur[b]``) kept LLVM from vectorising the row loops (float32
    n=128 B=32, one thread, ad hoc kernel A/B: the sweep 1.71 ms with it, 1.12 without).

    A batch of one in row tiles (W streamed from L2 every step) whose g, h and D outgrow L2
    (``PREFETCH_MIN_BYTES``) asks for the next step's rows of them while this step's product runs
    (``_rows.prefetch_rows``): the sweep walks down through time, which the hardware's prefetchers do not
    follow. ``python bench/sweep_prefetch.py`` (this kernel asking and not asking, alternated, AMD EPYC
    Zen 3 with 512 KB of L2, T = 1000): float64 n=96 0.85 of the time, n=128 0.96; float32 n=160 0.97,
    n=181 0.90 (an ad hoc forerunner: 0.89-0.91, 0.93-0.95, 0.89, 0.94); where W fills more of L2 (float64
    n=192, float32 n=256) 1.00-1.01. Arrays that stay in L2 (T = 100 at n=128 float64, ad hoc) 1.00-1.01,
    so they are not asked for.
    """
    T, B, n = g.shape
    K = constants(h)
    once = trunc_h == trunc_hp
    publish = once and trunc_hp >= T and nblocks == 1
    rows = (B + nblocks - 1) // nblocks
    ahead = split == ROW_TILES and 3 * T * rows * n * h.itemsize > PREFETCH_MIN_BYTES
    P = shared_panels(W_rec, rows, panels, split, nblocks)
    for blk in prange(nblocks):
        b0 = blk * B // nblocks
        b1 = (blk + 1) * B // nblocks
        nb = b1 - b0
        if not once:
            D[:, b0:b1, :] = 0
        cur = np.empty((nb, n), dtype=h.dtype)
        nxt = np.empty((nb, n), dtype=h.dtype)
        back = np.empty((nb, n), dtype=h.dtype)
        tmp = panel_scratch(P, rows, nb, split)
        start = 0
        while start < T:
            end = min(start + trunc_hp, T)
            low = start if once else max(0, end - trunc_h)
            for s in range(end - 1, low - 1, -1):
                if ahead and s > low:       # the next step's rows, fetched while this step's product runs
                    prefetch_rows(g, s - 1, b0, b1)
                    prefetch_rows(h, s, b0, b1)
                    prefetch_rows(D, s - 1, b0, b1)
                if s == end - 1:
                    back[:, :] = 0
                else:
                    panel_dot(D[s + 1, b0:b1] if once else nxt, P, tmp, back, s & 1 == 1)
                    if tf:
                        for bb in range(nb):
                            for k in range(tf_units.shape[0]):
                                if tf_mask[s, b0 + bb, k] != 0:
                                    back[bb, tf_units[k]] = 0
                inject = s >= start
                for bb in range(nb):
                    if once:        # each branch its own view: see the note above
                        row = D[s, b0 + bb]
                        arriving(row, borrow(back, bb), borrow2(g, s, b0 + bb), inject)
                        scale_by_dphi(row, borrow2(h, s + 1, b0 + bb), K, act)
                    else:
                        crow = cur[bb]
                        arriving(crow, borrow(back, bb), borrow2(g, s, b0 + bb), inject)
                        scale_by_dphi(crow, borrow2(h, s + 1, b0 + bb), K, act)
                        drow = D[s, b0 + bb]
                        for k in range(n):
                            drow[k] += crow[k]
                if publish:
                    store_release(progress, 0, s)
                cur, nxt = nxt, cur
            start = end
        panel_dot(D[0, b0:b1], P, tmp, back, True)
        _copy(dh0[b0:b1], back)       # not a slice assignment (``_jit``)


@kernel("rows", reads=("a", "b"))
def _tiles_matmul(a, b, out, panels, nblocks):
    """out (M, N) = a (M, K) @ b (K, N) in the compiled tiles of the step products (``_tiles.tile_products``):
    the products that follow a backward sweep outside the weight gradients (a GRU's input-side sums, dL/dx),
    and a pair's input projection, where the tiles take wider vectors than the BLAS's core
    (``runtime.dispatch.product``).

    a and b may have any strides: a is read where it lies, b is copied once into the tiles' panels (its
    blocks each cut their share, ``_panels.shared_panels``, into ``panels``, the caller's 1-d buffer of at
    least ``_panels.cut_elements(M, nblocks, K, N, itemsize)`` numbers; a smaller one: a fresh array). out's
    rows may have any stride. Each of the ``nblocks`` parallel blocks multiplies its own rows of a by every
    panel into its own rows of out. M >= 2 (one row is a matrix-vector product, which ``cut_panels`` lays out
    otherwise)."""
    M = a.shape[0]
    rows = max(2, (M + nblocks - 1) // nblocks)
    P = shared_panels(b, rows, panels, TILES, nblocks)
    for blk in prange(nblocks):
        r0 = blk * M // nblocks
        r1 = (blk + 1) * M // nblocks
        if r1 > r0:
            edge = np.empty((ROWS, P.shape[3]), dtype=out.dtype)
            pad = np.zeros((ROWS, P.shape[2]), dtype=out.dtype)
            tile_products(a[r0:r1], P, out[r0:r1], edge, pad, False)


JOINED, TURNED, SPLIT, TILED, DIRECT = 0, 1, 2, 3, 4    # the weight-gradient product's layouts (``_weight_grads``)


@kernel("rows", reads=("x", "h_prev", "D", "A_in"))
def _weight_grads(x, h_prev, D, dW_in, dW_rec, db, XH, G, rest, by_columns, sgemm, layout, A_in, nblocks):
    """Weight gradients from the summed deltas: matrix products over all T*B rows.

    x (T, B, m); h_prev (T, B, n) the states fed into each step (h_{t-1}, forced where teacher
    forcing applies); D (T, B, r) the pre-activation errors (r = n for the simple cell from
    ``_bptt_sweep``, r = 4n gate rows for the LSTM).
    Writes dW_in (r, m) = sum D_t x_t^T, dW_rec (r, n) = sum D_t h_{t-1}^T, db (r,) = sum D_t (the
    error to h0 comes from the sweeps).
    XH (T*B, m + n), G and rest: scratch, overwritten (the caller's reused buffers: fresh arrays as
    large as the weights page-fault on every call, and inside a parallel region more so: float32 LSTM
    n=512 B=1 on two threads 8.0 ms a call with the partial sums in a fresh array beside fresh outputs,
    2.4 with them reused; one thread 3.0-3.8 either way, ad hoc).

    layout (``cells.base.weight_grad_layout`` decides) is how G (the product, copied out) is taken:
    JOINED (0): one product D^T [x | h_prev] (r, m + n) from the rows copied side by side into XH. For
        the gated cells (r = 3n or 4n) two products would leave the BLAS a thin one that runs below its
        rate (float32 LSTM n=128 B=32: one product 5.8 ms, two 6.7 ms, for a copy of 0.09 ms).
    TURNED (1): G is (m + n, at least r) and receives the product turned round, [x | h_prev]^T D,
        copied out transposed (``_panels._copy``: float64 gated cells). Through SciPy's float64
        OpenBLAS the turned product runs faster where r is the long side of the output (one thread:
        LSTM n=128 B=32 35 -> 41 GFLOP/s, n=256 B=32 42 -> 47); the transposed copy takes 0.06 ms at
        n=128, 0.2 at n=256 and 0.8-1.4 at n=512.
    SPLIT (2): two products straight into G's two column blocks, D^T x and D^T h_prev, with no copy
        into XH (not read): the float32 simple cell with few units, where the copy is a large part of
        the product (``cells.base.weight_grad_layout`` gives the rule and the figures).
    TILED (3): G as TURNED, [x | h_prev]^T D, in the compiled tiles of the step products
        (``_tiles.tile_products``) instead of the BLAS: x and h_prev read where they lie, turned round, or
        (``read_in_place``) XH holding [x | h_prev]^T, (m + n, T*B); D is copied into panels a few at a time
        over chunks of rows (``_turned_in_tiles``): where the tiles take wider vectors than the BLAS's core.
    DIRECT (4): dW_in and dW_rec as D^T x and D^T h in the compiled tiles, written where they belong: D read
        where it lies, turned round, x and h cut into panels of all T*B rows (``_direct_in_tiles``); G, XH and
        ``rest`` are not used. Where the rows are few (``cells.base.weight_grad_layout``), so that a panel of
        them stays in the L1 cache: no copy of D into panels, no product turned round and copied out.
    A_in (T, B, a), or a = 0: for a cell whose input side's deltas differ from D in its last a columns (the GRU's
    n block: da_n on the input side, da_n ⊙ r on the hidden side), those columns of the input side; ``TILED`` takes
    dW_in's last a rows from them (x^T A_in, panels of A_in cut beside D's for x's rows only), every other layout
    ignores A_in (its caller then computes those rows itself: ``cells.base.weight_grads``).
    sgemm: the address of a CBLAS sgemm (ILP64) that takes the float32 product instead of Numba's
    ``np.dot`` (``_blas``: NumPy's OpenBLAS, faster on these shapes here), or 0: ``np.dot``.
    nblocks: parallel blocks. by_columns (``cells.base.weight_grad_split`` decides): each block takes
    its own columns of D, the gradients' rows r0:r1, over all T*B rows, and copies them out itself;
    else the T*B rows are split into blocks, each summing its rows into its own partial result (one
    product; the first block's is G, the others' ``rest``, 1-d, at least (nblocks - 1)·G.size numbers,
    else fresh), added up at the end by all blocks, each its own share of G (no thread adds up every
    partial alone: on many cores that addition would outgrow the products).
    """
    T, B, m = x.shape
    r = D.shape[2]
    n = h_prev.shape[2]
    R = T * B
    D2 = D.reshape(R, r)
    x2 = x.reshape(R, m)
    h2 = h_prev.reshape(R, n)
    A2 = A_in.reshape(A_in.shape[0] * A_in.shape[1], A_in.shape[2])
    part_b = np.zeros((nblocks, r), dtype=np.float64)   # the bias sum in float64: T·B terms in float32 drift
    if layout == DIRECT:                                # each block its own rows of the gradients, all T·B rows
        w = tile_columns(D.itemsize)
        Px = _direct_panels(x2, w)
        Ph = _direct_panels(h2, w)
        for blk in prange(nblocks):
            c0 = blk * r // nblocks
            c1 = (blk + 1) * r // nblocks
            if c1 > c0:
                _direct_in_tiles(D2, Px, Ph, dW_in, dW_rec, c0, c1)
                acc = part_b[0]
                for row in range(R):
                    drow = D2[row]
                    for k in range(c0, c1):
                        acc[k] += drow[k]
                for k in range(c0, c1):
                    db[k] = acc[k]
        return
    in_place = read_in_place(r, n, D.itemsize)
    if by_columns and nblocks > 1:
        if layout != SPLIT and not (layout == TILED and in_place):
            for blk in prange(nblocks):                 # [x | h] whole, each block its own rows of it
                r0 = blk * R // nblocks
                r1 = (blk + 1) * R // nblocks
                if layout == TILED:
                    _turned_rows(x2, h2, XH, r0, r1)
                else:
                    copy_columns(XH[r0:r1], 0, x2[r0:r1], 0, m)
                    copy_columns(XH[r0:r1], m, h2[r0:r1], 0, n)
        for blk in prange(nblocks):
            c0 = blk * r // nblocks
            c1 = (blk + 1) * r // nblocks
            if c1 > c0:
                if layout == SPLIT:
                    _split_products(D2[:, c0:c1], x2, h2, G[c0:c1], sgemm)
                elif layout == TILED:
                    _turned_in_tiles(x2, h2, XH, in_place, D2, G, 0, R, c0, c1, A2)
                else:
                    _columns_product(D2, XH, G, c0, c1, sgemm, layout == TURNED)
                acc = part_b[0]
                for row in range(R):
                    drow = D2[row]
                    for k in range(c0, c1):
                        acc[k] += drow[k]
                _gradients_out(G, dW_in, dW_rec, db, part_b[0], m, c0, c1, layout == TURNED or layout == TILED)
        return
    size = G.shape[0] * G.shape[1]
    flat = rest[:(nblocks - 1) * size] if rest.shape[0] >= (nblocks - 1) * size else np.empty(
        (nblocks - 1) * size, dtype=D.dtype)
    parts = flat.reshape((nblocks - 1, G.shape[0], G.shape[1]))
    for blk in prange(nblocks):
        r0 = blk * R // nblocks
        r1 = (blk + 1) * R // nblocks
        out = G if blk == 0 else parts[blk - 1]
        if r1 > r0:
            Dk = D2[r0:r1]
            XHk = XH[r0:r1]
            if layout == SPLIT:
                _split_products(Dk, x2[r0:r1], h2[r0:r1], out, sgemm)
            elif layout == TILED:
                if not in_place:
                    _turned_rows(x2, h2, XH, r0, r1)
                _turned_in_tiles(x2, h2, XH, in_place, D2, out, r0, r1, 0, r, A2)
            else:
                copy_columns(XHk, 0, x2[r0:r1], 0, m)    # each block fills its own rows of [x | h]
                copy_columns(XHk, m, h2[r0:r1], 0, n)
                if layout == TURNED:
                    gemm_tn_into(XHk, Dk, out[:, :r])
                else:
                    _tn_into(Dk, XHk, out, sgemm)
            acc = part_b[blk]
            for row in range(r1 - r0):
                for k in range(r):
                    acc[k] += Dk[row, k]
        else:
            out[:, :] = 0
    for blk in range(1, nblocks):
        for k in range(r):
            part_b[0, k] += part_b[blk, k]
    Gf = G.reshape(size)                    # a turned G's padding too: never read
    for blk in prange(nblocks):             # each block adds up and copies out its own share
        f0 = blk * size // nblocks
        f1 = (blk + 1) * size // nblocks
        for q in range(nblocks - 1):
            src = flat[q * size:(q + 1) * size]
            for k in range(f0, f1):
                Gf[k] += src[k]
    for blk in prange(nblocks):
        _gradients_out(G, dW_in, dW_rec, db, part_b[0], m, blk * r // nblocks, (blk + 1) * r // nblocks,
                       layout == TURNED or layout == TILED)


@_jit
def _turned_rows(x2, h2, XH, r0, r1):
    """Columns r0:r1 of [x | h]^T (m + n, R), held in XH's numbers (``TILED``), from rows r0:r1 of x2 and h2."""
    m, n = x2.shape[1], h2.shape[1]
    XT = XH.reshape((m + n, x2.shape[0]))
    _copy(XT[:m, r0:r1], x2[r0:r1].T)
    _copy(XT[m:, r0:r1], h2[r0:r1].T)


TURNED_READ_BYTES = 512         # [x | h] read turned round where it lies up to rows of h this long (``read_in_place``)


@_jit
def read_in_place(r, n, itemsize):
    """Whether the ``TILED`` weight gradients read x and h where they lie, turned round (``_turned_in_tiles``),
    rather than from a copy of [x | h]^T (``_turned_rows``): where h's rows hold at most TURNED_READ_BYTES, or
    twice that for the simple cell (r = n). The tiles then read 4 numbers of each of kc rows, a cache line
    apiece, for every block of 4 rows and every group of D's panels; the copy costs a pass over [x | h]. One
    thread, hot, the kernel alone (ad hoc, against the copy, three runs each; T=100, m=32): float32 simple
    cell n=128 B=8 0.26-0.27 -> 0.18-0.19 ms, B=32 1.03-1.08 -> 0.71-0.74, n=256 B=8 0.74 -> 0.59-0.67;
    LSTM n=128 B=8 0.81-0.83 -> 0.74-0.77, B=32 3.22-3.50 -> 2.88-3.03; 384 gate rows n=128 B=32 2.53-2.60 ->
    2.13-2.25; but LSTM n=256 B=8 level (2.48-2.59 -> 2.51-2.68), n=512 B=8 9.2-10.2 -> 9.6-10.7; float64 simple
    cell n=128 B=8 0.40 -> 0.35-0.39, and every float64 gated cell slower (n=128 B=8 1.36 -> 1.43-1.59, n=512
    19.7-20.7 -> 23.8-26.2)."""
    row = n * itemsize
    return row <= TURNED_READ_BYTES or (r <= n and row <= 2 * TURNED_READ_BYTES)


TILED_GROUP_PANELS = 4           # panels of D packed and multiplied together (``_turned_in_tiles``) ...
TILED_PANEL_BYTES = 512 << 10    # ... over at most this many bytes of rows at a time


@_jit
def _turned_in_tiles(x2, h2, XH, in_place, D2, out, r0, r1, c0, c1, A2):
    """out[:, c0:c1] = [x | h]^T D over rows r0:r1 (``TILED``): x2 (R, m) and h2 (R, n) read where they lie,
    turned round (``in_place``, ``read_in_place``: ``tile_products`` takes any strides), or XH holding
    [x | h]^T (m + n, R) (``_turned_rows``); D2 (R, r). D's columns are taken TILED_GROUP_PANELS panels of
    ``tile_columns`` at a time, and those panels a chunk of rows at a time (TILED_PANEL_BYTES at most, half of
    a 1 MB L2 cache): each row of the chunk is read once, along D's rows, into the group's panels (zero-padded),
    and the panels are then multiplied by every block of [x | h]^T's rows while they are in cache; the chunks
    after the first are summed in through a scratch block. The copy costs a quarter of the product (float32 LSTM n=128 B=32, one
    thread: the tiles alone 2.0-2.3 ms, with the copy 2.65-2.72); panel by panel, down D's rows 256 bytes of
    each at a time, 2.7-3.1, and with D read from memory 4.75-5.1 ms for the whole product against 4.0 now
    (n=512 B=8: 10.4 against 9.1; float64 GRU n=128 B=32: 6.8 against 5.6; ad hoc).

    A2 (R, a), a > 0: x's rows take D's last a columns from A2 instead (the input side's deltas of a GRU's n
    block, ``_weight_grads``): a group of panels that reaches them is cut twice, once with them for x's rows."""
    J, R, m = out.shape[0], D2.shape[0], x2.shape[1]
    XT = XH[:0, :0]                         # not read in place
    if not in_place:
        XT = XH.reshape((J, R))
    K = r1 - r0
    a0 = D2.shape[1] - A2.shape[1]          # D's first column that x's rows take from A2 (none: D's width)
    w = tile_columns(D2.itemsize)
    gw = TILED_GROUP_PANELS * w
    Kc = min(K, max(ROWS, TILED_PANEL_BYTES // (gw * D2.itemsize)))
    P = np.empty((1, TILED_GROUP_PANELS, Kc, w), dtype=D2.dtype)
    Px = np.empty((1, TILED_GROUP_PANELS, Kc if A2.shape[1] > 0 else 0, w), dtype=D2.dtype)
    edge = np.empty((ROWS, w), dtype=D2.dtype)
    pad = np.empty((ROWS, Kc), dtype=D2.dtype)
    part = np.empty((J, gw), dtype=D2.dtype)
    for g0 in range(c0, c1, gw):
        g1 = min(c1, g0 + gw)
        count = (g1 - g0 + w - 1) // w
        own_x = A2.shape[1] > 0 and g1 > a0   # this group reaches A2's columns: x's rows get panels of their own
        for k0 in range(0, K, Kc):
            kc = min(Kc, K - k0)
            for k in range(kc):
                src = borrow(D2, r0 + k0 + k)
                for p in range(count):
                    dst = borrow(borrow2(P, 0, p), k)
                    j0 = g0 + p * w
                    if j0 + w <= g1:            # a whole panel's row: a loop of a constant count (3x faster)
                        row = src[j0:j0 + w]
                        for j in range(w):
                            dst[j] = row[j]
                    else:
                        for j in range(g1 - j0):
                            dst[j] = src[j0 + j]
                        for j in range(g1 - j0, w):
                            dst[j] = 0
                if own_x:
                    arow = borrow(A2, r0 + k0 + k)
                    for p in range(count):
                        dst = borrow(borrow2(Px, 0, p), k)
                        j0 = g0 + p * w
                        if j0 >= a0 and j0 + w <= g1:       # a whole panel's row of A2 (the GRU's n block)
                            row = arow[j0 - a0:j0 - a0 + w]
                            for j in range(w):
                                dst[j] = row[j]
                        elif j0 + w <= a0:                  # a whole panel's row of D, as P's
                            row = src[j0:j0 + w]
                            for j in range(w):
                                dst[j] = row[j]
                        else:                               # a panel across A2's first column, or the last
                            for j in range(w):
                                col = j0 + j
                                dst[j] = 0 if col >= g1 else (arow[col - a0] if col >= a0 else src[col])
            rows_pad = pad if kc == Kc else np.empty((ROWS, kc), dtype=D2.dtype)   # rows of kc numbers
            sums = out[:, g0:g1] if k0 == 0 else part[:, :g1 - g0]
            Pk = P[:, :count, :kc]
            Pxk = Px[:, :count, :kc] if own_x else Pk
            if in_place:
                tile_products(x2[r0 + k0:r0 + k0 + kc].T, Pxk, sums[:m], edge, rows_pad, False)
                tile_products(h2[r0 + k0:r0 + k0 + kc].T, Pk, sums[m:], edge, rows_pad, False)
            elif own_x:
                tile_products(XT[:m, r0 + k0:r0 + k0 + kc], Pxk, sums[:m], edge, rows_pad, False)
                tile_products(XT[m:, r0 + k0:r0 + k0 + kc], Pk, sums[m:], edge, rows_pad, False)
            else:
                tile_products(XT[:, r0 + k0:r0 + k0 + kc], Pk, sums, edge, rows_pad, False)
            if k0 > 0:
                for q in range(J):
                    for j in range(g1 - g0):
                        out[q, g0 + j] += part[q, j]


@_jit
def _direct_panels(a2, w):
    """a2 (R, c) cut into panels (1, count, R, w) of w columns for ``tile_products``, the last one zero-padded."""
    R, c = a2.shape
    count = (c + w - 1) // w
    P = np.empty((1, count, R, w), dtype=a2.dtype)
    for p in range(count):
        _cut_panel(a2, P, 0, p)
    return P


@_jit
def _direct_in_tiles(D2, Px, Ph, dW_in, dW_rec, c0, c1):
    """Rows c0:c1 of dW_in = D2^T x2 and dW_rec = D2^T h2 (``DIRECT``): D2 (R, r) read where it lies, turned round
    (its columns c0:c1 are the tiles' rows: for each of the R rows, four neighbouring numbers of one row of D2);
    Px and Ph the panels of x2 (R, m) and h2 (R, n) over all R rows (``_direct_panels``), each in cache while every
    block of four gradient rows passes over it."""
    R = D2.shape[0]
    w = Px.shape[3]
    edge = np.empty((ROWS, w), dtype=D2.dtype)
    pad = np.empty((ROWS, R), dtype=D2.dtype)
    a = D2[:, c0:c1].T
    tile_products(a, Px, dW_in[c0:c1], edge, pad, False)
    tile_products(a, Ph, dW_rec[c0:c1], edge, pad, False)


@_jit
def _columns_product(D2, XH, G, c0, c1, sgemm, transposed):
    """The rows c0:c1 of D2^T XH (columns of G where ``transposed``), over all rows of D2 and XH."""
    Dk = D2[:, c0:c1]
    if transposed:
        gemm_tn_into(XH, Dk, G[:, c0:c1])
    else:
        _tn_into(Dk, XH, G[c0:c1], sgemm)


@_jit
def _tn_into(a, b, out, sgemm):
    """out = a^T @ b for a (R, c), b (R, J), out (c, J), each with contiguous rows and any row stride: the
    float32 product through the CBLAS ``sgemm`` at that address where given (``_blas``), else through
    Numba's BLAS (``gemm_tn_into``)."""
    if sgemm != 0 and a.itemsize == 4:
        size = a.itemsize
        _cblas_sgemm_tn(sgemm, out.shape[0], out.shape[1], a.shape[0], np.int64(a.ctypes.data), a.strides[0] // size,
                        np.int64(b.ctypes.data), b.strides[0] // size, np.int64(out.ctypes.data),
                        out.strides[0] // size)
    else:
        gemm_tn_into(a, b, out)


@_jit
def _split_products(D, x, h, out, sgemm):
    """out[:, :m] = D^T x and out[:, m:] = D^T h (``SPLIT``): D (R, c), x (R, m), h (R, n), out (c, m + n),
    each with contiguous rows."""
    m = x.shape[1]
    _tn_into(D, x, out[:, :m], sgemm)
    _tn_into(D, h, out[:, m:], sgemm)


@_jit
def _gradients_out(G, dW_in, dW_rec, db, bias_sum, m, c0, c1, transposed):
    """Rows c0:c1 of dW_in, dW_rec and db from G (turned round where ``transposed``) and the bias sum."""
    n = dW_rec.shape[1]
    if transposed:
        _copy(dW_in[c0:c1], G[:m, c0:c1].T)
        _copy(dW_rec[c0:c1], G[m:m + n, c0:c1].T)
    else:
        copy_columns(dW_in[c0:c1], 0, G[c0:c1], 0, m)
        copy_columns(dW_rec[c0:c1], 0, G[c0:c1], m, n)
    for k in range(c0, c1):
        db[k] = bias_sum[k]
