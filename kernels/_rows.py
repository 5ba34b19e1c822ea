"""Per-row arithmetic shared by the backward sweeps of every cell.
Caution (``_jit``): after editing this file, delete ``kernels/__pycache__``.
"""
from ._jit import helper


@helper
def arriving(out, back, g, inject):
    """The error arriving at a state in a backward sweep: out = back + g where the loss injects g
    at this step (``inject``), out = back otherwise. One short loop each, so that LLVM vectorises it."""
    n = out.shape[0]
    if inject:
        for k in range(n):
            out[k] = back[k] + g[k]
    else:
        for k in range(n):
            out[k] = back[k]
