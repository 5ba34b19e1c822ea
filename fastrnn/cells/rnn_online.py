"""Beyond O(n⁴) for the simple cell: the exact fixed-size-storage gradient (over a sequence and
online) and the approximate online rules SnAp-1, UORO and RFLO.

The update rules are written out, with their sources, in ``fastrnn.reference.online``; this module
computes the same things vectorised over the batch with BLAS-shaped products. The forward step is
the simple cell's kernel (``kernels.forward``), so every method sees the same states.
"""
import numpy as np

from ..checks import Forcing
from ..errors import OptionError
from ..kernels import ACTIVATIONS, _forward
from ..runtime import memory, workspace
from ..runtime.dispatch import Work, call
from .base import OnlineCell, Run, panel_buffer, split_columns

_PARAMS = ("W_in", "W_rec", "b")


def slopes(net, h):
    """s = φ'(a) from the states h = φ(a) (any shape)."""
    act = net.activation
    if act == "tanh":
        return 1 - h * h
    if act == "logistic":
        return h * (1 - h)
    if act == "relu":
        return (h > 0).astype(h.dtype)
    return np.ones_like(h)


def block_length(net, block):
    """The block of the fixed-size-storage method: ``block`` or, by default, J = m + 1 + n.

    The cost per step is c0 + c1/L: the sweep and the direct terms cost O(n³) per step whatever L,
    the carry Φ P costs O(n⁴) per block (measured at n = 64, T = 256: L = 16, 32, 64, 128, 256
    took 30, 18, 17, 13, 12 ms). Longer blocks are cheaper, but their adjoints take L·(n+1)·n
    numbers and an online learner waits L steps for each gradient. The default is the longest
    block whose adjoints fit in the room of the sensitivities themselves (n·n·J): L = J, about n
    (Schmidhuber's fixed-size storage), where every term is O(n³) per step."""
    if block is None:
        return max(1, net.n_in + 1 + net.n_hidden)
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise OptionError(f"block must be None or an integer >= 1, got {block!r}")
    return int(block)


class FixedSizeStorage:
    """The block algorithm of ``fastrnn.reference.online.fss`` for B sequences: ``P`` (B, n, n·J)
    carried across blocks, and one block's update at a time."""

    def __init__(self, net, B, L, reuse=False):
        n = net.n_hidden
        J = net.n_in + 1 + n
        dtype = np.dtype(net.dtype)
        memory.check((B * n * n * J + B * L * (n + 1) * n + 2 * (n + 1) * n * J) * dtype.itemsize,
                     f"fixed-size-storage RTRL with n={n}, m={net.n_in}, B={B}, block {L} in {dtype.name} "
                     f"(B·n·n·J = {B}·{n}·{n}·{J} numbers of sensitivities, B·L·(n+1)·n of block adjoints)",
                     "a smaller batch, fewer units, a shorter block, or fastrnn.bptt")
        self.n, self.J = n, J
        # fresh large arrays cost page faults on first touch: every buffer is allocated once here
        # (and, for a whole-sequence call, kept in the per-thread workspace between calls)
        make = (lambda name, shape: workspace.scratch(f"fss {name}", shape, dtype)) if reuse else \
               (lambda name, shape: np.empty(shape, dtype=dtype))
        self.P = make("P", (B, n, n * J))
        self.P[...] = 0
        self.deltas = make("deltas", (B, L, n + 1, n))
        self.direct = make("direct", (n + 1, n * J))
        self.carried = make("carried", (n + 1, n * J))

    def reset(self):
        self.P[...] = 0

    def block(self, W_rec, z, s, g):
        """One block: z (L, B, J), s and g (L, B, n) of its steps in order. Updates P to the
        block's end and returns the block's gradient dW (n, J)."""
        L, B, n = s.shape
        J = self.J
        lam = np.zeros((B, n + 1, n), dtype=s.dtype)
        lam[:, np.arange(n), np.arange(n)] = 1
        deltas = self.deltas[:, :L]                             # per sequence, steps in order
        for t in range(L - 1, -1, -1):                          # one (n+1)×n by n×n product per step
            lam[:, n, :] += g[t]
            step = deltas[:, t]
            np.multiply(lam, s[t][:, None, :], out=step)
            lam = step @ W_rec
        dW = np.zeros((n, J), dtype=s.dtype)
        direct = self.direct.reshape((n + 1) * n, J)
        for b in range(B):
            # the block's direct terms as one product: Σ_t Δ_t ⊗ z_t = Δᵀ (L × (n+1)n) by z (L × J)
            np.matmul(deltas[b].reshape(L, (n + 1) * n).T, np.ascontiguousarray(z[:, b, :]), out=direct)
            np.matmul(lam[b], self.P[b], out=self.carried)      # [Φ; λ] P_{t0}: (n+1)×n by n×nJ
            dW += (self.direct[n] + self.carried[n]).reshape(n, J)
            np.add(self.carried[:n], self.direct[:n], out=self.P[b])
        return dW


def fss_gradient(net, W, x, h, g, block):
    """The exact RTRL gradient of a whole sequence (fixed weights) by fixed-size storage:
    split columns of W = [W_in | b | W_rec]."""
    T, B, m = x.shape
    L = block_length(net, block)
    z = np.concatenate([x, np.ones((T, B, 1), dtype=net.dtype), h[:-1]], axis=2)
    s = slopes(net, h[1:])
    fss = FixedSizeStorage(net, B, min(L, T), reuse=True)
    dW = np.zeros((net.n_hidden, m + 1 + net.n_hidden), dtype=net.dtype)
    for t0 in range(0, T, L):
        t1 = min(t0 + L, T)
        dW += fss.block(W["W_rec"], z[t0:t1], s[t0:t1], g[t0:t1])
    return split_columns(dW, m, _PARAMS)


# -- online steppers --------------------------------------------------------------------------------
class _Stepper(OnlineCell):
    """What the simple cell's approximate online methods share: the state h and the forward step."""

    defers = False                    # True: propagate returns None until a block ends
    needs_readout_error = False       # True: the caller sets ``readout_error`` before propagate

    def __init__(self, net, batch):
        self.net = net
        self._h = np.empty((2, batch, net.n_hidden), dtype=net.dtype)

    @property
    def state(self):
        return (self._h[0],)

    def reset(self, state0):
        self._h[0] = state0[0]
        self._reset()

    def advance(self, W, x, forcing, threads):
        B, n = x.shape[1], self.net.n_hidden
        off = Forcing.off(self.net.dtype)
        work = Work(B, 2 * B * n * n, 1, W["W_rec"].nbytes)
        call(_forward, threads, work, x, W["W_in"], W["W_rec"], W["b"], self._h,
             ACTIVATIONS.index(self.net.activation), off.on, off.units, off.values, off.mask,
             panel_buffer(W["W_rec"].T, work, threads))
        return Run((self._h,))

    def _z_and_s(self, x):
        B = x.shape[1]
        z = np.concatenate([x[0], np.ones((B, 1), dtype=self.net.dtype), self._h[0]], axis=1)
        return z, slopes(self.net, self._h[1])

    def propagate(self, W, x, run, g, forcing, threads):
        z, s = self._z_and_s(x)
        dW = self._update(W, z, s, g[0], x)
        self._h[0] = self._h[1]
        return None if dW is None else split_columns(dW, self.net.n_in, _PARAMS)


class SnAp1(_Stepper):
    """SnAp-1: J (B, n, J) = the sensitivities P[i, i, j]."""

    def __init__(self, net, batch):
        super().__init__(net, batch)
        self.Jt = np.zeros((batch, net.n_hidden, net.n_in + 1 + net.n_hidden), dtype=net.dtype)

    def _reset(self):
        self.Jt[...] = 0

    def _update(self, W, z, s, g, x):
        diag = np.diag(W["W_rec"])
        self.Jt *= diag[None, :, None]
        self.Jt += z[:, None, :]
        self.Jt *= s[:, :, None]
        return np.einsum("bi,bij->ij", g, self.Jt)


class UORO(_Stepper):
    """UORO: ũ (B, n) and θ̃ (B, n, J), random signs from a Generator seeded with ``seed``."""

    EPS = 1e-7

    def __init__(self, net, batch, seed):
        super().__init__(net, batch)
        self.seed = seed
        self.u = np.zeros((batch, net.n_hidden), dtype=net.dtype)
        self.theta = np.zeros((batch, net.n_hidden, net.n_in + 1 + net.n_hidden), dtype=net.dtype)
        self._reset()

    def _reset(self):
        self.rng = np.random.default_rng(self.seed)
        self.u[...] = 0
        self.theta[...] = 0

    def _update(self, W, z, s, g, x):
        eps = self.EPS
        B, n = s.shape
        nu = self.rng.choice([-1.0, 1.0], size=(B, n)).astype(self.net.dtype)
        Du = s * (self.u @ W["W_rec"].T)
        direct = (nu * s)[:, :, None] * z[:, None, :]
        rho0 = np.sqrt((np.linalg.norm(self.theta.reshape(B, -1), axis=1) + eps) / (np.linalg.norm(Du, axis=1) + eps))
        rho1 = np.sqrt((np.linalg.norm(direct.reshape(B, -1), axis=1) + eps) / (np.linalg.norm(nu, axis=1) + eps))
        self.u = rho0[:, None] * Du + rho1[:, None] * nu
        self.theta = self.theta / rho0[:, None, None] + direct / rho1[:, None, None]
        return np.einsum("b,bij->ij", np.einsum("bi,bi->b", g, self.u), self.theta)


class RFLO(_Stepper):
    """RFLO: the eligibility trace P (B, n, J) and the feedback of the output error."""

    def __init__(self, net, batch, feedback, tau, seed):
        super().__init__(net, batch)
        from ..reference.online import rflo_feedback
        if feedback not in ("random", "readout"):
            raise OptionError(f"feedback={feedback!r} is not known: choose 'random' or 'readout'")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not np.isfinite(tau) or tau < 1:
            raise OptionError(f"tau must be a number >= 1 (1: no leak, as the simple cell), got {tau!r}")
        self.feedback, self.tau = feedback, float(tau)
        self.B_fb = rflo_feedback(net, feedback, seed)
        self.P = np.zeros((batch, net.n_hidden, net.n_in + 1 + net.n_hidden), dtype=net.dtype)
        self.readout_error = None          # set by the caller for feedback="random": ∂L_t/∂r_t (B, o)
        self.needs_readout_error = feedback == "random"

    def _reset(self):
        self.P[...] = 0

    def _update(self, W, z, s, g, x):
        keep = 1 - 1 / self.tau
        self.P *= keep
        self.P += (1 / self.tau) * s[:, :, None] * z[:, None, :]
        if self.B_fb is None:
            err = g
        elif self.readout_error is None:
            raise OptionError("RFLO with feedback='random' feeds back the readout's error: use step(x_t, d_t), "
                              "or feedback='readout' with advance/backward")
        else:
            err = self.readout_error @ self.B_fb.T
        self.readout_error = None
        return np.einsum("bi,bij->ij", err, self.P)


class FSSOnline(_Stepper):
    """Fixed-size storage online: the steps of the current block are kept (z, s, g); at the block's
    end its exact gradient is returned and P carried on; other steps return None."""

    def __init__(self, net, batch, block):
        super().__init__(net, batch)
        self.L = block_length(net, block)
        self.fss = FixedSizeStorage(net, batch, self.L)
        n, J = net.n_hidden, net.n_in + 1 + net.n_hidden
        self.z = np.empty((self.L, batch, J), dtype=net.dtype)
        self.s = np.empty((self.L, batch, n), dtype=net.dtype)
        self.g = np.empty((self.L, batch, n), dtype=net.dtype)
        self.count = 0
        self.weights = None
    defers = True                     # returns a gradient only at block ends

    def _reset(self):
        self.fss.reset()
        self.count = 0
        self.weights = None

    def _update(self, W, z, s, g, x):
        if self.count == 0:
            self.weights = {k: W[k].copy() for k in _PARAMS}      # the weights of this block
        elif any(not np.array_equal(W[k], self.weights[k]) for k in _PARAMS):
            raise OptionError("method='fss' holds the weights fixed inside a block of "
                              f"{self.L} steps: change them only when step() returns a gradient (at block ends)")
        self.W_rec = self.weights["W_rec"]
        k = self.count
        self.z[k], self.s[k], self.g[k] = z, s, g
        self.count += 1
        if self.count < self.L:
            return None
        self.count = 0
        return self.fss.block(self.W_rec, self.z, self.s, self.g)

    def flush(self):
        """The gradient of a partial last block (None if no step is pending)."""
        if self.count == 0:
            return None
        L, self.count = self.count, 0
        dW = self.fss.block(self.W_rec, self.z[:L], self.s[:L], self.g[:L])
        return split_columns(dW, self.net.n_in, _PARAMS)
