"""Boltzmann-machine training benchmark: one epoch on ``digits()`` (64 visible + 10 label +
100 hidden units, mini-batches of 50, 5 clamped and 1 free heat-bath sweeps per update,
100 persistent chains), ebmfast vs the same algorithm in NumPy written the obvious way
(vectorised over the batch, a Python loop over units), in one run.

    ebmfast bench --suite bm        (or: python -m ebmfast.bench_bm)

JSON goes to benchmarks/results/bm_cpu_<time>_t<threads>.json.
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


class NumpyBM:
    """The BoltzmannMachine update in plain NumPy (float32, default_rng)."""

    def __init__(self, n_units: int, n_observed: int, n_chains: int, lr: float,
                 clamped_sweeps: int, free_sweeps: int, seed: int = SEED):
        self.rng = np.random.default_rng(seed)
        self.W = np.zeros((n_units, n_units), np.float32)
        self.b = np.zeros(n_units, np.float32)
        self.n_observed = n_observed
        self.lr = lr
        self.cs, self.fs = clamped_sweeps, free_sweeps
        self.chains = (self.rng.random((n_chains, n_units)) < 0.5).astype(np.float32)

    def _gibbs(self, Y, units, sweeps):
        for _ in range(sweeps):
            for i in units:
                z = Y @ self.W[i] + self.b[i]
                Y[:, i] = self.rng.random(Y.shape[0], dtype=np.float32) < 1.0 / (1.0 + np.exp(-z))
        return Y

    def update(self, D):
        n = self.W.shape[0]
        P = np.empty((D.shape[0], n), np.float32)
        P[:, :self.n_observed] = D
        P[:, self.n_observed:] = self.rng.random((D.shape[0], n - self.n_observed)) < 0.5
        P = self._gibbs(P, range(self.n_observed, n), self.cs)
        self.chains = self._gibbs(self.chains, range(n), self.fs)
        Q = self.chains
        dW = P.T @ P / len(P) - Q.T @ Q / len(Q)
        np.fill_diagonal(dW, 0.0)
        self.W += self.lr * dW
        self.b += self.lr * (P.mean(0) - Q.mean(0))


def run(repeats: int = 5, smoke: bool = False, log=print) -> list[dict]:
    X, y = ebmfast.datasets.digits(return_labels=True)
    y = np.asarray(y)
    if smoke:
        X, y = X[:100], y[:100]
    n_hidden = 8 if smoke else 100
    kw = dict(learning_rate=0.02, batch_size=50, epochs=1, n_chains=100, clamped_sweeps=5,
              free_sweeps=1, seed=SEED)
    model = ebmfast.BoltzmannMachine(64, n_hidden, n_labels=10, **kw)
    onehot = np.eye(10, dtype=np.float32)[y]
    D = np.hstack([X.astype(np.float32), onehot])
    nb = NumpyBM(64 + 10 + n_hidden, 74, 100, 0.02, 5, 1)

    def numpy_epoch():
        order = nb.rng.permutation(len(D))
        for s in range(0, len(D), 50):
            nb.update(D[order[s:s + 50]])

    fns = {"ebmfast": lambda: model.fit(X, y), "numpy": numpy_epoch}
    snap = _cpu_snapshot()
    cells = time_cell(fns, repeats, warmup=1, warmup_s=0.0 if smoke else 0.6,
                      rounds=1 if smoke else 2, slow_repeats={"ebmfast": None, "numpy": 3})
    other = _other_cpu(snap, _cpu_snapshot())
    med = {k: c["median_ms"] for k, c in cells.items()}
    row = {"case": f"BM epoch on digits: 64 visible + 10 labels + {n_hidden} hidden, batch 50",
           "rows": int(len(X)), "median_ms": med, "ratios": {"numpy/ebmfast": med["numpy"] / med["ebmfast"]},
           "other_cpu": other, "raw": cells}
    log(f"{row['case']}: ebmfast {med['ebmfast']:.1f} ms, numpy {med['numpy']:.1f} ms, "
        f"numpy/ebmfast {row['ratios']['numpy/ebmfast']:.1f}x")
    return [row]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ebmfast bench --suite bm", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args(argv)
    if args.threads is not None:
        ebmfast.set_num_threads(args.threads)
    threads = ebmfast.get_num_threads()
    env = _environment(threads)
    print(f"ebmfast {ebmfast.__version__} Boltzmann-machine CPU benchmark, {threads} threads")
    t0 = time.perf_counter()
    rows = run(repeats=3 if args.smoke else args.repeats, smoke=args.smoke)
    save_run(env, {"repeats": args.repeats, "smoke": args.smoke, "seed": SEED}, rows, t0,
             args.out, "bm", threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
