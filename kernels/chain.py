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
from ._rows import arriving
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
    arriving(row, part, g[s, r0:r1], True)
    scale_by_dphi(row, h[s + 1, r0:r1], K, act)


FORWARD, SWEEP = 0, 1


@_jit
def half(kind, A, W, v, h, act, cut, mine, flags, grace):
    """One thread's part of a chain that another thread runs with the other ``mine`` on the same arrays.

    ``FORWARD``: ``h_t = phi(h_t + W_rec h_{t-1} + b)`` for t = 1..T. A (T + 1, n): A[0] the initial state;
    A[1:] the input projection x_t W_in^T on entry, the states on return. W = W_rec (n, n), v = b as (1, n);
    h: A read-only (not read).
    ``SWEEP``: exact BPTT's delta recursion (``bptt._bptt_sweep`` with one sweep over all steps, no teacher
    forcing), delta_s = phi'(a_s) * (g_s + delta_{s+1} W_rec), s = T - 1..0. A = D (T, n), overwritten; W =
    W_rec^T (n, n), C-contiguous; v = g (T, n) the errors the loss injects; h (T + 1, n) the forward states.

    One float dtype throughout, C-contiguous; act: activation code (``_activations``). cut: units 0:cut are
    half 0, cut:n half 1 (a multiple of 4, for the same row groups in ``_gemv_rows`` as a whole product, and best
    of a cache line). mine: 0 or 1, the half this thread takes first. flags (2 T,) int64, FREE on entry:
    flags[2 k + half] for the k-th step of the chain (TAKEN, then DONE). grace: polls to wait for the other
    thread to claim its half of a step before taking it.

    Returns (the sum of the states this thread wrote, in float64: finite only if they all are; 0 for a sweep;
    the halves of the other's it took).
    """
    n = A.shape[1]
    T = A.shape[0] - 1 if kind == FORWARD else A.shape[0]
    K = constants(A)
    bounds = (0, cut, n)
    other = 1 - mine
    tmp = np.empty(max(cut, n - cut), dtype=A.dtype)
    total = 0.0
    taken = 0
    alone = False
    for k in range(T):
        own, theirs = 2 * k + mine, 2 * k + other
        if claim(flags, own, FREE, TAKEN):
            total += _step(kind, A, W, v, h, act, K, k, bounds[mine], bounds[mine + 1], tmp)
            store_release(flags, own, DONE)
        if _theirs_free(flags, theirs, grace, alone):
            total += _step(kind, A, W, v, h, act, K, k, bounds[other], bounds[other + 1], tmp)
            store_release(flags, theirs, DONE)
            taken += 1
            alone = True
        else:
            alone = False
        _wait_done(flags, theirs, own)
    return total, taken


@_jit
def _step(kind, A, W, v, h, act, K, k, r0, r1, tmp):
    """Rows r0:r1 of the chain's k-th step (``half``): the sum of the states written, 0 for a sweep."""
    if kind == FORWARD:
        return _half_step(A, W, v[0], act, K, k, r0, r1, tmp)
    _sweep_step(A, W, v, h, act, K, A.shape[0] - 1 - k, r0, r1, tmp)
    return 0.0
