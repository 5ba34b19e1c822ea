"""Threads: concurrent calls, forked children, the thread budget, the dispatch policy."""
import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastrnn
from fastrnn.runtime import blas, dispatch, layer

from conftest import assert_grads_close, make_problem


def test_concurrent_bptt_and_rtrl_calls_are_correct(parallel_kernels):
    problems = [make_problem(30 + i, 40, 1 + i % 4, 3, 12, 3) for i in range(8)]   # 8 Python threads
    blas_before = blas.threads()
    expected = [fastrnn.bptt(net, x, d, mask, h0=h0) for net, x, d, mask, h0 in problems]
    for L, g in expected:
        g.h0 = None    # rtrl has no h0 gradient; the rest must agree
    results = [None] * len(problems)
    errors = []
    start = threading.Barrier(len(problems))

    def work(i):
        try:
            start.wait()
            net, x, d, mask, h0 = problems[i]
            out = []
            for k in range(15):
                if k % 3 == 2:
                    out.append(fastrnn.rtrl(net, x, d, mask, h0=h0))
                else:
                    L, g = fastrnn.bptt(net, x, d, mask, h0=h0)
                    g.h0 = None
                    out.append((L, g))
            results[i] = out
        except Exception as exc:   # surfaced below with the thread's index
            errors.append((i, exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    assert blas.threads() == blas_before, "the calls' shared hold on the BLAS did not give its counts back"
    for (L_exp, g_exp), outs in zip(expected, results):
        for L, g in outs:
            assert abs(L - L_exp) <= 1e-10 * abs(L_exp)
            assert_grads_close(g, g_exp, np.float64)


def test_blas_threads_are_restored_after_a_call():
    from fastrnn.runtime import blas as _blas, dispatch as _dispatch
    if not _blas.controllable():
        import pytest
        pytest.skip("threadpoolctl finds no BLAS library it can control in this process")
    before = _blas.threads()
    seen = []
    with _dispatch.workers() as threads:
        seen.append((threads, _blas.threads()))
    assert _blas.threads() == before
    assert seen[0][1] == 1, "every call runs with the BLAS held to one thread"
    net, x, d, mask, h0 = make_problem(60, 5, 4, 2, 6, 2)
    fastrnn.bptt(net, x, d, mask, h0=h0)
    fastrnn.rtrl(net, x, d, mask, h0=h0)
    assert _blas.threads() == before


def test_nested_blocks_hold_the_blas_once_and_restore_it_at_the_outer_exit(monkeypatch):
    """fastrnn.torch nests single_threaded blocks (the operator, the call inside it): only the
    outermost asks the libraries and sets them, and restores them when it ends, even on error."""
    class FakeLibrary:
        def __init__(self):
            self.count, self.queries = 4, 0

        def get_num_threads(self):
            self.queries += 1
            return self.count

        def set_num_threads(self, count):
            self.count = count
    libs = [FakeLibrary(), FakeLibrary()]
    monkeypatch.setattr(blas, "_libraries", libs)
    with pytest.raises(ValueError):
        with blas.single_threaded():
            assert [lib.count for lib in libs] == [1, 1]
            with blas.single_threaded(), blas.single_threaded():
                assert [lib.count for lib in libs] == [1, 1]
            assert [lib.count for lib in libs] == [1, 1]
            raise ValueError("the block fails")
    assert [lib.count for lib in libs] == [4, 4] and [lib.queries for lib in libs] == [1, 1]
    with blas.single_threaded():
        pass
    assert [lib.queries for lib in libs] == [2, 2]


def test_an_openblas_on_its_own_threads_is_held_through_its_c_functions_from_any_thread():
    """An OpenBLAS on pthreads is asked and set through its own C functions (``blas.thread_controls``),
    which threadpoolctl's controller then reads the same; and a call from a second Python thread holds
    it too (threadpoolctl's own setter leaves an OpenBLAS to the first thread that set it)."""
    libs = [lib for lib in blas.libraries()
            if lib.internal_api == "openblas" and getattr(lib, "threading_layer", None) == "pthreads"]
    if not libs:
        pytest.skip("no OpenBLAS on its own threads in this process (another BLAS, or OpenMP's threads)")
    controls = dict(zip(map(id, blas.libraries()), blas.thread_controls()))
    for lib in libs:
        get, _ = controls[id(lib)]
        assert get != lib.get_num_threads, f"{lib.filepath} is asked through threadpoolctl, not its C function"
        assert get() == lib.get_num_threads()
    from threadpoolctl import threadpool_limits
    with threadpool_limits(2):              # set by this (the main) thread through threadpoolctl
        before = [lib.get_num_threads() for lib in libs]
        seen = []

        def call():
            with blas.single_threaded():
                seen.append([lib.get_num_threads() for lib in libs])
        worker = threading.Thread(target=call)
        worker.start()
        worker.join()
        assert seen == [[1] * len(libs)], "a second thread's call left its BLAS threads as they were"
        assert [lib.get_num_threads() for lib in libs] == before


def test_blocks_on_two_threads_hold_the_blas_until_the_last_ends():
    """Thread A opens a block, thread B opens one, A's ends: B's calls still run with the BLAS on one
    thread; when B's ends, the counts from before A's block come back (not those B found)."""
    if not blas.controllable():
        pytest.skip("threadpoolctl finds no BLAS library it can control in this process")
    from threadpoolctl import threadpool_limits
    with threadpool_limits(2):
        before = [lib.get_num_threads() for lib in blas.libraries()]
        a_in, b_in, a_out = (threading.Event() for _ in range(3))
        seen = {}

        def a():
            with blas.single_threaded():
                a_in.set()
                b_in.wait(30)
            a_out.set()

        def b():
            a_in.wait(30)
            with blas.single_threaded():
                b_in.set()
                a_out.wait(30)
                seen["after A"] = [lib.get_num_threads() for lib in blas.libraries()]
        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert seen["after A"] == [1] * len(before), "A's end gave the BLAS its threads while B's call ran"
        assert [lib.get_num_threads() for lib in blas.libraries()] == before


def _blas_counts_in_child(queue):
    libs = blas.libraries()
    with blas.single_threaded():
        inside = [lib.get_num_threads() for lib in libs]
    queue.put((inside, [lib.get_num_threads() for lib in libs]))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked children need os.fork (POSIX)")
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")   # JAX, if an earlier test loaded it
@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_a_child_forked_while_another_thread_holds_the_blas_starts_with_the_counts_from_before():
    """single_threaded's blocks are counted across threads under a lock: a child forked while another
    thread's block is open gets neither that lock nor that block, and its BLAS counts are those from
    before the block."""
    if not blas.controllable():
        pytest.skip("threadpoolctl finds no BLAS library it can control in this process")
    from threadpoolctl import threadpool_limits
    with threadpool_limits(2):
        before = [lib.get_num_threads() for lib in blas.libraries()]
        opened, done = threading.Event(), threading.Event()

        def hold():
            with blas.single_threaded():
                opened.set()
                done.wait(30)
        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert opened.wait(30)
            ctx = multiprocessing.get_context("fork")
            queue = ctx.Queue()
            child = ctx.Process(target=_blas_counts_in_child, args=(queue,))
            child.start()
            inside, after = queue.get(timeout=60)
            child.join(60)
        finally:
            done.set()
            holder.join()
        assert inside == [1] * len(before) and after == before
        assert [lib.get_num_threads() for lib in blas.libraries()] == before


def test_readout_products_run_with_the_blas_held_to_one_thread(monkeypatch):
    """NumPy's products of the readout (forward's outputs, the loss's injected errors) run inside
    the call's block like the kernels: on OpenBLAS's own threads they waited for a busy core
    (``api._states``). Libraries stand in for the BLAS, so the test runs whatever BLAS NumPy has."""
    class FakeLibrary:
        count = 4
        internal_api = "stand-in"      # not OpenBLAS: blas.sgemm_address passes it by

        def get_num_threads(self):
            return self.count

        def set_num_threads(self, count):
            self.count = count
    monkeypatch.setattr(blas, "_libraries", [FakeLibrary(), FakeLibrary()])
    seen = []
    for name in ("outputs", "injected_errors"):
        real = getattr(fastrnn.readout, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            seen.append((_name, blas.threads()))
            return _real(*args, **kwargs)
        monkeypatch.setattr(fastrnn.readout, name, spy)
    net, x, d, mask, h0 = make_problem(61, 6, 3, 2, 5, 2, readout="linear")
    out = fastrnn.forward(net, x, h0=h0)
    fastrnn.bptt(net, x, d, mask, h0=h0)            # the squared error's compiled pass: no NumPy products
    monkeypatch.setattr(fastrnn.readout, "LINEAR_PASS", False)
    fastrnn.bptt(net, x, d, mask, h0=h0)            # NumPy's formula: the loss reads out again
    assert [name for name, _ in seen] == ["outputs", "injected_errors", "injected_errors", "outputs"]
    assert [count for _, count in seen] == [1, 1, 1, 1], seen
    assert blas.threads() == 4, "the counts are restored after the calls"
    expected = np.einsum("tbn,on->tbo", out.h[1:], net.W_out) + net.b_out
    np.testing.assert_allclose(out.y, expected, rtol=1e-12, atol=1e-14)


def _child_call(seed):
    """In a forked child: a call large enough for the parallel kernels, checked against the reference."""
    net, x, d, mask, h0 = make_problem(seed, 60, 32, 3, 48, 3)
    L, g = fastrnn.bptt(net, x, d, mask, h0=h0)
    L_ref, g_ref = fastrnn.reference.bptt(net, x, d, mask, h0=h0)
    return abs(L - L_ref) / abs(L_ref), float(np.max(np.abs(g.W_rec - g_ref.W_rec)) / np.max(np.abs(g_ref.W_rec)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no fork")
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")   # JAX, if an earlier test loaded it
@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_forked_children_can_call_after_a_parallel_call(parallel_kernels):
    _child_call(1)                                   # the parent runs the parallel kernels first
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        result = pool.map_async(_child_call, [2, 3, 4])
        errors = result.get(timeout=120)
    assert all(e[0] <= 1e-10 and e[1] <= 1e-10 for e in errors), errors


_FORK_FIRST_CALLS = """
import faulthandler, multiprocessing, sys, threading, time
import numpy as np, numba, fastrnn
from numba.core.compiler_lock import global_compiler_lock

def problem(cell, dtype):
    rng = np.random.default_rng(3)
    net = fastrnn.MODELS[cell].init(3, 6, 2, dtype=dtype, seed=1, readout="linear")
    return net, rng.standard_normal((5, 2, 3)).astype(dtype), rng.standard_normal((5, 2, 2)).astype(dtype)

def child(cell, dtype, queue):
    faulthandler.dump_traceback_later(120, exit=True)       # a hung child ends, and says where it hung
    net, x, d = problem(cell, dtype)
    with fastrnn.threads(1):
        L, g = fastrnn.bptt(net, x, d)
    queue.put(abs(L - fastrnn.reference.bptt(net, x, d)[0]) / abs(L))

def fork(cell, dtype, while_compiling):
    ctx = multiprocessing.get_context("fork")
    queue, held, done = ctx.Queue(), threading.Event(), threading.Event()
    def compile_aside():                                     # another thread inside Numba's compiler meanwhile
        with global_compiler_lock:
            held.set()
            time.sleep(0.5)
        done.set()
    if while_compiling:
        threading.Thread(target=compile_aside).start()
        held.wait(30)
    proc = ctx.Process(target=child, args=(cell, dtype, queue))
    proc.start()
    proc.join(180)
    print(cell, dtype, "while compiling" if while_compiling else "", proc.exitcode,
          queue.get(timeout=5) if proc.exitcode == 0 else None)

with fastrnn.threads(1):
    fastrnn.bptt(*problem("rnn", "float64"))                 # the parent reads the kernel cache: its lock made
fork("gru", "float32", False)                                # kernels the parent never loaded: read in the child
fork("lstm", "float32", True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked children need os.fork (POSIX)")
def test_a_forked_child_loads_kernels_its_parent_had_not():
    """A child forked after the parent's first calls loads from the kernel cache what the parent never loaded: with
    the cache's lock the parent made, inherited, it raised (filelock: "inherited across fork"); forked while
    another thread held Numba's compiler lock, it hung at its first such kernel. In a fresh process (what it
    has loaded decides), both children run and equal the reference."""
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", _FORK_FIRST_CALLS], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line.split() for line in out.stdout.splitlines()]
    assert [line[:2] for line in lines] == [["gru", "float32"], ["lstm", "float32"]], out.stdout + out.stderr[-3000:]
    for line in lines:
        assert line[-2] == "0" and float(line[-1]) <= 1e-5, out.stdout + out.stderr[-3000:]


def test_threading_layer_is_fork_safe_and_overridable():
    assert layer.active() in ("tbb", "workqueue") or layer.REQUESTED is None, layer.active()
    code = ("import numpy as np, fastrnn\n"
            "from fastrnn.runtime import layer, dispatch\n"
            "net = fastrnn.RNN.init(3, 40, 3, seed=0)\n"
            "x = np.ones((30, 16, 3)); d = np.zeros((30, 16, 3))\n"
            "dispatch.FORCE_PARALLEL = True\n"
            "fastrnn.bptt(net, x, d)\n"
            "print(layer.REQUESTED, layer.active())\n")
    env = dict(os.environ, FASTRNN_THREADING_LAYER="workqueue")
    env.pop("NUMBA_THREADING_LAYER", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["workqueue", "workqueue"]


_DIRECT_KERNEL_CALL = """
import numba, numpy as np
from fastrnn.kernels import _lstm_forward
from fastrnn.kernels._panels import cut_elements
try:
    numba.threading_layer()
    print("started at import")
except ValueError:
    pass
run = _lstm_forward.serial                      # asking for a twin starts the threading layer
print("layer", numba.threading_layer())         # (raises ValueError while the layer is not started)
rng = np.random.default_rng(0)
T, B, m, n = 6, 3, 4, 5
dt = np.float32
x = rng.standard_normal((T, B, m)).astype(dt)
W_ih = (0.5 * rng.standard_normal((4 * n, m))).astype(dt)
W_hh = (0.5 * rng.standard_normal((4 * n, n))).astype(dt)
bias = (0.1 * rng.standard_normal(4 * n)).astype(dt)
h = np.zeros((T + 1, B, n), dt); c = np.zeros((T + 1, B, n), dt); gates = np.empty((T, B, 4 * n), dt)
run(*_lstm_forward.read_only((x, W_ih, W_hh, bias, h, c, gates,
                              np.empty(cut_elements(B, 1, n, 4 * n, np.dtype(dt).itemsize), dt), 1, 1)))
sig = lambda a: 1 / (1 + np.exp(-a))
hh, cc = np.zeros((B, n)), np.zeros((B, n))
error = 0.0
for t in range(T):
    a = x[t].astype(float) @ W_ih.T.astype(float) + hh @ W_hh.T.astype(float) + bias.astype(float)
    i, f, g, o = sig(a[:, :n]), sig(a[:, n:2 * n]), np.tanh(a[:, 2 * n:3 * n]), sig(a[:, 3 * n:])
    cc = f * cc + i * g
    hh = o * np.tanh(cc)
    error = max(error, float(np.max(np.abs(h[t + 1] - hh))), float(np.max(np.abs(c[t + 1] - cc))))
print("error", error)
"""


def test_a_kernel_called_directly_in_a_fresh_process_starts_the_threading_layer_first():
    """A serial twin loaded from the on-disk cache and called before anything had started Numba's
    threading layer could jump to a null address (``kernels._jit.threads_started``; it depends on
    how the cache entry was made, so the test asks for the guarantee itself). Twice, in fresh
    processes (the second loads what the first compiled): importing the kernels starts nothing,
    asking for a twin starts the layer before the kernel runs, and the kernel's states equal a
    float64 NumPy LSTM's."""
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", _DIRECT_KERNEL_CALL], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
        lines = out.stdout.split("\n")
        assert "started at import" not in lines
        assert lines[0].startswith("layer ") and lines[0] != "layer "
        assert float(lines[1].split()[1]) < 1e-5, lines


def test_thread_counts_are_checked():
    for bad in (0, -1, "2", 2.0, True, None):
        with pytest.raises(fastrnn.OptionError, match="whole number of threads"):
            with fastrnn.threads(bad):
                pass
    too_many = dispatch.max_threads() + 1
    with pytest.raises(fastrnn.OptionError, match=f"threads={too_many} but this process can run at most"):
        with fastrnn.threads(too_many):
            pass
    with pytest.raises(fastrnn.OptionError, match="whole number of threads"):
        fastrnn.set_threads(0)


def test_set_threads_limits_every_call_and_threads_restores():
    before = fastrnn.get_threads()
    old = fastrnn.set_threads(1)
    try:
        assert fastrnn.get_threads() == 1
        with dispatch.workers() as threads:
            assert threads == 1
    finally:
        fastrnn.set_threads(old)
    assert fastrnn.get_threads() == before
    with fastrnn.threads(1):
        assert fastrnn.get_threads() == 1
    assert fastrnn.get_threads() == before


def test_the_thread_count_read_and_set_directly_is_numbas_own():
    """``dispatch._numba_threads``: the threading layer's own count, as Numba's public functions
    read and set it, per calling thread."""
    import numba
    get, put = dispatch._numba_threads()
    before = numba.get_num_threads()
    assert get() == before
    with fastrnn.threads(1):                # set through Numba's public function
        assert get() == 1
    assert get() == before
    put(1)
    try:
        assert numba.get_num_threads() == 1 and fastrnn.get_threads() == 1
    finally:
        put(before)
    assert numba.get_num_threads() == before
    seen = []

    def other():
        seen.append(get())
        put(1)
        seen.append((get(), numba.get_num_threads()))

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert seen == [numba.config.NUMBA_NUM_THREADS, (1, 1)] and get() == before


def test_environment_variable_sets_the_limit():
    code = "import fastrnn; print(fastrnn.get_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, FASTRNN_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_small_work_runs_the_serial_kernel_and_large_work_the_parallel_one():
    from fastrnn.kernels import _bptt_sweep, _rtrl
    assert dispatch.plan(_bptt_sweep, 2, dispatch.Work(1, 2 * 8 * 8, 12)) == 1
    assert dispatch.plan(_bptt_sweep, 2, dispatch.Work(32, 2 * 32 * 32 * 32, 12)) == 1
    assert dispatch.plan(_bptt_sweep, 2, dispatch.Work(32, 2 * 32 * 128 * 128, 200)) == 2
    assert dispatch.plan(_rtrl, 2, dispatch.Work(8, 2 * 9 * 8 * 8 * 13, 200)) == 1
    assert dispatch.plan(_rtrl, 2, dispatch.Work(64, 2 * 65 * 64 * 64 * 69, 20)) == 2
    assert dispatch.plan(_rtrl, 1, dispatch.Work(64, 2 * 65 * 64 * 64 * 69, 20)) == 1



def test_beside_another_pool_only_long_calls_run_parallel_and_the_count_follows_the_pool():
    """fastrnn.torch's setting: at most the framework's thread count, and the parallel twins only
    from BESIDE_MIN_WORK multiply-adds (the other pool's threads spin after its operations)."""
    import numba
    from fastrnn.kernels import _lstm_forward
    mid = dispatch.Work(8, 8 * 8 * 128 * 128, 100)         # LSTM n=128 B=8: 0.1e9, parallel on its own
    large = dispatch.Work(32, 8 * 32 * 128 * 128, 100)     # n=128 B=32: 0.42e9
    assert dispatch.BESIDE_MIN_WORK > mid.flops_per_step * mid.steps
    assert dispatch.plan(_lstm_forward, 2, mid) == 2 and dispatch.plan(_lstm_forward, 2, large) == 2
    before = numba.get_num_threads()
    with dispatch.beside(64):                               # never more than Numba has
        assert numba.get_num_threads() == before
        assert dispatch.plan(_lstm_forward, 2, mid) == 1
        assert dispatch.plan(_lstm_forward, 2, large) == 2
        with dispatch.beside(1):
            assert fastrnn.get_threads() == 1
        assert numba.get_num_threads() == before
    assert dispatch.plan(_lstm_forward, 2, mid) == 2 and numba.get_num_threads() == before


def test_beside_a_pool_that_sleeps_the_usual_thresholds_apply():
    """With OMP_WAIT_POLICY=PASSIVE torch's threads sleep after their operations: beside them the
    mid-sized call runs parallel as on its own, still on at most the pool's thread count."""
    from fastrnn.kernels import _lstm_forward
    mid = dispatch.Work(8, 8 * 8 * 128 * 128, 100)
    small = dispatch.Work(32, 8 * 32 * 8 * 8, 100)
    with dispatch.beside(64, spinning=False):
        assert dispatch.plan(_lstm_forward, 2, mid) == 2
        assert dispatch.plan(_lstm_forward, 2, small) == 1
        with dispatch.beside(64):                           # a spinning pool inside: the long-call rule again
            assert dispatch.plan(_lstm_forward, 2, mid) == 1
        assert dispatch.plan(_lstm_forward, 2, mid) == 2


def test_beside_a_spinning_pool_of_two_or_more_threads_lends_its_products_and_takes_them_back():
    """``gemm`` is lent only by a spinning pool with at least two threads, and the previous one
    (None outside) comes back on exit, also from nested blocks and after an error."""
    def gemm(a, b, out):
        np.matmul(a, b, out=out)

    def other(a, b, out):
        np.matmul(a, b, out=out)

    assert dispatch.borrowed_gemm() is None
    with dispatch.beside(2, gemm=gemm):
        assert dispatch.borrowed_gemm() is gemm
        with dispatch.beside(1, gemm=other):                 # one thread: nothing to gain from it
            assert dispatch.borrowed_gemm() is None
        with dispatch.beside(2, spinning=False, gemm=other):  # sleeping threads: fastrnn's own kernels
            assert dispatch.borrowed_gemm() is None
        with pytest.raises(RuntimeError):
            with dispatch.beside(4, gemm=other):
                assert dispatch.borrowed_gemm() is other
                raise RuntimeError("inside")
        assert dispatch.borrowed_gemm() is gemm
    assert dispatch.borrowed_gemm() is None


def test_beside_a_spinning_pool_that_can_sleep_a_call_that_pays_puts_it_to_sleep_once():
    """``quiet`` puts the pool's threads to sleep: the first call of QUIET_MIN_WORK multiply-adds or more
    that pays on parallel threads calls it and runs parallel; from then on the block counts the pool as
    sleeping (the usual thresholds, no lent products); shorter calls, calls that would not pay, one
    thread and a sleeping pool never call it; a new block starts from a spinning pool again."""
    from fastrnn.kernels import _lstm_forward
    per_step, total = dispatch.pays(_lstm_forward)
    short = dispatch.Work(8, 2 * per_step, total // (2 * per_step) + 1)       # pays alone, under QUIET_MIN_WORK
    mid = dispatch.Work(8, 8 * 8 * 128 * 128, 100)                            # LSTM n=128 B=8: 0.1e9
    one = dispatch.Work(1, mid.flops_per_step, mid.steps)                     # nothing to share out
    split = dispatch.Work(1, mid.flops_per_step, mid.steps, 4 * dispatch.SPLIT_BYTES)
    assert total <= short.flops_per_step * short.steps < dispatch.QUIET_MIN_WORK
    assert dispatch.QUIET_MIN_WORK <= mid.flops_per_step * mid.steps < dispatch.BESIDE_MIN_WORK
    assert mid.flops_per_step * mid.steps < dispatch.BESIDE_MIN_SPLIT_WORK

    def gemm(a, b, out):
        np.matmul(a, b, out=out)

    calls = []
    with dispatch.beside(2, gemm=gemm, quiet=lambda: calls.append("quiet")):
        assert dispatch.plan(_lstm_forward, 2, short) == 1 and calls == []
        assert dispatch.plan(_lstm_forward, 2, one) == 1 and calls == []
        assert dispatch.borrowed_gemm() is gemm
        assert dispatch.plan(_lstm_forward, 2, mid) == 2 and calls == ["quiet"]
        assert dispatch.borrowed_gemm() is None                    # torch.mm would wake them
        assert dispatch.plan(_lstm_forward, 2, short) == 2          # the usual thresholds
        assert dispatch.parts(_lstm_forward, 2, split) == 2 and calls == ["quiet"]
    with dispatch.beside(2, gemm=gemm, quiet=lambda: calls.append("split")):
        assert dispatch.borrowed_gemm() is gemm                     # spinning again in a new block
        assert dispatch.parts(_lstm_forward, 2, split) == 2 and calls == ["quiet", "split"]
    with dispatch.beside(1, quiet=lambda: calls.append("one thread")):
        assert dispatch.plan(_lstm_forward, 2, mid) == 1 and dispatch.parts(_lstm_forward, 2, split) == 1
    with dispatch.beside(2, spinning=False, quiet=lambda: calls.append("asleep")):
        assert dispatch.plan(_lstm_forward, 2, mid) == 2
    assert calls == ["quiet", "split"]
    assert dispatch.plan(_lstm_forward, 2, mid) == 2 and calls == ["quiet", "split"]     # outside: never


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("r, m, n, force", [(4 * 64, 16, 64, False), (20, 5, 20, True)])
def test_weight_gradients_through_a_borrowed_pool_equal_the_kernels(dtype, r, m, n, force):
    """The borrowed path (one product D^T [x | h | 1], the bias in it) against the kernel's,
    and both against float64 sums; outputs filled with NaN first, so an unwritten value shows."""
    from fastrnn.cells import base
    rng = np.random.default_rng(11)
    T, B = 300, 3
    x = rng.standard_normal((T, B, m)).astype(dtype)
    h = rng.standard_normal((T, B, n)).astype(dtype)
    D = rng.standard_normal((T, B, r)).astype(dtype)
    D2 = D.reshape(T * B, r).astype(np.float64)
    expected = (D2.T @ x.reshape(T * B, m), D2.T @ h.reshape(T * B, n), D2.sum(axis=0))
    work = dispatch.Work(T * B, 2 * T * B * r * (m + n), 1)
    assert (work.flops_per_step >= dispatch.PAYS["rows"][1]) != force    # large enough to pay, or forced
    calls = []

    def gemm(a, b, out):
        calls.append((a.shape, b.shape))
        np.matmul(a, b, out=out)

    results = []
    for lent in (False, True):
        outs = [np.full((r, m), np.nan, dtype), np.full((r, n), np.nan, dtype), np.full(r, np.nan, dtype)]
        was = dispatch.FORCE_PARALLEL
        dispatch.FORCE_PARALLEL = force
        try:
            with dispatch.beside(2, gemm=gemm if lent else None):
                base.weight_grads(1, x, h, D, *outs)
        finally:
            dispatch.FORCE_PARALLEL = was
        results.append(outs)
    assert calls == [((r, T * B), (T * B, m + n + 1))]      # one product, through the lent gemm
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for kernel_out, lent_out, want in zip(*results, expected):
        scale = np.abs(want).max()
        assert np.abs(kernel_out - want).max() <= tol * scale
        assert np.abs(lent_out - want).max() <= tol * scale


def test_a_weight_gradient_product_fastrnns_own_threads_take_is_not_lent():
    """Beside a spinning pool, a product long enough for fastrnn's own parallel kernel (BESIDE_MIN_WORK)
    stays there; on one thread the same product is lent. Values against float64 sums both times."""
    from fastrnn.cells import base
    from fastrnn.kernels import _weight_grads
    rng = np.random.default_rng(4)
    T, B, r, m, n = 250, 4, 1024, 2, 128
    x, h, D = (rng.standard_normal((T, B, k)) for k in (m, n, r))
    work = dispatch.Work(T * B, 2 * T * B * r * (m + n), 1)
    calls = []

    def gemm(a, b, out):
        calls.append(a.shape)
        np.matmul(a, b, out=out)

    D2 = D.reshape(T * B, r)
    want = np.concatenate([D2.T @ x.reshape(T * B, m), D2.T @ h.reshape(T * B, n), D2.sum(axis=0)[:, None]], axis=1)
    for threads, lent in ((2, False), (1, True)):
        outs = [np.full((r, m), np.nan), np.full((r, n), np.nan), np.full(r, np.nan)]
        with dispatch.beside(2, gemm=gemm):
            assert (dispatch.plan(_weight_grads, threads, work) == 2) == (threads == 2)
            base.weight_grads(threads, x, h, D, *outs)
        assert bool(calls) == lent
        got = np.concatenate([outs[0], outs[1], outs[2][:, None]], axis=1)
        assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


def test_a_product_too_small_to_pay_stays_with_numpy_even_beside_a_lending_pool():
    from fastrnn.cells import base
    calls = []

    def gemm(a, b, out):
        calls.append(a.shape)
        np.matmul(a, b, out=out)

    a, b = np.arange(12.0).reshape(3, 4), np.arange(8.0).reshape(4, 2)
    with dispatch.beside(2, gemm=gemm):
        out = base.matmul(a, b)
    assert calls == [] and np.array_equal(out, a @ b)


def test_the_wait_policy_of_a_gnu_openmp_pool_is_read_as_libgomp_reads_it(monkeypatch):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    for value, spins in (("", True), ("active", True), ("PASSIVE", False), (" passive ", False)):
        monkeypatch.setenv("OMP_WAIT_POLICY", value)
        assert dispatch.gomp_threads_spin() is spins, value
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert dispatch.gomp_threads_spin() is True and dispatch.gomp_spin_count() == 300_000


def test_gnu_openmps_spin_count_is_read_as_libgomp_reads_it(monkeypatch):
    """GOMP_SPINCOUNT overrides the wait policy; a count up to SHORT_SPIN (about 0.1 ms) counts as
    threads that sleep soon, so the usual thresholds apply; anything unreadable counts as spinning."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    for value, count, spins in (("10000", 10_000, False), ("10k", 10_000, False), (" 0 ", 0, False),
                                ("10001", 10_001, True), ("3M", 3_000_000, True), ("1g", 10**9, True),
                                ("infinite", float("inf"), True), ("lots", None, True), ("-5", None, True)):
        monkeypatch.setenv("GOMP_SPINCOUNT", value)
        assert dispatch.gomp_spin_count() == count, value
        assert dispatch.gomp_threads_spin() is spins, value
    monkeypatch.setenv("GOMP_SPINCOUNT", "")
    assert dispatch.gomp_spin_count() == 0                        # unset or empty: the policy decides


def test_fastrnn_torch_tells_beside_what_it_read_when_torch_loaded():
    ft = pytest.importorskip("fastrnn.torch", reason="PyTorch is not installed")
    assert isinstance(ft._SPINNING, bool)
    with ft._beside_torch():
        assert dispatch._beside.spinning is ft._SPINNING


def test_the_blocks_stop_where_a_thread_would_get_too_little_work():
    """On many cores a call gets as many threads as each get the family's work per step (PAYS),
    not all of them or none."""
    from fastrnn.kernels import _lstm_forward
    per_step = dispatch.pays(_lstm_forward)[0]
    work = dispatch.Work(64, 10 * per_step, 100)             # ten threads' worth of work per step
    assert dispatch.plan(_lstm_forward, 2, work) == 2
    assert dispatch.plan(_lstm_forward, 16, work) == 10
    assert dispatch.plan(_lstm_forward, 64, work) == 10
    assert dispatch.plan(_lstm_forward, 64, work._replace(items=4)) == 4
    assert dispatch.plan(_lstm_forward, 64, work._replace(flops_per_step=per_step)) == 1


@pytest.mark.parametrize("products", ["tiles", "blas"])
def test_a_batch_in_tiles_gets_blocks_of_a_tiles_rows_or_of_one_row(monkeypatch, products):
    """Where the step products run in compiled tiles of TILE_ROWS rows, a batch of more rows than
    threads gets no more blocks than it has tiles (B = 4 on two threads: one block; two blocks of
    two rows cost each thread what one tile of four cost one), and its own thresholds
    (PAYS["batch tiles"]); a batch of no more rows than threads gets one row per block. Through the
    BLAS's products neither applies."""
    from fastrnn.kernels import _lstm_forward, _weight_grads
    monkeypatch.setattr(dispatch._blas, "step_products", lambda: products)
    rule = dispatch.PAYS["batch tiles" if products == "tiles" else "batch"]
    assert dispatch.pays(_lstm_forward) == rule and dispatch.pays(_weight_grads) == dispatch.PAYS["rows"]
    big = dispatch.Work(4, 64 * rule[0], rule[1])            # enough work for 64 threads in every step
    tiles = products == "tiles"
    assert dispatch.TILE_ROWS == 4
    assert dispatch.plan(_lstm_forward, 2, big) == (1 if tiles else 2)
    assert dispatch.plan(_lstm_forward, 2, big._replace(items=3)) == (1 if tiles else 2)
    assert dispatch.plan(_lstm_forward, 2, big._replace(items=5)) == 2
    assert dispatch.plan(_lstm_forward, 2, big._replace(items=8)) == 2
    assert dispatch.plan(_lstm_forward, 2, big._replace(items=2)) == 2           # one row each
    assert dispatch.plan(_lstm_forward, 4, big._replace(items=3)) == 3           # one row each
    assert dispatch.plan(_lstm_forward, 16, big._replace(items=32)) == (8 if tiles else 16)
    assert dispatch.plan(_lstm_forward, 2, big._replace(items=8, flops_per_step=2 * rule[0] - 1)) == 1
    assert dispatch.plan(_lstm_forward, 2, big._replace(items=8, steps=1)) == 1     # under the total


def test_a_batch_of_one_splits_its_step_product_only_where_the_weights_are_large():
    """B = 1 has no rows to share out: each step's product is cut into parts of at least
    SPLIT_BYTES of weights each, one per thread; never with rows to split, on one thread, or
    for short calls beside a spinning pool."""
    from fastrnn.kernels import _lstm_forward, _weight_grads
    big = dispatch.SPLIT_BYTES
    work = dispatch.Work(1, 8 * 512 * 512, 100, 16 * big)
    assert dispatch.parts(_lstm_forward, 2, work) == 2
    assert dispatch.parts(_lstm_forward, 64, work) == 16
    assert dispatch.parts(_lstm_forward, 1, work) == 1
    assert dispatch.parts(_lstm_forward, 2, work._replace(weight_bytes=2 * big - 1)) == 1
    assert dispatch.parts(_lstm_forward, 2, work._replace(items=2)) == 1
    assert dispatch.parts(_weight_grads, 2, work) == 1
    assert dispatch.parts(_lstm_forward, 2, work._replace(weight_bytes=0)) == 1   # not given: never split
    with dispatch.beside(2):
        assert dispatch.parts(_lstm_forward, 2, work) == 1                       # 0.2e9 multiply-adds
        assert dispatch.parts(_lstm_forward, 2, work._replace(steps=400)) == 1   # 0.84e9: enough for plan, not here
        assert dispatch.plan(_lstm_forward, 2, work._replace(items=2, steps=400)) == 2
        assert dispatch.parts(_lstm_forward, 2, work._replace(steps=1000)) == 2
    with dispatch.beside(2, spinning=False):
        assert dispatch.parts(_lstm_forward, 2, work) == 2


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstmp"])
@pytest.mark.parametrize("truncation", [None, (5, 2)])
def test_a_batch_of_one_with_its_products_split_agrees_with_one_thread(cell, truncation, parallel_kernels,
                                                                     monkeypatch):
    """The split path runs (every batch kernel gets split=2) and gives the one-thread gradients."""
    seen = []
    real = dispatch.parts

    def parts(kernel, threads, work):
        seen.append((kernel.__name__, real(kernel, threads, work)))
        return seen[-1][1]
    monkeypatch.setattr(dispatch, "parts", parts)
    net, x, d, mask, h0 = make_problem(21, 12, 1, 3, 9, 2, cell=cell, readout="linear")
    L, g = fastrnn.bptt(net, x, d, mask, h0=h0, truncation=truncation, validate=True)
    assert {split for name, split in seen if name != "_weight_grads"} == {2}, seen
    with fastrnn.threads(1):
        L1, g1 = fastrnn.bptt(net, x, d, mask, h0=h0, truncation=truncation)
    assert abs(L - L1) <= 1e-12 * abs(L1)
    assert_grads_close(g, g1, np.float64, "split vs one thread ")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstmp"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_products_in_tiles_and_through_the_blas_agree_with_the_reference(cell, dtype, monkeypatch):
    """Both ways of taking each step's product at B > 1 (``runtime.blas.step_products``) run in every
    batch kernel (serial, and parallel in float64: each block multiplies its own rows the same way) and
    give the reference's gradients (``validate=True``) and each other's, whichever way this machine's
    BLAS picks by default."""
    asked = []
    net, x, d, mask, h0 = make_problem(23, 9, 6, 3, 10, 2, dtype=dtype, cell=cell, readout="linear")
    results = {}
    for products in ("tiles", "blas"):
        monkeypatch.setattr(blas, "step_products", lambda products=products: asked.append(products) or products)
        for force in (False, True) if dtype == np.float64 else (False,):   # (float32's parallel twins: compile time)
            monkeypatch.setattr(dispatch, "FORCE_PARALLEL", force)
            asked.clear()
            results[products, force] = fastrnn.bptt(net, x, d, mask, h0=h0, validate=True)
            assert len(asked) >= 2, asked          # the forward pass and the sweep asked
    L, g = results["blas", False]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for key, (L2, g2) in results.items():
        assert abs(L2 - L) <= tol * abs(L), key
        assert_grads_close(g2, g, dtype, f"{key} against blas, serial ")


@pytest.mark.parametrize("tile_bytes", [32, 64])
def test_step_products_follow_the_blas_core_and_the_environment(monkeypatch, tile_bytes):
    """The BLAS's products where SciPy's OpenBLAS multiplies small products unpacked (its AVX-512 cores) and the
    tiles take 32-byte vectors; the compiled tiles for any other core or BLAS, and wherever they take 64-byte
    vectors; FASTRNN_STEP_PRODUCTS overrides (an unknown value is a clear error), and "blas" also turns off a
    batch of one's row tiles; decided once."""
    from fastrnn.kernels import _tiles
    monkeypatch.setattr(_tiles, "TILE_BYTES", tile_bytes)
    unpacked = "blas" if tile_bytes == 32 else "tiles"
    class Library:
        internal_api = "openblas"

        def __init__(self, core, path="/site-packages/scipy.libs/libscipy_openblas-1.so"):
            self.architecture, self.filepath = core, path
    numpys = "/site-packages/numpy.libs/libscipy_openblas64_-2.so"
    cases = [([Library("SkylakeX")], unpacked), ([Library("Cooperlake")], unpacked),
             ([Library("SapphireRapids")], unpacked),
             ([Library("Haswell")], "tiles"), ([Library("Zen")], "tiles"), ([Library("NeoverseN1")], "tiles"),
             ([Library("SkylakeX"), Library("Haswell", numpys)], unpacked),    # NumPy's library is not the one Numba calls
             ([Library("Haswell"), Library("SkylakeX", numpys)], "tiles"), ([], "tiles")]
    monkeypatch.delenv("FASTRNN_STEP_PRODUCTS", raising=False)
    for libs, expected in cases:
        monkeypatch.setattr(blas, "_libraries", libs)
        monkeypatch.setattr(blas, "_products", None)
        assert blas.step_products() == expected, [lib.architecture for lib in libs]
    for value, expected in (("tiles", "tiles"), ("BLAS", "blas"), (" ", unpacked)):    # blank: as if unset
        monkeypatch.setenv("FASTRNN_STEP_PRODUCTS", value)
        monkeypatch.setattr(blas, "_libraries", [Library("SkylakeX")])
        monkeypatch.setattr(blas, "_products", None)
        assert blas.step_products() == expected, value
        assert blas.row_tiles() == (value.strip().lower() != "blas"), value     # a batch of one's row tiles
    monkeypatch.setenv("FASTRNN_STEP_PRODUCTS", "fast")
    for asked in (blas.step_products, blas.row_tiles):
        monkeypatch.setattr(blas, "_products", None)
        with pytest.raises(fastrnn.errors.OptionError, match=r"FASTRNN_STEP_PRODUCTS='fast' is not known: choose 'blas' or 'tiles'"):
            asked()
    monkeypatch.delenv("FASTRNN_STEP_PRODUCTS")
    monkeypatch.setattr(blas, "_libraries", [Library("SkylakeX")])
    assert blas.step_products() == unpacked
    monkeypatch.setattr(blas, "_libraries", [Library("Haswell")])
    monkeypatch.setenv("FASTRNN_STEP_PRODUCTS", "blas")
    assert blas.step_products() == unpacked and blas.row_tiles()      # decided once per process


@pytest.mark.parametrize("cell, n, dtype", [("rnn", 100, np.float64), ("lstm", 100, np.float32), ("gru", 110, np.float64),
                                             ("lstmp", 64, np.float64), ("lstm", 64, np.float64)])
@pytest.mark.parametrize("truncation", [None, (5, 2)])
def test_a_batch_of_one_in_row_tiles_agrees_with_the_reference(cell, n, dtype, truncation, monkeypatch):
    """Weights between 64 and 512 KB at B = 1: the backward sweep takes its products in row tiles
    (``split=ROW_TILES``; the forward pass by W's rows), and the gradients match the reference
    (``validate=True``) and the same call through the compiled loops (``FASTRNN_STEP_PRODUCTS=blas``)."""
    from fastrnn.cells import driver_for
    from fastrnn.kernels._tiles import ROW_TILES
    net, x, d, mask, h0 = make_problem(22, 12, 1, 5, n, 2, dtype=dtype, cell=cell, readout="linear")
    module = sys.modules[type(driver_for(net)).__module__]
    seen = []

    def kernel_spy(kernel, threads, work, *args):
        seen.append(kernel.__name__)
        return dispatch.call(spy(kernel), threads, work, *args)

    def spy(kernel):                    # the split the kernel receives: its last argument
        class Spy:
            family, __name__, read_only = kernel.family, kernel.__name__, kernel.read_only

            @staticmethod
            def serial(*args):
                seen.append((kernel.__name__, args[-1]))
                return kernel.serial(*args)
            parallel = serial
        return Spy
    monkeypatch.setattr(module, "call", kernel_spy)
    with fastrnn.threads(1):
        L, g = fastrnn.bptt(net, x, d, mask, h0=h0, truncation=truncation, validate=True)
        sweeps = {split for name, split in (s for s in seen if isinstance(s, tuple)) if "sweep" in name}
        assert sweeps == {ROW_TILES}, seen
        monkeypatch.setattr(blas, "row_tiles", lambda: False)
        seen.clear()
        L1, g1 = fastrnn.bptt(net, x, d, mask, h0=h0, truncation=truncation)
        assert {split for name, split in (s for s in seen if isinstance(s, tuple)) if "sweep" in name} == {1}, seen
    assert abs(L - L1) <= (1e-5 if dtype == np.float32 else 1e-12) * abs(L1)
    assert_grads_close(g, g1, dtype, "row tiles vs compiled loops ")


def _parallel_call_in_a_new_process(before, report):
    """stdout of a new interpreter that runs ``before`` (lines of code), imports fastrnn, makes every kernel pay on
    parallel threads and spies on the rule that puts torch's spinning threads to sleep (``reached``: each time it
    is reached, whether the call may still quiet), makes one ``fastrnn.bptt`` call and prints ``report`` (an
    expression); skips where Numba runs one thread."""
    code = (before + "import sys, numpy as np, fastrnn\n"
            "from fastrnn.runtime import dispatch\n"
            "if fastrnn.get_threads() < 2: print('one-thread'); sys.exit()\n"
            "dispatch.QUIET_MIN_WORK = 0\n"
            "for family in list(dispatch.PAYS): dispatch.PAYS[family] = (0, 1)\n"
            "dispatch.TILE_ROWS = 1\n"
            "reached, rule = [], dispatch._quiet_plain\n"
            "dispatch._quiet_plain = lambda flops: (reached.append(dispatch._call.may_quiet), rule(flops))\n"
            "rng = np.random.default_rng(0)\n"
            "net = fastrnn.RNN(rng.standard_normal((6, 3)), 0.3 * rng.standard_normal((6, 6)), np.zeros(6))\n"
            "fastrnn.bptt(net, rng.standard_normal((5, 4, 3)), rng.standard_normal((5, 4, 6)))\n"
            f"print({report})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "one-thread":
        pytest.skip("Numba runs one thread in this process: no call goes parallel")
    return out.stdout


def test_a_call_that_pays_on_parallel_threads_never_imports_torch():
    """In a process that has not imported torch, a call that pays on parallel threads reaches the rule
    that puts torch's spinning threads to sleep (``dispatch._quiet_plain``, once per call) and leaves
    torch, and fastrnn.torch, unimported: the rule looks only for a torch already loaded."""
    out = _parallel_call_in_a_new_process(
        "", "reached[0], reached.count(True), 'torch' in sys.modules, 'fastrnn.torch' in sys.modules")
    assert out.split() == ["True", "1", "False", "False"], out


def test_a_process_that_blocks_torch_runs_parallel_calls_without_a_warning():
    """``sys.modules["torch"] = None`` (how a process keeps torch from loading; ``bench/bptt_jax.py
    --no-torch``): a call that pays on parallel threads reaches the rule and skips it, as where torch was
    never imported, instead of trying fastrnn.torch, warning that the quiet failed and turning the rule off
    (warnings are errors in that process)."""
    out = _parallel_call_in_a_new_process(
        "import sys, warnings\nsys.modules['torch'] = None\nwarnings.simplefilter('error')\n",
        "reached.count(True), len(dispatch._NO_BRIDGE), 'fastrnn.torch' in sys.modules")
    assert out.split() == ["1", "0", "False"], out
