"""Gaussian-Bernoulli RBM: real-valued visible units with per-unit standard deviations
sigma, binary hidden units (the parameterisation of Cho, Ilin & Raiko 2011):

    E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c.h - sum_ij (v_i / sigma_i^2) W_ij h_j
    p(h_j = 1 | v) = sigmoid(c_j + sum_i W_ij v_i / sigma_i^2)
    p(v_i | h)     = Normal(b_i + sum_j W_ij h_j, sigma_i^2)

sigma is fixed (from the data's per-unit standard deviation, or given). Uniforms come from
the shared Philox stream (hidden units: STREAM_HIDDEN; visible normals: Box-Muller on
units 2i, 2i+1 of STREAM_VISIBLE), products through the module's BLAS.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._backend import check_float, check_int, check_memory, check_seed, check_steps
from .reference import STREAM_HIDDEN, STREAM_INIT, STREAM_SHUFFLE, STREAM_VISIBLE

__all__ = ["GaussianRBM"]


_F32_MAX = float(np.finfo(np.float32).max)
_SIGMA_RANGE = (1e-18, 1e18)  # 1/sigma^2 and sigma^2 stay finite in float32


def _real(X, name: str, n_cols: int) -> np.ndarray:
    if hasattr(X, "__cuda_array_interface__"):
        raise TypeError(f"{name} is a GPU array; GaussianRBM runs on the CPU")
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a 2-D real array: {exc}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != n_cols:
        raise ValueError(f"{name} must have shape (n, {n_cols}), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.dtype.kind == "f" and arr.size and float(np.abs(arr).max()) > _F32_MAX:
        raise ValueError(f"{name} has values beyond the float32 range")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _finite_or(out: np.ndarray, name: str) -> np.ndarray:
    """A result that overflowed means the input was too large for the model's scale."""
    if not np.isfinite(out).all():
        raise ValueError(f"{name} is too large for this model (its values over sigma^2 "
                         "overflow): standardise the data")
    return out


class GaussianRBM:
    """Real-valued visible units, binary hidden units; CD-k or PCD-k training with
    momentum and weight decay. ``sigma``: "data" (per-unit standard deviation of the first
    ``fit`` data, floored at 1e-3), a number, or an array (n_visible,)."""

    def __init__(self, n_visible: int, n_hidden: int, *, sigma="data", learning_rate: float = 0.01,
                 method: str = "cd", k: int = 1, momentum: float = 0.0, weight_decay: float = 0.0,
                 batch_size: int = 100, epochs: int = 10, seed=None):
        self.n_visible = check_int(n_visible, "n_visible", minimum=1, maximum=2**28)
        self.n_hidden = check_int(n_hidden, "n_hidden", minimum=1, maximum=2**28)
        # float64 W, its velocity, the two float32 copies of a product, the init uniforms
        check_memory(40.0 * self.n_visible * self.n_hidden,
                     f"GaussianRBM(n_visible={self.n_visible}, n_hidden={self.n_hidden})")
        self.learning_rate = check_float(learning_rate, "learning_rate", minimum=0.0)
        if not isinstance(method, str) or method not in ("cd", "pcd"):
            raise ValueError(f"method must be 'cd' or 'pcd', got {method!r}")
        self.method = method
        self.k = check_int(k, "k", minimum=1)
        self.momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0)
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.epochs = check_int(epochs, "epochs", minimum=0)
        self.seed_ = check_seed(seed)
        if isinstance(sigma, str):
            if sigma != "data":
                raise ValueError(f"sigma must be 'data', a number or an array, got {sigma!r}")
            self.sigma = None
        else:
            arr = None if isinstance(sigma, (bool, np.bool_)) or sigma is None else np.asarray(sigma)
            if arr is None or arr.dtype == object or arr.dtype.kind not in "iuf":
                raise TypeError(f"sigma must be 'data', a real number or a real array (n_visible,), "
                                f"got {type(sigma).__name__} {sigma!r}")
            if arr.shape not in ((), (self.n_visible,)):
                raise ValueError(f"sigma must be a number or have shape ({self.n_visible},), "
                                 f"got shape {arr.shape}")
            s = np.broadcast_to(arr.astype(np.float64), (self.n_visible,)).copy()
            if not np.isfinite(s).all() or np.any(s < _SIGMA_RANGE[0]) or np.any(s > _SIGMA_RANGE[1]):
                raise ValueError(f"sigma must be finite and in [{_SIGMA_RANGE[0]:g}, "
                                 f"{_SIGMA_RANGE[1]:g}]")
            self.sigma = s
        u = _core.philox_uniforms(self.seed_, STREAM_INIT, 0, self.n_visible, 2 * self.n_hidden, 0)
        u = u.astype(np.float64)
        self.W = 0.01 * np.sqrt(-2.0 * np.log(1.0 - u[:, 0::2])) * np.cos(2.0 * np.pi * u[:, 1::2])
        self.b = np.zeros(self.n_visible)
        self.c = np.zeros(self.n_hidden)
        self._vel = [np.zeros_like(self.W), np.zeros_like(self.b), np.zeros_like(self.c)]
        self._step = 1
        self.chains_ = None
        self.history_: list[dict] = []

    # ------------------------------------------------------------------ conditionals

    def _hidden_prob(self, V: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # callers check finiteness
            A = _core.matmul(np.ascontiguousarray(V / self.sigma**2, dtype=np.float32),
                             self.W.astype(np.float32))
            return np.exp(-np.logaddexp(0.0, -(A.astype(np.float64) + self.c)))  # overflow-free sigmoid

    def _sample_h(self, V):
        P = self._hidden_prob(V)
        u = _core.philox_uniforms(self.seed_, STREAM_HIDDEN, self._step, V.shape[0], self.n_hidden, 0)
        return P, (u < P).astype(np.float64)

    def _sample_v(self, H):
        mean = self.b + _core.matmul(np.ascontiguousarray(H, dtype=np.float32),
                                     np.ascontiguousarray(self.W.T, dtype=np.float32)).astype(np.float64)
        u = _core.philox_uniforms(self.seed_, STREAM_VISIBLE, self._step, H.shape[0], 2 * self.n_visible, 0)
        z = np.sqrt(-2.0 * np.log(1.0 - u[:, 0::2].astype(np.float64))) * np.cos(2.0 * np.pi * u[:, 1::2])
        self._step += 1
        return mean + self.sigma * z

    def gibbs(self, V, k: int = 1) -> np.ndarray:
        """k steps v -> h -> v from V (n, n_visible); returns the new V (float64)."""
        self._require_sigma()
        k = check_int(k, "k", minimum=1)
        check_steps(self._step, k, "k")
        V = _real(V, "V", self.n_visible).astype(np.float64)
        step0 = self._step
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(k):
                _, H = self._sample_h(V)
                V = self._sample_v(H)
        if not np.isfinite(V).all():
            self._step = step0
            _finite_or(V, "V")
        return V

    def sample(self, n: int, n_steps: int = 1000) -> np.ndarray:
        """n samples after n_steps Gibbs steps from v = b."""
        self._require_sigma()
        n = check_int(n, "n", minimum=1, maximum=2**31 - 1)
        n_steps = check_int(n_steps, "n_steps", minimum=1)
        check_steps(self._step, n_steps, "n_steps")
        check_memory(48.0 * n * (self.n_visible + self.n_hidden), f"sample(n={n})")
        V = np.tile(self.b, (n, 1))
        for _ in range(n_steps):
            _, H = self._sample_h(V)
            V = self._sample_v(H)
        return V

    def transform(self, X) -> np.ndarray:
        self._require_sigma()
        return _finite_or(self._hidden_prob(_real(X, "X", self.n_visible).astype(np.float64)), "X")

    def free_energy(self, V) -> np.ndarray:
        """F(v) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (v/sigma^2) W_j)."""
        self._require_sigma()
        V = _real(V, "V", self.n_visible).astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            A = (V / self.sigma**2) @ self.W + self.c
            F = (((V - self.b) ** 2) / (2 * self.sigma**2)).sum(axis=1) - np.logaddexp(0.0, A).sum(axis=1)
        return _finite_or(F, "V")

    def _require_sigma(self):
        if self.sigma is None:
            raise ValueError("sigma='data' is set by the first fit; fit the model or give sigma")

    # ------------------------------------------------------------------ training

    def _update(self, V0: np.ndarray) -> float:
        """One update; a diverging one raises FloatingPointError and leaves the model (step
        counter and PCD chains included) as it was."""
        step0, chains0 = self._step, self.chains_
        try:
            with np.errstate(all="ignore"):  # a diverging step is caught below, by value
                return self._update_unchecked(V0)
        except (FloatingPointError, OverflowError):
            self._step, self.chains_ = step0, chains0
            raise

    def _update_unchecked(self, V0: np.ndarray) -> float:
        P0, H = self._sample_h(V0)
        if self.method == "pcd":
            if self.chains_ is None:
                self.chains_ = V0.copy()
            Vk = self.chains_
            _, H = self._sample_h(Vk)
        for _ in range(self.k):
            Vk = self._sample_v(H)
            Pk, H = self._sample_h(Vk)
        if self.method == "pcd":
            self.chains_ = Vk
        s2 = self.sigma**2
        n0, nk = V0.shape[0], Vk.shape[0]
        dW = (V0 / s2).T @ P0 / n0 - (Vk / s2).T @ Pk / nk
        db = ((V0 - self.b) / s2).mean(axis=0) - ((Vk - self.b) / s2).mean(axis=0)
        dc = P0.mean(axis=0) - Pk.mean(axis=0)
        new = []
        for p, v, g in zip((self.W, self.b, self.c), self._vel, (dW, db, dc)):
            decay = self.weight_decay * p if p is self.W else 0.0
            v2 = self.momentum * v + self.learning_rate * (g - decay)
            new.append((p + v2, v2))
        if not (all(np.isfinite(p).all() and np.isfinite(v).all() for p, v in new)
                and np.isfinite(Vk).all()):
            raise FloatingPointError("non-finite parameters: lower the learning rate (Gaussian "
                                     "visibles diverge easily) or standardise the data")
        (self.W, self._vel[0]), (self.b, self._vel[1]), (self.c, self._vel[2]) = new
        recon = self.b + P0 @ self.W.T  # mean-field reconstruction E[v | p(h | v0)]
        return float(((V0 - recon) ** 2).sum(axis=1).mean())

    def fit(self, X) -> "GaussianRBM":
        """``epochs`` epochs of shuffled mini-batches; history_ records the mean-field
        reconstruction error per epoch. Divergence raises FloatingPointError naming the
        epoch and keeps the last finite parameters."""
        X = _real(X, "X", self.n_visible).astype(np.float64)
        n = X.shape[0]
        n_batches = -(-n // self.batch_size)
        check_steps(self._step, self.epochs * n_batches * (2 * self.k + 3), "epochs")
        if self.sigma is None:
            with np.errstate(over="ignore", invalid="ignore"):
                sigma = np.maximum(X.std(axis=0), 1e-3)
            if not np.isfinite(sigma).all() or np.any(sigma > _SIGMA_RANGE[1]):
                raise ValueError("X is too spread out to set sigma='data' (its standard "
                                 "deviation overflows): standardise the data")
            self.sigma, self.b = sigma, X.mean(axis=0)
        for _ in range(self.epochs):
            keys = _core.philox_uniforms(self.seed_, STREAM_SHUFFLE, len(self.history_) % 2**32, 1, n)[0]
            order = np.argsort(keys, kind="stable")
            err = 0.0
            for s in range(0, n, self.batch_size):
                batch = X[order[s:s + self.batch_size]]
                try:
                    err += self._update(batch) * batch.shape[0]
                except FloatingPointError as exc:
                    raise FloatingPointError(f"training diverged in epoch {len(self.history_) + 1}: {exc}") from None
            self.history_.append({"epoch": len(self.history_) + 1, "recon_error": err / n})
        return self
