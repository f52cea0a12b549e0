"""Estimators of model quality: exact log Z by enumeration for small RBMs and DBMs, and annealed
importance sampling (AIS, Salakhutdinov & Murray 2008) for larger ones."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_MAX_EXACT_BITS = 25
_CHUNK = 1 << 14


def _log_sum_exp_chunks(scores_of, n_bits: int) -> float:
    """log sum_s exp(scores_of(S)) over all 2**n_bits binary rows S, in chunks."""
    total = -np.inf
    shifts = np.arange(n_bits, dtype=np.int64)
    for start in range(0, 2**n_bits, _CHUNK):
        r = np.arange(start, min(start + _CHUNK, 2**n_bits), dtype=np.int64)[:, None]
        S = ((r >> shifts) & 1).astype(np.float64)
        s = scores_of(S)
        m = max(total, float(s.max()))
        total = m + np.log(np.exp(total - m) + np.exp(s - m).sum())
    return float(total)


def _dbm_arrays(model):
    """float64 host copies of a DBM's weights and biases."""
    def host(a):
        return np.asarray(a.get() if hasattr(a, "get") else a, np.float64)
    return [host(W) for W in model.W_], [host(b) for b in model.biases_]


def _dbm_summed_out(Ws, bs, states, layers):
    """sum over the layers l in ``layers`` (whose neighbours are all in ``states``) of
    sum_j softplus(b_l + x_{l-1} W_l + x_{l+1} W_{l+1}^T): those layers summed out."""
    total = 0.0
    L = len(Ws)
    for l in layers:
        z = np.broadcast_to(bs[l], (next(iter(states.values())).shape[0], bs[l].size)).copy()
        if l > 0:
            z += states[l - 1] @ Ws[l - 1]
        if l < L:
            z += states[l + 1] @ Ws[l].T
        total = total + np.logaddexp(0.0, z).sum(axis=1)
    return total


def _dbm_log_partition(model, max_bits: int) -> float:
    """log Z of a DBM: layers of one parity are independent given the other, so enumerate
    the parity class with fewer units and sum the other out analytically."""
    Ws, bs = _dbm_arrays(model)
    sizes = [b.size for b in bs]
    classes = [list(range(0, len(sizes), 2)), list(range(1, len(sizes), 2))]
    enum = min(classes, key=lambda c: sum(sizes[l] for l in c))
    rest = [l for l in range(len(sizes)) if l not in enum]
    n = sum(sizes[l] for l in enum)
    if n > max_bits:
        raise ValueError(f"exact log Z of this DBM needs 2**{n} terms (its smaller parity class "
                         f"has {n} > max_bits = {max_bits} units); use a smaller model")

    def scores(S):
        states, start = {}, 0
        for l in enum:
            states[l] = S[:, start:start + sizes[l]]
            start += sizes[l]
        return sum(states[l] @ bs[l] for l in enum) + _dbm_summed_out(Ws, bs, states, rest)
    return _log_sum_exp_chunks(scores, n)


def _check_model(model, what: str, dbm_ok: bool = True):
    """The model kinds an estimator handles: the binary RBM (ebmfast.RBM) and, where
    ``dbm_ok``, the DBM. Anything else (a GaussianRBM, a BoltzmannMachine, None) is a
    TypeError: their W, b, c mean something else, so the RBM formula would be silently wrong."""
    from .dbm import DBM
    from .rbm import RBM
    kinds = (RBM, DBM) if dbm_ok else (RBM,)
    if not isinstance(model, kinds):
        names = "an ebmfast.RBM or ebmfast.DBM" if dbm_ok else "an ebmfast.RBM"
        raise TypeError(f"model of {what} must be {names}, got {type(model).__name__}")


def _check_max_bits(max_bits) -> int:
    from ._backend import check_int
    return check_int(max_bits, "max_bits", minimum=0, maximum=40)


def exact_log_likelihood(model, X, max_bits: int = _MAX_EXACT_BITS) -> np.ndarray:
    """Exact log p(v) per row of binary X (float64) for a small RBM or DBM: log p*(v) -
    log Z, with log p*(v) = -F(v) for an RBM; for a DBM the odd layers are enumerated and
    the even hidden layers summed out."""
    from ._backend import check_units
    from .dbm import DBM
    _check_model(model, "exact_log_likelihood")
    if not isinstance(model, DBM):  # binary rows only: log p(v) of probabilities means nothing
        V, _ = check_units(X, "X", model.n_visible, binary=True)
        log_z = exact_log_partition(model, max_bits)
        return np.asarray(model.free_energy(V), np.float64) * -1.0 - log_z
    log_z = exact_log_partition(model, max_bits)
    V, _ = model._check_data(X, binary=True)
    V = np.asarray(V.get() if hasattr(V, "get") else V, np.float64)
    Ws, bs = _dbm_arrays(model)
    sizes = [b.size for b in bs]
    odd = list(range(1, len(sizes), 2))
    even_hidden = list(range(2, len(sizes), 2))
    n = sum(sizes[l] for l in odd)
    if n > max_bits:
        raise ValueError(f"exact log p(v) of this DBM needs 2**{n} terms per row (max_bits = "
                         f"{max_bits}); use a smaller model")
    total = np.full(V.shape[0], -np.inf)
    shifts = np.arange(n, dtype=np.int64)
    for start in range(0, 2**n, _CHUNK):
        r = np.arange(start, min(start + _CHUNK, 2**n), dtype=np.int64)[:, None]
        S = ((r >> shifts) & 1).astype(np.float64)
        states, o = {}, 0
        for l in odd:
            states[l] = S[:, o:o + sizes[l]]
            o += sizes[l]
        # terms that do not involve v, per configuration; then v W_1 h_1 per (row, config)
        const = sum(states[l] @ bs[l] for l in odd) + _dbm_summed_out(Ws, bs, states, even_hidden)
        s = V @ (Ws[0] @ states[1].T) + const[None, :]
        m = np.maximum(total, s.max(axis=1))
        total = m + np.log(np.exp(total - m) + np.exp(s - m[:, None]).sum(axis=1))
    return V @ bs[0] + total - log_z


def exact_log_partition(model, max_bits: int = _MAX_EXACT_BITS) -> float:
    """log Z by enumeration in float64. RBM: over its smaller layer,
    log Z = log sum_h exp(c.h + sum_i softplus(b_i + (W h)_i)) (or the same over v). DBM:
    over its smaller parity class of layers, the other class summed out."""
    from .dbm import DBM
    _check_model(model, "exact_log_partition")
    max_bits = _check_max_bits(max_bits)
    if isinstance(model, DBM):
        return _dbm_log_partition(model, max_bits)
    W = np.asarray(model.W, np.float64)
    b = np.asarray(model.b, np.float64)
    c = np.asarray(model.c, np.float64)
    n_v, n_h = W.shape
    n = min(n_v, n_h)
    if n > max_bits:
        raise ValueError(f"exact log Z needs 2**{n} terms (min(n_visible, n_hidden) = {n} > "
                         f"max_bits = {max_bits}); use AIS for models this large")
    if n_h <= n_v:
        return _log_sum_exp_chunks(lambda H: H @ c + np.logaddexp(0.0, H @ W.T + b).sum(1), n_h)
    return _log_sum_exp_chunks(lambda V: V @ b + np.logaddexp(0.0, V @ W + c).sum(1), n_v)


# --------------------------------------------------------------------------- AIS

def default_ais_betas() -> np.ndarray:
    """Salakhutdinov & Murray's schedule: 0:1e-3:0.5, 0.5:1e-4:0.9, 0.9:1e-5:1
    (14,501 inverse temperatures from 0 to 1)."""
    return np.concatenate([np.arange(0.0, 0.5, 1e-3), np.arange(0.5, 0.9, 1e-4),
                           np.arange(0.9, 1.0, 1e-5), [1.0]])


@dataclass
class AISResult:
    """log Ẑ = log Z_A + log mean w; ``se`` is the delta-method standard error of log Ẑ
    (sd(w) / (sqrt(n) mean(w))), ``interval`` log Ẑ ± 3 se; ``ess`` the effective number
    of runs (sum w)^2 / sum w^2; ``log_weights`` one per run."""
    log_z: float
    se: float
    interval: tuple
    ess: float
    log_z_base: float
    log_weights: np.ndarray = field(repr=False)


def _base_rate_biases(data, n_visible: int, eps: float = 1e-3) -> np.ndarray:
    if data is None:
        return np.zeros(n_visible)
    from ._backend import check_units
    X, _ = check_units(data, "data", n_visible, binary=False)
    p = np.clip(X.mean(axis=0).astype(np.float64), eps, 1.0 - eps)
    return np.log(p / (1.0 - p))


def ais(model, n_runs: int = 100, betas=None, data=None, seed=None, *, reverse: bool = False,
        init_states=None) -> AISResult:
    """AIS estimate of log Z of an RBM (Salakhutdinov & Murray 2008).

    The base model has the RBM's hidden layer with zero weights and visible biases b_A
    fitted to ``data`` (the base-rate model; uniform without data). Intermediate model k
    has log f_k(v) = (1 - β_k) b_A.v + β_k b.v + Σ_j softplus(β_k (c_j + (vW)_j)); each
    step is one block-Gibbs transition v -> h -> v that leaves it invariant, run on the
    compiled Gibbs kernel for ``n_runs`` chains (Philox stream: the same seed gives the same
    estimate). ``betas``: increasing from 0 to 1 (default: ``default_ais_betas()``).

    ``reverse=True`` runs the schedule backwards from ``init_states`` (n_runs rows: samples
    of the model, e.g. ``rbm.sample``, or data for the RAISE-style variant of Burda et al.)
    and estimates Z_A / Z; log Z-hat = log Z_A - log mean w. Forward AIS underestimates
    log Z in expectation, reverse AIS from exact model samples overestimates it: together
    they bracket it.
    """
    from . import _core
    from ._backend import check_int, check_seed
    from ._backend import check_bool, check_memory
    from .reference import STREAM_INIT
    _check_model(model, "ais", dbm_ok=False)
    n_runs = check_int(n_runs, "n_runs", minimum=2, maximum=2**31 - 1)
    check_memory(24.0 * n_runs * (model.n_visible + model.n_hidden), f"ais(n_runs={n_runs})")
    seed = check_seed(seed)
    reverse = check_bool(reverse, "reverse")
    if betas is None:
        betas = default_ais_betas()
    else:
        try:
            betas = np.asarray(betas)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"betas must be a 1-D real array: {exc}") from None
        if betas.dtype == object or betas.dtype.kind not in "iuf":
            raise TypeError(f"betas must be a real array, got dtype {betas.dtype}")
        betas = betas.astype(np.float64)
        if betas.size >= 2**32:
            raise ValueError(f"betas has {betas.size} entries; at most 2**32 - 1")
    if betas.ndim != 1 or betas.size < 2 or betas[0] != 0.0 or betas[-1] != 1.0 \
            or np.any(np.diff(betas) < 0) or not np.isfinite(betas).all():
        raise ValueError("betas must increase from 0 to 1 (first 0, last 1)")
    W = np.asarray(model.W, np.float32)
    WT = np.ascontiguousarray(W.T)
    b = np.asarray(model.b, np.float64)
    c = np.asarray(model.c, np.float64)
    n_v, n_h = W.shape
    bA = _base_rate_biases(data, n_v)

    def log_fs(V, beta0, beta1):
        """log f at two inverse temperatures from one product V.W (the module's BLAS: NumPy's
        threads would keep spinning beside the Gibbs kernel)."""
        a = _core.matmul(V, W).astype(np.float64) + c
        V64 = V.astype(np.float64)
        lin_a, lin_b = V64 @ bA, V64 @ b
        return [(1.0 - t) * lin_a + t * lin_b + np.logaddexp(0.0, t * a).sum(axis=1)
                for t in (beta0, beta1)]

    def transition(V, k):  # one v -> h -> v step that leaves model k invariant
        beta = float(betas[k])
        bv = ((1.0 - beta) * bA + beta * b).astype(np.float32)
        ch = (beta * c).astype(np.float32)
        _core.gibbs(W, WT, bv, ch, V, None, 1, beta, seed, k, 0, None)

    K = betas.size - 1
    logw = np.zeros(n_runs)
    if not reverse:  # exact samples of the base model, then one transition per model
        u = _core.philox_uniforms(seed, STREAM_INIT, 0, n_runs, n_v, 0)
        V = (u < 1.0 / (1.0 + np.exp(-bA))).astype(np.float32)
        for k in range(1, K + 1):
            lo, hi = log_fs(V, betas[k - 1], betas[k])
            logw += hi - lo
            if k < K:
                transition(V, k)
    else:
        if init_states is None:
            raise ValueError("reverse AIS needs init_states (model samples or data), n_runs rows")
        from ._backend import check_units
        V, _ = check_units(init_states, "init_states", n_v, binary=True)
        if V.shape[0] != n_runs:
            raise ValueError(f"init_states must have n_runs = {n_runs} rows, got {V.shape[0]}")
        V = V.copy()
        for k in range(K, 0, -1):
            lo, hi = log_fs(V, betas[k - 1], betas[k])
            logw += lo - hi
            if k > 1:
                transition(V, k - 1)
    log_z_base = float(np.logaddexp(0.0, bA).sum() + n_h * np.log(2.0))
    m = logw.max()
    w = np.exp(logw - m)
    log_mean_w = m + float(np.log(w.mean()))
    log_z = log_z_base - log_mean_w if reverse else log_z_base + log_mean_w
    se = float(w.std(ddof=1) / (np.sqrt(n_runs) * w.mean()))
    return AISResult(log_z=log_z, se=se, interval=(log_z - 3 * se, log_z + 3 * se),
                     ess=float(w.sum() ** 2 / (w ** 2).sum()), log_z_base=log_z_base,
                     log_weights=logw)
