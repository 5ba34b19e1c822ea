"""A batch of one on two threads that meet every step: what a step's synchronisation costs.

    python bench/step_sync.py > bench/results/<date>-step-sync.md

At B = 1 each step of a recurrence is one matrix-vector product followed by the nonlinearity, and
step t + 1 needs all of step t. The kernels split such a product over threads only from
``runtime.dispatch.SPLIT_BYTES`` of weights, launching one parallel region a step (about 1.5 us
under tbb). This experiment measures the other way to split it: the threads start once per call and
meet at every step on counters in shared memory (atomic loads and stores, written here as LLVM
intrinsics), each thread owning a block of the weight rows. A thread that finds the other's block
unclaimed after ``PATIENCE`` polls claims and computes it (compare-and-swap), so a call never waits
on a thread the pool did not start (Numba's prange does not promise that its iterations run at
once). The simple cell's forward pass and sweep at B = 1 now run so, with the helper thread (``runtime.pair``); the rest
is not used by the kernels: the table says where it would pay (see the results file).

The simple cell's forward recurrence h_t = tanh(h_t + W h_{t-1}) in float64, T = 1000, the input
projection left out (it is one matrix product before the loop), timed three ways interleaved in
random order: ``serial`` (the kernels' compiled loop, ``_panels._gemv_rows``, on one thread),
``half`` (the same loop over half of W's rows: the time a perfect split would take) and ``split``
(two threads meeting every step). Then the LSTM's forward pass (``lstm_table``, T = 100, float32
and float64) with each thread owning a block of units, against the package's own kernel on one
thread and with its per-step split. Each result is checked against the one-thread result
first. Every BLAS is held to one thread, as in fastrnn's calls.
"""
import sys
import time

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls: loaded before threadpool_limits holds it)
from numba import njit, prange
from threadpoolctl import threadpool_limits

from fastrnn.kernels import _lstm_forward
from fastrnn.kernels._activations import LOGISTIC, TANH, activate, constants, tanh
from fastrnn.kernels._jit import FASTMATH
from fastrnn.kernels._panels import _gemv_rows, block_rows_dot
from fastrnn.kernels._sync import claim, load_acquire, store_release

LINE = 8            # int64 counters a cache line apart: each thread writes its own line
PATIENCE = 4000     # polls of the other block's counter before this thread claims that block


@njit(inline="always")
def next_block(claimed, done, w, parts, t):
    """The block of step t that thread w computes next, or -1 once every block of the step is done:
    its own block if it can claim it, else, while waiting for the others to finish theirs, one that
    stays unclaimed for PATIENCE polls. The caller computes the block, then ``store_release(done,
    block * LINE, t + 1)``, and asks again."""
    me = np.int64(w)                # prange's index may be unsigned: int64 and uint64 unify to float64
    if claim(claimed, me * LINE, t, t + 1):
        return me
    for q in range(parts):
        polls = 0
        while load_acquire(done, q * LINE) < t + 1:
            polls += 1
            if polls > PATIENCE and load_acquire(claimed, q * LINE) == t and claim(claimed, q * LINE, t, t + 1):
                return q
    return -1


@njit(fastmath=FASTMATH, inline="always")
def _rows_step(W, h, rec, t, r0, r1):
    """h[t + 1, r0:r1] = tanh(h[t + 1, r0:r1] + W[r0:r1] @ h[t]), the product in the kernels' compiled
    loop (``_panels._gemv_rows``) into this thread's scratch ``rec``."""
    out = h[t + 1]
    _gemv_rows(W[r0:r1], h[t], rec[r0:r1], t & 1 == 1)
    for j in range(r0, r1):
        out[j] += rec[j]
    activate(out[r0:r1], constants(out), TANH)


@njit(fastmath=FASTMATH)
def serial(W, h, r1):
    """The recurrence on one thread over W's rows 0:r1 (r1 = n: the whole step)."""
    rec = np.empty(W.shape[0], dtype=h.dtype)
    for t in range(h.shape[0] - 1):
        _rows_step(W, h, rec, t, 0, r1)


@njit(fastmath=FASTMATH, parallel=True)
def split(W, h, parts, claimed, done):
    """The recurrence with W's rows in ``parts`` blocks, one per thread, meeting every step.
    claimed[c * LINE]: steps of block c claimed so far; done[c * LINE]: steps of block c finished.
    A block's step is claimed (compare-and-swap) before it is computed, so each is computed once;
    a thread first claims its own block, then waits for every block of the step, claiming one that
    stays unclaimed for PATIENCE polls (``next_block``)."""
    T = h.shape[0] - 1
    n = W.shape[0]
    for w in prange(parts):
        rec = np.empty(n, dtype=h.dtype)
        for t in range(T):
            q = next_block(claimed, done, w, parts, t)
            while q >= 0:
                _rows_step(W, h, rec, t, q * n // parts, (q + 1) * n // parts)
                store_release(done, q * LINE, t + 1)
                q = next_block(claimed, done, w, parts, t)


@njit(fastmath=FASTMATH, inline="always")
def _lstm_units(W_hh, bias, h, c, gates, rec, t, u0, u1, K, blas):
    """Units u0:u1 of the LSTM's step t at a batch of one: their four gates' rows of W_hh (four
    contiguous blocks of rows) times h_t, the nonlinearities, and their cell state and output; all
    of it local to the units, so a thread owning them needs no other thread's work within the step."""
    n = W_hh.shape[1]
    row = gates[t, 0]
    for q in range(4):
        r0 = q * n + u0
        r1 = q * n + u1
        if blas:
            np.dot(W_hh[r0:r1], h[t, 0], rec[r0:r1])
        else:
            _gemv_rows(W_hh[r0:r1], h[t, 0], rec[r0:r1], t & 1 == 1)
        for k in range(r0, r1):
            row[k] += bias[k] + rec[k]
        activate(row[r0:r1], K, TANH if q == 2 else LOGISTIC)
    for k in range(u0, u1):
        cc = row[n + k] * c[t, 0, k] + row[k] * row[2 * n + k]
        c[t + 1, 0, k] = cc
        h[t + 1, 0, k] = row[3 * n + k] * tanh(cc, K)


@njit(fastmath=FASTMATH)
def lstm_units_serial(x, W_ih, W_hh, bias, h, c, gates, blas):
    """``lstm_split``'s arithmetic on one thread, all units as one block: what its meeting is judged against."""
    T, B, m = x.shape
    n = W_hh.shape[1]
    K = constants(h)
    block_rows_dot(x.reshape(T * B, m), W_ih.T, gates.reshape(T * B, 4 * n), 0, 1,
                   np.empty((0, 0, 0, 0), dtype=h.dtype))     # no panels: the BLAS's product
    rec = np.empty(4 * n, dtype=h.dtype)
    for t in range(T):
        _lstm_units(W_hh, bias, h, c, gates, rec, t, 0, n, K, blas)


@njit(fastmath=FASTMATH, parallel=True)
def lstm_split(x, W_ih, W_hh, bias, h, c, gates, parts, claimed, done, blas):
    """The LSTM's forward pass at a batch of one (``kernels.lstm_forward._lstm_forward``'s contract)
    with the units in ``parts`` blocks, one per thread, meeting every step as ``split`` does."""
    T, B, m = x.shape
    n = W_hh.shape[1]
    K = constants(h)
    block_rows_dot(x.reshape(T * B, m), W_ih.T, gates.reshape(T * B, 4 * n), 0, 1,
                   np.empty((0, 0, 0, 0), dtype=h.dtype))     # no panels: the BLAS's product
    for w in prange(parts):
        rec = np.empty(4 * n, dtype=h.dtype)
        for t in range(T):
            q = next_block(claimed, done, w, parts, t)
            while q >= 0:
                _lstm_units(W_hh, bias, h, c, gates, rec, t, q * n // parts, (q + 1) * n // parts, K, blas)
                store_release(done, q * LINE, t + 1)
                q = next_block(claimed, done, w, parts, t)


def lstm_table(sizes=(128, 256, 512), T=100, m=32, rounds=100, dtype=np.float32, blas=True):
    """The LSTM's forward pass at B = 1: the package's kernel on one thread (``serial``), with each
    step's product cut in two on threads launched every step (``per-step split``, what ``SPLIT_BYTES``
    enables), ``lstm_split``'s arithmetic on one thread (``units``: by blocks of gate rows through the
    compiled loop, not the kernel's products) and with two threads meeting every step (``met``)."""
    parts = 2
    name = np.dtype(dtype).name
    print(f"\n## The LSTM's forward pass, {name}, B = 1, T = {T}, m = {m}: median (least) ms of {rounds} calls\n")
    print("| n | W_hh | serial | per-step split | units, one thread | met | serial / per-step split | units / met "
          "| serial / met |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        rng = np.random.default_rng(n)
        x = rng.standard_normal((T, 1, m)).astype(dtype)
        W_ih = (rng.standard_normal((4 * n, m)) / np.sqrt(m)).astype(dtype)
        W_hh = (rng.standard_normal((4 * n, n)) / np.sqrt(n)).astype(dtype)
        bias = (rng.standard_normal(4 * n) * 0.1).astype(dtype)
        empty = np.empty(0, dtype)

        def state():
            h = np.zeros((T + 1, 1, n), dtype)
            c = np.zeros((T + 1, 1, n), dtype)
            return h, c, np.empty((T, 1, 4 * n), dtype)

        runs = {"serial": lambda hcg: _lstm_forward.serial(x, W_ih, W_hh, bias, *hcg, empty, 1, 1),
                "per-step split": lambda hcg: _lstm_forward.serial(x, W_ih, W_hh, bias, *hcg, empty, 1, parts),
                "units": lambda hcg: lstm_units_serial(x, W_ih, W_hh, bias, *hcg, blas),
                "met": lambda hcg: lstm_split(x, W_ih, W_hh, bias, *hcg, parts, *_counters(parts), blas)}
        ref = state()
        runs["serial"](ref)
        for k, run in runs.items():
            got = state()
            run(got)
            err = max(np.abs(a - b).max() for a, b in zip(got, ref))
            if not err <= (1e-5 if dtype == np.float32 else 1e-12):
                raise AssertionError(f"n={n}: {k} differs from serial by {err:.1e}")
        med, least = _interleaved(runs, state, rounds)
        cell = " | ".join(f"{med[k]:.3f} ({least[k]:.3f})" for k in runs)
        print(f"| {n} | {4 * n * n * np.dtype(dtype).itemsize // 1024} KB | {cell} | "
              f"{med['serial'] / med['per-step split']:.2f} | {med['units'] / med['met']:.2f} | "
              f"{med['serial'] / med['met']:.2f} |", flush=True)


def _interleaved(runs, fresh, rounds):
    """Median and least ms of each of ``runs`` (name: function of a fresh state from ``fresh()``),
    ``rounds`` calls each, taken in turn in random order."""
    times = {k: [] for k in runs}
    order = np.random.default_rng(0)
    for _ in range(rounds):
        for k in order.permutation(list(runs)):
            state = fresh()
            t0 = time.perf_counter()
            runs[k](state)
            times[k].append(time.perf_counter() - t0)
    return ({k: np.median(v) * 1e3 for k, v in times.items()}, {k: np.min(v) * 1e3 for k, v in times.items()})


def _counters(parts):
    return np.zeros(parts * LINE, np.int64), np.zeros(parts * LINE, np.int64)


def main(sizes=(16, 64, 128, 256, 512), T=1000, rounds=200):
    parts = 2
    split(np.eye(4), np.zeros((2, 4)), parts, *_counters(parts))     # starts the pool: its layer is known
    print("# A batch of one on two threads meeting every step (float64, T = 1000, one run)\n")
    print("`python bench/step_sync.py`: the simple cell's forward recurrence; median (least) ms of "
          f"{rounds} calls each, interleaved in random order. Numba {numba.__version__}, "
          f"{numba.threading_layer()} layer, {numba.get_num_threads()} threads.\n")
    print("| n | W | serial | half of the rows | split on 2 threads | serial / split | split - half, us a step |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        rng = np.random.default_rng(n)
        W = rng.standard_normal((n, n)) / np.sqrt(n)
        x = rng.standard_normal((T + 1, n)) * 0.5
        ref = x.copy()
        serial(W, ref, n)
        got = x.copy()
        split(W, got, parts, *_counters(parts))
        if not np.array_equal(got, ref):
            raise AssertionError(f"n={n}: split differs from serial by {np.abs(got - ref).max():.1e}")
        runs = {"serial": lambda h: serial(W, h, n), "half": lambda h: serial(W, h, n // 2),
                "split": lambda h: split(W, h, parts, *_counters(parts))}
        med, least = _interleaved(runs, x.copy, rounds)
        cell = " | ".join(f"{med[k]:.3f} ({least[k]:.3f})" for k in runs)
        print(f"| {n} | {n * n * 8 // 1024} KB | {cell} | {med['serial'] / med['split']:.2f} | "
              f"{(med['split'] - med['half']) * 1e3 / T:.2f} |", flush=True)


if __name__ == "__main__":
    with threadpool_limits(1):      # as in fastrnn's calls: a BLAS thread spinning after the input projection
        if sys.argv[1:2] == ["lstm"]:   # would hold the second core, and the second thread would start late
            lstm_table()
            lstm_table(sizes=(128, 256), dtype=np.float64)
        else:
            main(*([tuple(int(v) for v in sys.argv[1].split(","))] if sys.argv[1:] else []))
            lstm_table()
            lstm_table(sizes=(128, 256), dtype=np.float64)
