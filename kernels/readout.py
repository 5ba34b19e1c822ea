"""The loss of a units readout with the summed squared error, in one pass (SPEC §2, "Readouts" and
"Losses"): the Williams & Zipser problem, where the outputs are units of the state itself.

NumPy takes it in some six passes over strided (T, B, o) views of the states and the injected error
(a difference, the mask's product, the sum, then the error written unit by unit and zero around it);
the compiled pass reads each step's row once and writes its error row whole: inside a float64
gradient call at B = 1, n = 128, o = 32, T = 1000, 0.26 ms against 0.42 (medians of some 190 calls each,
interleaved, AVX2 AMD EPYC, ad hoc), 0.06 against 0.18 hot.
"""
from ._jit import _jit
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
