"""Writes docs/cli.rst from the ``fastrnn`` command's own argparse parser at build time, so the
command-line reference is generated, never pasted."""
import argparse

from fastrnn import cli


def write(path):
    parser = cli.build_parser()
    lines = ["The ``fastrnn`` command", "=======================", "",
             "Generated from the command's own parser (``fastrnn --help`` and ``fastrnn COMMAND --help``).", "",
             ".. code-block:: text", ""]
    lines += ["   " + line for line in parser.format_help().splitlines()]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        title = f"fastrnn {name}"
        lines += ["", title, "-" * len(title), "", ".. code-block:: text", ""]
        lines += ["   " + line for line in sub.format_help().splitlines()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
