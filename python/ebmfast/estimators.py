"""Estimators of model quality: exact log Z by enumeration for small RBMs, DBMs, Boltzmann
machines and Ising models, and annealed importance sampling (AIS, Salakhutdinov & Murray
2008) for larger RBMs and DBMs."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_MAX_EXACT_BITS = 25
# Enumerations of at least this many softplus terms (states x summed-out units) take the
# compiled kernel (float32 fields and softplus, float64 log-sum-exp: |error| ~1e-5 nats at
# 784 x 25); smaller ones the float64 NumPy path.
_COMPILED_MIN_WORK = 1 << 24
_CHUNK = 1 << 14


def _log_sum_exp_chunks(scores_of, n_bits: int, chunk: int = _CHUNK) -> float:
    """log sum_s exp(scores_of(S)) over all 2**n_bits binary rows S, in chunks of ``chunk``
    rows (each chunk's products run on the BLAS threads; a running log-sum-exp joins them,
    so the result does not depend on the chunk size beyond float64 rounding)."""
    total = -np.inf
    shifts = np.arange(n_bits, dtype=np.int64)
    for start in range(0, 2**n_bits, chunk):
        r = np.arange(start, min(start + chunk, 2**n_bits), dtype=np.int64)[:, None]
        S = ((r >> shifts) & 1).astype(np.float64)
        s = scores_of(S)
        m = max(total, float(s.max()))
        total = m + np.log(np.exp(total - m) + np.exp(s - m).sum())
    return float(total)


def _host(a):
    """A host array of a model parameter (device arrays are copied back)."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a


def _dbm_arrays(model):
    """float64 host copies of a DBM's weights and biases."""
    return ([np.asarray(_host(W), np.float64) for W in model.W_],
            [np.asarray(_host(b), np.float64) for b in model.biases_])


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


def _check_model(model, what: str, kinds=("RBM", "DBM")):
    """The model kinds an estimator handles (class names of ebmfast models). Anything else
    (None, another library's object, a model whose W, b, c mean something else) is a
    TypeError: the RBM formula would be silently wrong for it."""
    from . import bm, dbm, gaussian_rbm, ising, rbm
    classes = {"RBM": rbm.RBM, "DBM": dbm.DBM, "GaussianRBM": gaussian_rbm.GaussianRBM,
               "BoltzmannMachine": bm.BoltzmannMachine, "IsingLattice2D": ising.IsingLattice2D}
    if not isinstance(model, tuple(classes[k] for k in kinds)):
        names = ", ".join(f"ebmfast.{k}" for k in kinds)
        raise TypeError(f"model of {what} must be one of {names}, got {type(model).__name__}")


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


def _quadratic_log_partition(J, h, *, spins: bool, max_bits: int, chunk: int = _CHUNK) -> float:
    """log sum_s exp(h.s + 1/2 s^T J s) over s in {0,1}^n (or {-1,+1}^n with ``spins``),
    J symmetric with zero diagonal, by chunked enumeration in float64."""
    J = np.asarray(J, np.float64)
    h = np.asarray(h, np.float64)
    n = h.size
    if n > max_bits:
        raise ValueError(f"exact log Z needs 2**{n} terms ({n} units > {max_bits}); "
                         "use a sampler-based estimate for models this large")

    def scores(S):
        X = 2.0 * S - 1.0 if spins else S
        return X @ h + 0.5 * np.einsum("ri,ri->r", X @ J, X)
    return _log_sum_exp_chunks(scores, n, chunk)


def _lattice_couplings(L: int, J: float) -> np.ndarray:
    """Dense symmetric couplings of the periodic L x L lattice, one J per bond (right and
    down neighbour of every site; on L = 2 the wrap-around bond doubles, as in the energy)."""
    n = L * L
    M = np.zeros((n, n))
    for r in range(L):
        for c in range(L):
            i = r * L + c
            for j in (r * L + (c + 1) % L, ((r + 1) % L) * L + c):
                M[i, j] += J
                M[j, i] += J
    return M


def exact_log_partition_ising(h, J, beta: float = 1.0, max_bits: int = _MAX_EXACT_BITS) -> float:
    """log Z = log sum_s exp(-beta E(s)) of an Ising model in ``sample_ising``'s (dimod's)
    convention E(s) = sum_i h_i s_i + sum_{i<j} J_ij s_i s_j, s in {-1,+1}^n, with h and J
    given as ``sample_ising`` takes them (dense, dict or scipy.sparse), by enumeration."""
    from ._backend import check_float
    from .ising import _couplings
    beta = check_float(beta, "beta")
    c = _couplings(h, J)
    if c.n > max_bits:
        raise ValueError(f"exact log Z needs 2**{c.n} terms ({c.n} spins > {max_bits})")
    h64, Jx = c.exact
    if c.dense is None:  # CSR of both triangles -> dense (n <= max_bits is small)
        D = np.zeros((c.n, c.n))
        rows = np.repeat(np.arange(c.n), np.diff(c.indptr))
        D[rows, c.indices] = Jx
        Jx = D
    return _quadratic_log_partition(-beta * np.asarray(Jx, np.float64), -beta * h64, spins=True,
                                    max_bits=max_bits)


_MAX_EXACT_BITS_GPU = 30


def _rbm_log_partition_cuda(W, b, c, max_bits: int, chunk: int = 1 << 16) -> float:
    """log Z of an RBM by enumerating its smaller layer on the GPU: each chunk of states is
    built on the device, its products with W come from the hand-written CUDA layer kernel
    (float32 products, as on the CPU path's table sums), softplus and the running
    log-sum-exp in float64 on the device."""
    import cupy as cp
    from ._layer_cuda import layer_update
    n_v, n_h = W.shape
    if n_h <= n_v:  # enumerate h: scores = c.h + sum_i softplus(b_i + (W h)_i)
        n, M, lin, other = n_h, np.ascontiguousarray(W.T, np.float32), c, b
    else:
        n, M, lin, other = n_v, np.ascontiguousarray(W, np.float32), b, c
    if n > max_bits:
        raise ValueError(f"exact log Z needs 2**{n} terms (> 2**{max_bits} on the GPU); use AIS")
    M_d = cp.asarray(M)
    lin_d = cp.asarray(lin, dtype=cp.float64)
    other_d = cp.asarray(other, dtype=cp.float64)
    zero = cp.zeros(M.shape[1], dtype=cp.float32)
    shifts = cp.arange(n, dtype=cp.int64)
    total = -np.inf
    for start in range(0, 2**n, chunk):
        r = cp.arange(start, min(start + chunk, 2**n), dtype=cp.int64)[:, None]
        S = ((r >> shifts) & 1).astype(cp.float32)
        f, _, _ = layer_update(S, M_d, zero, 1.0, stream=0, seed=0, step=0, want_field=True)
        sc = (S.astype(cp.float64) * lin_d).sum(axis=1) + \
            cp.logaddexp(0.0, f.astype(cp.float64) + other_d).sum(axis=1)
        m = max(total, float(sc.max()))
        total = m + float(np.log(np.exp(total - m) + float(cp.exp(sc - m).sum())))
    return float(total)


def exact_log_partition(model, max_bits: int | None = None, *, beta: float = 1.0,
                        device: str = "cpu") -> float:
    """log Z by enumeration in float64, for p ∝ exp(-beta E). RBM: over its smaller layer,
    log Z = log sum_h exp(c.h + sum_i softplus(b_i + (W h)_i)) (or the same over v). DBM:
    over its smaller parity class of layers, the other class summed out. BoltzmannMachine
    and IsingLattice2D (n = L^2 spins): over all states (n <= max_bits). ``max_bits``
    defaults to 25 (CPU) or 30 (``device="cuda"``, RBMs: the GPU enumerates the chunks)."""
    from ._backend import check_float
    from .bm import BoltzmannMachine
    from .dbm import DBM
    from .gaussian_rbm import GaussianRBM
    from .ising import IsingLattice2D
    from ._backend import resolve_device
    _check_model(model, "exact_log_partition",
                 kinds=("RBM", "DBM", "GaussianRBM", "BoltzmannMachine", "IsingLattice2D"))
    beta = check_float(beta, "beta")
    device = resolve_device(device, cuda_implemented=True)
    if max_bits is None:
        max_bits = _MAX_EXACT_BITS_GPU if device == "cuda" else _MAX_EXACT_BITS
    max_bits = _check_max_bits(max_bits)
    if device == "cuda":
        if type(model).__name__ != "RBM" or beta != 1.0:
            raise ValueError("device='cuda' enumerates RBMs (beta = 1); other models run on the CPU")
        return _rbm_log_partition_cuda(np.asarray(_host(model.W), np.float64), np.asarray(_host(model.b), np.float64),
                                       np.asarray(_host(model.c), np.float64), max_bits)
    if isinstance(model, GaussianRBM) and beta == 1.0:
        return model.log_partition()
    if isinstance(model, BoltzmannMachine):  # -E = 1/2 y^T W y + b.y
        return _quadratic_log_partition(beta * model.W, beta * model.b, spins=False,
                                        max_bits=max_bits)
    if isinstance(model, IsingLattice2D):  # -E = J sum_<ij> s_i s_j + h sum_i s_i
        return _quadratic_log_partition(beta * _lattice_couplings(model.L, model.J),
                                        np.full(model.L ** 2, beta * model.h), spins=True,
                                        max_bits=max_bits)
    if isinstance(model, DBM):
        if beta != 1.0:
            raise ValueError("beta != 1 is supported for Ising models and Boltzmann machines")
        return _dbm_log_partition(model, max_bits)
    if beta != 1.0:
        raise ValueError("beta != 1 is supported for Ising models and Boltzmann machines")
    W = np.asarray(_host(model.W), np.float64)
    b = np.asarray(_host(model.b), np.float64)
    c = np.asarray(_host(model.c), np.float64)
    n_v, n_h = W.shape
    n = min(n_v, n_h)
    if n > max_bits:
        raise ValueError(f"exact log Z needs 2**{n} terms (min(n_visible, n_hidden) = {n} > "
                         f"max_bits = {max_bits}); use AIS for models this large")
    if 2**n * max(n_v, n_h) >= _COMPILED_MIN_WORK:  # the compiled Gray-code walk
        from . import _core
        if n_h <= n_v:
            return _core.enumerate_log_partition(np.ascontiguousarray(W.T, np.float32), c,
                                                 b.astype(np.float32))
        return _core.enumerate_log_partition(np.ascontiguousarray(W, np.float32), b,
                                             c.astype(np.float32))
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
        init_states=None, device: str = "cpu") -> AISResult:
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

    Also for a ``DBM`` (on the model's device; ``init_states`` one array per layer) and a
    ``GaussianRBM`` (CPU). ``device="cuda"`` runs an RBM's chains on the GPU (the CUDA layer
    kernel, the same Philox stream as the CPU: the runs agree sample for sample up to
    float rounding); the weights are copied to the GPU, the result is the same AISResult.
    """
    from . import _core
    from ._backend import check_int, check_seed
    from ._backend import check_bool, check_memory
    from .dbm import DBM
    from .reference import STREAM_INIT
    _check_model(model, "ais", kinds=("RBM", "DBM", "GaussianRBM"))
    n_runs = check_int(n_runs, "n_runs", minimum=2, maximum=2**31 - 1)
    units = sum(model.layer_sizes) if isinstance(model, DBM) else model.n_visible + model.n_hidden
    check_memory(24.0 * n_runs * units, f"ais(n_runs={n_runs})")
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
    if isinstance(model, DBM):
        logw, log_z_base = _ais_dbm_weights(model, n_runs, betas, data, seed, reverse, init_states)
        return _ais_result(logw, log_z_base, reverse)
    from .gaussian_rbm import GaussianRBM
    if isinstance(model, GaussianRBM):
        logw, log_z_base = _ais_gaussian_weights(model, n_runs, betas, data, seed, reverse,
                                                 init_states)
        return _ais_result(logw, log_z_base, reverse)
    from ._backend import resolve_device
    device = resolve_device(device, cuda_implemented=True)
    W = np.asarray(_host(model.W), np.float32)
    WT = np.ascontiguousarray(W.T)
    b = np.asarray(_host(model.b), np.float64)
    c = np.asarray(_host(model.c), np.float64)
    n_v, n_h = W.shape
    bA = _base_rate_biases(data, n_v)
    xp = np
    if device == "cuda":
        import cupy as xp
        from ._layer_cuda import layer_update
        W_d, WT_d = xp.asarray(W), xp.asarray(WT)
        b_d, c_d, bA_d = xp.asarray(b), xp.asarray(c), xp.asarray(bA)
        zeros_h = xp.zeros(n_h, dtype=xp.float32)

    def log_fs(V, beta0, beta1):
        """log f at two inverse temperatures from one product V.W (CPU: the module's BLAS,
        NumPy's threads would keep spinning beside the Gibbs kernel; GPU: the layer kernel)."""
        if device == "cuda":
            a = layer_update(V, W_d, zeros_h, 1.0, stream=0, seed=0, step=0,
                             want_field=True)[0].astype(xp.float64) + c_d
            V64 = V.astype(xp.float64)
            lin_a, lin_b = V64 @ bA_d, V64 @ b_d
        else:
            a = _core.matmul(V, W).astype(np.float64) + c
            V64 = V.astype(np.float64)
            lin_a, lin_b = V64 @ bA, V64 @ b
        return [(1.0 - t) * lin_a + t * lin_b + xp.logaddexp(0.0, t * a).sum(axis=1)
                for t in (beta0, beta1)]

    def transition(V, k):  # one v -> h -> v step that leaves model k invariant
        beta = float(betas[k])
        bv = ((1.0 - beta) * bA + beta * b).astype(np.float32)
        ch = (beta * c).astype(np.float32)
        if device == "cuda":  # the same streams and steps as _core.gibbs
            from .reference import STREAM_HIDDEN, STREAM_VISIBLE
            _, _, H = layer_update(V, W_d, xp.asarray(ch), beta, stream=STREAM_HIDDEN, seed=seed,
                                   step=k, want_sample=True)
            layer_update(H, WT_d, xp.asarray(bv), beta, stream=STREAM_VISIBLE, seed=seed, step=k,
                         want_sample=True, out_sample=V)
        else:
            _core.gibbs(W, WT, bv, ch, V, None, 1, beta, seed, k, 0, None)

    K = betas.size - 1
    logw = xp.zeros(n_runs)
    if not reverse:  # exact samples of the base model, then one transition per model
        u = _core.philox_uniforms(seed, STREAM_INIT, 0, n_runs, n_v, 0)
        V = xp.asarray((u < 1.0 / (1.0 + np.exp(-bA))).astype(np.float32))
        for k in range(1, K + 1):
            lo, hi = log_fs(V, betas[k - 1], betas[k])
            logw += hi - lo
            if k < K:
                transition(V, k)
    else:
        if init_states is None:
            raise ValueError("reverse AIS needs init_states (model samples or data), n_runs rows")
        from ._backend import check_units
        if device == "cuda":
            from ._layer_cuda import check_device_units
            V, _ = check_device_units(xp.asarray(init_states), "init_states", n_v, binary=True)
        else:
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
    return _ais_result(np.asarray(logw.get() if device == "cuda" else logw), log_z_base, reverse)


def _ais_result(logw: np.ndarray, log_z_base: float, reverse: bool) -> AISResult:
    """log Ẑ from the log importance weights: log Z_A + log mean w (forward) or
    log Z_A - log mean w (reverse), with the delta-method standard error."""
    n_runs = logw.size
    m = logw.max()
    w = np.exp(logw - m)
    log_mean_w = m + float(np.log(w.mean()))
    log_z = log_z_base - log_mean_w if reverse else log_z_base + log_mean_w
    se = float(w.std(ddof=1) / (np.sqrt(n_runs) * w.mean()))
    return AISResult(log_z=log_z, se=se, interval=(log_z - 3 * se, log_z + 3 * se),
                     ess=float(w.sum() ** 2 / (w ** 2).sum()), log_z_base=log_z_base,
                     log_weights=logw)


def _ais_dbm_weights(model, n_runs, betas, data, seed, reverse, init_states):
    """Log AIS weights for a DBM (Salakhutdinov & Hinton 2009): the base model has no
    weights, the base-rate visible biases and zero hidden biases; model k has
    log p*_k(x) = sum_l [(1 - β_k) bA_l + β_k b_l].x_l + β_k sum_l x_{l-1} W_l x_l. The odd
    layers are summed out analytically given the even ones, so the weights need only the
    even layers: log f_k(x_even) = sum_even [(1-β_k) bA_l + β_k b_l].x_l + sum_odd sum_j
    softplus((1-β_k) bA_lj + β_k (b_l + x_{l-1} W_l + x_{l+1} W_{l+1}^T)_j). Each
    transition is one two-block Gibbs sweep of model k on the shared layer kernel (the
    model's device), Philox step k of the given seed."""
    from . import _core
    from .reference import STREAM_INIT
    xp = model._xp
    sizes = model.layer_sizes
    L = len(sizes) - 1
    bA = [_base_rate_biases(data, sizes[0])] + [np.zeros(n) for n in sizes[1:]]
    bA_dev = [xp.asarray(a, dtype=xp.float64) for a in bA]
    b_dev = [b.astype(xp.float64) for b in model.biases_]
    odd = list(range(1, L + 1, 2))
    even = list(range(0, L + 1, 2))
    binary = [True] * (L + 1)

    def log_fs(states, beta0, beta1):
        """log f at two inverse temperatures from one set of odd-layer fields."""
        fields = {}
        for l in odd:
            inputs, _ = model._neighbours(states, l, binary)
            f, _, _ = model._kernel(inputs, xp.zeros(sizes[l], dtype=xp.float32), want_field=True)
            fields[l] = f.astype(xp.float64)
        out = []
        for t in (beta0, beta1):
            total = 0.0
            for l in even:
                total = total + states[l].astype(xp.float64) @ ((1 - t) * bA_dev[l] + t * b_dev[l])
            for l in odd:
                z = (1 - t) * bA_dev[l] + t * (b_dev[l] + fields[l])
                total = total + xp.logaddexp(0.0, z).sum(axis=1)
            out.append(total)
        return out

    def transition(states, k):
        t = float(betas[k])
        biases = [((1 - t) * bA_dev[l] + t * b_dev[l]).astype(xp.float32) for l in range(L + 1)]
        model._sweeps(states, 1, k, beta=t, biases=biases, seed=seed)

    K = betas.size - 1
    logw = xp.zeros(n_runs, dtype=xp.float64)
    if not reverse:
        u = _core.philox_uniforms(seed, STREAM_INIT, 0, n_runs, sum(sizes), 0)
        states, start = [], 0
        for l, n in enumerate(sizes):
            p = 1.0 / (1.0 + np.exp(-bA[l]))
            states.append(xp.asarray(np.ascontiguousarray((u[:, start:start + n] < p).astype(np.float32))))
            start += n
        for k in range(1, K + 1):
            lo, hi = log_fs(states, betas[k - 1], betas[k])
            logw += hi - lo
            if k < K:
                transition(states, k)
    else:
        if init_states is None:
            raise ValueError("reverse AIS needs init_states (model states, one array per layer, "
                             "n_runs rows: dbm.sample(n_runs, return_all=True))")
        states = model._check_states(init_states)
        if states[0].shape[0] != n_runs:
            raise ValueError(f"init_states must have n_runs = {n_runs} rows, got {states[0].shape[0]}")
        for k in range(K, 0, -1):
            lo, hi = log_fs(states, betas[k - 1], betas[k])
            logw += lo - hi
            if k > 1:
                transition(states, k - 1)
    log_z_base = float(sum(np.logaddexp(0.0, a).sum() for a in bA))
    logw = logw.get() if hasattr(logw, "get") else logw
    return np.asarray(logw, np.float64), log_z_base


def _box_muller(seed: int, stream: int, step: int, rows: int, cols: int) -> np.ndarray:
    """Standard normals from Philox uniforms (units 2i, 2i+1 of each row), float64."""
    from . import _core
    u = _core.philox_uniforms(seed, stream, step, rows, 2 * cols, 0).astype(np.float64)
    return np.sqrt(-2.0 * np.log(1.0 - u[:, 0::2])) * np.cos(2.0 * np.pi * u[:, 1::2])


def _ais_gaussian_weights(model, n_runs, betas, data, seed, reverse, init_states):
    """Log AIS weights for a Gaussian-Bernoulli RBM with fixed sigma. The base model has no
    weights, visible means b_A (the data's mean, else the model's b) and the model's sigma;
    model k interpolates the energies geometrically, which leaves, with h summed out,
    log f_k(v) = -sum_i [(v_i - b_k,i)^2 + β_k (1 - β_k)(b_i - b_A,i)^2] / (2 sigma_i^2)
    + sum_j softplus(β_k (c_j + (v / sigma^2) W_j)), b_k = (1 - β_k) b_A + β_k b. Its Gibbs
    transition: h ~ Bernoulli(sigmoid(β_k (c + (v / sigma^2) W))), v ~ N(b_k + β_k W h,
    sigma^2), with Philox uniforms of the given seed at step k."""
    from . import _core
    from .gaussian_rbm import _real
    from .reference import STREAM_HIDDEN, STREAM_INIT, STREAM_VISIBLE
    model._require_sigma()
    W = np.asarray(_host(model.W), np.float64)
    b = np.asarray(_host(model.b), np.float64)
    c = np.asarray(_host(model.c), np.float64)
    sig = np.asarray(model.sigma, np.float64)
    s2 = sig ** 2
    n_v, n_h = W.shape
    bA = b.copy() if data is None else _real(data, "data", n_v).astype(np.float64).mean(axis=0)

    def log_f(V, t):
        bt = (1 - t) * bA + t * b
        quad = ((V - bt) ** 2 + t * (1 - t) * (b - bA) ** 2) / (2 * s2)
        return -quad.sum(axis=1) + np.logaddexp(0.0, t * ((V / s2) @ W + c)).sum(axis=1)

    def transition(V, k):
        t = float(betas[k])
        P = 1.0 / (1.0 + np.exp(-t * ((V / s2) @ W + c)))
        H = (_core.philox_uniforms(seed, STREAM_HIDDEN, k, n_runs, n_h, 0) < P).astype(np.float64)
        mean = (1 - t) * bA + t * b + t * (H @ W.T)
        return mean + sig * _box_muller(seed, STREAM_VISIBLE, k, n_runs, n_v)

    K = betas.size - 1
    logw = np.zeros(n_runs)
    if not reverse:
        V = bA + sig * _box_muller(seed, STREAM_INIT, 0, n_runs, n_v)
        for k in range(1, K + 1):
            logw += log_f(V, betas[k]) - log_f(V, betas[k - 1])
            if k < K:
                V = transition(V, k)
    else:
        if init_states is None:
            raise ValueError("reverse AIS needs init_states (model samples, n_runs rows)")
        V = _real(init_states, "init_states", n_v).astype(np.float64)
        if V.shape[0] != n_runs:
            raise ValueError(f"init_states must have n_runs = {n_runs} rows, got {V.shape[0]}")
        for k in range(K, 0, -1):
            logw += log_f(V, betas[k - 1]) - log_f(V, betas[k])
            if k > 1:
                V = transition(V, k - 1)
    log_z_base = float(np.log(np.sqrt(2 * np.pi) * sig).sum() + n_h * np.log(2.0))
    return logw, log_z_base
