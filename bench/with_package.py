"""Run a bench script with another checkout's ``fastrnn`` Python package over this checkout's compiled
kernels: an A/B of a change to the Python side alone (the kernels, and their cache, are this checkout's).

    git worktree add /tmp/old <commit>
    python bench/with_package.py /tmp/old bench/module_least.py 400 --n 32 --threads one --layers
    python bench/with_package.py .        bench/module_least.py 400 --n 32 --threads one --layers

Alternate the two, a few times each: the machine's speed drifts between runs, and the scripts print the
ratios of the rows they time together. Only for commits whose ``kernels/`` equals this checkout's.
"""
import importlib.util
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(os.path.dirname(HERE), "kernels")


class _Package:
    """Finds ``fastrnn`` in the given checkout and ``fastrnn.kernels`` in this one."""

    root = None

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "fastrnn":
            where = os.path.join(cls.root, "fastrnn")
        elif name == "fastrnn.kernels":
            where = KERNELS
        else:
            return None
        return importlib.util.spec_from_file_location(name, os.path.join(where, "__init__.py"),
                                                      submodule_search_locations=[where])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    _Package.root = os.path.abspath(sys.argv[1])
    script = os.path.abspath(sys.argv[2])
    sys.meta_path.insert(0, _Package)
    sys.path.insert(0, os.path.dirname(script))
    sys.argv = [script] + sys.argv[3:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
