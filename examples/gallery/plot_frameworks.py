"""
Inside PyTorch and JAX
======================

``fastrnn.torch.LSTM`` replaces ``torch.nn.LSTM`` in a PyTorch training loop; ``fastrnn.jax.rnn``
runs under ``jax.jit`` and ``jax.grad``. Both fit a sine wave from its past values.
"""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import torch

import fastrnn.jax
import fastrnn.torch

t = np.linspace(0, 8 * np.pi, 401)
wave = np.sin(t)
x = wave[:-1].reshape(-1, 1, 1)          # (T, B=1, m=1)
y = wave[1:].reshape(-1, 1, 1)

torch.manual_seed(0)
lstm = fastrnn.torch.LSTM(1, 16)
head = torch.nn.Linear(16, 1)
opt = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=0.02)
xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
torch_losses = []
for _ in range(150):
    opt.zero_grad()
    out, _ = lstm(xt)
    loss = torch.nn.functional.mse_loss(head(out), yt)
    loss.backward()
    opt.step()
    torch_losses.append(loss.item())

key = jax.random.PRNGKey(0)
k1, k2, k3 = jax.random.split(key, 3)
params = {"W_in": 0.5 * jax.random.normal(k1, (16, 1)), "W_rec": 0.2 * jax.random.normal(k2, (16, 16)),
          "b": jnp.zeros(16), "W_out": 0.2 * jax.random.normal(k3, (1, 16))}


@jax.jit
def loss_fn(p, x, y):
    hs, _ = fastrnn.jax.rnn({k: p[k] for k in ("W_in", "W_rec", "b")}, x, jnp.zeros((1, 16), x.dtype))
    return jnp.mean((hs @ p["W_out"].T - y) ** 2)


grad_fn = jax.jit(jax.value_and_grad(loss_fn))
xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
jax_losses = []
for _ in range(150):
    value, grads = grad_fn(params, xj, yj)
    params = {k: params[k] - 0.05 * grads[k] for k in params}
    jax_losses.append(float(value))

fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
ax.semilogy(torch_losses, label="fastrnn.torch.LSTM + Adam (PyTorch)")
ax.semilogy(jax_losses, label="fastrnn.jax.rnn + SGD (jax.jit)")
ax.set(xlabel="update", ylabel="mean squared error")
ax.legend()
ax.grid(alpha=0.3)
