"""
Learning online from an endless stream
======================================

``OnlineRTRL`` keeps the sensitivities instead of the history, so the weights can change after
every step of a stream that never ends. Here a small network learns the delayed XOR (the XOR of
two bits seen two steps earlier) from 8 streams read side by side, one update per time step and
no reset between samples.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastrnn

task = fastrnn.tasks.get("delayed-xor")
net = fastrnn.RNN.init(task.n_in, 12, task.n_out, readout="linear", seed=1, out_activation=task.out_activation)
B = 8
learner = fastrnn.OnlineRTRL(net, batch=B, loss=task.loss)
opt = fastrnn.train.Adam(0.01)
params = net.params()

rng = np.random.default_rng(0)
errors, window = [], []
for chunk in range(300):                       # 300 samples of 30 steps glued into each stream
    sample = task.sample(B, rng)
    for t in range(sample.x.shape[0]):
        loss, grads, y = learner.step(sample.x[t], sample.d[t], sample.mask[t])
        opt.step(params, grads)
        if sample.mask[t, 0]:
            window.extend(((y[:, 0] > 0.5) != (sample.d[t, :, 0] > 0.5)).tolist())
    errors.append(np.mean(window[-600:]))

fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
ax.plot(np.arange(1, 301) * 30, 100 * (1 - np.array(errors)))
ax.set_xlabel("time steps of the stream")
ax.set_ylabel("accuracy over the last 600 targets (%)")
ax.set_ylim(40, 101)
ax.grid(alpha=0.3)
print(f"accuracy at the end of the stream: {100 * (1 - errors[-1]):.1f}%")
