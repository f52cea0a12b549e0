"""Ising models sampled by many parallel single-spin Metropolis / heat-bath chains.

``sample_ising(h, J, ...)`` is a drop-in for dimod users: the same energy sign
(E(s) = Σ h_i s_i + Σ_{i<j} J_ij s_i s_j, p ∝ exp(−βE)), the same inputs (dense, dict or
scipy.sparse J) and a result whose samples and energies match dimod's conventions.
``IsingLattice2D`` is the periodic square lattice of the physics lectures, with the
lecture sign E = −J Σ_<ij> s_i s_j − h Σ s_i, updated in checkerboard order.

Every random number comes from the shared Philox stream (DESIGN.md §3): the same seed
gives the same samples on any thread count, and ``ebmfast.reference`` holds the NumPy twin
of each kernel.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field

import numpy as np

from . import _core, _interrupt
from ._backend import F32_MAX, check_float, check_int, check_memory, check_seed, resolve_device
from .reference import STREAM_INIT

__all__ = ["sample_ising", "IsingResult", "IsingLattice2D", "LatticeResult", "default_beta_range",
           "beta_schedule"]

# Work (spin-neighbour operations) per kernel call (_interrupt.CHUNK_WORK, 5..50 ms): long
# runs go in chunks so Ctrl-C is honoured between them and the progress bar moves. Chunks
# change nothing in the results (the Philox step is absolute, the fields are handed on).
_CHUNK_WORK = _interrupt.CHUNK_WORK
# Lattice sweeps cost about this many of those operations per spin (measured: 2e7..5e7
# checkerboard spin updates per second on 2 cores against 2e9..1.5e10 coupling reads).
_LATTICE_WORK_PER_SPIN = 40.0
_MAX_SPINS = 2**31 - 1
# Largest |local field| (|h_i| + sum_j |J_ij|, or 4|J| + |h| on the lattice) whose float32
# accumulation and energy change 2 s_i field cannot overflow: an inf field would make the
# acceptance test compare against NaN (inf - inf) and silently freeze or flip spins.
_FIELD_MAX = F32_MAX / 4


# --------------------------------------------------------------------------- problem

@dataclass
class _Couplings:
    """h and the symmetric couplings, as the kernels want them."""
    n: int
    h: np.ndarray                      # (n,) float32
    dense: np.ndarray | None = None    # (n, n) float32 symmetric, zero diagonal
    indptr: np.ndarray | None = None   # CSR of both triangles (int64 / int32 / float32)
    indices: np.ndarray | None = None
    data: np.ndarray | None = None
    exact: tuple | None = None         # float64 (h, dense or CSR data) for exact energies
    exact_fields: bool = False         # float32 field sums provably exact (_exact_sums)

    @property
    def nnz(self) -> int:
        return int(self.n * (self.n - 1)) if self.dense is not None else int(self.data.size)

    def energies(self, S: np.ndarray) -> np.ndarray:
        """Exact float64 energies (dimod sign) of the rows of S."""
        h, J64 = self.exact
        if self.dense is None:
            return _core.ising_energies_csr(h, self.indptr, self.indices, J64, S)
        return _core.ising_energies_dense(h, J64, S)


def _as_float_array(x, name: str, ndim: int, *, fits_f32: bool = False) -> np.ndarray:
    """float64 copy of a finite real array of ``ndim`` dimensions; ``fits_f32``: also within
    float32 range (the kernels hold it in float32)."""
    if hasattr(x, "__cuda_array_interface__") or type(x).__module__.startswith("cupy"):
        raise TypeError(f"{name} is a GPU array; pass it on the host (the model data is small)")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) \
            or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    if fits_f32 and arr.size and float(np.abs(arr).max()) > F32_MAX:
        raise ValueError(f"{name} has values up to {float(np.abs(arr).max()):.3g}, beyond "
                         "float32 (the kernels run in float32)")
    return arr


def _exact_sums(arrays, bound: float) -> bool:
    """True when every value of ``arrays`` is an integer multiple of one power of two q with
    bound / q <= 2^24: then every float32 sum of them whose magnitude stays within ``bound``
    (a local field and each partial sum of its incremental updates) is exact, with no
    rounding to drift. Integer couplings (+-1 spin glasses) are the common case."""
    if bound == 0.0:
        return True
    k = 24 - math.frexp(bound)[1]  # bound < 2^e, so bound * 2^k < 2^24
    if not -126 <= k <= 126:  # beyond float32's exponents: not worth proving
        return False
    for a in arrays:
        a = a.ravel()
        for part in (a[:64], a):  # a mismatch is usually among the first values: cheap exit
            x = np.ldexp(part, k)
            if not np.array_equal(x, np.rint(x)):
                return False
    return True


def _check_field_range(c: "_Couplings") -> None:
    """ValueError when some local field |h_i| + sum_j |J_ij| could overflow float32; sets
    ``c.exact_fields``."""
    h_max = float(np.abs(c.exact[0]).max())
    if c.dense is not None:
        J = c.exact[1]
        j_max = max(float(J.max()), -float(J.min())) if J.size else 0.0
        worst = j_max * (c.n - 1) + h_max  # cheap upper bound, no temporaries
        if worst > _FIELD_MAX:
            worst = float(np.max(np.abs(c.exact[0]) + np.abs(J).sum(axis=1)))
    else:
        rows = np.repeat(np.arange(c.n), np.diff(c.indptr))
        worst = float(np.max(np.abs(c.exact[0])
                             + np.bincount(rows, weights=np.abs(c.exact[1]), minlength=c.n)))
    c.exact_fields = worst <= _FIELD_MAX and _exact_sums(c.exact, worst)
    if worst > _FIELD_MAX:
        raise ValueError(f"h and J are too large: a local field |h_i| + sum_j |J_ij| reaches "
                         f"{worst:.3g}, beyond {_FIELD_MAX:.3g} (float32 overflow); rescale "
                         "h and J (and beta_range) by a common factor")


def _csr_from_pairs(n: int, i: np.ndarray, j: np.ndarray, v: np.ndarray) -> tuple:
    """Symmetric CSR (both triangles, columns ascending) from pair couplings (i, j, v) of
    distinct spins, duplicates summed, zero sums dropped."""
    return _core.csr_from_pairs(n, np.asarray(i, np.int64), np.asarray(j, np.int64),
                                np.asarray(v, np.float64))


def _symmetric_from_square(M: np.ndarray, name: str) -> np.ndarray:
    """The symmetric coupling matrix of an upper-triangular or symmetric square J."""
    if np.any(np.diag(M) != 0):
        raise ValueError(f"{name} must have a zero diagonal (s_i**2 = 1 makes it a constant)")
    if not np.any(np.tril(M, -1)):
        return M + M.T
    if np.array_equal(M, M.T):
        return M
    raise ValueError(f"{name} must be upper-triangular (dimod style) or symmetric; "
                     "got a matrix that is neither (for lower-triangular input pass J.T)")


def _couplings(h, J) -> _Couplings:
    c = _couplings_unchecked(h, J)
    _check_field_range(c)
    return c


def _couplings_unchecked(h, J) -> _Couplings:
    h64 = _as_float_array(h, "h", 1, fits_f32=True)
    n = h64.size
    if n == 0:
        raise ValueError("h must have at least one spin")
    if n > 2**24:
        raise ValueError(f"at most 2**24 spins are supported, got {n}")
    out = _Couplings(n=n, h=h64.astype(np.float32))
    if J is None:
        J = {}
    if isinstance(J, dict):
        fast = _core.pairs_from_dict(J, n)  # None: let the checks below say what is wrong
        if fast is not None:
            ii, jj, vv = fast
        else:
            try:
                keys = np.array(list(J.keys()))
            except Exception:
                keys = None
            if keys is None or keys.ndim != 2 or keys.shape[1] != 2 or not np.issubdtype(keys.dtype, np.integer):
                raise TypeError("J as a dict must map integer pairs (i, j) to couplings")
            ii, jj = keys[:, 0].astype(np.int64), keys[:, 1].astype(np.int64)
            vv = _as_float_array(list(J.values()), "J values", 1, fits_f32=True)
            if ii.min() < 0 or jj.min() < 0 or ii.max() >= n or jj.max() >= n:
                raise ValueError(f"J keys must index spins 0..{n - 1} (h has {n} entries)")
            if np.any(ii == jj):
                raise ValueError("J must not couple a spin to itself (key (i, i))")
        out.indptr, out.indices, data = _csr_from_pairs(n, ii, jj, vv)
        out.data = data.astype(np.float32)
        out.exact = (h64, data)
        return out
    if hasattr(J, "tocoo") and hasattr(J, "shape"):  # scipy.sparse, without importing scipy
        if J.shape != (n, n):
            raise ValueError(f"J must have shape ({n}, {n}) to match h, got {J.shape}")
        # A copy (tocoo() of a COO matrix is the matrix itself), with duplicate entries
        # summed as scipy's own arithmetic does, before the symmetry test looks at pairs.
        coo = J.tocoo(copy=True)
        coo.sum_duplicates()
        v = _as_float_array(np.asarray(coo.data), "J", 1, fits_f32=True)
        r, c = np.asarray(coo.row, np.int64), np.asarray(coo.col, np.int64)
        nz = v != 0
        r, c, v = r[nz], c[nz], v[nz]
        if np.any(r == c):
            raise ValueError("J must have a zero diagonal (s_i**2 = 1 makes it a constant)")
        if np.any(r > c):  # some lower entries: must then be exactly symmetric
            up = dict(zip(zip(r.tolist(), c.tolist()), v.tolist()))
            if any(up.get((b, a)) != val for (a, b), val in up.items()):
                raise ValueError("J must be upper-triangular (dimod style) or symmetric; got a "
                                 "sparse matrix that is neither")
            keep = r < c
            r, c, v = r[keep], c[keep], v[keep]
        out.indptr, out.indices, data = _csr_from_pairs(n, r, c, v)
        out.data = data.astype(np.float32)
        out.exact = (h64, data)
        return out
    M = _as_float_array(J, "J", 2, fits_f32=True)
    if M.shape != (n, n):
        raise ValueError(f"J must have shape ({n}, {n}) to match h, got {M.shape}")
    Jsym = _symmetric_from_square(M, "J")
    density = np.count_nonzero(Jsym) / max(n * (n - 1), 1)
    if n >= 64 and density < 0.05:  # a sparse graph given densely: walk only its edges
        r, c = np.nonzero(np.triu(Jsym, 1))
        out.indptr, out.indices, data = _csr_from_pairs(n, r, c, Jsym[r, c])
        out.data = data.astype(np.float32)
        out.exact = (h64, data)
    else:
        out.dense = np.ascontiguousarray(Jsym, dtype=np.float32)
        out.exact = (h64, Jsym)
    return out


# --------------------------------------------------------------------------- schedules

def default_beta_range(h, J) -> tuple[float, float]:
    """(hot, cold) inverse temperatures in the manner of dwave-samplers: at the hot end the
    largest single-flip energy change is taken with probability 1/2, at the cold end the
    smallest one with probability 1/100."""
    c = _couplings(h, J)
    absJ_row = (np.abs(c.dense).sum(axis=1) if c.dense is not None
                else np.add.reduceat(np.abs(np.append(c.data, 0.0)), c.indptr[:-1])
                * (np.diff(c.indptr) > 0))
    max_de = 2.0 * float(np.max(np.abs(c.h) + absJ_row))
    vals = np.abs(np.concatenate([c.h, c.dense.ravel() if c.dense is not None else c.data]))
    vals = vals[vals > 0]
    if max_de == 0.0 or vals.size == 0:
        return 0.1, 1.0
    min_de = 2.0 * float(vals.min())
    return math.log(2.0) / max_de, math.log(100.0) / min_de


def beta_schedule(beta_range, num_sweeps: int, kind: str = "geometric") -> np.ndarray:
    """num_sweeps inverse temperatures from beta_range = (start, end), geometric or linear."""
    b0, b1 = beta_range
    if kind == "geometric":
        return np.geomspace(b0, b1, num_sweeps)
    if kind == "linear":
        return np.linspace(b0, b1, num_sweeps)
    raise ValueError(f"beta_schedule must be 'geometric', 'linear' or an array, got {kind!r}")


def _betas(h, J, num_sweeps, beta_range, schedule) -> np.ndarray:
    if not isinstance(schedule, str):
        betas = _as_float_array(schedule, "beta_schedule", 1, fits_f32=True)
        if num_sweeps is not None and betas.size != num_sweeps:
            raise ValueError(f"beta_schedule has {betas.size} entries but num_sweeps={num_sweeps}")
        if beta_range is not None:
            raise ValueError("give beta_range or an explicit beta_schedule array, not both")
    else:
        if schedule not in ("geometric", "linear"):
            raise ValueError(f"beta_schedule must be 'geometric', 'linear' or an array, got {schedule!r}")
        num_sweeps = 1000 if num_sweeps is None else check_int(num_sweeps, "num_sweeps", minimum=0)
        default = beta_range is None
        if default:
            beta_range = default_beta_range(h, J)
        elif isinstance(beta_range, numbers.Real) and not isinstance(beta_range, bool):
            beta_range = (beta_range, beta_range)  # a fixed temperature
        try:
            b0, b1 = beta_range
        except (TypeError, ValueError):
            raise ValueError(f"beta_range must be a number or a pair (start, end), got {beta_range!r}") from None
        b0 = check_float(b0, "beta_range[0]", minimum=0.0, open_min=True)
        b1 = check_float(b1, "beta_range[1]", minimum=0.0, open_min=True)
        if max(b0, b1) > F32_MAX:
            if default:
                raise ValueError(f"the default beta_range {(b0, b1)} derived from h and J exceeds "
                                 "float32 (the smallest nonzero |h|, |J| is tiny): give beta_range")
            raise ValueError(f"beta_range {(b0, b1)} exceeds float32 (max {F32_MAX:.3g})")
        betas = beta_schedule((b0, b1), num_sweeps, schedule)
    if np.any(betas <= 0):
        raise ValueError("every beta of beta_schedule must be > 0")
    return betas


# --------------------------------------------------------------------------- chains

def random_spins(seed: int, chains: int, n: int, chain_offset: int = 0) -> np.ndarray:
    """+-1 spins with probability 1/2 each from the INIT stream (step 0): unit i of chain c
    is +1 iff u < 1/2."""
    return _core.random_spins(seed, STREAM_INIT, 0, chains, n, chain_offset)


def _check_bool(value, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def _check_spins(S, name: str, shape: tuple) -> np.ndarray:
    if hasattr(S, "__cuda_array_interface__") or type(S).__module__.startswith("cupy"):
        raise TypeError(f"{name} is a GPU array; pass host (NumPy) spins - results are host arrays on every device")
    try:
        arr = np.asarray(S)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of +-1 spins: {exc}") from None
    if arr.dtype.kind not in "biuf":  # object, strings, complex ...
        raise TypeError(f"{name} must hold +-1 spins (a real or integer dtype), got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if arr.size and not np.all((arr == 1) | (arr == -1)):
        raise ValueError(f"{name} must hold only +1 and -1 spins")
    return np.ascontiguousarray(arr, dtype=np.int8)


@dataclass
class IsingResult:
    """What ``sample_ising`` returns. ``samples`` (num_reads, n) int8 +-1; ``energies``
    (num_reads,) float64, recomputed exactly from the samples (dimod's sign);
    ``acceptance`` (num_reads,) fraction of site visits that flipped the spin; ``info``:
    timings, updates/ns, the beta schedule, and ``energy_trace`` (num_sweeps, num_reads)
    when asked for."""
    samples: np.ndarray
    energies: np.ndarray
    acceptance: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def first(self) -> tuple[np.ndarray, float]:
        """(sample, energy) of the lowest-energy read."""
        k = int(np.argmin(self.energies))
        return self.samples[k], float(self.energies[k])

    def to_sampleset(self):
        """The result as a ``dimod.SampleSet`` (needs dimod)."""
        import dimod
        return dimod.SampleSet.from_samples(self.samples.astype(np.int8), "SPIN", self.energies,
                                            info=dict(self.info))


# The CUDA kernels of this module compile in CI but have not yet run on a GPU: until they
# have been verified there, device="auto" stays on the CPU and the GPU is opt-in.
_CUDA_VERIFIED = False


def _device(device: str) -> str:
    """'auto' takes the GPU only when the CUDA path is verified, a GPU is present and CuPy
    can drive it; 'cuda' asks for it explicitly."""
    if device == "auto":
        if not _CUDA_VERIFIED:
            return resolve_device("cpu")
        try:
            import cupy  # noqa: F401
        except ImportError:
            return "cpu"
    return resolve_device(device, cuda_implemented=True)


def _chunk_sweeps(work_per_sweep: float, num_sweeps: int) -> int:
    return int(max(1, min(num_sweeps, _CHUNK_WORK // max(work_per_sweep, 1.0))))


def sample_ising(h, J, *, num_reads: int = 100, num_sweeps: int | None = None, beta_range=None,
                 beta_schedule="geometric", proposal: str = "metropolis", seed=None,
                 device: str = "auto", initial_states=None, clamp=None, order: str = "sequential",
                 step_offset: int = 0, trace: bool = False, progress: bool = False) -> IsingResult:
    """Sample (or anneal) the Ising model E(s) = Σ h_i s_i + Σ_{i<j} J_ij s_i s_j with
    ``num_reads`` independent chains of single-spin updates.

    h: (n,) fields. J: dense (n, n) upper-triangular or symmetric (pair i<j couples with
    J[i, j] either way), a dimod-style dict {(i, j): J_ij} (both orders summed, as dimod
    does), or a scipy.sparse matrix with the same rule as dense.
    num_sweeps: sweeps of n site visits each (default 1000, or the length of an explicit
    ``beta_schedule``). beta_range: a number (fixed β), a pair (start, end) interpolated by
    ``beta_schedule`` ("geometric" | "linear"), or None for a dwave-samplers-like default;
    ``beta_schedule`` may also be an explicit array of per-sweep β.
    proposal: "metropolis" or "gibbs" (heat bath). order: "sequential" (sites 0..n-1) or
    "random" (n sites drawn with replacement per sweep).
    initial_states: (num_reads, n) ±1; default random from the seed. clamp: (n,) bool mask of
    spins that never move (they keep their initial value: give initial_states).
    step_offset: Philox step of the first sweep (continue a run without reusing numbers).
    trace: also record the energy after every sweep (info["energy_trace"]).
    """
    t_start = time.perf_counter()
    dev = _device(device)
    num_reads = check_int(num_reads, "num_reads", minimum=1, maximum=2**31 - 1)
    if num_sweeps is not None:
        num_sweeps = check_int(num_sweeps, "num_sweeps", minimum=0)
    if not isinstance(proposal, str) or proposal not in ("metropolis", "gibbs"):
        raise ValueError(f"proposal must be 'metropolis' or 'gibbs', got {proposal!r}")
    if not isinstance(order, str) or order not in ("sequential", "random"):
        raise ValueError(f"order must be 'sequential' or 'random', got {order!r}")
    _check_bool(trace, "trace")
    _check_bool(progress, "progress")
    seed = check_seed(seed)
    step_offset = check_int(step_offset, "step_offset", minimum=0, maximum=2**32 - 1)
    if num_sweeps is not None and step_offset + num_sweeps > 2**32 - 1:
        raise ValueError(f"step_offset + num_sweeps must stay below 2**32, got num_sweeps="
                         f"{num_sweeps}, step_offset={step_offset}")
    c = _couplings(h, J)
    n = c.n
    if num_reads * n > _MAX_SPINS:
        raise ValueError(f"num_reads * n = {num_reads * n} spins exceeds the limit of {_MAX_SPINS}")
    if num_sweeps is not None:  # the schedule (float64 + float32) and the optional trace
        check_memory(num_sweeps * (12.0 + (8.0 * num_reads if trace else 0.0)),
                    f"num_sweeps={num_sweeps}" + (f" with trace=True and num_reads={num_reads}"
                                                  if trace else ""))
    betas = _betas(h, J, num_sweeps, beta_range, beta_schedule)
    num_sweeps = betas.size
    if step_offset + num_sweeps > 2**32 - 1:
        raise ValueError("step_offset + num_sweeps must stay below 2**32")
    clamped = None
    if clamp is not None:
        mask = np.asarray(clamp)
        if mask.dtype != bool or mask.shape != (n,):
            raise ValueError(f"clamp must be a boolean mask of shape ({n},), got {mask.dtype} {mask.shape}")
        if initial_states is None:
            raise ValueError("clamp needs initial_states: clamped spins keep their initial values")
        clamped = np.ascontiguousarray(mask, dtype=np.uint8)
    if initial_states is None:
        S = random_spins(seed, num_reads, n)
    else:
        S = _check_spins(initial_states, "initial_states", (num_reads, n)).copy()

    if dev == "cuda":
        from . import _ising_cuda
        run = _ising_cuda.chain_runner(c, clamped, proposal == "gibbs", order == "random", seed)
    else:
        fields = None  # handed from chunk to chunk when there is more than one
        first = [True]

        def run(S, betas_chunk, step, want_trace):
            nonlocal fields
            if fields is None and betas_chunk.size < num_sweeps:
                fields = np.empty((num_reads, n), np.float32)
            out = _core.ising_chains(c.h, c.dense, c.indptr, c.indices, c.data, betas_chunk,
                                     proposal == "gibbs", order == "random", clamped, S, seed,
                                     step, 0, want_trace, fields, not first[0], c.exact_fields)
            first[0] = False
            return out

    betas32 = betas.astype(np.float32)
    # The first call from the work estimate, later ones from its time (_interrupt.
    # timed_chunks, ~0.1 s each): every call hands the fields and spins on and converts
    # their layout, which at 7-sweep calls on a sparse n = 10^4 graph was 18% of the run.
    chunk = _chunk_sweeps(num_reads * (c.nnz + 8 * n), num_sweeps)
    flips = np.zeros(num_reads, np.int64)
    traces = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=num_sweeps, unit="sweep", desc="sample_ising")
    t_kernel = time.perf_counter()
    try:
        for t0, size in _interrupt.timed_chunks(num_sweeps, chunk, grow=16):
            part = np.ascontiguousarray(betas32[t0:t0 + size])
            f, e = run(S, part, step_offset + t0, trace)
            flips += f
            if trace:
                traces.append(e)
            if bar is not None:
                elapsed = time.perf_counter() - t_kernel
                bar.set_postfix(updates_per_ns=f"{num_reads * n * (t0 + part.size) / max(elapsed, 1e-12) / 1e9:.3g}")
                bar.update(part.size)
    finally:
        if bar is not None:
            bar.close()
    kernel_s = time.perf_counter() - t_kernel
    t_energy = time.perf_counter()
    energies = c.energies(S)
    updates = num_reads * n * num_sweeps
    info = {
        "device": dev, "seed": seed, "proposal": proposal, "order": order,
        "num_sweeps": num_sweeps, "beta_schedule": betas, "step_offset": step_offset,
        "next_step": step_offset + num_sweeps, "storage": "dense" if c.dense is not None else "csr",
        "timing": {"sample_s": kernel_s, "energy_s": time.perf_counter() - t_energy,
                   "total_s": time.perf_counter() - t_start},
        "updates_per_ns": updates / max(kernel_s, 1e-12) / 1e9,
        "flips_per_ns": updates / max(kernel_s, 1e-12) / 1e9,  # attempted, as the literature counts
        "acceptance_rate": float(flips.sum() / max(updates, 1)),
    }
    if trace:
        info["energy_trace"] = (np.concatenate(traces, axis=0) if traces
                                else np.zeros((0, num_reads)))
    acceptance = flips / max(n * num_sweeps, 1)
    return IsingResult(samples=S, energies=energies, acceptance=acceptance, info=info)


# --------------------------------------------------------------------------- 2-D lattice

@dataclass
class LatticeResult:
    """What ``IsingLattice2D.sample`` returns: ``states`` (n_chains, L, L) int8 ±1; per
    sweep and chain, ``energy`` and ``magnetization`` per spin (n_sweeps, n_chains) float64;
    ``acceptance`` per chain; ``info`` (timings, flips/ns, the β schedule, next_step)."""
    states: np.ndarray
    energy: np.ndarray
    magnetization: np.ndarray
    acceptance: np.ndarray
    info: dict = field(default_factory=dict)


class IsingLattice2D:
    """The periodic L x L Ising model E(s) = −J Σ_<ij> s_i s_j − h Σ_i s_i (lecture sign;
    J > 0 is ferromagnetic), sampled by checkerboard Metropolis or heat-bath sweeps on many
    chains at once. L must be even (two colours on a periodic grid)."""

    def __init__(self, L: int, J: float = 1.0, h: float = 0.0):
        self.L = check_int(L, "L", minimum=2, maximum=2**15)
        if self.L % 2:
            raise ValueError(f"L must be even for checkerboard updates on a periodic lattice, got {L}")
        self.J = check_float(J, "J")
        self.h = check_float(h, "h")
        if 4.0 * abs(self.J) + abs(self.h) > _FIELD_MAX:
            raise ValueError(f"J={self.J:.3g} and h={self.h:.3g} are too large: the local field "
                             f"4|J| + |h| must stay below {_FIELD_MAX:.3g} (float32 kernels)")
        self.states_: np.ndarray | None = None
        self.next_step_ = 0

    def __repr__(self) -> str:
        return f"IsingLattice2D(L={self.L}, J={self.J}, h={self.h})"

    def energy(self, states) -> np.ndarray:
        """Energy per spin of each state (n_chains, L, L), float64."""
        try:
            shape = np.shape(states)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"states must be an array of +-1 spins: {exc}") from None
        want = (shape[0] if len(shape) == 3 else "n_chains", self.L, self.L)
        if len(shape) != 3 or shape[1:] != (self.L, self.L):
            raise ValueError(f"states must have shape {want}, got {shape}")
        S = _check_spins(states, "states", shape)
        from .reference import lattice_energy
        return lattice_energy(S, self.J, self.h) / (self.L * self.L)

    def sample(self, beta, n_sweeps: int, n_chains: int = 1, seed=None, *, initial_states=None,
               proposal: str = "metropolis", step_offset: int = 0, trace: bool = True,
               device: str = "auto", progress: bool = False) -> LatticeResult:
        """n_sweeps checkerboard sweeps of n_chains chains at inverse temperature ``beta``
        (a number, or an array of one β per sweep for annealing). Chains start from
        ``initial_states`` (n_chains, L, L) ±1, or "up" (all +1), or random spins from
        the seed (default). The final states are also kept in ``states_`` and the next
        free Philox step in ``next_step_``, so ``sample(..., initial_states=m.states_,
        step_offset=m.next_step_)`` continues a run."""
        t_start = time.perf_counter()
        dev = _device(device)
        n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=0)
        n_chains = check_int(n_chains, "n_chains", minimum=1)
        L = self.L
        if n_chains * L * L > _MAX_SPINS:
            raise ValueError(f"n_chains * L * L = {n_chains * L * L} spins exceeds {_MAX_SPINS}")
        if not isinstance(proposal, str) or proposal not in ("metropolis", "gibbs"):
            raise ValueError(f"proposal must be 'metropolis' or 'gibbs', got {proposal!r}")
        _check_bool(trace, "trace")
        _check_bool(progress, "progress")
        seed = check_seed(seed)
        step_offset = check_int(step_offset, "step_offset", minimum=0)
        if step_offset + 2 * n_sweeps > 2**32 - 1:
            raise ValueError("step_offset + 2 * n_sweeps must stay below 2**32")
        # the schedule (float64 + float32) and, with trace, energy and magnetization
        check_memory(n_sweeps * (12.0 + (16.0 * n_chains if trace else 0.0)),
                    f"n_sweeps={n_sweeps}" + (f" with trace=True and n_chains={n_chains}"
                                              if trace else ""))
        if isinstance(beta, (bool, np.bool_)):
            raise TypeError(f"beta must be a positive number or an array of n_sweeps numbers, "
                            f"got {beta!r}")
        if isinstance(beta, numbers.Real):
            betas = np.full(n_sweeps, check_float(beta, "beta", minimum=0.0, open_min=True,
                                                  maximum=F32_MAX))
        else:
            betas = _as_float_array(beta, "beta", 1, fits_f32=True)
            if betas.size != n_sweeps:
                raise ValueError(f"beta has {betas.size} entries but n_sweeps={n_sweeps}")
            if np.any(betas <= 0):
                raise ValueError("every beta must be > 0")
        if initial_states is None:
            S = random_spins(seed, n_chains, L * L).reshape(n_chains, L, L)
        elif isinstance(initial_states, str):
            if initial_states != "up":
                raise ValueError(f"initial_states must be an array, 'up' or None, got {initial_states!r}")
            S = np.ones((n_chains, L, L), np.int8)
        else:
            S = _check_spins(initial_states, "initial_states", (n_chains, L, L)).copy()

        if dev == "cuda":
            from . import _ising_cuda
            run = _ising_cuda.lattice_runner(self, proposal == "gibbs", seed)
            S = _ising_cuda.to_device(S)
        else:
            def run(S, b, step, want):
                return _core.lattice_sweeps(S, self.J, self.h, b, proposal == "gibbs", seed, step, 0, want)
        betas32 = betas.astype(np.float32)
        chunk = _chunk_sweeps(_LATTICE_WORK_PER_SPIN * n_chains * L * L, n_sweeps)
        flips = np.zeros(n_chains, np.int64)
        energies, mags = [], []
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_sweeps, unit="sweep", desc=f"Ising {L}x{L}")
        t_kernel = time.perf_counter()
        try:
            for t0 in range(0, n_sweeps, chunk):
                part = np.ascontiguousarray(betas32[t0:t0 + chunk])
                f, e, m = run(S, part, step_offset + 2 * t0, trace)
                flips += np.asarray(f)
                if trace:
                    energies.append(np.asarray(e))
                    mags.append(np.asarray(m))
                if bar is not None:
                    elapsed = time.perf_counter() - t_kernel
                    bar.set_postfix(flips_per_ns=f"{n_chains * L * L * (t0 + part.size) / max(elapsed, 1e-12) / 1e9:.3g}")
                    bar.update(part.size)
        finally:
            if bar is not None:
                bar.close()
        kernel_s = time.perf_counter() - t_kernel
        if dev == "cuda":
            S = _ising_cuda.to_host(S)
        updates = n_chains * L * L * n_sweeps
        empty = np.zeros((0, n_chains))
        self.states_ = S
        self.next_step_ = step_offset + 2 * n_sweeps
        info = {"device": dev, "seed": seed, "proposal": proposal, "beta_schedule": betas,
                "step_offset": step_offset, "next_step": self.next_step_,
                "timing": {"sample_s": kernel_s, "total_s": time.perf_counter() - t_start},
                "flips_per_ns": updates / max(kernel_s, 1e-12) / 1e9,
                "acceptance_rate": float(flips.sum() / max(updates, 1))}
        return LatticeResult(states=S,
                             energy=np.concatenate(energies) if energies else empty,
                             magnetization=np.concatenate(mags) if mags else empty,
                             acceptance=flips / max(L * L * n_sweeps, 1), info=info)
