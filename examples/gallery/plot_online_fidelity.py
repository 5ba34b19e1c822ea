"""
Exact and approximate online gradients against exact RTRL
=========================================================

``OnlineRTRL(..., shadow=True)`` runs exact RTRL beside another method on the same stream and
records, step by step, the cosine between their gradients. The fixed-size-storage method is exact
(cosine 1, at every block end); SnAp-1, UORO and RFLO approximate it with less work.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastrnn

task = fastrnn.tasks.get("reber")
net = fastrnn.RNN.init(task.n_in, 32, task.n_out, readout="linear", seed=0, out_activation=task.out_activation)
rng = np.random.default_rng(0)
samples = [task.sample(1, rng) for _ in range(30)]
x = np.concatenate([s.x for s in samples])[:300]
d = np.concatenate([s.d for s in samples])[:300]
mask = np.concatenate([s.mask for s in samples])[:300] != 0

fig, ax = plt.subplots(figsize=(8, 3.8), constrained_layout=True)
for method, options in [("fss", {"block": 20}), ("snap1", {}), ("uoro", {"seed": 0}), ("rflo", {"seed": 0})]:
    learner = fastrnn.OnlineRTRL(net, loss=task.loss, method=method, shadow=True, **options)
    for t in range(len(x)):
        learner.step(x[t], d[t], mask[t])
    fid = learner.fidelity
    cos = fid["per_step"]["cosine"]
    where = np.linspace(0, len(x), len(cos), endpoint=False) if method == "fss" else np.arange(len(cos))
    ax.plot(where, cos, ".", markersize=3 if method != "fss" else 8, label=f"{method} (mean {fid['cosine']:.2f})")
ax.set(xlabel="step (fss: block ends)", ylabel="cosine to exact RTRL", ylim=(-1.05, 1.05))
ax.legend(fontsize=8, loc="lower right")
ax.grid(alpha=0.3)
