"""Gaussian-Bernoulli RBM: real-valued visible units with per-unit standard deviations
sigma, binary hidden units (the parameterisation of Cho, Ilin & Raiko 2011):

    E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c.h - sum_ij (v_i / sigma_i^2) W_ij h_j
    p(h_j = 1 | v) = sigmoid(c_j + sum_i W_ij v_i / sigma_i^2)
    p(v_i | h)     = Normal(b_i + sum_j W_ij h_j, sigma_i^2)

sigma is fixed (from the data's per-unit standard deviation, or given) or, with
``learn_sigma=True``, learned as z_i = log sigma_i^2 (Cho et al.'s parameterisation: the
gradient of -E with respect to z_i is e^{-z_i} ((v_i - b_i)^2 / 2 - v_i (W h)_i)). Uniforms come from
the shared Philox stream (hidden units: STREAM_HIDDEN; visible normals: Box-Muller on
units 2i, 2i+1 of STREAM_VISIBLE), products through the module's BLAS.
"""
from __future__ import annotations

import os

import numpy as np

from . import _checkpoint, _core
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
                 batch_size: int = 100, epochs: int = 10, seed=None, learn_sigma: bool = False):
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
        if not isinstance(learn_sigma, (bool, np.bool_)):
            raise TypeError(f"learn_sigma must be True or False, got {learn_sigma!r}")
        self.learn_sigma = bool(learn_sigma)
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
        self._vel_log_var = np.zeros(self.n_visible)  # velocity of z = log sigma^2
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

    def log_partition(self) -> float:
        """Exact log Z by enumerating the hidden layer (the visibles integrate in closed
        form): log sum_h exp(c.h + sum_i ((b_i + (W h)_i)^2 - b_i^2) / (2 sigma_i^2))
        + sum_i log(sqrt(2 pi) sigma_i). Up to 25 hidden units."""
        self._require_sigma()
        from .estimators import _MAX_EXACT_BITS, _log_sum_exp_chunks
        if self.n_hidden > _MAX_EXACT_BITS:
            raise ValueError(f"exact log Z needs 2**{self.n_hidden} terms (n_hidden > "
                             f"{_MAX_EXACT_BITS}); use ebmfast.estimators.ais")
        s2 = self.sigma ** 2

        def scores(H):
            m = self.b + H @ self.W.T
            return H @ self.c + ((m ** 2 - self.b ** 2) / (2 * s2)).sum(axis=1)
        return float(_log_sum_exp_chunks(scores, self.n_hidden)
                     + np.log(np.sqrt(2 * np.pi) * self.sigma).sum())

    def log_likelihood(self, X, log_z: float | None = None) -> np.ndarray:
        """log p(v) = -F(v) - log Z per row (log Z exact unless given, e.g. from AIS)."""
        return -self.free_energy(X) - (self.log_partition() if log_z is None else float(log_z))

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
        if self.learn_sigma:  # z = log sigma^2; d(-E)/dz = ((v - b)^2 / 2 - v (W h)) / sigma^2
            def dz(V, P):
                return ((0.5 * (V - self.b) ** 2 - V * (P @ self.W.T)) / s2).mean(axis=0)
            vz = self.momentum * self._vel_log_var + self.learning_rate * (dz(V0, P0) - dz(Vk, Pk))
            # sigma >= 1e-3, as for sigma="data"
            new.append((np.maximum(np.log(s2) + vz, 2.0 * np.log(1e-3)), vz))
        recon = new[1][0] + P0 @ new[0][0].T  # mean-field reconstruction E[v | p(h | v0)]
        err = float(((V0 - recon) ** 2).sum(axis=1).mean())
        # The chains and the reconstruction error are checked too: a finite but huge W can
        # already send the sampled visibles (and so the next update) to inf.
        if not (all(np.isfinite(p).all() and np.isfinite(v).all() for p, v in new)
                and np.isfinite(Vk).all() and np.isfinite(err)):
            raise FloatingPointError("non-finite parameters: lower learning_rate (Gaussian "
                                     "visibles diverge easily) or standardise the data")
        (self.W, self._vel[0]), (self.b, self._vel[1]), (self.c, self._vel[2]) = new[:3]
        if self.learn_sigma:
            self.sigma, self._vel_log_var = np.sqrt(np.exp(new[3][0])), new[3][1]
        return err

    def fit(self, X, *, checkpoint=None, checkpoint_every: int = 1, resume=None) -> "GaussianRBM":
        """``epochs`` epochs of shuffled mini-batches; history_ records the mean-field
        reconstruction error per epoch. Divergence raises FloatingPointError naming the
        epoch and keeps the last finite parameters.

        checkpoint, checkpoint_every : write the full training state atomically every
        ``checkpoint_every`` epochs and after the last one. resume : a checkpoint path; the
        model's state and hyper-parameters become the file's and the interrupted call is
        finished bit for bit (X must be the same data)."""
        ck = _checkpoint.FitCheckpoints(checkpoint, checkpoint_every)
        loaded = fit_meta = None
        if resume is not None:
            resume = _checkpoint.check_resume_path(resume)
            loaded, fit_meta = self._read(resume)
            if (loaded.n_visible, loaded.n_hidden) != (self.n_visible, self.n_hidden):
                raise ValueError(f"resume: {resume!r} holds a {loaded.n_visible}x{loaded.n_hidden} "
                                 f"GaussianRBM, this one is {self.n_visible}x{self.n_hidden}")
        X = _real(X, "X", self.n_visible).astype(np.float64)
        data_id = _checkpoint.fingerprint(X) if (ck.path or loaded) else None
        if loaded is not None:
            _checkpoint.check_same_data(resume, fit_meta, data_id)
            _checkpoint.adopt(self, loaded)
        n = X.shape[0]
        target = fit_meta["target"] if fit_meta is not None else len(self.history_) + self.epochs
        n_batches = -(-n // self.batch_size)
        check_steps(self._step, (target - len(self.history_)) * n_batches * (2 * self.k + 3),
                    "epochs")
        if self.sigma is None:
            with np.errstate(over="ignore", invalid="ignore"):
                sigma = np.maximum(X.std(axis=0), 1e-3)
            if not np.isfinite(sigma).all() or np.any(sigma > _SIGMA_RANGE[1]):
                raise ValueError("X is too spread out to set sigma='data' (its standard "
                                 "deviation overflows): standardise the data")
            self.sigma, self.b = sigma, X.mean(axis=0)
        for _ in range(target - len(self.history_)):
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
            ck.epoch_done(len(self.history_), len(self.history_) >= target,
                          lambda p: self._write(p, {"target": target, "data": data_id}))
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the full state (parameters, velocities, sigma, Philox step, PCD chains,
        history, hyper-parameters) to an .npz file, atomically."""
        self._write(path)

    def _write(self, path, fit: dict | None = None) -> None:
        params = dict(n_visible=self.n_visible, n_hidden=self.n_hidden,
                      learning_rate=self.learning_rate, method=self.method, k=self.k,
                      momentum=self.momentum, weight_decay=self.weight_decay,
                      batch_size=self.batch_size, epochs=self.epochs,
                      learn_sigma=self.learn_sigma)
        meta = {"params": params, "seed_": str(self.seed_), "step": self._step,
                "history_": self.history_, "has_sigma": self.sigma is not None,
                "has_chains": self.chains_ is not None}
        if fit is not None:
            meta["fit"] = fit
        empty = np.zeros(0)
        arrays = dict(W=self.W, b=self.b, c=self.c, vW=self._vel[0], vb=self._vel[1],
                      vc=self._vel[2], v_log_var=self._vel_log_var,
                      sigma=empty if self.sigma is None else self.sigma,
                      chains=empty if self.chains_ is None else self.chains_)
        _checkpoint.write(path, "GaussianRBM", meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GaussianRBM":
        """Read a model written by :meth:`save` or a checkpoint of :meth:`fit`."""
        return cls._read(os.fspath(path))[0]

    @classmethod
    def _read(cls, path: str):
        meta, a = _checkpoint.read(path, "GaussianRBM")
        try:
            p = meta["params"]
            model = cls(seed=int(meta["seed_"]), **p)
            nv, nh = model.n_visible, model.n_hidden
            f64 = np.float64
            model.W = _checkpoint.array(a, "W", (nv, nh), f64)
            model.b = _checkpoint.array(a, "b", (nv,), f64)
            model.c = _checkpoint.array(a, "c", (nh,), f64)
            model._vel = [_checkpoint.array(a, "vW", (nv, nh), f64),
                          _checkpoint.array(a, "vb", (nv,), f64),
                          _checkpoint.array(a, "vc", (nh,), f64)]
            model._vel_log_var = _checkpoint.array(a, "v_log_var", (nv,), f64)
            if meta["has_sigma"]:
                model.sigma = _checkpoint.array(a, "sigma", (nv,), f64)
                if np.any(model.sigma <= 0):
                    raise ValueError("sigma must be > 0")
            if meta["has_chains"]:
                model.chains_ = _checkpoint.array(a, "chains", None, f64)
                if model.chains_.ndim != 2 or model.chains_.shape[1] != nv:
                    raise ValueError(f"chains: bad shape {model.chains_.shape}")
            model._step = check_int(meta["step"], "step", minimum=0, maximum=2**32 - 1)
            if not isinstance(meta["history_"], list):
                raise TypeError("history_ is not a list")
            model.history_ = list(meta["history_"])
            fit = meta.get("fit")
            if fit is not None and (not isinstance(fit.get("target"), int)
                                    or fit["target"] < len(model.history_)):
                raise ValueError(f"fit target {fit.get('target')!r}")
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise _checkpoint.damaged(path, "GaussianRBM", exc) from None
        return model, fit
