"""MCMC convergence and efficiency diagnostics, for any sampler (continuous chains of
``ebmfast.mcmc`` and the discrete samplers alike).

Trace convention: ``trace`` has shape (n_draws, n_chains[, ...]); trailing axes are
separate scalar quantities (e.g. coordinates), each diagnosed on its own.

* :func:`autocorrelation`: normalized autocorrelation along an axis (FFT, O(n log n)).
* :func:`integrated_autocorr_time`: per chain, tau = 1 + 2 sum_t rho(t), with Sokal's
  automatic window (smallest M with M >= c tau(M), c = 5) or Geyer's initial
  monotone positive sequence.
* :func:`effective_sample_size`: over chains, the multi-chain ESS of Vehtari, Gelman,
  Simpson, Carpenter & Bürkner (2021) (Geyer's initial monotone sequence on the
  autocorrelation combined across chains).
* :func:`split_rhat`: split-R-hat of the same paper, optionally rank-normalized (the
  maximum of the bulk and the folded (tail) rank-normalized split-R-hat).
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["acceptance_rate", "autocorrelation", "integrated_autocorr_time",
           "effective_sample_size", "split_rhat"]


def _real(x, name: str) -> np.ndarray:
    """np.asarray(x) when it holds real numbers or bools; TypeError naming ``name`` for
    complex, strings, objects and ragged lists."""
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a real numeric array: {exc}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


def _axis(axis, ndim: int, name: str = "axis") -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(axis).__name__} {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array of {ndim} dimension(s)")
    return int(axis) % ndim


def _rescale(t: np.ndarray, axes: tuple) -> np.ndarray:
    """Divide each series by a power of two when its values are so large (or so small) that
    sums of squares would overflow (or underflow): every diagnostic here is scale-invariant
    and a power of two is exact, so ordinary traces are left bit for bit as they were."""
    big = np.max(np.abs(t), axis=axes, keepdims=True) if t.size else np.zeros(())
    if not ((big > 2.0**400) | ((big > 0) & (big < 2.0**-400))).any():
        return t
    _, e = np.frexp(np.where(big > 0, big, 1.0))
    return np.ldexp(t, -e)


def _trace(trace, min_draws: int = 2) -> np.ndarray:
    t = _real(trace, "trace").astype(np.float64)
    if t.ndim < 2:
        raise ValueError(f"trace must have shape (n_draws, n_chains[, ...]), got {t.shape}")
    if t.shape[0] < min_draws:
        raise ValueError(f"trace needs at least {min_draws} draws, got {t.shape[0]}")
    if t.shape[1] < 1:
        raise ValueError(f"trace needs at least one chain, got shape {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("trace contains NaN or infinite values")
    return _rescale(t, (0, 1))


def acceptance_rate(trace_or_accepted, axis: int = 0) -> np.ndarray:
    """Fraction of accepted moves per chain.

    A bool array of accept decisions (n_steps, n_chains) gives their mean over ``axis``; a
    trace of states (n_draws, n_chains[, d]) (thin = 1) gives the fraction of consecutive
    draws that differ in any coordinate.
    """
    a = _real(trace_or_accepted, "trace_or_accepted")
    if a.ndim < 1:
        raise ValueError("trace_or_accepted must be an array of accept decisions or states, "
                         "got a scalar")
    axis = _axis(axis, a.ndim)
    if a.dtype == bool:
        if a.shape[axis] < 1:
            raise ValueError(f"trace_or_accepted needs at least one step along axis {axis}, "
                             f"got shape {a.shape}")
        return a.mean(axis=axis)
    if a.ndim < 2 or a.shape[axis] < 2:
        raise ValueError("trace_or_accepted as a trace needs shape (n_draws >= 2, "
                         f"n_chains[, ...]), got {a.shape}")
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise ValueError("trace_or_accepted contains NaN values")
    a = np.moveaxis(a, axis, 0)
    moved = a[1:] != a[:-1]  # no subtraction: no overflow, inf == inf is "not moved"
    if moved.ndim > 2:
        moved = moved.reshape(moved.shape[0], moved.shape[1], -1).any(axis=2)
    return moved.mean(axis=0)


def autocorrelation(x, axis: int = 0) -> np.ndarray:
    """Normalized autocorrelation rho(t), t = 0 .. n-1, along ``axis`` (mean removed,
    biased 1/n estimator, rho(0) = 1; NaN for a constant series). FFT with zero padding
    to a power of two >= 2n, so no circular wrap-around."""
    x = _real(x, "x").astype(np.float64)
    if x.ndim < 1:
        raise ValueError("x must have at least one dimension, got a scalar")
    x = np.moveaxis(x, _axis(axis, x.ndim), 0)
    n = x.shape[0]
    if n < 1:
        raise ValueError("x must have at least one element along axis")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    x = _rescale(x, (0,))
    xc = x - x.mean(axis=0)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(xc, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = acov / acov[0]
    return np.moveaxis(rho, 0, axis)


def _geyer_tau(rho: np.ndarray) -> np.ndarray:
    """tau = -1 + 2 sum_k Gamma_k, Gamma_k = rho(2k) + rho(2k+1) over the initial positive,
    monotone (non-increasing) sequence (Geyer 1992); rho along axis 0."""
    n = rho.shape[0]
    m = n // 2
    gam = rho[0:2 * m:2] + rho[1:2 * m:2]              # (m, ...)
    positive = np.cumprod(gam > 0, axis=0).astype(bool)  # initial positive sequence
    gam = np.minimum.accumulate(np.where(positive, gam, 0.0), axis=0)  # monotone
    return -1.0 + 2.0 * np.sum(np.where(positive, gam, 0.0), axis=0)


def integrated_autocorr_time(trace, *, method: str = "sokal", c: float = 5.0) -> np.ndarray:
    """Integrated autocorrelation time per chain, shape (n_chains[, ...]).

    tau = 1 + 2 sum_{t=1}^{M} rho(t). ``method="sokal"``: M = the smallest window with
    M >= c * tau(M) (Sokal 1997; c = 5 as in emcee; the whole series when none is).
    ``method="geyer"``: the initial monotone positive sequence estimator.
    For an AR(1) series x_t = phi x_{t-1} + noise, tau = (1 + phi) / (1 - phi).
    """
    if not isinstance(method, str) or method not in ("sokal", "geyer"):
        raise ValueError(f"method must be 'sokal' or 'geyer', got {method!r}")
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Real) or not np.isfinite(c) \
            or c <= 0:
        raise ValueError(f"c must be a finite number > 0, got {c!r}")
    t = _trace(trace, 4)
    rho = autocorrelation(t, axis=0)
    rho = np.nan_to_num(rho, nan=0.0)
    rho[0] = 1.0
    if method == "geyer":
        return np.maximum(_geyer_tau(rho), 1e-12)
    taus = 2.0 * np.cumsum(rho, axis=0) - 1.0                # tau(M), M = 0 .. n-1
    M = np.arange(t.shape[0]).reshape((-1,) + (1,) * (t.ndim - 1))
    ok = M >= c * taus
    first = np.where(ok.any(axis=0), np.argmax(ok, axis=0), t.shape[0] - 1)
    return np.take_along_axis(taus, first[None], axis=0)[0]


def effective_sample_size(trace) -> np.ndarray:
    """Effective sample size of the mean over all chains, shape (...) (trailing axes).

    Vehtari et al. (2021), eqs. 10-11: rho_t = 1 - (W - mean_m s_m^2 rho_{t,m}) / var+,
    with W the mean within-chain variance and var+ = (n-1)/n W + B/n; then
    tau = -1 + 2 sum of Geyer's initial monotone sequence; ESS = n_chains n_draws / tau.
    """
    t = _trace(trace, 4)
    n, m = t.shape[0], t.shape[1]
    rho_m = np.nan_to_num(autocorrelation(t, axis=0), nan=0.0)   # (n, m, ...)
    s2 = t.var(axis=0, ddof=1)                                    # (m, ...)
    W = s2.mean(axis=0)
    B = n * t.mean(axis=0).var(axis=0, ddof=1) if m > 1 else np.zeros_like(W)
    var_plus = (n - 1) / n * W + B / n
    # rho_m is the biased (1/n) autocorrelation; s2 (n-1)/n turns it into autocovariance
    acov = rho_m * (s2 * (n - 1) / n)[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (W - acov.mean(axis=1)) / var_plus
    rho = np.nan_to_num(rho, nan=0.0)
    rho[0] = 1.0
    tau = np.maximum(_geyer_tau(rho), 1.0 / np.log10(max(n * m, 10)))  # cap ESS (antithetic)
    return n * m / tau


def _rhat_basic(t: np.ndarray) -> np.ndarray:
    n = t.shape[0]
    half = n // 2
    split = np.concatenate([t[:half], t[n - half:]], axis=1)  # (half, 2m, ...), drops middle
    W = split.var(axis=0, ddof=1).mean(axis=0)
    B = half * split.mean(axis=0).var(axis=0, ddof=1)
    var_plus = (half - 1) / half * W + B / half
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(var_plus / W)


def _normal_ppf(p: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import ndtri
        return ndtri(p)
    except ImportError:  # scipy is optional at run time
        from statistics import NormalDist
        return np.vectorize(NormalDist().inv_cdf, otypes=[float])(p)


def _average_ranks(flat: np.ndarray) -> np.ndarray:
    """Ranks 1..N of each column, ties sharing their average rank (as scipy's rankdata):
    discrete traces (spins, energies of a lattice) are full of ties, and ranking tied
    draws by position would invent a trend between the chains."""
    ranks = np.empty(flat.shape, np.float64)
    for k in range(flat.shape[1]):
        _, inv, counts = np.unique(flat[:, k], return_inverse=True, return_counts=True)
        last = np.cumsum(counts)                       # rank of the last member of each tie
        ranks[:, k] = (last - (counts - 1) / 2.0)[inv.ravel()]
    return ranks


def _rank_normalize(t: np.ndarray) -> np.ndarray:
    n, m = t.shape[0], t.shape[1]
    flat = t.reshape(n * m, int(np.prod(t.shape[2:], dtype=np.int64)))
    ranks = _average_ranks(flat)
    z = _normal_ppf((ranks - 0.375) / (n * m + 0.25))
    return z.reshape(t.shape)


def split_rhat(trace, *, rank_normalize: bool = False) -> np.ndarray:
    """Split-R-hat (Vehtari et al. 2021), shape (...) (trailing axes); ~1 for converged
    chains, > 1.01 a warning sign. Each chain is split in halves (the middle draw of an odd
    count dropped). ``rank_normalize=True``: max of the rank-normalized split-R-hat of the
    draws and of the draws folded about their median (bulk and tails)."""
    if not isinstance(rank_normalize, (bool, np.bool_)):
        raise TypeError(f"rank_normalize must be a bool, got {rank_normalize!r}")
    t = _trace(trace, 4)
    if not rank_normalize:
        return _rhat_basic(t)
    if t.size == 0:  # no quantities (a trailing axis of length 0)
        return np.empty(t.shape[2:])
    bulk = _rhat_basic(_rank_normalize(t))
    # Folded about the lower median (a draw, not the midpoint of the two middle draws):
    # the two middle draws are exactly equidistant from their midpoint, a tie that float
    # rounding breaks one way or the other depending on the units, so the rank-normalized
    # statistic would change with a rescaling of the draws.
    med = np.quantile(t, 0.5, axis=(0, 1), method="lower")
    tail = _rhat_basic(_rank_normalize(np.abs(t - med)))
    return np.maximum(bulk, tail)
