"""Compare a register-blocked Numba step product with the BLAS products the kernels use.

    python bench/register_block.py > bench/results/<date>-register-block.md

The per-step recurrent product a (rows, K) @ W (K, N) of the kernels (forward: K = n, N = 4n;
backward: K = 4n, N = n; an LSTM, n from 32 to 512, rows = the batch block, 8 or 32), one thread,
GFLOP/s, taken four ways, each on the same T = 50 steps of state (each step reads its own rows, as
the kernels do):

- ``whole``: one BLAS call on W (the BLAS packs W inside every call above its threshold);
- ``panels``: what the kernels run (``kernels._panels.cut_panels`` + ``panel_dot``);
- ``blocked``: a register-blocked Numba kernel on the same W cut into panels of W_TILE columns
  (contiguous, (count, K, W_TILE)): each tile of R_TILE rows x W_TILE columns is summed over K in
  R_TILE * W_TILE scalar accumulators that LLVM's SLP vectoriser turns into R_TILE * W_TILE /
  lanes vector registers, one broadcast of a[r, k] and one vector FMA per register per k; every
  tile shape tried, the best shown with its shape;
- ``blocked, Numba's default``: the same source compiled with Numba's defaults, which leave the SLP
  vectoriser off (``NUMBA_SLP_VECTORIZE=0``): what a kernel in the package would get;
- ``tiles``: the kernels' compiled register tiles (``kernels._tiles``, written in LLVM's vector types, so
  they need no SLP vectoriser), which they take where the BLAS packs W in every call.

Numba has no vector types, so the kernel is written out per tile shape (generated source, one
scalar per accumulator), and the blocking is checked in the machine code: the table gives the
number of packed FMAs (vfmadd...ps/pd on xmm/ymm/zmm) and scalar ones (...ss/sd) in each compiled
kernel. The batch of one (a matrix-vector product, memory-bound; the simple cell's square W_rec as
well as the LSTM's two shapes) is compared the same way: the BLAS gemv on W^T, against the kernels'
compiled loop (``kernels._panels._gemv_rows``: four rows of W^T at a time, the vector read once for
four dot products; the loop vectoriser handles it under Numba's defaults), which the kernels take
for small weights (``_panels.LOOP_GEMV_BYTES``, ``LOOP_GEMV_BYTES_64``, ``LOOP_GEMV_ROWS``), and
the backward sweeps' loop on W (K, N) itself (``kernels._panels._gemv_axpy``: rows of W added up
scaled by the vector, no transposed copy), which they take for W over 64 KB.

    python bench/register_block.py gemv > bench/results/<date>-batch-of-one-products.md   # that table alone

Every result is compared with the float64 product before it is timed.
"""
import os
import re
import sys
import time

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls: loaded before threadpool_limits holds it)
from numba import njit
from numba.core import config
from threadpoolctl import threadpool_limits

from fastrnn.kernels._panels import _gemv_axpy, _gemv_rows, cut_panels, panel_scratch
from fastrnn.kernels._tiles import TILES as TILED, tile_products
from panels import _products as panel_steps

STEPS = 50
TILES = {np.float32: ((4, 16), (4, 32), (6, 32), (8, 16)), np.float64: ((4, 8), (4, 16), (6, 16), (8, 8))}


def _source(R, W):
    """The register-blocked product for tiles of R rows x W columns, as Python source."""
    acc = [[f"c{r}_{j}" for j in range(W)] for r in range(R)]
    lines = ["def product(a, P, out):",
             "    rows, K = a.shape",
             "    z = np.zeros(1, out.dtype)[0]",
             "    for p in range(P.shape[0]):",
             f"        for r0 in range(0, rows, {R}):"]
    lines += [f"            {c} = z" for row in acc for c in row]
    lines += ["            for k in range(K):",
              "                pk = P[p, k]"]
    lines += [f"                p{j} = pk[{j}]" for j in range(W)]
    for r in range(R):
        lines.append(f"                a{r} = a[r0 + {r}, k]")
        lines += [f"                {acc[r][j]} += a{r} * p{j}" for j in range(W)]
    for r in range(R):
        lines.append(f"            o = out[r0 + {r}, p * {W}:(p + 1) * {W}]")
        lines += [f"            o[{j}] = {acc[r][j]}" for j in range(W)]
    return "\n".join(lines)


def blocked(R, W, slp):
    """The register-blocked product compiled with the SLP vectoriser on or (Numba's default) off.
    Numba reads the setting from the environment (``numba.core.config`` is reloaded from it before
    compiling), so the variable is set around the compile (both signatures at once) and restored."""
    namespace = {"np": np}
    exec(compile(_source(R, W), f"<blocked {R}x{W}>", "exec"), namespace)
    kept = os.environ.get("NUMBA_SLP_VECTORIZE")
    os.environ["NUMBA_SLP_VECTORIZE"] = str(int(slp))
    try:
        config.reload_config()
        sigs = [f"void({t}[:, ::1], {t}[:, :, ::1], {t}[:, ::1])" for t in ("float32", "float64")]
        return njit(sigs, fastmath={"contract"}, error_model="numpy", boundscheck=False)(namespace["product"])
    finally:
        if kept is None:
            del os.environ["NUMBA_SLP_VECTORIZE"]
        else:
            os.environ["NUMBA_SLP_VECTORIZE"] = kept
        config.reload_config()


def fma_counts(fn, dtype):
    """(packed, scalar) FMA instructions in the compiled kernel for ``dtype``."""
    asm = next(code for sig, code in fn.inspect_asm().items() if str(sig[0].dtype) == np.dtype(dtype).name)
    ops = re.findall(r"^\s+(vfn?m(?:add|sub)\w+)\s", asm, re.M)
    packed = sum(1 for o in ops if o.endswith(("ps", "pd")))
    return packed, len(ops) - packed


@njit(error_model="numpy")
def _steps(fn, a, P, out, repeats):
    """fn(a[t], P, out) for every step t, ``repeats`` times (inside Numba: no Python call per step)."""
    for _ in range(repeats):
        for t in range(a.shape[0]):
            fn(a[t], P, out)


@njit(error_model="numpy")
def _tile_product(a, P, out):
    tmp, pad, _, _ = panel_scratch(P, a.shape[0], a.shape[0], TILED)
    tile_products(a, P, out, tmp[0, 0], pad, False)


@njit(error_model="numpy")
def _blas_product(a, W, out):
    np.dot(a, W, out)


@njit(error_model="numpy")
def _blas_gemv(v, M, out):
    np.dot(M, v, out)


@njit(error_model="numpy")
def _loop_gemv(v, M, out):
    _gemv_rows(M, v, out, False)


@njit(error_model="numpy")
def _blas_gemv_t(v, WT, out):
    np.dot(v, WT, out)


@njit(error_model="numpy")
def _axpy_gemv(v, WT, out):
    _gemv_axpy(WT, v, out)


def _rate(run, flops):
    """GFLOP/s of ``run(repeats)`` (each repeat ``flops``): the median of 9 timings."""
    repeats = max(1, int(2e7 / flops))
    run(1)
    times = []
    for _ in range(9):
        t = time.perf_counter()
        run(repeats)
        times.append(time.perf_counter() - t)
    return flops * repeats / np.median(times) / 1e9


def _measured(run, out, ref, dtype, what, flops):
    """GFLOP/s of ``run(repeats)`` after one run whose result ``out`` (NaN-filled first) is checked
    against the float64 product ``ref``."""
    out[...] = np.nan
    run(1)
    err = np.abs(out - ref).max() / np.abs(ref).max()
    if not err <= (1e-5 if dtype == np.float32 else 1e-13):
        raise AssertionError(f"{what}: relative error {err:.1e} against the float64 product")
    return _rate(run, flops)


def products(dtype, kernels):
    print(f"\n## {np.dtype(dtype).name}, rows >= 8: GFLOP/s\n")
    print("| K | N | rows | whole | panels | tiles | blocked (best tile) | blocked, Numba's default | blocked / panels "
          "| tiles / panels |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    for n in (32, 64, 128, 256, 512):
        for K, N in ((n, 4 * n), (4 * n, n)):
            for rows in (8, 32):
                a = rng.standard_normal((STEPS, rows, K)).astype(dtype)
                W = rng.standard_normal((K, N)).astype(dtype)
                ref = a[-1].astype(np.float64) @ W.astype(np.float64)
                out = np.empty((rows, N), dtype)
                flops = 2 * STEPS * rows * K * N
                rates = {"whole": _measured(lambda k: _steps(_blas_product, a, W, out, k), out, ref, dtype,
                                            "whole", flops)}
                P = cut_panels(W, rows, np.empty(0, dtype))
                rates["panels"] = _measured(lambda k: panel_steps(a, P, out, k), out, ref, dtype, "panels", flops)
                Pt = cut_panels(W, rows, np.empty(0, dtype), TILED)
                rates["tiles"] = _measured(lambda k: _steps(_tile_product, a, Pt, out, k), out, ref, dtype, "tiles",
                                           flops)
                best, tile = 0.0, None
                for (R, Wt), (on, off) in kernels.items():
                    if N % Wt or rows % R:
                        continue
                    Pt = np.ascontiguousarray(W.reshape(K, N // Wt, Wt).transpose(1, 0, 2))
                    rate = _measured(lambda k: _steps(on, a, Pt, out, k), out, ref, dtype, f"blocked {R}x{Wt}", flops)
                    off_rate = _measured(lambda k: _steps(off, a, Pt, out, k), out, ref, dtype,
                                         f"blocked {R}x{Wt}, SLP off", flops)
                    if rate > best:
                        best, tile, default = rate, (R, Wt), off_rate
                print(f"| {K} | {N} | {rows} | {rates['whole']:.0f} | {rates['panels']:.0f} | {rates['tiles']:.0f} | "
                      f"{best:.0f} ({tile[0]}x{tile[1]}) | {default:.0f} | {best / rates['panels']:.2f} | "
                      f"{rates['tiles'] / rates['panels']:.2f} |", flush=True)


def matrix_vector(dtype):
    print(f"\n## {np.dtype(dtype).name}, one row (a batch of one): microseconds a step\n")
    print("| K | N | weights | BLAS gemv on W^T | BLAS gemv on W, transposed | Numba, four rows of W^T | "
          "Numba, rows of W added (axpy) | four rows / BLAS | axpy / BLAS | BLAS on W / BLAS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(1)
    for n in (32, 64, 128, 256, 512):
        for K, N in ((n, n), (n, 4 * n), (4 * n, n)):             # the simple cell's W_rec, then the LSTM's
            M = rng.standard_normal((N, K)).astype(dtype)          # W^T, as the forward passes hold it
            WT = np.ascontiguousarray(M.T)                          # W, as the backward sweeps hold it
            V = rng.standard_normal((100, K)).astype(dtype)
            ref = M.astype(np.float64) @ V[-1].astype(np.float64)
            out = np.empty(N, dtype)
            flops = 2 * N * K * V.shape[0]
            us = {name: 2 * N * K * 1e-3 / _measured(lambda k: _steps(fn, V, A, out, k), out, ref, dtype, name, flops)
                  for name, fn, A in (("blas", _blas_gemv, M), ("blas_t", _blas_gemv_t, WT), ("numba", _loop_gemv, M),
                                      ("axpy", _axpy_gemv, WT))}
            kb = N * K * np.dtype(dtype).itemsize / 1024
            print(f"| {K} | {N} | {kb:.0f} KB | {us['blas']:.2f} | {us['blas_t']:.2f} | {us['numba']:.2f} | "
                  f"{us['axpy']:.2f} | {us['numba'] / us['blas']:.2f} | {us['axpy'] / us['blas']:.2f} | "
                  f"{us['blas_t'] / us['blas']:.2f} |", flush=True)


def main():
    if sys.argv[1:] == ["gemv"]:
        print("# A batch of one: the step's matrix-vector product, BLAS and compiled loops (one thread, one run)\n")
        print("`python bench/register_block.py gemv`; chains of 100 products, each checked against the float64 one.")
        with threadpool_limits(1):
            for dtype in TILES:
                matrix_vector(dtype)
        return
    print("# A register-blocked Numba step product against the BLAS (one thread, one run)\n")
    print("`python bench/register_block.py`. whole = one BLAS call per step; panels = the kernels' "
          "products (kernels/_panels.py); blocked = the register-blocked Numba kernel with the SLP "
          "vectoriser on, its best tile (rows x columns); Numba's default = the same tile compiled with "
          "the SLP vectoriser off, as Numba compiles the package's kernels.\n")
    kernels = {}
    for dtype, tiles in TILES.items():
        for R, W in tiles:
            kernels.setdefault((R, W), (blocked(R, W, True), blocked(R, W, False)))
    print("FMAs in the compiled kernels (packed / scalar), SLP on | off:\n")
    for dtype, tiles in TILES.items():
        for R, W in tiles:
            on, off = kernels[(R, W)]
            print(f"- {np.dtype(dtype).name} {R}x{W}: {'/'.join(map(str, fma_counts(on, dtype)))} | "
                  f"{'/'.join(map(str, fma_counts(off, dtype)))}")
    with threadpool_limits(1):
        for dtype, tiles in TILES.items():
            products(dtype, {t: kernels[t] for t in tiles})
        for dtype in TILES:
            matrix_vector(dtype)


if __name__ == "__main__":
    sys.exit(main())
