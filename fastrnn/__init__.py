"""fastrnn: exact gradients of recurrent networks on the CPU, compiled with Numba.

The public API is what this module exports; see ``__all__``.
"""
try:
    from . import kernels
except ImportError:
    import os as _os
    _here = _os.path.dirname(_os.path.abspath(__file__))
    _source_kernels = _os.path.join(_os.path.dirname(_here), "kernels", "_jit.py")
    if not _os.path.isdir(_os.path.join(_here, "kernels")) and _os.path.exists(_source_kernels):
        raise ImportError(
            f"fastrnn was imported from its source tree ({_here}), where the compiled kernels "
            "(the top-level kernels/ folder) are not mapped in as fastrnn.kernels. Either install "
            "it in development mode (pip install -e .) or run Python from another folder so that "
            "the installed fastrnn is imported.") from None
    raise

from . import reference
from .api import OnlineRTRL, Outputs, bptt, forward, rtrl, vjp
from .errors import (DTypeError, FastRNNError, MemoryBudgetError, NonFiniteError, OptionError,
                     ShapeError, ValidationError)
from .models import GRU, LSTM, LSTMP, MODELS, RNN, Gradients, GRUGradients, LSTMGradients, LSTMPGradients, load
from .readout import LOSSES, OUT_ACTIVATIONS, READOUTS
from .kernels import ACTIVATIONS
from .runtime.dispatch import get_threads, set_threads, threads
from .runtime.memory import memory_budget, set_memory_budget
from . import tasks, train  # noqa: E402  (built on the names above)

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "LSTMP", "GRU", "MODELS", "Gradients", "LSTMGradients", "LSTMPGradients", "GRUGradients", "Outputs", "forward", "bptt", "rtrl", "vjp", "OnlineRTRL",
    "load", "reference", "tasks", "train", "threads", "set_threads", "get_threads", "memory_budget", "set_memory_budget",
    "FastRNNError", "ShapeError", "DTypeError", "NonFiniteError", "OptionError", "ValidationError",
    "MemoryBudgetError", "ACTIVATIONS", "READOUTS", "OUT_ACTIVATIONS", "LOSSES", "__version__",
]
