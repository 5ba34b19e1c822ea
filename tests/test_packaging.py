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
    assert "fastrnn/kernels/forward.py" in names and "fastrnn/kernels/bptt.py" in names
    assert not [n for n in names if n.startswith("kernels/")], "a top-level kernels package would land"
