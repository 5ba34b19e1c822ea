"""The LSTM cell's per-row arithmetic, shared by the LSTM and the projected LSTM (``lstmp``).

Both cells run the same gates and cell state; they differ in what leaves the cell: the LSTM's
state is h = o ⊙ tanh(c), the projected LSTM's is W_hr (o ⊙ tanh(c)). So the forward step writes
o ⊙ tanh(c) into the array it is given, and the backward step takes the error arriving at it.

Each step works on a block of units u0 .. u0 + nu of one batch row: the whole row (u0 = 0,
nu = n) in the kernels that split the batch, one thread's units in those that split the units
(``lstm_units``). A gate row (4n,) holds [i, f, g, o]; the units' entries of gate q are at
q·n + u0 + k.
Caution (``_jit``): after editing this file, delete ``kernels/__pycache__``.
"""
from ._activations import LOGISTIC, ONE, TANH, activate, tanh
from ._jit import helper


@helper
def cell_step(row, rr, bias, c_prev, c_next, out, K, u0):
    """One step of the units u0 .. u0 + nu of one batch row. ``row`` (4n,) holds x W_ih^T on entry
    and leaves with the units' gates [i, f, g, o] after their nonlinearities; rr (4nu,) is the
    recurrent product of these units, gate by gate ([i | f | g | o], nu each); bias (4n,) =
    b_ih + b_hh. c_prev, c_next, out (nu,): c_next = f ⊙ c_prev + i ⊙ g, out = o ⊙ tanh(c_next)."""
    nu = c_prev.shape[0]
    n = row.shape[0] // 4
    for q in range(4):
        a = q * n + u0
        for k in range(nu):
            row[a + k] += bias[a + k] + rr[q * nu + k]
    activate(row[u0:u0 + nu], K, LOGISTIC)
    activate(row[n + u0:n + u0 + nu], K, LOGISTIC)
    activate(row[2 * n + u0:2 * n + u0 + nu], K, TANH)
    activate(row[3 * n + u0:3 * n + u0 + nu], K, LOGISTIC)
    i0 = u0
    f0 = n + u0
    g0 = 2 * n + u0
    o0 = 3 * n + u0
    for k in range(nu):
        cc = row[f0 + k] * c_prev[k] + row[i0 + k] * row[g0 + k]
        c_next[k] = cc
        out[k] = row[o0 + k] * tanh(cc, K)


@helper
def gate_deltas(gr, dout, c_now, c_prev, tc, dc, dl, K, u0):
    """The backward step of the units u0 .. u0 + nu of one batch row, in short loops over few
    arrays each so that LLVM vectorises every one of them:

        dc_t = dout o tanh'(c_t) + dc   (dc holds dc_{t+1} f_{t+1} on entry)
        dl = delta_t = [dc g i(1-i); dc c_{t-1} f(1-f); dc i (1-g^2); dout tanh(c_t) o(1-o)]

    gr (4n,) the gates of step t and dl (4n,) its deltas, of which the units' entries are read and
    written; dout (nu,) the error arriving at o ⊙ tanh(c_t), c_now = c_t, c_prev = c_{t-1} (nu,);
    tc (nu,) scratch for tanh(c_t). dc leaves holding dc_t f_t, what the step before adds to."""
    nu = dout.shape[0]
    n = gr.shape[0] // 4
    one = K[ONE]
    i0 = u0
    f0 = n + u0
    g0 = 2 * n + u0
    o0 = 3 * n + u0
    for k in range(nu):
        tc[k] = tanh(c_now[k], K)
    for k in range(nu):
        o = gr[o0 + k]
        dc[k] += dout[k] * o * (one - tc[k] * tc[k])
        dl[o0 + k] = dout[k] * tc[k] * o * (one - o)
    for k in range(nu):
        i = gr[i0 + k]
        f = gr[f0 + k]
        gg = gr[g0 + k]
        dl[i0 + k] = dc[k] * gg * i * (one - i)
        dl[f0 + k] = dc[k] * c_prev[k] * f * (one - f)
        dl[g0 + k] = dc[k] * i * (one - gg * gg)
        dc[k] *= f
