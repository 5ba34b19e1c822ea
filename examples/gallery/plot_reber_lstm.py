"""
An LSTM learns the embedded Reber grammar
=========================================

Hochreiter & Schmidhuber's first LSTM experiment: predict the set of legal next symbols of
strings from the embedded Reber grammar, which needs the second symbol remembered to the end.
"""
import matplotlib.pyplot as plt

import fastrnn

task = fastrnn.tasks.get("reber")
net = fastrnn.LSTM.init(task.n_in, 24, task.n_out, seed=0, out_activation=task.out_activation)
hist = fastrnn.train.train(net, task, steps=600, batch=32, optimizer=fastrnn.train.Adam(0.01), eval_every=30)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
ax1.semilogy(hist.loss)
ax1.set(xlabel="update", ylabel="loss per target", title="loss")
steps, acc = zip(*hist.accuracy)
ax2.plot(steps, [100 * a for a in acc], "o-")
ax2.set(xlabel="update", ylabel="accuracy on fresh strings (%)", title="accuracy", ylim=(0, 101))
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
print(f"final accuracy {100 * hist.final_accuracy:.1f}% after {len(hist.loss)} updates")
