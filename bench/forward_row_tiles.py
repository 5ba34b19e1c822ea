"""A batch of one's forward pass in row tiles against W's own rows (``kernels._panels.stored_rows``).

    python bench/forward_row_tiles.py [calls]

One thread, every BLAS on one thread. For each row: the cell's forward pass alone (the driver's, into
the thread's scratch arrays) and, for the rows of issue 17's tables, the whole ``fastrnn.bptt`` call,
each timed ``calls`` times (default 200) with the forward pass's row tiles on and off, interleaved in
random order; medians (10th percentiles) in ms. "Off" is the package with ``row_tiled`` answering no
inside forward passes only, so their products go by W's own rows, as before row tiles reached them
(the sweeps keep theirs). Rows under ``FORWARD_ROW_TILE_MIN_K`` units take no row tiles either way and
show the noise.
"""
import contextlib
import sys

import numpy as np
from threadpoolctl import threadpool_limits

import fastrnn
from fastrnn import checks
from fastrnn.cells import base as _base
from fastrnn.cells import driver_for
from fastrnn.runtime import dispatch

from common import interleaved, lstm_problem, problem

ROWS = [("rnn", 128, 8, 1000, "float64"), ("rnn", 128, 8, 100, "float64"), ("rnn", 256, 8, 1000, "float64"),
        ("rnn", 256, 32, 100, "float32"), ("lstm", 64, 32, 100, "float64"), ("lstm", 128, 32, 100, "float32"),
        ("lstm", 128, 32, 1000, "float32"), ("lstm", 128, 32, 100, "float64"), ("gru", 64, 32, 100, "float64"),
        ("gru", 128, 32, 100, "float32"), ("gru", 128, 32, 100, "float64")]
WHOLE = {("rnn", 128, 8, 1000, "float64"), ("lstm", 128, 32, 100, "float32")}   # issue 17's rows


@contextlib.contextmanager
def rows_only():
    """Forward passes by W's own rows: ``row_tiled`` says no while the block runs."""
    saved = dispatch.row_tiled, _base.row_tiled
    dispatch.row_tiled = _base.row_tiled = lambda work: False
    try:
        yield
    finally:
        dispatch.row_tiled, _base.row_tiled = saved


def _forward_only(driver, net, p):
    def run():
        driver.forward(net, p.W, p.x, p.state0, p.forcing, 1, scratch=True)
    return run


def _sweeps_keep_tiles(fn):
    """``fn`` (a whole bptt call) with the forward pass's row tiles off but the sweep's on."""
    forward = type(fn.driver).forward

    def patched(self, *args, **kwargs):
        with rows_only():
            return forward(self, *args, **kwargs)

    def run():
        type(fn.driver).forward = patched
        try:
            fn()
        finally:
            type(fn.driver).forward = forward
    return run


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    calls = int(argv[0]) if argv else 200
    print("| cell | n | m | T | dtype | forward, row tiles | forward, W's rows | rows / tiles "
          "| bptt, row tiles | bptt, W's rows | rows / tiles |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with threadpool_limits(1), fastrnn.threads(1):
        for cell, n, m, T, dtype in ROWS:
            make = problem if cell == "rnn" else (lambda *a, **k: lstm_problem(*a, cell=cell, **k))
            net, x, d = make(n, m, T, 1, dtype=np.dtype(dtype))
            driver = driver_for(net)
            p = checks.problem(net, x, d, None, "mse", None, False, driver.teacher_forcing)
            tiles = _forward_only(driver, net, p)

            def rows(tiles=tiles):
                with rows_only():
                    tiles()
            fns = {"tiles": tiles, "rows": rows}
            if (cell, n, m, T, dtype) in WHOLE:
                def whole():
                    fastrnn.bptt(net, x, d)
                whole.driver = driver
                fns["bptt tiles"], fns["bptt rows"] = whole, _sweeps_keep_tiles(whole)
            times = interleaved(fns, calls)
            med = {k: np.median(v) * 1e3 for k, v in times.items()}
            p10 = {k: np.percentile(v, 10) * 1e3 for k, v in times.items()}
            cols = [f"{med[k]:.3f} ({p10[k]:.3f})" for k in ("tiles", "rows")] + [f"{med['rows'] / med['tiles']:.2f}"]
            if "bptt tiles" in med:
                cols += [f"{med[k]:.3f} ({p10[k]:.3f})" for k in ("bptt tiles", "bptt rows")]
                cols += [f"{med['bptt rows'] / med['bptt tiles']:.2f}"]
            else:
                cols += ["", "", ""]
            print(f"| {cell} | {n} | {m} | {T} | {dtype} | " + " | ".join(cols) + " |", flush=True)


if __name__ == "__main__":
    main()
