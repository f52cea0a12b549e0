"""Hopfield recall benchmark: ebmfast's async recall kernel vs NumPy written the obvious
way vs a floor, in one run.

    ebmfast bench --suite hopfield [--quick] [--threads T]   (or: python -m ebmfast.bench_hopfield)

The task (the issue's): N = 1024 units, K = 0.05 N random patterns stored with the
Hebbian rule, 10,000 cues made of the patterns with 10% of their bits flipped, recalled
by sequential asynchronous updates to a fixed point. The NumPy baseline is vectorised over
cues with a Python loop over sites (z = Y @ W[i] + b[i], float32) and runs a sample of the
cues (its cost is linear in cues); every figure is a rate in cues recalled per second from
the median of repeated calls, and a ratio compares two rates measured in the same run.
The floor is one float32 GEMM Y W of all cues (the work of a single synchronous sweep).
JSON goes to benchmarks/results/hopfield_cpu_<time>_t<threads>.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import ebmfast
from ebmfast.bench import _cpu_snapshot, _environment, _other_cpu, time_cell, save_run

SEED = 1234


def instance(n: int, cues: int, flip: float = 0.1, load: float = 0.05, seed: int = SEED):
    """(Hopfield model, cues (cues, n) int8, their source patterns)."""
    rng = np.random.default_rng(seed)
    K = max(1, int(round(load * n)))
    P = np.where(rng.random((K, n)) < 0.5, 1, -1).astype(np.int8)
    model = ebmfast.Hopfield(n, seed=seed).store(P)
    src = P[rng.integers(0, K, cues)]
    C = src.copy()
    C[rng.random(C.shape) < flip] *= -1
    return model, C, src


def numpy_recall(W: np.ndarray, b: np.ndarray, cues: np.ndarray, max_sweeps: int = 100) -> np.ndarray:
    """Async recall written the obvious way: vectorised over cues, a Python loop over sites,
    z = Y @ W[i] + b[i] (float32), until a sweep changes nothing."""
    Y = cues.astype(np.float32)
    for _ in range(max_sweeps):
        changed = False
        for i in range(W.shape[0]):
            z = Y @ W[i] + b[i]
            new = np.where(z > 0, 1.0, np.where(z < 0, -1.0, Y[:, i])).astype(np.float32)
            changed |= bool(np.any(new != Y[:, i]))
            Y[:, i] = new
        if not changed:
            break
    return Y.astype(np.int8)


def run(n: int, cues: int, numpy_cues: int, repeats: int, numpy_repeats: int) -> dict:
    model, C, src = instance(n, cues)
    W, b = model.W, model.b
    Cn = C[:numpy_cues]
    # correctness first: the same fixed points on the NumPy sample (Gaussian-free Hebbian
    # weights can tie; ties are rare at K = 51 and would show up here as a mismatch)
    ours = model.recall(C)
    ref_np = numpy_recall(W, b, Cn)
    agree = float(np.mean(np.all(ours.states[:numpy_cues] == ref_np, axis=1)))
    Cf = C.astype(np.float32)
    fns = {
        "ebmfast": lambda: model.recall(C),
        "floor_gemm": lambda: Cf @ W,
    }
    snap = _cpu_snapshot()
    cells = time_cell(fns, repeats)
    cells.update(time_cell({"numpy": lambda: numpy_recall(W, b, Cn)}, numpy_repeats, warmup=1,
                           rounds=1))
    other = _other_cpu(snap, _cpu_snapshot())
    rate = {k: (cues if k != "numpy" else numpy_cues) / (v["median_ms"] / 1e3) for k, v in cells.items()}
    row = {
        "n": n, "cues": cues, "numpy_cues": numpy_cues, "patterns": int(model.info_["patterns"]),
        "flip": 0.1, "sweeps_mean": float(ours.sweeps.mean()), "sweeps_max": int(ours.sweeps.max()),
        "recalled_fraction": float(np.mean(np.all(ours.states == src, axis=1))),
        "agreement_with_numpy": agree,
        "median_ms": {k: v["median_ms"] for k, v in cells.items()},
        "cues_per_s": rate,
        "speedup_vs_numpy": rate["ebmfast"] / rate["numpy"],
        "ratio_to_floor_gemm": rate["ebmfast"] / rate["floor_gemm"],
        "other_cpu": other, "raw": cells,
    }
    print(f"N={n} cues={cues}: ebmfast {cells['ebmfast']['median_ms']:.1f} ms "
          f"({rate['ebmfast']:.3g} cues/s), numpy {rate['numpy']:.3g} cues/s "
          f"({numpy_cues} cues), speedup {row['speedup_vs_numpy']:.1f}x, "
          f"one GEMM Y W {cells['floor_gemm']['median_ms']:.1f} ms; sweeps mean "
          f"{row['sweeps_mean']:.2f}, recalled {row['recalled_fraction']:.3f}, "
          f"agreement {agree:.3f}")
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ebmfast.bench_hopfield", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--cues", type=int, default=10_000)
    p.add_argument("--numpy-cues", type=int, default=10_000, help="cues the NumPy baseline recalls")
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args(argv)
    if args.threads is not None:
        ebmfast.set_num_threads(args.threads)
    threads = ebmfast.get_num_threads()
    env = _environment(threads)
    print(f"ebmfast {ebmfast.__version__} Hopfield recall CPU benchmark: "
          f"{env['machine']['cpu_model']}, {threads} threads; ratios in the same run")
    t0 = time.perf_counter()
    if args.smoke:
        n, cues, ncues, reps, nreps = 64, 100, 50, 2, 1
    else:
        n, cues, ncues = args.n, args.cues, min(args.numpy_cues, args.cues)
        reps = 3 if args.quick else args.repeats
        nreps = 1 if args.quick else 3
    rows = [run(n, cues, ncues, reps, nreps)]
    save_run(env, {"repeats": reps, "numpy_repeats": nreps, "quick": args.quick,
                          "smoke": args.smoke, "seed": SEED}, rows, t0, args.out, "hopfield", threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
