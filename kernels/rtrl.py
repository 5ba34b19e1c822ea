"""Exact real-time recurrent learning, the O(n^4)-per-step sensitivity update (SPEC §5)."""
import numpy as np
from numba import prange

from ._activations import ONE, ZERO, constants, dphi_from_h
from ._jit import kernel


@kernel("tiles", reads=("W_rec", "x", "h_prev", "h", "g"))
def _rtrl(W_rec, x, h_prev, h, g, act, tf, tf_units, tf_mask, tiles, s0, Q, R, dW, nblocks):
    """Propagate the sensitivities over T steps and accumulate the weight gradient.

    SPEC §5, with W = [W_in | b | W_rec] (n, J), J = m + 1 + n, z_t = [x_t; 1; h_{t-1}],
    s_t = phi'(a_t):

        P_t = diag(s_t) Q_t,   Q_t = W_rec P_{t-1} + E_t   (E_t[k, i, j] = delta_ki z_t[j])
        dW += (g_t * s_t)^T Q_t

    The kernel keeps Q rather than P, so no pass over the n x n*J numbers is needed to scale
    them: s goes into the columns of the next product, Q_t = (W_rec diag(s~_{t-1})) Q_{t-1} + E_t
    (s~ is s with teacher-forced units zeroed), and the gradient of step t-1 rides along as one
    more row of that product: [W_rec diag(s~_{t-1}); (g_{t-1} s_{t-1})^T] @ Q_{t-1}. Outside the
    GEMM each step only adds z_t on the diagonal blocks and one gradient row (O(n J)).
    The columns (i, j) are independent, so they are cut into tiles of whole rows i of W; each
    tile runs all T steps on its own, in cache.

    Array contract (one float dtype, C-contiguous):

    W_rec (n, n); x (T, B, m); h_prev (T, B, n) the states fed into each step (teacher-forced
    where that applies); h (T + 1, B, n) the unforced states (s is read from h[1:]);
    g (T, B, n) the error injected into h_t.
    tf, tf_units (o,), tf_mask (T, B, o): with tf, output unit tf_units[q] passes no sensitivity
        on from step t wherever tf_mask[t, b, q] != 0 (its own gradient at t is kept).
    tiles (ntiles + 1,) int64, increasing from 0 to n: tile q holds the rows i in
        [tiles[q], tiles[q + 1]).
    s0 (B, n): s~ of the step before the first (so that P_0 = diag(s0) Q_0).
    Q, R (B, (n + 1) * n * J): for sequence b and tile q with rows i0..i1 (w = (i1 - i0) J), the
        slice starting at (n + 1) * i0 * J, viewed as (n + 1, w), holds Q[k, i, j] at
        [k, (i - i0) J + j]; its last row is scratch. Q holds Q_0 on entry, R is scratch; after
        the call Q_T is in Q if T is even and in R if T is odd (the return value is T % 2).
    dW (n, J): the gradient is *added* to it.
    nblocks: the tiles are split into this many contiguous blocks, one per parallel task; a task
        owns dW[i] and the Q columns of its tiles, so no two tasks write the same element.
    """
    T, B, m = x.shape
    n = W_rec.shape[0]
    J = m + 1 + n
    ntiles = tiles.shape[0] - 1
    K = constants(Q)
    zero = K[ZERO]
    dWf = dW.reshape(n * J)
    for blk in prange(nblocks):
        A = np.empty((n + 1, n), dtype=Q.dtype)     # [W_rec diag(s~); (g s)^T]
        st = np.empty(n, dtype=Q.dtype)             # s~ of the previous step
        gs = np.empty(n, dtype=Q.dtype)             # g * s of the previous step
        for q in range(blk * ntiles // nblocks, (blk + 1) * ntiles // nblocks):
            i0 = tiles[q]
            i1 = tiles[q + 1]
            w = (i1 - i0) * J
            off = (n + 1) * i0 * J
            grad = dWf[i0 * J:i1 * J]
            for b in range(B):
                src = Q[b, off:off + (n + 1) * w].reshape(n + 1, w)
                dst = R[b, off:off + (n + 1) * w].reshape(n + 1, w)
                for l in range(n):
                    st[l] = s0[b, l]
                    gs[l] = zero                     # step 0's gradient belongs to an earlier call
                for t in range(T):
                    for k in range(n):
                        for l in range(n):
                            A[k, l] = W_rec[k, l] * st[l]
                    for l in range(n):
                        A[n, l] = gs[l]
                    np.dot(A, src[:n], dst)
                    last = dst[n]
                    for c in range(w):
                        grad[c] += last[c]
                    for il in range(i1 - i0):        # + E_t: z_t on the diagonal blocks
                        row = dst[i0 + il]
                        base = il * J
                        for j in range(m):
                            row[base + j] += x[t, b, j]
                        row[base + m] += K[ONE]
                        for j in range(n):
                            row[base + m + 1 + j] += h_prev[t, b, j]
                    for k in range(n):
                        sk = dphi_from_h(h[t + 1, b, k], K, act)
                        gs[k] = g[t, b, k] * sk
                        st[k] = sk
                    if tf:
                        for qq in range(tf_units.shape[0]):
                            if tf_mask[t, b, qq] != 0:
                                st[tf_units[qq]] = zero
                    src, dst = dst, src
                # the gradient of the last step: (g_T s_T)^T Q_T
                for l in range(n):
                    A[n, l] = gs[l]
                np.dot(A[n], src[:n], dst[n])
                last = dst[n]
                for c in range(w):
                    grad[c] += last[c]
    return T % 2
