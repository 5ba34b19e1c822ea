"""Beyond O(n⁴), for the simple cell, in plain NumPy: the exact fixed-size-storage algorithm and
three approximate online rules. Written to be read, loop by loop, not to be fast.

Notation as in SPEC §5: W = [W_in | b | W_rec] (n, J), J = m + 1 + n, z_t = [x_t; 1; h_{t-1}],
s_t = φ'(a_t), g_t = ∂L_t/∂h_t the error injected into the state at step t (B sequences, batch
axis first). Every function here holds the weights fixed over the sequence and returns the loss
and the gradient estimate summed over the steps, or with ``per_step=True`` the list of per-step
estimates (dicts W_in, W_rec, b).

**Fixed-size storage, exact (Schmidhuber 1992; Williams & Zipser 1995's hybrid).** Cut time into
blocks of L steps, t0 < t ≤ t1. Inside a block, one backward sweep carries n + 1 adjoint rows: the
rows of the identity (the sensitivity of every unit of h_{t1}) and the block's loss row. At each
step t = t1 … t0 + 1 the rows Λ become pre-activation adjoints Δ_t = Λ ⊙ s_t (the loss row first
receives g_t) and move back through Λ ← Δ_t W_rec. At the block's start Λ holds
Φ = ∂h_{t1}/∂h_{t0} (rows 0..n−1) and λ = ∂L_block/∂h_{t0} (row n). Then

    ∂L/∂W    += Σ_t Δ_t[n] ⊗ z_t  +  λᵀ P_{t0}            (the block's own BPTT, plus its past)
    P_{t1}    = Φ P_{t0}  +  Σ_t Δ_t[0..n−1] ⊗ z_t         (the carry across the block)

which is exactly RTRL's gradient (the weights change only at block ends). Per block: L products of
(n+1)×n by n×n, one (n+1)n×L by L×J product for the direct terms, one (n+1)×n by n×nJ carry:
O(n³) per step for L ≈ n, against RTRL's O(n⁴), with storage of L states plus P (n²J).

**SnAp-1 (Menick et al. 2021).** Keep only the sensitivities a parameter has after one step: W[i, j]
touches only unit i, so P[k, i, j] is kept for k = i. The update restricted to that pattern:
J_t[i, j] = s_t[i] (W_rec[i, i] J_{t−1}[i, j] + z_t[j]), gradient g_t[i] J_t[i, j]. Exact RTRL when
W_rec is diagonal. O(n·J) memory, O(n·J) work per step.

**UORO (Tallec & Ollivier 2018).** A rank-one unbiased estimate P ≈ ũ θ̃ᵀ (ũ ∈ Rⁿ, θ̃ ∈ R^{n×J}).
With fresh random signs ν ∈ {±1}ⁿ each step, D = diag(s_t) W_rec, and the one-step sensitivity
ν ⋅ ∂F/∂W = (ν ⊙ s_t) ⊗ z_t:

    ρ0 = sqrt(‖θ̃‖ / ‖D ũ‖),   ρ1 = sqrt(‖(ν ⊙ s_t) ⊗ z_t‖ / ‖ν‖)     (ε added to every norm)
    ũ ← ρ0 D ũ + ρ1 ν,         θ̃ ← θ̃ / ρ0 + ((ν ⊙ s_t) ⊗ z_t) / ρ1
    gradient estimate (g_t ⋅ ũ) θ̃

E_ν[ũ θ̃ᵀ] equals P_t, so the estimate is unbiased. O(n·J) memory, O(n²+nJ) work per step.

**RFLO (Murray 2019).** Random-feedback local online learning: an eligibility trace of the
one-step sensitivity, P_t[i, j] = (1 − 1/τ) P_{t−1}[i, j] + (1/τ) s_t[i] z_t[j], and the output
error fed back to the units by a fixed matrix: gradient (B e_t)[i] P_t[i, j]. Our cell has no leak,
so τ = 1 by default. ``feedback="readout"`` uses B e_t = g_t itself (the readout's transpose);
``feedback="random"`` a fixed random matrix (n × o, entries N(0, 1/o)) applied to the readout
error. With τ = 1, readout feedback and W_rec = 0 it is the exact gradient.
"""
import numpy as np

from .common import defaults, readout, readout_grads, step_loss
from .rnn import phi_prime, run


def _split(dW, m):
    return {"W_in": dW[..., :m].copy(), "b": dW[..., m].copy(), "W_rec": dW[..., m + 1:].copy()}


def _setup(net, x, d, mask, loss, h0):
    T, B, m = x.shape
    h0, mask = defaults(net, x, d, mask, h0, loss)
    a, h, fed = run(net, x, h0)
    L, g, _, _ = readout_grads(net, h, d, mask, loss)
    z = np.concatenate([x, np.ones((T, B, 1), dtype=net.dtype), h[:-1]], axis=2)   # z_t, t = 1..T
    s = phi_prime(a, net.activation)
    return L, g, z, s, h, mask


def fss(net, x, d, mask=None, loss="mse", h0=None, block=None):
    """Exact gradient by fixed-size storage with blocks of ``block`` steps (default n)."""
    T, B, m = x.shape
    n = net.n_hidden
    J = m + 1 + n
    L_total, g, z, s, _, _ = _setup(net, x, d, mask, loss, h0)
    block = block or n
    P = np.zeros((B, n, n, J), dtype=net.dtype)
    dW = np.zeros((n, J), dtype=net.dtype)
    for t0 in range(0, T, block):
        t1 = min(t0 + block, T)
        Lam = np.zeros((B, n + 1, n), dtype=net.dtype)
        Lam[:, :n, :] = np.eye(n)
        deltas = {}
        for t in range(t1, t0, -1):               # step t uses z[t-1], s[t-1], g[t-1]
            Lam[:, n, :] += g[t - 1]
            delta = Lam * s[t - 1][:, None, :]
            deltas[t] = delta
            Lam = delta @ net.W_rec
        Phi, lam = Lam[:, :n, :], Lam[:, n, :]
        for t in range(t0 + 1, t1 + 1):
            dW += np.einsum("bi,bj->ij", deltas[t][:, n, :], z[t - 1])
        dW += np.einsum("bl,blij->ij", lam, P)
        direct = np.zeros((B, n, n, J), dtype=net.dtype)
        for t in range(t0 + 1, t1 + 1):
            direct += np.einsum("bki,bj->bkij", deltas[t][:, :n, :], z[t - 1])
        P = np.einsum("bkl,blij->bkij", Phi, P) + direct
    return L_total, _split(dW, m)


def snap1(net, x, d, mask=None, loss="mse", h0=None, per_step=False):
    """SnAp-1: the sensitivities P[i, i, j] alone."""
    T, B, m = x.shape
    n = net.n_hidden
    L, g, z, s, _, _ = _setup(net, x, d, mask, loss, h0)
    diag = np.diag(net.W_rec)
    Jt = np.zeros((B, n, m + 1 + n), dtype=net.dtype)
    steps = []
    for t in range(T):
        for i in range(n):
            Jt[:, i, :] = s[t][:, i:i + 1] * (diag[i] * Jt[:, i, :] + z[t])
        steps.append(_split(np.einsum("bi,bij->ij", g[t], Jt), m))
    return L, steps if per_step else _sum(steps)


def uoro(net, x, d, mask=None, loss="mse", h0=None, seed=0, per_step=False, eps=1e-7):
    """UORO's rank-one estimate, with the random signs drawn from ``seed``."""
    T, B, m = x.shape
    n = net.n_hidden
    L, g, z, s, _, _ = _setup(net, x, d, mask, loss, h0)
    rng = np.random.default_rng(seed)
    u = np.zeros((B, n), dtype=net.dtype)
    theta = np.zeros((B, n, m + 1 + n), dtype=net.dtype)
    steps = []
    for t in range(T):
        nu = rng.choice([-1.0, 1.0], size=(B, n)).astype(net.dtype)
        new_u, new_theta = np.zeros_like(u), np.zeros_like(theta)
        est = np.zeros((n, m + 1 + n), dtype=net.dtype)
        for b in range(B):
            Du = s[t][b] * (net.W_rec @ u[b])
            direct = np.outer(nu[b] * s[t][b], z[t][b])
            rho0 = np.sqrt((np.linalg.norm(theta[b]) + eps) / (np.linalg.norm(Du) + eps))
            rho1 = np.sqrt((np.linalg.norm(direct) + eps) / (np.linalg.norm(nu[b]) + eps))
            new_u[b] = rho0 * Du + rho1 * nu[b]
            new_theta[b] = theta[b] / rho0 + direct / rho1
            est += (g[t][b] @ new_u[b]) * new_theta[b]
        u, theta = new_u, new_theta
        steps.append(_split(est, m))
    return L, steps if per_step else _sum(steps)


def rflo_feedback(net, feedback, seed=0):
    """The feedback matrix of RFLO: None for "readout" (B e = g), else a fixed random (n, o) one."""
    if feedback == "readout":
        return None
    rng = np.random.default_rng(seed)
    o = net.n_out
    return (rng.standard_normal((net.n_hidden, o)) / np.sqrt(o)).astype(net.dtype)


def rflo(net, x, d, mask=None, loss="mse", h0=None, feedback="readout", tau=1.0, seed=0, per_step=False):
    """RFLO: an eligibility trace of s_t[i] z_t[j], the error fed back by ``feedback``."""
    T, B, m = x.shape
    n = net.n_hidden
    L, g, z, s, h, mask = _setup(net, x, d, mask, loss, h0)
    Bfb = rflo_feedback(net, feedback, seed)
    P = np.zeros((B, n, m + 1 + n), dtype=net.dtype)
    steps = []
    for t in range(T):
        P = (1 - 1 / tau) * P + (1 / tau) * s[t][:, :, None] * z[t][:, None, :]
        if Bfb is None:
            err = g[t]
        else:
            r, y = readout(net, h[t + 1])
            err = step_loss(net, r, y, d[t], mask[t], loss)[1] @ Bfb.T       # B e_t, e = ∂L_t/∂r_t
        steps.append(_split(np.einsum("bi,bij->ij", err, P), m))
    return L, steps if per_step else _sum(steps)


def _sum(steps):
    out = {k: np.zeros_like(v) for k, v in steps[0].items()}
    for step in steps:
        for k, v in step.items():
            out[k] += v
    return out
