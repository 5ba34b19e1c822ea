"""Writes docs/api.rst at build time: one entry per public name, so that no name is left out."""
import inspect

import fastrnn
from fastrnn import reference, tasks, train

SECTIONS = [
    ("Networks", fastrnn, ["RNN", "LSTM", "LSTMP", "GRU", "load", "MODELS"]),
    ("Gradients and forward results", fastrnn, ["Gradients", "LSTMGradients", "LSTMPGradients", "GRUGradients",
                                                "Outputs"]),
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


# The constants: a tuple's or dict's own docstring says nothing about them, so their entries are
# written here, each with an example that tests/test_doctests.py runs.
DATA = {
    "MODELS": ("The model classes by cell name; ``load`` and the command line find a cell's class here.",
               ">>> import fastrnn\n>>> sorted(fastrnn.MODELS)\n['gru', 'lstm', 'lstmp', 'rnn']\n"
               ">>> fastrnn.MODELS['gru'] is fastrnn.GRU\nTrue"),
    "ACTIVATIONS": ("The activations of the simple cell (``RNN(activation=...)``), in the order of their kernel codes.",
                    ">>> import fastrnn\n>>> fastrnn.ACTIVATIONS\n('tanh', 'logistic', 'relu', 'identity')"),
    "READOUTS": ("The readouts: ``\"units\"`` reads chosen units as outputs (Williams & Zipser), ``\"linear\"`` "
                 "is y = out_activation(W_out h + b_out).",
                 ">>> import fastrnn\n>>> fastrnn.READOUTS\n('units', 'linear')"),
    "OUT_ACTIVATIONS": ("The output nonlinearities of the linear readout.",
                        ">>> import fastrnn\n>>> fastrnn.OUT_ACTIVATIONS\n('identity', 'logistic', 'tanh', 'softmax')"),
    "LOSSES": ("The losses, each summed over time, batch and outputs: squared error (½ Σ), softmax cross-entropy "
               "on class ids, binary cross-entropy.",
               ">>> import fastrnn\n>>> fastrnn.LOSSES\n('mse', 'xent', 'bce')"),
}


def _entry(module, name):
    obj = getattr(module, name)
    target = f"{module.__name__}.{name}"
    if name in DATA and module.__name__ == "fastrnn":
        text, example = DATA[name]
        return ([f".. py:data:: {target}", "", f"   {text}", "", "   .. rubric:: Examples", "", "   .. code-block:: pycon",
                 ""] + [f"      {line}" for line in example.split("\n")] + [""])
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
