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
from ._jit import _jit
from ._panels import cut_panels
from ._rows import borrow2
from ._tiles import ROWS as TILE_ROWS, STRIP_ROWS, TILES, _strip1, _strip2, strip_columns, tile_products


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

    Four passes over the T·B rows, each at what it does best, where NumPy's way is three products with
    o = a few columns (or rows), which the BLAS runs far below its rate, and some eight passes over
    (T, B, o) arrays besides:

    - the outputs, in strips of STRIP_ROWS rows by a vector of outputs (``_outputs_in_strips``), or four rows
      at a time (``_outputs4``: each row of W_out loaded serves four rows' sums), whichever takes fewer
      multiply-adds (``outputs_in_strips``);
    - the errors e, the loss and db_out, row by row along the o outputs (``_errors``);
    - dW_out, in strips of STRIP_ROWS outputs by two vectors of units, each over all T·B rows in registers
      (``_grads_in_strips``), or, for one or two outputs, four rows at a time (``_grads4``: each row of dW_out
      loaded and stored takes four rows' terms);
    - g = e W_out in the compiled tiles (``_tiles.tile_products``, W_out cut into their panels once a
      call): every row's o errors against a panel held in vector registers, where a loop row by row
      loaded and stored each of g's rows o / 4 times.

    An earlier version took all four in one pass, four rows at a time, so that each row was read once
    while in L1; it ran slower: each row's errors and its product by W_out went scalar by scalar, and the
    one large loop vectorised worse than its parts do on their own. Hot, one thread, o = 8, T = 100, the
    two versions in one process (ad hoc, AMD EPYC Zen 5, 2026-11-28): float32 B=8 n=128 42 against 76 us,
    B=32 203 against 369, n=512 B=8 184 against 273; float64 92 against 143, 387 against 571, 430 against
    610. Against NumPy's formula, interleaved with it: ``python bench/readout_pass.py 200 --alone``.
    """
    T, B, n = h1.shape
    o = W_out.shape[0]
    R = T * B
    H = h1.reshape(R, n)
    Dd = d.reshape(R, o)
    M = mask.reshape(R, o)
    G = g.reshape(R, n)
    bias = b_out.shape[0] == o
    zero = constants(h1)[ZERO]
    lanes = strip_columns(h1.itemsize, 1)
    out_strips = outputs_in_strips(n, o, lanes)
    grad_strips = grads_in_strips(o)
    span = max(lanes, STRIP_ROWS) if out_strips else STRIP_ROWS if grad_strips else 1
    op = -(-o // span) * span
    Ep = np.empty((R, op), dtype=h1.dtype)      # the outputs, then (``_errors``) the errors in their place
    E = Ep[:, :o]
    edge_s = np.empty((STRIP_ROWS, strip_columns(h1.itemsize, 2)), dtype=h1.dtype)
    if out_strips:
        PT = np.zeros((n, op), dtype=h1.dtype)
        for j in range(o):
            for k in range(n):
                PT[k, j] = W_out[j, k]
        _outputs_in_strips(H, PT, Ep, np.empty((STRIP_ROWS, n), dtype=h1.dtype), edge_s)
    else:
        whole = R - R % 4
        for r0 in range(0, whole, 4):
            _outputs4(H, W_out, E, r0, zero)
        for r in range(whole, R):
            _outputs1(H, W_out, E, r, zero)
    acc_b = np.zeros(o, dtype=np.float64)
    total = _errors(E, b_out, bias, Dd, M, acc_b)
    if grad_strips:
        _grads_in_strips(H, Ep, dW_out, np.zeros((R, strip_columns(h1.itemsize, 2)), dtype=h1.dtype), edge_s)
    else:
        for j in range(o):
            for k in range(n):
                dW_out[j, k] = zero
        whole = R - R % 4
        for r0 in range(0, whole, 4):
            _grads4(H, E, dW_out, r0)
        for r in range(whole, R):
            _grads1(H, E, dW_out, r)
    if bias:
        for j in range(o):
            db_out[j] = acc_b[j]
    P = cut_panels(W_out, TILE_ROWS, np.empty(0, dtype=h1.dtype), TILES)
    edge = np.empty((TILE_ROWS, P.shape[3]), dtype=h1.dtype)
    pad = np.zeros((TILE_ROWS, o), dtype=h1.dtype)
    tile_products(E, P, G, edge, pad, False)
    return 0.5 * total


OUTPUT_ROW_SUMS = 12     # a row's sum of a few vectors into one number, counted in multiply-adds (``outputs_in_strips``)


@_jit
def outputs_in_strips(n, o, lanes):
    """Whether the outputs H W_outᵀ go in strips (``_outputs_in_strips``: a multiply-add a row, unit and vector of
    outputs, the last vector padded), rather than four rows at a time (``_outputs4``: a multiply-add a row, output
    and vector of units, and a sum of the vector's lanes a row and output): the one with fewer, counted so. Hot,
    one thread, o = 8 (ad hoc, AMD EPYC Zen 5): float64 R = 800, n = 128 15.9 against 37.8 us, n = 512 82.5
    against 157; float32 (16 lanes: half a vector of outputs) n = 128 14.8 against 20.4, n = 512 69.2 against 47.2
    (taken four rows at a time)."""
    return n * -(-o // lanes) <= o * (-(-n // lanes) + OUTPUT_ROW_SUMS)


@_jit
def grads_in_strips(o):
    """Whether dW_out = Eᵀ H goes in strips (``_grads_in_strips``: STRIP_ROWS outputs a strip, the last strip's
    beyond o computed and dropped) rather than four rows at a time (``_grads4``, which loads and stores each row
    of dW_out for every four rows of H): from 3 outputs, where the strips' waste stays under what they save. Hot,
    one thread, R = 800, n = 128, o = 8 (ad hoc): float64 17.7 against 50.9 us, float32 6.7 against 24.1; o = 5
    14.5 against 19.3 (float64, n = 100), 9.1 against 12.6 (float32)."""
    return STRIP_ROWS * -(-o // STRIP_ROWS) <= 3 * o


@_jit
def _outputs4(H, W, Y, r0, zero):
    """Y[r0 + q] = H[r0 + q] W^T for the four rows q: each row of W loaded once for the four sums."""
    n = H.shape[1]
    o = W.shape[0]
    h0, h1, h2, h3 = H[r0], H[r0 + 1], H[r0 + 2], H[r0 + 3]
    y0, y1, y2, y3 = Y[r0], Y[r0 + 1], Y[r0 + 2], Y[r0 + 3]
    for j in range(o):
        w = W[j]
        s0, s1, s2, s3 = zero, zero, zero, zero
        for k in range(n):
            wk = w[k]
            s0 += wk * h0[k]
            s1 += wk * h1[k]
            s2 += wk * h2[k]
            s3 += wk * h3[k]
        y0[j] = s0
        y1[j] = s1
        y2[j] = s2
        y3[j] = s3


@_jit
def _outputs1(H, W, Y, r, zero):
    """Y[r] = H[r] W^T (the last rows, fewer than four)."""
    n = H.shape[1]
    h = H[r]
    y = Y[r]
    for j in range(W.shape[0]):
        w = W[j]
        s = zero
        for k in range(n):
            s += w[k] * h[k]
        y[j] = s


@_jit
def _errors(Y, b_out, bias, Dd, M, acc_b):
    """Each row's outputs Y (R, o) replaced by its errors e = mask·(y + b_out - d) (b_out where ``bias``);
    returns Σ e·(y + b_out - d) in float64 and adds Σ e into acc_b (o,), float64."""
    R, o = Y.shape
    part = 0.0
    for r in range(R):
        y = Y[r]
        dd = Dd[r]
        mm = M[r]
        if bias:
            for j in range(o):
                y[j] += b_out[j]
        for j in range(o):
            diff = y[j] - dd[j]
            e = mm[j] * diff
            y[j] = e
            part += e * diff
        for j in range(o):
            acc_b[j] += y[j]
    return part


@_jit
def _grads4(H, E, dW, r0):
    """dW (o, n) += E[r0:r0 + 4]^T H[r0:r0 + 4]: each row of dW loaded and stored once for the four rows."""
    n = H.shape[1]
    h0, h1, h2, h3 = H[r0], H[r0 + 1], H[r0 + 2], H[r0 + 3]
    for j in range(E.shape[1]):
        a = dW[j]
        c0, c1, c2, c3 = E[r0, j], E[r0 + 1, j], E[r0 + 2, j], E[r0 + 3, j]
        for k in range(n):
            a[k] += c0 * h0[k] + c1 * h1[k] + c2 * h2[k] + c3 * h3[k]


@_jit
def _grads1(H, E, dW, r):
    """dW (o, n) += E[r]^T H[r] (the last rows, fewer than four)."""
    n = H.shape[1]
    h = H[r]
    for j in range(E.shape[1]):
        a = dW[j]
        c = E[r, j]
        for k in range(n):
            a[k] += c * h[k]


linear_mse = _jit(_linear_mse)


@_jit
def _outputs_in_strips(H, PT, Y, pad, edge):
    """Y (R, op) = H (R, n) @ PT (n, op): PT is W_outᵀ zero-padded to op columns, a multiple of a one-vector
    strip's (``_tiles._strip1``: STRIP_ROWS rows of H by one vector of outputs, PT's rows read where they lie).
    The last R % STRIP_ROWS rows go through ``pad`` (STRIP_ROWS, n) and ``edge`` (STRIP_ROWS, w)."""
    R, n = H.shape
    op = Y.shape[1]
    w = strip_columns(H.itemsize, 1)
    whole = R - R % STRIP_ROWS
    for r in range(R - whole):
        for k in range(n):
            pad[r, k] = H[whole + r, k]
    for c0 in range(0, op, w):
        for r0 in range(0, whole, STRIP_ROWS):
            _strip1(H[r0:], n, 1, PT[:, c0:], op, n, Y[r0:, c0:], op)
        if whole < R:
            _strip1(pad, n, 1, PT[:, c0:], op, n, edge, edge.shape[1])
            for r in range(R - whole):
                for j in range(w):
                    Y[whole + r, c0 + j] = edge[r, j]


@_jit
def _grads_in_strips(H, E, dW, Hpad, edge):
    """dW (o, n) = Eᵀ H over all R rows: E (R, op), op a multiple of STRIP_ROWS, its columns beyond o zero;
    strips (``_tiles._strip2``) of STRIP_ROWS outputs by two vectors of units, E's columns read turned round
    and H's rows where they lie. The last n % w units go through ``Hpad`` (R, w), a zero-padded copy of them,
    and rows of outputs beyond o through ``edge`` (STRIP_ROWS, w)."""
    R, n = H.shape
    o = dW.shape[0]
    op = E.shape[1]
    w = strip_columns(H.itemsize, 2)
    whole = n - n % w
    for r in range(R):
        for j in range(n - whole):
            Hpad[r, j] = H[r, whole + j]
    for j0 in range(0, o, STRIP_ROWS):
        rows = min(STRIP_ROWS, o - j0)
        for c0 in range(0, n, w):
            cols = min(w, n - c0)
            if rows == STRIP_ROWS and cols == w:
                _strip2(E[:, j0:], 1, op, H[:, c0:], n, R, dW[j0:, c0:], n)
                continue
            if cols == w:
                _strip2(E[:, j0:], 1, op, H[:, c0:], n, R, edge, edge.shape[1])
            else:
                _strip2(E[:, j0:], 1, op, Hpad, w, R, edge, edge.shape[1])
            for r in range(rows):
                for j in range(cols):
                    dW[j0 + r, c0 + j] = edge[r, j]
