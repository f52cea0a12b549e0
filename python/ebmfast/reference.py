"""Plain-NumPy reference implementations: the specification and the test oracle.

Every compiled kernel has its twin here, written for clarity rather than speed and
computed in float64. The twins draw their uniforms from the same Philox4x32-10 stream
(DESIGN.md §3), so a kernel and its reference see identical random numbers and their
sampled states agree except where float rounding moves a probability across a uniform.

The speed baseline of the benchmarks is *not* this module but plain NumPy written the
obvious way (see ``ebmfast.bench``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- Philox

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)

# Stream ids: one per purpose (csrc/common/philox.h holds the same list).
STREAM_VISIBLE = 0
STREAM_HIDDEN = 1
STREAM_INIT = 2
STREAM_SHUFFLE = 3
STREAM_PROPOSAL = 4
STREAM_ACCEPT = 5
STREAM_SWAP = 6
STREAM_LAYER = 16  # DBM layer l samples use stream STREAM_LAYER + l (visibles: l = 0)


def philox4x32_10(counter, key) -> np.ndarray:
    """Philox4x32-10 on broadcastable counters.

    Parameters
    ----------
    counter : array-like, shape (..., 4), uint32 words (c0, c1, c2, c3)
    key : array-like, shape (2,), uint32 words (k0, k1)

    Returns
    -------
    np.ndarray, shape (..., 4), uint32
    """
    ctr = np.asarray(counter, dtype=np.uint64)
    c0, c1, c2, c3 = (ctr[..., i].copy() for i in range(4))
    k0, k1 = (int(k) & 0xFFFFFFFF for k in key)
    for _ in range(10):
        p0 = PHILOX_M0 * c0
        p1 = PHILOX_M1 * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)
        c1 = p1 & _MASK32
        c3 = p0 & _MASK32
        c0, c2 = n0, n2
        k0 = (k0 + PHILOX_W0) & 0xFFFFFFFF
        k1 = (k1 + PHILOX_W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def uniforms(seed: int, stream: int, chain, step: int, unit) -> np.ndarray:
    """The uniform u(seed, stream, chain, step, unit) in [0, 1), float32, broadcasting
    ``chain`` against ``unit``: key = seed, counter = (unit // 4, chain, step, stream),
    word ``unit % 4``, u = (word >> 8) * 2**-24."""
    seed = int(seed)
    chain = np.asarray(chain, dtype=np.uint64)
    unit = np.asarray(unit, dtype=np.uint64)
    chain, unit = np.broadcast_arrays(chain, unit)
    ctr = np.stack(
        [unit >> np.uint64(2), chain,
         np.full(chain.shape, step, np.uint64), np.full(chain.shape, stream, np.uint64)],
        axis=-1,
    )
    words = philox4x32_10(ctr, (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF))
    w = np.take_along_axis(words, (unit & np.uint64(3)).astype(np.intp)[..., None], axis=-1)[..., 0]
    return ((w >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)


def uniform_grid(seed: int, stream: int, step: int, n_chains: int, n_units: int,
                 chain_offset: int = 0) -> np.ndarray:
    """Uniforms u[chain, unit] for chains chain_offset.. and units 0..n_units-1, shape
    (n_chains, n_units): what a kernel that samples a (n_chains, n_units) layer sees."""
    chains = np.arange(chain_offset, chain_offset + n_chains, dtype=np.uint64)[:, None]
    return uniforms(seed, stream, chains, step, np.arange(n_units, dtype=np.uint64)[None, :])


# --------------------------------------------------------------------------- math

def sigmoid(z):
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def logsumexp(a, axis=None):
    a = np.asarray(a, dtype=np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())[()]


# --------------------------------------------------------------------------- RBM layers

def layer_forward(X, M, bias, beta: float, stream: int, seed: int, step: int,
                  chain_offset: int = 0):
    """z = beta * X.M + bias; returns (z, sigmoid(z), Bernoulli sample) with the sample's
    uniforms u(seed, stream, chain_offset + row, step, unit).

    X: (rows, n_in), M: (n_in, n_out), bias: (n_out,). z and p float64, sample float32.
    """
    X = np.asarray(X, dtype=np.float64)
    z = beta * (X @ np.asarray(M, dtype=np.float64)) + np.asarray(bias, dtype=np.float64)
    p = sigmoid(z)
    u = uniform_grid(seed, stream, step, X.shape[0], z.shape[1], chain_offset)
    return z, p, (u < p).astype(np.float32)


def layer_update(inputs, bias, beta: float, stream: int, seed: int, step: int,
                 chain_offset: int = 0):
    """The shared layer update "layer l from its neighbours": z = beta * sum_k X_k.M_k +
    bias over ``inputs`` = [(X_below, W_l), (X_above, W_{l+1}^T)] (one or two pairs, each
    M_k of shape (n_in_k, n_out)); returns (z, sigmoid(z), Bernoulli sample) as
    ``layer_forward`` does. The RBM's two directions are the one-neighbour case."""
    inputs = list(inputs)
    if not 1 <= len(inputs) <= 2:
        raise ValueError("inputs must hold one or two (X, M) pairs")
    bias = np.asarray(bias, dtype=np.float64)
    acc = np.zeros((np.asarray(inputs[0][0]).shape[0], bias.shape[0]))
    for X, M in inputs:
        acc += np.asarray(X, dtype=np.float64) @ np.asarray(M, dtype=np.float64)
    z = beta * acc + bias
    p = sigmoid(z)
    u = uniform_grid(seed, stream, step, z.shape[0], z.shape[1], chain_offset)
    return z, p, (u < p).astype(np.float32)


def dbm_gibbs(Ws, biases, states, n_sweeps: int, seed: int, step: int, *, beta: float = 1.0,
              clamp_visible: bool = False, chain_offset: int = 0):
    """Two-block Gibbs sweeps of a DBM (layers x_0..x_L, W_l of shape (n_{l-1}, n_l)):
    odd layers given even, then even given odd; layer l of sweep t samples with stream
    STREAM_LAYER + l at step ``step + t``. p ∝ exp(-beta E): the biases are scaled too.
    Returns the new list of states (float32)."""
    states = [np.asarray(x, np.float32).copy() for x in states]
    L = len(Ws)
    for t in range(n_sweeps):
        for parity in (1, 0):
            for l in range(parity, L + 1, 2):
                if l == 0 and clamp_visible:
                    continue
                inputs = []
                if l > 0:
                    inputs.append((states[l - 1], Ws[l - 1]))
                if l < L:
                    inputs.append((states[l + 1], np.asarray(Ws[l]).T))
                _, _, states[l] = layer_update(inputs, beta * np.asarray(biases[l], np.float64),
                                               beta, STREAM_LAYER + l, seed, step + t,
                                               chain_offset)
    return states


def gibbs(W, b, c, V, k: int, beta: float, seed: int, step: int, chain_offset: int = 0):
    """k steps v -> h -> v; step t uses Philox step ``step + t`` (hidden and visible
    streams). Returns (V, H) after the last step. Biases enter as given (the model
    scales them by beta itself for p ∝ exp(-beta E))."""
    V = np.asarray(V, dtype=np.float32)
    H = None
    for t in range(k):
        _, _, H = layer_forward(V, W, c, beta, STREAM_HIDDEN, seed, step + t, chain_offset)
        _, _, V = layer_forward(H, np.asarray(W).T, b, beta, STREAM_VISIBLE, seed, step + t,
                                chain_offset)
    return V, H


@dataclass
class CDResult:
    dW: np.ndarray      # (n_v, n_h) <v p(h|v)>_data - <v p(h|v)>_model
    db: np.ndarray      # (n_v,)
    dc: np.ndarray      # (n_h,)
    chain: np.ndarray   # (n_chain, n_v) negative-phase visibles after k steps
    recon: float        # mean over the batch of ||v0 - p(v | p(h|v0))||^2


def cd_gradient(W, b, c, V0, k: int, seed: int, step: int, chain=None) -> CDResult:
    """CD-k (chain None: the chains start at the data) or PCD-k (chain: persistent
    visibles) gradient, hidden side by p(h|v) (DESIGN.md §4). Steps step..step+k-1."""
    V0 = np.asarray(V0, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    ph0 = sigmoid(V0 @ W + c)
    if chain is None:
        u = uniform_grid(seed, STREAM_HIDDEN, step, V0.shape[0], W.shape[1])
        H = (u < ph0).astype(np.float32)
        _, _, V = layer_forward(H, W.T, b, 1.0, STREAM_VISIBLE, seed, step)
        if k > 1:
            V, _ = gibbs(W, b, c, V, k - 1, 1.0, seed, step + 1)
    else:
        V, _ = gibbs(W, b, c, chain, k, 1.0, seed, step)
    V = np.asarray(V, dtype=np.float64)
    phk = sigmoid(V @ W + c)
    dW = V0.T @ ph0 / V0.shape[0] - V.T @ phk / V.shape[0]
    db = V0.mean(axis=0) - V.mean(axis=0)
    dc = ph0.mean(axis=0) - phk.mean(axis=0)
    pv = sigmoid(ph0 @ W.T + b)
    recon = float(np.sum((V0 - pv) ** 2) / V0.shape[0])
    return CDResult(dW, db, dc, V.astype(np.float32), recon)


def momentum_update(param, velocity, grad, learning_rate: float, momentum: float,
                    weight_decay: float = 0.0):
    """velocity = momentum*velocity + lr*(grad - weight_decay*param); param += velocity.
    Returns new (param, velocity); weight decay is applied to W only (pass 0 for biases)."""
    velocity = momentum * np.asarray(velocity, np.float64) + learning_rate * (
        np.asarray(grad, np.float64) - weight_decay * np.asarray(param, np.float64))
    return np.asarray(param, np.float64) + velocity, velocity


# --------------------------------------------------------------------------- scores

def free_energy(W, b, c, V) -> np.ndarray:
    """F(v) = -b.v - sum_j softplus(c_j + (vW)_j), float64, shape (rows,)."""
    V = np.asarray(V, dtype=np.float64)
    return -V @ np.asarray(b, np.float64) - softplus(V @ np.asarray(W, np.float64) + c).sum(axis=1)


def pseudo_log_likelihood(W, b, c, V) -> np.ndarray:
    """sum_i log p(v_i | v_-i) = sum_i log sigmoid(F(v^(i)) - F(v)), v^(i) = v with bit i
    flipped; float64, shape (rows,)."""
    V = np.asarray(V, dtype=np.float64)
    F = free_energy(W, b, c, V)
    total = np.zeros(V.shape[0])
    for i in range(V.shape[1]):
        Vi = V.copy()
        Vi[:, i] = 1.0 - Vi[:, i]
        total += -softplus(-(free_energy(W, b, c, Vi) - F))
    return total


def all_states(n: int) -> np.ndarray:
    """All 2**n binary vectors, shape (2**n, n), float64; row r is r in binary, unit 0
    the least significant bit."""
    r = np.arange(2**n, dtype=np.int64)[:, None]
    return ((r >> np.arange(n)) & 1).astype(np.float64)


def log_partition_exact(W, b, c) -> float:
    """log Z of a Bernoulli RBM by enumerating the smaller layer (float64)."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    c = np.asarray(c, np.float64)
    if W.shape[0] <= W.shape[1]:   # sum over v: log Z = logsumexp_v [b.v + sum_j softplus(c + vW)]
        V = all_states(W.shape[0])
        return float(logsumexp(V @ b + softplus(V @ W + c).sum(axis=1)))
    H = all_states(W.shape[1])
    return float(logsumexp(H @ c + softplus(H @ W.T + b).sum(axis=1)))


def visible_distribution(W, b, c) -> np.ndarray:
    """Exact p(v) over all 2**n_v visible states (order of ``all_states``)."""
    V = all_states(np.asarray(W).shape[0])
    logp = -free_energy(W, b, c, V)
    return np.exp(logp - logsumexp(logp))


def exact_log_likelihood_gradient(W, b, c, V0):
    """d/dθ of the mean log-likelihood of V0, by enumeration over v (small n_v):
    (<v p(h|v)>_data - <v p(h|v)>_model, <v>_data - <v>_model, <p(h|v)>_data - <p(h|v)>_model)."""
    W = np.asarray(W, np.float64)
    V0 = np.asarray(V0, np.float64)
    V = all_states(W.shape[0])
    p = visible_distribution(W, b, c)
    ph0 = sigmoid(V0 @ W + c)
    phm = sigmoid(V @ W + c)
    dW = V0.T @ ph0 / V0.shape[0] - (V * p[:, None]).T @ phm
    db = V0.mean(axis=0) - p @ V
    dc = ph0.mean(axis=0) - p @ phm
    return dW, db, dc


# --------------------------------------------------------------------------- spin chains
# Spins are +-1. sample_ising follows dimod's sign: E(s) = h.s + sum_{i<j} J_ij s_i s_j with
# J held symmetric here (Jsym = J_upper + J_upper^T), so the local field g = h + Jsym s gives
# the cost of flipping s_i: dE = -2 s_i g_i.

def ising_energy(h, Jsym, S) -> np.ndarray:
    """E(s) = h.s + 1/2 s^T Jsym s per row of S, float64."""
    S = np.asarray(S, dtype=np.float64)
    Jsym = np.asarray(Jsym, dtype=np.float64)
    return S @ np.asarray(h, np.float64) + 0.5 * np.einsum("ri,ri->r", S @ Jsym, S)


def _flip_decision(s, g, u, beta: float, gibbs: bool):
    """Metropolis: u < exp(min(-beta dE, 0)) with -beta dE = 2 beta g s. Heat bath:
    s_new = +1 iff u < 1 / (1 + exp(2 beta g)); a flip where s_new differs from s."""
    if gibbs:
        p_up = 1.0 / (1.0 + np.exp(np.clip(2.0 * beta * g, -700, 700)))
        return (u < p_up) != (s > 0)
    return u < np.exp(np.minimum(2.0 * beta * g * s, 0.0))


def ising_sweeps(h, Jsym, S, betas, *, gibbs: bool, seed: int, step: int, chain_offset: int = 0,
                 random_order: bool = False, clamped=None):
    """Single-site sweeps on the chains S (rows, +-1): sweep t has inverse temperature
    betas[t] and Philox step ``step + t``. Sequential order visits sites 0..n-1 and site i
    uses unit i of STREAM_ACCEPT; random order makes n visits, visit k going to site
    floor(u n) (unit k of STREAM_PROPOSAL, float32 product) with unit k of STREAM_ACCEPT.
    Clamped sites never move. Returns (S_new int8, flips per chain)."""
    h = np.asarray(h, np.float64)
    Jsym = np.asarray(Jsym, np.float64)
    S = np.array(S, dtype=np.float64)
    rows, n = S.shape
    clamped = np.zeros(n, bool) if clamped is None else np.asarray(clamped, bool)
    flips = np.zeros(rows, np.int64)
    G = S @ Jsym + h
    r = np.arange(rows)
    for t, beta in enumerate(np.asarray(betas, np.float64)):
        U = uniform_grid(seed, STREAM_ACCEPT, step + t, rows, n, chain_offset).astype(np.float64)
        if random_order:
            picks = uniform_grid(seed, STREAM_PROPOSAL, step + t, rows, n, chain_offset)
            sites = np.minimum(n - 1, (picks * np.float32(n)).astype(np.int64))
        for k in range(n):
            i = sites[:, k] if random_order else np.full(rows, k)
            s, g = S[r, i], G[r, i]
            flip = _flip_decision(s, g, U[:, k], float(beta), gibbs) & ~clamped[i]
            d = np.where(flip, -2.0 * s, 0.0)
            S[r, i] += d
            G += d[:, None] * Jsym[i]
            flips += flip
    return S.astype(np.int8), flips


# Boltzmann machine ({0,1} units, E = -1/2 y^T W y - b^T y), sampled in its Ising form
# J = -W/4, h = -b/2 - sum_j W_ij / 4 (dimod's sign, the ising_sweeps above).

def bm_step(W, b, vW, vb, D, chains, *, n_observed: int, seed: int, step: int,
            clamped_sweeps: int, free_sweeps: int, learning_rate: float, momentum: float,
            weight_decay: float, restart_chain_offset: int = 2**20):
    """One Boltzmann-machine update, the phases one after the other (the spec of the fused
    kernel ``_core.bm_step``). Clamped phase: the batch D (rows, n_observed) on the first
    units, the others from STREAM_INIT at (row, step) (u < 0.5: on), then
    ``clamped_sweeps`` heat-bath sweeps over them at steps step.. (none without hidden
    units). Free phase, from step f = step + the clamped sweeps: the persistent ``chains``
    (n_chains, n) {0,1}, or (None) the batch with the other units from STREAM_INIT at
    (restart_chain_offset + row, f); ``free_sweeps`` sweeps over all units. Then dW =
    <y y^T>_P - <y y^T>_Q (zero diagonal), db = <y>_P - <y>_Q, velocity = momentum *
    velocity + lr * (grad - weight_decay * W), W = sym(W + velocity) with a zero diagonal.
    Returns (P, Q, dW, db, W_new, b_new, vW_new, vb_new), P and Q the {0,1} final states."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    D = np.asarray(D, np.float64)
    n = W.shape[0]
    h, Jsym = -0.5 * b - 0.25 * W.sum(axis=1), -0.25 * W
    rows = D.shape[0]
    cs = clamped_sweeps if n_observed < n else 0
    P = (uniform_grid(seed, STREAM_INIT, step, rows, n) < 0.5).astype(np.float64)
    P[:, :n_observed] = D
    if cs:
        S, _ = ising_sweeps(h, Jsym, 2 * P - 1, np.ones(cs), gibbs=True, seed=seed, step=step,
                            clamped=np.arange(n) < n_observed)
        P = (S > 0).astype(np.float64)
    f = step + cs
    if chains is None:
        Q = (uniform_grid(seed, STREAM_INIT, f, rows, n, restart_chain_offset) < 0.5).astype(np.float64)
        Q[:, :n_observed] = D
    else:
        Q = np.asarray(chains, np.float64)
    S, _ = ising_sweeps(h, Jsym, 2 * Q - 1, np.ones(free_sweeps), gibbs=True, seed=seed, step=f)
    Q = (S > 0).astype(np.float64)
    dW = P.T @ P / rows - Q.T @ Q / Q.shape[0]
    np.fill_diagonal(dW, 0.0)
    db = P.mean(axis=0) - Q.mean(axis=0)
    W_new, vW_new = momentum_update(W, vW, dW, learning_rate, momentum, weight_decay)
    b_new, vb_new = momentum_update(b, vb, db, learning_rate, momentum)
    np.fill_diagonal(W_new, 0.0)
    return P, Q, dW, db, 0.5 * (W_new + W_new.T), b_new, vW_new, vb_new


# 2-D lattice (lecture sign): E = -J sum_<ij> s_i s_j - h sum_i s_i on a periodic L x L grid.
# Checkerboard sweeps: colour c = (i + j) % 2; half-sweep c of sweep t uses Philox step
# step + 2t + c, and the site (i, j) of that colour draws unit i*(L/2) + j//2.

def lattice_energy(S, J: float, h: float) -> np.ndarray:
    """Total energy per chain of S (chains, L, L), float64."""
    S = np.asarray(S, np.float64)
    bonds = (S * np.roll(S, 1, axis=1)).sum(axis=(1, 2)) + (S * np.roll(S, 1, axis=2)).sum(axis=(1, 2))
    return -J * bonds - h * S.sum(axis=(1, 2))


def lattice_sweeps(S, betas, *, J: float, h: float, seed: int, step: int, chain_offset: int = 0,
                   gibbs: bool = False):
    """Checkerboard Metropolis (or heat-bath) sweeps of S (chains, L, L) +-1, L even.
    Returns (S_new int8, flips per chain)."""
    S = np.array(S, dtype=np.float64)
    chains, L, _ = S.shape
    ii, jj = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    units = (ii * (L // 2) + jj // 2).ravel()
    flips = np.zeros(chains, np.int64)
    for t, beta in enumerate(np.asarray(betas, np.float64)):
        for c in (0, 1):
            colour = ((ii + jj) % 2 == c)
            nb = (np.roll(S, 1, 1) + np.roll(S, -1, 1) + np.roll(S, 1, 2) + np.roll(S, -1, 2))
            U = uniforms(seed, STREAM_ACCEPT, np.arange(chain_offset, chain_offset + chains)[:, None],
                         step + 2 * t + c, units[None, :]).astype(np.float64).reshape(chains, L, L)
            field = J * nb + h  # E contribution of s_i is -s_i * field
            if gibbs:
                p_up = 1.0 / (1.0 + np.exp(-2.0 * beta * field))
                flip = (U < p_up) != (S > 0)
            else:
                flip = U < np.exp(np.minimum(-2.0 * beta * field * S, 0.0))
            flip &= colour[None]
            S = np.where(flip, -S, S)
            flips += flip.sum(axis=(1, 2))
    return S.astype(np.int8), flips


# --------------------------------------------------------------------------- continuous MCMC
#
# Random-walk Metropolis-Hastings (RWMH), MALA and unadjusted Langevin (ULA) on chains
# x (n_chains, d); the spec of csrc/cpu/mcmc_chains.cpp and csrc/cuda/mcmc_chains.cu.
#
# Randomness at global step s = step_offset + t (t counts burn-in and sampling steps
# alike), chain c = chain_offset + row:
#   z[c, i] = sqrt(-2 ln(1 - u(PROPOSAL, c, s, 2i))) * cos(2 pi u(PROPOSAL, c, s, 2i + 1))
#     (Box-Muller on units 2i, 2i + 1; 1 - u lies in (0, 1] and is exact in float32, so
#     the log never sees 0 and the largest |z| is sqrt(2 ln 2**24) = 5.77);
#   acceptance uniform a[c] = u(ACCEPT, c, s, 0); accept iff a < exp(log alpha).
# Step size eps is the standard deviation of the proposal noise for all three samplers:
#   RWMH  y = x + eps z
#   MALA  y = x - (eps^2 / 2) grad E(x) + eps z,
#         log alpha = E(x) - E(y) + |z|^2 / 2 - |x - y + (eps^2/2) grad E(y)|^2 / (2 eps^2)
#   ULA   x' = x - (eps^2 / 2) grad E(x) + eps z   (always taken; Langevin time step
#         h = eps^2 / 2, i.e. the Euler-Maruyama step of dx = -grad E dt + sqrt(2) dW)
# Adaptation (RWMH/MALA, burn-in steps only, per chain, Robbins-Monro on log eps):
#   log eps <- log eps + (k + 1)^-0.6 * (min(1, exp(log alpha)) - target), k = index of
#   the burn-in step, clamped to [MCMC_LOG_EPS_MIN, MCMC_LOG_EPS_MAX]; eps is stored in
#   float32 after every update (as the kernels keep it).

MCMC_SAMPLERS = ("rwmh", "mala", "ula")
MCMC_TARGET_ACCEPT = {"rwmh": 0.234, "mala": 0.574, "ula": None}
MCMC_ADAPT_EXPONENT = 0.6
MCMC_LOG_EPS_MIN = -20.0  # eps in [2e-9, 2.2e4]: keeps a chain that rejects everything
MCMC_LOG_EPS_MAX = 10.0   # (or accepts everything) from under/overflowing its step


def mcmc_noise(seed: int, step: int, n_chains: int, d: int, chain_offset: int = 0) -> np.ndarray:
    """Standard normal proposal noise z (n_chains, d), float64, of global step ``step``."""
    u = uniform_grid(seed, STREAM_PROPOSAL, step, n_chains, 2 * d, chain_offset).astype(np.float64)
    return np.sqrt(-2.0 * np.log(1.0 - u[:, 0::2])) * np.cos(2.0 * np.pi * u[:, 1::2])


def mcmc_accept_uniform(seed: int, step: int, n_chains: int, chain_offset: int = 0) -> np.ndarray:
    """Acceptance uniforms a (n_chains,), float64, of global step ``step``."""
    return uniform_grid(seed, STREAM_ACCEPT, step, n_chains, 1, chain_offset)[:, 0].astype(np.float64)


# Built-in energies in float64: each returns (E (n,), grad (n, d)) for X (n, d).

def energy_gaussian(X, mean, precision):
    """E = 1/2 (x - mu)^T P (x - mu); ``precision`` is (d,) (diagonal) or (d, d)."""
    X = np.asarray(X, np.float64)
    r = X - np.asarray(mean, np.float64)
    P = np.asarray(precision, np.float64)
    g = r * P if P.ndim == 1 else r @ P.T
    return 0.5 * np.sum(r * g, axis=1), g


def energy_mixture(X, weights, means, sigmas):
    """E = -log sum_k w_k N(x; mu_k, diag sigma_k^2) (normalized: exp(-E) is the density).
    weights (K,), means (K, d), sigmas (K, d)."""
    X = np.asarray(X, np.float64)
    mu = np.asarray(means, np.float64)
    s = np.asarray(sigmas, np.float64)
    w = np.asarray(weights, np.float64)
    d = X.shape[1]
    iv = 1.0 / (s * s)
    const = np.log(w) - np.sum(np.log(s), axis=1) - 0.5 * d * np.log(2.0 * np.pi)  # (K,)
    diff = X[:, None, :] - mu[None, :, :]                                          # (n, K, d)
    logc = const[None, :] - 0.5 * np.sum(diff * diff * iv[None], axis=2)           # (n, K)
    lse = logsumexp(logc, axis=1)
    r = np.exp(logc - lse[:, None])
    return -lse, np.sum(r[:, :, None] * diff * iv[None], axis=1)


def energy_double_well(X, a):
    """E = a (x_0^2 - 1)^2 + 1/2 sum_{i>0} x_i^2."""
    X = np.asarray(X, np.float64)
    x0 = X[:, 0]
    g = X.copy()
    g[:, 0] = 4.0 * a * x0 * (x0 * x0 - 1.0)
    return a * (x0 * x0 - 1.0) ** 2 + 0.5 * np.sum(X[:, 1:] ** 2, axis=1), g


def energy_rosenbrock(X, a, b, scale):
    """E = (1/scale) sum_{i<d-1} [b (x_{i+1} - x_i^2)^2 + (a - x_i)^2] (d >= 2)."""
    X = np.asarray(X, np.float64)
    xi, xn = X[:, :-1], X[:, 1:]
    t = xn - xi * xi
    g = np.zeros_like(X)
    g[:, :-1] += -4.0 * b * xi * t - 2.0 * (a - xi)
    g[:, 1:] += 2.0 * b * t
    return np.sum(b * t * t + (a - xi) ** 2, axis=1) / scale, g / scale


def energy_rbm_free(X, W, b, c, confine: float = 0.0):
    """F(v) = -b.v - sum_j softplus(c_j + (v W)_j) + confine/2 |v|^2,
    grad = -b - W sigmoid(c + v W) + confine v."""
    X = np.asarray(X, np.float64)
    W = np.asarray(W, np.float64)
    z = X @ W + np.asarray(c, np.float64)
    return -X @ np.asarray(b, np.float64) - np.sum(softplus(z), axis=1) \
        + 0.5 * confine * np.sum(X * X, axis=1), \
        -np.asarray(b, np.float64)[None, :] - sigmoid(z) @ W.T + confine * X


@dataclass
class ChainRun:
    samples: np.ndarray      # (n_kept, n_chains, d) states after every thin-th sampling step
    energies: np.ndarray     # (n_kept, n_chains) float64
    x: np.ndarray            # (n_chains, d) final states
    step_size: np.ndarray    # (n_chains,) final step sizes
    n_accept: np.ndarray     # (n_chains,) int64 accepted proposals in the sampling phase
    accepted: np.ndarray     # (burn_in + n_steps, n_chains) bool decision of every step


def mcmc_chains(sampler: str, energy_grad, X0, step_size, n_steps: int, seed: int, *,
                burn_in: int = 0, adapt: bool = True, thin: int = 1, step_offset: int = 0,
                chain_offset: int = 0, adapt_offset: int = 0, dtype=np.float64,
                noise=None, accept_uniform=None) -> ChainRun:
    """RWMH / MALA / ULA chains on the shared Philox stream (the spec above).

    energy_grad(X (n, d)) -> (E (n,), grad (n, d)); grad may be None for RWMH.
    step_size: scalar or (n_chains,). ``burn_in`` steps first (adapting eps when ``adapt``
    and the sampler has an acceptance step; ``adapt_offset`` is the index k of the first
    one), then ``n_steps`` sampling steps, recording after every ``thin``-th.
    ``dtype``: arithmetic of the states (float64 for the spec; the CPU callable path runs
    the user's dtype). ``noise(step, n, d)`` / ``accept_uniform(step, n)`` replace the
    NumPy Philox draws by equal values from elsewhere (the compiled stream).
    """
    if sampler not in MCMC_SAMPLERS:
        raise ValueError(f"sampler must be one of {MCMC_SAMPLERS}")
    noise = noise or (lambda s, n, d: mcmc_noise(seed, s, n, d, chain_offset))
    accept_uniform = accept_uniform or (lambda s, n: mcmc_accept_uniform(seed, s, n, chain_offset))
    x = np.array(X0, dtype=dtype, copy=True)
    n, d = x.shape
    eps = np.broadcast_to(np.asarray(step_size, np.float32), (n,)).copy()
    target = MCMC_TARGET_ACCEPT[sampler]
    n_kept = n_steps // thin
    samples = np.empty((n_kept, n, d), dtype)
    energies = np.empty((n_kept, n), np.float64)
    n_accept = np.zeros(n, np.int64)
    accepted = np.zeros((burn_in + n_steps, n), bool)
    e_x, g_x = energy_grad(x)
    for t in range(burn_in + n_steps):
        s = step_offset + t
        z = noise(s, n, d).astype(dtype)
        h = eps.astype(dtype)[:, None]
        if sampler == "ula":
            x = x - (0.5 * h * h) * g_x + h * z
            e_x, g_x = energy_grad(x)
            acc = np.ones(n, bool)
        else:
            y = x + h * z if sampler == "rwmh" else x - (0.5 * h * h) * g_x + h * z
            e_y, g_y = energy_grad(y)
            log_alpha = np.asarray(e_x, np.float64) - np.asarray(e_y, np.float64)
            if sampler == "mala":
                back = (x - y + (0.5 * h * h) * g_y).astype(np.float64)
                log_alpha = log_alpha + 0.5 * np.sum(np.asarray(z, np.float64) ** 2, axis=1) \
                    - np.sum(back * back, axis=1) / (2.0 * eps.astype(np.float64) ** 2)
            with np.errstate(over="ignore", invalid="ignore"):
                alpha = np.exp(np.minimum(log_alpha, 0.0))
                acc = accept_uniform(s, n) < np.exp(log_alpha)
            x = np.where(acc[:, None], y, x)
            e_x = np.where(acc, e_y, e_x)
            if g_y is not None:
                g_x = np.where(acc[:, None], g_y, g_x)
            if t < burn_in and adapt:
                gain = (adapt_offset + t + 1.0) ** -MCMC_ADAPT_EXPONENT
                alpha = np.where(np.isnan(alpha), 0.0, alpha)
                log_eps = np.clip(np.log(eps.astype(np.float64)) + gain * (alpha - target),
                                  MCMC_LOG_EPS_MIN, MCMC_LOG_EPS_MAX)
                eps = np.exp(log_eps).astype(np.float32)
        accepted[t] = acc
        if t >= burn_in:
            k = t - burn_in
            n_accept += acc
            if (k + 1) % thin == 0:
                samples[k // thin] = x
                energies[k // thin] = e_x
    return ChainRun(samples, energies, x, eps, n_accept, accepted)


# --------------------------------------------------------------------------- Hopfield
# Spins +-1, lecture sign: E(y) = -1/2 y^T W y - b.y with W symmetric, zero diagonal; the
# field z = W y + b. Asynchronous updates y_i <- +1 if z_i > 0, -1 if z_i < 0, unchanged if
# z_i = 0 (each flip lowers E by 2 |z_i|, so async recall always reaches a fixed point).

def hopfield_energy(W, b, Y) -> np.ndarray:
    """E(y) = -1/2 y^T W y - b.y per row of Y, float64."""
    Y = np.asarray(Y, np.float64)
    return -0.5 * np.einsum("ri,ri->r", Y @ np.asarray(W, np.float64), Y) - Y @ np.asarray(b, np.float64)


def hopfield_hebbian(patterns) -> np.ndarray:
    """W = (1/K) sum_p y_p y_p^T with a zero diagonal, patterns (K, n) +-1."""
    Y = np.asarray(patterns, np.float64)
    W = Y.T @ Y / Y.shape[0]
    np.fill_diagonal(W, 0.0)
    return W


def hopfield_pseudoinverse(patterns) -> np.ndarray:
    """Projection rule W = Y^T (Y Y^T)^+ Y (the projector onto the span of the patterns),
    zero diagonal."""
    Y = np.asarray(patterns, np.float64)
    W = Y.T @ np.linalg.pinv(Y @ Y.T) @ Y
    np.fill_diagonal(W, 0.0)
    return W


def hopfield_recall(W, b, Y, max_sweeps: int, *, random_order: bool = False, seed: int = 0,
                    step: int = 0):
    """Asynchronous recall of the cues Y (rows, +-1). Before each sweep a cue that is a fixed
    point (no y_i z_i < 0) stops; otherwise sweep t visits 0..n-1 (sequential) or n sites
    floor(u n), u = unit k of STREAM_PROPOSAL at (cue, step + t), float32 product (random).
    Returns (Y int8, sweeps int32, converged bool) per cue."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    Y = np.array(Y, dtype=np.float64)
    rows, n = Y.shape
    Z = Y @ W + b
    r = np.arange(rows)
    active = np.ones(rows, bool)
    sweeps = np.full(rows, max_sweeps, np.int32)
    converged = np.zeros(rows, bool)
    for t in range(max_sweeps + 1):
        stop = active & ~np.any(Y * Z < 0, axis=1)
        sweeps[stop] = t
        converged[stop] = True
        active &= ~stop
        if not active.any() or t == max_sweeps:
            break
        if random_order:
            picks = uniform_grid(seed, STREAM_PROPOSAL, step + t, rows, n)
            sites = np.minimum(n - 1, (picks * np.float32(n)).astype(np.int64))
        for k in range(n):
            i = sites[:, k] if random_order else np.full(rows, k)
            y, z = Y[r, i], Z[r, i]
            flip = active & (y * z < 0)
            d = np.where(flip, -2.0 * y, 0.0)
            Y[r, i] += d
            Z += d[:, None] * W[i]
    return Y.astype(np.int8), sweeps, converged
