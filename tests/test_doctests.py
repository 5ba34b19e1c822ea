"""The reference's promises: every public name has a documented page with Parameters, Returns,
Raises and Examples where they apply, and every example runs, so the reference cannot rot."""
import doctest
import importlib
import inspect
import os
import sys
import types

import pytest

import fastrnn

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
MODULES = ["fastrnn.api", "fastrnn.models", "fastrnn.errors", "fastrnn.runtime.dispatch", "fastrnn.runtime.memory",
           "fastrnn.train", "fastrnn.tasks", "fastrnn.reference", "fastrnn.torch", "fastrnn.jax"]
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def _api_pages():
    sys.path.insert(0, DOCS)
    try:
        return importlib.import_module("api_pages")
    finally:
        sys.path.remove(DOCS)


def _bridge(name):
    if name in ("fastrnn.torch", "fastrnn.jax"):
        pytest.importorskip(name.split(".")[1], reason=f"{name} needs {name.split('.')[1]}, which is not installed")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    _bridge(name)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0, f"{name} has no examples"


def test_constant_examples_run():
    """The constants' entries are written in docs/api_pages.py; their examples run here."""
    pages = _api_pages()
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=FLAGS)
    for name, (_, example) in pages.DATA.items():
        runner.run(parser.get_doctest(example, {}, name, None, 0))
    assert runner.failures == 0 and runner.tries >= len(pages.DATA)


def _sections():
    pages = _api_pages()
    sections = list(pages.SECTIONS)
    for name, names in (("fastrnn.torch", ["RNN", "LSTM", "GRU", "beside_torch"]), ("fastrnn.jax", ["rnn", "lstm", "gru"])):
        try:
            sections.append((name, importlib.import_module(name), names))
        except ImportError:       # the bridge's framework is absent: its own test module skips
            pass
    return pages, sections


def test_every_public_name_has_an_entry():
    pages, sections = _sections()
    listed = {name for _, module, names in sections if module is fastrnn for name in names}
    public = {name for name in fastrnn.__all__
              if name != "__version__" and not isinstance(getattr(fastrnn, name), types.ModuleType)}
    assert public - listed == set(), "names of fastrnn.__all__ without a reference entry"


def _has(doc, section):
    return f"\n{section}\n{'-' * len(section)}\n" in f"\n{doc}\n"


def _documented_problems(module, name, data):
    obj = getattr(module, name)
    if name in data and module is fastrnn:
        return []
    doc = inspect.getdoc(obj) or ""
    problems = [] if _has(doc, "Examples") else ["Examples"]
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return problems
    if not callable(obj):
        return problems + ["an entry in docs/api_pages.DATA"]
    target = obj.__init__ if isinstance(obj, type) else obj
    params = []
    if target is not object.__init__:              # a class without a constructor of its own takes nothing
        params = [p for p in inspect.signature(target).parameters if p != "self"]
    if params and not _has(doc, "Parameters"):
        problems.append("Parameters")
    if params and not _has(doc, "Raises"):
        problems.append("Raises")
    if not isinstance(obj, type) and not (_has(doc, "Returns") or _has(doc, "Yields")):
        problems.append("Returns")
    return problems


def test_every_entry_has_its_sections():
    """Functions: Parameters, Returns, Raises, Examples. Classes: Parameters and Raises when their
    constructor takes arguments, Examples. Exceptions and constants: Examples."""
    pages, sections = _sections()
    missing = {}
    for _, module, names in sections:
        for name in names:
            problems = _documented_problems(module, name, pages.DATA)
            if problems:
                missing[f"{module.__name__}.{name}"] = problems
    assert missing == {}
