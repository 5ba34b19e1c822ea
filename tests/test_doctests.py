"""The Examples sections of the public docstrings run, so the reference's examples cannot rot."""
import doctest
import importlib

import pytest

MODULES = ["fastrnn.api", "fastrnn.models", "fastrnn.runtime.dispatch", "fastrnn.runtime.memory", "fastrnn.train",
           "fastrnn.tasks", "fastrnn.reference",
           "fastrnn.torch", "fastrnn.jax"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name in ("fastrnn.torch", "fastrnn.jax"):
        pytest.importorskip(name.split(".")[1], reason=f"{name} needs {name.split('.')[1]}, which is not installed")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0, f"{name} has no examples"
