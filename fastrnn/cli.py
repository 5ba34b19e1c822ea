"""The ``fastrnn`` command: ``train`` a network on a built-in task and watch it learn, ``check`` every
kernel against the NumPy reference on this machine, ``bench`` a short timing table, ``info`` what
fastrnn runs on, ``warmup`` to compile the kernels ahead of time.

A bad flag or value prints one line and exits with status 2; a failed check exits with 1; Ctrl-C
during training saves what was learned so far and exits with 130.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import fastrnn
from fastrnn import RNN, FastRNNError, OnlineRTRL, bptt, forward, reference, rtrl, tasks
from fastrnn import plot, train as trainer
from fastrnn.compare import relative_error, tolerance, within


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One clear line, no usage dump, exit status 2."""
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _positive(kind):
    what = {"int": "a whole number", "float": "a number"}[kind.__name__]

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if kind is float and not np.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


# -- progress ----------------------------------------------------------------------------------
class Progress:
    """tqdm's progress bar on stderr, with the loss and the accuracy on fresh data."""

    def __init__(self, total, quiet=False, stream=None):
        self.total, self.quiet, self.stream = total, quiet, stream or sys.stderr
        self.bar = None              # drawn at the first update: an error before it prints only itself
        self.done = 0

    def update(self, step, loss, accuracy):
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=self.total, file=self.stream, disable=self.quiet, unit="update",
                            dynamic_ncols=True, mininterval=0.2, leave=True)
        postfix = {"loss": f"{loss:.4f}"}
        if accuracy is not None:
            postfix["acc"] = f"{100 * accuracy:.1f}%"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(step - self.done)
        self.done = step

    def close(self):
        if self.bar is not None:
            self.bar.close()


# -- train -------------------------------------------------------------------------------------
CELLS = fastrnn.MODELS   # --cell name -> model class


def make_net(cell, task, hidden, seed):
    from fastrnn.runtime import memory
    rows = {"lstm": 4}.get(cell, 1) * hidden
    memory.check(8 * rows * (task.n_in + hidden + 2), f"a {cell.upper()} with {hidden} units",
                 "fewer --hidden units")
    return CELLS[cell].init(task.n_in, hidden, task.n_out, readout="linear", seed=seed,
                            out_activation=task.out_activation)


def _output_folder(path):
    """Create --out now and prove it writable, before any training: no work may be lost to it."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".fastrnn-write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise fastrnn.OptionError(f"--out {path}: cannot write there ({exc.strerror or exc}): "
                                  "choose a writable folder") from None
    return path


def _resume(path, cell, task):
    """The network saved at ``path``, checked against the task's inputs and outputs."""
    try:
        net = fastrnn.load(path)
    except OSError as exc:
        raise fastrnn.OptionError(f"--resume {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, KeyError) as exc:
        raise fastrnn.OptionError(f"--resume {path}: not a network saved by fastrnn ({exc})") from None
    if cell is not None and net.cell != cell:
        raise fastrnn.OptionError(f"--resume {path} holds a {net.cell!r} network but --cell is {cell!r}")
    if (net.n_in, net.n_out) != (task.n_in, task.n_out) or net.out_activation != task.out_activation:
        raise fastrnn.OptionError(
            f"--resume {path}: the network has {net.n_in} inputs, {net.n_out} outputs and out_activation="
            f"{net.out_activation!r}; task {task.name!r} needs {task.n_in}, {task.n_out} and "
            f"{task.out_activation!r}")
    return net


def write_history(path, hist):
    """history.csv: one row per report (update, loss per scored target, accuracy on fresh data, seconds)."""
    accuracy = dict(hist.accuracy)
    with open(path, "w") as f:
        f.write("update,loss,accuracy,seconds\n")
        for step, loss, seconds in hist.reports:
            acc = accuracy.get(step)
            f.write(f"{step},{loss:.6g},{'' if acc is None else f'{acc:.6g}'},{seconds:.3f}\n")
    return path


def _json_number(value):
    return None if value is None or not np.isfinite(value) else value


def cmd_train(args):
    if args.algorithm != "tbptt" and (args.truncation is not None or args.curriculum):
        raise fastrnn.OptionError(f"--truncation and --curriculum apply to --algorithm tbptt, not "
                                  f"{args.algorithm}: drop them or add --algorithm tbptt")
    task = tasks.get(args.task)
    _output_folder(args.out)
    if args.resume:
        net = _resume(args.resume, args.cell, task)
        cell = net.cell
    else:
        cell = args.cell or "rnn"
        net = make_net(cell, task, args.hidden or task.default_hidden, args.seed)
    hidden = net.n_hidden
    steps = args.steps or task.default_steps
    lr = args.lr or ((args.algorithm == "online-rtrl" and task.default_online_lr) or task.default_lr)
    optimizer = trainer.OPTIMIZERS[args.optimizer](lr)
    quiet = args.json
    if not quiet:
        print(f"fastrnn {fastrnn.__version__}: {cell.upper()} with {hidden} units learns '{task.name}' by "
              f"{args.algorithm} ({steps} updates, batch {args.batch}, {args.optimizer} lr {lr})"
              + (f", resumed from {args.resume}" if args.resume else ""))
        print(f"  task: {(type(task).__doc__ or '').strip().splitlines()[0]}")
    progress = Progress(steps, quiet=quiet)
    latest = {}

    def callback(step, hist):
        latest["hist"] = hist
        acc = hist.accuracy[-1][1] if hist.accuracy else None
        progress.update(step, hist.loss[-1], acc)

    interrupted = False
    try:
        hist = trainer.train(net, task, steps=steps, algorithm=args.algorithm, batch=args.batch,
                             length=args.length, optimizer=optimizer, truncation=args.truncation,
                             curriculum=args.curriculum, clip=args.clip, seed=args.seed,
                             eval_every=max(1, steps // 20), callback=callback)
    except KeyboardInterrupt:
        interrupted = True
        hist = latest.get("hist") or trainer.History()
    finally:
        progress.close()
    params_path = os.path.join(args.out, "params.npz")
    net.save(params_path)
    history_path = write_history(os.path.join(args.out, "history.csv"), hist)
    plot_path = os.path.join(args.out, "training.png")
    if plot.available() and hist.loss:
        plot.training_plot(plot_path, hist.loss, hist.accuracy,
                           title=f"{cell.upper()} ({hidden} units) on {task.name} by {args.algorithm}")
    else:
        plot_path = None
    if interrupted:
        sys.stderr.write(f"fastrnn: interrupted after {len(hist.loss)} of {steps} updates; saved the parameters "
                         f"to {params_path} and the history to {history_path} (continue with --resume "
                         f"{params_path})\n")
        return 130
    solved = bool(hist.final_accuracy >= task.success)
    result = {"task": task.name, "cell": cell, "algorithm": args.algorithm, "optimizer": args.optimizer,
              "steps": len(hist.loss), "final_loss": _json_number(hist.final_loss),
              "final_accuracy": _json_number(hist.final_accuracy), "success_threshold": task.success,
              "solved": solved, "seconds": round(hist.seconds, 3), "hidden": hidden, "seed": args.seed,
              "params": params_path, "history": history_path, "plot": plot_path}
    if args.json:
        print(json.dumps(result, allow_nan=False))
        return 0
    print(f"done in {hist.seconds:.1f} s: loss per target {hist.final_loss:.4f}, "
          f"accuracy on fresh data {100 * hist.final_accuracy:.1f}%")
    if solved:
        print(f"  solved: the task counts as solved at {100 * task.success:.0f}% accuracy")
    else:
        print(f"  NOT solved: the task counts as solved at {100 * task.success:.0f}% accuracy and this run "
              f"reached {100 * hist.final_accuracy:.1f}%; try more --steps, another --lr, or --resume "
              f"{params_path} to train on")
    print(f"  parameters: {params_path}\n  history: {history_path}")
    print(f"  plot: {plot_path}" if plot_path else
          "  plot: not drawn, matplotlib is not installed (pip install 'fastrnn[plot]')")
    return 0


# -- eval --------------------------------------------------------------------------------------
def cmd_eval(args):
    task = tasks.get(args.task)
    net = _resume(args.params, None, task)
    sample = task.sample(args.batch, args.seed, args.length)
    x = sample.x.astype(net.dtype)
    d = sample.d if task.loss == "xent" else sample.d.astype(net.dtype)
    mask = sample.mask != 0
    loss, _ = bptt(net, x, d, mask, task.loss)
    scored = max(1, int(mask.sum()) * (1 if task.loss == "xent" else net.n_out))
    accuracy = task.accuracy(forward(net, x)[1], sample)
    result = {"task": task.name, "params": args.params, "cell": net.cell, "hidden": net.n_hidden,
              "batch": args.batch, "seed": args.seed, "loss": _json_number(loss / scored),
              "accuracy": _json_number(accuracy), "solved": bool(accuracy >= task.success)}
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(f"{net.cell.upper()} with {net.n_hidden} units on {args.batch} fresh '{task.name}' sequences "
              f"(seed {args.seed}): loss per target {loss / scored:.4f}, accuracy {100 * accuracy:.1f}% "
              f"({'solved' if accuracy >= task.success else 'not solved'}: the threshold is "
              f"{100 * task.success:.0f}%)")
    return 0


# -- check -------------------------------------------------------------------------------------
def _check_rows(seed):
    """(name, dtype, error, tolerance) for every kernel against the reference, and RTRL vs BPTT."""
    rng = np.random.default_rng(seed)
    rows = []
    for dtype in (np.float64, np.float32):
        tol = tolerance(dtype)
        for cell, model in CELLS.items():
            T, B, m, n, o = 12, 3, 3, 6, 2
            net = model.init(m, n, o, readout="linear", dtype=dtype, seed=seed)
            x = rng.standard_normal((T, B, m)).astype(dtype)
            d = rng.standard_normal((T, B, o)).astype(dtype)
            mask = rng.random((T, B, o)) < 0.8

            def worst(grads, ref):
                errors = [relative_error(grads.get(k), r) for k, r in ref.items()]
                return float("nan") if np.isnan(errors).any() else max(errors)
            h = forward(net, x)[0]
            rows.append((f"{cell} forward", dtype, relative_error(h, reference.forward(net, x)[0]), tol))
            for trunc in (None, 4, (5, 2)):
                g = bptt(net, x, d, mask, truncation=trunc)[1]
                ref = reference.bptt(net, x, d, mask, "mse", trunc)[1]
                rows.append((f"{cell} bptt truncation={trunc}", dtype, worst(g, ref), tol))
            if not model.rtrl_available:
                continue
            g_r = rtrl(net, x, d, mask)[1]
            rows.append((f"{cell} rtrl", dtype, worst(g_r, reference.rtrl(net, x, d, mask)[1]), tol))
            g_b = bptt(net, x, d, mask)[1]
            rows.append((f"{cell} rtrl vs bptt", dtype, worst(g_r, {k: g_b[k] for k in g_r}), tol))
            learner = OnlineRTRL(net, batch=B)
            total = None
            for t in range(T):
                step = learner.step(x[t], d[t], mask[t])[1]
                total = step if total is None else total + step
            rows.append((f"{cell} online rtrl (summed)", dtype, worst(total, g_r), tol))
    return rows


def cmd_check(args):
    rows = _check_rows(args.seed)
    failed = 0
    print(f"{'check':34s} {'dtype':8s} {'rel. error':>11s} {'tolerance':>10s}  result")
    for name, dtype, err, tol in rows:
        ok = within(err, dtype)
        failed += not ok
        print(f"{name:34s} {np.dtype(dtype).name:8s} {err:11.2e} {tol:10.0e}  {'pass' if ok else 'FAIL'}")
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


# -- bench -------------------------------------------------------------------------------------
def _median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def cmd_bench(args):
    sizes = {"bptt": [(32, 8, 200, 1), (128, 8, 200, 1)], "rtrl": [(16, 4, 50, 1), (32, 4, 20, 1)]}
    if not args.quick:
        sizes = {"bptt": [(32, 8, 1000, 1), (128, 8, 1000, 1), (128, 8, 200, 32)],
                 "rtrl": [(16, 4, 200, 1), (32, 4, 100, 1), (64, 4, 20, 1)]}
    repeat = 3 if args.quick else 7
    print(f"{'algorithm':9s} {'n':>4s} {'m':>3s} {'T':>5s} {'B':>3s} {'fastrnn':>11s} {'reference':>11s} {'speed-up':>9s}")
    for algo, rows in sizes.items():
        for n, m, T, B in rows:
            rng = np.random.default_rng(0)
            net = RNN.init(m, n, max(1, n // 4), seed=0)
            x, d = rng.standard_normal((T, B, m)), rng.standard_normal((T, B, net.n_out))
            ours_fn = (lambda: bptt(net, x, d)) if algo == "bptt" else (lambda: rtrl(net, x, d))
            ref_fn = (lambda: reference.bptt(net, x, d)) if algo == "bptt" else (lambda: reference.rtrl(net, x, d))
            ours, ref = _median_time(ours_fn, repeat), _median_time(ref_fn, max(1, repeat // 2))
            print(f"{algo:9s} {n:4d} {m:3d} {T:5d} {B:3d} {ours * 1e3:9.2f}ms {ref * 1e3:9.2f}ms {ref / ours:8.1f}x")
    print("medians of repeated runs; the full suite against PyTorch and JAX: pytest bench/ --benchmark-only")
    return 0


# -- info and warmup ---------------------------------------------------------------------------
def _version(package):
    from importlib import metadata
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _beside_torch_row():
    """What fastrnn.torch will do beside torch's threads, from the GNU OpenMP variables of this
    environment (read as torch's runtime reads them when torch loads; torch itself not imported)."""
    from fastrnn.runtime import dispatch
    count = dispatch.gomp_spin_count()
    said = ", ".join(f"{k}={os.environ[k].strip()}" for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
                     if os.environ.get(k, "").strip()) or "GOMP_SPINCOUNT unset"
    if dispatch.gomp_threads_spin():
        spin = ("an unreadable count" if count is None else
                "libgomp's default, about 3 ms by its estimate, 8.5 ms measured on a 2-core AMD EPYC"
                if count == 300_000 else f"{count:g} iterations")
        return (f"torch's threads spin after each operation ({said}: {spin}); where torch runs GNU OpenMP on "
                f"every CPU, fastrnn.torch, and any fastrnn call in a process that has imported torch, puts them to "
                f"sleep before a call of {dispatch.QUIET_MIN_WORK / 1e6:g} million multiply-adds or more that pays "
                "on parallel threads; else fastrnn.torch runs its parallel kernels "
                f"only for calls of {dispatch.BESIDE_MIN_WORK / 1e6:g} million multiply-adds or more; shorter "
                "calls' weight-gradient products run on torch's threads. "
                f"GOMP_SPINCOUNT={dispatch.SHORT_SPIN} set before torch is imported lets it use both cores sooner "
                "(README: Threads)")
    return f"torch's threads sleep soon after each operation ({said}): fastrnn.torch uses the usual thresholds"


def info_rows():
    """(label, value) pairs: what fastrnn runs on in this process."""
    import platform

    from fastrnn.runtime import blas, compilation, dispatch, layer
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    usable = _usable_cores()
    rows = [("fastrnn", fastrnn.__version__), ("python", platform.python_version())]
    rows += [(p, _version(p)) for p in ("numpy", "numba", "scipy", "threadpoolctl", "tbb", "torch", "jax",
                                        "matplotlib")]
    rows += [("cpu", cpu), ("cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
             ("threading layer", f"{layer.active() or 'not started yet'} (requested: "
                                 f"{layer.REQUESTED or 'NUMBA_THREADING_LAYER=' + os.environ.get('NUMBA_THREADING_LAYER', '')})"),
             ("fastrnn threads", f"{dispatch.get_threads()} of {dispatch.max_threads()} "
                                 "(small calls run one; FASTRNN_NUM_THREADS, --threads, fastrnn.set_threads)")]
    if _version("torch") != "not installed":
        rows.append(("beside torch", _beside_torch_row()))
    chosen = os.environ.get("OPENBLAS_CORETYPE")
    for lib in blas.info():
        core = lib['architecture'] or 'core not reported'
        if chosen and lib['internal_api'] == "openblas":
            core += f", as OPENBLAS_CORETYPE={chosen} asks"
        rows.append(("BLAS", f"{lib['internal_api']} {lib['version']} ({core}) "
                             f"with {lib['num_threads']} threads (held to 1 during fastrnn calls): {lib['filepath']}"))
    if not blas.info():
        rows.append(("BLAS", "no controllable BLAS found: its threads run beside fastrnn's"))
    rows.append(("step products", {"blas": "through the BLAS, in panels it multiplies unpacked",
                                   "tiles": "in compiled register tiles (the BLAS packs the weights in every step, "
                                            "or the tiles take the CPU's 64-byte vectors)"}
                 [blas.step_products()] + " (B > 1; FASTRNN_STEP_PRODUCTS=blas or tiles)"))
    from fastrnn.kernels._tiles import TILE_BYTES
    rows.append(("tiles", f"{TILE_BYTES}-byte vectors (the CPU's widest); weight gradients "
                          + ("in the tiles too: the BLAS's core takes narrower vectors" if blas.tiles_wider()
                             else "through the BLAS")))
    folder = compilation.cache_folder()
    entries = compilation.cache_entries()
    rows.append(("kernel cache", f"{folder or 'off (no writable folder): kernels compile in every process'}"
                                 + (f" ({entries} kernels cached: {'warm' if entries else 'cold, run fastrnn warmup'})"
                                    if folder else "")))
    return rows


def cmd_info(args):
    from fastrnn.runtime import dispatch
    net = RNN.init(2, 2, 1, seed=0)                  # start the pool so the active layer is known
    old, dispatch.FORCE_PARALLEL = dispatch.FORCE_PARALLEL, True
    try:
        fastrnn.forward(net, np.zeros((2, 2, 2)))
    finally:
        dispatch.FORCE_PARALLEL = old
    rows = info_rows()
    if args.json:
        print(json.dumps(dict(rows) | {"BLAS": [v for k, v in rows if k == "BLAS"]}))
        return 0
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def warm(cells=None, dtypes=(np.float64, np.float32), parallel=True, jobs=1):
    """Compile (or load from the cache) every kernel for the cells and dtypes, serial twins and,
    with ``parallel``, parallel ones, sharing the work out among ``jobs`` processes (this one
    included): Numba compiles on one core a process. Returns the seconds it took."""
    modes = (False, True) if parallel else (False,)
    return warm_units([(name, np.dtype(dtype).name, forced) for name in cells or list(CELLS)
                       for dtype in dtypes for forced in modes], jobs)


def warm_units(units, jobs=1):
    """Compile the kernels of each (cell name, dtype name, parallel) unit: forward, bptt, rtrl and
    an online step (and for the simple cell's serial unit, a batch of one's forward and sweep on two threads:
    ``runtime.pair``), on ``jobs`` processes (this one included; spawned, so nothing of this process's
    threads is forked). Each process takes the largest unit no other has claimed yet, until none is
    left (``warm_claimed``); the kernels' cache index is locked between processes (``kernels._jit``),
    so two processes may compile one kernel's variants at once. Returns the seconds it took."""
    start = time.perf_counter()
    units = [tuple(u) for u in units]
    jobs = max(1, min(int(jobs), len(units)))
    if jobs == 1:
        _warm_share(units)
    else:
        import multiprocessing
        import shutil
        import tempfile
        from concurrent.futures import ProcessPoolExecutor
        folder = tempfile.mkdtemp(prefix="fastrnn-warmup-")
        try:
            with ProcessPoolExecutor(jobs - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
                others = [pool.submit(warm_claimed, units, folder) for _ in range(jobs - 1)]
                warm_claimed(units, folder)
                for share in others:
                    share.result()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return time.perf_counter() - start


# Compile seconds of a unit (one dtype) relative to the LSTM's serial twins, measured on an empty cache
# (2-core AMD EPYC, two processes at once, 2026-11-28): serial twins 15-20 s a unit; the parallel twins'
# loops cost Numba's parallel passes about three times that (the LSTM 50 s, the GRU 44, the projected
# LSTM 41); the simple cell has a fourth kernel (the weight-gradient product): 75-90 s parallel.
_UNIT_COST = {("rnn", False): 1.15, ("lstmp", False): 0.95,
              ("rnn", True): 4.5, ("lstm", True): 2.9, ("gru", True): 2.6, ("lstmp", True): 2.5}
CLAIM_PREFIX = "claim-"


def _unit_cost(unit):
    name, _, parallel = unit
    return _UNIT_COST.get((name, bool(parallel)), 1.0)


def warm_claimed(units, folder):
    """Compile each of ``units``, largest first, that no other process has claimed in ``folder``: a
    process claims a unit by creating a file named after it there, which succeeds for one process only.
    Processes that share a folder thus share the units out as they go, each taking the next as soon as it
    is free, however long each unit takes on the machine. Returns the units this process compiled."""
    mine = []
    for unit in sorted(units, key=_unit_cost, reverse=True):
        claim = os.path.join(folder, CLAIM_PREFIX + "-".join(str(part) for part in unit))
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        _warm_share([unit])
        mine.append(unit)
    return mine


def _warm_share(units):
    from fastrnn.cells import driver_for
    from fastrnn.runtime import dispatch
    for name, dtype, forced in units:
        net = CELLS[name].init(2, 3, 2, readout="linear", dtype=dtype, seed=0)
        driver = driver_for(net)
        x = np.zeros((3, 2, 2), dtype=dtype)
        d = np.zeros((3, 2, 2), dtype=dtype)
        old, dispatch.FORCE_PARALLEL = dispatch.FORCE_PARALLEL, forced
        try:
            with fastrnn.threads(2 if forced and dispatch.max_threads() > 1 else 1):
                fastrnn.forward(net, x)
                fastrnn.bptt(net, x, d)
                if driver.rtrl_methods:              # the projected LSTM has no RTRL
                    fastrnn.rtrl(net, x, d)
                if driver.online_methods:
                    fastrnn.OnlineRTRL(net, batch=2).step(x[0], d[0])
            if name == "rnn" and not forced:        # a long batch of one's forward on two threads
                _warm_pair(dtype)
            if name == "rnn":
                _warm_products(dtype, forced)
                if not forced:
                    _warm_updates(dtype)
        finally:
            dispatch.FORCE_PARALLEL = old


def _warm_products(dtype, parallel):
    """The products outside the kernels in the compiled tiles (``dispatch.product``), where they take them (the
    tiles wider than NumPy's BLAS): each layout of a and b the calls hand in (dL/dx, a GRU's sums a turned round,
    a pair's projection b turned round), the serial twin or the parallel one."""
    from fastrnn.kernels import _tiles_matmul
    from fastrnn.runtime import blas
    if not blas.tiles_wider_than_numpy():
        return
    a = np.zeros((8, 4), dtype=dtype)
    b = np.zeros((4, 8), dtype=dtype)
    out = np.empty((8, 8), dtype=dtype)
    kernel = _tiles_matmul.parallel if parallel else _tiles_matmul.serial
    for x, y in ((a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b))):
        kernel(*_tiles_matmul.read_only((x, y, out, np.empty(0, dtype=dtype), 2 if parallel else 1)))


def _warm_updates(dtype):
    """The optimizers' one-pass updates (``kernels.update``: ``fastrnn.train.SGD``, with momentum, ``Adam``)."""
    from fastrnn import train
    params = {"w": np.zeros(4, dtype=dtype)}
    grads = {"w": np.ones(4, dtype=dtype)}
    for opt in (train.SGD(0.1), train.SGD(0.1, momentum=0.5), train.Adam(0.1)):
        opt.step(params, grads)


def _warm_pair(dtype):
    from fastrnn.runtime import pair
    net = CELLS["rnn"].init(2, 8, 2, dtype=dtype, seed=0)
    old, pair.FORCE = pair.FORCE, True
    try:
        x = np.zeros((3, 1, 2), dtype=dtype)
        fastrnn.bptt(net, x, x)                 # the forward pass and the sweep
    finally:
        pair.FORCE = old


def cmd_warmup(args):
    dtypes = [np.dtype(t) for t in args.dtype]
    seconds = warm(args.cell, dtypes, parallel=not args.serial_only, jobs=args.jobs)
    from fastrnn.runtime import compilation
    print(f"kernels ready in {seconds:.1f} s ({compilation.cache_entries()} kernels cached in "
          f"{compilation.cache_folder() or 'memory only: no writable cache folder'})")
    return 0


def build_parser():
    parser = _Parser(prog="fastrnn", description="Train, evaluate, check and benchmark fastrnn's recurrent "
                     "networks: train learns a built-in task, eval scores a saved network, check compares every "
                     "kernel with the NumPy reference, bench times them, info shows what fastrnn runs on, "
                     "warmup compiles the kernels ahead of time.")
    parser.add_argument("--version", action="version", version=f"fastrnn {fastrnn.__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    t = sub.add_parser("train", help="train a network on a built-in task and show it learning")
    t.add_argument("--task", default="parity", choices=list(tasks.TASKS))
    t.add_argument("--cell", choices=list(CELLS), help="rnn (default) or lstm; with --resume, what the file holds")
    t.add_argument("--algorithm", default="bptt", choices=list(trainer.ALGORITHMS))
    t.add_argument("--hidden", type=_positive(int), help="recurrent units (default: the task's)")
    t.add_argument("--steps", type=_positive(int), help="updates (default: the task's)")
    t.add_argument("--lr", type=_positive(float), help="learning rate (default: the task's)")
    t.add_argument("--optimizer", default="adam", choices=list(trainer.OPTIMIZERS),
                   help="adam (default), sgd, or sgd with momentum 0.9")
    t.add_argument("--resume", metavar="PARAMS", help="continue training the network saved in this params.npz")
    t.add_argument("--batch", type=_positive(int), default=32)
    t.add_argument("--length", type=_positive(int), help="sequence length (default: the task's)")
    t.add_argument("--truncation", type=_positive(int), default=None, help="k for --algorithm tbptt (default 10)")
    t.add_argument("--curriculum", action="store_true", help="tbptt: grow the truncation from 1 to k")
    t.add_argument("--clip", type=_positive(float), help="clip gradients to this global norm")
    t.add_argument("--seed", type=_seed, default=0, help="seed of the weights and the data (default 0)")
    t.add_argument("--out", default="fastrnn-out", help="folder for params.npz, history.csv and training.png")
    t.add_argument("--json", action="store_true", help="print one JSON object instead of progress")
    e = sub.add_parser("eval", help="accuracy and loss of a saved network on fresh data of a task")
    e.add_argument("--params", required=True, help="a params.npz written by fastrnn train (or net.save)")
    e.add_argument("--task", default="parity", choices=list(tasks.TASKS))
    e.add_argument("--batch", type=_positive(int), default=256, help="fresh sequences to score (default 256)")
    e.add_argument("--length", type=_positive(int), help="sequence length (default: the task's)")
    e.add_argument("--seed", type=_seed, default=12345, help="seed of the fresh data")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    c = sub.add_parser("check", help="every kernel against the NumPy reference on this machine")
    c.add_argument("--seed", type=_seed, default=0)
    b = sub.add_parser("bench", help="a short timing table against the reference")
    b.add_argument("--quick", action="store_true")
    i = sub.add_parser("info", help="versions, threading layer, BLAS and its threads, cores, kernel cache")
    i.add_argument("--json", action="store_true", help="one JSON object")
    w = sub.add_parser("warmup", help="compile the kernels now (or load them from the cache)")
    w.add_argument("--cell", nargs="+", choices=list(CELLS), help="cells to compile (default: all)")
    w.add_argument("--dtype", nargs="+", choices=["float64", "float32"], default=["float64", "float32"])
    w.add_argument("--serial-only", action="store_true", help="skip the parallel twins")
    w.add_argument("--jobs", type=_positive(int), default=_usable_cores(),
                   help="processes that compile at once, this one included (default: the cores this process "
                        "may use; Numba compiles on one core a process)")
    for command in (t, e, c, b, w):
        command.add_argument("--threads", type=_positive(int), help="threads for fastrnn's kernels "
                             "(default: every core for large calls; FASTRNN_NUM_THREADS)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("--") and argv[0] not in ("--help", "-h", "--version"):
        argv = ["train"] + argv          # `fastrnn` alone trains with the defaults
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            fastrnn.set_threads(args.threads)
        commands = {"train": cmd_train, "eval": cmd_eval, "check": cmd_check, "bench": cmd_bench,
                    "info": cmd_info, "warmup": cmd_warmup}
        return commands[args.command](args)
    except FastRNNError as exc:
        sys.stderr.write(f"fastrnn: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("fastrnn: interrupted\n")
        return 130
    except MemoryError:
        sys.stderr.write("fastrnn: error: out of memory: use fewer --hidden units, a smaller --batch or --length\n")
        return 2
    except BrokenPipeError:          # the reader went away (e.g. `fastrnn check | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
