"""Model-quality report: RBMs trained with CD-1, CD-10 and PCD-1 (and scikit-learn's
BernoulliRBM) for the same number of updates, scored by AIS on held-out digits.

    ebmfast report quality [--quick] [--ais-steps N]      (or: python -m ebmfast.quality)

For each data set (``digits()``: 1400 train / 397 test; ``mnist5k()``: 4000 / 1000, split
within each class) and model: training time, log Z by forward AIS (base-rate model from the
training data) and by reverse AIS (from 100 model samples after 1000 Gibbs steps), each with
its standard error, the mean test log-likelihood with both (forward AIS tends to
underestimate log Z, so its log-likelihood tends to be optimistic; reverse, pessimistic),
and the mean exact pseudo-log-likelihood of the test set. JSON goes to
benchmarks/results/quality_<time>.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import ebmfast
from ebmfast.bench import _environment, save_run
from ebmfast.estimators import ais, default_ais_betas

SEED = 1234


def _schedule(steps: int) -> np.ndarray:
    """The Salakhutdinov-Murray schedule thinned to about ``steps`` inverse temperatures
    (their density profile kept: 1/29 of the steps below 0.5, 4/29 to 0.9, the rest above)."""
    full = default_ais_betas()
    if steps >= full.size:
        return full
    idx = np.unique(np.round(np.linspace(0, full.size - 1, steps)).astype(int))
    return full[idx]


def _datasets(quick: bool):
    out = []
    X, y = ebmfast.datasets.digits(return_labels=True)
    order = np.random.default_rng(SEED).permutation(len(X))
    out.append(("digits", X[order[:1400]], X[order[1400:]]))
    if not quick:
        tr = ebmfast.datasets.mnist5k(split="train")
        te = ebmfast.datasets.mnist5k(split="test")
        out.append(("mnist5k", tr, te))
    return out


def _sklearn_as_rbm(n_v: int, n_h: int, X, epochs: int, batch: int):
    try:
        from sklearn.neural_network import BernoulliRBM
    except ImportError:
        return None, None
    sk = BernoulliRBM(n_components=n_h, learning_rate=0.05, batch_size=batch, n_iter=epochs,
                      random_state=0)
    t0 = time.perf_counter()
    sk.fit(X)
    seconds = time.perf_counter() - t0
    rbm = ebmfast.RBM(n_v, n_h, seed=0)
    rbm.W = sk.components_.T.astype(np.float32)
    rbm.b = sk.intercept_visible_.astype(np.float32)
    rbm.c = sk.intercept_hidden_.astype(np.float32)
    return rbm, seconds


def score(name: str, rbm, X_train, X_test, betas, n_runs: int, train_s: float, log) -> dict:
    t0 = time.perf_counter()
    fwd = ais(rbm, n_runs=n_runs, betas=betas, data=X_train, seed=SEED)
    samples = rbm.sample(n_runs, n_steps=1000)
    rev = ais(rbm, n_runs=n_runs, betas=betas, data=X_train, seed=SEED + 1, reverse=True,
              init_states=samples)
    ais_s = time.perf_counter() - t0
    neg_f = -rbm.free_energy(X_test)
    row = {"model": name, "train_s": train_s, "ais_s": ais_s,
           "log_z_forward": fwd.log_z, "se_forward": fwd.se, "ess_forward": fwd.ess,
           "log_z_reverse": rev.log_z, "se_reverse": rev.se, "ess_reverse": rev.ess,
           "test_ll_forward": float(neg_f.mean() - fwd.log_z),
           "test_ll_reverse": float(neg_f.mean() - rev.log_z),
           "test_pl": float(rbm.score_samples(X_test).mean())}
    log(f"  {name:<22} train {train_s:7.2f} s  log Z fwd {fwd.log_z:9.3f} ± {fwd.se:.3f}  "
        f"rev {rev.log_z:9.3f} ± {rev.se:.3f}  test LL {row['test_ll_forward']:8.2f} / "
        f"{row['test_ll_reverse']:8.2f}  PL {row['test_pl']:8.2f}  (AIS {ais_s:.1f} s)")
    return row


def run(quick: bool = False, ais_steps: int = 14501, n_hidden: int = 500, n_runs: int = 100,
        updates: int = 1000, log=print) -> list[dict]:
    betas = _schedule(ais_steps)
    rows = []
    for data_name, X_train, X_test in _datasets(quick):
        X_train = np.asarray(X_train, np.float32)
        X_test = np.asarray(X_test, np.float32)
        n_v = X_train.shape[1]
        batch = 100
        epochs = max(1, int(round(updates * batch / X_train.shape[0])))
        log(f"{data_name}: {X_train.shape[0]} train / {X_test.shape[0]} test, {n_v}x{n_hidden} RBMs, "
            f"{epochs} epochs of batches of {batch} (~{updates} updates), AIS {betas.size} betas x {n_runs} runs")
        for label, method, k in (("ebmfast CD-1", "cd", 1), ("ebmfast CD-10", "cd", 10),
                                 ("ebmfast PCD-1", "pcd", 1)):
            rbm = ebmfast.RBM(n_v, n_hidden, method=method, k=k, learning_rate=0.05, momentum=0.5,
                              batch_size=batch, epochs=epochs, seed=SEED)
            t0 = time.perf_counter()
            rbm.fit(X_train)
            row = score(label, rbm, X_train, X_test, betas, n_runs, time.perf_counter() - t0, log)
            rows.append({"data": data_name, **row})
        sk, sk_s = _sklearn_as_rbm(n_v, n_hidden, X_train, epochs, batch)
        if sk is not None:
            row = score("sklearn BernoulliRBM", sk, X_train, X_test, betas, n_runs, sk_s, log)
            rows.append({"data": data_name, **row})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ebmfast report quality", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="digits only, 64 hidden, 500 betas, 20 runs")
    p.add_argument("--ais-steps", type=int, default=14501, help="AIS inverse temperatures (default: the full schedule)")
    p.add_argument("--n-hidden", type=int, default=500)
    p.add_argument("--updates", type=int, default=1000, help="parameter updates per model")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args(argv)
    if args.quick:
        kw = dict(quick=True, ais_steps=500, n_hidden=64, n_runs=20, updates=100)
    else:
        kw = dict(ais_steps=args.ais_steps, n_hidden=args.n_hidden, updates=args.updates)
    t0 = time.perf_counter()
    rows = run(**kw)
    threads = ebmfast.get_num_threads()
    save_run(_environment(threads), {**kw, "seed": SEED, "learning_rate": 0.05, "momentum": 0.5,
                                     "batch_size": 100}, rows, t0, args.out, "quality", threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
