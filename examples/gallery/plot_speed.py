"""
Speed against PyTorch and JAX
=============================

The benchmark results committed in ``bench/results`` drawn as pictures: the ratio of PyTorch's
(or JAX's) time to fastrnn's, problem by problem (above one: fastrnn is faster). The tables come
from single runs on the project's 2-core machine; ``pytest bench/ --benchmark-only`` remeasures
them on yours.
"""
import os
import re

import matplotlib.pyplot as plt

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
RESULTS = next(p for p in (os.path.join(HERE, "..", "..", "bench", "results"),
                           os.path.join(os.getcwd(), "..", "bench", "results"),
                           os.path.join(os.getcwd(), "bench", "results")) if os.path.isdir(p))


def table(name):
    """(problem, {column: value}) rows of the first markdown table in a results file."""
    lines = []
    with open(os.path.join(RESULTS, name)) as f:
        for line in f:
            if line.startswith("|"):
                lines.append(line)
            elif lines:                   # the first table has ended
                break
    header = [h.strip() for h in lines[0].strip("|\n").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|\n").split("|")]
        rows.append((cells[0], dict(zip(header, cells))))
    return rows


def number(text):
    match = re.match(r"[0-9.]+", text or "")
    return float(match.group()) if match else None


fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
for ax, (name, peers, title) in zip(axes, [
        ("2026-11-23-report.md", ["× torch", "× jax"], "simple cell: BPTT and RTRL"),
        ("2026-11-25-gated.md", ["× torch", "× jax"], "gated cells: BPTT and RTRL, float64")]):
    rows = [(p, r) for p, r in table(name) if any(number(r.get(k)) for k in peers)]
    for k, peer in enumerate(peers):
        values = [number(r.get(peer)) or 0 for _, r in rows]
        ax.barh([i + 0.4 * k for i in range(len(rows))], values, 0.4, label=peer.replace("× ", ""))
    ax.set_yticks([i + 0.2 for i in range(len(rows))], [p.replace(" float64", "") for p, _ in rows], fontsize=7)
    ax.axvline(1, color="k", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("their time / fastrnn's time")
    ax.set_title(title)
    ax.legend(fontsize=8)

# %%
# A training step against PyTorch
# --------------------------------
# One step (forward, a linear readout, summed squared error, backward to every weight) of
# ``fastrnn.bptt`` and of the ``fastrnn.torch`` modules against ``torch.nn.RNN``/``LSTM``/``GRU``,
# T = 100, m = 32, by size (n, B), with one thread each and with default threads
# (``bench/test_torch_step.py``).

STEP = "2026-11-26-training-step.md"
rows = [(p, r) for p, r in table(STEP) if p.startswith("step-")]
fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharey=True, constrained_layout=True)
for col, kind in enumerate(("rnn", "lstm", "gru")):
    for row, dtype in enumerate(("float32", "float64")):
        ax = axes[row, col]
        for threads, style in (("one", "-"), ("default", "--")):
            picked = [(p, r) for p, r in rows if p.startswith(f"step-{kind}-{threads} ") and p.endswith(dtype)]
            labels = [" ".join(w for w in p.split() if w.startswith(("n=", "B="))) for p, _ in picked]
            plain = [number(r["× torch"]) for _, r in picked]
            module = [number(r["× torch"]) / number(r["× fastrnn.torch"]) for _, r in picked]
            ax.plot(labels, plain, style + "o", color="C0", label=f"fastrnn.bptt, {threads} thread(s)")
            ax.plot(labels, module, style + "s", color="C1", label=f"fastrnn.torch, {threads} thread(s)")
        ax.axhline(1, color="k", linewidth=1)
        ax.set_yscale("log")
        ax.set_title(f"{kind.upper()} {dtype}")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        if col == 0:
            ax.set_ylabel("torch's time / fastrnn's time")
axes[0, 0].legend(fontsize=7)
plt.show()
