"""Import + first fastrnn.bptt call, in a fresh process, with an empty and with a warm Numba cache.

    python bench/compile_time.py
"""
import os
import shutil
import subprocess
import sys
import tempfile

SNIPPET = """
import time
t0 = time.perf_counter()
import numpy as np, fastrnn
net = fastrnn.RNN.init(3, 8, 2, readout="linear")
x = np.zeros((5, 2, 3)); d = np.zeros((5, 2, 2))
fastrnn.bptt(net, x, d)
print(f"{time.perf_counter() - t0:.2f}")
"""


def first_call(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", SNIPPET], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip())


def main():
    cache = tempfile.mkdtemp(prefix="fastrnn-numba-cache-")
    try:
        cold = first_call(cache)
        warm = first_call(cache)
    finally:
        shutil.rmtree(cache)
    print(f"import + first bptt call: cold cache {cold:.2f} s, warm cache {warm:.2f} s")


if __name__ == "__main__":
    main()
