"""The LSTM cell's per-row arithmetic, shared by the LSTM and the projected LSTM (``lstmp``).

Both cells run the same gates and cell state; they differ in what leaves the cell: the LSTM's
state is h = o ⊙ tanh(c), the projected LSTM's is W_hr (o ⊙ tanh(c)). So the forward step writes
o ⊙ tanh(c) into the array it is given, and the backward step takes the error arriving at it.
Caution (``_jit``): after editing this file, delete ``kernels/__pycache__``.
"""
from ._activations import LOGISTIC, ONE, TANH, ZERO, activate, tanh
from ._jit import helper


@helper
def cell_step(row, rr, bias, c_prev, c_next, out, K):
    """One step of one batch row: ``row`` (4n,) holds x W_ih^T on entry and leaves with the gates
    [i, f, g, o] after their nonlinearities (rr: the recurrent product, bias = b_ih + b_hh);
    c_next = f ⊙ c_prev + i ⊙ g, out = o ⊙ tanh(c_next)."""
    n = c_prev.shape[0]
    for k in range(4 * n):
        row[k] += bias[k] + rr[k]
    activate(row[:2 * n], K, LOGISTIC)
    activate(row[2 * n:3 * n], K, TANH)
    activate(row[3 * n:], K, LOGISTIC)
    for k in range(n):
        cc = row[n + k] * c_prev[k] + row[k] * row[2 * n + k]
        c_next[k] = cc
        out[k] = row[3 * n + k] * tanh(cc, K)


@helper
def cell_units(row, rr, bias, r0, r1, c_prev, c_next, out, K):
    """``cell_step`` for the units r0:r1 of a row (``chain``: each of two threads its units): row (4n,) and
    bias (4n,) whole, rr (4 (r1 - r0),) the recurrent product of those units' gate rows, block by block
    [i, f, g, o]; c_prev, c_next and out (n,) whole, their units r0:r1 written."""
    n = c_prev.shape[0]
    w = r1 - r0
    for q in range(4):
        gate = row[q * n + r0:q * n + r1]
        b = bias[q * n + r0:q * n + r1]
        r = rr[q * w:(q + 1) * w]
        for k in range(w):
            gate[k] += b[k] + r[k]
        activate(gate, K, TANH if q == 2 else LOGISTIC)
    gi, gf, gg, go = row[r0:r1], row[n + r0:n + r1], row[2 * n + r0:2 * n + r1], row[3 * n + r0:3 * n + r1]
    cp, cn, h = c_prev[r0:r1], c_next[r0:r1], out[r0:r1]
    for k in range(w):
        cc = gf[k] * cp[k] + gi[k] * gg[k]
        cn[k] = cc
        h[k] = go[k] * tanh(cc, K)


@helper
def gate_deltas(gr, dout, out_now, c_prev, dc, dl, K):
    """The backward step of one batch row, in short loops over few arrays each so that LLVM
    vectorises every one of them:

        dc_t = dout o tanh'(c_t) + dc   (dc holds dc_{t+1} f_{t+1} on entry)
        dl = delta_t = [dc g i(1-i); dc c_{t-1} f(1-f); dc i (1-g^2); dout tanh(c_t) o(1-o)]

    gr (4n,) the gates of step t, dout (n,) the error arriving at o ⊙ tanh(c_t), out_now (n,) that
    value as the forward step stored it, c_prev = c_{t-1}. dc leaves holding dc_t f_t, what the step
    before adds to.

    tanh(c_t) is taken as out_now / o, a division where the forward step's tanh costs a polynomial
    and a division (float32 n=128 B=8: 1.7-1.9 ns a unit for tanh alone, ad hoc). It is within about
    an ulp of tanh(c_t) wherever out_now is a normal number; where o is so small that it is not,
    every term that reads it is multiplied by o, and where o = 0 (NumPy's logistic underflows below
    -88 in float32) the quotient is taken as 0, where it changes nothing either. The output gate's
    delta needs no quotient: tanh(c_t) o = out_now.

    Each gate block is its own view (``gi``, ``di``, ...): a loop that stores into one array at
    offsets k, n + k, 2n + k stays scalar, since LLVM cannot rule out that the blocks overlap for
    a short n (float32 n=128: 1.44 ns a unit with offsets, 0.47 with views, one AMD EPYC thread).
    """
    n = dout.shape[0]
    gate_deltas_of(gr[:n], gr[n:2 * n], gr[2 * n:3 * n], gr[3 * n:], dout, out_now, c_prev, dc,
                   dl[:n], dl[n:2 * n], dl[2 * n:3 * n], dl[3 * n:], K)


@helper
def gate_deltas_of(gi, gf, gg, go, dout, out_now, c_prev, dc, di, df, dg, do, K):
    """``gate_deltas`` on the gates' blocks as views of their own: gi, gf, gg, go the gates, di, df, dg, do
    their deltas, of the units dout (and the other arrays) hold; a row's whole, or some units of it
    (``chain``)."""
    n = dout.shape[0]
    one = K[ONE]
    zero = K[ZERO]
    for k in range(n):
        o = go[k]
        t = out_now[k] / o if o > zero else zero
        dc[k] += dout[k] * o * (one - t * t)
        do[k] = dout[k] * out_now[k] * (one - o)
    for k in range(n):
        i = gi[k]
        f = gf[k]
        g = gg[k]
        d = dc[k]
        di[k] = d * g * i * (one - i)
        df[k] = d * c_prev[k] * f * (one - f)
        dg[k] = d * i * (one - g * g)
        dc[k] = d * f
