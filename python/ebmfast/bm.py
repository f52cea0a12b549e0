"""The Boltzmann machine of the lectures: binary units y in {0,1}, fully connected visible
(+ optional one-hot label) + hidden units, E(y) = -sum_{i<j} w_ij y_i y_j - sum_i b_i y_i.

Sampling runs on the spin-chain kernel of ``ising.py``: with y = (1 + s)/2 the energy is an
Ising energy in dimod's sign with J_ij = -w_ij/4 and h_i = -b_i/2 - sum_j w_ij/4 (plus a
constant), and heat-bath sweeps with clamped units are exactly the clamped and free phases
of Boltzmann learning. Unit order: visible, then label, then hidden.

Training on the CPU makes one kernel call per mini-batch (``_core.bm_step``: both phases,
the statistics and the update, on the same Philox units as the composition of
``ising_chains`` calls below, which the CUDA device runs and the tests compare against).
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import _checkpoint, _core
from ._backend import (check_bool, check_float, check_int, check_memory, check_seed,
                       check_steps, check_units)
from ._interrupt import chunk_size
from .reference import STREAM_INIT, STREAM_SHUFFLE, logsumexp

__all__ = ["BoltzmannMachine"]

_EXACT_MAX_UNITS = 20


def _ising(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h, J) of the spin form of a {0,1} BM, float32 for the kernel."""
    J = (-0.25 * W).astype(np.float32)
    h = (-0.5 * b - 0.25 * W.sum(axis=1)).astype(np.float32)
    return h, J


def _all_binary(n: int) -> np.ndarray:
    return ((np.arange(2**n)[:, None] >> np.arange(n)[::-1]) & 1).astype(np.float64)


class BoltzmannMachine:
    """A {0,1} Boltzmann machine with visible, optional label and hidden units.

    Training (``fit``) follows the gradient <y_i y_j>_clamped - <y_i y_j>_free: the clamped
    phase runs ``clamped_sweeps`` heat-bath sweeps over the hidden units with the data
    (and labels) fixed, the free phase ``free_sweeps`` sweeps over all units of
    ``n_chains`` persistent chains (``method="pcd"``) or of chains restarted at the batch
    (``method="restart"``). Update: velocity = momentum*velocity + lr*(grad - weight_decay*W);
    W += velocity. ``n_hidden=0`` is the fully visible BM.
    """

    def __init__(self, n_visible: int, n_hidden: int = 0, *, n_labels: int = 0,
                 learning_rate: float = 0.05, momentum: float = 0.0, weight_decay: float = 0.0,
                 batch_size: int = 100, epochs: int = 10, method: str = "pcd",
                 n_chains: int = 100, clamped_sweeps: int = 5, free_sweeps: int = 1,
                 seed=None, progress: bool = False, device: str = "auto"):
        self.n_visible = check_int(n_visible, "n_visible", minimum=1, maximum=2**20)
        self.n_hidden = check_int(n_hidden, "n_hidden", minimum=0, maximum=2**20)
        self.n_labels = check_int(n_labels, "n_labels", minimum=0, maximum=2**20)
        if self.n_labels == 1:
            raise ValueError("n_labels must be 0 (no labels) or >= 2 (one-hot classes)")
        self.learning_rate = check_float(learning_rate, "learning_rate", minimum=0.0)
        self.momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0)
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.epochs = check_int(epochs, "epochs", minimum=0)
        if method not in ("pcd", "restart"):
            raise ValueError(f"method must be 'pcd' or 'restart', got {method!r}")
        self.method = method
        self.n_chains = check_int(n_chains, "n_chains", minimum=1)
        self.clamped_sweeps = check_int(clamped_sweeps, "clamped_sweeps", minimum=1)
        self.free_sweeps = check_int(free_sweeps, "free_sweeps", minimum=1)
        self.seed_ = check_seed(seed)
        self.progress = check_bool(progress, "progress")
        n = self.n_units
        # W and its velocity, a second set for the update to write (float64), J (float32)
        check_memory(40.0 * n * n, f"BoltzmannMachine with {n} units")
        from .ising import _device
        self.device = _device(device)  # "auto" stays on the CPU until CUDA is verified
        self.W = np.zeros((n, n))
        self.b = np.zeros(n)
        self._vW = np.zeros((n, n))
        self._vb = np.zeros(n)
        self.step_ = 1  # Philox step of the next sweep (step 0: initial states)
        self.chains_ = None
        self.epochs_trained_ = 0
        self.history_: list[dict] = []

    @property
    def n_units(self) -> int:
        return self.n_visible + self.n_labels + self.n_hidden

    @property
    def n_observed(self) -> int:
        return self.n_visible + self.n_labels

    def __repr__(self) -> str:
        return (f"BoltzmannMachine(n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
                f"n_labels={self.n_labels})")

    # ------------------------------------------------------------------ sampling core

    def _random_states(self, rows: int, chain_offset: int = 0, step: int | None = None) -> np.ndarray:
        step = self.step_ if step is None else step
        u = _core.philox_uniforms(self.seed_, STREAM_INIT, step, rows, self.n_units, chain_offset)
        return (u < 0.5).astype(np.float64)

    def _sweeps(self, Y: np.ndarray, betas, clamp: np.ndarray | None) -> np.ndarray:
        """Heat-bath sweeps of the {0,1} states Y (rows, n_units); clamped units never move.
        Advances the Philox step by the number of sweeps."""
        betas = np.ascontiguousarray(np.atleast_1d(np.asarray(betas, np.float32)))
        check_steps(self.step_, betas.size, "n_sweeps")
        h, J = _ising(self.W, self.b)
        S = np.ascontiguousarray(2 * Y - 1, dtype=np.int8)
        mask = None if clamp is None else np.ascontiguousarray(clamp, dtype=np.uint8)
        step = self.step_  # reserved first: an interrupted call never reuses its numbers
        self.step_ += betas.size
        if self.device == "cuda":  # the spin-chain CUDA kernel, host states in and out
            from . import _ising_cuda
            from .ising import _Couplings
            run = _ising_cuda.chain_runner(_Couplings(n=self.n_units, h=h, dense=J), mask,
                                           True, False, self.seed_)
            run(S, betas, step, False)
        else:
            # Kernel calls of about _interrupt.CHUNK_WORK operations (Ctrl-C is honoured
            # between them); the local fields go from call to call, so the cut changes
            # nothing (the kernel refreshes them on the absolute step).
            n = self.n_units
            chunk = chunk_size(S.shape[0] * (n * n + 8 * n), betas.size)
            fields = np.empty(S.shape, np.float32) if chunk < betas.size else None
            for t0 in range(0, betas.size, chunk):
                _core.ising_chains(h, J, None, None, None,
                                   np.ascontiguousarray(betas[t0:t0 + chunk]), True, False,
                                   mask, S, self.seed_, step + t0, 0, False, fields, t0 > 0)
        return (S > 0).astype(np.float64)

    def _observed_mask(self) -> np.ndarray:
        m = np.zeros(self.n_units, bool)
        m[:self.n_observed] = True
        return m

    # ------------------------------------------------------------------ data

    def _data(self, X, y=None, dtype=np.float64) -> np.ndarray:
        """(rows, n_observed) {0,1} observed units from X and, with labels, y (class ids),
        as ``dtype`` (the fused kernel reads uint8)."""
        X, _ = check_units(X, "X", self.n_visible, binary=True)
        if self.n_labels == 0:
            if y is not None:
                raise ValueError("y given but the model has no label units (n_labels=0)")
            return np.ascontiguousarray(X, dtype=dtype)
        if y is None:
            raise ValueError(f"y is required: the model has {self.n_labels} label units")
        y = np.asarray(y)
        if y.shape != (X.shape[0],) or y.dtype.kind not in "iub":
            raise ValueError(f"y must be integer class ids of shape ({X.shape[0]},), got {y.dtype} {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= self.n_labels):
            raise ValueError(f"y must lie in [0, {self.n_labels}), got range [{y.min()}, {y.max()}]")
        D = np.zeros((X.shape[0], self.n_observed), dtype)
        D[:, :self.n_visible] = X
        D[np.arange(X.shape[0]), self.n_visible + y] = 1
        return D

    # ------------------------------------------------------------------ training

    def _clamped_states(self, D: np.ndarray) -> np.ndarray:
        Y = self._random_states(D.shape[0])
        Y[:, :self.n_observed] = D
        if self.n_hidden:
            Y = self._sweeps(Y, np.ones(self.clamped_sweeps), self._observed_mask())
        return Y

    def _free_states(self, D: np.ndarray) -> np.ndarray:
        if self.method == "restart":
            Y = self._random_states(D.shape[0], chain_offset=2**20)
            Y[:, :self.n_observed] = D
        else:
            if self.chains_ is None:
                self.chains_ = self._random_states(self.n_chains, chain_offset=2**21)
            Y = self.chains_
        Y = self._sweeps(Y, np.ones(self.free_sweeps), None)
        if self.method == "pcd":
            self.chains_ = Y
        return Y

    def gradient(self, X, y=None) -> tuple[np.ndarray, np.ndarray]:
        """Monte-Carlo gradient of the mean log-likelihood: (dW, db) = <y y^T>_clamped -
        <y y^T>_free (zero diagonal), <y>_clamped - <y>_free. Advances the chains."""
        D = self._data(X, y)
        if self.device != "cpu":
            return self._gradient(D)
        n = self.n_units
        dW, db = np.empty((n, n)), np.empty(n)
        self._fused_step(np.ascontiguousarray(D, dtype=np.uint8), np.arange(D.shape[0]),
                         (dW, db, None, None, self._chains_buffer()), update=False)
        return dW, db

    def _gradient(self, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        P = self._clamped_states(D)
        Q = self._free_states(D)
        # The statistics through the module's single-threaded BLAS: NumPy's BLAS threads
        # would keep spinning on the cores the next kernel call needs.
        gram = lambda A: _core.gram(np.ascontiguousarray(A, dtype=np.float32)).astype(np.float64)  # noqa: E731
        dW = gram(P) / P.shape[0] - gram(Q) / Q.shape[0]
        np.fill_diagonal(dW, 0.0)
        return dW, P.mean(axis=0) - Q.mean(axis=0)

    # The CPU path of training: one kernel call per mini-batch (_core.bm_step) does what
    # _clamped_states + _free_states + the statistics + _update_unchecked do, on the same
    # Philox units (so the same states, up to float32 rounding of the fields: the kernel
    # computes them per site block instead of moving them after each flip), with exact
    # integer statistics and the same float64 update. The composition above stays as the
    # CUDA path and, with reference.bm_step, as the test oracle.

    def _parameters(self) -> tuple[np.ndarray, ...]:
        """W, b and their velocities as C-contiguous float64 arrays of the model's shapes."""
        n = self.n_units
        out = []
        for name, shape in (("W", (n, n)), ("b", (n,)), ("_vW", (n, n)), ("_vb", (n,))):
            a = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            if a.shape != shape:
                raise ValueError(f"{name.lstrip('_')} must have shape {shape}, got {a.shape}")
            out.append(a)
        return tuple(out)

    def _chains_buffer(self) -> np.ndarray | None:
        return np.empty((self.n_chains, self.n_units)) if self.method == "pcd" else None

    def _symmetric(self) -> bool:
        """W and its velocity are symmetric (always, unless assigned otherwise): the kernel's
        update then needs no transposes. An update keeps them so."""
        W, _, vW, _ = self._parameters()
        return bool(np.array_equal(W, W.T) and np.array_equal(vW, vW.T))

    def _fused_step(self, data: np.ndarray, rows: np.ndarray, out: tuple, update: bool = True,
                    symmetric: bool = False) -> None:
        """One update (update=False: the gradient into out[0], out[1]) of the batch
        data[rows] in one kernel call. out = (W, b, vW, vb, chains) arrays the call writes;
        they become the model's state only when the update is accepted, so a diverging one
        raises FloatingPointError and leaves the model (step counter and chains included)
        as it was."""
        cs = self.clamped_sweeps if self.n_hidden else 0
        step0 = self.step_
        check_steps(step0, cs + self.free_sweeps, "n_sweeps")
        free_step = step0 + cs
        chains = None
        if self.method == "pcd":
            chains = self.chains_
            if chains is None:
                chains = self._random_states(self.n_chains, chain_offset=2**21, step=free_step)
            chains = np.ascontiguousarray(chains, dtype=np.float64)
        W, b, vW, vb = self._parameters()
        hyper = (self.learning_rate, self.momentum, self.weight_decay, symmetric) if update else None
        ok = _core.bm_step(W, b, vW, vb, data, rows, chains, self.seed_, step0, cs, free_step,
                           self.free_sweeps, 2**20, hyper, out[0], out[1], out[2], out[3], out[4])
        if not ok:
            raise FloatingPointError("the update produced non-finite parameters and was "
                                     f"discarded; lower learning_rate (now {self.learning_rate}) "
                                     f"or momentum (now {self.momentum})")
        # the commit: no call between these assignments
        if update:
            self.W, self.b, self._vW, self._vb = out[0], out[1], out[2], out[3]
        if chains is not None:
            self.chains_ = out[4]
        self.step_ = free_step + self.free_sweeps

    def _fused_steps(self, data: np.ndarray, order: np.ndarray, sets: list, state: int | None,
                     symmetric: bool) -> int | None:
        """The updates of the mini-batches order[k*batch_size:(k+1)*batch_size] in one kernel
        call (_core.bm_steps: each batch as _fused_step, the next reading what it wrote).
        sets: three (W, b, vW, vb, chains) output sets owned by fit; ``state`` is the one
        holding the model's arrays (None: the model's own), and the call writes the other
        two in turn, never the inputs. Accepted updates are committed (parameters, chains,
        step counter); a rejected one raises FloatingPointError after the commit of those
        before it. Returns the set now holding the model's state."""
        cs = self.clamped_sweeps if self.n_hidden else 0
        per_batch = cs + self.free_sweeps
        n_batches = -(-order.size // self.batch_size)
        step0 = self.step_
        check_steps(step0, n_batches * per_batch, "n_sweeps")
        chains = None
        if self.method == "pcd":
            chains = self.chains_
            if chains is None:
                chains = self._random_states(self.n_chains, chain_offset=2**21, step=step0 + cs)
            chains = np.ascontiguousarray(chains, dtype=np.float64)
        W, b, vW, vb = self._parameters()
        out, spare = [k for k in range(3) if k != state][:2]
        hyper = (self.learning_rate, self.momentum, self.weight_decay, symmetric)
        done, where = _core.bm_steps(W, b, vW, vb, data, order, self.batch_size, chains, self.seed_,
                                     step0, cs, self.free_sweeps, 2**20, hyper, sets[out], sets[spare])
        if done:  # the commit: no call between these assignments
            state = out if where == 0 else spare
            self.W, self.b, self._vW, self._vb = sets[state][:4]
            if chains is not None:
                self.chains_ = sets[state][4]
            self.step_ = step0 + done * per_batch
        if done < n_batches:
            raise FloatingPointError("the update produced non-finite parameters and was "
                                     f"discarded; lower learning_rate (now {self.learning_rate}) "
                                     f"or momentum (now {self.momentum})")
        return state

    def _batches_per_call(self, n_batches: int) -> int:
        """Mini-batches per bm_steps call: about _interrupt.CHUNK_WORK 16-lane multiply-adds
        (the kernel's vector operations: ~1e10/s on two cores, so ~10 ms), Ctrl-C between."""
        n, blocks = self.n_units, lambda rows: -(-rows // 16)
        free_rows = self.n_chains if self.method == "pcd" else self.batch_size
        work = (blocks(self.batch_size) * self.clamped_sweeps * self.n_hidden * n
                + blocks(free_rows) * self.free_sweeps * n * n)
        return chunk_size(work, n_batches)

    def _update(self, D: np.ndarray) -> None:
        """One update; a diverging one raises FloatingPointError and leaves the model (step
        counter and persistent chains included) as it was."""
        step0, chains0 = self.step_, self.chains_
        try:
            self._update_unchecked(D)
        except (FloatingPointError, OverflowError):
            self.step_, self.chains_ = step0, chains0
            raise

    def _update_unchecked(self, D: np.ndarray) -> None:
        dW, db = self._gradient(D)
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            vW = self.momentum * self._vW + self.learning_rate * (dW - self.weight_decay * self.W)
            vb = self.momentum * self._vb + self.learning_rate * db
            W, b = self.W + vW, self.b + vb
        # the sampler runs on float32 couplings J = -W/4, h = -b/2 - sum W/4: they must be finite
        with np.errstate(over="ignore", invalid="ignore"):
            ok = (np.isfinite(W).all() and np.isfinite(b).all()
                  and np.abs(W).max(initial=0.0) * max(self.n_units, 1) < 1e37
                  and np.abs(b).max(initial=0.0) < 1e37
                  and all(np.isfinite(a).all() for a in _ising(W, b)))
        if not ok:  # _update puts the step counter and chains back
            raise FloatingPointError("the update produced non-finite parameters and was "
                                     f"discarded; lower learning_rate (now {self.learning_rate}) "
                                     f"or momentum (now {self.momentum})")
        np.fill_diagonal(W, 0.0)
        self.W, self.b, self._vW, self._vb = 0.5 * (W + W.T), b, vW, vb

    def fit(self, X, y=None, *, checkpoint=None, checkpoint_every: int = 1,
            resume=None) -> "BoltzmannMachine":
        """``epochs`` epochs of shuffled mini-batches (Philox shuffle stream), continuing
        from the current parameters. With label units, y holds the class ids.

        checkpoint, checkpoint_every : write the full training state atomically every
        ``checkpoint_every`` epochs and after the last one. resume : a checkpoint path; the
        model's state and hyper-parameters become the file's and the interrupted call is
        finished bit for bit (X and y must be the same data). A diverging update raises
        FloatingPointError naming the epoch; the model keeps its last finite parameters."""
        ck = _checkpoint.FitCheckpoints(checkpoint, checkpoint_every)
        model, fit_meta = self, None
        if resume is not None:
            resume = _checkpoint.check_resume_path(resume)
            model, fit_meta = self._read(resume)
            sizes = (model.n_visible, model.n_labels, model.n_hidden)
            if sizes != (self.n_visible, self.n_labels, self.n_hidden):
                raise ValueError(f"resume: {resume!r} holds a BoltzmannMachine with (n_visible, "
                                 f"n_labels, n_hidden) = {sizes}, this one has "
                                 f"{(self.n_visible, self.n_labels, self.n_hidden)}")
        fused = self.device == "cpu"
        D = self._data(X, y) if (ck.path or model is not self or not fused) else None
        data_id = _checkpoint.fingerprint(D) if D is not None else None
        if model is not self:
            _checkpoint.check_same_data(resume, fit_meta, data_id)
            _checkpoint.adopt(self, model, keep=("progress",))
        target = fit_meta["target"] if fit_meta is not None else self.epochs_trained_ + self.epochs
        if fused:
            data = self._data(X, y, dtype=np.uint8)
            n = data.shape[0]
            # Three sets of output arrays owned by this call: a kernel call reads the one
            # holding the model's state and writes the other two in turn, so arrays the
            # caller handed in (or holds from an earlier fit) are never written.
            m, state, symmetric = self.n_units, None, self._symmetric()
            sets = [(np.empty((m, m)), np.empty(m), np.empty((m, m)), np.empty(m),
                     self._chains_buffer()) for _ in range(3)]
            n_batches = -(-n // self.batch_size)
            per_call = self._batches_per_call(n_batches) * self.batch_size
        else:
            n = D.shape[0]
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=target - self.epochs_trained_, desc="BM fit", unit="epoch")
        try:
            for _ in range(target - self.epochs_trained_):
                t0 = time.perf_counter()
                keys = _core.philox_uniforms(self.seed_, STREAM_SHUFFLE, self.epochs_trained_ % 2**32, 1, n)[0]
                order = np.argsort(keys, kind="stable")
                for start in range(0, n, per_call if fused else self.batch_size):
                    try:
                        if fused:
                            state = self._fused_steps(data, order[start:start + per_call], sets,
                                                      state, symmetric)
                        else:
                            self._update(D[order[start:start + self.batch_size]])
                    except FloatingPointError as exc:
                        raise FloatingPointError(f"training diverged in epoch {self.epochs_trained_ + 1}: {exc}") from None
                self.epochs_trained_ += 1
                self.history_.append({"epoch": self.epochs_trained_, "seconds": time.perf_counter() - t0})
                if bar is not None:
                    bar.set_postfix(epoch=self.epochs_trained_)
                    bar.update(1)
                ck.epoch_done(self.epochs_trained_, self.epochs_trained_ >= target,
                              lambda p: self._write(p, {"target": target, "data": data_id}))
        finally:
            if bar is not None:
                bar.close()
        return self

    # ------------------------------------------------------------------ persistence

    _PARAM_NAMES = ("n_visible", "n_hidden", "n_labels", "learning_rate", "momentum",
                    "weight_decay", "batch_size", "epochs", "method", "n_chains",
                    "clamped_sweeps", "free_sweeps", "progress", "device")

    def save(self, path: str | os.PathLike) -> None:
        """Write the full state (parameters, velocities, Philox step, persistent chains,
        history, hyper-parameters) to an .npz file, atomically."""
        self._write(path)

    def _write(self, path, fit: dict | None = None) -> None:
        meta = {"params": {name: getattr(self, name) for name in self._PARAM_NAMES},
                "seed_": str(self.seed_), "step_": self.step_,
                "epochs_trained_": self.epochs_trained_, "history_": self.history_,
                "has_chains": self.chains_ is not None}
        if fit is not None:
            meta["fit"] = fit
        arrays = dict(W=self.W, b=self.b, vW=self._vW, vb=self._vb,
                      chains=np.zeros(0) if self.chains_ is None else self.chains_)
        _checkpoint.write(path, "BoltzmannMachine", meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BoltzmannMachine":
        """Read a model written by :meth:`save` or a checkpoint of :meth:`fit`."""
        return cls._read(os.fspath(path))[0]

    @classmethod
    def _read(cls, path: str):
        meta, a = _checkpoint.read(path, "BoltzmannMachine")
        try:
            params = dict(meta["params"])
            if params.get("device") == "cuda":
                params["device"] = "auto"  # a file written on a GPU machine loads anywhere
            model = cls(seed=int(meta["seed_"]), **params)
            n = model.n_units
            f64 = np.float64
            model.W = _checkpoint.array(a, "W", (n, n), f64)
            model.b = _checkpoint.array(a, "b", (n,), f64)
            model._vW = _checkpoint.array(a, "vW", (n, n), f64)
            model._vb = _checkpoint.array(a, "vb", (n,), f64)
            if meta["has_chains"]:
                model.chains_ = _checkpoint.array(a, "chains", (model.n_chains, n), f64)
            model.step_ = check_int(meta["step_"], "step_", minimum=0, maximum=2**32 - 1)
            model.epochs_trained_ = check_int(meta["epochs_trained_"], "epochs_trained_", minimum=0)
            if not isinstance(meta["history_"], list):
                raise TypeError("history_ is not a list")
            model.history_ = list(meta["history_"])
            fit = meta.get("fit")
            if fit is not None and (not isinstance(fit.get("target"), int)
                                    or fit["target"] < model.epochs_trained_):
                raise ValueError(f"fit target {fit.get('target')!r}")
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise _checkpoint.damaged(path, "BoltzmannMachine", exc) from None
        return model, fit

    # ------------------------------------------------------------------ using the model

    def _temperatures(self, temperature, n_sweeps: int) -> np.ndarray:
        check_steps(self.step_, n_sweeps, "n_sweeps")
        check_memory(16.0 * n_sweeps, f"n_sweeps={n_sweeps}")
        if np.ndim(temperature) == 0 and not isinstance(temperature, np.ndarray):
            T = np.full(n_sweeps, check_float(temperature, "temperature", minimum=0.0, open_min=True))
        else:
            T = np.asarray(temperature)
            if T.dtype == object or T.dtype.kind not in "iuf":
                raise TypeError(f"temperature must be a number or a real array, got dtype {T.dtype}")
            T = T.astype(np.float64)
            if T.shape != (n_sweeps,) or not np.isfinite(T).all() or np.any(T <= 0):
                raise ValueError(f"temperature must be a number > 0 or {n_sweeps} finite values > 0")
        with np.errstate(over="ignore", divide="ignore"):
            betas = 1.0 / T
        # the kernel takes float32 inverse temperatures times float32 fields
        if np.any(betas > 1e30):
            raise ValueError("temperature too small (1/temperature must be <= 1e30)")
        return betas

    def sample(self, n_samples: int, n_sweeps: int = 1000, temperature=1.0) -> np.ndarray:
        """States (n_samples, n_units) {0,1} after n_sweeps heat-bath sweeps from random
        states; ``temperature`` a number or one value per sweep (annealing)."""
        n_samples = check_int(n_samples, "n_samples", minimum=1, maximum=2**31 - 1)
        n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=0)
        check_memory(24.0 * n_samples * self.n_units, f"sample(n_samples={n_samples})")
        betas = self._temperatures(temperature, n_sweeps)
        Y = self._random_states(n_samples, chain_offset=2**22)
        return self._sweeps(Y, betas, None) if n_sweeps else Y

    def complete(self, X, mask, n_sweeps: int = 200, average_last: int = 50):
        """Pattern completion: the units of X (n, n_visible) where ``mask`` (same shape,
        or one row for all) is True are clamped, the rest (and the hidden units) sampled.
        Returns (completed visibles {0,1} of the last sweep, marginals of the visibles
        averaged over the last ``average_last`` sweeps)."""
        X, _ = check_units(X, "X", self.n_visible, binary=False)
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"mask must be boolean, got {mask.dtype}")
        if mask.shape == (self.n_visible,):
            mask = np.broadcast_to(mask, X.shape)
        if mask.shape != X.shape:
            raise ValueError(f"mask must have shape {X.shape} or ({self.n_visible},), got {mask.shape}")
        if not np.all((X[mask] == 0) | (X[mask] == 1)):
            raise ValueError("the clamped (mask True) entries of X must be 0 or 1")
        n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1)
        average_last = check_int(average_last, "average_last", minimum=1, maximum=n_sweeps)
        check_memory(16.0 * n_sweeps, f"n_sweeps={n_sweeps}")
        out = np.empty(X.shape)
        marg = np.empty(X.shape)
        # One kernel call per distinct mask (the kernel clamps one set of units per call).
        uniq, inverse = np.unique(mask, axis=0, return_inverse=True)
        check_steps(self.step_, n_sweeps * len(uniq), "n_sweeps")
        for k, m in enumerate(uniq):
            rows = np.nonzero(inverse.ravel() == k)[0]
            clamp = np.zeros(self.n_units, bool)
            clamp[:self.n_visible] = m
            Y = self._random_states(rows.size, chain_offset=2**23)
            Y[:, :self.n_visible][:, m] = X[rows][:, m]
            Y = self._sweeps(Y, np.ones(n_sweeps - average_last), clamp) if n_sweeps > average_last else Y
            acc = np.zeros((rows.size, self.n_visible))
            for _ in range(average_last):
                Y = self._sweeps(Y, np.ones(1), clamp)
                acc += Y[:, :self.n_visible]
            out[rows] = Y[:, :self.n_visible]
            marg[rows] = acc / average_last
        return out, marg

    def _label_energies(self, X: np.ndarray) -> np.ndarray:
        """-E(x, e_k) for every row and class (no hidden units), float64 (rows, n_labels)."""
        nv, nl = self.n_visible, self.n_labels
        Wvl = self.W[:nv, nv:nv + nl]
        Wvv = self.W[:nv, :nv]
        base = 0.5 * np.einsum("ri,ij,rj->r", X, Wvv, X) + X @ self.b[:nv]
        return base[:, None] + X @ Wvl + self.b[nv:nv + nl][None, :]

    def predict_proba(self, X, n_sweeps: int = 200, average_last: int = 100) -> np.ndarray:
        """p(label | x) (rows, n_labels): exact (a softmax over the classes) without hidden
        units; otherwise the label units' marginals with x clamped, averaged over the last
        sweeps and normalised."""
        if self.n_labels == 0:
            raise ValueError("the model has no label units (n_labels=0)")
        n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1)
        average_last = check_int(average_last, "average_last", minimum=1, maximum=n_sweeps)
        X, _ = check_units(X, "X", self.n_visible, binary=True)
        X = X.astype(np.float64)
        if self.n_hidden == 0:
            a = self._label_energies(X)
            a -= a.max(axis=1, keepdims=True)
            p = np.exp(a)
            return p / p.sum(axis=1, keepdims=True)
        check_steps(self.step_, n_sweeps, "n_sweeps")
        check_memory(16.0 * n_sweeps, f"n_sweeps={n_sweeps}")
        _, marg = self._complete_labels(X, n_sweeps, average_last)
        s = marg.sum(axis=1, keepdims=True)
        return np.where(s > 0, marg / np.maximum(s, 1e-300), 1.0 / self.n_labels)

    def _complete_labels(self, X, n_sweeps, average_last):
        clamp = np.zeros(self.n_units, bool)
        clamp[:self.n_visible] = True
        Y = self._random_states(X.shape[0], chain_offset=2**24)
        Y[:, :self.n_visible] = X
        if n_sweeps > average_last:
            Y = self._sweeps(Y, np.ones(n_sweeps - average_last), clamp)
        acc = np.zeros((X.shape[0], self.n_labels))
        sl = slice(self.n_visible, self.n_observed)
        for _ in range(average_last):
            Y = self._sweeps(Y, np.ones(1), clamp)
            acc += Y[:, sl]
        return Y, acc / average_last

    def predict(self, X, **kwargs) -> np.ndarray:
        return np.argmax(self.predict_proba(X, **kwargs), axis=1)

    def generate(self, label: int, n: int, n_sweeps: int = 1000) -> np.ndarray:
        """n visible patterns (n, n_visible) sampled with the label units clamped to class
        ``label``."""
        if self.n_labels == 0:
            raise ValueError("the model has no label units (n_labels=0)")
        label = check_int(label, "label", minimum=0, maximum=self.n_labels - 1)
        n = check_int(n, "n", minimum=1, maximum=2**31 - 1)
        n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1)
        check_steps(self.step_, n_sweeps, "n_sweeps")
        check_memory(24.0 * n * self.n_units + 16.0 * n_sweeps, f"generate(n={n})")
        clamp = np.zeros(self.n_units, bool)
        clamp[self.n_visible:self.n_observed] = True
        Y = self._random_states(n, chain_offset=2**25)
        Y[:, self.n_visible:self.n_observed] = 0.0
        Y[:, self.n_visible + label] = 1.0
        return self._sweeps(Y, np.ones(n_sweeps), clamp)[:, :self.n_visible]

    # ------------------------------------------------------------------ exact (small models)

    def energy(self, Y) -> np.ndarray:
        """E(y) = -1/2 y^T W y - b^T y for binary states Y (rows, n_units), float64."""
        Y, _ = check_units(Y, "Y", self.n_units, binary=True, allow_empty=True)
        return self._energy(Y.astype(np.float64))

    def _energy(self, Y: np.ndarray) -> np.ndarray:
        return -0.5 * np.einsum("ri,ij,rj->r", Y, self.W, Y) - Y @ self.b

    def _check_small(self):
        if self.n_units > _EXACT_MAX_UNITS:
            raise ValueError(f"exact enumeration needs n_units <= {_EXACT_MAX_UNITS}, got {self.n_units}")

    def log_partition_exact(self) -> float:
        """log Z by enumerating all 2**n_units states (float64)."""
        self._check_small()
        return float(logsumexp(-self._energy(_all_binary(self.n_units))))

    def log_likelihood_exact(self, X, y=None) -> np.ndarray:
        """log p(observed) per row, the hidden units summed out exactly."""
        self._check_small()
        D = self._data(X, y)
        H = _all_binary(self.n_hidden)
        logz = self.log_partition_exact()
        out = np.empty(D.shape[0])
        for r, d in enumerate(D):
            Y = np.hstack([np.tile(d, (H.shape[0], 1)), H])
            out[r] = logsumexp(-self._energy(Y)) - logz
        return out

    def exact_gradient(self, X, y=None) -> tuple[np.ndarray, np.ndarray]:
        """The exact gradient of the mean log-likelihood (dW, db), by enumeration."""
        self._check_small()
        D = self._data(X, y)
        H = _all_binary(self.n_hidden)
        pos_W = np.zeros((self.n_units, self.n_units))
        pos_b = np.zeros(self.n_units)
        for d in D:
            Y = np.hstack([np.tile(d, (H.shape[0], 1)), H])
            e = -self._energy(Y)
            p = np.exp(e - logsumexp(e))
            pos_W += (Y * p[:, None]).T @ Y
            pos_b += p @ Y
        Yall = _all_binary(self.n_units)
        e = -self._energy(Yall)
        p = np.exp(e - logsumexp(e))
        neg_W = (Yall * p[:, None]).T @ Yall
        dW = pos_W / D.shape[0] - neg_W
        np.fill_diagonal(dW, 0.0)
        return dW, pos_b / D.shape[0] - p @ Yall
