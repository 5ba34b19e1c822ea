"""Small calls with a CPU-bound competitor on every core, against their unloaded one-thread time.

    python bench/under_load.py [--seconds 20]

Starts one busy-looping process per core (they stop by themselves), times BPTT and RTRL calls
of online-training size at the default thread count, and prints each call's loaded median over
its unloaded one-thread median. The issue's bound is 2x: a call that kept a spinning or waiting
thread pool would be far above it (measured before the dispatch policy: up to 100x).
"""
import argparse
import multiprocessing as mp
import os
import time

import numpy as np

import fastrnn

SIZES = [("bptt", 8, 12, 1), ("bptt", 32, 50, 1), ("bptt", 32, 12, 32), ("rtrl", 8, 50, 1), ("rtrl", 16, 50, 1),
         ("lstm-bptt", 16, 50, 1)]


def busy(stop_at):
    x = 0
    while time.time() < stop_at:
        x += 1


def median_ms(fn, seconds=0.3):
    fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def problem(algo, n, T, B):
    rng = np.random.default_rng(0)
    cls = fastrnn.LSTM if algo.startswith("lstm") else fastrnn.RNN
    net = cls.init(4, n, max(1, n // 4), readout="units", seed=0)
    x = rng.standard_normal((T, B, 4))
    d = rng.standard_normal((T, B, net.n_out))
    fn = fastrnn.rtrl if algo.endswith("rtrl") else fastrnn.bptt
    return lambda: fn(net, x, d)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the competitors run at most")
    args = parser.parse_args(argv)
    calls = {size: problem(*size) for size in SIZES}
    unloaded = {}
    for size, fn in calls.items():
        with fastrnn.threads(1):
            unloaded[size] = median_ms(fn)
    cores = os.cpu_count() or 1
    stop_at = time.time() + args.seconds
    competitors = [mp.get_context("spawn").Process(target=busy, args=(stop_at,), daemon=True) for _ in range(cores)]
    for p in competitors:
        p.start()
    time.sleep(1.0)
    try:
        loaded = {size: median_ms(fn) for size, fn in calls.items()}
    finally:
        for p in competitors:
            p.terminate()
            p.join()
    print(f"{cores} CPU-bound competitors; fastrnn threads {fastrnn.get_threads()}")
    print("| call | unloaded, 1 thread | loaded, default | loaded / unloaded |")
    print("| --- | ---: | ---: | ---: |")
    worst = 0.0
    for size in calls:
        algo, n, T, B = size
        ratio = loaded[size] / unloaded[size]
        worst = max(worst, ratio)
        print(f"| {algo} n={n} T={T} B={B} | {unloaded[size]:.3f} ms | {loaded[size]:.3f} ms | {ratio:.2f} |")
    print(f"worst {worst:.2f}x (bound 2x: {'holds' if worst <= 2 else 'NOT reached'})")


if __name__ == "__main__":
    main()
