"""fastrnn: exact gradients of recurrent networks on the CPU, compiled with Numba.

The public API is what this module exports; see ``__all__``.
"""
from . import reference
from ._dispatch import threads
from ._errors import (DTypeError, FastRNNError, MemoryBudgetError, NonFiniteError, OptionError,
                      ShapeError, ValidationError)
from ._memory import memory_budget, set_memory_budget
from ._model import ACTIVATIONS, LOSSES, LSTM, OUT_ACTIVATIONS, READOUTS, RNN, Gradients, LSTMGradients
from ._rnn import bptt, forward
from ._rtrl import OnlineRTRL, rtrl

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "Gradients", "LSTMGradients", "forward", "bptt", "rtrl", "OnlineRTRL", "reference", "threads",
    "memory_budget", "set_memory_budget",
    "FastRNNError", "ShapeError", "DTypeError", "NonFiniteError", "OptionError", "ValidationError",
    "MemoryBudgetError", "ACTIVATIONS", "READOUTS", "OUT_ACTIVATIONS", "LOSSES", "__version__",
]
