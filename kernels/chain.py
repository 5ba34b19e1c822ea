"""A batch of one's forward chain and backward sweep on two threads that meet at every step (the simple
cell, SPEC §2-4; the LSTM, §6; the GRU, §6a).

At B = 1 each step is one matrix-vector product, bound by how fast one core reads W_rec from its cache,
and the next step needs the whole state. Numba's pool cannot share a step out cheaply (a launch a step,
about 1.5 us: ``_panels._gemv_parts``). Here two threads each run the whole time loop and own half of the
state's units: each computes its half of h_t from all of h_{t-1}, so each reads only its half of W_rec (its
own cache's), and they meet through flags, one per half and step, claimed by compare-and-set (``_sync``).
The gated cells' halves are their units' rows of each gate block of W_hh, the units' gates, cell states
and states (and backward, their gates' deltas, from W_hh^T's rows of the units).

At B = 1 the halves take their products in row tiles (``_tiles.row_tile_products``) where the one-thread
kernels would (``runtime.pair.half_tiles``), on panels of the half's own columns of W_rec^T (forward) or W_rec
(backward), each gate block's for the gated cells, that it cuts at its first step (``FORWARD_TILES``,
``SWEEP_TILES``).

The LSTM and the GRU over a batch of rows (``lstm_rows_half``, ``gru_rows_half``) are cut the same way: each
thread takes its units' gate columns for every row, so it streams half of W_hh a step where the batch kernels'
blocks of rows each stream all of it (``runtime.pair.rows_pay`` says where that pays). Their products go through
the compiled tiles (``_tiles.tile_products``), on panels of the units' rows of W_hh (forward) or columns
(backward) that each half cuts at its first step.

A thread that finds the other's half of a step still free after ``grace`` polls takes it too, and keeps
taking the other's halves at once until the other claims one again: a thread the system holds back (a
busy machine, a helper not yet started) slows the call to one thread's pace, never stops it. Whichever
thread computes a half, it computes it with the same arithmetic: the states do not depend on timing.
"""
import types

from ._activations import LOGISTIC, ONE, activate, constants, scale_by_dphi, tanh
from ._jit import _jit, helper
from .gru_bptt import row_deltas_of
from ._lstm_cell import cell_units, gate_deltas_of
from ._panels import _copy, _cut_panel, _gemv_rows
from ._rows import arriving, borrow, borrow2
from ._sync import claim, load_acquire, store_release
from ._tiles import ROW_TILE_BYTES, ROWS, panel_order, row_tile_products, tile_columns, tile_products

FREE, TAKEN, DONE = 0, 1, 2


@_jit
def _half_step(h, W_rec, b, act, K, t, r0, r1, tmp):
    """Rows r0:r1 of h[t + 1] (holding the input projection) from all of h[t]; returns their sum."""
    row = h[t + 1, r0:r1]
    part = tmp[:r1 - r0]
    _gemv_rows(W_rec[r0:r1], h[t], part, t & 1 == 1)
    return _states_of(row, part, b, r0, K, act)


@helper
def _states_of(row, part, b, r0, K, act):
    """row = phi(row + b[r0:] + part): a half's states from its input projection and its product; returns their
    sum."""
    for k in range(row.shape[0]):
        row[k] += b[r0 + k] + part[k]
    activate(row, K, act)
    total = 0.0
    for k in range(row.shape[0]):
        total += row[k]
    return total


@helper
def _theirs_free(flags, theirs, grace, alone):
    """Whether the other thread's half ``theirs`` is still free after ``grace`` polls (at once if this
    thread has been ``alone``), claimed by this thread if so."""
    state = load_acquire(flags, theirs)
    if state == FREE and not alone:
        for _ in range(grace):
            state = load_acquire(flags, theirs)
            if state != FREE:
                break
    return state == FREE and claim(flags, theirs, FREE, TAKEN)


@helper
def _wait_done(flags, theirs, own):
    """Until both halves of the step are done: the other's (it computes it now) and this thread's own,
    which the other may have taken."""
    while load_acquire(flags, theirs) != DONE:
        pass
    while load_acquire(flags, own) != DONE:
        pass


@_jit
def _sweep_step(D, WT, P, g, h, act, K, s, r0, r1, tmp, tiles):
    """Rows r0:r1 of delta_s = phi'(a_s) * (g_s + delta_{s+1} W_rec) into D[s], from all of D[s + 1]
    (none at the last step): by W_rec^T's rows WT, or where ``tiles`` in row tiles on the half's panels P of
    W_rec's columns r0:r1 (``_half_panels``; the tiles' edge in tmp after the half's numbers)."""
    T = D.shape[0]
    row = D[s, r0:r1]
    part = tmp[:r1 - r0]
    if s == T - 1:
        for k in range(r1 - r0):
            part[k] = 0
    elif tiles:
        row_tile_products(D[s + 1], P, part, tmp[r1 - r0:r1 - r0 + P.shape[3]], s & 1 == 1)
    else:
        _gemv_rows(WT[r0:r1], D[s + 1], part, s & 1 == 1)
    arriving(row, part, g[s, r0:r1], True)
    scale_by_dphi(row, h[s + 1, r0:r1], K, act)


@_jit
def _half_panels(M, r0, r1, PB, cut_now):
    """The row tiles' panels (1, count, n, w) of M's columns r0:r1 (M (n, n): W_rec^T forward, W_rec backward), in
    PB's row of this half (0 for the units from 0, else 1), cut from M when ``cut_now`` (the chain's first step);
    w = ROW_TILE_BYTES of columns, the last panel zero-padded."""
    n = M.shape[0]
    w = ROW_TILE_BYTES // M.itemsize
    count = (r1 - r0 + w - 1) // w
    P = PB[0 if r0 == 0 else 1][:count * n * w].reshape((1, count, n, w))
    if cut_now:
        cols = M[:, r0:r1]
        for p in range(count):
            _cut_panel(cols, P, 0, p)
    return P


@_jit
def _half_step_tiles(h, P, b, act, K, t, r0, r1, tmp):
    """``_half_step`` with the product in row tiles, on the half's panels P of W_rec^T's columns r0:r1."""
    row = h[t + 1, r0:r1]
    part = tmp[:r1 - r0]
    edge = tmp[r1 - r0:r1 - r0 + P.shape[3]]
    row_tile_products(h[t], P, part, edge, t & 1 == 1)
    return _states_of(row, part, b, r0, K, act)


FORWARD, SWEEP = 0, 1
FORWARD_TILES, SWEEP_TILES = 2, 3   # at B = 1, each half's products in row tiles (``_half_panels``, ``_gate_tiles``)


def half(kind, arrays, act, T, cut, mine, flags, grace, tmp):
    """One thread's part of a chain that another thread runs with the other ``mine`` on the same arrays.

    The simple cell (``half``; ``arrays`` = (A, W, v, h, WT)):

    ``FORWARD``: ``h_t = phi(h_t + W_rec h_{t-1} + b)`` for t = 1..T. A (T + 1, n): A[0] the initial state;
    A[1:] the input projection x_t W_in^T on entry, the states on return. W = W_rec (n, n), v = b as (1, n);
    h: A read-only (not read); WT unused (any 2-d array).
    ``SWEEP``: exact BPTT's delta recursion (``bptt._bptt_sweep`` with one sweep over all steps, no teacher
    forcing), delta_s = phi'(a_s) * (g_s + delta_{s+1} W_rec), s = T - 1..0. A = D (T, n), overwritten; W =
    W_rec (n, n); v = g (T, n) the errors the loss injects; h (T + 1, n) the forward states; WT (n, n) written
    with W_rec^T, each half's rows at its first step (which has no product), read at the steps after.
    ``FORWARD_TILES``, ``SWEEP_TILES``: the same, each half's products in row tiles (``_tiles.row_tile_products``)
    on panels of its own units' columns of W_rec^T (forward) or W_rec (backward), cut at its first step into WT
    = PB (2, ``tile_halves``' numbers), one row a half. tmp: at least max(cut, n - cut) numbers and one panel's row
    (ROW_TILE_BYTES) more.

    The LSTM (``lstm_half``, the same loop with the LSTM's steps, ``_lstm_step``; ``arrays`` = (A, W, v, h, c,
    G, dc, WT), gates in the order i, f, g, o):

    ``FORWARD``: A = G (T, 4n) the gates, holding x_t W_ih^T on entry, the gates after their nonlinearities on
    return; W = W_hh (4n, n); v = b_ih + b_hh as (1, 4n); h, c (T + 1, n): [0] the initial state, [1:] written;
    G, dc and WT unused (A, any 1-d and any 2-d array).
    ``SWEEP``: exact BPTT's sweep (``lstm_bptt._lstm_sweep``, one sweep over all steps): A = D (T, 4n),
    overwritten with delta_s; W = W_hh (4n, n); v = g (T, n); h, c the forward states, G (T, 4n) the gates; dc (n,)
    the error injected into c_T on entry, dc_1 f_1 (the gradient with respect to c_0) on return; WT (n, 4n)
    written with W_hh^T, each half's rows at its first step (which has no product), read at the steps after.

    One float dtype throughout, C-contiguous; act: activation code (``_activations``; the simple cell's). T:
    the steps. cut: units 0:cut are half 0, cut:n half 1 (n = h.shape[1]; a multiple of 4, for the same row
    groups in ``_gemv_rows`` as a whole product, and best of a cache line). mine: 0 or 1, the half this thread
    takes first. flags (2 T,) int64, FREE on entry: flags[2 k + half] for the k-th step of the chain (TAKEN,
    then DONE). grace: polls to wait for the other thread to claim its half of a step before taking it. tmp:
    this thread's scratch, at least max(cut, n - cut) numbers (the simple cell), 4 times that (the LSTM).

    ``FORWARD_TILES``, ``SWEEP_TILES``: the LSTM's and the GRU's the same, each half's products in row tiles on
    panels of its units' columns of each gate block of W_hh^T (forward, ``_gate_tiles``) or of W_hh's columns
    (backward, ``_units_back_tiles``), cut at its first step into WT = PB (2, ``tile_halves(..., gates)``' numbers);
    tmp: at least gates·max(cut, n - cut) numbers and one panel's row (ROW_TILE_BYTES) more.

    The GRU (``gru_half``, with ``_gru_step``; ``arrays`` = (A, W, v, h, G, dv, WT, An), gates in the order r, z,
    n and q = W_hn h_{t-1} + b_hn, as ``gru_forward._gru_forward`` keeps them):

    ``FORWARD``: A = the gates (T, 4n), written; W = W_hh (3n, n); v (1, 4n) = [b_ir + b_hr, b_iz + b_hz, b_in,
    b_hn]; h (T + 1, n): [0] the initial state, [1:] written; G (T, 3n) the input projection x_t W_ih^T; dv, WT
    and An unused (any 1-d and 2-d arrays).
    ``SWEEP``: exact BPTT's sweep (``gru_bptt._gru_sweep``, one sweep over all steps): A = D (T, 3n), written
    with [da_r; da_z; dq]; W = W_hh; v = g (T, n); h the forward states, G (T, 4n) the gates; dv (n,) zeros on
    entry, the error arriving at h_1 on return (it reaches h_0 times step 0's z, beside D[0] W_hh); WT
    (n, 3n) written with W_hh^T as the LSTM's; An (T, n) written with da_n.

    The LSTM over B rows (``lstm_rows_half``, with ``_lstm_rows_step``; ``arrays`` = (A, W, v, h, c, G, dc, PB)):
    as the LSTM's above with a batch axis after the time axis (A, G (T, B, 4n); h, c (T + 1, B, n); dc (B, n)),
    v = b_ih + b_hh as (1, 1, 4n) forward and g (T, B, n) backward, and PB (2, ``rows_scratch``'s second number)
    the two halves' panels, written (each half's at its first step: its units' gate rows of W_hh forward, its
    columns backward). tmp: ``rows_scratch``'s first number.

    The GRU over B rows (``gru_rows_half``, with ``_gru_rows_step``; ``arrays`` = (A, W, v, h, G, dv, PB, An)): as
    the GRU's above with a batch axis (A (T, B, 4n) or (T, B, 3n), G (T, B, 3n) or (T, B, 4n), h (T + 1, B, n),
    dv and An (B, n) and (T, B, n) backward, empty forward), v as the LSTM's over a batch, PB as the LSTM's (with
    ``rows_scratch``'s gates = 3).

    Returns (the sum of the states this thread wrote, in float64: finite only if they all are; 0 for a sweep
    and for the gated cells; the halves of the other's it took).
    """
    n = arrays[3].shape[-1]
    K = constants(tmp)
    bounds = (0, cut, n)
    other = 1 - mine
    total = 0.0
    taken = 0
    alone = False
    for k in range(T):
        own, theirs = 2 * k + mine, 2 * k + other
        if claim(flags, own, FREE, TAKEN):
            total += _step(kind, arrays, act, K, k, bounds[mine], bounds[mine + 1], tmp)
            store_release(flags, own, DONE)
        if _theirs_free(flags, theirs, grace, alone):
            total += _step(kind, arrays, act, K, k, bounds[other], bounds[other + 1], tmp)
            store_release(flags, theirs, DONE)
            taken += 1
            alone = True
        else:
            alone = False
        _wait_done(flags, theirs, own)
    return total, taken


@_jit
def _step(kind, arrays, act, K, k, r0, r1, tmp):
    """Units r0:r1 of the simple cell's chain's k-th step (``half``): the sum of the states written, 0 for a
    sweep."""
    A, W, v, h, WT = arrays
    if kind == FORWARD:
        return _half_step(A, W, v[0], act, K, k, r0, r1, tmp)
    if kind == FORWARD_TILES:
        return _half_step_tiles(A, _half_panels(W.T, r0, r1, WT, k == 0), v[0], act, K, k, r0, r1, tmp)
    if kind == SWEEP_TILES:
        P = _half_panels(W, r0, r1, WT, k == 0)
        _sweep_step(A, P[0, 0], P, v, h, act, K, A.shape[0] - 1 - k, r0, r1, tmp, True)
        return 0.0
    if k == 0:                  # no product at the last step: these units' rows of W_rec^T, for the steps after
        _copy(WT[r0:r1], W[:, r0:r1].T)
    _sweep_step(A, WT, WT.reshape((1, 1) + WT.shape), v, h, act, K, A.shape[0] - 1 - k, r0, r1, tmp, False)
    return 0.0


@_jit
def _lstm_step(kind, arrays, act, K, k, r0, r1, tmp):
    """Units r0:r1 of the LSTM's chain's k-th step (``half``); 0."""
    A, W, v, h, c, G, dc, WT = arrays
    w = r1 - r0
    if kind == FORWARD or kind == FORWARD_TILES:        # step t = k + 1
        if kind == FORWARD_TILES:
            _gate_tiles(W, h[k], 4, r0, r1, WT, k == 0, tmp, k & 1 == 1)
        else:
            _gate_rows(W, h[k], 4, r0, r1, tmp, k & 1 == 1)
        cell_units(A[k], tmp, v[0], r0, r1, c[k], c[k + 1], h[k + 1], K)
        return 0.0
    s = A.shape[0] - 1 - k
    back, dh = tmp[:w], tmp[w:2 * w]
    if kind == SWEEP_TILES:
        _units_back_tiles(W, A, s, r0, r1, WT, k == 0, back, tmp[2 * w:])
    else:
        _units_back(W, WT, A, s, r0, r1, back)
    _lstm_units_back(back, v[s, r0:r1], G[s], A[s], h[s + 1, r0:r1], c[s, r0:r1], dc[r0:r1], dh, r0, r1, K)
    return 0.0


@helper
def _lstm_units_back(back, g, gr, dl, out_now, c_prev, dc, dh, r0, r1, K):
    """The LSTM's backward step at units r0:r1 of one row (``_lstm_step``, ``_lstm_rows_step``): dh = back + g (the
    units' delta_{s+1} W_hh and the error injected), then their gates' deltas into dl (4n,) from the gates gr (4n,)
    (``_lstm_cell.gate_deltas_of``; dc: the units' error carried in the cell state)."""
    n = gr.shape[0] // 4
    arriving(dh, back, g, True)
    gate_deltas_of(gr[r0:r1], gr[n + r0:n + r1], gr[2 * n + r0:2 * n + r1], gr[3 * n + r0:3 * n + r1], dh,
                   out_now, c_prev, dc, dl[r0:r1], dl[n + r0:n + r1], dl[2 * n + r0:2 * n + r1],
                   dl[3 * n + r0:3 * n + r1], K)


@_jit
def _gru_step(kind, arrays, act, K, k, r0, r1, tmp):
    """Units r0:r1 of the GRU's chain's k-th step (``half``); 0."""
    A, W, v, h, G, dv, WT, An = arrays
    w = r1 - r0
    one = K[ONE]
    if kind == FORWARD or kind == FORWARD_TILES:        # step t = k + 1
        if kind == FORWARD_TILES:
            _gate_tiles(W, h[k], 3, r0, r1, WT, k == 0, tmp, k & 1 == 1)
        else:
            _gate_rows(W, h[k], 3, r0, r1, tmp, k & 1 == 1)
        _gru_units(A[k], G[k], tmp, v[0], r0, r1, h[k, r0:r1], h[k + 1, r0:r1], K)
        return 0.0
    s = A.shape[0] - 1 - k
    back, dh = tmp[:w], tmp[w:2 * w]
    if kind == SWEEP_TILES:
        _units_back_tiles(W, A, s, r0, r1, WT, k == 0, back, tmp[2 * w:])
    else:
        _units_back(W, WT, A, s, r0, r1, back)
    _gru_units_back(back, dv[r0:r1], G[min(s + 1, A.shape[0] - 1)], s == A.shape[0] - 1, v[s, r0:r1], G[s], A[s],
                    h[s, r0:r1], An[s, r0:r1], dh, r0, r1, one)
    return 0.0


@helper
def _gru_units(row, pr, rr, b, r0, r1, hp, hn, K):
    """The GRU's step at units r0:r1 of one row (``_gru_step``, ``_gru_rows_step``): row (4n,) written with those
    units' gates [r, z, n, q]; pr (3n,) the input projection; rr (3 (r1 - r0),) the units' recurrent products,
    block by block [r, z, q]; b (4n,) = [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]; hn (r1 - r0,) = (1 - z) n + z hp."""
    n = row.shape[0] // 4
    w = r1 - r0
    one = K[ONE]
    gr, gz, gn, gq = row[r0:r1], row[n + r0:n + r1], row[2 * n + r0:2 * n + r1], row[3 * n + r0:3 * n + r1]
    pr_r, pr_z, pr_n = pr[r0:r1], pr[n + r0:n + r1], pr[2 * n + r0:2 * n + r1]
    b_r, b_z, b_in, b_hn = b[r0:r1], b[n + r0:n + r1], b[2 * n + r0:2 * n + r1], b[3 * n + r0:3 * n + r1]
    rr_r, rr_z, rr_q = rr[:w], rr[w:2 * w], rr[2 * w:3 * w]
    for j in range(w):
        gr[j] = pr_r[j] + rr_r[j] + b_r[j]
    for j in range(w):
        gz[j] = pr_z[j] + rr_z[j] + b_z[j]
    activate(gr, K, LOGISTIC)
    activate(gz, K, LOGISTIC)
    for j in range(w):
        gq[j] = rr_q[j] + b_hn[j]                                            # q
    for j in range(w):
        gn[j] = tanh(pr_n[j] + b_in[j] + gr[j] * gq[j], K)                   # n
    for j in range(w):
        z = gz[j]
        hn[j] = (one - z) * gn[j] + z * hp[j]


@helper
def _gru_units_back(back, dhs, g_next, last, g, gr, dl, hp, an, dh, r0, r1, one):
    """The GRU's backward step at units r0:r1 of one row: back (r1 - r0,) the units' (delta_{s+1} W_hh), to which
    dh_{s+1} z_{s+1} is added unless this is the ``last`` step (g_next: the gates (4n,) of step s + 1); dh = back + g
    (the error injected), also left in dhs (these units' dh_{s+1} on entry); the units' deltas into dl (3n,) and an
    (``gru_bptt.row_deltas_of``) from the gates gr (4n,) and the units' h_{s} hp."""
    n = gr.shape[0] // 4
    w = r1 - r0
    if not last:
        zn = g_next[n + r0:n + r1]
        for j in range(w):
            back[j] += dhs[j] * zn[j]
    arriving(dh, back, g, True)
    for j in range(w):
        dhs[j] = dh[j]
    row_deltas_of(gr[r0:r1], gr[n + r0:n + r1], gr[2 * n + r0:2 * n + r1], gr[3 * n + r0:3 * n + r1], dh,
                  hp, an, dl[r0:r1], dl[n + r0:n + r1], dl[2 * n + r0:2 * n + r1], True, one)


@helper
def _gate_rows(W, h_prev, gates, r0, r1, tmp, odd):
    """A gated cell's forward product at units r0:r1: each of W's ``gates`` blocks' rows of those units by
    h_prev, into ``tmp``'s consecutive blocks of r1 - r0; at an ``odd`` step the blocks and their rows from the
    last to the first (``_tiles.panel_order``)."""
    n = h_prev.shape[0]
    w = r1 - r0
    for i in range(gates):
        q = panel_order(i, gates, odd)
        _gemv_rows(W[q * n + r0:q * n + r1], h_prev, tmp[q * w:(q + 1) * w], odd)


@helper
def _gate_tiles(W, h_prev, gates, r0, r1, PB, cut_now, tmp, odd):
    """``_gate_rows`` in row tiles (``FORWARD_TILES``): each gate block's units r0:r1 on panels of their columns
    of W^T, in PB's row of this half, cut when ``cut_now`` (the chain's first step); the tiles' edge in ``tmp``
    after the gates' gates·(r1 - r0) numbers."""
    n = h_prev.shape[0]
    w = r1 - r0
    wt = ROW_TILE_BYTES // W.itemsize
    count = (w + wt - 1) // wt
    P = PB[0 if r0 == 0 else 1][:gates * count * n * wt].reshape((gates, 1, count, n, wt))
    if cut_now:
        for q in range(gates):
            cols = W[q * n + r0:q * n + r1].T
            for p in range(count):
                _cut_panel(cols, P[q], 0, p)
    edge = tmp[gates * w:gates * w + wt]
    for i in range(gates):
        q = panel_order(i, gates, odd)
        row_tile_products(h_prev, P[q], tmp[q * w:(q + 1) * w], edge, odd)


@helper
def _units_back_tiles(W, A, s, r0, r1, PB, cut_now, back, edge):
    """``_units_back`` in row tiles (``SWEEP_TILES``): back = (delta_{s+1} W)'s units r0:r1 on panels of W's
    columns r0:r1 (K = W's gates·n rows), in PB's row of this half, cut when ``cut_now`` (the chain's first step,
    s = T - 1, which has no product: back = 0)."""
    P = _half_panels(W, r0, r1, PB, cut_now)
    if s == A.shape[0] - 1:
        for j in range(r1 - r0):
            back[j] = 0
    else:
        row_tile_products(A[s + 1], P, back, edge[:P.shape[3]], s & 1 == 1)


@helper
def _units_back(W, WT, A, s, r0, r1, back):
    """A gated cell's sweep at step s, units r0:r1: back = (delta_{s+1} W)'s units, from W^T's rows of them
    (WT, each half's copied at its first step, s = T - 1, which has no product: back = 0)."""
    if s == A.shape[0] - 1:
        _copy(WT[r0:r1], W[:, r0:r1].T)
        for j in range(r1 - r0):
            back[j] = 0
    else:
        _gemv_rows(WT[r0:r1], A[s + 1], back, s & 1 == 1)


@helper
def _rows_forward(W, h, k, r0, r1, gates, PB, tmp):
    """A gated cell's forward product over a batch at units r0:r1 (``lstm_rows_half``, ``gru_rows_half``): each of
    W's ``gates`` blocks' rows of those units by every row of h[k], through the tiles, into the returned view of
    tmp (B, gates·(r1 - r0)), block by block; the half's panels (PB's row: 0 for units from 0, else 1) cut at the
    chain's first step, and taken the other way round at odd steps."""
    B, n = h.shape[1], h.shape[2]
    w = r1 - r0
    pw = tile_columns(h.itemsize)
    cg = (w + pw - 1) // pw                     # panels a gate block of these units
    edge = tmp[:ROWS * pw].reshape((ROWS, pw))
    rest = tmp[ROWS * pw:]
    P = PB[0 if r0 == 0 else 1][:gates * cg * n * pw].reshape((gates, 1, cg, n, pw))
    if k == 0:
        for q in range(gates):
            for p in range(cg):
                _cut_panel(W[q * n + r0:q * n + r1].T, P[q], 0, p)
    rec = rest[:B * gates * w].reshape((B, gates * w))
    pad = rest[B * gates * w:B * gates * w + ROWS * n].reshape((ROWS, n))
    odd = k & 1 == 1
    for i in range(gates):
        q = panel_order(i, gates, odd)
        tile_products(h[k], P[q], rec[:, q * w:(q + 1) * w], edge, pad, odd)
    return rec


@helper
def _rows_back(W, A, h, s, r0, r1, PB, tmp):
    """A gated cell's backward product over a batch at step s, units r0:r1: back (B, r1 - r0) = the units' columns
    of delta_{s+1} W (W (gates·n, n), A the deltas (T, B, gates·n)), through the tiles on the half's panels of
    W's columns, cut at the last step (which has no product: back = 0); returns (back, a scratch row of r1 - r0)."""
    B = h.shape[1]
    K = W.shape[0]
    w = r1 - r0
    pw = tile_columns(h.itemsize)
    cg = (w + pw - 1) // pw
    edge = tmp[:ROWS * pw].reshape((ROWS, pw))
    rest = tmp[ROWS * pw:]
    back = rest[:B * w].reshape((B, w))
    dh = rest[B * w:(B + 1) * w]
    P = PB[0 if r0 == 0 else 1][:cg * K * pw].reshape((1, cg, K, pw))
    if s == A.shape[0] - 1:
        for p in range(cg):
            _cut_panel(W[:, r0:r1], P, 0, p)
        for b in range(B):
            for j in range(w):
                back[b, j] = 0
    else:
        pad = rest[(B + 1) * w:(B + 1) * w + ROWS * K].reshape((ROWS, K))
        tile_products(A[s + 1], P, back, edge, pad, s & 1 == 1)
    return back, dh


@_jit
def _lstm_rows_step(kind, arrays, act, K, k, r0, r1, tmp):
    """Units r0:r1 of the LSTM's chain's k-th step over a batch of rows (``lstm_rows_half``); 0."""
    A, W, v, h, c, G, dc, PB = arrays
    B = h.shape[1]
    if kind == FORWARD:         # step t = k + 1
        rec = _rows_forward(W, h, k, r0, r1, 4, PB, tmp)
        for b in range(B):
            cell_units(borrow2(A, k, b), borrow(rec, b), v[0, 0], r0, r1, borrow2(c, k, b), borrow2(c, k + 1, b),
                       borrow2(h, k + 1, b), K)
        return 0.0
    s = A.shape[0] - 1 - k
    back, dh = _rows_back(W, A, h, s, r0, r1, PB, tmp)
    for b in range(B):
        _lstm_units_back(borrow(back, b), v[s, b, r0:r1], borrow2(G, s, b), A[s, b], h[s + 1, b, r0:r1],
                         c[s, b, r0:r1], dc[b, r0:r1], dh, r0, r1, K)
    return 0.0


@_jit
def _gru_rows_step(kind, arrays, act, K, k, r0, r1, tmp):
    """Units r0:r1 of the GRU's chain's k-th step over a batch of rows (``gru_rows_half``); 0."""
    A, W, v, h, G, dv, PB, An = arrays
    B = h.shape[1]
    if kind == FORWARD:         # step t = k + 1
        rec = _rows_forward(W, h, k, r0, r1, 3, PB, tmp)
        for b in range(B):
            _gru_units(A[k, b], G[k, b], rec[b], v[0, 0], r0, r1, h[k, b, r0:r1], h[k + 1, b, r0:r1], K)
        return 0.0
    s = A.shape[0] - 1 - k
    last = s == A.shape[0] - 1
    back, dh = _rows_back(W, A, h, s, r0, r1, PB, tmp)
    for b in range(B):
        _gru_units_back(back[b], dv[b, r0:r1], G[min(s + 1, A.shape[0] - 1), b], last, v[s, b, r0:r1], G[s, b],
                        A[s, b], h[s, b, r0:r1], An[s, b, r0:r1], dh, r0, r1, K[ONE])
    return 0.0


def tile_halves(n, cut, itemsize, gates=1):
    """The numbers a half's row-tile panels take (``FORWARD_TILES``, ``SWEEP_TILES``; ``gates``: the gated cells'
    gate blocks): PB's row length."""
    w = ROW_TILE_BYTES // itemsize
    return (max(cut, n - cut) + w - 1) // w * gates * n * w


def rows_scratch(B, n, cut, itemsize, gates=4):
    """Numbers of scratch ``lstm_rows_half`` (gates = 4) or ``gru_rows_half`` (3) needs a thread, and of panels a
    half (``PB``'s rows), for B rows of n units cut at ``cut``."""
    pw = tile_columns(itemsize)
    w = max(cut, n - cut)
    cg = (w + pw - 1) // pw
    return ROWS * pw + max(B * gates * w + ROWS * n, (B + 1) * w + ROWS * gates * n), gates * cg * n * pw


def _with_step(fn, step, name):
    """A copy of the loop ``fn`` under its own name (Numba's cache keys its entries by the name) whose
    ``_step`` is ``step``: one claim loop for every cell's chain, each compiled with its steps inlined."""
    twin = types.FunctionType(fn.__code__, dict(fn.__globals__, _step=step), name, fn.__defaults__,
                              fn.__closure__)
    twin.__qualname__ = name
    twin.__module__ = fn.__module__
    twin.__doc__ = fn.__doc__
    return twin


lstm_half = _jit(_with_step(half, _lstm_step, "lstm_half"))
gru_half = _jit(_with_step(half, _gru_step, "gru_half"))
lstm_rows_half = _jit(_with_step(half, _lstm_rows_step, "lstm_rows_half"))
gru_rows_half = _jit(_with_step(half, _gru_rows_step, "gru_rows_half"))
half = _jit(half)
