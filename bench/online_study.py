"""A study of online gradients: cost per step and fidelity to exact RTRL of the fixed-size-storage
method and of three approximations (SnAp-1, UORO, RFLO), and the sequences each needs to solve
two tasks when it drives online learning. Reproducible with one command:

    python bench/online_study.py [--out bench/results]     # writes online-study.md and .png

Fidelity: an RNN (tanh, torch's initialisation, seed 0) reads a task's stream with fixed weights
for 200 steps, B = 1; ``OnlineRTRL(..., shadow=True)`` records per step the cosine and the norm
ratio between each method's gradient of the cell's weights and exact RTRL's (FSS: per block).
Cost: the median time of ``OnlineRTRL.step`` without the shadow. Steps to solve: online learning
(Adam, the task's default rate, the weights updated after every step, or every block for FSS),
batches of 8 streams, until the task's accuracy on fresh data reaches its threshold; capped.
"""
import argparse
import os
import time

import numpy as np

import fastrnn
from fastrnn import tasks, train

METHODS = [("exact", {}), ("fss", {}), ("snap1", {}), ("uoro", {"seed": 0}), ("rflo", {"seed": 0})]
SIZES = (16, 32, 64)
FIDELITY_TASKS = ("parity", "delayed-xor", "reber")
SOLVE_TASKS = ("delayed-xor", "reber")


def stream(task, steps, seed):
    """One long stream of a task: consecutive samples glued in time, B = 1."""
    xs, ds, ms = [], [], []
    rng = np.random.default_rng(seed)
    total = 0
    while total < steps:
        b = task.sample(1, rng)
        xs.append(b.x), ds.append(b.d), ms.append(b.mask)
        total += b.x.shape[0]
    return np.concatenate(xs)[:steps], np.concatenate(ds)[:steps], np.concatenate(ms)[:steps] != 0


def fidelity_and_cost(task_name, n, method, options, steps=200):
    task = tasks.get(task_name)
    net = fastrnn.RNN.init(task.n_in, n, task.n_out, readout="linear", seed=0, out_activation=task.out_activation)
    x, d, mask = stream(task, steps, seed=1)
    if task.loss != "xent":
        d = d.astype(np.float64)
    learner = fastrnn.OnlineRTRL(net, loss=task.loss, method=method, shadow=method != "exact", **options)
    for t in range(steps):
        learner.step(x[t], d[t], mask[t])
    learner.flush()
    fid = learner.fidelity if method != "exact" else {"cosine": 1.0, "norm_ratio": 1.0}
    timer = fastrnn.OnlineRTRL(net, loss=task.loss, method=method, **options)
    times = []
    for t in range(min(steps, 100)):
        start = time.perf_counter()
        timer.step(x[t], d[t], mask[t])
        times.append(time.perf_counter() - start)
    return fid["cosine"], fid["norm_ratio"], float(np.median(times))


def steps_to_solve(task_name, n, method, options, cap):
    task = tasks.get(task_name)
    net = fastrnn.RNN.init(task.n_in, n, task.n_out, readout="linear", seed=0, out_activation=task.out_activation)
    solved = {}

    def callback(update, hist):
        if hist.accuracy and hist.accuracy[-1][0] == update and hist.accuracy[-1][1] >= task.success:
            solved["at"] = update
            return True
        return False
    lr = task.default_online_lr or task.default_lr
    start = time.perf_counter()
    train.train(net, task, steps=cap, algorithm="online-rtrl", batch=8, optimizer=train.Adam(lr), seed=0,
                eval_every=10, callback=callback, method=method, online_options=options)
    return solved.get("at"), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--cap", type=int, default=300, help="most updates (batches of 8 sequences) to solve")
    args = parser.parse_args(argv)
    lines = ["# Online gradients: fidelity, cost and steps to solve", "",
             f"`python bench/online_study.py` (fastrnn {fastrnn.__version__}); RNN, tanh, B = 1 for fidelity and cost.", "",
             "## Fidelity to exact RTRL (mean cosine / mean norm ratio over 200 steps) and cost per step", "",
             "| task | n | " + " | ".join(m for m, _ in METHODS) + " |",
             "| --- | ---: | " + " | ".join("---" for _ in METHODS) + " |"]
    fidelity = {}
    for task_name in FIDELITY_TASKS:
        for n in SIZES:
            cells = []
            for method, options in METHODS:
                cos, ratio, cost = fidelity_and_cost(task_name, n, method, options)
                fidelity[(task_name, n, method)] = (cos, ratio, cost)
                cells.append(f"{cos:.2f} / {ratio:.2f}, {cost * 1e6:.0f} µs")
            lines.append(f"| {task_name} | {n} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    lines += ["", f"## Updates (batches of 8 sequences) to solve, n = 16, at most {args.cap}", "",
              "| task | " + " | ".join(m for m, _ in METHODS) + " |", "| --- | " + " | ".join("---" for _ in METHODS) + " |"]
    solve = {}
    for task_name in SOLVE_TASKS:
        cells = []
        for method, options in METHODS:
            at, seconds = steps_to_solve(task_name, 16, method, options, args.cap)
            solve[(task_name, method)] = at
            cells.append(f"{at} ({seconds:.0f} s)" if at else f"not within {args.cap} ({seconds:.0f} s)")
        lines.append(f"| {task_name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    os.makedirs(args.out, exist_ok=True)
    md = os.path.join(args.out, "online-study.md")
    png = os.path.join(args.out, "online-study.png")
    plot(fidelity, solve, png, args.cap)
    lines += ["", "Reading it: the cosine of FSS is 1 (it is exact); SnAp-1 keeps most of the gradient's direction,",
              "UORO's single-sample estimate is nearly orthogonal with a norm several times too large (unbiased only",
              "on average), RFLO's random feedback is uncorrelated with the true gradient at these sizes. The cost",
              "per step at B = 1 is dominated by the per-call overhead of OnlineRTRL.step (input checks, readout,",
              "dispatch: about 0.2 ms) for every method but exact RTRL at n = 64, whose O(n⁴) update takes over;",
              "the kernels' own speed is in bench/results/2026-11-25-fss.md and the RTRL benchmarks. Steps to solve",
              "count updates of batches of 8 streams (FSS updates once per block, so its count is of blocks' updates).",
              "", "![fidelity and steps to solve](online-study.png)", ""]
    with open(md, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {md} and {png}")


def plot(fidelity, solve, path, cap):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5), constrained_layout=True)
    for method, _ in METHODS[1:]:
        cos = [np.mean([fidelity[(t, n, method)][0] for t in FIDELITY_TASKS]) for n in SIZES]
        cost = [np.mean([fidelity[(t, n, method)][2] for t in FIDELITY_TASKS]) * 1e6 for n in SIZES]
        ax1.plot(SIZES, cos, "o-", label=method)
        ax2.loglog(SIZES, cost, "o-", label=method)
    exact_cost = [np.mean([fidelity[(t, n, "exact")][2] for t in FIDELITY_TASKS]) * 1e6 for n in SIZES]
    ax2.loglog(SIZES, exact_cost, "k--", label="exact RTRL")
    ax1.set(xlabel="n (units)", ylabel="mean cosine to exact RTRL", title="fidelity (mean over tasks)", ylim=(-0.35, 1.05))
    ax2.set(xlabel="n (units)", ylabel="µs per step (B = 1)", title="cost per step")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    width = 0.15
    for k, (method, _) in enumerate(METHODS):
        vals = [solve[(t, method)] or cap for t in SOLVE_TASKS]
        bars = ax3.bar(np.arange(len(SOLVE_TASKS)) + (k - 2) * width, vals, width, label=method)
        for bar, t in zip(bars, SOLVE_TASKS):
            if solve[(t, method)] is None:
                bar.set_hatch("//")
    ax3.set_xticks(range(len(SOLVE_TASKS)), SOLVE_TASKS)
    ax3.set(ylabel=f"updates to solve (hatched: not within {cap})", title="online learning, n = 16")
    ax3.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
