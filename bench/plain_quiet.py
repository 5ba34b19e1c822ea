"""fastrnn.bptt on arrays in a process that imports torch, with and without putting torch's spinning
threads to sleep first (``runtime.dispatch._quiet_plain``), default threads.

Two tables, medians in ms:

- **beside torch**: the training step of ``test_torch_step.py`` (forward, a linear readout of 8, summed
  squared error, backward, SGD; T = 100, m = 32), fastrnn's step with the rule (``now``) and without it
  (``before``) interleaved with torch.nn's step in a new random order each round, so that most fastrnn
  steps follow a torch step whose threads still spin; ``quiets`` counts the quieting operations a step
  ran (1: once per call; 0: the call is under ``QUIET_MIN_WORK`` or does not pay on parallel threads,
  and both columns run the same code: their difference is the noise);
- **torch idle**: fastrnn's steps alone in a loop (torch imported, its threads asleep), the rule on and
  off in blocks of five calls, alternated in random order: what the quieting operation costs where it
  finds nothing to quiet.

    python bench/plain_quiet.py > bench/results/<date>-plain-calls-beside-torch.md

Only meaningful where torch's OpenMP threads spin (GNU OpenMP on every CPU, its default policy):
``fastrnn info`` says which applies.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_torch_step as S  # noqa: E402
from step_interleaved import Captured  # noqa: E402

import fastrnn.torch as ft  # noqa: E402
from fastrnn.runtime import dispatch  # noqa: E402

CASES = [(kind, n, B, dtype) for kind in ("LSTM", "GRU", "RNN") for dtype in ("float32", "float64")
         for n, B in ((128, 8), (128, 32), (512, 1), (512, 8))]
IDLE = [("LSTM", 128, 32, "float32"), ("LSTM", 128, 8, "float32"), ("GRU", 128, 8, "float32"),
        ("RNN", 128, 32, "float32"), ("LSTM", 128, 8, "float64")]
SECONDS = 3.0


def without_rule(step):
    """``step`` with the rule off: fastrnn.torch counted as not importable, as before the rule."""
    def run():
        dispatch._NO_BRIDGE.append("off")
        try:
            return step()
        finally:
            dispatch._NO_BRIDGE.pop()
    return run


def steps(kind, n, B, dtype):
    out = {}
    for impl in ("fastrnn", "torch"):
        captured = Captured()
        S.test_torch_training_step(captured, impl, kind, n, B, dtype, "default")   # checks the loss first
        out[impl] = captured.fn
    return {"now": out["fastrnn"], "before": without_rule(out["fastrnn"]), "torch": out["torch"]}


def beside_torch(rng, quiets):
    print("| cell | n | B | dtype | before ms | now ms | torch.nn ms | before × torch.nn | now × torch.nn "
          "| quiets a step | rounds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, n, B, dtype in CASES:
        fns = steps(kind, n, B, dtype)
        start = time.perf_counter()
        for fn in fns.values():
            fn()
        rounds = int(min(30, max(6, SECONDS / (time.perf_counter() - start))))
        times = {k: [] for k in fns}
        ran = len(quiets)
        for _ in range(rounds):
            for k in rng.permutation(list(fns)):
                t = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t)
        m = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        print(f"| {kind} | {n} | {B} | {dtype} | {m['before']:.2f} | {m['now']:.2f} | {m['torch']:.2f} "
              f"| {m['torch'] / m['before']:.2f} | {m['torch'] / m['now']:.2f} | {(len(quiets) - ran) / rounds:.1f} "
              f"| {rounds} |", flush=True)


def torch_idle(rng):
    print("| cell | n | B | dtype | before ms | now ms | now − before |")
    print("|---|---|---|---|---|---|---|")
    for kind, n, B, dtype in IDLE:
        fns = steps(kind, n, B, dtype)
        times = {"before": [], "now": []}
        for _ in range(15):
            for k in rng.permutation(list(times)):
                time.sleep(0.03)                     # longer than torch's threads spin
                for i in range(6):
                    t = time.perf_counter()
                    fns[k]()
                    if i:
                        times[k].append(time.perf_counter() - t)
        m = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        print(f"| {kind} | {n} | {B} | {dtype} | {m['before']:.2f} | {m['now']:.2f} | {m['now'] - m['before']:+.2f} |",
              flush=True)


def main():
    if S.torch is None:
        sys.exit("this comparison needs PyTorch: pip install torch==2.13.0")
    quiets = []
    quiet = ft._quiet_torch
    ft._quiet_torch = lambda: (quiets.append(1), quiet())
    rng = np.random.default_rng(0)
    print(f"torch {S.torch.__version__}, {S.torch.get_num_threads()} torch threads, {fastrnn_threads()} fastrnn "
          f"threads, torch's threads spin: {ft._SPINNING and ft._GOMP}\n")
    print("## Beside torch.nn's step\n")
    beside_torch(rng, quiets)
    print("\n## torch idle\n")
    torch_idle(rng)


def fastrnn_threads():
    import fastrnn
    return fastrnn.get_threads()


if __name__ == "__main__":
    main()
