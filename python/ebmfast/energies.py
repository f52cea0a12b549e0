"""Built-in energies E(x), x in R^d, for the continuous samplers (``ebmfast.metropolis``,
``ebmfast.mala``, ``ebmfast.langevin``); p(x) ∝ exp(-E(x)).

Each built-in is compiled into the chain kernels (csrc/cpu/mcmc_chains.cpp,
csrc/cuda/mcmc_chains.cu) and also evaluable here: ``E(X)`` returns the float64
energies of X (n, d) and ``E.energy_grad(X)`` the float64 (energies, gradients) of the
NumPy spec (``ebmfast.reference``). ``CudaSource`` wraps user CUDA C device functions
for the GPU path. Any other energy is a plain Python callable (CPU only).
"""
from __future__ import annotations

import numpy as np

from . import reference as R

__all__ = ["Energy", "Gaussian", "GaussianMixture", "DoubleWell", "Rosenbrock",
           "RBMFreeEnergy", "CudaSource"]

# Kernel ids: csrc/common/mcmc_views.h, EnergyKind.
_GAUSS_DIAG, _GAUSS_FULL, _MIXTURE, _DOUBLE_WELL, _ROSENBROCK, _RBM_FREE = range(6)


_F32_MAX = float(np.finfo(np.float32).max)


def _real(value, name: str) -> np.ndarray:
    """np.asarray(value) when it holds real numbers (integers or floats); TypeError naming
    ``name`` for bool, complex, strings, objects and ragged lists (np.asarray(..., float64)
    would parse strings and drop imaginary parts silently)."""
    try:
        a = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a real array: {exc}") from None
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}"
                        + (f" ({value!r:.40})" if a.ndim == 0 else ""))
    return a


def _f64(value, name: str, ndim: tuple[int, ...]) -> np.ndarray:
    a = _real(value, name).astype(np.float64)
    if a.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimension(s), "
                         f"got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _fits_f32(a, name: str) -> None:
    """The kernels hold every parameter in float32: values beyond it would become inf."""
    a = np.asarray(a, dtype=np.float64)
    if a.size and not (np.abs(a).max() <= _F32_MAX):
        raise ValueError(f"{name} has values up to {float(np.abs(a).max()):.3g}, beyond float32 "
                         "(the chain kernels run in float32)")


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


class Energy:
    """A built-in energy. ``dim`` is its dimension (None: any d, taken from x0)."""

    kind: int
    dim: int | None = None
    min_dim: int = 1

    def __new__(cls, *args, **kwargs):
        if cls is Energy:
            raise TypeError("Energy is the abstract base of the built-in energies; use "
                            "Gaussian, GaussianMixture, DoubleWell, Rosenbrock or RBMFreeEnergy "
                            "(or pass a Python callable to the samplers)")
        return super().__new__(cls)

    def _points(self, X, name: str = "X") -> np.ndarray:
        """X as a finite real (n, d) array of this energy's dimension (a (d,) vector is one
        point); float32/float64 kept, other real dtypes become float64."""
        a = _real(X, name)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape (n, d) or (d,), got {a.shape}")
        if a.dtype not in (np.float32, np.float64):
            a = a.astype(np.float64)
        self.check_dim(a.shape[1], name)
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return a

    def params(self, d: int) -> dict:
        """Kernel parameters for dimension d: float32 arrays and floats."""
        raise NotImplementedError

    def energy_grad(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(E (n,), grad E (n, d)) in float64 (the spec, ``ebmfast.reference``) of the points
        X (n, d) (or one point (d,)); ValueError/TypeError naming X for a wrong shape, dtype
        or a NaN/inf coordinate."""
        return self._energy_grad(self._points(X))

    def _energy_grad(self, X):
        raise NotImplementedError

    def __call__(self, X) -> np.ndarray:
        return self._energy_grad(self._points(X).astype(np.float64))[0]

    def check_dim(self, d: int, name: str = "x0") -> None:
        if self.dim is not None and d != self.dim:
            raise ValueError(f"{name} has {d} columns but the {type(self).__name__} energy "
                             f"has dimension {self.dim}")
        if d < self.min_dim:
            raise ValueError(f"{name} must have at least {self.min_dim} columns for "
                             f"{type(self).__name__}, got {d}")

    def kernel_energy(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(E, grad) in float32 from the compiled CPU kernel's own energy code."""
        from . import _core
        X = self._points(X)
        if X.size and float(np.abs(X).max()) > _F32_MAX:
            raise ValueError("X has values beyond float32 (the kernel runs in float32)")
        return _core.mcmc_energy(self.kind, self.params(X.shape[1]), _f32(X))


class Gaussian(Energy):
    """E(x) = 1/2 (x - mean)^T P (x - mean), P the precision matrix.

    Parameters
    ----------
    mean : (d,) array
    cov, precision : one of them (default: identity). A scalar or (d,) vector is a
        diagonal (isotropic when scalar); a (d, d) symmetric positive-definite matrix
        gives a correlated Gaussian (its precision is passed to the kernel).
    """

    def __init__(self, mean, cov=None, *, precision=None):
        self.mean = _f64(mean, "mean", (1,))
        d = self.mean.shape[0]
        if d == 0:
            raise ValueError("mean must have at least one entry (the dimension d >= 1)")
        _fits_f32(self.mean, "mean")
        self.dim = d
        if cov is not None and precision is not None:
            raise ValueError("give cov or precision, not both")
        which, value = ("cov", cov) if cov is not None else ("precision", precision)
        if value is None:
            value = 1.0
        a = _f64(value, which, (0, 1, 2))
        if a.ndim == 0:
            a = np.full(d, float(a))
        if a.shape not in ((d,), (d, d)):
            raise ValueError(f"{which} must be a scalar, shape ({d},) or ({d}, {d}), got {a.shape}")
        if a.ndim == 1:
            if (a <= 0).any():
                raise ValueError(f"{which} must be positive")
            self.precision = 1.0 / a if which == "cov" else a
            self.cov = 1.0 / self.precision
            self.kind = _GAUSS_DIAG
        else:
            if not np.allclose(a, a.T, rtol=1e-10, atol=1e-12 * np.abs(a).max()):
                raise ValueError(f"{which} must be symmetric")
            try:
                np.linalg.cholesky(a)
            except np.linalg.LinAlgError:
                raise ValueError(f"{which} must be positive definite") from None
            other = np.linalg.inv(a)
            other = 0.5 * (other + other.T)
            self.precision, self.cov = (other, a) if which == "cov" else (a, other)
            self.kind = _GAUSS_FULL
        if not np.isfinite(self.precision).all():
            raise ValueError(f"{which} is too close to singular: its precision is not finite")
        _fits_f32(self.precision, f"the precision (from {which})")

    def params(self, d: int) -> dict:
        return {"mean": _f32(self.mean), "precision": _f32(self.precision)}

    def _energy_grad(self, X):
        return R.energy_gaussian(X, self.mean, self.precision)


class GaussianMixture(Energy):
    """E(x) = -log sum_k w_k N(x; mu_k, diag sigma_k^2) (exp(-E) is the normalized density).

    Parameters
    ----------
    weights : (K,) positive (normalized here)
    means : (K,) for d = 1 or (K, d)
    sigmas : scalar, (K,) isotropic per component, or (K, d) diagonal
    """

    def __init__(self, weights, means, sigmas=1.0):
        w = _f64(weights, "weights", (1,))
        if w.size == 0 or (w <= 0).any():
            raise ValueError("weights must be a non-empty vector of positive numbers")
        w = w / w.max()  # first, so that the sum of huge weights cannot overflow
        self.weights = w / w.sum()
        K = w.size
        mu = _f64(means, "means", (1, 2))
        if mu.ndim == 1:
            mu = mu[:, None]
        if mu.shape[0] != K:
            raise ValueError(f"means must have {K} rows (one per weight), got shape {mu.shape}")
        d = mu.shape[1]
        if d == 0:
            raise ValueError("means must have at least one column (the dimension d >= 1)")
        _fits_f32(mu, "means")
        self.means = mu
        self.dim = d
        s = _f64(sigmas, "sigmas", (0, 1, 2))
        if s.ndim == 0:
            s = np.full((K, d), float(s))
        elif s.ndim == 1:
            if s.shape[0] != K:
                raise ValueError(f"sigmas must be a scalar, ({K},) or ({K}, {d}), got {s.shape}")
            s = np.repeat(s[:, None], d, axis=1)
        elif s.shape != (K, d):
            raise ValueError(f"sigmas must be a scalar, ({K},) or ({K}, {d}), got {s.shape}")
        if (s <= 0).any():
            raise ValueError("sigmas must be positive")
        with np.errstate(over="ignore", divide="ignore"):
            _fits_f32(1.0 / s**2, "1 / sigmas**2")
        _fits_f32(s, "sigmas")
        self.sigmas = s
        self.kind = _MIXTURE

    def params(self, d: int) -> dict:
        log_coef = (np.log(self.weights) - np.sum(np.log(self.sigmas), axis=1)
                    - 0.5 * d * np.log(2.0 * np.pi))
        return {"log_coef": _f32(log_coef), "means": _f32(self.means),
                "inv_var": _f32(1.0 / self.sigmas**2)}

    def _energy_grad(self, X):
        return R.energy_mixture(X, self.weights, self.means, self.sigmas)

    @property
    def mean(self) -> np.ndarray:
        return self.weights @ self.means

    @property
    def cov(self) -> np.ndarray:
        m = self.mean
        out = np.zeros((self.dim, self.dim))
        for w, mu, s in zip(self.weights, self.means, self.sigmas):
            out += w * (np.diag(s**2) + np.outer(mu - m, mu - m))
        return out


class DoubleWell(Energy):
    """E(x) = a (x_0^2 - 1)^2 + 1/2 sum_{i>0} x_i^2: two modes at x_0 = ±1 separated by a
    barrier of height a, standard normal in the other coordinates. Any d >= 1."""

    def __init__(self, a: float = 1.0):
        self.a = float(_f64(a, "a", (0,)))
        if self.a <= 0:
            raise ValueError("a must be > 0")
        _fits_f32(self.a, "a")
        self.kind = _DOUBLE_WELL

    def params(self, d: int) -> dict:
        return {"a": self.a}

    def _energy_grad(self, X):
        return R.energy_double_well(X, self.a)


class Rosenbrock(Energy):
    """The generalized Rosenbrock "banana" density of Goodman & Weare (2010):

    E(x) = (1/scale) sum_{i=0}^{d-2} [b (x_{i+1} - x_i^2)^2 + (a - x_i)^2], d >= 2,

    defaults a = 1, b = 100, scale = 20 (their 2-D test problem)."""

    min_dim = 2

    def __init__(self, a: float = 1.0, b: float = 100.0, scale: float = 20.0):
        self.a = float(_f64(a, "a", (0,)))
        self.b = float(_f64(b, "b", (0,)))
        self.scale = float(_f64(scale, "scale", (0,)))
        if self.b <= 0 or self.scale <= 0:
            raise ValueError("b and scale must be > 0")
        _fits_f32(self.a, "a")
        _fits_f32(self.b, "b")
        _fits_f32(1.0 / self.scale, "1 / scale")
        self.kind = _ROSENBROCK

    def params(self, d: int) -> dict:
        return {"a": self.a, "b": self.b, "inv_scale": 1.0 / self.scale}

    def _energy_grad(self, X):
        return R.energy_rosenbrock(X, self.a, self.b, self.scale)


class RBMFreeEnergy(Energy):
    """The free energy of an RBM as a continuous energy of v in R^n_visible:

    F(v) = -b.v - sum_j softplus(c_j + (v W)_j) + confine/2 |v|^2,
    grad F = -b - W sigmoid(c + v W) + confine v.

    With confine = 0 (the plain free energy) exp(-F) is not integrable on R^d: F falls
    linearly along b and along the columns of W, so chains drift off to infinity (fine for
    short-run dynamics, not for sampling). confine > 0 adds a Gaussian factor
    exp(-confine |v|^2 / 2) (the Gaussian-Bernoulli RBM's visible term) that makes the
    density proper.

    Give an ``ebmfast.RBM`` (or anything with W, b, c) or the arrays W (n_v, n_h), b, c.
    The parameters are copied (later training does not change this energy).
    """

    def __init__(self, rbm=None, *, W=None, b=None, c=None, confine: float = 0.0):
        if rbm is not None:
            if W is not None or b is not None or c is not None:
                raise ValueError("give an RBM or the arrays W, b, c, not both")
            try:
                W, b, c = rbm.W, rbm.b, rbm.c
            except AttributeError:
                raise TypeError(f"rbm must be an ebmfast.RBM (or have W, b, c), got "
                                f"{type(rbm).__name__}") from None
        if W is None or b is None or c is None:
            raise ValueError("give an RBM or all of W, b, c")
        self.W = _f64(W, "W", (2,))
        n_v, n_h = self.W.shape
        if n_v == 0:
            raise ValueError(f"W must have at least one row (n_visible >= 1), got {self.W.shape}")
        self.b = _f64(b, "b", (1,))
        self.c = _f64(c, "c", (1,))
        if self.b.shape != (n_v,) or self.c.shape != (n_h,):
            raise ValueError(f"b must have shape ({n_v},) and c ({n_h},), got {self.b.shape}, "
                             f"{self.c.shape}")
        self.confine = float(_f64(confine, "confine", (0,)))
        if self.confine < 0:
            raise ValueError("confine must be >= 0")
        for name in ("W", "b", "c", "confine"):
            _fits_f32(getattr(self, name), name)
        self.dim = n_v
        self.kind = _RBM_FREE

    def params(self, d: int) -> dict:
        return {"W": _f32(self.W), "b": _f32(self.b), "c": _f32(self.c), "a": self.confine}

    def _energy_grad(self, X):
        return R.energy_rbm_free(X, self.W, self.b, self.c, self.confine)


class CudaSource:
    """A user energy for the GPU path: CUDA C source defining

        __device__ float energy(const float* x, int d)
        __device__ void grad(const float* x, float* g, int d)   // MALA / Langevin

    compiled at run time (CuPy ``RawModule``, NVRTC) into the same chain kernel as the
    built-ins. Compile errors raise ValueError with the compiler's message."""

    def __init__(self, source: str, dim: int | None = None):
        if not isinstance(source, str) or "energy" not in source:
            raise TypeError("source must be a string of CUDA C defining "
                            "'__device__ float energy(const float* x, int d)'")
        if dim is not None:
            from ._backend import check_int
            dim = check_int(dim, "dim", minimum=1)
        self.source = source
        self.dim = dim
