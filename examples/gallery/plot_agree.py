"""
The same gradient three ways
============================

BPTT (the kernels), RTRL (the kernels) and the plain NumPy reference compute the gradient of one
loss. Their largest relative differences are at the level of float64 round-off.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastrnn

net = fastrnn.RNN.init(n_in=3, n_hidden=16, n_out=4, seed=0)
rng = np.random.default_rng(0)
x = rng.standard_normal((50, 4, 3))
d = rng.standard_normal((50, 4, 4))

_, bptt = fastrnn.bptt(net, x, d)
_, rtrl = fastrnn.rtrl(net, x, d)
_, ref = fastrnn.reference.bptt(net, x, d)

names = ["W_in", "W_rec", "b"]
pairs = {"BPTT vs reference": (bptt, ref), "RTRL vs reference": (rtrl, ref), "RTRL vs BPTT": (rtrl, bptt)}
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
for k, (label, (a, b)) in enumerate(pairs.items()):
    errors = [fastrnn.compare.relative_error(a[name], b[name]) for name in names]
    ax.bar(np.arange(len(names)) + 0.25 * (k - 1), errors, 0.25, label=label)
    print(label, ", ".join(f"{n}: {e:.1e}" for n, e in zip(names, errors)))
ax.set_yscale("log")
ax.set_xticks(range(len(names)), [f"d{n}" for n in names])
ax.set_ylabel("max |a - b| / max |b|")
ax.axhline(1e-10, color="k", linestyle="--", linewidth=1, label="SPEC tolerance")
ax.legend(fontsize=8)
