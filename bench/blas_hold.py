"""What holding the BLAS to one thread costs a call: ``runtime.blas.single_threaded``'s block (entered
once by every fastrnn call, twice by a fastrnn.torch layer) with the libraries asked and set through their
own C functions (``runtime.blas.thread_controls``, what fastrnn does) and through threadpoolctl's
controllers (what it did before), interleaved in random order in one process.

    python bench/blas_hold.py [rounds]

Two settings of the libraries: their default counts (each block sets them to one thread and back) and
already one thread (``threadpool_limits(1)``: each block only asks). Medians in microseconds.
"""
import random
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastrnn.runtime import blas


def _block():
    with blas.single_threaded():
        pass


def main(rounds=20000):
    libs = blas.libraries()
    if not libs:
        print("threadpoolctl finds no BLAS library it can control in this process")
        return
    direct = blas.thread_controls()
    through_threadpoolctl = [(lib.get_num_threads, lib.set_num_threads) for lib in libs]
    print(f"`python bench/blas_hold.py {rounds}`: "
          + ", ".join(f"{lib.internal_api} {lib.filepath.rsplit('/', 1)[-1]} ({lib.get_num_threads()} threads, "
                      f"{'C functions' if d != t else 'threadpoolctl'})"
                      for lib, d, t in zip(libs, direct, through_threadpoolctl)) + "\n")
    print("| library counts | C functions | threadpoolctl | C / threadpoolctl |")
    print("| --- | ---: | ---: | ---: |")
    for label, limit in (("default", None), ("one thread already", 1)):
        limits = threadpool_limits(limit) if limit else None
        times = {"C": [], "threadpoolctl": []}
        ways = {"C": direct, "threadpoolctl": through_threadpoolctl}
        try:
            for _ in range(rounds):
                for way in random.sample(list(ways), 2):
                    blas._controls = (libs, ways[way])
                    start = time.perf_counter()
                    _block()
                    times[way].append(time.perf_counter() - start)
        finally:
            blas._controls = None
            if limits is not None:
                limits.restore_original_limits()
        c, t = (np.median(times[k]) * 1e6 for k in ("C", "threadpoolctl"))
        print(f"| {label} | {c:.2f} | {t:.2f} | {c / t:.2f} |")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
