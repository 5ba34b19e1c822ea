"""Every python block of the README runs, in order, in one namespace: no example can rot."""
import os
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.skipif(not README.exists(), reason="not running from a source checkout")
def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    code = blocks()
    assert len(code) >= 8, "the README lost its examples"
    for module, why in (("torch", "the PyTorch example"), ("jax", "the JAX example")):
        pytest.importorskip(module, reason=f"{module} is not installed; {why} needs it")
    monkeypatch.chdir(tmp_path)                       # examples that save files write here
    namespace = {"__name__": "readme"}
    for number, block in enumerate(code, 1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as exc:                      # name the block that failed
            raise AssertionError(f"README python block {number} failed: {exc!r}\n{block}") from exc
    assert os.path.exists(tmp_path / "lstm.npz")
