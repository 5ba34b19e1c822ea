"""The shape of the package: imports run one way, the public calls do not branch on the cell,
the package's names are reachable, and a source-tree import explains itself."""
import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import fastrnn

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fastrnn"
KERNELS = ROOT / "kernels"

pytestmark = pytest.mark.skipif(not (PACKAGE / "api.py").exists() or not KERNELS.is_dir(),
                                reason="not running from a source checkout")


def _modules():
    """{module name: path} for fastrnn/ and kernels/ (installed as fastrnn.kernels)."""
    out = {}
    for base, prefix in ((PACKAGE, "fastrnn"), (KERNELS, "fastrnn.kernels")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([prefix] + parts)] = path
    return out


def _imports(name, path, modules):
    """Every fastrnn module that ``name`` imports, at any depth of its code (function bodies too)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in modules else mod for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != name:
                found.add(target)
    return found


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


@pytest.mark.parametrize("lower, upper", [
    ("fastrnn.kernels", "fastrnn."),                # compiled code imports only compiled code
    ("fastrnn.runtime", "fastrnn.api"),
    ("fastrnn.cells", "fastrnn.api"),
    ("fastrnn.cells", "fastrnn.cli"),
    ("fastrnn.cells", "fastrnn.train"),
    ("fastrnn.reference", "fastrnn.cells"),
    ("fastrnn.reference", "fastrnn.api"),
    ("fastrnn.models", "fastrnn.cells"),
    ("fastrnn.api", "fastrnn.cli"),
    ("fastrnn.api", "fastrnn.train"),
    ("fastrnn.train", "fastrnn.cli"),
])
def test_imports_run_one_way(lower, upper):
    for name, targets in _graph().items():
        if not name.startswith(lower):
            continue
        for target in targets:
            if lower == "fastrnn.kernels":
                assert target.startswith("fastrnn.kernels"), f"{name} imports {target}"
            else:
                assert not target.startswith(upper), f"{name} (a lower layer) imports {target}"


def test_public_calls_do_not_branch_on_the_cell():
    """api.py names no model class and never reads ``.cell``: the driver registry decides."""
    tree = ast.parse((PACKAGE / "api.py").read_text())
    model_names = {cls.__name__ for cls in fastrnn.MODELS.values()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id not in model_names, f"api.py uses {node.id} (line {node.lineno})"
        if isinstance(node, ast.Attribute):
            assert node.attr != "cell", f"api.py reads .cell (line {node.lineno})"


def test_every_model_has_a_driver_and_a_reference():
    from fastrnn import cells, reference
    for name, model in fastrnn.MODELS.items():
        driver = cells.DRIVERS[model]
        assert driver.model is model
        net = model.init(2, 3, 1, seed=0)
        assert reference.cell(net) is driver.reference
        assert cells.driver_for(net) is driver


def test_subpackages_are_attributes_after_import():
    out = subprocess.run([sys.executable, "-c",
                          "import fastrnn; print(fastrnn.train.train.__name__, fastrnn.tasks.get.__name__, "
                          "fastrnn.reference.bptt.__name__)"],
                         capture_output=True, text=True, cwd=str(ROOT.parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["train", "get", "bptt"]


def test_the_cli_and_trainer_use_public_names_only():
    for module in ("cli.py", "train.py"):
        tree = ast.parse((PACKAGE / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                names = {a.name for a in node.names}
                private = [n for n in names if n.startswith("_")] + ([node.module] if (node.module or "").startswith("_") else [])
                assert not private, f"{module} imports private {private}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "fastrnn":
                assert not node.attr.startswith("_") or node.attr == "__version__", f"{module} uses fastrnn.{node.attr}"


def test_importing_the_source_tree_says_what_to_do(tmp_path):
    """As after a regular install, run from the repository root: fastrnn/ is the source, and
    nothing maps kernels/ in as fastrnn.kernels."""
    shutil.copytree(PACKAGE, tmp_path / "fastrnn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(KERNELS, tmp_path / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()\n"
            "                    and 'editable' not in str(getattr(f, '__name__', '')).lower()]\n"
            "import fastrnn\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastrnn was imported from its source tree"), out.stderr
    assert "pip install -e ." in last
