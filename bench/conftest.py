"""Benchmark set-up: the bench modules import each other from this folder, and the header
prints the machine facts the numbers depend on."""
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(__file__))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from fastrnn.runtime import dispatch as _dispatch, layer  # noqa: E402


def pytest_report_header(config):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mode = (f"fastrnn threads {_dispatch.get_threads()} (serial twin for small work), every BLAS held to 1 thread "
            f"during calls; layer requested: {layer.REQUESTED}")
    return [f"fastrnn bench: CPU {cpu}, {os.cpu_count()} logical CPUs, numba threads "
            f"{numba.get_num_threads()} ({numba.config.THREADING_LAYER} layer), {mode}; "
            f"numpy {np.__version__}, numba {numba.__version__}"]
