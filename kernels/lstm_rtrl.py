"""Exact RTRL for the LSTM over the state (h, c): O(n^4) per step (SPEC §5, §6)."""
import numpy as np
from numba import prange

from ._activations import ONE, constants, tanh
from ._jit import kernel


@kernel("tiles", reads=("W_hh", "x", "h", "c", "gates", "g"))
def _lstm_rtrl(W_hh, x, h, c, gates, g, tiles, Ph, Pc, dW, nblocks):
    """Propagate the LSTM sensitivities over T steps and accumulate the weight gradient.

    With W = [W_ih | b | W_hh] (4n, J), J = m + 1 + n, z_t = [x_t; 1; h_{t-1}]:

        A_t = W_hh Ph_{t-1} + E_t            (E_t[r, p, j] = delta_rp z_t[j]; A is (4n, 4n, J))
        Pc_t[k] = f Pc_{t-1}[k] + c_{t-1} f' A_f[k] + g i' A_i[k] + i g' A_g[k]
        Ph_t[k] = tanh(c_t) o' A_o[k] + o tanh'(c_t) Pc_t[k]
        dW += sum_k g_t[k] Ph_t[k]

    The columns (p, j) are independent, so they are cut into tiles of whole rows p of W; each
    tile runs all T steps on its own: one GEMM ``W_hh @ Ph_tile`` (4n x n by n x w) into a scratch
    block, then one fused pass that updates Pc and Ph in place (both depend only on their own
    column) and accumulates the gradient.

    Array contract (one float dtype, C-contiguous):

    W_hh (4n, n); x (T, B, m); h, c (T + 1, B, n) and gates (T, B, 4n) from ``_lstm_forward``;
    g (T, B, n) the error injected into h_t.
    tiles (ntiles + 1,) int64 increasing from 0 to 4n: tile q holds rows p in [tiles[q], tiles[q+1]).
    Ph, Pc (B, n * 4n * J): for sequence b and tile q (rows p0..p1, w = (p1 - p0) J), the slice
        starting at n * p0 * J, viewed as (n, w), holds P[k, p, j] at [k, (p - p0) J + j].
        They hold P_0 on entry and P_T on return.
    dW (4n, J): the gradient is *added* to it.
    nblocks: the tiles are split into this many contiguous blocks, one per parallel task; a task
        owns dW[p] and the P columns of its tiles, so no two tasks write the same element.
    """
    T, B, m = x.shape
    n = W_hh.shape[1]
    J = m + 1 + n
    ntiles = tiles.shape[0] - 1
    K = constants(Ph)
    one = K[ONE]
    dWf = dW.reshape(4 * n * J)
    wmax = 0
    for q in range(ntiles):
        wmax = max(wmax, (tiles[q + 1] - tiles[q]) * J)
    for blk in prange(nblocks):
        scratch = np.empty(4 * n * wmax, dtype=Ph.dtype)
        for q in range(blk * ntiles // nblocks, (blk + 1) * ntiles // nblocks):
            p0 = tiles[q]
            p1 = tiles[q + 1]
            w = (p1 - p0) * J
            off = n * p0 * J
            grad = dWf[p0 * J:p1 * J]
            A = scratch[:4 * n * w].reshape(4 * n, w)
            for b in range(B):
                ph = Ph[b, off:off + n * w].reshape(n, w)
                pc = Pc[b, off:off + n * w].reshape(n, w)
                for t in range(T):
                    np.dot(W_hh, ph, A)
                    for p in range(p0, p1):          # + E_t
                        row = A[p]
                        base = (p - p0) * J
                        for j in range(m):
                            row[base + j] += x[t, b, j]
                        row[base + m] += one
                        for j in range(n):
                            row[base + m + 1 + j] += h[t, b, j]
                    for k in range(n):
                        i = gates[t, b, k]
                        f = gates[t, b, n + k]
                        gg = gates[t, b, 2 * n + k]
                        o = gates[t, b, 3 * n + k]
                        tc = tanh(c[t + 1, b, k], K)
                        ci = gg * i * (one - i)
                        cf = c[t, b, k] * f * (one - f)
                        cg = i * (one - gg * gg)
                        co = tc * o * (one - o)
                        cc = o * (one - tc * tc)
                        gk = g[t, b, k]
                        ai = A[k]
                        af = A[n + k]
                        ag = A[2 * n + k]
                        ao = A[3 * n + k]
                        pck = pc[k]
                        phk = ph[k]
                        for col in range(w):
                            vc = f * pck[col] + cf * af[col] + ci * ai[col] + cg * ag[col]
                            pck[col] = vc
                            vh = co * ao[col] + cc * vc
                            phk[col] = vh
                            grad[col] += gk * vh
