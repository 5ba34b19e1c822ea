"""A batch of one's forward chain and backward sweep on two threads that meet at every step (the simple
cell; SPEC §2-4).

At B = 1 each step is one matrix-vector product, bound by how fast one core reads W_rec from its cache,
and the next step needs the whole state. Numba's pool cannot share a step out cheaply (a launch a step,
about 1.5 us: ``_panels._gemv_parts``). Here two threads each run the whole time loop and own half of the
state's units: each computes its half of h_t from all of h_{t-1}, so each reads only its half of W_rec (its
own cache's), and they meet through flags, one per half and step, claimed by compare-and-set (``_sync``).

A thread that finds the other's half of a step still free after ``grace`` polls takes it too, and keeps
taking the other's halves at once until the other claims one again: a thread the system holds back (a
busy machine, a helper not yet started) slows the call to one thread's pace, never stops it. Whichever
thread computes a half, it computes it with the same arithmetic: the states do not depend on timing.
"""
import numpy as np

from ._activations import activate, constants, scale_by_dphi
from ._jit import _jit, helper
from ._panels import _gemv_rows
from ._sync import claim, load_acquire, store_release

FREE, TAKEN, DONE = 0, 1, 2


@_jit
def _half_step(h, W_rec, b, act, K, t, r0, r1, tmp):
    """Rows r0:r1 of h[t + 1] (holding the input projection) from all of h[t]; returns their sum."""
    row = h[t + 1, r0:r1]
    part = tmp[:r1 - r0]
    _gemv_rows(W_rec[r0:r1], h[t], part)
    for k in range(r1 - r0):
        row[k] += b[r0 + k] + part[k]
    activate(row, K, act)
    total = 0.0
    for k in range(r1 - r0):
        total += row[k]
    return total


@_jit
def forward_half(h, W_rec, b, act, cut, mine, flags, grace):
    """Run ``h_t = phi(h_t + W_rec h_{t-1} + b)`` for t = 1..T with another thread that runs this function
    on the same arrays with the other ``mine``.

    h (T + 1, n): h[0] the initial state; h[1:] the input projection x_t W_in^T on entry, the states on
    return. W_rec (n, n), b (n,), one float dtype, C-contiguous; act: activation code (``_activations``).
    cut: units 0:cut are half 0, cut:n half 1 (a multiple of 4, for the same row groups in ``_gemv_rows``
    as a whole product, and best of a cache line). mine: 0 or 1, the half this thread takes first.
    flags (2 T,) int64, FREE on entry: flags[2 t + k] for half k of step t (TAKEN, then DONE).
    grace: polls to wait for the other thread to claim its half of a step before taking it.

    Returns (the sum of the states this thread wrote, in float64: finite only if they all are; the
    halves of the other's it took).
    """
    T = h.shape[0] - 1
    n = h.shape[1]
    K = constants(h)
    bounds = (0, cut, n)
    other = 1 - mine
    tmp = np.empty(max(cut, n - cut), dtype=h.dtype)
    total = 0.0
    taken = 0
    alone = False
    for t in range(T):
        own, theirs = 2 * t + mine, 2 * t + other
        if claim(flags, own, FREE, TAKEN):
            total += _half_step(h, W_rec, b, act, K, t, bounds[mine], bounds[mine + 1], tmp)
            store_release(flags, own, DONE)
        if _theirs_free(flags, theirs, grace, alone):
            total += _half_step(h, W_rec, b, act, K, t, bounds[other], bounds[other + 1], tmp)
            store_release(flags, theirs, DONE)
            taken += 1
            alone = True
        else:
            alone = False
        _wait_done(flags, theirs, own)
    return total, taken


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
def _sweep_step(D, WT, g, h, act, K, s, r0, r1, tmp):
    """Rows r0:r1 of delta_s = phi'(a_s) * (g_s + delta_{s+1} W_rec) into D[s], from all of D[s + 1]
    (none at the last step)."""
    T = D.shape[0]
    row = D[s, r0:r1]
    part = tmp[:r1 - r0]
    if s == T - 1:
        for k in range(r1 - r0):
            part[k] = 0
    else:
        _gemv_rows(WT[r0:r1], D[s + 1], part)
    gs = g[s, r0:r1]
    for k in range(r1 - r0):
        row[k] = part[k] + gs[k]
    scale_by_dphi(row, h[s + 1, r0:r1], K, act)


@_jit
def sweep_half(D, WT, g, h, act, cut, mine, flags, grace):
    """Exact BPTT's delta recursion (``bptt._bptt_sweep`` with one sweep over all steps, no teacher
    forcing) with another thread that runs this function on the same arrays with the other ``mine``.

    D (T, n), overwritten with delta_s; WT (n, n) W_rec transposed, C-contiguous; g (T, n) the errors the loss
    injects; h (T + 1, n) the states of the forward pass; one float dtype. act, cut, mine, flags (2 T,) and
    grace as in ``forward_half`` (flags[2 k + half] for the k-th step of the sweep, s = T - 1 - k).
    Returns the halves of the other's this thread took.
    """
    T, n = D.shape
    K = constants(D)
    bounds = (0, cut, n)
    other = 1 - mine
    tmp = np.empty(max(cut, n - cut), dtype=D.dtype)
    taken = 0
    alone = False
    for k in range(T):
        s = T - 1 - k
        own, theirs = 2 * k + mine, 2 * k + other
        if claim(flags, own, FREE, TAKEN):
            _sweep_step(D, WT, g, h, act, K, s, bounds[mine], bounds[mine + 1], tmp)
            store_release(flags, own, DONE)
        if _theirs_free(flags, theirs, grace, alone):
            _sweep_step(D, WT, g, h, act, K, s, bounds[other], bounds[other + 1], tmp)
            store_release(flags, theirs, DONE)
            taken += 1
            alone = True
        else:
            alone = False
        _wait_done(flags, theirs, own)
    return taken
