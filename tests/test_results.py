"""What a call hands out comes from ``runtime.workspace.result``: memory the caller has dropped is handed out again,
memory anything still refers to never is."""
import threading

import numpy as np
import pytest

import fastrnn
from fastrnn.runtime import workspace

BIG = (256, 256)          # float64: 512 KB, over RESULT_MIN_BYTES


@pytest.fixture(autouse=True)
def _own_pool(monkeypatch):
    """Each test on an empty pool of this thread's, with the module's limits."""
    monkeypatch.setattr(workspace._local, "results", None, raising=False)
    monkeypatch.setattr(workspace, "RECYCLE", True)
    yield


def _pooled():
    return sum(len(v) for v in workspace._results().values())


def test_a_dropped_result_comes_back_and_a_held_one_never_does():
    a = workspace.result(BIG, np.float64)
    address = a.ctypes.data
    a[...] = 1.0
    b = workspace.result(BIG, np.float64)
    assert not np.shares_memory(a, b)
    b[...] = 2.0
    assert np.all(a == 1.0), "handing out b wrote nothing into a"
    del a
    c = workspace.result(BIG, np.float64)
    assert c.ctypes.data == address and c.shape == BIG and c.dtype == np.float64 and c.flags.c_contiguous
    assert any(c is kept for kept in workspace._results()[(BIG, np.dtype(np.float64).str)]), "the remembered array"
    assert not np.shares_memory(b, c)


@pytest.mark.parametrize("holder", ["view", "transpose", "memoryview", "list", "base of a reshape"])
def test_anything_that_refers_to_a_result_keeps_it_from_coming_back(holder):
    a = workspace.result(BIG, np.float64)
    a[...] = 3.0
    kept = {"view": lambda: a[1:4], "transpose": lambda: a.T, "memoryview": lambda: memoryview(a),
            "list": lambda: [a], "base of a reshape": lambda: a.reshape(-1)}[holder]()
    del a
    b = workspace.result(BIG, np.float64)
    b[...] = -1.0
    held = np.asarray(kept[0] if holder == "list" else kept)
    assert np.all(held == 3.0)
    del kept, held
    c = workspace.result(BIG, np.float64)      # now nothing holds the first: it comes back
    assert np.all(c == 3.0) and not np.shares_memory(b, c)


def test_a_torch_tensor_over_a_result_keeps_it():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'fastrnn[torch]')")
    a = workspace.result(BIG, np.float64)
    a[...] = 5.0
    t = torch.from_numpy(a)
    del a
    b = workspace.result(BIG, np.float64)
    b[...] = 0.0
    assert bool((t == 5.0).all())
    del t
    c = workspace.result(BIG, np.float64)
    assert np.all(c == 5.0)


def test_small_arrays_are_new_and_not_remembered():
    small = (workspace.RESULT_MIN_BYTES // 8 - 1,)
    a = workspace.result(small, np.float64)
    assert a.shape == small and _pooled() == 0
    assert workspace.result((workspace.RESULT_MIN_BYTES // 8,), np.float64).shape == (workspace.RESULT_MIN_BYTES // 8,)
    assert _pooled() == 1


def test_shapes_and_dtypes_are_kept_apart():
    a = workspace.result(BIG, np.float64)
    del a
    b = workspace.result(BIG, np.float32)           # the same shape, another dtype
    c = workspace.result((128, 512), np.float64)    # the same bytes, another shape
    assert b.dtype == np.float32 and b.shape == BIG and c.shape == (128, 512) and c.dtype == np.float64


def test_at_most_results_per_shape_and_result_keep_bytes_are_remembered(monkeypatch):
    held = [workspace.result(BIG, np.float64) for _ in range(workspace.RESULTS_PER_SHAPE + 2)]
    assert len(workspace._results()[(BIG, np.dtype(np.float64).str)]) == workspace.RESULTS_PER_SHAPE
    first = held[0].ctypes.data
    del held
    again = workspace.result(BIG, np.float64)
    assert again.ctypes.data != first, "the oldest beyond the count was forgotten"
    del again
    # room for two arrays of about BIG's size: a third shape pushes out the least recently asked for
    monkeypatch.setattr(workspace, "RESULT_KEEP_BYTES", 2 * 8 * BIG[0] * BIG[1] + 16384)
    monkeypatch.setattr(workspace._local, "results", None)
    workspace.result(BIG, np.float64)
    workspace.result((BIG[0], BIG[1] + 1), np.float64)
    workspace.result(BIG, np.float64)              # BIG asked for again: the other shape is now the older
    workspace.result((BIG[0], BIG[1] + 2), np.float64)
    keys = [shape for shape, _ in workspace._results()]
    assert keys == [BIG, (BIG[0], BIG[1] + 2)]
    total = sum(a.nbytes for v in workspace._results().values() for a in v)
    assert total <= workspace.RESULT_KEEP_BYTES


def test_recycle_off_hands_out_new_arrays(monkeypatch):
    monkeypatch.setattr(workspace, "RECYCLE", False)
    workspace.result(BIG, np.float64)
    assert _pooled() == 0


def test_another_thread_never_gets_this_threads_results():
    a = workspace.result(BIG, np.float64)
    address = a.ctypes.data
    del a
    seen = []

    def other():
        b = workspace.result(BIG, np.float64)
        seen.append(b.ctypes.data)
        b[...] = 7.0
        seen.append(b)      # keep it alive until the check
    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert seen[0] != address
    assert workspace.result(BIG, np.float64).ctypes.data == address


def _net(kind, n, m, rng):
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    weights = [0.3 * rng.standard_normal((gates * n, m)), (0.5 / np.sqrt(n)) * rng.standard_normal((gates * n, n)),
               0.1 * rng.standard_normal(gates * n)]
    if kind != "rnn":
        weights.append(0.1 * rng.standard_normal(gates * n))
    return fastrnn.MODELS[kind](*weights, readout="linear", W_out=0.2 * rng.standard_normal((3, n)))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_gradients_a_caller_still_holds_are_never_written_by_later_calls(kind):
    """A training loop that keeps every step's gradients: each stays what its call computed (the reference's),
    while later calls on other data run; a loop that drops them gets the same memory back, with right values."""
    rng = np.random.default_rng(3)
    n, m, T, B = 192, 12, 6, 2           # W_rec / W_hh of 288 KB to 1.2 MB in float64: recycled
    net = _net(kind, n, m, rng)
    name = "W_rec" if kind == "rnn" else "W_hh"
    problems = [(rng.standard_normal((T, B, m)), rng.standard_normal((T, B, 3))) for _ in range(4)]
    expected = [fastrnn.reference.bptt(net, x, d)[1] for x, d in problems]
    held = [fastrnn.bptt(net, x, d)[1] for x, d in problems]
    for grads, want in zip(held, expected):
        for key in (name, "W_out"):
            np.testing.assert_allclose(grads[key], want[key], rtol=1e-9, atol=1e-12)
    assert len({g[name].ctypes.data for g in held}) == len(held), "four held results: four memories"
    del held, grads
    addresses = set()
    for (x, d), want in zip(problems, expected):
        loss, grads = fastrnn.bptt(net, x, d)
        addresses.add(grads[name].ctypes.data)
        for key in (name, "W_in" if kind == "rnn" else "W_ih"):
            np.testing.assert_allclose(grads[key], want[key], rtol=1e-9, atol=1e-12)
        del loss, grads
    assert len(addresses) == 1, "a loop that drops its gradients gets the same memory every call"


def test_vjp_input_gradients_held_across_calls_keep_their_values():
    rng = np.random.default_rng(4)
    n, m, T, B = 32, 64, 50, 12          # dL/dx: 50·12·64 float64 = 300 KB
    net = _net("lstm", n, m, rng)
    calls = []
    for _ in range(3):
        x = rng.standard_normal((T, B, m))
        dh = rng.standard_normal((T, B, n))
        grads, dx, _ = fastrnn.vjp(net, x, dh)
        calls.append((x, dh, dx, dx.copy()))
    assert len({dx.ctypes.data for _, _, dx, _ in calls}) == 3
    for x, dh, dx, copy in calls:
        assert np.array_equal(dx, copy)
        _, want, _ = fastrnn.reference.vjp(net, x, dh)
        np.testing.assert_allclose(dx, want, rtol=1e-9, atol=1e-12)
