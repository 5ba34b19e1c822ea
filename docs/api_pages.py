"""Writes docs/api.rst at build time: one entry per public name, so that no name is left out."""
import inspect

import fastrnn
from fastrnn import reference, tasks, train

SECTIONS = [
    ("Networks", fastrnn, ["RNN", "LSTM", "GRU", "load", "MODELS"]),
    ("Gradients and forward results", fastrnn, ["Gradients", "LSTMGradients", "GRUGradients", "Outputs"]),
    ("Gradients of a sequence", fastrnn, ["forward", "bptt", "rtrl", "vjp"]),
    ("Online learning", fastrnn, ["OnlineRTRL"]),
    ("Threads and memory", fastrnn, ["threads", "set_threads", "get_threads", "memory_budget", "set_memory_budget"]),
    ("Errors", fastrnn, ["FastRNNError", "ShapeError", "DTypeError", "NonFiniteError", "OptionError",
                         "ValidationError", "MemoryBudgetError"]),
    ("Names of options", fastrnn, ["ACTIVATIONS", "READOUTS", "OUT_ACTIVATIONS", "LOSSES"]),
    ("The NumPy reference (fastrnn.reference)", reference, ["forward", "bptt", "rtrl", "vjp", "total_loss"]),
    ("Training (fastrnn.train)", train, ["train", "SGD", "Adam", "clip_by_global_norm", "global_norm",
                                          "History", "evaluate"]),
    ("Tasks (fastrnn.tasks)", tasks, ["get", "Batch"] + [cls.__name__ for cls in tasks.TASKS.values()]),
]


def _entry(module, name):
    obj = getattr(module, name)
    target = f"{module.__name__}.{name}"
    if inspect.isclass(obj):
        return [f".. autoclass:: {target}", "   :members:" if obj.__module__.startswith("fastrnn.models") and name in
                ("RNN", "LSTM", "GRU") else "   :no-members:", ""]
    if callable(obj):
        return [f".. autofunction:: {target}", ""]
    return [f".. autodata:: {target}", "   :no-value:", ""]


def write(path, extra):
    lines = ["API reference", "=============", "",
             "Every public name of ``fastrnn``, the bridges ``fastrnn.torch`` and ``fastrnn.jax``, the reference,",
             "the training toolkit and the tasks. The command line is on :doc:`cli`.", ""]
    for title, module, names in SECTIONS + extra:
        lines += [title, "-" * len(title), ""]
        for name in names:
            lines += _entry(module, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
