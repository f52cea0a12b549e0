"""Hopfield networks: ±1 units, symmetric weights with a zero diagonal, optional bias.

Lecture sign (DESIGN.md §4): E(y) = −½ yᵀWy − bᵀy = −Σ_{i<j} w_ij y_i y_j − Σ_i b_i y_i,
field z = W y + b. Deterministic recall runs asynchronous updates (compiled kernel,
``_core.hopfield_recall``: one GEMM for the cues' first fields, then per cue a vector scan
for unstable units and an incremental field update per flip, so the work falls to almost
nothing as the cues converge) or synchronous ones (one GEMM per sweep, NumPy).
Stochastic dynamics — heat-bath Gibbs with P(y_i = +1) = σ(2 z_i / T) — are the spin-chain
sampler ``sample_ising`` in dimod's sign with h = −b, J = −W, β = 1/T.

Randomness (random site order, stochastic dynamics) comes from the shared Philox stream:
``ebmfast.reference`` holds the NumPy twin of recall.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._backend import check_bool, check_float, check_int, check_memory, check_seed
from ._interrupt import timed_chunks
from .ising import _check_spins, sample_ising

__all__ = ["Hopfield", "RecallResult", "HopfieldSample"]

_RULES = ("hebbian", "pseudoinverse", "sgd")


class RecallResult:
    """What ``Hopfield.recall`` returns, one entry per cue.

    states (m, n) int8 ±1 final states; sweeps (m,) int32 sweeps run before the state was a
    fixed point (0 for a cue that already is one; max_sweeps when it never got there);
    converged (m,) bool fixed point reached; cycled (m,) bool a period-2 cycle was found
    (sync mode only; always False for async, which cannot cycle); energies (m,) float64,
    computed on first access (a float64 pass over the states costs as much as the recall
    itself) with the weights of the recall."""

    def __init__(self, states, sweeps, converged, cycled, W, b):
        self.states = states
        self.sweeps = sweeps
        self.converged = converged
        self.cycled = cycled
        self._Wb = (W, b)
        self._energies = None

    @property
    def energies(self) -> np.ndarray:
        if self._energies is None:
            W, b = self._Wb
            self._energies = _energies(W, b, self.states)
        return self._energies

    def __repr__(self) -> str:
        m = self.states.shape[0]
        return (f"RecallResult({m} cues, converged {int(self.converged.sum())}, "
                f"cycled {int(self.cycled.sum())}, mean sweeps {float(self.sweeps.mean()) if m else 0:.2f})")


def _energies(W: np.ndarray, b: np.ndarray, Y8: np.ndarray) -> np.ndarray:
    """E = −½ yᵀWy − bᵀy per row of the int8 states, float64, in row chunks."""
    W64, b64 = W.astype(np.float64), b.astype(np.float64)
    out = np.empty(Y8.shape[0], np.float64)
    for r0 in range(0, Y8.shape[0], 1024):
        Y = Y8[r0:r0 + 1024].astype(np.float64)
        out[r0:r0 + 1024] = -0.5 * np.einsum("ri,ri->r", Y @ W64, Y) - Y @ b64
    return out


# csrc/cpu/hopfield_recall.cpp: cues per task (kTileCues); see Hopfield._recall_cpu.
_RECALL_TILE = 128


@dataclass
class HopfieldSample:
    """What ``Hopfield.sample`` / ``anneal`` return: final ``states`` (m, n) int8, their
    ``energies`` (m,) float64, ``mean`` (m, n) float64 mean spins over the last
    ``average_last`` sweeps (None when not asked), ``info`` (temperatures, seed, next_step)."""
    states: np.ndarray
    energies: np.ndarray
    mean: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def _check_states(states, name: str, n: int) -> np.ndarray:
    """±1 states (m, n) or one state (n,) as a contiguous int8 (m, n) array."""
    if hasattr(states, "__cuda_array_interface__") or type(states).__module__.startswith("cupy"):
        raise TypeError(f"{name} is a GPU array; pass host (NumPy) ±1 states")
    try:
        arr = np.asarray(states)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a 2-D array of ±1 states: {exc}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":  # complex 1+0j is no spin
        raise TypeError(f"{name} must hold ±1 spins as a real or bool array, got dtype {arr.dtype}")
    shape = getattr(arr, "shape", None)
    if shape is not None and len(shape) == 1:
        return _check_spins(np.asarray(arr).reshape(1, -1), name, (1, n))
    if shape is None or len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (m, {n}) ±1 states, got shape {shape}")
    return _check_spins(arr, name, (shape[0], n))


class Hopfield:
    """A Hopfield network of ``n_units`` ±1 units.

    ``W`` (n, n) float32 symmetric with a zero diagonal and ``b`` (n,) float32 start at zero;
    set them directly (validated) or with ``store``. ``seed`` drives random site orders and
    stochastic dynamics when a call gives no seed of its own (each such call moves on to
    fresh Philox steps, so repeated calls differ but a run replays)."""

    def __init__(self, n_units: int, *, seed=None):
        self.n_units = check_int(n_units, "n_units", minimum=1, maximum=2**24)
        n = self.n_units
        # W (float32) and the float64 copies that store/recall make of it
        check_memory(24.0 * n * n, f"Hopfield(n_units={n})")
        self._W = np.zeros((n, n), np.float32)
        self._b = np.zeros(n, np.float32)
        self._seed = check_seed(seed)
        self._step = 0
        self._hebbian_count = 0  # patterns behind the current Hebbian W (for append=True)
        self.patterns_: np.ndarray | None = None
        self.info_: dict = {}

    def __repr__(self) -> str:
        return f"Hopfield(n_units={self.n_units})"

    # ------------------------------------------------------------------ parameters
    # W and b are held read-only (so that in-place edits cannot break symmetry); assign a
    # new array to change them.
    @property
    def _W(self) -> np.ndarray:
        return self.__W

    @_W.setter
    def _W(self, M: np.ndarray) -> None:
        M = np.ascontiguousarray(M, dtype=np.float32)
        M.flags.writeable = False
        self.__W = M

    @property
    def _b(self) -> np.ndarray:
        return self.__b

    @_b.setter
    def _b(self, v: np.ndarray) -> None:
        v = np.ascontiguousarray(v, dtype=np.float32)
        v.flags.writeable = False
        self.__b = v

    @property
    def W(self) -> np.ndarray:
        """(n, n) float32, symmetric, zero diagonal (read-only view; assign to change)."""
        return self._W

    @W.setter
    def W(self, value) -> None:
        n = self.n_units
        M = np.asarray(value)
        if M.dtype == object or M.dtype.kind not in "biuf":
            raise TypeError(f"W must hold real numbers, got dtype {M.dtype}")
        if M.shape != (n, n):
            raise ValueError(f"W must have shape ({n}, {n}), got {M.shape}")
        M = np.array(M, dtype=np.float32)
        if not np.isfinite(M).all():
            raise ValueError("W must be finite (found NaN or inf)")
        if not np.array_equal(M, M.T):
            raise ValueError("W must be symmetric (W == W.T); for a matrix A use (A + A.T) / 2")
        if np.any(np.diag(M) != 0):
            raise ValueError("W must have a zero diagonal (no self-coupling)")
        self._W = M
        self._hebbian_count = 0

    @property
    def b(self) -> np.ndarray:
        """(n,) float32 bias (read-only view; assign to change)."""
        return self._b

    @b.setter
    def b(self, value) -> None:
        v = np.asarray(value)
        if v.dtype == object or v.dtype.kind not in "biuf":
            raise TypeError(f"b must hold real numbers, got dtype {v.dtype}")
        if v.shape != (self.n_units,):
            raise ValueError(f"b must have shape ({self.n_units},), got {v.shape}")
        v = np.array(v, dtype=np.float32)
        if not np.isfinite(v).all():
            raise ValueError("b must be finite (found NaN or inf)")
        self._b = v

    def _take_steps(self, seed, n_steps: int) -> tuple[int, int]:
        """(seed, first Philox step) of a call: an explicit seed starts at step 0, the
        model's seed continues where the last call stopped."""
        if seed is not None:
            return check_seed(seed), 0
        step = self._step
        if step + max(int(n_steps), 1) > 2**32 - 1:  # checked before the counter moves
            raise OverflowError(f"{n_steps} sweeps would exhaust the model's Philox step "
                                f"counter ({step} of 2**32 used); pass a seed")
        self._step = step + max(int(n_steps), 1)
        return self._seed, step

    # ------------------------------------------------------------------ storing
    def store(self, patterns, rule: str = "hebbian", *, append: bool = False,
              learning_rate: float = 0.05, epochs: int = 100, batch_size: int | None = None,
              k: int = 3, dynamics: str = "async", temperature: float = 1.0,
              init: str = "hebbian", fit_bias: bool = False, seed=None) -> "Hopfield":
        """Store ±1 ``patterns`` (K, n) (or one pattern (n,)); replaces W (and, for
        ``fit_bias``, b) unless ``append``.

        rule:
          - "hebbian": W = (1/K) Σ_p y_p y_pᵀ, zero diagonal. ``append=True`` adds the new
            patterns to those stored by earlier Hebbian calls, as if stored together.
          - "pseudoinverse": the projection rule W = Yᵀ(YYᵀ)⁺Y with a zero diagonal; stores
            any linearly independent set (correlated patterns included) as fixed points.
          - "sgd": the lectures' contrastive rule, mini-batch by mini-batch:
            W ← W + η (⟨y yᵀ⟩_batch − ⟨y′ y′ᵀ⟩), zero diagonal kept, where y′ is each pattern
            after ``k`` sweeps of the dynamics started at it. Sign: with E = −½ yᵀWy, moving
            W along y yᵀ lowers the patterns' energy and along y′y′ᵀ raises that of the states
            the dynamics drift to, so this (+) sign is the one that stores patterns (the
            issue's "W ← W − η(...)" is the gradient step on the energy difference written
            with the opposite sign convention). At a stored pattern y′ = y and the update
            vanishes. ``dynamics``: "async" (deterministic sequential sweeps) or "gibbs"
            (heat bath at ``temperature``). ``init``: start from the Hebbian W ("hebbian";
            with deterministic dynamics a zero W never moves), "current" W, or "zeros".
            ``fit_bias`` also learns b ← b + η(⟨y⟩ − ⟨y′⟩). With async dynamics it stops
            early after an epoch in which every pattern was a fixed point
            (info_["epochs_run"]); seeds: mini-batch order and Gibbs dynamics.
        """
        if not isinstance(rule, str) or rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
        if not isinstance(append, (bool, np.bool_)):
            raise TypeError(f"append must be a bool, got {append!r}")
        P = _check_states(patterns, "patterns", self.n_units)
        if P.shape[0] == 0:
            raise ValueError("patterns must hold at least one pattern")
        if append and rule != "hebbian":
            raise ValueError("append=True is supported for rule='hebbian' only")
        Y = P.astype(np.float64)
        if rule == "hebbian":
            C = Y.T @ Y
            K = P.shape[0]
            if append and self._hebbian_count:
                C += self._W.astype(np.float64) * self._hebbian_count
                K += self._hebbian_count
            W = C / K
            np.fill_diagonal(W, 0.0)
            self._W = W.astype(np.float32)
            self._hebbian_count = K
            self.patterns_ = P if not append or self.patterns_ is None else np.vstack([self.patterns_, P])
            self.info_ = {"rule": rule, "patterns": K}
            return self
        if rule == "pseudoinverse":
            W = Y.T @ np.linalg.pinv(Y @ Y.T) @ Y
            np.fill_diagonal(W, 0.0)
            self._W = W.astype(np.float32)
            self._hebbian_count = 0
            self.patterns_ = P
            self.info_ = {"rule": rule, "patterns": P.shape[0]}
            return self
        self._store_sgd(P, learning_rate, epochs, batch_size, k, dynamics, temperature, init,
                        fit_bias, seed)
        return self

    def _store_sgd(self, P, learning_rate, epochs, batch_size, k, dynamics, temperature, init,
                   fit_bias, seed) -> None:
        lr = check_float(learning_rate, "learning_rate", minimum=0.0, open_min=True)
        epochs = check_int(epochs, "epochs", minimum=1)
        K = P.shape[0]
        batch_size = K if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
        k = check_int(k, "k", minimum=1, maximum=10_000)
        fit_bias = check_bool(fit_bias, "fit_bias")
        if not isinstance(dynamics, str) or dynamics not in ("async", "gibbs"):
            raise ValueError(f"dynamics must be 'async' or 'gibbs', got {dynamics!r}")
        T = check_float(temperature, "temperature", minimum=0.0, open_min=True)
        if not isinstance(init, str) or init not in ("hebbian", "current", "zeros"):
            raise ValueError(f"init must be 'hebbian', 'current' or 'zeros', got {init!r}")
        seed = check_seed(seed if seed is not None else self._seed)
        n = self.n_units
        Y = P.astype(np.float64)
        if init == "hebbian":
            W = Y.T @ Y / K
            np.fill_diagonal(W, 0.0)
        elif init == "current":
            W = self._W.astype(np.float64)
        else:
            W = np.zeros((n, n))
        b = self._b.astype(np.float64)
        order_rng = np.random.Generator(np.random.Philox(seed))
        step = 0
        epochs_run = 0
        # A field sum_j W_ij s_j + b_i must stay a float32 number in the kernels.
        f32_max = float(np.finfo(np.float32).max)
        for _ in range(epochs):
            epochs_run += 1
            moved = 0
            perm = order_rng.permutation(K) if batch_size < K else np.arange(K)
            for r0 in range(0, K, batch_size):
                Pb = P[perm[r0:r0 + batch_size]]
                W32, b32 = W.astype(np.float32), b.astype(np.float32)
                Yp = Pb.copy()
                if dynamics == "async":
                    _core.hopfield_recall(W32, b32, Yp, k, False, seed, 0)
                else:
                    res = sample_ising(-b32, -W32 if n > 1 else np.zeros((1, 1)), num_reads=Pb.shape[0],
                                       num_sweeps=k, beta_range=1.0 / T, proposal="gibbs",
                                       seed=seed, initial_states=Pb, step_offset=step)
                    Yp = res.samples
                    step += k
                moved += int(np.any(Yp != Pb, axis=1).sum())
                A, B = Pb.astype(np.float64), Yp.astype(np.float64)
                G = (A.T @ A - B.T @ B) / Pb.shape[0]
                np.fill_diagonal(G, 0.0)
                with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                    W += lr * G
                    if fit_bias:
                        b += lr * (A.mean(axis=0) - B.mean(axis=0))
                    bound = n * np.abs(W).max(initial=0.0) + np.abs(b).max(initial=0.0)
                if not np.isfinite(bound) or bound >= f32_max:
                    # W and b are locals: the model keeps the weights it had before store
                    raise FloatingPointError(
                        f"SGD storage diverged in epoch {epochs_run}: the weights left the "
                        f"float32 range; lower learning_rate (now {lr})")
            if moved == 0 and dynamics == "async":
                break
        self._W = W.astype(np.float32)
        self._W = (self._W + self._W.T) / 2  # exact symmetry after the float32 cast
        if fit_bias:
            self._b = b.astype(np.float32)
        self._hebbian_count = 0
        self.patterns_ = P
        self.info_ = {"rule": "sgd", "patterns": K, "epochs_run": epochs_run,
                      "dynamics": dynamics, "k": k}

    # ------------------------------------------------------------------ deterministic
    def energy(self, states=None) -> np.ndarray:
        """E(y) = −½ yᵀWy − bᵀy per state (m, n) (or one state (n,)), float64; default the
        stored patterns."""
        if states is None:
            if self.patterns_ is None:
                raise ValueError("energy() without states needs stored patterns; pass states")
            states = self.patterns_
        return _energies(self._W, self._b, _check_states(states, "states", self.n_units))

    def stable(self, patterns) -> np.ndarray:
        """Per pattern (m, n) ±1: True when it is a fixed point of asynchronous updates
        (no unit with y_i z_i < 0; z_i = 0 leaves y_i as it is). float64 fields."""
        Y = _check_states(patterns, "patterns", self.n_units).astype(np.float64)
        Z = Y @ self._W.astype(np.float64) + self._b.astype(np.float64)
        return ~np.any(Y * Z < 0, axis=1)

    def recall(self, states, mode: str = "async", max_sweeps: int = 100,
               order: str = "sequential", seed=None, device: str = "cpu") -> RecallResult:
        """Deterministic evolution of the cues ``states`` (m, n) ±1 (or one cue (n,)) to a
        fixed point, at most ``max_sweeps`` sweeps.

        mode "async": y_i ← +1 if z_i > 0, −1 if z_i < 0, unchanged if z_i = 0, one unit at a
        time; ``order`` "sequential" (0..n−1) or "random" (n units drawn with replacement per
        sweep from the Philox PROPOSAL stream, as in ``sample_ising``). Each flip lowers the
        energy by 2|z_i|, so async recall always converges. Fields are float32 (updated
        incrementally): a field within rounding of an exact tie (z_i = 0) may count as either
        sign. mode "sync": y ← sign(W y + b) for all units at once (float64 GEMM, ties keep
        y_i); it may fall into a period-2 cycle, which is detected and reported (``cycled``;
        the cue stops there, not converged).

        device: "cpu" (default; "auto" means the CPU too until the CUDA kernel has been
        verified on a GPU) or "cuda" (async mode: one GPU thread per cue, same results).
        """
        if not isinstance(device, str) or device not in ("cpu", "auto", "cuda"):
            raise ValueError(f"device must be 'cpu', 'auto' or 'cuda', got {device!r}")
        if not isinstance(mode, str) or mode not in ("async", "sync"):
            raise ValueError(f"mode must be 'async' or 'sync', got {mode!r}")
        if not isinstance(order, str) or order not in ("sequential", "random"):
            raise ValueError(f"order must be 'sequential' or 'random', got {order!r}")
        max_sweeps = check_int(max_sweeps, "max_sweeps", minimum=0, maximum=2**31 - 1)
        if mode == "sync" and order != "sequential":
            raise ValueError("order applies to mode='async' only (sync updates every unit at once)")
        if device == "cuda" and mode == "async":  # a missing GPU fails before anything moves
            from ._backend import resolve_device
            resolve_device("cuda", cuda_implemented=True)
        S = _check_states(states, "states", self.n_units).copy()
        m = S.shape[0]
        if mode == "async":
            if order == "random":
                if seed is not None:
                    check_seed(seed)
                seed, step = self._take_steps(seed, max_sweeps)
            else:
                seed, step = 0, 0
            if step + max_sweeps > 2**32 - 1:
                raise ValueError("max_sweeps too large for the Philox step counter")
            if device == "cuda":
                from . import _ising_cuda
                S, sweeps, conv = _ising_cuda.hopfield_recall(self._W, self._b, S, max_sweeps,
                                                              order == "random", seed, step)
            else:
                sweeps, conv = self._recall_cpu(S, max_sweeps, order == "random", seed, step)
            cycled = np.zeros(m, bool)
            conv = conv.astype(bool)
        else:
            if order != "sequential":
                raise ValueError("order applies to mode='async' only (sync updates every unit at once)")
            S, sweeps, conv, cycled = self._recall_sync(S, max_sweeps)
        return RecallResult(S, sweeps, conv, cycled, self._W, self._b)

    def _recall_cpu(self, S, max_sweeps, random_order, seed, step):
        """The async recall kernel over blocks of cues: Ctrl-C is honoured between blocks.
        Each cue is recalled by itself and draws Philox chain c whatever the block, so the
        cut changes nothing (tests/test_interrupt.py checks it).

        Blocks are whole kernel tiles (_RECALL_TILE cues, one task each) sized by
        _interrupt.timed_chunks from the time of the previous block: a cue's cost depends
        on how many sweeps it needs (a few near a stored pattern, up to max_sweeps from
        random states), which no estimate made beforehand knows. The first block is one
        tile per thread. Small blocks cost speed: 16-cue blocks (one tile, one thread,
        16-row GEMMs) made recall 2.4x slower."""
        m, n = S.shape
        block = _RECALL_TILE * _core.get_num_threads()
        if block >= m:  # one call: the kernel builds the table itself when it pays
            return _core.hopfield_recall(self._W, self._b, S, max_sweeps, random_order, seed, step)
        # The first fields' spin table, built once for all the blocks.
        table = _core.spin_table(self._W)
        sweeps = np.empty(m, np.int32)
        conv = np.empty(m, np.uint8)
        for c0, size in timed_chunks(m, block, multiple=_RECALL_TILE):
            part = S[c0:c0 + size]  # contiguous rows: the kernel writes them in place
            sweeps[c0:c0 + size], conv[c0:c0 + size] = _core.hopfield_recall(
                self._W, self._b, part, max_sweeps, random_order, seed, step, c0, table)
        return sweeps, conv

    def _recall_sync(self, S, max_sweeps):
        W = self._W.astype(np.float64)
        b = self._b.astype(np.float64)
        Y = S.astype(np.float64)
        m = Y.shape[0]
        prev = None
        active = np.ones(m, bool)
        sweeps = np.full(m, max_sweeps, np.int32)
        conv = np.zeros(m, bool)
        cycled = np.zeros(m, bool)
        for t in range(max_sweeps + 1):
            Z = Y @ W + b
            new = np.where(Z > 0, 1.0, np.where(Z < 0, -1.0, Y))
            fixed = active & np.all(new == Y, axis=1)
            cyc = active & ~fixed & (np.all(new == prev, axis=1) if prev is not None else False)
            sweeps[fixed | cyc] = t
            conv |= fixed
            cycled |= cyc
            active &= ~(fixed | cyc)
            if not active.any() or t == max_sweeps:
                break
            prev = Y.copy()
            Y[active] = new[active]
        return Y.astype(np.int8), sweeps, conv, cycled

    # ------------------------------------------------------------------ stochastic
    def sample(self, states, temperature=1.0, n_sweeps: int | None = None, *, seed=None,
               average_last: int = 0, order: str = "sequential", device: str = "auto") -> HopfieldSample:
        """Heat-bath Gibbs sweeps from ``states`` (m, n) ±1: P(y_i = +1) = σ(2 z_i / T),
        i.e. the Boltzmann distribution p(y) ∝ exp(−E(y)/T). ``temperature``: a number
        (with ``n_sweeps``), an array of one T per sweep, or a callable t ↦ T (with
        ``n_sweeps``). Runs ``sample_ising`` with h = −b, J = −W, β = 1/T. ``average_last``
        M > 0 also returns the mean spins over the last M sweeps. ``device`` as in
        ``sample_ising`` ("cuda" runs the spin-chain CUDA kernel)."""
        temps = self._temperatures(temperature, n_sweeps)
        n_sweeps = temps.size
        average_last = check_int(average_last, "average_last", minimum=0, maximum=n_sweeps)
        if not isinstance(order, str) or order not in ("sequential", "random"):
            raise ValueError(f"order must be 'sequential' or 'random', got {order!r}")
        from .ising import _device
        _device(device)  # an unknown device or a missing GPU fails before the counter moves
        S = _check_states(states, "states", self.n_units).copy()
        if S.shape[0] == 0:
            raise ValueError(f"states must hold at least one state, got shape {S.shape}")
        if seed is not None:
            check_seed(seed)
        seed, step = self._take_steps(seed, n_sweeps)
        if step + n_sweeps > 2**32 - 1:
            raise ValueError("n_sweeps too large for the Philox step counter")
        n = self.n_units
        h = -self._b
        J = -self._W if n > 1 else np.zeros((1, 1), np.float32)
        betas = 1.0 / temps

        def run(S, t0, t1):
            if t1 <= t0:
                return S
            return sample_ising(h, J, num_reads=S.shape[0], beta_schedule=betas[t0:t1],
                                proposal="gibbs", order=order, seed=seed, initial_states=S,
                                step_offset=step + t0, device=device).samples

        burn = n_sweeps - average_last
        S = run(S, 0, burn)
        mean = None
        if average_last:
            acc = np.zeros(S.shape, np.float64)
            for t in range(burn, n_sweeps):
                S = run(S, t, t + 1)
                acc += S
            mean = acc / average_last
        info = {"temperatures": temps, "seed": seed, "step_offset": step,
                "next_step": step + n_sweeps, "order": order}
        return HopfieldSample(states=S, energies=self.energy(S), mean=mean, info=info)

    def anneal(self, states, T0: float, alpha: float, n_sweeps: int, *, seed=None,
               order: str = "sequential", device: str = "auto") -> HopfieldSample:
        """Simulated annealing: heat-bath sweeps at T_t = T0 · alpha^t (0 < alpha ≤ 1),
        t = 0..n_sweeps−1, from ``states``; returns the final (low-energy) states."""
        T0 = check_float(T0, "T0", minimum=0.0, open_min=True)
        alpha = check_float(alpha, "alpha", minimum=0.0, maximum=1.0, open_min=True)
        n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1, maximum=2**32 - 1)
        check_memory(16.0 * n_sweeps, f"anneal(n_sweeps={n_sweeps})")
        with np.errstate(under="ignore"):
            temps = T0 * alpha ** np.arange(n_sweeps, dtype=np.float64)
        if temps[-1] <= 0 or np.any(1.0 / temps[temps > 0] > 3e38):
            raise ValueError(f"T0 * alpha**t falls below the smallest usable temperature "
                             f"(T0={T0}, alpha={alpha}, n_sweeps={n_sweeps}): raise T0 or alpha")
        return self.sample(states, temps, seed=seed, order=order, device=device)

    @staticmethod
    def _temperatures(temperature, n_sweeps) -> np.ndarray:
        if callable(temperature):
            n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1, maximum=2**32 - 1)
            check_memory(16.0 * n_sweeps, f"n_sweeps={n_sweeps}")
            temps = np.empty(n_sweeps, np.float64)
            for t in range(n_sweeps):
                T = temperature(t)
                if isinstance(T, (bool, np.bool_)) or not isinstance(T, numbers.Real):
                    raise TypeError(f"temperature must return a real number for every sweep; "
                                    f"at sweep {t} it returned {type(T).__name__} {T!r}")
                temps[t] = float(T)
        elif isinstance(temperature, numbers.Real) and not isinstance(temperature, (bool, np.bool_)):
            if n_sweeps is None:
                raise ValueError("n_sweeps is needed with a scalar temperature")
            n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1, maximum=2**32 - 1)
            check_memory(16.0 * n_sweeps, f"n_sweeps={n_sweeps}")
            temps = np.full(n_sweeps, float(temperature))
        else:
            arr = np.asarray(temperature)
            if arr.dtype == object or arr.dtype.kind not in "iuf":
                raise TypeError(f"temperature must be a number, an array or a callable, got {type(temperature).__name__}")
            temps = arr.astype(np.float64)
            if temps.ndim != 1 or temps.size == 0:
                raise ValueError(f"temperature as an array must be 1-D and non-empty, got shape {temps.shape}")
            if n_sweeps is not None and check_int(n_sweeps, "n_sweeps", minimum=1) != temps.size:
                raise ValueError(f"temperature has {temps.size} entries but n_sweeps={n_sweeps}")
        if not np.all(np.isfinite(temps)) or np.any(temps <= 0):
            raise ValueError("temperature must be finite and > 0 (every entry of a schedule)")
        with np.errstate(over="ignore"):
            too_cold = np.any(1.0 / temps > 3e38)
        if too_cold:
            raise ValueError("temperature too small (1/T must fit in float32)")
        return temps
