"""The kernels install as fastrnn.kernels and nowhere else."""
import subprocess
import sys
import zipfile

import pytest

import fastrnn
import fastrnn.kernels


def test_kernels_are_a_subpackage():
    assert fastrnn.kernels.__name__ == "fastrnn.kernels"
    assert hasattr(fastrnn.kernels, "_forward") and hasattr(fastrnn.kernels, "_bptt_sweep")


def test_public_api_names():
    for name in ("RNN", "Gradients", "forward", "bptt", "reference", "ValidationError"):
        assert name in fastrnn.__all__ and hasattr(fastrnn, name)


@pytest.mark.slow
def test_wheel_puts_kernels_under_fastrnn(tmp_path):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    if not (root / "setup.cfg").exists():
        pytest.skip("not running from a source checkout, no setup.cfg to build from")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(root)], check=True)
    wheel = next(tmp_path.glob("fastrnn-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    sources = {f"fastrnn/kernels/{p.name}" for p in (root / "kernels").glob("*.py")}
    assert "fastrnn/kernels/forward.py" in sources and sources <= set(names), sorted(sources - set(names))
    assert not [n for n in names if n.startswith("kernels/")], "a top-level kernels package would land"
    # a regular (non-editable) install of that wheel imports fastrnn.kernels from where it landed
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True)
    # importing fastrnn.kernels from there imports every kernel module; a kernel then compiles into the
    # cache and computes (the input check: a forward pass's kernels took 20 s more of the suite's ten
    # minutes to compile, through the same ``_jit``)
    code = ("import fastrnn, fastrnn.kernels, numpy as np; from fastrnn.checks import all_finite; "
            "print(fastrnn.kernels.__file__, all_finite(np.ones(3)), all_finite(np.array([0.0, np.inf])))")
    env = dict(__import__("os").environ, PYTHONPATH=str(target), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=env, cwd=tmp_path).stdout.split()
    assert out[0].startswith(str(target)) and out[0].endswith("fastrnn/kernels/__init__.py"), out
    assert out[1:] == ["True", "False"], out
    assert list((tmp_path / "cache").rglob("checks._all_finite-*.nbc")), "nothing was cached"


def test_imports_with_docstrings_stripped():
    """python -OO sets every __doc__ to None; the docstrings filled from shared texts must not break
    the import (fastrnn._docs.fill)."""
    import subprocess
    import sys
    code = "import fastrnn, fastrnn.reference, fastrnn.torch, fastrnn.jax; print(fastrnn.jax.rnn.__doc__)"
    proc = subprocess.run([sys.executable, "-OO", "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"
