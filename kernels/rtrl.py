"""Exact real-time recurrent learning, the O(n^4)-per-step sensitivity update (SPEC §5)."""
import numpy as np
from numba import prange

from ._activations import dphi_from_h
from ._jit import kernel


@kernel
def _rtrl(W_rec, x, h_prev, h, g, act, tf, tf_units, tf_mask, P, Q, dW, nblocks):
    """Propagate the sensitivities over T steps and accumulate the weight gradient.

    With W = [W_in | b | W_rec] (n, J), J = m + 1 + n, and z_t = [x_t; 1; h_{t-1}]:

        P_t[k, i, j] = phi'(a_t[k]) (sum_l W_rec[k, l] P_{t-1}[l, i, j] + delta_ki z_t[j])
        dW[i, j] += sum_k g_t[k] P_t[k, i, j]

    Array contract (one float dtype, C-contiguous):

    W_rec (n, n); x (T, B, m); h_prev (T, B, n) the states fed into each step (teacher-forced
    where that applies); h (T + 1, B, n) the unforced states (phi' is read from h[1:]);
    g (T, B, n) the error injected into h_t.
    tf, tf_units (o,), tf_mask (T, B, o): with tf, the sensitivities of output unit tf_units[q]
        are zeroed after step t wherever tf_mask[t, b, q] != 0 (after its gradient is taken).
    P, Q (n, B, n, J): P holds P_0 per sequence b as P[:, b] (k, i, j); Q is scratch. The two are
        used as a double buffer: after the call P_T is in P if T is even and in Q if T is odd
        (the return value is T % 2).
    dW (n, J): the gradient is *added* to it.
    nblocks: the rows i of W are split into this many blocks, one per parallel task; each task
        owns dW[i, :] and P[:, :, i, :] of its rows, so no two tasks write the same element.

    Per step: one GEMM ``W_rec @ P`` over all sequences (n x n by n x B*n*J), then a single fused
    pass that adds the z term, scales by phi' and accumulates the gradient. No allocation per step.
    """
    T, B, m = x.shape
    n = W_rec.shape[0]
    J = m + 1 + n
    one = np.ones(1, dtype=P.dtype)[0]
    z = np.empty((B, J), dtype=P.dtype)
    s = np.empty((B, n), dtype=P.dtype)
    forced = np.zeros((B, n), dtype=np.bool_)
    src, dst = P, Q
    for t in range(T):
        for b in range(B):
            z[b, :m] = x[t, b]
            z[b, m] = one
            z[b, m + 1:] = h_prev[t, b]
            for k in range(n):
                s[b, k] = dphi_from_h(h[t + 1, b, k], one, act)
            if tf:
                for q in range(tf_units.shape[0]):
                    forced[b, tf_units[q]] = tf_mask[t, b, q] != 0
        np.dot(W_rec, src.reshape(n, B * n * J), dst.reshape(n, B * n * J))
        for blk in prange(nblocks):
            for i in range(blk * n // nblocks, (blk + 1) * n // nblocks):
                acc = dW[i]
                for b in range(B):
                    zb = z[b]
                    for k in range(n):
                        sk = s[b, k]
                        gk = g[t, b, k]
                        row = dst[k, b, i]
                        if k == i:
                            for j in range(J):
                                v = sk * (row[j] + zb[j])
                                row[j] = v
                                acc[j] += gk * v
                        else:
                            for j in range(J):
                                v = sk * row[j]
                                row[j] = v
                                acc[j] += gk * v
                        if tf and forced[b, k]:
                            row[:] = 0
        src, dst = dst, src
    return T % 2
