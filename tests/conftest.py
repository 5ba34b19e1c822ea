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
# own machinery on two processes (one where this process may use a single core), and its tests load
# them. FASTRNN_TEST_WARMUP=0 turns it off; a run of a few tests does without it.
WARMUP_MIN_TESTS = 200
WARMUP_UNITS = ([(cell, dtype, False) for cell in fastrnn.MODELS for dtype in ("float64", "float32")]
                + [("rnn", dtype, True) for dtype in ("float64", "float32")]
                + [(cell, "float64", True) for cell in fastrnn.MODELS if cell != "rnn"])


def pytest_collection_finish(session):
    import os
    import time
    if len(session.items) < WARMUP_MIN_TESTS or os.environ.get("FASTRNN_TEST_WARMUP", "1") == "0":
        return
    from fastrnn import cli
    jobs = min(2, cli._usable_cores())
    start = time.perf_counter()
    cli.warm_units(WARMUP_UNITS, jobs=jobs)
    session.config._fastrnn_warmup = (time.perf_counter() - start, jobs)


def pytest_terminal_summary(terminalreporter, config):
    done = getattr(config, "_fastrnn_warmup", None)
    if done:
        terminalreporter.write_line(f"kernels compiled or loaded before the tests: {done[0]:.0f} s "
                                    f"on {done[1]} process(es)")
