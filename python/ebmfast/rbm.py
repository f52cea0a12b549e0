"""Bernoulli-Bernoulli restricted Boltzmann machine on the compiled kernels.

E(v, h) = -b.v - c.h - v.W.h with W (n_visible, n_hidden), units in {0, 1}. Training by
CD-k or PCD-k (hidden statistics by p(h|v), DESIGN.md §4) with momentum and weight decay;
every random number comes from the shared Philox stream, indexed by the model's ``step``
counter, so a saved model resumes bit for bit.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from . import _checkpoint, _core
from ._backend import (check_float, check_int, check_memory, check_seed, check_steps,
                       check_units, resolve_device)
from ._interrupt import chunk_size, deferred_interrupt
from .reference import STREAM_INIT, STREAM_SHUFFLE

# device="auto" stays on the CPU until the CUDA path has passed its tests on a GPU
# (tests/test_rbm_cuda.py; without one it is checked under the host emulator:
# tests/test_cuda_emulated.py, tests/test_cuda_glue_emulated.py). Flipping it is also a
# behaviour change for every caller on a GPU machine: a model on the GPU refuses NumPy
# arrays (no silent copies), so code and tests that pass NumPy data to an RBM made with the
# default device would start raising TypeError there. device="cuda" asks for the GPU.
_CUDA_VERIFIED = False
_PRECISIONS = ("fp32", "tf32")
# Steps of a sampling call between two synchronisations on the GPU (where Ctrl-C is
# honoured): the GPU does roughly this many times the CPU's work per second.
_GPU_SPEEDUP = 64.0

_METHODS = ("cd", "pcd")
_MAX_UNITS = 2**28  # 32-bit table and list offsets inside the kernels
# gibbs_chains (csrc/cpu/rbm_layer.cpp) builds its subset tables itself once a call has
# this many rows x steps; a chunked call decides once for all its chunks (_call_tables).
_PREBUILD_ROW_STEPS = 512
_TABLE_CACHE_MAX_BYTES = 2**28  # the two cached subset tables (8x the size of W) at most


class RBM:
    """Restricted Boltzmann machine with binary units, trained by CD-k or PCD-k.

    Parameters
    ----------
    n_visible, n_hidden : int
        Layer sizes (>= 1).
    device : {"auto", "cpu", "cuda"}
        "cuda" keeps every parameter, chain and result on the GPU (CuPy arrays; any input
        exposing ``__cuda_array_interface__`` is taken without a copy, host arrays are
        refused) and runs the hand-written kernels on CuPy's current stream. "auto" picks
        the CPU until the CUDA path has been verified on a GPU (``rbm._CUDA_VERIFIED``);
        then a usable GPU (compute capability >= 8.0, CuPy installed).
    precision : {"fp32", "tf32"}
        GPU arithmetic: "fp32" (exact float32 products, the CPU's results up to rounding)
        or "tf32" (tensor cores; products of 10-bit-mantissa inputs). Ignored on the CPU.
    seed : int or None
        Seed of the Philox stream (and of the weight initialisation). None draws one.
    learning_rate, momentum, weight_decay : float
        velocity = momentum*velocity + learning_rate*(grad - weight_decay*W); W += velocity
        (biases: no weight decay).
    method : {"cd", "pcd"}
        Contrastive divergence (chains start at the data) or persistent CD
        (``batch_size`` chains carried across updates).
    k : int
        Gibbs steps per update (>= 1).
    batch_size, epochs : int
        Mini-batch size and number of epochs that one call of :meth:`fit` runs.
    progress : bool
        Show a tqdm bar with the epoch and the reconstruction error during :meth:`fit`.

    Attributes
    ----------
    W : ndarray (n_visible, n_hidden), b : (n_visible,), c : (n_hidden,)
        Read-only views; assign a new array to change them. sklearn aliases:
        ``components_`` (n_hidden, n_visible), ``intercept_hidden_``, ``intercept_visible_``.
    step : int
        Philox step counter; every Gibbs step consumes one.
    history_ : list of dict
        One entry per epoch trained (epoch, seconds, recon_error when computed).
    """

    _PARAM_NAMES = ("n_visible", "n_hidden", "device", "seed", "learning_rate", "method", "k",
                    "momentum", "weight_decay", "batch_size", "epochs", "progress", "precision")

    def __init__(self, n_visible: int, n_hidden: int, *, device: str = "auto",
                 seed: int | None = None, learning_rate: float = 0.05, method: str = "cd",
                 k: int = 1, momentum: float = 0.0, weight_decay: float = 0.0,
                 batch_size: int = 100, epochs: int = 10, progress: bool = False,
                 precision: str = "fp32"):
        params = self._validate_params(dict(
            n_visible=n_visible, n_hidden=n_hidden, device=device, seed=seed,
            learning_rate=learning_rate, method=method, k=k, momentum=momentum,
            weight_decay=weight_decay, batch_size=batch_size, epochs=epochs, progress=progress,
            precision=precision))
        for name, value in params.items():
            setattr(self, name, value)
        self._device = self._resolve(device)
        self._init_state()

    @staticmethod
    def _resolve(device: str) -> str:
        out = resolve_device(device, cuda_implemented=True)
        return "cpu" if (device == "auto" and not _CUDA_VERIFIED) else out

    @property
    def _gpu(self) -> bool:
        return self._device == "cuda"

    def _xp(self):
        """The array module of the model's device (numpy or cupy)."""
        if self._gpu:
            import cupy
            return cupy
        return np

    # ------------------------------------------------------------------ parameters

    @classmethod
    def _validate_params(cls, p: dict[str, Any]) -> dict[str, Any]:
        out = dict(p)
        out["n_visible"] = check_int(p["n_visible"], "n_visible", minimum=1, maximum=_MAX_UNITS)
        out["n_hidden"] = check_int(p["n_hidden"], "n_hidden", minimum=1, maximum=_MAX_UNITS)
        if out["n_visible"] * out["n_hidden"] > 2**40:
            raise MemoryError(f"n_visible * n_hidden = {out['n_visible'] * out['n_hidden']} "
                              "weights is beyond any machine's memory")
        # W, W^T, the velocity, the spare buffers (float32) and the float64 draw of W
        check_memory(24.0 * out["n_visible"] * out["n_hidden"],
                     f"RBM(n_visible={out['n_visible']}, n_hidden={out['n_hidden']})")
        cls._resolve(p["device"])  # unknown device -> ValueError, no GPU -> RuntimeError
        if not isinstance(p["precision"], str) or p["precision"] not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {p['precision']!r}")
        if p["seed"] is not None:
            out["seed"] = check_seed(p["seed"])
        out["learning_rate"] = check_float(p["learning_rate"], "learning_rate", minimum=0.0,
                                           open_min=True)
        if not isinstance(p["method"], str) or p["method"] not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {p['method']!r}")
        out["k"] = check_int(p["k"], "k", minimum=1, maximum=2**20)
        out["momentum"] = check_float(p["momentum"], "momentum", minimum=0.0, maximum=1.0)
        if out["momentum"] >= 1.0:
            raise ValueError(f"momentum must be < 1, got {out['momentum']}")
        out["weight_decay"] = check_float(p["weight_decay"], "weight_decay", minimum=0.0)
        out["batch_size"] = check_int(p["batch_size"], "batch_size", minimum=1, maximum=2**24)
        out["epochs"] = check_int(p["epochs"], "epochs", minimum=0, maximum=2**31)
        if not isinstance(p["progress"], (bool, np.bool_)):
            raise TypeError(f"progress must be a bool, got {p['progress']!r}")
        out["progress"] = bool(p["progress"])
        return out

    def _init_state(self) -> None:
        self.seed_ = check_seed(self.seed)
        rng = np.random.default_rng(self.seed_)
        # Hinton's practical guide: small Gaussian weights, zero biases.
        # (The same draw on every device: one seed gives the same initial model anywhere.)
        W = (0.01 * rng.standard_normal((self.n_visible, self.n_hidden))).astype(np.float32)
        xp = self._xp()
        self._W = xp.asarray(W)
        # The CPU kernels read W^T from a copy; the GPU kernels read W transposed in place.
        self._WT = None if self._gpu else np.ascontiguousarray(self._W.T)
        self._b = xp.zeros(self.n_visible, np.float32)
        self._c = xp.zeros(self.n_hidden, np.float32)
        self._vW = xp.zeros_like(self._W)
        self._vb = xp.zeros_like(self._b)
        self._vc = xp.zeros_like(self._c)
        self._init_device_buffers()
        self._chains: np.ndarray | None = None
        self._spare: tuple | None = None  # second parameter buffers (see _update)
        self._w_version = 0               # bumped whenever W changes (table cache key)
        self._tables: tuple | None = None  # (version, table of W, table of W^T)
        self._refresh_bounds()
        self.step = 0
        self.epochs_trained_ = 0
        self.history_: list[dict[str, float]] = []

    def _init_device_buffers(self) -> None:
        """GPU scratch (kept across updates) and the update's stats word pair."""
        if self._gpu:
            import cupy
            from ._rbm_cuda import Scratch
            self._scratch = Scratch()
            self._stats = cupy.zeros(2, cupy.uint32)
        else:
            self._scratch = self._stats = None

    def _move_to(self, device: str) -> None:
        """Move every array of the model to ``device`` (an explicit request: set_params)."""
        if device == self._device:
            return
        if device == "cuda":
            import cupy
            move = cupy.asarray
        else:
            move = _to_host
        for name in ("_W", "_b", "_c", "_vW", "_vb", "_vc"):
            setattr(self, name, move(getattr(self, name)))
        if self._chains is not None:
            self._chains = move(self._chains)
        self._device = device
        self._WT = None if self._gpu else np.ascontiguousarray(self._W.T)
        self._spare = None
        self._tables = None
        self._init_device_buffers()

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (sklearn protocol)."""
        return {name: getattr(self, name) for name in self._PARAM_NAMES}

    def set_params(self, **params) -> "RBM":
        """Set constructor parameters (sklearn protocol). All are validated before any is
        set; changing n_visible, n_hidden or seed re-initialises the model."""
        unknown = set(params) - set(self._PARAM_NAMES)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; valid: {self._PARAM_NAMES}")
        merged = self._validate_params({**self.get_params(), **params})
        reinit = any(merged[n] != getattr(self, n) for n in ("n_visible", "n_hidden", "seed"))
        for name, value in merged.items():
            setattr(self, name, value)
        self._move_to(self._resolve(self.device))
        if merged["batch_size"] != (None if self._chains is None else self._chains.shape[0]):
            self._chains = None  # PCD chains follow batch_size
        if reinit:
            self._init_state()
        return self

    def __repr__(self) -> str:
        prec = f", precision={self.precision!r}" if self._gpu else ""
        return (f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, method={self.method!r}, "
                f"k={self.k}, learning_rate={self.learning_rate}, device={self._device!r}{prec})")

    # ------------------------------------------------------------------ weights

    @staticmethod
    def _readonly(a):
        """A read-only view on the CPU; on the GPU (CuPy has no read-only arrays) a copy."""
        if not isinstance(a, np.ndarray):
            return a.copy()
        v = a.view()
        v.flags.writeable = False
        return v

    def _check_param_array(self, value, name: str, shape: tuple[int, ...]):
        """A float32 C-contiguous copy of a new parameter, on the model's device."""
        if self._gpu:
            return self._check_device_param(value, name, shape)
        if hasattr(value, "__cuda_array_interface__") or type(value).__module__.startswith("cupy"):
            raise TypeError(f"{name} is a GPU array but this model lives on the CPU; move it "
                            "to the host (e.g. cupy.asnumpy) or use a CUDA model")
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        if arr.size and np.abs(arr).max() > np.finfo(np.float32).max:
            raise ValueError(f"{name} has values beyond the float32 range")
        return np.array(arr, dtype=np.float32, order="C")

    def _check_device_param(self, value, name: str, shape: tuple[int, ...]):
        import cupy
        from ._layer_cuda import as_device_array
        arr = as_device_array(value, name)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        if arr.size:
            finite, top = (float(v) for v in cupy.stack(
                [cupy.isfinite(arr).all(), cupy.abs(arr).max()]).astype(cupy.float64).get())
            if not finite:
                raise ValueError(f"{name} contains NaN or infinite values")
            if top > np.finfo(np.float32).max:
                raise ValueError(f"{name} has values beyond the float32 range")
        return cupy.array(arr, dtype=cupy.float32, order="C")

    def _check_units(self, X, name: str, *, binary: bool):
        """(float32 C-contiguous array on the model's device, is_binary)."""
        if self._gpu:
            from ._layer_cuda import check_device_units
            return check_device_units(X, name, self.n_visible, binary=binary)
        return check_units(X, name, self.n_visible, binary=binary)

    @property
    def W(self) -> np.ndarray:
        return self._readonly(self._W)

    @W.setter
    def W(self, value) -> None:
        self._W = self._check_param_array(value, "W", (self.n_visible, self.n_hidden))
        self._WT = None if self._gpu else np.ascontiguousarray(self._W.T)
        self._w_version += 1
        self._refresh_bounds()

    @property
    def b(self) -> np.ndarray:
        return self._readonly(self._b)

    @b.setter
    def b(self, value) -> None:
        self._b = self._check_param_array(value, "b", (self.n_visible,))
        self._refresh_bounds()

    @property
    def c(self) -> np.ndarray:
        return self._readonly(self._c)

    @c.setter
    def c(self, value) -> None:
        self._c = self._check_param_array(value, "c", (self.n_hidden,))
        self._refresh_bounds()

    # sklearn BernoulliRBM attribute names and shapes
    @property
    def components_(self) -> np.ndarray:
        if self._gpu:
            return self._W.T.copy()
        return self._readonly(self._WT)

    @property
    def intercept_hidden_(self) -> np.ndarray:
        return self.c

    @property
    def intercept_visible_(self) -> np.ndarray:
        return self.b

    @property
    def n_components(self) -> int:
        return self.n_hidden

    @property
    def n_features_in_(self) -> int:
        return self.n_visible

    @property
    def device_(self) -> str:
        return self._device

    # ------------------------------------------------------------------ training

    def _take_steps(self, n: int) -> int:
        """Reserve n Philox steps; returns the first."""
        first = self.step
        if first + n >= 2**32:
            raise OverflowError("the model's Philox step counter is exhausted (2**32 steps)")
        self.step = first + n
        return first

    def _ensure_chains(self) -> np.ndarray:
        if self._chains is None or self._chains.shape[0] != self.batch_size:
            step = self._take_steps(1)
            u = _core.philox_uniforms(self.seed_, STREAM_INIT, step, self.batch_size, self.n_visible)
            self._chains = self._xp().asarray((u < 0.5).astype(np.float32))
        return self._chains

    def _params(self) -> tuple:
        return (self._W, self._WT, self._b, self._c, self._vW, self._vb, self._vc)

    def _refresh_bounds(self) -> None:
        """Largest |parameter| and |velocity|: they bound what the next update can reach."""
        self._max_param = max(_abs_max(a) for a in (self._W, self._b, self._c))
        self._max_velocity = max(_abs_max(a) for a in (self._vW, self._vb, self._vc))

    def _in_place_is_safe(self) -> bool:
        """Every gradient entry lies in [-1, 1] (averages of products of values in [0, 1]),
        so |new velocity| <= momentum*max|v| + lr*(1 + wd*max|p|) and |new param| <= max|p|
        + that. When even a field summed over a whole layer of such parameters stays far
        from float32 overflow, the update cannot produce a non-finite value and may be
        written in place; otherwise it goes to spare buffers first."""
        dv = self.momentum * self._max_velocity + self.learning_rate * (
            1.0 + self.weight_decay * self._max_param)
        return (max(self.n_visible, self.n_hidden) + 2) * (self._max_param + 2 * dv) < 1e37

    def _update(self, V: np.ndarray, binary: bool, want_recon: bool, recon_sum=None) -> float:
        """One CD/PCD update. A diverging update raises FloatingPointError and leaves the
        model exactly as it was (PCD chains included): it is written in place only when
        it provably stays finite, else into spare buffers swapped in when finite."""
        pcd = self.method == "pcd"
        if max(V.shape[0], self.batch_size if pcd else 0) * self.n_visible >= 2**31:
            raise ValueError(f"X: a batch of {V.shape[0]} rows x {self.n_visible} units is too "
                             "large for one update (rows * n_visible must be < 2**31); use "
                             "smaller batches")
        if self.step + self.k + 1 >= 2**32:
            raise OverflowError("the model's Philox step counter is exhausted (2**32 steps)")
        if self._gpu:
            self._update_cuda(V, recon_sum)
            return float("nan")
        step_before, chains_before = self.step, self._chains
        chain = self._ensure_chains() if pcd else None
        in_place = self._in_place_is_safe()
        chain_copy = None if (in_place or not pcd) else chain.copy()
        if not in_place and (self._spare is None or self._spare[0].shape != self._W.shape):
            self._spare = tuple(np.empty_like(a) for a in self._params())
        # A Ctrl-C during the kernel would surface as soon as it returns, between an
        # in-place write and the bookkeeping below (step, table version, bounds): hold it
        # until the update is complete.
        with deferred_interrupt():
            _, recon, finite, max_param, max_velocity = _core.cd_update(
                *self._params(), V, binary, chain, self.k, self.learning_rate, self.momentum,
                self.weight_decay, self.seed_, self.step, False, want_recon,
                None if in_place else self._spare)
            if not finite:
                if pcd and chain_copy is not None:
                    self._chains[...] = chain_copy
                    if chains_before is None:   # created by this call: undo that too
                        self._chains, self.step = None, step_before
                raise FloatingPointError(
                    "the update produced non-finite parameters and was discarded; lower "
                    f"learning_rate (now {self.learning_rate}) or momentum (now {self.momentum})")
            if not in_place:
                current = self._params()
                (self._W, self._WT, self._b, self._c, self._vW, self._vb, self._vc) = self._spare
                self._spare = current
            self._max_param, self._max_velocity = float(max_param), float(max_velocity)
            self._w_version += 1
            self.step += self.k
        return recon

    def _update_cuda(self, V, recon_sum) -> None:
        """The GPU update. When the update provably stays finite (_in_place_is_safe) it
        runs in place and the bounds advance on the host without reading anything back:
        no synchronisation per update. Otherwise it goes to spare buffers and the kernel's
        max |param| / |velocity| (one readback) decides: non-finite raises
        FloatingPointError with the model unchanged, finite swaps the buffers in and resets
        the bounds to the exact values."""
        import cupy
        from . import _rbm_cuda
        pcd = self.method == "pcd"
        step_before, chains_before = self.step, self._chains
        chain = self._ensure_chains() if pcd else None
        in_place = self._in_place_is_safe()
        chain_copy = None if (in_place or not pcd) else chain.copy()
        params = (self._W, self._b, self._c)
        velocities = (self._vW, self._vb, self._vc)
        if in_place:
            out_params, out_velocities = params, velocities
        else:
            if self._spare is None or self._spare[0].shape != self._W.shape \
                    or isinstance(self._spare[0], np.ndarray):
                self._spare = tuple(cupy.empty_like(a) for a in params + velocities)
            out_params, out_velocities = self._spare[:3], self._spare[3:]
        with deferred_interrupt():
            _rbm_cuda.cd_update(params, velocities, out_params, out_velocities, V, chain, self.k,
                                learning_rate=self.learning_rate, momentum=self.momentum,
                                weight_decay=self.weight_decay, seed=self.seed_, step=self.step,
                                precision=self.precision, scratch=self._scratch,
                                stats=self._stats, recon=recon_sum)
            if in_place:
                # |gradient| <= 1, so these bound the new values (see _in_place_is_safe).
                dv = self.momentum * self._max_velocity + self.learning_rate * (
                    1.0 + self.weight_decay * self._max_param)
                self._max_velocity, self._max_param = dv, self._max_param + dv
            else:
                mw, mv = (int(x) for x in self._stats.get())
                if mw >= _rbm_cuda.NON_FINITE_BITS or mv >= _rbm_cuda.NON_FINITE_BITS:
                    if pcd and chain_copy is not None:
                        self._chains[...] = chain_copy
                        if chains_before is None:
                            self._chains, self.step = None, step_before
                    raise FloatingPointError(
                        "the update produced non-finite parameters and was discarded; lower "
                        f"learning_rate (now {self.learning_rate}) or momentum (now {self.momentum})")
                current = params + velocities
                (self._W, self._b, self._c, self._vW, self._vb, self._vc) = self._spare
                self._spare = current
                self._max_param = _rbm_cuda.bits_to_float(mw)
                self._max_velocity = _rbm_cuda.bits_to_float(mv)
            self._w_version += 1
            self.step += self.k

    def fit(self, X, y=None, *, monitor: str | None = None, checkpoint=None,
            checkpoint_every: int = 1, resume=None, _until: int | None = None,
            _on_epoch=None) -> "RBM":
        """Train for ``epochs`` epochs of shuffled mini-batches, continuing from the current
        parameters (a new model starts from its initialisation; a loaded one resumes).

        X : array (n_samples, n_visible) with values in [0, 1] (binary or probabilities).
        monitor : None, "recon" (mean-field reconstruction error of the epoch's batches) or
        "pl" (mean exact pseudo-log-likelihood of up to the first 1000 rows of X, binarised
        at 0.5, after the epoch): recorded per epoch in ``history_``.
        checkpoint, checkpoint_every : write the full training state (as :meth:`save`, plus
        the progress of this call) atomically to ``checkpoint`` every ``checkpoint_every``
        epochs and after the last one.
        resume : a checkpoint path: the model's state and hyper-parameters are replaced by
        the file's (the sizes must match) and the interrupted call is finished, so that the
        result equals an uninterrupted run bit for bit; X must be the same data. A file
        from :meth:`save` (no call in progress) trains ``epochs`` more epochs.
        If an update diverges, FloatingPointError names the epoch; the model keeps the
        last finite parameters.
        """
        if monitor not in (None, "recon", "pl"):
            raise ValueError(f"monitor must be None, 'recon' or 'pl', got {monitor!r}")
        ck = _checkpoint.FitCheckpoints(checkpoint, checkpoint_every)
        loaded = fit_meta = None
        if resume is not None:
            resume = _checkpoint.check_resume_path(resume)
            loaded, fit_meta = self._read(resume)
            if (loaded.n_visible, loaded.n_hidden) != (self.n_visible, self.n_hidden):
                raise ValueError(f"resume: {resume!r} holds a {loaded.n_visible}x{loaded.n_hidden} "
                                 f"RBM, this one is {self.n_visible}x{self.n_hidden}")
        X, binary = self._check_units(X, "X", binary=False)
        data_id = _checkpoint.fingerprint(_to_host(X)) if (ck.path or loaded) else None
        if loaded is not None:
            _checkpoint.check_same_data(resume, fit_meta, data_id)
            _checkpoint.adopt(self, loaded, keep=("progress",))
        if fit_meta is not None:
            target = fit_meta["target"]
        else:
            target = self.epochs_trained_ + self.epochs if _until is None else _until
        n = X.shape[0]
        pl_rows = (X[:1000] >= 0.5).astype(np.float32) if monitor == "pl" else None
        xp = self._xp()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=max(target - self.epochs_trained_, 0), desc="RBM fit", unit="epoch")
        try:
            for _ in range(target - self.epochs_trained_):
                t0 = time.perf_counter()
                # Epoch order from the Philox shuffle stream: a resumed model sees the
                # same order as an uninterrupted one.
                keys = _core.philox_uniforms(self.seed_, STREAM_SHUFFLE,
                                             self.epochs_trained_ % 2**32, 1, n)[0]
                order = np.argsort(keys, kind="stable")
                want_recon = bar is not None or monitor == "recon"
                err = 0.0
                # GPU: one gather of the epoch's rows, then contiguous slices; the
                # reconstruction error is summed on the device and read once per epoch.
                Xe = X[xp.asarray(order)] if self._gpu else X
                recon_sum = xp.zeros(1, xp.float64) if (self._gpu and want_recon) else None
                for start in range(0, n, self.batch_size):
                    if self._gpu:
                        batch = Xe[start:start + self.batch_size]
                    else:
                        batch = X[order[start:start + self.batch_size]]
                    try:
                        recon = self._update(batch, binary, want_recon=want_recon,
                                             recon_sum=recon_sum)
                    except FloatingPointError as exc:
                        raise FloatingPointError(
                            f"training diverged in epoch {self.epochs_trained_ + 1}: {exc}") from None
                    err += recon * batch.shape[0]
                if recon_sum is not None:
                    err = float(recon_sum.get()[0])
                self.epochs_trained_ += 1
                entry = {"epoch": self.epochs_trained_, "seconds": time.perf_counter() - t0}
                if bar is not None or monitor == "recon":
                    entry["recon_error"] = float(err / n)
                if monitor == "pl":
                    entry["pseudo_log_likelihood"] = float(self.score_samples(pl_rows).mean())
                if bar is not None:
                    bar.set_postfix(epoch=self.epochs_trained_, recon=f"{entry['recon_error']:.4f}")
                    bar.update(1)
                self.history_.append(entry)
                if _on_epoch is not None:
                    _on_epoch()
                ck.epoch_done(self.epochs_trained_, self.epochs_trained_ >= target,
                              lambda p: self._write(p, {"target": target, "data": data_id}))
        finally:
            if bar is not None:
                bar.close()
        return self

    def partial_fit(self, X, y=None) -> "RBM":
        """One CD-k / PCD-k update with X as the mini-batch (sklearn semantics)."""
        X, binary = self._check_units(X, "X", binary=False)
        self._update(X, binary, want_recon=False)
        return self

    def gradient(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The CD-k / PCD-k gradient estimate (dW, db, dc) on batch X, without updating the
        parameters (the Philox step and PCD chains do advance)."""
        X, binary = self._check_units(X, "X", binary=False)
        chain = self._ensure_chains() if self.method == "pcd" else None
        step = self._take_steps(self.k)
        if self._gpu:
            import cupy
            from . import _rbm_cuda
            grads = (cupy.empty_like(self._W), cupy.empty_like(self._b), cupy.empty_like(self._c))
            _rbm_cuda.cd_update((self._W, self._b, self._c), None, grads, None, X, chain, self.k,
                                learning_rate=self.learning_rate, momentum=self.momentum,
                                weight_decay=self.weight_decay, seed=self.seed_, step=step,
                                precision=self.precision, scratch=self._scratch,
                                gradient_only=True)
            return grads
        (dW, db, dc), *_ = _core.cd_update(
            self._W, self._WT, self._b, self._c, self._vW, self._vb, self._vc, X, binary, chain,
            self.k, self.learning_rate, self.momentum, self.weight_decay, self.seed_, step, True,
            False)
        return dW, db, dc

    # ------------------------------------------------------------------ inference and sampling

    def transform(self, X) -> np.ndarray:
        """p(h = 1 | v) for each row of X: (n_samples, n_hidden) float32."""
        X, binary = self._check_units(X, "X", binary=False)
        if self._gpu:
            from ._rbm_cuda import hidden_probabilities
            return hidden_probabilities(self._W, self._c, X, self.precision)
        _, p, _ = _core.layer_forward(X, self._W, self._c, 1.0, binary, False, True, False, 0,
                                      0, 0, 0)
        return p

    def _gibbs_tables(self, row_steps: int) -> tuple | None:
        """Subset-sum tables of W and W^T for the Gibbs kernels, kept while W is unchanged, so
        that repeated sampling calls do not rebuild them (at 784 x 500 on 2 threads the two
        builds were ~11% of a 1000-chain Gibbs step). Built once a call is long enough to pay
        for them; never for models whose tables (8x the size of W) would exceed 256 MB."""
        if self._tables is not None and self._tables[0] == self._w_version:
            return self._tables[1:]
        if row_steps < 256 or 32 * self.n_visible * self.n_hidden > _TABLE_CACHE_MAX_BYTES:
            return None
        self._tables = (self._w_version, _core.subset_table(self._W), _core.subset_table(self._WT))
        return self._tables[1:]

    def _call_tables(self, row_steps: int) -> tuple | None:
        """Tables for a whole sampling call of ``row_steps`` rows x steps, decided once, so
        that cutting the call into chunks cannot change which kernel path (and so which
        float rounding) a step takes: the cached ones, else - when one kernel call of that
        size would build them itself - tables built for this call only."""
        tables = self._gibbs_tables(row_steps)
        if tables is None and row_steps >= _PREBUILD_ROW_STEPS:
            tables = (_core.subset_table(self._W), _core.subset_table(self._WT))
        return tables

    def _gibbs_inplace(self, V: np.ndarray, n_steps: int, beta: float, V_in=None,
                       tables=None) -> None:
        """n_steps Gibbs steps of V in place (from V_in into V when given), in kernel calls
        of about _interrupt.CHUNK_WORK operations: Ctrl-C is honoured between calls, and
        the Philox step of every Gibbs step is the same however the run is cut."""
        b, c = self._b, self._c
        if beta != 1.0:  # p ∝ exp(-beta E): the kernel scales v.W, the biases come scaled
            b, c = (beta * b).astype(np.float32), (beta * c).astype(np.float32)
        if self.step + n_steps >= 2**32:  # before the first chunk, not half-way
            raise OverflowError("the model's Philox step counter is exhausted (2**32 steps)")
        if self._gpu:
            self._gibbs_cuda(V, n_steps, beta, b, c, V_in)
            return
        if tables is None:
            tables = self._call_tables(V.shape[0] * n_steps)
        chunk = chunk_size(2.0 * V.shape[0] * self.n_visible * self.n_hidden, n_steps)
        done = 0
        while done < n_steps:
            k = min(chunk, n_steps - done)
            step = self._take_steps(k)
            _core.gibbs(self._W, self._WT, b, c, V if V_in is None else V_in,
                        None if V_in is None else V, k, beta, self.seed_, step, 0, tables)
            V_in = None
            done += k

    def _gibbs_cuda(self, V, n_steps: int, beta: float, b, c, V_in) -> None:
        """The GPU counterpart of _gibbs_inplace: chunks of steps, the stream synchronised
        between chunks of a long run so that Ctrl-C is honoured there."""
        import cupy
        from . import _rbm_cuda
        if V_in is not None:
            V[...] = V_in
        chunk = chunk_size(2.0 * V.shape[0] * self.n_visible * self.n_hidden / _GPU_SPEEDUP,
                           n_steps)
        done = 0
        while done < n_steps:
            k = min(chunk, n_steps - done)
            step = self._take_steps(k)
            _rbm_cuda.gibbs(self._W, b, c, V, k, beta, self.seed_, step, self.precision,
                            self._scratch)
            done += k
            if done < n_steps:
                cupy.cuda.get_current_stream().synchronize()

    def gibbs(self, V, k: int = 1) -> np.ndarray:
        """k block-Gibbs steps v -> h -> v from the binary states V; returns the new V
        (n_samples, n_visible) float32. V itself is not modified."""
        k = check_int(k, "k", minimum=1)
        check_steps(self.step, k, "k")
        V, _ = self._check_units(V, "V", binary=True)
        out = self._xp().empty_like(V)  # the first chunk reads V, writes out: V is untouched
        self._gibbs_inplace(out, k, 1.0, V_in=V)
        return out

    def _check_beta(self, beta: float) -> None:
        """beta * b and beta * c go to the kernel as float32: they must stay finite."""
        top = max(_abs_max(self._b), _abs_max(self._c), 1.0)
        if beta * top > float(np.finfo(np.float32).max) / 4:
            raise ValueError(f"beta={beta} is too large: beta times the biases must fit in float32")

    def sample(self, n_samples: int, n_steps: int = 1000, beta: float = 1.0) -> np.ndarray:
        """Samples of p(v) ∝ exp(-beta F(v)) from n_samples fresh chains (uniform random
        start) after n_steps Gibbs steps: (n_samples, n_visible) float32."""
        n_samples = check_int(n_samples, "n_samples", minimum=1, maximum=2**31 - 1)
        n_steps = check_int(n_steps, "n_steps", minimum=0)
        beta = check_float(beta, "beta", minimum=0.0)
        self._check_beta(beta)
        check_steps(self.step, n_steps + 1, "n_steps")
        check_memory(8.0 * n_samples * self.n_visible, f"sample(n_samples={n_samples})")
        step = self._take_steps(1)
        V = (_core.philox_uniforms(self.seed_, STREAM_INIT, step, n_samples, self.n_visible)
             < 0.5).astype(np.float32)
        V = self._xp().asarray(V)
        self._gibbs_inplace(V, n_steps, beta)
        return V

    # ------------------------------------------------------------------ scores

    def free_energy(self, V) -> np.ndarray:
        """F(v) = -b.v - sum_j softplus(c_j + (vW)_j): (n_samples,) float64."""
        return self._free_energy(V, "V")

    def _free_energy(self, V, name: str):
        V, binary = self._check_units(V, name, binary=False)
        if self._gpu:
            from ._rbm_cuda import free_energy
            return free_energy(self._W, self._b, self._c, V)
        return _core.free_energy(self._W, self._WT, self._b, self._c, V, binary)

    def score_samples(self, X) -> np.ndarray:
        """Full pseudo-log-likelihood sum_i log p(v_i | v_-i) of each binary row of X
        (deterministic; sklearn's estimate samples one unit): (n_samples,) float64."""
        X, _ = self._check_units(X, "X", binary=True)
        if self._gpu:
            from ._rbm_cuda import pseudo_log_likelihood
            return pseudo_log_likelihood(self._W, self._b, self._c, X)
        return _core.pseudo_log_likelihood(self._W, self._WT, self._b, self._c, X, True)

    def log_partition(self, method: str = "exact", **kwargs) -> float:
        """log Z. method="exact" enumerates the smaller layer (min(n_visible, n_hidden) <= 25);
        method="ais" estimates it (``ebmfast.estimators.ais``: n_runs, betas, data, seed)."""
        from . import estimators
        if method == "exact":
            return estimators.exact_log_partition(self, **kwargs)
        if method == "ais":
            return estimators.ais(self, **kwargs).log_z
        raise ValueError(f"method must be 'exact' or 'ais', got {method!r}")

    def log_likelihood(self, X, log_z: float | None = None, **kwargs) -> np.ndarray:
        """log p(v) = -F(v) - log Z per row of X; log Z computed by log_partition(**kwargs)
        unless given."""
        F = self._free_energy(X, "X")
        if log_z is None:
            log_z = self.log_partition(**kwargs)
        else:
            log_z = check_float(log_z, "log_z")
        return -F - log_z

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters, hyper-parameters, velocities, the Philox step and the PCD chains
        to an .npz file (atomically: a crash never leaves a half-written file)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError("path must name a file as str, got bytes")
        if not path or os.path.isdir(path):
            raise ValueError(f"path must name a file, got {path!r}")
        self._write(path)

    def _state(self) -> tuple[dict, dict]:
        """(meta, arrays) of the full state: everything :meth:`load` needs to continue."""
        meta = {"params": self.get_params(), "seed_": str(self.seed_), "step": self.step,
                "epochs_trained_": self.epochs_trained_, "history_": self.history_}
        arrays = dict(W=self._W, b=self._b, c=self._c, vW=self._vW, vb=self._vb, vc=self._vc,
                      chains=(np.zeros((0, self.n_visible), np.float32) if self._chains is None
                              else self._chains))
        arrays = {name: _to_host(a) for name, a in arrays.items()}  # files hold host arrays
        return meta, arrays

    def _write(self, path, fit: dict | None = None) -> None:
        meta, arrays = self._state()
        if fit is not None:
            meta["fit"] = fit
        _checkpoint.write(path, "RBM", meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "RBM":
        """Read a model written by :meth:`save` (or a checkpoint of :meth:`fit`); training
        continues exactly where it stopped. ``device`` ("cpu", "cuda", "auto") places it;
        None keeps the device it was saved from when that is available here, else the CPU
        (a model saved on the GPU loads on a CPU-only machine, and the reverse)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if device is not None:
            cls._resolve(device)  # a bad device fails before the file is read
        return cls._read(os.fspath(path), device)[0]

    @classmethod
    def _read(cls, path: str, device: str | None = None) -> tuple["RBM", dict | None]:
        """(model, progress of the fit call that wrote the checkpoint, or None)."""
        meta, arrays = _checkpoint.read(path, "RBM")
        try:
            model = cls._from_state(meta, arrays, device)
            fit = meta.get("fit")
            if fit is not None:
                if not isinstance(fit.get("target"), int) or fit["target"] < model.epochs_trained_:
                    raise ValueError(f"fit target {fit.get('target')!r}")
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise _checkpoint.damaged(path, "RBM", exc) from None
        return model, fit

    @classmethod
    def _from_state(cls, meta: dict, data: dict, device: str | None = None) -> "RBM":
        params = dict(meta["params"])
        params.setdefault("precision", "fp32")  # files written before the GPU backend
        if device is not None:
            params["device"] = device
        elif params.get("device") == "cuda" and not (
                _core.cuda_compiled and _core.cuda_device_count() > 0):
            params["device"] = "auto"
        target = params.get("device", "auto")
        # Read and check everything on the host, then move it (one explicit copy).
        model = cls(**{**params, "device": "cpu"})
        model.W = _checkpoint.array(data, "W")
        model.b = _checkpoint.array(data, "b")
        model.c = _checkpoint.array(data, "c")
        model._vW = _checkpoint.array(data, "vW", model._W.shape)
        model._vb = _checkpoint.array(data, "vb", model._b.shape)
        model._vc = _checkpoint.array(data, "vc", model._c.shape)
        chains = _checkpoint.array(data, "chains")
        if chains.ndim != 2 or chains.shape[1] != model.n_visible:
            raise ValueError(f"chains: expected shape (rows, {model.n_visible}), got {chains.shape}")
        model._chains = None if chains.shape[0] == 0 else chains
        model._refresh_bounds()
        model.seed_ = check_seed(int(meta["seed_"]))
        model.step = check_int(meta["step"], "step", minimum=0, maximum=2**32 - 1)
        model.epochs_trained_ = check_int(meta["epochs_trained_"], "epochs_trained_", minimum=0)
        if model._chains is not None and not np.isin(model._chains, (0.0, 1.0)).all():
            raise ValueError("chains (the PCD chains must be binary)")
        history = meta.get("history_", [])
        if not isinstance(history, list):
            raise TypeError("history_ is not a list")
        model.history_ = list(history)
        model.device = target
        model._move_to(cls._resolve(target))
        return model


def _to_host(a):
    """A NumPy array of a host or device (CuPy) array: device arrays are copied back."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a


def _abs_max(a) -> float:
    """max |a| as a Python float (0 for an empty array), on either device."""
    return float(abs(a).max()) if a.size else 0.0
