"""Shared pieces of the benchmarks: problems, the gradient check before timing, ids."""
import numpy as np
import pytest

import fastrnn

# a benchmark that compares different computations would be a lie: every peer must agree first
AGREE = {np.dtype(np.float64): 1e-8, np.dtype(np.float32): 2e-3}


def size_id(size):
    return "n{}-m{}-T{}-B{}".format(*size)


def problem(n, m, T, B, dtype=np.float64):
    """tanh cell, units readout with o = n/4 outputs, mse (the issue's benchmark problem)."""
    rng = np.random.default_rng(0)
    net = fastrnn.RNN.init(m, n, max(1, n // 4), dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, m)).astype(dtype)
    d = rng.standard_normal((T, B, net.n_out)).astype(dtype)
    return net, x, d


def lstm_problem(n, m, T, B, dtype=np.float64, cell="lstm"):
    """``problem`` for a gated cell (LSTM by default): units readout with o = n/4 outputs, mse."""
    rng = np.random.default_rng(0)
    net = fastrnn.MODELS[cell].init(m, n, max(1, n // 4), readout="units", dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, m)).astype(dtype)
    d = rng.standard_normal((T, B, net.n_out)).astype(dtype)
    return net, x, d


def cell_problem(cell, n, m, T, B, dtype):
    """``problem`` for the simple cell ("rnn"), ``lstm_problem`` for "lstm" and "gru"."""
    return problem(n, m, T, B, dtype) if cell == "rnn" else lstm_problem(n, m, T, B, dtype, cell)


def cell_case(text):
    """An argparse type: CELL:DTYPE:N:T:B (CELL rnn, lstm or gru; DTYPE float32 or float64) as (cell, dtype, n, T,
    B)."""
    import argparse
    try:
        cell, dtype, n, T, B = text.split(":")
        assert cell in ("rnn", "lstm", "gru") and dtype in ("float32", "float64")
        return cell, np.dtype(dtype), int(n), int(T), int(B)
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"expected CELL:DTYPE:N:T:B with CELL rnn, lstm or gru, got {text}")


def check_against(result, expected, dtype, who):
    """result and expected: (loss, dW_in, dW_rec, db)."""
    tol = AGREE[np.dtype(dtype)]
    for name, a, b in zip(("loss", "dW_in", "dW_rec", "db"), result, expected):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        err = np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)
        if err > tol:
            pytest.fail(f"{who} disagrees with fastrnn on {name}: rel err {err:.2g} > {tol:g}")


def as_tuple(loss_grads):
    loss, g = loss_grads
    if "W_ih" in g:                  # the gated cells
        return loss, g.W_ih, g.W_hh, g.b_ih
    return loss, g.W_in, g.W_rec, g.b


def _tiles_gemm():
    """out = a @ b in fastrnn's compiled register tiles (``kernels._tiles``, the kernels' step products), b cut into
    the tiles' panels inside the call, on one thread (``kernels._tiles_matmul``'s serial twin, which also takes the
    products outside the kernels where the tiles are wider than NumPy's BLAS): a matrix multiply of the machine as
    the kernels reach it."""
    from fastrnn.kernels import _tiles_matmul

    def gemm(a, b, buf, out):
        _tiles_matmul.serial(a, b, out, buf, 1)
    return gemm


def gemm_one_thread(benchmark, dtype):
    """One thread's matrix multiply (n = 512 squares): the roofline the report divides by. The faster of NumPy's
    BLAS and fastrnn's own compiled tiles, chosen by a first timing of both: on a machine whose BLAS runs
    narrower vectors than the CPU has (an AVX-512 CPU with OpenBLAS on its AVX2 kernels) the tiles reach the
    machine's rate and NumPy's does not; ``extra_info["source"]`` says which."""
    import time
    from threadpoolctl import threadpool_limits
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(dtype)
    b = np.random.default_rng(1).standard_normal((512, 512)).astype(dtype)
    out = np.empty_like(a)
    from fastrnn.kernels._panels import cut_elements
    tiled = _tiles_gemm()
    buf = np.empty(cut_elements(512, 2, 512, 512, np.dtype(dtype).itemsize), dtype)   # the panels' room, reused
    tiled(a, b, buf, out)
    if not np.allclose(out, a.astype(np.float64) @ b, rtol=1e-3, atol=1e-2):
        raise AssertionError("the tiles' matrix multiply disagrees with NumPy's")
    ways = {"numpy": lambda: np.matmul(a, b, out=out), "fastrnn tiles": lambda: tiled(a, b, buf, out)}
    best = {}
    with threadpool_limits(1):
        for name, fn in ways.items():
            fn()
            t0 = time.perf_counter()
            for _ in range(20):
                fn()
            best[name] = time.perf_counter() - t0
    source = min(best, key=best.get)
    benchmark.group = f"gemm one thread {np.dtype(dtype).name}"
    benchmark.extra_info.update(algorithm="gemm-one-thread", impl="numpy", n=512, m=512, T=1, B=1,
                                dtype=np.dtype(dtype).name, flops=2 * 512 ** 3, source=source)
    with threadpool_limits(1):
        benchmark(ways[source])


def gemv_one_thread(benchmark, n, gates, dtype, T):
    """T dependent products h_{t+1}[:gates·n] = W h_t[:n], as the B = 1 kernels run them (Numba's np.dot,
    SciPy's BLAS), on one thread; W scaled so that the states neither vanish nor overflow. The report
    turns the rate at which they stream W into the least time a B = 1 call can take."""
    import numba
    from threadpoolctl import threadpool_limits

    @numba.njit
    def chain(W, h):
        for t in range(h.shape[0] - 1):
            np.dot(W, h[t, :W.shape[1]], h[t + 1, :W.shape[0]])

    rng = np.random.default_rng(0)
    W = (rng.standard_normal((gates * n, n)) / np.sqrt(n)).astype(dtype)
    h = np.zeros((T + 1, gates * n), dtype)
    h[0, :n] = rng.standard_normal(n)
    chain(W, h)                                            # compile
    name = np.dtype(dtype).name
    benchmark.group = f"gemv one thread n={n} gates={gates} {name}"
    benchmark.extra_info.update(algorithm="gemv-one-thread", impl="numba", n=n, m=gates, T=T, B=1, dtype=name,
                                bytes=T * W.nbytes)
    with threadpool_limits(1):
        benchmark(chain, W, h)


def gemv_two_threads(benchmark, n, gates, dtype, T):
    """``gemv_one_thread``'s T products by W (gates·n, n) on two threads at once, each its half of W's rows, with
    no meeting between the steps: how fast two cores stream W together, a least time for a B = 1 call on two
    threads (the pair, ``runtime.pair``, also meets every step). The pair's own threads and product: the calling
    thread and fastrnn's helper thread (``runtime.overlap``), the compiled loop over four rows at a time taking
    its rows the other way round every other step (``kernels._panels._gemv_rows``), after putting torch's
    spinning threads to sleep as a fastrnn call does. Not Numba's parallel loop, whose pool's threads, spinning
    after it, held the CPUs the pair then asked for; not the BLAS, whose threads threadpoolctl's limits disturbed
    beside torch's (the B = 1 rows ran 1.9x slower with such a baseline in their rounds)."""
    import sys
    import threading

    import numba
    from fastrnn.kernels._panels import _gemv_rows
    from fastrnn.runtime import overlap

    @numba.njit(nogil=True)
    def chain(W, h, r0, r1):
        for t in range(h.shape[0] - 1):
            _gemv_rows(W[r0:r1], h[t, :W.shape[1]], h[t + 1, r0:r1], t & 1 == 1)

    rng = np.random.default_rng(0)
    W = (rng.standard_normal((gates * n, n)) / np.sqrt(n)).astype(dtype)
    h = np.zeros((T + 1, gates * n), dtype)
    h[0, :n] = rng.standard_normal(n)
    N = W.shape[0]
    bridge = sys.modules.get("fastrnn.torch")

    def both():
        quiet = bridge._plain_call_quiet() if bridge is not None else None
        if quiet is not None:
            quiet()
        done = threading.Event()
        overlap._helper().submit(lambda: (chain(W, h, N // 2, N), done.set()))
        chain(W, h, 0, N // 2)
        done.wait()

    chain(W, h, 0, N)                                      # compile
    name = np.dtype(dtype).name
    benchmark.group = f"gemv two threads n={n} gates={gates} {name}"
    benchmark.extra_info.update(algorithm="gemv-two-threads", impl="numba", n=n, m=gates, T=T, B=1, dtype=name,
                                bytes=T * W.nbytes)
    benchmark(both)


def interleaved(fns, rounds, warm=1):
    """Each callable of ``fns`` (a dict) called ``warm`` times to warm up, then ``rounds`` times in a new
    random order each round: {name: [seconds, ...]}. For comparisons on a shared, noisy machine."""
    import random
    import time
    times = {k: [] for k in fns}
    for fn in fns.values():
        for _ in range(warm):
            fn()
    for _ in range(rounds):
        order = list(fns)
        random.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def kernel_call(driver, kernel, net, x, d):
    """(arguments, work) of the call a one-thread ``fastrnn.bptt(net, x, d)`` makes of ``kernel`` through the
    cell driver module ``driver`` (its ``call``), the arrays copied (without nblocks and split, which
    ``runtime.dispatch.call`` adds): for benches that run a kernel compiled a second time on real arguments."""
    seen = {}
    real = driver.call

    def spy(k, threads, work, *args):
        if k is kernel:
            seen["args"] = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
            seen["work"] = work
        return real(k, threads, work, *args)
    driver.call = spy
    try:
        with fastrnn.threads(1):
            fastrnn.bptt(net, x, d)
    finally:
        driver.call = real
    return seen["args"], seen["work"]
