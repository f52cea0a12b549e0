"""Benchmark of the continuous chains (RWMH, MALA) on the CPU (DESIGN.md §7).

For each (energy, d, sampler) the harness times, in one run and from the same states:

* ``ebmfast``  the public API: ``ef.metropolis`` / ``ef.mala`` for ``STEPS`` steps on
               N_CHAINS chains, keeping only the final state (``thin=STEPS``, no adaptation);
* ``numpy``    the same chains in plain float32 NumPy written the obvious way
               (``np.random.default_rng``, vectorized over chains; :func:`numpy_runner`).

A rate is proposals per second (chains x steps / time), median of repeated calls after
warm-up (``bench.time_cell``, the implementations interleaved); the ratio numpy/ebmfast
is formed within the run. A table goes to stdout and the JSON to
``<out>/mcmc_cpu_<YYYYmmdd-HHMMSS>_t<threads>.json``.

``--device cuda`` times the GPU chains (CuPy x0) against the same baseline written in
CuPy (``mcmc_cuda_*.json``); it has not been run yet (no GPU in this project's sessions
so far).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
from typing import Callable

import numpy as np

import ebmfast as ef
from ebmfast import energies as En
from ebmfast.bench import _cpu_snapshot, _environment, _other_cpu, _ratio, time_cell

__all__ = ["CASES", "N_CHAINS", "STEPS", "make_energy", "numpy_runner", "ebmfast_runner",
           "run", "main"]

N_CHAINS = 10_000
STEPS = 10
#: (energy, d, sampler)
CASES: tuple[tuple[str, int, str], ...] = tuple(
    (e, d, s) for e in ("gaussian", "mixture") for d in (2, 100) for s in ("rwmh", "mala"))
STEP_SIZE = {"rwmh": 0.3, "mala": 0.3}


def make_energy(name: str, d: int, seed: int = 0) -> En.Energy:
    rng = np.random.default_rng(seed)
    if name == "gaussian":  # diagonal, precisions in [0.5, 2]
        return En.Gaussian(rng.normal(size=d), precision=rng.uniform(0.5, 2.0, d))
    if name == "mixture":   # 3 components, diagonal sigmas
        return En.GaussianMixture([0.2, 0.3, 0.5], rng.normal(size=(3, d)),
                                  rng.uniform(0.7, 1.3, (3, d)))
    if name == "rosenbrock":
        return En.Rosenbrock()
    raise ValueError(f"unknown energy {name!r}")


# --------------------------------------------------------------------------- NumPy baseline


def _numpy_energy(E: En.Energy, xp=np) -> Callable:
    """(E (n,), grad (n, d)) in float32, the obvious vectorized formulas (xp = NumPy or CuPy)."""
    if isinstance(E, En.Gaussian) and E.precision.ndim == 1:
        mu = xp.asarray(E.mean, dtype=xp.float32)
        p = xp.asarray(E.precision, dtype=xp.float32)

        def f(x, want_grad):
            r = x - mu
            g = r * p
            return 0.5 * xp.sum(g * r, axis=1), (g if want_grad else None)
        return f
    if isinstance(E, En.GaussianMixture):
        mu = xp.asarray(E.means, dtype=xp.float32)                     # (K, d)
        iv = xp.asarray(1.0 / E.sigmas**2, dtype=xp.float32)           # (K, d)
        d = E.means.shape[1]
        const = xp.asarray(np.log(E.weights) - np.log(E.sigmas).sum(1)
                           - 0.5 * d * np.log(2 * np.pi), dtype=xp.float32)

        def f(x, want_grad):
            diff = x[:, None, :] - mu[None]                    # (n, K, d)
            wd = diff * iv[None]
            logc = const - 0.5 * xp.sum(diff * wd, axis=2)     # (n, K)
            m = logc.max(axis=1, keepdims=True)
            w = xp.exp(logc - m)
            s = w.sum(axis=1, keepdims=True)
            e = -(m[:, 0] + xp.log(s[:, 0]))
            if not want_grad:
                return e, None
            return e, xp.einsum("nk,nkd->nd", w / s, wd)
        return f
    raise ValueError(f"no NumPy baseline for {type(E).__name__}")


def numpy_runner(E: En.Energy, x0, sampler: str, step: float, n_steps: int,
                 seed: int = 0, xp=np) -> Callable[[], object]:
    """The baseline chains: NumPy (or, with xp=cupy, CuPy) float32 written the obvious way."""
    f = _numpy_energy(E, xp)
    rng = xp.random.default_rng(seed)
    h = np.float32(step)
    half_h2 = np.float32(0.5 * step * step)

    def rwmh():
        x = x0.copy()
        ex, _ = f(x, False)
        for _ in range(n_steps):
            y = x + h * rng.standard_normal(x.shape, dtype=xp.float32)
            ey, _ = f(y, False)
            acc = rng.random(x.shape[0], dtype=xp.float32) < xp.exp(ex - ey)
            x = xp.where(acc[:, None], y, x)
            ex = xp.where(acc, ey, ex)
        return x

    def mala():
        x = x0.copy()
        ex, gx = f(x, True)
        for _ in range(n_steps):
            z = rng.standard_normal(x.shape, dtype=xp.float32)
            y = x - half_h2 * gx + h * z
            ey, gy = f(y, True)
            back = x - y + half_h2 * gy
            log_a = ex - ey + 0.5 * xp.sum(z * z, axis=1) - xp.sum(back * back, axis=1) / (2 * h * h)
            acc = rng.random(x.shape[0], dtype=xp.float32) < xp.exp(log_a)
            x = xp.where(acc[:, None], y, x)
            ex = xp.where(acc, ey, ex)
            gx = xp.where(acc[:, None], gy, gx)
        return x

    return rwmh if sampler == "rwmh" else mala


def ebmfast_runner(E: En.Energy, x0, sampler: str, step: float, n_steps: int,
                   seed: int = 0) -> Callable[[], object]:
    fn = ef.metropolis if sampler == "rwmh" else ef.mala

    def call():
        return fn(E, x0, n_steps, step, seed=seed, thin=n_steps, adapt=False).x
    return call


def _synchronized(fn: Callable[[], object]) -> Callable[[], object]:
    import cupy as cp

    def call():
        out = fn()
        cp.cuda.get_current_stream().synchronize()
        return out
    return call


# --------------------------------------------------------------------------- driver


def run(cases=CASES, n_chains: int = N_CHAINS, steps: int = STEPS, repeats: int = 9,
        warmup: int = 2, log=print, device: str = "cpu") -> list[dict]:
    """One row per (energy, d, sampler). device="cuda": ebmfast's GPU chains against the
    same baseline written in CuPy (reported under the "numpy" key, labelled in the row)."""
    xp = np
    if device == "cuda":
        import cupy as xp
    rows = []
    for name, d, sampler in cases:
        E = make_energy(name, d)
        x0 = xp.asarray(np.random.default_rng(1).normal(size=(n_chains, d)).astype(np.float32))
        step = STEP_SIZE[sampler] / np.sqrt(max(d, 1) / 2.0) ** 0.5
        fns = {"ebmfast": ebmfast_runner(E, x0, sampler, step, steps),
               "numpy": numpy_runner(E, x0, sampler, step, steps, xp=xp)}
        if device == "cuda":
            fns = {k: _synchronized(v) for k, v in fns.items()}
        snap = _cpu_snapshot()
        cells = time_cell(fns, repeats, warmup=warmup)
        other = _other_cpu(snap, _cpu_snapshot())
        med = {k: v["median_ms"] for k, v in cells.items()}
        props = {k: n_chains * steps / (v * 1e-3) for k, v in med.items()}
        row = {"energy": name, "d": d, "sampler": sampler, "n_chains": n_chains,
               "device": device, "baseline": "cupy" if device == "cuda" else "numpy",
               "steps_per_call": steps, "step_size": step, "median_ms": med,
               "proposals_per_s": props,
               "ratios": {"numpy/ebmfast": _ratio(med["numpy"], med["ebmfast"])},
               "other_cpu": other, "raw": cells}
        rows.append(row)
        log(_format_row(row))
    return rows


_HEADER = (f"{'energy':<10}{'d':>5} {'sampler':<8}{'ebmfast ms':>11}{'numpy ms':>10}"
           f"{'ef prop/s':>12}{'np prop/s':>12}{'np/ef':>7}{'other':>7}")


def _format_row(r: dict) -> str:
    m, p = r["median_ms"], r["proposals_per_s"]
    other = "-" if r["other_cpu"] is None else f"{r['other_cpu']:.0%}"
    return (f"{r['energy']:<10}{r['d']:>5} {r['sampler']:<8}{m['ebmfast']:>11.3f}"
            f"{m['numpy']:>10.3f}{p['ebmfast']:>12.3g}{p['numpy']:>12.3g}"
            f"{r['ratios']['numpy/ebmfast']:>7.2f}{other:>7}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ebmfast bench --suite mcmc",
                                 description="Continuous MCMC chains: ebmfast vs NumPy (CPU)")
    ap.add_argument("--threads", type=int, default=None, help="ebmfast threads (default: all)")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--chains", type=int, default=N_CHAINS)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--quick", action="store_true", help="d = 2 Gaussian only, 3 repeats")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results"))
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: GPU chains vs the CuPy baseline (needs a GPU and CuPy)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        ef.set_num_threads(args.threads)
    threads = ef.get_num_threads()
    cases = [c for c in CASES if c[0] == "gaussian" and c[1] == 2] if args.quick else CASES
    repeats = 3 if args.quick else args.repeats
    print(f"continuous chains: {args.chains} chains x {args.steps} steps per call, "
          f"{threads} ebmfast thread(s), median of {repeats}")
    print(_HEADER)
    rows = run(cases, args.chains, args.steps, repeats, device=args.device)
    if not args.no_save:
        os.makedirs(args.out, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        tag = "cpu" if args.device == "cpu" else "cuda"
        path = os.path.join(args.out, f"mcmc_{tag}_{stamp}_t{threads}.json")
        env = _environment(threads)
        for pool in env["threads"].get("threadpoolctl") or []:  # no paths of this machine
            if pool.get("filepath"):
                pool["filepath"] = os.path.basename(pool["filepath"])
        doc = {"suite": f"mcmc_{tag}", "environment": env,
               "settings": {"n_chains": args.chains, "steps_per_call": args.steps,
                            "repeats": repeats,
                            "baseline": ("float32, default_rng, vectorized over chains, in "
                                         + ("CuPy" if args.device == "cuda" else "NumPy")),
                            "ebmfast": "public API, thin=steps (final state kept), adapt=False"},
               "rows": rows}
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
