"""What users would pick instead of fastrnn, on the same problem: PyTorch and JAX (CPU).

Every peer takes a ``fastrnn.RNN`` (tanh cell, units readout) and the arrays ``x`` (T, B, m),
``d`` (T, B, o) and returns ``(loss, dW_in, dW_rec, db)`` of the summed mse loss, so the
benchmarks can check each peer's gradient against fastrnn before timing it. A missing library
makes its peers ``None`` and the benchmark skips them, saying why.
"""
import numpy as np

try:
    import torch
except ImportError:   # the bench extra is not installed
    torch = None

try:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
except ImportError:
    jax = None

WHY_NO_TORCH = "PyTorch is not installed (pip install -e '.[bench]')"
WHY_NO_JAX = "JAX is not installed (pip install -e '.[bench]')"


# -- PyTorch -----------------------------------------------------------------------------------
class TorchBPTT:
    """torch.nn.RNN + autograd: forward and backward of the summed mse on the first o units."""

    def __init__(self, net, x, d):
        dt = torch.float64 if net.dtype == np.float64 else torch.float32
        n, m = net.n_hidden, net.n_in
        self.rnn = torch.nn.RNN(m, n, nonlinearity="tanh", bias=True).to(dt)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.from_numpy(net.W_in))
            self.rnn.weight_hh_l0.copy_(torch.from_numpy(net.W_rec))
            self.rnn.bias_ih_l0.copy_(torch.from_numpy(net.b))
            self.rnn.bias_hh_l0.zero_()
        self.x = torch.from_numpy(x)
        self.d = torch.from_numpy(d)
        self.units = torch.from_numpy(net.out_units)

    def __call__(self):
        self.rnn.zero_grad(set_to_none=True)
        out, _ = self.rnn(self.x)
        loss = 0.5 * ((out[..., self.units] - self.d) ** 2).sum()
        loss.backward()
        return (float(loss.detach()), self.rnn.weight_ih_l0.grad.numpy(), self.rnn.weight_hh_l0.grad.numpy(),
                self.rnn.bias_ih_l0.grad.numpy())


class TorchRTRL:
    """RTRL with batched torch.matmul (no autograd): P (B, n, n*J) per step, as SPEC §5."""

    def __init__(self, net, x, d):
        import fastrnn
        h, _ = fastrnn.forward(net, x)
        self.T, self.B, self.m = x.shape
        self.n = net.n_hidden
        self.J = self.m + 1 + self.n
        t = torch.from_numpy
        self.W_rec = t(net.W_rec)
        self.z = t(np.concatenate([x, np.ones(x.shape[:2] + (1,), x.dtype), h[:-1]], axis=2))
        self.dphi = t(1 - h[1:] ** 2)
        g = np.zeros_like(h[1:])
        g[..., net.out_units] = h[1:][..., net.out_units] - d
        self.g = t(g)
        self.loss = 0.5 * float(((h[1:][..., net.out_units] - d) ** 2).sum())

    def __call__(self):
        B, n, J = self.B, self.n, self.J
        P = torch.zeros((B, n, n * J), dtype=self.W_rec.dtype)
        dW = torch.zeros(n * J, dtype=self.W_rec.dtype)
        idx = torch.arange(n)
        with torch.no_grad():
            for t in range(self.T):
                P = torch.matmul(self.W_rec, P)
                P4 = P.view(B, n, n, J)
                P4[:, idx, idx, :] += self.z[t][:, None, :]
                P *= self.dphi[t][:, :, None]
                dW += torch.einsum("bk,bkc->c", self.g[t], P)
        dW = dW.view(n, J).numpy()
        m = self.m
        return self.loss, dW[:, :m], dW[:, m + 1:], dW[:, m]


# -- JAX ---------------------------------------------------------------------------------------
def _jax_loss(params, x, d, units):
    W_in, W_rec, b = params
    proj = jnp.einsum("tbm,nm->tbn", x, W_in) + b

    def step(h, p_t):
        h = jnp.tanh(p_t + h @ W_rec.T)
        return h, h

    _, hs = jax.lax.scan(step, jnp.zeros((x.shape[1], W_rec.shape[0]), x.dtype), proj)
    return 0.5 * jnp.sum((hs[..., units] - d) ** 2)


class JaxBPTT:
    """jit(value_and_grad) of the loss over lax.scan (reverse-mode autodiff = BPTT)."""

    def __init__(self, net, x, d):
        self.params = tuple(jnp.asarray(a) for a in (net.W_in, net.W_rec, net.b))
        self.x, self.d = jnp.asarray(x), jnp.asarray(d)
        self.units = jnp.asarray(net.out_units)
        self.fn = jax.jit(jax.value_and_grad(_jax_loss))

    def __call__(self):
        loss, (gi, gr, gb) = self.fn(self.params, self.x, self.d, self.units)
        gb.block_until_ready()
        return float(loss), np.asarray(gi), np.asarray(gr), np.asarray(gb)


def _jax_rtrl(W_rec, z, dphi, g):
    T, B, J = z.shape
    n = W_rec.shape[0]
    eye = jnp.eye(n, dtype=z.dtype)

    def step(carry, inputs):
        P, dW = carry                        # P (B, n, n, J)
        z_t, s_t, g_t = inputs
        P = jnp.einsum("kl,blij->bkij", W_rec, P) + eye[None, :, :, None] * z_t[:, None, None, :]
        P = P * s_t[:, :, None, None]
        dW = dW + jnp.einsum("bk,bkij->ij", g_t, P)
        return (P, dW), None

    init = (jnp.zeros((B, n, n, J), z.dtype), jnp.zeros((n, J), z.dtype))
    (_, dW), _ = jax.lax.scan(step, init, (z, dphi, g))
    return dW


class JaxRTRL(TorchRTRL):
    """RTRL inside lax.scan, jit-compiled (the forward pass precomputed as for the others)."""

    def __init__(self, net, x, d):
        import fastrnn
        h, _ = fastrnn.forward(net, x)
        self.m = x.shape[2]
        self.W_rec = jnp.asarray(net.W_rec)
        self.z = jnp.asarray(np.concatenate([x, np.ones(x.shape[:2] + (1,), x.dtype), h[:-1]], axis=2))
        self.dphi = jnp.asarray(1 - h[1:] ** 2)
        g = np.zeros_like(h[1:])
        g[..., net.out_units] = h[1:][..., net.out_units] - d
        self.g = jnp.asarray(g)
        self.loss = 0.5 * float(((h[1:][..., net.out_units] - d) ** 2).sum())
        self.fn = jax.jit(_jax_rtrl)

    def __call__(self):
        dW = np.asarray(self.fn(self.W_rec, self.z, self.dphi, self.g).block_until_ready())
        m = self.m
        return self.loss, dW[:, :m], dW[:, m + 1:], dW[:, m]


# -- the gated cells ----------------------------------------------------------------------------
class TorchGated:
    """torch.nn.LSTM / torch.nn.GRU + autograd: forward and backward of the summed mse on the first
    o units."""

    def __init__(self, net, x, d):
        dt = torch.float64 if net.dtype == np.float64 else torch.float32
        self.module = getattr(torch.nn, net.cell.upper())(net.n_in, net.n_hidden).to(dt)
        self.module.load_state_dict(net.to_torch_state_dict())
        self.x, self.d = torch.from_numpy(x), torch.from_numpy(d)
        self.units = torch.from_numpy(net.out_units)

    def __call__(self):
        self.module.zero_grad(set_to_none=True)
        out, _ = self.module(self.x)
        loss = 0.5 * ((out[..., self.units] - self.d) ** 2).sum()
        loss.backward()
        m = self.module
        return (float(loss.detach()), m.weight_ih_l0.grad.numpy(), m.weight_hh_l0.grad.numpy(),
                m.bias_ih_l0.grad.numpy())


def _jax_lstm_loss(params, x, d, units):
    W_ih, W_hh, b = params
    n = W_hh.shape[1]
    proj = jnp.einsum("tbm,rm->tbr", x, W_ih) + b

    def step(carry, p_t):
        h, c = carry
        a = p_t + h @ W_hh.T
        i, f = jax.nn.sigmoid(a[:, :n]), jax.nn.sigmoid(a[:, n:2 * n])
        g, o = jnp.tanh(a[:, 2 * n:3 * n]), jax.nn.sigmoid(a[:, 3 * n:])
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((x.shape[1], n), x.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), proj)
    return 0.5 * jnp.sum((hs[..., units] - d) ** 2)


class JaxLSTM(JaxBPTT):
    """jit(value_and_grad) of the LSTM loss over lax.scan (one bias: b_ih + b_hh)."""

    def __init__(self, net, x, d):
        self.params = tuple(jnp.asarray(a) for a in (net.W_ih, net.W_hh, net.b_ih + net.b_hh))
        self.x, self.d = jnp.asarray(x), jnp.asarray(d)
        self.units = jnp.asarray(net.out_units)
        self.fn = jax.jit(jax.value_and_grad(_jax_lstm_loss))


def _jax_gru_loss(params, x, d, units):
    W_ih, W_hh, b_ih, b_hh = params
    n = W_hh.shape[1]
    proj = jnp.einsum("tbm,rm->tbr", x, W_ih) + b_ih

    def step(h, p_t):
        a = h @ W_hh.T + b_hh
        r = jax.nn.sigmoid(p_t[:, :n] + a[:, :n])
        z = jax.nn.sigmoid(p_t[:, n:2 * n] + a[:, n:2 * n])
        c = jnp.tanh(p_t[:, 2 * n:] + r * a[:, 2 * n:])
        h = (1 - z) * c + z * h
        return h, h

    _, hs = jax.lax.scan(step, jnp.zeros((x.shape[1], n), x.dtype), proj)
    return 0.5 * jnp.sum((hs[..., units] - d) ** 2)


class JaxGRU(JaxBPTT):
    """jit(value_and_grad) of the GRU loss over lax.scan."""

    def __init__(self, net, x, d):
        self.params = tuple(jnp.asarray(a) for a in (net.W_ih, net.W_hh, net.b_ih, net.b_hh))
        self.x, self.d = jnp.asarray(x), jnp.asarray(d)
        self.units = jnp.asarray(net.out_units)
        self.fn = jax.jit(jax.value_and_grad(_jax_gru_loss))

    def __call__(self):
        loss, (dW_ih, dW_hh, db_ih, _) = self.fn(self.params, self.x, self.d, self.units)
        return float(loss), np.asarray(dW_ih), np.asarray(dW_hh), np.asarray(db_ih)
