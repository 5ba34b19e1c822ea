"""Exact RTRL for the GRU: O(n^4) per step (SPEC §5, §6a; the recursion is written out in
``fastrnn.reference.gru``)."""
import numpy as np
from numba import prange

from ._activations import ONE, constants
from ._jit import kernel


@kernel("tiles", reads=("W_hh", "x", "h", "gates", "g"))
def _gru_rtrl(W_hh, x, h, gates, g, tiles, P, dW, nblocks):
    """Propagate the GRU sensitivities over T steps and accumulate the weight gradient.

    With W = [W_ih | b_ih | W_hh | b_hh] (3n, J), J = m + n + 2, z^_t = [x_t; 1; h_{t-1}; 1]:

        A_t = W_hh P_{t-1}                                  (3n x 3n J: blocks A_r, A_z, A_q)
        A_r[k] += z^ at row p = k;   A_z[k] += z^ at p = n + k;   A_q[k] += [0; 0; h; 1] at p = 2n + k
        P_t[k] = z P_{t-1}[k] + c_n (r A_q[k] + q r' A_r[k]) + c_z A_z[k],  then + c_n [x; 1; 0; 0] at p = 2n + k
        dW += sum_k g_t[k] P_t[k]
    with c_n = (1 - z)(1 - n^2), c_z = (h_{t-1} - n) z (1 - z), r' = r (1 - r).

    The columns (p, j) are independent, so they are cut into tiles of whole rows p of W; each tile
    runs all T steps on its own: one GEMM ``W_hh @ P_tile`` (3n x n by n x w) into a scratch block,
    then one fused pass that updates P in place (each column depends only on its own old value).

    Array contract (one float dtype, C-contiguous):

    W_hh (3n, n); x (T, B, m); h (T + 1, B, n) and gates (T, B, 4n) = [r, z, n, q] from
    ``_gru_forward``; g (T, B, n) the error injected into h_t.
    tiles (ntiles + 1,) int64 increasing from 0 to 3n: tile q holds rows p in [tiles[q], tiles[q+1]).
    P (B, n * 3n * J): for sequence b and tile q (rows p0..p1, w = (p1 - p0) J), the slice
        starting at n * p0 * J, viewed as (n, w), holds P[k, p, j] at [k, (p - p0) J + j]. It holds
        P_0 on entry and P_T on return.
    dW (3n, J): the gradient is *added* to it.
    nblocks: the tiles are split into this many contiguous blocks, one per parallel task; a task
        owns dW[p] and the P columns of its tiles, so no two tasks write the same element.
    """
    T, B, m = x.shape
    n = W_hh.shape[1]
    J = m + n + 2
    ntiles = tiles.shape[0] - 1
    K = constants(P)
    one = K[ONE]
    dWf = dW.reshape(3 * n * J)
    wmax = 0
    for q in range(ntiles):
        wmax = max(wmax, (tiles[q + 1] - tiles[q]) * J)
    for blk in prange(nblocks):
        scratch = np.empty(3 * n * wmax, dtype=P.dtype)
        for tq in range(blk * ntiles // nblocks, (blk + 1) * ntiles // nblocks):
            p0 = tiles[tq]
            p1 = tiles[tq + 1]
            w = (p1 - p0) * J
            off = n * p0 * J
            grad = dWf[p0 * J:p1 * J]
            A = scratch[:3 * n * w].reshape(3 * n, w)
            for b in range(B):
                pk = P[b, off:off + n * w].reshape(n, w)
                for t in range(T):
                    np.dot(W_hh, pk, A)
                    for p in range(p0, p1):                # the direct terms of r, z and q
                        block = p // n
                        k = p - block * n
                        base = (p - p0) * J
                        row = A[block * n + k]
                        if block < 2:
                            for j in range(m):
                                row[base + j] += x[t, b, j]
                            row[base + m] += one
                        for j in range(n):
                            row[base + m + 1 + j] += h[t, b, j]
                        row[base + m + 1 + n] += one
                    for k in range(n):
                        r = gates[t, b, k]
                        z = gates[t, b, n + k]
                        nk = gates[t, b, 2 * n + k]
                        q = gates[t, b, 3 * n + k]
                        cn = (one - z) * (one - nk * nk)
                        cr = cn * q * r * (one - r)
                        cq = cn * r
                        cz = (h[t, b, k] - nk) * z * (one - z)
                        ar = A[k]
                        az = A[n + k]
                        aq = A[2 * n + k]
                        prow = pk[k]
                        for col in range(w):
                            prow[col] = z * prow[col] + cr * ar[col] + cq * aq[col] + cz * az[col]
                        p = 2 * n + k                      # the input side of the n gate: c_n [x; 1]
                        if p0 <= p < p1:
                            base = (p - p0) * J
                            for j in range(m):
                                prow[base + j] += cn * x[t, b, j]
                            prow[base + m] += cn
                        gk = g[t, b, k]
                        for col in range(w):
                            grad[col] += gk * prow[col]
