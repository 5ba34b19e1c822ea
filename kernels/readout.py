"""The summed squared error of a units readout, and of a linear readout with identity outputs, each in one
pass (SPEC §2, "Readouts" and "Losses").

The units readout is the Williams & Zipser problem, where the outputs are units of the state itself.

NumPy takes it in some six passes over strided (T, B, o) views of the states and the injected error
(a difference, the mask's product, the sum, then the error written unit by unit and zero around it);
the compiled pass reads each step's row once and writes its error row whole: inside a float64
gradient call at B = 1, n = 128, o = 32, T = 1000, 0.26 ms against 0.42 (medians of some 190 calls each,
interleaved, AVX2 AMD EPYC, ad hoc), 0.06 against 0.18 hot.
"""
import numpy as np

from ._activations import ZERO, constants
from ._jit import _jit, helper
from ._panels import _gemv_axpy
from ._rows import borrow2


def _units_mse(h1, start, d, mask, g):
    """Return the summed squared error 0.5·Σ mask·(y - d)² of the outputs y = h1[..., start:start + o],
    and write the error injected into each state, g = mask·(y - d) on those units and 0 on the others.

    h1 (T, B, n) the states after each step; d and mask (T, B, o); g (T, B, n), overwritten; all one float
    dtype, rows contiguous. The sum is taken in float64 whatever the dtype (T·B·o terms).
    """
    T, B, n = h1.shape
    o = d.shape[2]
    total = 0.0
    for t in range(T):
        for b in range(B):
            y = borrow2(h1, t, b)[start:start + o]
            dd = borrow2(d, t, b)
            mm = borrow2(mask, t, b)
            row = borrow2(g, t, b)
            for k in range(n):          # every loop from 0 over a slice: so LLVM vectorises them
                row[k] = 0
            out = row[start:start + o]
            part = 0.0
            for k in range(o):
                e = y[k] - dd[k]
                part += mm[k] * e * e
            for k in range(o):
                out[k] = mm[k] * (y[k] - dd[k])
            total += part
    return 0.5 * total


units_mse = _jit(_units_mse)


def _linear_mse(h1, W_out, b_out, d, mask, g, dW_out, db_out):
    """Return the summed squared error 0.5·Σ mask·(y - d)² of the outputs y = h1 W_outᵀ + b_out of a linear
    readout with identity outputs, and write the error injected into each state, g = e W_out with
    e = mask·(y - d), and the readout's gradients dW_out = Σ eᵀ h1 and db_out = Σ e.

    h1 (T, B, n) the states after each step; W_out (o, n); b_out (o,), or empty for a readout without a
    bias (db_out is then not written); d and mask (T, B, o); g (T, B, n), dW_out (o, n) and db_out (o,),
    overwritten; all one float dtype, C-contiguous. The loss and db_out are summed in float64 whatever the
    dtype; dW_out in the dtype, as the BLAS's product would.

    The T·B rows go four at a time (``_four_rows``), each read once while in L1 for its o outputs, its
    error row and its share of dW_out: each row of W_out loaded serves four rows' sums, and each row of
    dW_out's sums loaded and stored takes four rows' terms. NumPy's way is three products with o = a few
    columns (or rows), which the BLAS runs far below its rate, and some eight passes over (T, B, o)
    arrays besides. Hot, one thread, o = 8, against NumPy's formula (ad hoc, AMD EPYC Zen 3, 2026-11-28):
    float32 T=100 B=8 n=128 0.20 against 0.23 ms, B=32 n=512 3.8 against 5.8; float64 0.34 against 0.42 and
    7.2 against 9.7; T=1000 B=1 n=128 0.24 against 0.28 (float32) and 0.47 against 0.56 (float64). Inside a
    gradient call, where NumPy's temporaries also miss the cache, ``fastrnn.readout`` gives the figures.
    """
    T, B, n = h1.shape
    o = W_out.shape[0]
    R = T * B
    H = h1.reshape(R, n)
    Dd = d.reshape(R, o)
    M = mask.reshape(R, o)
    G = g.reshape(R, n)
    bias = b_out.shape[0] == o
    acc = np.zeros((o, n), dtype=h1.dtype)
    acc_b = np.zeros(o, dtype=np.float64)
    E = np.empty((4, o), dtype=h1.dtype)
    zero = constants(h1)[ZERO]
    total = 0.0
    for r0 in range(0, R, 4):
        rows = min(4, R - r0)
        total += _four_rows(H, W_out, b_out, bias, Dd, M, G, acc, acc_b, E, r0, rows, zero)
    for j in range(o):
        for k in range(n):
            dW_out[j, k] = acc[j, k]
        if bias:
            db_out[j] = acc_b[j]
    return 0.5 * total


@helper
def _four_rows(H, W, b_out, bias, Dd, M, G, acc, acc_b, E, r0, rows, zero):
    """``_linear_mse`` for rows r0 : r0 + rows (rows <= 4; a short group repeats its last row in the
    sums and drops it): the rows' errors E, their rows of G, their terms of acc and acc_b; returns their
    share of Σ mask·(y - d)², in float64."""
    n = H.shape[1]
    o = W.shape[0]
    i1 = r0 + min(1, rows - 1)
    i2 = r0 + min(2, rows - 1)
    i3 = r0 + min(3, rows - 1)
    h0, h1, h2, h3 = H[r0], H[i1], H[i2], H[i3]
    part = 0.0
    for j in range(o):
        w = W[j]
        s0, s1, s2, s3 = zero, zero, zero, zero
        for k in range(n):
            wk = w[k]
            s0 += wk * h0[k]
            s1 += wk * h1[k]
            s2 += wk * h2[k]
            s3 += wk * h3[k]
        if bias:
            s0 += b_out[j]
            s1 += b_out[j]
            s2 += b_out[j]
            s3 += b_out[j]
        for q in range(rows):
            s = s0 if q == 0 else s1 if q == 1 else s2 if q == 2 else s3
            diff = s - Dd[r0 + q, j]
            e = M[r0 + q, j] * diff
            E[q, j] = e
            part += e * diff
            acc_b[j] += e
    for q in range(rows, 4):            # a short group's missing rows add nothing to dW_out
        for j in range(o):
            E[q, j] = zero
    for q in range(rows):
        _gemv_axpy(W, E[q], G[r0 + q])      # the row's injected error e W, four rows of W at a time
    for j in range(o):
        a = acc[j]
        e0, e1, e2, e3 = E[0, j], E[1, j], E[2, j], E[3, j]
        for k in range(n):
            a[k] += e0 * h0[k] + e1 * h1[k] + e2 * h2[k] + e3 * h3[k]
    return part


linear_mse = _jit(_linear_mse)
