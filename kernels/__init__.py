"""Compiled kernels of fastrnn (installed as ``fastrnn.kernels``).

Only Numba code lives here: no validation, no Python objects, no I/O. Each kernel states its
array contract in its docstring; ``fastrnn`` validates inputs before calling them.
"""
if __name__ != "fastrnn.kernels":
    # The source folder imported on its own (the repository's root on sys.path, ``import kernels``): its
    # kernels would be compiled and cached under the module name "kernels", in the same cache index as
    # fastrnn's, and a later ``fastrnn`` process that loads such an entry fails ("No module named 'kernels'").
    raise ImportError(f"the kernels folder was imported as {__name__!r}: import fastrnn, which maps it in as "
                      "fastrnn.kernels (`from fastrnn.kernels import ...`); imported on its own, its compiled code "
                      "would enter Numba's cache under another module name and break fastrnn's later loads of it")
from ._activations import ACTIVATIONS, IDENTITY, LOGISTIC, RELU, TANH
from .bptt import _bptt_sweep, _tiles_matmul, _weight_grads
from .forward import _forward
from .gru_bptt import _gru_sweep
from .gru_forward import _gru_forward
from .gru_rtrl import _gru_rtrl
from .lstm_bptt import _lstm_sweep
from .lstm_forward import _lstm_forward
from .lstm_rtrl import _lstm_rtrl
from .lstmp import _lstmp_forward, _lstmp_sweep
from .rtrl import _rtrl

__all__ = ["ACTIVATIONS", "TANH", "LOGISTIC", "RELU", "IDENTITY", "_forward", "_bptt_sweep", "_weight_grads", "_rtrl",
           "_tiles_matmul",
           "_lstm_forward", "_lstm_sweep", "_lstm_rtrl", "_lstmp_forward", "_lstmp_sweep", "_gru_forward", "_gru_sweep", "_gru_rtrl"]
