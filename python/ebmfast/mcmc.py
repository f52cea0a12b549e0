"""Continuous-state MCMC: many parallel chains of random-walk Metropolis-Hastings
(``metropolis``), MALA (``mala``) and unadjusted Langevin (``langevin``) on an energy
E(x), p(x) ∝ exp(-E(x)), x in R^d.

Three kinds of energy:

* a built-in from :mod:`ebmfast.energies` (Gaussian, mixture, double well, Rosenbrock,
  RBM free energy): the compiled chain kernels (C++/OpenMP, float32; CUDA on CuPy x0);
* a vectorized Python callable ``E(X (n_chains, d)) -> (n_chains,)`` (``grad=`` callable
  -> (n_chains, d) for MALA/Langevin): the chain loop runs in NumPy on the CPU, in the
  dtype of x0, checking every output;
* ``energies.CudaSource``: CUDA C device functions compiled at run time into the same
  chain kernel (GPU only).

Every path draws the same Philox numbers (DESIGN.md §3; the algorithm is specified in
``ebmfast.reference.mcmc_chains``), so a built-in energy and the same energy written as a
callable give the same chains up to float rounding. ``step_size`` is the standard
deviation of the proposal noise (Langevin time step h = step_size**2 / 2).

Example::

    import numpy as np, ebmfast as ef
    E = ef.energies.Gaussian([0.0, 1.0], cov=[[1.0, 0.8], [0.8, 2.0]])
    x0 = np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32)
    res = ef.mala(E, x0, n_steps=2000, step_size=0.5, seed=1, burn_in=500)
    res.samples.shape                                  # (2000, 1000, 2)
    ef.diagnostics.split_rhat(res.samples)             # ~1.00 per coordinate
    ef.diagnostics.effective_sample_size(res.samples)  # per coordinate
    more = ef.mala(E, res.x, 2000, res.step_size, seed=1,
                   step_offset=res.info["next_step"])  # continue the same chains
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import _backend, _core, energies as _en
from . import reference as R

__all__ = ["MCMCResult", "metropolis", "mala", "langevin"]

_SAMPLER_ID = {"rwmh": 0, "mala": 1, "ula": 2}
#: Element-steps (chains x (d + 4) x steps, times the energy's own size) per kernel call:
#: about 50 ms on one core, so Ctrl-C and the progress bar answer quickly.
_CHUNK_WORK = 1 << 24
_MAX_STEP = 2**32


@dataclass
class MCMCResult:
    """Result of a chain run.

    samples : (n_kept, n_chains, d) states after every ``thin``-th sampling step
    x : (n_chains, d) final states
    energies : (n_kept, n_chains) float64 energies of ``samples``
    acceptance : (n_chains,) accepted fraction of the sampling steps (1 for Langevin;
        NaN when n_steps == 0)
    step_size : (n_chains,) step sizes after adaptation
    info : dict: sampler, device, timings, proposals/s, next_step (pass it as
        ``step_offset`` to continue the chains with fresh random numbers), seed.
    """

    samples: object
    x: object
    energies: object
    acceptance: np.ndarray
    step_size: object
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        acc = self.acceptance
        mean_acc = float(np.nanmean(acc)) if acc.size and not np.isnan(acc).all() else float("nan")
        return (f"MCMCResult({self.info.get('sampler')}, device={self.info.get('device')}, "
                f"samples {tuple(self.samples.shape)}, mean acceptance {mean_acc:.3f}, "
                f"next_step {self.info.get('next_step')})")


# --------------------------------------------------------------------------- checks


def _is_gpu_array(a) -> bool:
    return hasattr(a, "__cuda_array_interface__") or type(a).__module__.startswith("cupy")


def _check_x0(x0, on_gpu: bool):
    if on_gpu:
        import cupy as cp
        xp = cp
        arr = x0
    else:
        xp = np
        if isinstance(x0, np.ndarray):
            arr = x0
        else:
            try:
                arr = np.asarray(x0)
            except Exception as exc:
                raise TypeError(f"x0 must be a 2-D float array: {exc}") from None
    if arr.dtype not in (xp.float32, xp.float64):
        raise TypeError(f"x0 must be float32 or float64, got {arr.dtype}")
    if arr.ndim != 2:
        hint = " (use x0.reshape(1, -1) for one chain)" if arr.ndim == 1 else ""
        raise ValueError(f"x0 must be 2-D (n_chains, d), got shape {arr.shape}{hint}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"x0 must have at least one chain and one dimension, got {arr.shape}")
    if not bool(xp.isfinite(arr).all()):
        raise ValueError("x0 contains NaN or infinite values")
    return arr


def _check_step_size(step_size, n: int) -> np.ndarray:
    if _is_gpu_array(step_size):
        step_size = step_size.get()
    try:
        s = np.asarray(step_size)
    except Exception:  # ragged lists and the like
        s = np.asarray(None)
    if s.dtype.kind not in "iuf":  # bool, complex, strings, objects
        raise TypeError(f"step_size must be a positive number or an array of shape ({n},), "
                        f"got {type(step_size).__name__} {step_size!r:.60}")
    s = s.astype(np.float64)
    if s.ndim == 0:
        s = np.full(n, float(s))
    if s.shape != (n,):
        raise ValueError(f"step_size must be a scalar or shape ({n},), got shape {s.shape}")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("step_size must be finite and > 0")
    if float(s.max()) > _backend.F32_MAX or float(s.min()) < float(np.finfo(np.float32).tiny):
        raise ValueError(f"step_size must lie in float32's normal range [{np.finfo(np.float32).tiny:.3g}, "
                         f"{_backend.F32_MAX:.3g}] (the chains keep it in float32), got "
                         f"[{s.min():.3g}, {s.max():.3g}]")
    return s.astype(np.float32)


def _checked_callable(energy, grad, d: int, need_grad: bool):
    """energy_grad(X) for the NumPy chain loop, checking every output of the callables."""

    def check(name, out, shape, dtype):
        try:
            a = np.asarray(out)
        except Exception as exc:
            raise ValueError(f"{name} returned something that is not an array: {exc}") from None
        if a.dtype.kind not in "fiu":
            raise ValueError(f"{name} must return real numbers, got dtype {a.dtype}")
        if a.shape != shape:
            raise ValueError(f"{name} must return shape {shape}, got {a.shape}")
        with np.errstate(over="ignore"):  # beyond x0's dtype becomes inf, reported below
            return a.astype(dtype, copy=False)

    def energy_grad(X):
        n = X.shape[0]
        e = check("energy", energy(X), (n,), np.float64)
        # +inf = outside the support (always rejected); NaN or -inf is a bug in the energy
        if np.isnan(e).any() or np.isneginf(e).any():
            raise ValueError("energy returned NaN or -inf (use +inf outside the support)")
        g = None
        if need_grad:
            g = check("grad", grad(X), (n, d), X.dtype)
            if not np.isfinite(g).all():
                raise ValueError(f"grad returned NaN or infinite values (or values beyond "
                                 f"x0's dtype {X.dtype})")
        return e, g

    return energy_grad


# --------------------------------------------------------------------------- driver


def _chunk_steps(n: int, d: int, cost: int, thin: int) -> int:
    """Steps per chunk: about _CHUNK_WORK element-steps, a multiple of thin when that is
    not longer (a large thin must not make a chunk long: see _segments)."""
    c = max(1, _CHUNK_WORK // max(1, n * (d + 4) * cost))
    return c if c < thin else c // thin * thin


def _segments(done: int, m: int, thin: int) -> list[tuple[int, int | None, int]]:
    """Sampling steps [done, done + m) as kernel calls that record the state after every
    thin-th step counted from the first sampling step: (steps, the call's thin or None when
    it records nothing, index of its first kept sample)."""
    out = []
    pre = (-done) % thin  # steps to the end of a thinning block begun by an earlier chunk
    if pre > m:
        return [(m, None, 0)]
    if pre:
        out.append((pre, pre, (done + pre) // thin - 1))
    full = (m - pre) // thin * thin
    if full:
        out.append((full, thin, (done + pre) // thin))
    if m - pre - full:
        out.append((m - pre - full, None, 0))
    return out


def _run(sampler: str, energy, x0, n_steps, step_size, *, seed, device, grad, burn_in,
         adapt, thin, step_offset, progress, chain_offset: int = 0) -> MCMCResult:
    n_steps = _backend.check_int(n_steps, "n_steps", minimum=0)
    burn_in = _backend.check_int(burn_in, "burn_in", minimum=0)
    thin = _backend.check_int(thin, "thin", minimum=1)
    step_offset = _backend.check_int(step_offset, "step_offset", minimum=0)
    if step_offset + burn_in + n_steps > _MAX_STEP:
        raise ValueError("step_offset + burn_in + n_steps must be <= 2**32 (the Philox step "
                         "counter is 32-bit)")
    if not isinstance(adapt, (bool, np.bool_)):
        raise TypeError(f"adapt must be a bool, got {adapt!r}")
    seed = _backend.check_seed(seed)
    if not isinstance(device, str) or device not in _backend.DEVICES:
        raise ValueError(f"device must be one of {_backend.DEVICES}, got {device!r}")
    gpu_x0 = _is_gpu_array(x0)
    if device == "auto":
        dev = "cuda" if gpu_x0 else "cpu"
    else:
        dev = _backend.resolve_device(device, cuda_implemented=True)
        if dev == "cuda" and not gpu_x0:
            raise TypeError("device='cuda' needs x0 as a CuPy (GPU) array; ebmfast never "
                            "copies between devices silently (use cupy.asarray(x0))")
        if dev == "cpu" and gpu_x0:
            raise TypeError("x0 is a GPU array but device='cpu'; move it to the host "
                            "(cupy.asnumpy) or use device='cuda'")
    x0 = _check_x0(x0, dev == "cuda")
    n, d = x0.shape
    eps = _check_step_size(step_size, n)
    need_grad = sampler != "rwmh"
    if isinstance(energy, _en.Energy):
        energy.check_dim(d)
        if grad is not None:
            raise ValueError("grad= is only for callable energies (built-ins have their own)")
        mode = "builtin"
    elif isinstance(energy, _en.CudaSource):
        if dev != "cuda":
            raise ValueError("energy is a CudaSource (CUDA C) but the chains run on the CPU: "
                             "give x0 as a CuPy array, or a Python callable for the CPU")
        if energy.dim is not None and energy.dim != d:
            raise ValueError(f"x0 has {d} columns but the CudaSource energy has dim {energy.dim}")
        mode = "cudasource"
    elif callable(energy):
        if dev == "cuda":
            raise ValueError("a Python callable energy runs on the CPU only; on the GPU use "
                             "ebmfast.energies.CudaSource or a built-in energy")
        if need_grad and not callable(grad):
            raise ValueError(f"grad must be a callable grad(X) -> (n_chains, d) for {sampler} "
                             "with a callable energy")
        mode = "callable"
    else:
        raise TypeError("energy must be an ebmfast.energies built-in, a CudaSource or a "
                        f"callable E(X) -> (n_chains,), got {type(energy).__name__}")

    if mode != "callable" and x0.dtype != np.float32 and x0.size:
        big = float(abs(x0).max())
        if big > float(np.finfo(np.float32).max):
            raise ValueError(f"x0 has values up to {big:.3g}, beyond float32: the compiled "
                             "chains run in float32")
    n_kept = n_steps // thin
    item = 4 if mode != "callable" else x0.dtype.itemsize
    _backend.check_memory(float(n_kept) * n * (d * item + 8),
                         f"keeping n_steps // thin = {n_kept} samples of {n} chains x {d}")
    target = R.MCMC_TARGET_ACCEPT[sampler]
    do_adapt = bool(adapt) and target is not None and burn_in > 0
    t_start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=burn_in + n_steps, unit="step", desc=sampler)
    try:
        if mode == "builtin" and dev == "cpu":
            out = _run_builtin_cpu(sampler, energy, x0, eps, n_steps, seed, burn_in, do_adapt,
                                   target, thin, step_offset, chain_offset, bar)
        elif mode == "callable":
            out = _run_callable(sampler, _checked_callable(energy, grad, d, need_grad), x0, eps,
                                n_steps, seed, burn_in, do_adapt, thin, step_offset,
                                chain_offset, bar)
        else:
            from . import _mcmc_cuda
            out = _mcmc_cuda.run(sampler, energy, mode, x0, eps, n_steps, seed, burn_in,
                                 do_adapt, target, thin, step_offset, chain_offset, bar)
    finally:
        if bar is not None:
            bar.close()
    samples, x, energies_, n_accept, eps_out, t_burn, t_sample = out
    wall = time.perf_counter() - t_start
    with np.errstate(invalid="ignore", divide="ignore"):
        acceptance = (np.asarray(n_accept, np.float64) / n_steps if n_steps
                      else np.full(n, np.nan))
    total = burn_in + n_steps
    info = {
        "sampler": sampler, "device": dev, "mode": mode, "seed": seed,
        "n_chains": n, "d": d, "burn_in": burn_in, "n_steps": n_steps, "thin": thin,
        "step_offset": step_offset, "next_step": step_offset + total, "adapted": do_adapt,
        "time_s": wall, "burn_in_s": t_burn, "sampling_s": t_sample,
        "proposals_per_s": (n * total / (t_burn + t_sample)) if total and (t_burn + t_sample) > 0
        else None,
    }
    return MCMCResult(samples, x, energies_, acceptance, eps_out, info)


def _run_builtin_cpu(sampler, energy, x0, eps, n_steps, seed, burn_in, do_adapt, target, thin,
                     step_offset, chain_offset, bar):
    n, d = x0.shape
    params = energy.params(d)
    cost = {"GaussianFull": d, "GaussianMixture": len(getattr(energy, "weights", [1])),
            "RBMFreeEnergy": energy.W.shape[1] if hasattr(energy, "W") else 1}.get(
                type(energy).__name__, 1)
    x = np.array(x0, dtype=np.float32, order="C", copy=True)
    n_accept = np.zeros(n, np.int64)
    sid = _SAMPLER_ID[sampler]
    tgt = float(target) if target is not None else 0.0
    chunk = _chunk_steps(n, d, cost, thin)
    step = step_offset
    t0 = time.perf_counter()
    done = 0
    while done < burn_in:  # burn-in: no record, adapt
        m = min(chunk, burn_in - done)
        _core.mcmc_run_chunk(energy.kind, params, sid, x, eps, None, m, seed, step, chain_offset,
                             do_adapt, done, tgt, None, None, 1)
        done += m
        step += m
        if bar is not None:
            bar.update(m)
    t_burn = time.perf_counter() - t0
    n_kept = n_steps // thin
    samples = np.empty((n_kept, n, d), np.float32)
    energies = np.empty((n_kept, n), np.float64)
    done = 0
    t0 = time.perf_counter()
    while done < n_steps:
        m = min(chunk, n_steps - done)
        for steps, t, k0 in _segments(done, m, thin):
            if t is None:  # steps after the last kept sample of the chunk
                _core.mcmc_run_chunk(energy.kind, params, sid, x, eps, n_accept, steps, seed,
                                     step, chain_offset, False, 0, tgt, None, None, 1)
            else:
                rec = steps // t
                _core.mcmc_run_chunk(energy.kind, params, sid, x, eps, n_accept, steps, seed,
                                     step, chain_offset, False, 0, tgt, samples[k0:k0 + rec],
                                     energies[k0:k0 + rec], t)
            step += steps
        done += m
        if bar is not None:
            bar.update(m)
            el = time.perf_counter() - t0
            if el > 0:
                bar.set_postfix_str(f"{n * done / el:.3g} proposals/s")
    t_sample = time.perf_counter() - t0
    return samples, x, energies, n_accept, eps, t_burn, t_sample


def _compiled_stream(seed, chain_offset):
    """Philox draws from the compiled core: the same values as reference.mcmc_noise /
    mcmc_accept_uniform, much faster than the NumPy Philox."""

    def noise(step, n, d):
        u = _core.philox_uniforms(seed, R.STREAM_PROPOSAL, step, n, 2 * d,
                                  chain_offset).astype(np.float64)
        return np.sqrt(-2.0 * np.log(1.0 - u[:, 0::2])) * np.cos(2.0 * np.pi * u[:, 1::2])

    def accept(step, n):
        return _core.philox_uniforms(seed, R.STREAM_ACCEPT, step, n, 1,
                                     chain_offset)[:, 0].astype(np.float64)

    return noise, accept


def _run_callable(sampler, energy_grad, x0, eps, n_steps, seed, burn_in, do_adapt, thin,
                  step_offset, chain_offset, bar):
    n, d = x0.shape
    noise, accept = _compiled_stream(seed, chain_offset)
    x = np.array(x0, copy=True)
    chunk = _chunk_steps(n, d, 64, thin)  # a Python energy costs far more than a built-in
    step = step_offset
    kw = dict(adapt=do_adapt, dtype=x0.dtype, noise=noise, accept_uniform=accept,
              chain_offset=chain_offset)
    t0 = time.perf_counter()
    done = 0
    while done < burn_in:
        m = min(chunk, burn_in - done)
        r = R.mcmc_chains(sampler, energy_grad, x, eps, 0, seed, burn_in=m, step_offset=step,
                          adapt_offset=done, **kw)
        x, eps = r.x, r.step_size
        done += m
        step += m
        if bar is not None:
            bar.update(m)
    t_burn = time.perf_counter() - t0
    parts, eparts = [], []
    n_accept = np.zeros(n, np.int64)
    done = 0
    t0 = time.perf_counter()
    while done < n_steps:
        m = min(chunk, n_steps - done)
        for steps, t, _ in _segments(done, m, thin):
            # thin > steps: a call that keeps nothing
            r = R.mcmc_chains(sampler, energy_grad, x, eps, steps, seed,
                              thin=steps + 1 if t is None else t, step_offset=step, **kw)
            parts.append(r.samples)
            eparts.append(r.energies)
            n_accept += r.n_accept
            x = r.x
            step += steps
        done += m
        if bar is not None:
            bar.update(m)
    t_sample = time.perf_counter() - t0
    samples = np.concatenate(parts) if parts else np.empty((0, n, d), x0.dtype)
    energies = np.concatenate(eparts) if eparts else np.empty((0, n), np.float64)
    return samples, x, energies, n_accept, eps, t_burn, t_sample


_DOC = """{title}

    Parameters
    ----------
    energy : ebmfast.energies built-in, energies.CudaSource (GPU), or a callable
        E(X (n_chains, d)) -> (n_chains,) (CPU){grad_note}
    x0 : (n_chains, d) float32/float64 NumPy array (CPU) or CuPy array (GPU): initial states
    n_steps : sampling steps after burn-in (>= 0)
    step_size : proposal noise standard deviation, scalar or (n_chains,), > 0{ss_note}
    seed : 64-bit integer or None (fresh entropy; the value used is in ``info['seed']``)
    device : "auto" (where x0 lives), "cpu" or "cuda"
    grad : callable grad(X) -> (n_chains, d), for callable energies{grad_req}
    burn_in : steps run first and not recorded{adapt_note}
    adapt : adapt each chain's step size during burn-in (Robbins-Monro on log step size
        toward acceptance {target}); fixed afterwards{adapt_ula}
    thin : keep every thin-th sampling step (n_kept = n_steps // thin)
    step_offset : Philox step counter of the first step; continue a run with
        ``step_offset=result.info['next_step']`` so no random number is reused
    progress : show a tqdm bar (steps, proposals/s)

    Returns
    -------
    MCMCResult with ``samples`` (n_kept, n_chains, d), ``x``, ``energies`` (n_kept,
    n_chains) float64, ``acceptance``, ``step_size`` and ``info``.
    Built-in energies run in float32 (samples float32); callables in x0's dtype.
    """


def metropolis(energy, x0, n_steps: int, step_size, *, seed: int | None = None,
               device: str = "auto", grad=None, burn_in: int = 0, adapt: bool = True,
               thin: int = 1, step_offset: int = 0, progress: bool = False) -> MCMCResult:
    return _run("rwmh", energy, x0, n_steps, step_size, seed=seed, device=device, grad=grad,
                burn_in=burn_in, adapt=adapt, thin=thin, step_offset=step_offset,
                progress=progress)


def mala(energy, x0, n_steps: int, step_size, *, seed: int | None = None,
         device: str = "auto", grad=None, burn_in: int = 0, adapt: bool = True,
         thin: int = 1, step_offset: int = 0, progress: bool = False) -> MCMCResult:
    return _run("mala", energy, x0, n_steps, step_size, seed=seed, device=device, grad=grad,
                burn_in=burn_in, adapt=adapt, thin=thin, step_offset=step_offset,
                progress=progress)


def langevin(energy, x0, n_steps: int, step_size, *, seed: int | None = None,
             device: str = "auto", grad=None, burn_in: int = 0, adapt: bool = True,
             thin: int = 1, step_offset: int = 0, progress: bool = False) -> MCMCResult:
    return _run("ula", energy, x0, n_steps, step_size, seed=seed, device=device, grad=grad,
                burn_in=burn_in, adapt=adapt, thin=thin, step_offset=step_offset,
                progress=progress)


metropolis.__doc__ = _DOC.format(
    title="Random-walk Metropolis-Hastings chains: y = x + step_size * z, z ~ N(0, I), "
          "accepted with probability min(1, exp(E(x) - E(y))).",
    grad_note="", ss_note="", grad_req=" (unused here)", adapt_note="", target="0.234",
    adapt_ula="")
mala.__doc__ = _DOC.format(
    title="Metropolis-adjusted Langevin chains: y = x - (step_size**2 / 2) grad E(x) + "
          "step_size * z, with the Metropolis-Hastings correction.",
    grad_note="; needs grad=", ss_note="", grad_req=" (required)", adapt_note="",
    target="0.574", adapt_ula="")
langevin.__doc__ = _DOC.format(
    title="Unadjusted Langevin chains: x' = x - (step_size**2 / 2) grad E(x) + step_size * z "
          "(Euler-Maruyama with time step h = step_size**2 / 2; biased by O(h)).",
    grad_note="; needs grad=", ss_note=" (no acceptance step)", grad_req=" (required)",
    adapt_note="", target="(none)", adapt_ula=" (ignored: Langevin has no acceptance step)")
