"""Exact real-time recurrent learning, the O(n^4)-per-step sensitivity update (SPEC §5)."""
import numpy as np
from numba import prange

from ._activations import constants, dphi_from_h
from ._jit import kernel


@kernel
def _rtrl(W_rec, x, h_prev, h, g, act, tf, tf_units, tf_mask, tiles, P, Q, dW, nblocks):
    """Propagate the sensitivities over T steps and accumulate the weight gradient.

    With W = [W_in | b | W_rec] (n, J), J = m + 1 + n, and z_t = [x_t; 1; h_{t-1}]:

        P_t[k, i, j] = phi'(a_t[k]) (sum_l W_rec[k, l] P_{t-1}[l, i, j] + delta_ki z_t[j])
        dW[i, j] += sum_k g_t[k] P_t[k, i, j]

    The columns (i, j) of P evolve independently, so they are cut into tiles of whole rows i of
    W; each tile runs all T steps on its own: one GEMM ``W_rec @ P_tile`` (n x n by n x w) into a
    second buffer, then one fused pass that adds the z term, scales by phi', accumulates the
    gradient and zeroes teacher-forced rows, while the tile is still in cache.

    Array contract (one float dtype, C-contiguous):

    W_rec (n, n); x (T, B, m); h_prev (T, B, n) the states fed into each step (teacher-forced
    where that applies); h (T + 1, B, n) the unforced states (phi' is read from h[1:]);
    g (T, B, n) the error injected into h_t.
    tf, tf_units (o,), tf_mask (T, B, o): with tf, the sensitivities of output unit tf_units[q]
        are zeroed after step t wherever tf_mask[t, b, q] != 0 (after its gradient is taken).
    tiles (ntiles + 1,) int64, increasing from 0 to n: tile q holds the rows i in
        [tiles[q], tiles[q + 1]).
    P, Q (B, n * n * J): for sequence b and tile q with rows i0..i1, the slice starting at
        n * i0 * J, viewed as (n, (i1 - i0) * J), holds P[k, i, j] at [k, (i - i0) * J + j].
        P holds P_0 on entry; Q is scratch. They are used as a double buffer: after the call
        P_T is in P if T is even and in Q if T is odd (the return value is T % 2).
    dW (n, J): the gradient is *added* to it.
    nblocks: the tiles are split into this many contiguous blocks, one per parallel task; a task
        owns dW[i] and the P columns of its tiles, so no two tasks write the same element.
    """
    T, B, m = x.shape
    n = W_rec.shape[0]
    J = m + 1 + n
    ntiles = tiles.shape[0] - 1
    K = constants(P)
    one = K[19]
    for blk in prange(nblocks):
        z = np.empty(J, dtype=P.dtype)
        s = np.empty(n, dtype=P.dtype)
        for q in range(blk * ntiles // nblocks, (blk + 1) * ntiles // nblocks):
            i0 = tiles[q]
            i1 = tiles[q + 1]
            w = (i1 - i0) * J
            off = n * i0 * J
            for b in range(B):
                src = P[b, off:off + n * w].reshape(n, w)
                dst = Q[b, off:off + n * w].reshape(n, w)
                for t in range(T):
                    np.dot(W_rec, src, dst)
                    # explicit loops: array expressions inside prange trip Numba's parfor fusion
                    for j in range(m):
                        z[j] = x[t, b, j]
                    z[m] = one
                    for k in range(n):
                        z[m + 1 + k] = h_prev[t, b, k]
                        s[k] = dphi_from_h(h[t + 1, b, k], K, act)
                    for k in range(n):
                        sk = s[k]
                        gk = g[t, b, k]
                        row = dst[k]
                        for il in range(i1 - i0):
                            i = i0 + il
                            acc = dW[i]
                            base = il * J
                            if k == i:
                                for j in range(J):
                                    v = sk * (row[base + j] + z[j])
                                    row[base + j] = v
                                    acc[j] += gk * v
                            else:
                                for j in range(J):
                                    v = sk * row[base + j]
                                    row[base + j] = v
                                    acc[j] += gk * v
                    if tf:
                        for qq in range(tf_units.shape[0]):
                            if tf_mask[t, b, qq] != 0:
                                row = dst[tf_units[qq]]
                                for c in range(w):
                                    row[c] = 0
                    src, dst = dst, src
    return T % 2
