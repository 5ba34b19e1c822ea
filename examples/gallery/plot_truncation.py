"""
How truncation bends the gradient
=================================

Truncated BPTT(h; h') sends each error back at most h steps. Against the exact gradient of the
same sequences, its cosine rises and its norm ratio approaches one as h grows; with h = T it is
exact.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastrnn

net = fastrnn.RNN.init(n_in=2, n_hidden=24, n_out=2, seed=3)
net.W_rec *= 1.3                              # longer memory: truncation matters more
rng = np.random.default_rng(1)
x = rng.standard_normal((60, 8, 2))
d = rng.standard_normal((60, 8, 2))
_, exact = fastrnn.bptt(net, x, d)
target = np.concatenate([exact[k].ravel() for k in ("W_in", "W_rec", "b")])

hs = [1, 2, 3, 5, 8, 12, 20, 30, 60]
cosines, ratios = [], []
for h in hs:
    _, g = fastrnn.bptt(net, x, d, truncation=(h, 1))
    v = np.concatenate([g[k].ravel() for k in ("W_in", "W_rec", "b")])
    cosines.append(v @ target / np.linalg.norm(v) / np.linalg.norm(target))
    ratios.append(np.linalg.norm(v) / np.linalg.norm(target))

fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
ax.plot(hs, cosines, "o-", label="cosine to the exact gradient")
ax.plot(hs, ratios, "s-", label="norm ratio")
ax.set_xscale("log")
ax.set_xlabel("h of BPTT(h; 1)")
ax.legend()
ax.grid(alpha=0.3)
