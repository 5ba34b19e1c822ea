"""Sphinx configuration of fastrnn's documentation.

    pip install -e '.[docs]'
    sphinx-build -W -b html docs docs/_build/html
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import fastrnn  # noqa: E402
import api_pages  # noqa: E402
import cli_pages  # noqa: E402

project = "fastrnn"
author = "the fastrnn developers"
release = version = fastrnn.__version__
copyright = "2026, the fastrnn developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "generated/*.md5", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
nitpicky = True
nitpick_ignore_regex = [(r"py:class", r".*")]       # types in numpydoc signatures are prose: "(T, B, m) array"
suppress_warnings = ["myst.xref_missing", "myst.header"]   # README links point into the repository
myst_heading_anchors = 3

numpydoc_show_class_members = False
numpydoc_validation_checks = set()
autodoc_default_options = {"members": False}
autodoc_typehints = "none"


html_theme = "pydata_sphinx_theme"
html_title = f"fastrnn {version}"
html_theme_options = {"navigation_with_keys": False, "show_prev_next": False}

sphinx_gallery_conf = {
    "examples_dirs": os.path.join(ROOT, "examples", "gallery"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "matplotlib_animations": False,
}

cli_pages.write(os.path.join(HERE, "cli.rst"))


def _bridges():
    """The PyTorch and JAX sections, where those packages are installed."""
    sections = []
    try:
        import fastrnn.torch as ft
        sections.append(("PyTorch modules (fastrnn.torch)", ft, ["RNN", "LSTM", "GRU", "beside_torch"]))
    except ImportError:
        pass
    try:
        import fastrnn.jax as fj
        sections.append(("JAX functions (fastrnn.jax)", fj, ["rnn", "lstm", "gru"]))
    except ImportError:
        pass
    return sections


api_pages.write(os.path.join(HERE, "api.rst"), _bridges())
