"""Deep Boltzmann machine with binary units (Salakhutdinov & Hinton 2009) on the shared
layer kernel "update layer l from its neighbours".

Layers x_0 (visible), x_1, ..., x_L (L >= 2 hidden layers), weights W_l of shape
(n_{l-1}, n_l) between x_{l-1} and x_l, a bias per layer, energy

    E(x) = - sum_l bias_l . x_l - sum_{l>=1} x_{l-1}^T W_l x_l,

so layer l given its neighbours is p(x_l = 1 | .) = sigmoid(x_{l-1} W_l + x_{l+1} W_{l+1}^T
+ bias_l). Layers of one parity are independent given the other parity, which gives the
two-block Gibbs sweep (odd layers, then even layers), one kernel launch per layer. Layer
l's samples use Philox stream STREAM_LAYER + l at the sweep's step.

Training is variational stochastic maximum likelihood (Goodfellow et al., Algorithm 20.1):
a mean-field positive phase with the data clamped, persistent chains for the negative
phase, momentum and a decaying learning rate, after greedy layer-wise pre-training
(doubled inputs for the bottom RBM, a doubled top layer, halved middle weights).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from . import _checkpoint, _core
from ._backend import (check_bool, check_float, check_int, check_memory, check_seed,
                       check_steps, check_units, resolve_device)
from ._interrupt import deferred_interrupt
from .reference import STREAM_INIT, STREAM_LAYER, STREAM_SHUFFLE

__all__ = ["DBM", "MeanFieldResult"]

# The CUDA path compiles in CI but has not run on a GPU yet: device="auto" stays on the
# CPU until the CUDA tests have passed on one (device="cuda" may be asked for explicitly).
_CUDA_VERIFIED = False
_TABLE_MIN_ROW_SWEEPS = 512  # prebuild the subset tables once sweeps x chains reach this


def _host(a) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array (for files and fingerprints)."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


@dataclass
class MeanFieldResult:
    """Fixed point of the mean-field equations with the visibles clamped."""
    q: list             # q_1 .. q_L, arrays (rows, n_l) of p(x_l = 1)
    converged: bool     # the largest change of the last iteration was below tol
    n_iter: int         # iterations run
    max_change: float   # the largest |q_new - q_old| of the last iteration


class DBM:
    """A deep Boltzmann machine ``DBM([n_visible, n_1, ..., n_L])`` with L >= 2.

    Parameters (all keyword): learning_rate (0.005), learning_rate_decay (lr / (1 + decay
    * updates), 1e-3), momentum (0.5), weight_decay (2e-4), batch_size (100), n_chains
    (persistent negative chains, 100), k (Gibbs sweeps per update, 1), mf_iter (mean-field
    iterations of the positive phase, 10), epochs (10), pretrain (True), pretrain_epochs
    (epochs per pre-training RBM, 5), pretrain_learning_rate (0.05), seed, device
    ("cpu" | "cuda" | "auto"), progress (tqdm bar).
    """

    def __init__(self, layer_sizes, *, learning_rate: float = 0.005,
                 learning_rate_decay: float = 1e-3, momentum: float = 0.5,
                 weight_decay: float = 2e-4, batch_size: int = 100, n_chains: int = 100,
                 k: int = 1, mf_iter: int = 10, epochs: int = 10, pretrain: bool = True,
                 pretrain_epochs: int = 5, pretrain_learning_rate: float = 0.05, seed=None,
                 device: str = "cpu", progress: bool = False):
        try:
            sizes = list(layer_sizes)
        except TypeError:
            raise TypeError(f"layer_sizes must be a list of layer widths, got {layer_sizes!r}") from None
        if isinstance(layer_sizes, (str, bytes)):
            raise TypeError(f"layer_sizes must be a list of layer widths, got {layer_sizes!r}")
        sizes = [check_int(s, "layer_sizes entries", minimum=1, maximum=2**28) for s in sizes]
        if len(sizes) < 3:
            raise ValueError("a DBM needs the visible layer and at least two hidden layers "
                             f"(layer_sizes of length >= 3), got {layer_sizes!r}")
        # W, W^T, velocity, the update's new W and the float64 draw, per weight matrix
        check_memory(28.0 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:])),
                     f"DBM(layer_sizes={sizes})")
        self.layer_sizes = sizes
        self.learning_rate = check_float(learning_rate, "learning_rate", minimum=0.0, open_min=True)
        self.learning_rate_decay = check_float(learning_rate_decay, "learning_rate_decay", minimum=0.0)
        self.momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0)
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.n_chains = check_int(n_chains, "n_chains", minimum=1, maximum=2**31 - 1)
        check_memory(12.0 * self.n_chains * sum(sizes), f"n_chains={self.n_chains} chains")
        self.k = check_int(k, "k", minimum=1)
        self.mf_iter = check_int(mf_iter, "mf_iter", minimum=1)
        self.epochs = check_int(epochs, "epochs", minimum=0)
        if not isinstance(pretrain, (bool, np.bool_)):
            raise TypeError(f"pretrain must be True or False, got {pretrain!r}")
        self.pretrain = bool(pretrain)
        self.pretrain_epochs = check_int(pretrain_epochs, "pretrain_epochs", minimum=0)
        self.pretrain_learning_rate = check_float(pretrain_learning_rate, "pretrain_learning_rate",
                                                  minimum=0.0, open_min=True)
        self.seed_ = check_seed(seed)
        self.progress = check_bool(progress, "progress")
        self._device = resolve_device(device, cuda_implemented=True)
        if device == "auto" and not _CUDA_VERIFIED:
            self._device = "cpu"
        self._xp = np
        if self._device == "cuda":
            import cupy
            self._xp = cupy
        xp = self._xp
        # Small random weights (0.01 N(0, 1), Philox-free: a NumPy generator from the seed),
        # zero biases.
        rng = np.random.default_rng(self.seed_)
        self.W_ = [xp.asarray((0.01 * rng.standard_normal((a, b))).astype(np.float32))
                   for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases_ = [xp.zeros(n, dtype=xp.float32) for n in sizes]
        self._velocity = None
        self._chains = None
        self._tables = None
        self._version = 0       # bumped on every parameter change (invalidates tables)
        self.step_ = 0          # next Philox step
        self.updates_ = 0       # joint-training updates done (drives the learning-rate decay)
        self.epochs_trained_ = 0
        self.pretrained_ = False
        self.history_: list[dict] = []
        self._refresh_transposes()

    def __repr__(self) -> str:
        return f"DBM({self.layer_sizes}, device={self._device!r})"

    # copy.deepcopy and pickle: the array module (numpy or cupy) is not picklable
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_xp", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._device == "cuda":
            import cupy
            self._xp = cupy
        else:
            self._xp = np

    @property
    def device_(self) -> str:
        return self._device

    @property
    def n_layers(self) -> int:
        """Number of hidden layers L."""
        return len(self.layer_sizes) - 1

    # ------------------------------------------------------------------ plumbing

    def _refresh_transposes(self) -> None:
        xp = self._xp
        self._WT = [xp.ascontiguousarray(W.T) for W in self.W_]
        self._version += 1
        self._tables = None

    def _take_steps(self, n: int) -> int:
        first = self.step_
        if first + n >= 2**32:
            raise OverflowError("the model's Philox step counter is exhausted (2**32 steps)")
        self.step_ = first + n
        return first

    def _check_data(self, X, name: str = "X", binary: bool = False):
        """(array on the model's device, float32 contiguous, is_binary)."""
        n0 = self.layer_sizes[0]
        if self._device == "cpu":
            return check_units(X, name, n0, binary=binary)
        from ._layer_cuda import check_device_units
        return check_device_units(X, name, n0, binary=binary)

    def _kernel(self, inputs, bias, *, beta=1.0, stream=0, step=0, chain_offset=0,
                want_prob=False, want_sample=False, want_field=False, out_sample=None,
                tables=(None, None), seed=None):
        """The shared layer update z = beta * sum X.M + bias on the model's device.
        ``inputs`` = [(X, M, X_is_binary)] (one or two); ``seed`` defaults to the model's."""
        (X, M, xb), *rest = inputs
        X2, M2, xb2 = rest[0] if rest else (None, None, False)
        seed = self.seed_ if seed is None else seed
        if self._device == "cpu":
            return _core.layer_update(X, M, bias, beta, xb, X2, M2, xb2, want_field=want_field,
                                      want_prob=want_prob, want_sample=want_sample,
                                      stream=stream, seed=seed, step=step,
                                      chain_offset=chain_offset, table=tables[0],
                                      table2=tables[1] if rest else None, out_sample=out_sample)
        from ._layer_cuda import layer_update
        return layer_update(X, M, bias, beta, X2=X2, M2=M2, stream=stream, seed=seed,
                            step=step, chain_offset=chain_offset, want_field=want_field,
                            want_prob=want_prob, want_sample=want_sample, out_sample=out_sample)

    def _neighbours(self, states, l: int, binary, tables=None):
        """Kernel inputs of layer l: (x_{l-1}, W_l) and (x_{l+1}, W_{l+1}^T), those that exist."""
        inputs, tabs = [], []
        if l > 0:
            inputs.append((states[l - 1], self.W_[l - 1], binary[l - 1]))
            tabs.append(tables[("up", l)] if tables else None)
        if l < self.n_layers:
            inputs.append((states[l + 1], self._WT[l], binary[l + 1]))
            tabs.append(tables[("down", l + 1)] if tables else None)
        return inputs, tuple(tabs) + (None,) * (2 - len(tabs))

    def _subset_tables(self):
        """Subset-sum tables of every W_l and W_l^T (CPU Gibbs on many chains), cached
        while the parameters are unchanged."""
        if self._tables is None or self._tables[0] != self._version:
            t = {}
            for l in range(1, self.n_layers + 1):
                t[("up", l)] = _core.subset_table(self.W_[l - 1])
                t[("down", l)] = _core.subset_table(self._WT[l - 1])
            self._tables = (self._version, t)
        return self._tables[1]

    # ------------------------------------------------------------------ sampling

    def _sweeps(self, states, n_sweeps: int, first_step: int, *, beta: float = 1.0,
                clamp_visible: bool = False, chain_offset: int = 0, biases=None,
                seed=None) -> None:
        """n two-block Gibbs sweeps of the binary ``states`` (list of layers) in place:
        odd layers given even, then even given odd; sweep t uses Philox step first_step + t.
        p ∝ exp(-beta E): products scaled by beta, biases too unless given (AIS passes its
        interpolated biases)."""
        rows = states[0].shape[0]
        tables = None
        if self._device == "cpu" and n_sweeps * rows >= _TABLE_MIN_ROW_SWEEPS:
            tables = self._subset_tables()
        binary = [True] * (self.n_layers + 1)
        if biases is None:
            biases = self.biases_ if beta == 1.0 else [beta * b for b in self.biases_]
        for t in range(n_sweeps):
            for parity in (1, 0):
                for l in range(parity, self.n_layers + 1, 2):
                    if l == 0 and clamp_visible:
                        continue
                    inputs, tabs = self._neighbours(states, l, binary, tables)
                    self._kernel(inputs, biases[l], beta=beta, stream=STREAM_LAYER + l,
                                 step=first_step + t, chain_offset=chain_offset,
                                 want_sample=True, out_sample=states[l], tables=tabs, seed=seed)

    def _random_states(self, n: int):
        """Fresh chains: every unit Bernoulli(1/2) from the Philox init stream."""
        step = self._take_steps(1)
        total = sum(self.layer_sizes)
        u = _core.philox_uniforms(self.seed_, STREAM_INIT, step, n, total)
        out, start = [], 0
        for m in self.layer_sizes:
            out.append(self._xp.asarray(np.ascontiguousarray((u[:, start:start + m] < 0.5)
                                                             .astype(np.float32))))
            start += m
        return out

    def gibbs(self, states, n_sweeps: int = 1, *, beta: float = 1.0, clamp_visible: bool = False):
        """Run two-block Gibbs sweeps from ``states`` (a list of binary arrays, one per
        layer, shapes (rows, n_l)); returns the new states (the inputs are not changed)."""
        n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=0)
        beta = check_float(beta, "beta", minimum=0.0)
        self._check_beta(beta)
        clamp_visible = check_bool(clamp_visible, "clamp_visible")
        check_steps(self.step_, n_sweeps, "n_sweeps")
        states = self._check_states(states)
        self._sweeps(states, n_sweeps, self._take_steps(n_sweeps), beta=beta,
                     clamp_visible=clamp_visible)
        return states

    def _check_beta(self, beta: float) -> None:
        """beta * bias goes to the kernel as float32: it must stay finite."""
        top = max([float(self._xp.abs(b).max()) for b in self.biases_] + [1.0])
        if beta * top > float(np.finfo(np.float32).max) / 4:
            raise ValueError(f"beta={beta} is too large: beta times the biases must fit in float32")

    def _check_states(self, states):
        if not isinstance(states, (list, tuple)) or len(states) != len(self.layer_sizes):
            raise ValueError(f"states must be a list of {len(self.layer_sizes)} arrays, one per layer")
        out, rows = [], None
        for l, (S, n) in enumerate(zip(states, self.layer_sizes)):
            if self._device == "cpu":
                S, _ = check_units(S, f"states[{l}]", n, binary=True)
                S = S.copy()
            else:
                from ._layer_cuda import check_device_units
                S, _ = check_device_units(S, f"states[{l}]", n, binary=True)
                S = S.copy()
            if rows is None:
                rows = S.shape[0]
            elif S.shape[0] != rows:
                raise ValueError(f"states[{l}] has {S.shape[0]} rows, states[0] has {rows}")
            out.append(S)
        return out

    def sample(self, n: int, n_steps: int = 1000, *, return_all: bool = False):
        """n samples from fresh random chains after ``n_steps`` two-block Gibbs sweeps:
        the visible layer (rows, n_visible), or every layer's states with return_all."""
        n = check_int(n, "n", minimum=1, maximum=2**31 - 1)
        n_steps = check_int(n_steps, "n_steps", minimum=0)
        return_all = check_bool(return_all, "return_all")
        check_steps(self.step_, n_steps + 1, "n_steps")
        check_memory(12.0 * n * sum(self.layer_sizes), f"sample(n={n})")
        states = self._random_states(n)
        self._sweeps(states, n_steps, self._take_steps(n_steps))
        return states if return_all else states[0]

    # ------------------------------------------------------------------ mean field

    def _mean_field(self, V, v_binary: bool, n_iter: int, tol: float) -> MeanFieldResult:
        """Fixed-point iteration of q_l = sigmoid(q_{l-1} W_l + q_{l+1} W_{l+1}^T + bias_l),
        q_0 = V clamped; odd layers then even layers per iteration (each half uses the
        other's newest values). Started from the bottom-up pass with doubled weights below
        the top (each layer then sees about the input it will get from both sides)."""
        xp = self._xp
        L = self.n_layers
        q = [V]
        for l in range(1, L + 1):
            _, p, _ = self._kernel([(q[l - 1], self.W_[l - 1], v_binary and l == 1)],
                                   self.biases_[l], beta=2.0 if l < L else 1.0, want_prob=True)
            q.append(p)
        binary = [v_binary] + [False] * L
        change, it = np.inf, 0
        while it < n_iter:
            it += 1
            change = 0.0
            for first in (1, 2):  # odd hidden layers, then even hidden layers
                for l in range(first, L + 1, 2):
                    inputs, _ = self._neighbours(q, l, binary)
                    _, p, _ = self._kernel(inputs, self.biases_[l], want_prob=True)
                    change = max(change, float(xp.abs(p - q[l]).max()))
                    q[l] = p
            if change < tol:
                break
        return MeanFieldResult(q=q[1:], converged=bool(change < tol), n_iter=it,
                               max_change=float(change))

    def mean_field(self, X, n_iter: int = 50, tol: float = 1e-5) -> MeanFieldResult:
        """Mean-field posterior q(h | v) = prod_l prod_j q_lj for the rows of X (values in
        [0, 1]): the q's, whether the iteration converged to ``tol`` (largest change of an
        iteration) within ``n_iter`` iterations, how many it took."""
        n_iter = check_int(n_iter, "n_iter", minimum=1)
        tol = check_float(tol, "tol", minimum=0.0)
        V, vb = self._check_data(X)
        return self._mean_field(V, vb, n_iter, tol)

    def transform(self, X, layer: int | None = None, n_iter: int = 50):
        """Mean-field probabilities of hidden layer ``layer`` (1-based; default the top)."""
        layer = self.n_layers if layer is None else check_int(layer, "layer", minimum=1,
                                                               maximum=self.n_layers)
        return self.mean_field(X, n_iter=n_iter).q[layer - 1]

    # ------------------------------------------------------------------ energies and bounds

    def energy(self, states):
        """E(x) per row for binary states (a list of one array per layer), float64."""
        states = self._check_states(states)
        return self._energy(states)

    def _energy(self, q):
        """E evaluated at (mean-field) states, float64: -sum bias.q - sum q_{l-1} W_l q_l."""
        xp = self._xp
        e = xp.zeros(q[0].shape[0], dtype=xp.float64)
        for l, (x, b) in enumerate(zip(q, self.biases_)):
            e -= x.astype(xp.float64) @ b.astype(xp.float64)
            if l > 0:
                e -= xp.sum((q[l - 1].astype(xp.float64) @ self.W_[l - 1].astype(xp.float64))
                            * x.astype(xp.float64), axis=1)
        return e

    def elbo(self, X, log_z: float | None = None, n_iter: int = 50):
        """Per-example variational lower bound on log p(v) from the mean-field posterior:
        -E_q[E(v, h)] + H(q) - log Z. ``log_z`` defaults to the exact value (small models;
        ``ebmfast.estimators.exact_log_partition``)."""
        from .estimators import exact_log_partition
        V, vb = self._check_data(X)
        if log_z is None:
            log_z = exact_log_partition(self)
        log_z = check_float(log_z, "log_z")
        mf = self._mean_field(V, vb, check_int(n_iter, "n_iter", minimum=1), 1e-7)
        xp = self._xp
        ent = xp.zeros(V.shape[0], dtype=xp.float64)
        for q in mf.q:
            q = xp.clip(q.astype(xp.float64), 1e-12, 1 - 1e-12)
            ent -= xp.sum(q * xp.log(q) + (1 - q) * xp.log1p(-q), axis=1)
        return -self._energy([V] + mf.q) + ent - log_z

    # ------------------------------------------------------------------ training

    def _cross_moments(self, A, B, C, D):
        """<a^T b>_rows(A, B) - <c^T d>_rows(C, D): the two outer-product averages of a
        weight gradient, formed by the layer kernel itself (hand-written on either device)
        as one field with two inputs: (A^T / rows) . B + (C^T) . (-D / rows)."""
        xp = self._xp
        At = xp.ascontiguousarray(A.T) * xp.float32(1.0 / A.shape[0])
        Ct = xp.ascontiguousarray(C.T)
        Dn = D * xp.float32(-1.0 / C.shape[0])
        zero = xp.zeros(B.shape[1], dtype=xp.float32)
        f, _, _ = self._kernel([(At, B, False), (Ct, Dn, False)], zero, want_field=True)
        return f

    def _ensure_chains(self):
        if self._chains is None or self._chains[0].shape[0] != self.n_chains:
            self._chains = self._random_states(self.n_chains)
        return self._chains

    def _update(self, V, v_binary: bool) -> float:
        """One variational SML update on the batch V; returns the batch's mean-field
        reconstruction error. Atomic: a non-finite result raises FloatingPointError and
        leaves parameters, velocities and chains as they were."""
        step0 = self.step_
        try:
            return self._update_unchecked(V, v_binary)
        except (FloatingPointError, OverflowError):
            self.step_ = step0  # chains, velocities and parameters are only set on success
            raise

    def _update_unchecked(self, V, v_binary: bool) -> float:
        xp = self._xp
        L = self.n_layers
        mf = self._mean_field(V, v_binary, self.mf_iter, 0.0)
        pos = [V] + mf.q
        chains = self._chains
        if chains is None or chains[0].shape[0] != self.n_chains:
            chains = self._random_states(self.n_chains)
        chains = [c.copy() for c in chains]
        self._sweeps(chains, self.k, self._take_steps(self.k))
        lr = self.learning_rate / (1.0 + self.learning_rate_decay * self.updates_)
        if self._velocity is None:
            vW, vb = [xp.zeros_like(W) for W in self.W_], [xp.zeros_like(b) for b in self.biases_]
        else:
            vW, vb = self._velocity
        new_W, new_vW, new_b, new_vb = [], [], [], []
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            for l in range(1, L + 1):
                g = self._cross_moments(pos[l - 1], pos[l], chains[l - 1], chains[l])
                v = self.momentum * vW[l - 1] + lr * (g - self.weight_decay * self.W_[l - 1])
                new_vW.append(v.astype(xp.float32))
                new_W.append((self.W_[l - 1] + v).astype(xp.float32))
            for l in range(L + 1):
                g = pos[l].mean(axis=0) - chains[l].mean(axis=0)
                v = self.momentum * vb[l] + lr * g
                new_vb.append(v.astype(xp.float32))
                new_b.append((self.biases_[l] + v).astype(xp.float32))
        if not all(bool(xp.isfinite(a).all()) for a in new_W + new_b):
            raise FloatingPointError(
                f"a non-finite parameter after update {self.updates_ + 1} (learning rate {lr:.3g}); "
                "lower learning_rate or raise weight_decay")
        with deferred_interrupt():  # a Ctrl-C here would leave W_ and its transposes apart
            self.W_, self.biases_ = new_W, new_b
            self._velocity = (new_vW, new_vb)
            self._chains = chains
            self.updates_ += 1
            self._refresh_transposes()
        # mean-field reconstruction p(v | q_1) of the batch
        _, r, _ = self._kernel([(mf.q[0], self._WT[0], False)], self.biases_[0], want_prob=True)
        return float(((r - V) ** 2).sum(axis=1).mean())

    def partial_fit(self, X, y=None) -> "DBM":
        """One variational SML update with X as the mini-batch (no pre-training)."""
        V, vb = self._check_data(X)
        self._update(V, vb)
        return self

    def fit(self, X, y=None, *, checkpoint=None, checkpoint_every: int = 1,
            resume=None) -> "DBM":
        """Greedy pre-training (once, when ``pretrain``), then ``epochs`` epochs of joint
        variational SML training on shuffled mini-batches. A diverging update raises
        FloatingPointError naming the epoch; the model keeps its last finite parameters.

        checkpoint, checkpoint_every : write the full training state (pre-training progress
        included) atomically every ``checkpoint_every`` epochs (pre-training epochs count
        per pre-training RBM) and after the last one. resume : a checkpoint path; the
        model's state and hyper-parameters become the file's and the interrupted call is
        finished bit for bit (X must be the same data)."""
        ck = _checkpoint.FitCheckpoints(checkpoint, checkpoint_every)
        model, fit_meta, pre = self, None, None
        if resume is not None:
            resume = _checkpoint.check_resume_path(resume)
            model, fit_meta, pre = self._read(resume)
            if model.layer_sizes != self.layer_sizes:
                raise ValueError(f"resume: {resume!r} holds a DBM{model.layer_sizes}, this one "
                                 f"is DBM{self.layer_sizes}")
        V, vb = model._check_data(X)
        data_id = _checkpoint.fingerprint(_host(V)) if (ck.path or model is not self) else None
        if model is not self:
            _checkpoint.check_same_data(resume, fit_meta, data_id)
            _checkpoint.adopt(self, model, keep=("progress",))
        target = fit_meta["target"] if fit_meta is not None else self.epochs_trained_ + self.epochs
        progress = {"target": target, "data": data_id}
        if self.pretrain and not self.pretrained_:
            def pre_epoch(layer, epoch, done, current):
                ck.epoch_done(epoch, epoch >= self.pretrain_epochs,
                              lambda p: self._write(p, progress, (layer, epoch, done, current)))
            step0 = self.step_
            try:
                self._pretrain(V, vb, state=pre, on_epoch=pre_epoch if ck.path else None)
            except (FloatingPointError, OverflowError):
                self.step_ = step0  # nothing else is set before pre-training succeeds
                raise
        n = V.shape[0]
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=target - self.epochs_trained_, desc="DBM fit", unit="epoch")
        try:
            for _ in range(target - self.epochs_trained_):
                t0 = time.perf_counter()
                keys = _core.philox_uniforms(self.seed_, STREAM_SHUFFLE,
                                             self.epochs_trained_ % 2**32, 1, n)[0]
                order = np.argsort(keys, kind="stable")
                if self._device != "cpu":
                    order = self._xp.asarray(order)
                err = 0.0
                for start in range(0, n, self.batch_size):
                    batch = V[order[start:start + self.batch_size]]
                    try:
                        err += self._update(batch, vb) * batch.shape[0]
                    except FloatingPointError as exc:
                        raise FloatingPointError(
                            f"training diverged in epoch {self.epochs_trained_ + 1}: {exc}") from None
                self.epochs_trained_ += 1
                entry = {"epoch": self.epochs_trained_, "recon_error": err / n,
                         "seconds": time.perf_counter() - t0}
                self.history_.append(entry)
                if bar is not None:
                    bar.set_postfix(epoch=self.epochs_trained_, recon=f"{entry['recon_error']:.4f}")
                    bar.update(1)
                ck.epoch_done(self.epochs_trained_, self.epochs_trained_ >= target,
                              lambda p: self._write(p, progress))
        finally:
            if bar is not None:
                bar.close()
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the full state (weights, biases, velocities, persistent chains, Philox step,
        update count, history, hyper-parameters) to an .npz file, atomically."""
        self._write(path)

    def _write(self, path, fit: dict | None = None, pre=None) -> None:
        """``pre``: (layer, epochs done in it, finished layers [(W, b, c)], current
        (W, b, c, vW, vb, vc)) while pre-training is under way."""
        params = dict(learning_rate=self.learning_rate, learning_rate_decay=self.learning_rate_decay,
                      momentum=self.momentum, weight_decay=self.weight_decay,
                      batch_size=self.batch_size, n_chains=self.n_chains, k=self.k,
                      mf_iter=self.mf_iter, epochs=self.epochs, pretrain=self.pretrain,
                      pretrain_epochs=self.pretrain_epochs,
                      pretrain_learning_rate=self.pretrain_learning_rate,
                      device=self._device, progress=self.progress)
        meta = {"layer_sizes": self.layer_sizes, "params": params, "seed_": str(self.seed_),
                "step_": self.step_, "updates_": self.updates_,
                "epochs_trained_": self.epochs_trained_, "pretrained_": self.pretrained_,
                "history_": self.history_, "has_velocity": self._velocity is not None,
                "has_chains": self._chains is not None}
        arrays = {}
        for l, W in enumerate(self.W_):
            arrays[f"W{l + 1}"] = _host(W)
        for l, b in enumerate(self.biases_):
            arrays[f"b{l}"] = _host(b)
        if self._velocity is not None:
            for l, v in enumerate(self._velocity[0]):
                arrays[f"vW{l + 1}"] = _host(v)
            for l, v in enumerate(self._velocity[1]):
                arrays[f"vb{l}"] = _host(v)
        if self._chains is not None:
            for l, x in enumerate(self._chains):
                arrays[f"chain{l}"] = _host(x)
        if fit is not None:
            meta["fit"] = dict(fit)
            if pre is not None:
                layer, epoch, done, current = pre
                meta["fit"]["pretrain"] = {"layer": layer, "epoch": epoch}
                for j, trio in enumerate(done):
                    for name, a in zip("Wbc", trio):
                        arrays[f"pre_done{j + 1}_{name}"] = _host(a)
                for name, a in zip(("W", "b", "c", "vW", "vb", "vc"), current):
                    arrays[f"pre_{name}"] = _host(a)
        _checkpoint.write(path, "DBM", meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DBM":
        """Read a model written by :meth:`save` or a checkpoint of :meth:`fit` (on the GPU
        when it was saved there and one is present, else on the CPU)."""
        return cls._read(os.fspath(path))[0]

    @classmethod
    def _read(cls, path: str):
        """(model, fit progress or None, pre-training state for _pretrain or None)."""
        meta, a = _checkpoint.read(path, "DBM")
        get = lambda name, shape: _checkpoint.array(a, name, shape, None)  # noqa: E731
        try:
            params = dict(meta["params"])
            if params.get("device") == "cuda" and not (
                    _core.cuda_compiled and _core.cuda_device_count() > 0):
                params["device"] = "cpu"
            model = cls(meta["layer_sizes"], seed=int(meta["seed_"]), **params)
            xp, sizes, L = model._xp, model.layer_sizes, model.n_layers
            wshape = [(sizes[l - 1], sizes[l]) for l in range(1, L + 1)]
            model.W_ = [xp.asarray(get(f"W{l}", wshape[l - 1])) for l in range(1, L + 1)]
            model.biases_ = [xp.asarray(get(f"b{l}", (sizes[l],))) for l in range(L + 1)]
            if meta["has_velocity"]:
                model._velocity = ([xp.asarray(get(f"vW{l}", wshape[l - 1])) for l in range(1, L + 1)],
                                   [xp.asarray(get(f"vb{l}", (sizes[l],))) for l in range(L + 1)])
            if meta["has_chains"]:
                model._chains = [xp.asarray(get(f"chain{l}", (model.n_chains, sizes[l])))
                                 for l in range(L + 1)]
            model.step_ = check_int(meta["step_"], "step_", minimum=0, maximum=2**32 - 1)
            model.updates_ = check_int(meta["updates_"], "updates_", minimum=0)
            model.epochs_trained_ = check_int(meta["epochs_trained_"], "epochs_trained_", minimum=0)
            model.pretrained_ = bool(meta["pretrained_"])
            if not isinstance(meta["history_"], list):
                raise TypeError("history_ is not a list")
            model.history_ = list(meta["history_"])
            model._refresh_transposes()
            fit, pre = meta.get("fit"), None
            if fit is not None:
                if not isinstance(fit.get("target"), int) or fit["target"] < model.epochs_trained_:
                    raise ValueError(f"fit target {fit.get('target')!r}")
                if "pretrain" in fit:
                    layer = check_int(fit["pretrain"]["layer"], "pretrain layer", minimum=1, maximum=L)
                    epoch = check_int(fit["pretrain"]["epoch"], "pretrain epoch", minimum=0,
                                      maximum=model.pretrain_epochs)
                    ins = [sizes[0]] + sizes[1:-1]  # input width of pre-training RBM l
                    done = [tuple(xp.asarray(get(f"pre_done{j}_{nm}", shp)) for nm, shp in
                                  zip("Wbc", ((ins[j - 1], sizes[j]), (ins[j - 1],), (sizes[j],))))
                            for j in range(1, layer)]
                    shapes = ((ins[layer - 1], sizes[layer]), (ins[layer - 1],), (sizes[layer],)) * 2
                    current = tuple(xp.asarray(get(f"pre_{nm}", shp)) for nm, shp in
                                    zip(("W", "b", "c", "vW", "vb", "vc"), shapes))
                    pre = {"done": done, "current": current + (epoch,)}
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise _checkpoint.damaged(path, "DBM", exc) from None
        return model, fit, pre

    # ------------------------------------------------------------------ pre-training

    def _pretrain_rbm(self, X, x_binary: bool, n_hidden: int, up: float, down: float,
                      start=None, on_epoch=None):
        """CD-1 on an RBM whose hidden layer sees ``up`` x its input and whose visible
        layer sees ``down`` x its hidden layer (2 for the doubled copies of Salakhutdinov &
        Hinton 2009, else 1). Returns (W, visible bias, hidden bias). ``start`` (W, b, c,
        vW, vb, vc, epochs done) continues a checkpointed run; ``on_epoch(epochs done,
        (W, b, c, vW, vb, vc))`` is called after every epoch."""
        xp = self._xp
        n_in = X.shape[1]
        if start is None:
            rng = np.random.default_rng([self.seed_ & 0xFFFFFFFF, n_in, n_hidden, int(up), int(down)])
            W = xp.asarray((0.01 * rng.standard_normal((n_in, n_hidden))).astype(np.float32))
            p = xp.clip(X.mean(axis=0), 1e-3, 1 - 1e-3)
            b = xp.log(p / (1 - p)).astype(xp.float32)
            c = xp.zeros(n_hidden, dtype=xp.float32)
            vW, vb, vc = xp.zeros_like(W), xp.zeros_like(b), xp.zeros_like(c)
            epoch0 = 0
        else:
            W, b, c, vW, vb, vc, epoch0 = start
        lr, mom, wd = self.pretrain_learning_rate, 0.5, self.weight_decay
        n = X.shape[0]
        from .reference import STREAM_HIDDEN, STREAM_VISIBLE
        for epoch in range(epoch0, self.pretrain_epochs):
            keys = _core.philox_uniforms(self.seed_, STREAM_SHUFFLE, self._take_steps(1), 1, n)[0]
            order = np.argsort(keys, kind="stable")
            if self._device != "cpu":
                order = xp.asarray(order)
            for start in range(0, n, self.batch_size):
                v0 = X[order[start:start + self.batch_size]]
                step = self._take_steps(1)
                WT = xp.ascontiguousarray(W.T)
                _, ph0, h0 = self._kernel([(v0, W, x_binary)], c, beta=up, stream=STREAM_HIDDEN,
                                          step=step, want_prob=True, want_sample=True)
                _, _, v1 = self._kernel([(h0, WT, True)], b, beta=down, stream=STREAM_VISIBLE,
                                        step=step, want_sample=True)
                _, ph1, _ = self._kernel([(v1, W, True)], c, beta=up, want_prob=True)
                g = self._cross_moments(v0, ph0, v1, ph1)
                with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                    vW = mom * vW + lr * (g - wd * W)
                    vb = mom * vb + lr * (v0.mean(axis=0) - v1.mean(axis=0))
                    vc = mom * vc + lr * (ph0.mean(axis=0) - ph1.mean(axis=0))
                    W = (W + vW).astype(xp.float32)
                    b = (b + vb).astype(xp.float32)
                    c = (c + vc).astype(xp.float32)
                if not all(bool(xp.isfinite(a).all()) for a in (W, b, c)):
                    raise FloatingPointError(
                        f"pre-training diverged (RBM {n_in}x{n_hidden}, epoch {epoch + 1}); "
                        "lower pretrain_learning_rate")
            if on_epoch is not None:
                on_epoch(epoch + 1, (W, b, c, vW, vb, vc))
        return W, b, c

    def _pretrain(self, V, v_binary: bool, state=None, on_epoch=None) -> None:
        """Greedy layer-wise pre-training (Salakhutdinov & Hinton 2009): the bottom RBM's
        hidden layer sees its input twice (two tied copies of the visibles), the top RBM's
        visible layer sees its hidden layer twice, middle RBMs are plain and their weights
        halved in the DBM, where every middle layer hears both neighbours. A hidden layer
        shared by two RBMs takes the mean of their two biases. ``state`` ({"done": [(W, b,
        c) of finished RBMs], "current": (W, b, c, vW, vb, vc, epochs done)}) continues a
        checkpointed run; ``on_epoch(layer, epochs done, done, current)`` after each epoch."""
        L = self.n_layers
        X, xb = V, v_binary
        Ws, vbias, hbias = [], [], []
        done = [] if state is None else list(state["done"])
        resumed = len(done) + 1 if state is not None else 0  # the layer `current` belongs to
        for l in range(1, L + 1):
            up = 2.0 if l == 1 else 1.0
            down = 2.0 if l == L else 1.0
            if l <= len(done):  # finished before the checkpoint: only propagate X
                W, b, c = done[l - 1]
            else:
                start = state["current"] if l == resumed else None
                hook = None if on_epoch is None else (
                    lambda epoch, cur, l=l: on_epoch(l, epoch, done, cur))
                W, b, c = self._pretrain_rbm(X, xb, self.layer_sizes[l], up, down, start, hook)
                done.append((W, b, c))
            Ws.append(W if l in (1, L) else W * self._xp.float32(0.5))
            vbias.append(b)
            hbias.append(c)
            if l < L:  # the next RBM learns this layer's probabilities
                _, X, _ = self._kernel([(X, W, xb)], c, beta=up, want_prob=True)
                xb = False
        biases = [vbias[0]] + [(hbias[l - 1] + vbias[l]) * self._xp.float32(0.5)
                               for l in range(1, L)] + [hbias[L - 1]]
        Ws = [self._xp.ascontiguousarray(W, dtype=self._xp.float32) for W in Ws]
        biases = [self._xp.ascontiguousarray(b, dtype=self._xp.float32) for b in biases]
        with deferred_interrupt():  # a Ctrl-C here would leave W_ and its transposes apart
            self.W_, self.biases_ = Ws, biases
            self._velocity = None
            self.pretrained_ = True
            self._refresh_transposes()
