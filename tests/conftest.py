"""Shared test helpers: seeded problems and the SPEC §7 comparison."""

import numpy as np
import pytest

import fastrnn
from fastrnn.compare import TOLERANCE, relative_error

DTYPES = [np.float64, np.float32]

# (readout, loss, out_activation): every loss with each readout it accepts
READOUT_LOSSES = [
    ("units", "mse", "identity"),
    ("units", "bce", "identity"),
    ("units", "xent", "identity"),
    ("linear", "mse", "identity"),
    ("linear", "mse", "logistic"),
    ("linear", "mse", "tanh"),
    ("linear", "mse", "softmax"),
    ("linear", "xent", "identity"),
    ("linear", "bce", "logistic"),
]


def assert_close(actual, expected, dtype, what):
    """SPEC §7: max|a - b| / max|b| within the dtype's tolerance; the message names the field."""
    tol = TOLERANCE[np.dtype(dtype)]
    err = relative_error(actual, expected)
    assert err <= tol, f"{what} max rel err {err:.3g} > {tol:g}"


def assert_grads_close(grads, ref, dtype, what=""):
    """Every field the reference has, and no field the reference lacks."""
    assert type(grads) is type(ref), f"{what}{type(grads).__name__} vs {type(ref).__name__}"
    for name in ref.names:
        r = getattr(ref, name)
        g = getattr(grads, name)
        if r is None:
            assert g is None, f"{what}{name} should be None"
        else:
            assert g is not None and g.shape == r.shape and g.dtype == r.dtype, f"{what}{name} shape/dtype"
            assert_close(g, r, dtype, f"{what}d{name}")


def make_problem(seed, T, B, m, n, o, dtype=np.float64, readout="units", loss="mse",
                 out_activation="identity", activation="tanh", masked=True, scale=1.0, cell="rnn"):
    """A seeded network and data. Returns (net, x, d, mask, h0); for a cell with several states
    (the LSTM) h0 is the tuple of initial states, (h0, c0)."""
    rng = np.random.default_rng(seed)
    if cell != "rnn":
        net = fastrnn.MODELS[cell].init(m, n, o, readout=readout, dtype=dtype, seed=seed,
                                        out_activation=out_activation)
    else:
        net = fastrnn.RNN.init(m, n, o, readout=readout, activation=activation, dtype=dtype,
                               seed=seed, out_activation=out_activation)
        if scale != 1.0:
            net.W_rec *= dtype(scale)
    x = rng.standard_normal((T, B, m)).astype(dtype)
    if loss == "xent":
        d = rng.integers(0, o, size=(T, B))
        mask = (rng.random((T, B)) < 0.7) if masked else None
    else:
        d = rng.random((T, B, o)).astype(dtype)
        if loss == "bce":
            d = (d > 0.5).astype(dtype)
        mask = (rng.random((T, B, o)) < 0.7) if masked else None
    h0 = (0.3 * rng.standard_normal((B, n))).astype(dtype)
    if "c" in net.state_names:
        h0 = (h0, (0.3 * rng.standard_normal((B, net.state_size("c")))).astype(dtype))
    return net, x, d, mask, h0


@pytest.fixture
def parallel_kernels(monkeypatch):
    """Run the parallel kernels even where BLAS is multithreaded (correctness, not speed)."""
    from fastrnn.runtime import dispatch as _dispatch
    monkeypatch.setattr(_dispatch, "FORCE_PARALLEL", True)


@pytest.fixture
def small():
    """A small float64 units/mse problem."""
    return make_problem(0, T=6, B=2, m=3, n=5, o=2)


# -- compiling the kernels first, on every core ---------------------------------------------------
# A run on an empty cache spends most of its time in Numba compiling kernels, one core at a time. A
# run of the whole suite therefore compiles the variants its tests use first, through `fastrnn warmup`'s
# own machinery, and its tests load them: on two processes (one where this process may use a single
# core) for a plain run; under pytest-xdist (``-n 2``, the README's command) each worker compiles its
# share of the units and waits for the others, so that no worker compiles what another is compiling.
# FASTRNN_TEST_WARMUP=0 turns it off; a run of a few tests does without it.
WARMUP_MIN_TESTS = 200
WARMUP_UNITS = ([(cell, dtype, False) for cell in fastrnn.MODELS for dtype in ("float64", "float32")]
                + [("rnn", dtype, True) for dtype in ("float64", "float32")]
                + [(cell, "float64", True) for cell in fastrnn.MODELS if cell != "rnn"])
WARMUP_WAIT_SECONDS = 1200            # a worker waits this long at most for the others' shares


def _warm_as_worker(config):
    """WARMUP_UNITS shared out among the xdist workers as they go, then a wait until every worker is done.
    The workers share a folder named after the run in the temporary folder: each claims the units it
    compiles there (``cli.warm_claimed``), and writes an empty file named after itself when no unit is left
    to claim (once every worker's file is there, each removes its own when its session ends, and the last the
    claims and the folder: ``pytest_sessionfinish``). A worker whose unit fails writes its file too, so that
    the others do not wait for it, and leaves it there; its error ends its own run, as a failed warm-up ends
    a plain one."""
    import os
    import tempfile
    import time
    from fastrnn import cli
    info = config.workerinput
    count = int(info["workercount"])
    folder = os.path.join(tempfile.gettempdir(), f"fastrnn-warmup-{info['testrunuid']}")
    os.makedirs(folder, exist_ok=True)
    mine = os.path.join(folder, info["workerid"])
    try:
        cli.warm_claimed(WARMUP_UNITS, folder)
    finally:
        open(mine, "w").close()
    deadline = time.monotonic() + WARMUP_WAIT_SECONDS
    while len(_workers_done(folder)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    if len(_workers_done(folder)) >= count:
        config._fastrnn_barrier = mine      # every worker is past the warm-up: the files may go at the end


def _workers_done(folder):
    import os
    from fastrnn import cli
    return [name for name in os.listdir(folder) if not name.startswith(cli.CLAIM_PREFIX)]


def pytest_collection_modifyitems(config, items):
    """The tests marked slow first: under xdist's load scheduling the longest ones then start at
    once, beside the rest, instead of last on one worker while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish(session):
    import os
    import time
    if len(session.items) < WARMUP_MIN_TESTS or os.environ.get("FASTRNN_TEST_WARMUP", "1") == "0":
        return
    start = time.perf_counter()
    if hasattr(session.config, "workerinput"):
        _warm_as_worker(session.config)
        jobs = int(session.config.workerinput["workercount"])
        session.config.workeroutput["fastrnn_warmup"] = (time.perf_counter() - start, jobs)
    else:
        from fastrnn import cli
        jobs = min(2, cli._usable_cores())
        cli.warm_units(WARMUP_UNITS, jobs=jobs)
    session.config._fastrnn_warmup = (time.perf_counter() - start, jobs)


def pytest_sessionfinish(session):
    """An xdist worker removes its file of the warm-up's wait, and the last worker the claims and the run's
    folder. No worker is still waiting then: xdist hands out tests only once every worker has collected, and
    each collects only after its wait."""
    import os
    import shutil
    path = getattr(session.config, "_fastrnn_barrier", None)
    if path is None:
        return
    folder = os.path.dirname(path)
    try:
        os.remove(path)
    except OSError:
        pass
    try:
        last = not _workers_done(folder)    # the last one out (two at once both may: the errors are ignored)
    except OSError:                         # the other worker has removed the folder already
        return
    if last:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist's controller: the longest of the workers' warm-ups, for the summary line."""
    done = getattr(node, "workeroutput", {}).get("fastrnn_warmup")
    if done:
        seen = getattr(node.config, "_fastrnn_warmup", None)
        node.config._fastrnn_warmup = max(seen or tuple(done), tuple(done))


def pytest_terminal_summary(terminalreporter, config):
    done = getattr(config, "_fastrnn_warmup", None)
    if done:
        terminalreporter.write_line(f"kernels compiled or loaded before the tests: {done[0]:.0f} s "
                                    f"on {done[1]} process(es)")
