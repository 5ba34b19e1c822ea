"""Import + first calls of what the README example touches, in a fresh process, with an empty
and with a warm Numba cache; with ``--kernels``, the seconds each function took to compile while
the serial kernels of every cell (float64) compiled in one process on an empty cache, its own time
without what it called (Numba's compile events).

    python bench/compile_time.py
    python bench/compile_time.py --kernels
"""
import os
import shutil
import subprocess
import sys
import tempfile

# the README example, on smaller arrays: forward, bptt (exact and truncated), rtrl, OnlineRTRL
SNIPPET = """
import time
t0 = time.perf_counter()
import numpy as np, fastrnn
net = fastrnn.RNN.init(n_in=3, n_hidden=32, n_out=2, readout="linear", seed=0)
rng = np.random.default_rng(0)
x = rng.standard_normal((20, 8, 3)); d = rng.standard_normal((20, 8, 2))
fastrnn.forward(net, x)
fastrnn.bptt(net, x, d)
fastrnn.bptt(net, x, d, truncation=(10, 5))
fastrnn.rtrl(net, x, d)
learner = fastrnn.OnlineRTRL(net, batch=8)
learner.step(x[0], d[0])
print(f"{time.perf_counter() - t0:.3f}")
"""


def first_calls(cache_dir):
    """Seconds from the start of the import to the end of the first calls."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", SNIPPET], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def cold_and_warm():
    cache = tempfile.mkdtemp(prefix="fastrnn-numba-cache-")
    try:
        return first_calls(cache), first_calls(cache)
    finally:
        shutil.rmtree(cache)


KERNELS = """
import collections, time
from numba.core import event
stack, own, count = [], collections.Counter(), collections.Counter()

class Timer(event.Listener):
    def on_start(self, ev):
        fn = ev.data["dispatcher"].py_func
        stack.append([f"{fn.__module__}.{fn.__qualname__}", time.perf_counter(), 0.0])

    def on_end(self, ev):
        name, start, inner = stack.pop()
        took = time.perf_counter() - start
        own[name] += took - inner
        count[name] += 1
        if stack:
            stack[-1][2] += took

event.register("numba:compile", Timer())
import fastrnn
from fastrnn import cli
start = time.perf_counter()
cli.warm_units([(cell, "float64", False) for cell in fastrnn.MODELS], jobs=1)
print(f"the serial kernels of {len(fastrnn.MODELS)} cells, float64: {time.perf_counter() - start:.1f} s")
for name, seconds in own.most_common(25):
    print(f"{seconds:7.2f} s {count[name]:3d}x {name}")
"""


def kernel_times():
    cache = tempfile.mkdtemp(prefix="fastrnn-numba-cache-")
    try:
        out = subprocess.run([sys.executable, "-c", KERNELS], env=dict(os.environ, NUMBA_CACHE_DIR=cache),
                             check=True, capture_output=True, text=True)
        return out.stdout
    finally:
        shutil.rmtree(cache)


if __name__ == "__main__":
    if "--kernels" in sys.argv[1:]:
        print(kernel_times(), end="")
        sys.exit()
    cold, warm = cold_and_warm()
    print(f"import + first calls of the README example: cold cache {cold:.2f} s, warm cache {warm:.2f} s")
