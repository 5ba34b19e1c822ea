"""Benchmark set-up: print the machine facts the numbers depend on."""
import os
import platform

import numba
import numpy as np


def pytest_report_header(config):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return [f"fastrnn bench: CPU {cpu}, {os.cpu_count()} logical CPUs, numba threads "
            f"{numba.get_num_threads()}, numpy {np.__version__}, numba {numba.__version__}"]
