"""Deep belief network: a stack of RBMs trained greedily, layer by layer (Hinton, Osindero &
Teh 2006), on the compiled RBM kernels.

RBM 1 learns the data; RBM k learns the representation p(h_{k-1} = 1 | .) of the stack
below it (``propagate="probabilities"``, the usual choice, or Bernoulli samples of it).
With labels (``fit(X, y)``) the one-hot labels join the top RBM's visible layer and
``predict`` is exact: the top RBM's free energy of [features, class k] for each class.
"""
from __future__ import annotations

import numpy as np

from ._backend import check_int, check_seed, check_units
from .rbm import RBM
from .reference import STREAM_VISIBLE

__all__ = ["DBN"]


class DBN:
    """A stack of RBMs. ``layer_sizes`` = [n_visible, n_1, ..., n_top]; ``rbm_params`` are
    the RBM hyper-parameters of every layer (learning_rate, method, k, momentum,
    weight_decay, batch_size, epochs, progress), or a list with one dict per layer."""

    def __init__(self, layer_sizes, *, n_labels: int = 0, propagate: str = "probabilities",
                 seed=None, **rbm_params):
        sizes = [check_int(s, "layer_sizes entries", minimum=1) for s in layer_sizes]
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least two layers, got {layer_sizes!r}")
        self.layer_sizes = sizes
        self.n_labels = check_int(n_labels, "n_labels", minimum=0)
        if self.n_labels == 1:
            raise ValueError("n_labels must be 0 (no labels) or >= 2 (one-hot classes)")
        if propagate not in ("probabilities", "samples"):
            raise ValueError(f"propagate must be 'probabilities' or 'samples', got {propagate!r}")
        self.propagate = propagate
        self.seed_ = check_seed(seed)
        n_layers = len(sizes) - 1
        per = rbm_params.pop("layers", None)
        if per is None:
            per = [dict(rbm_params) for _ in range(n_layers)]
        elif rbm_params:
            raise ValueError("give hyper-parameters either for all layers or per layer (layers=[...])")
        if len(per) != n_layers:
            raise ValueError(f"layers must hold {n_layers} dicts, one per RBM, got {len(per)}")
        self.rbms_: list[RBM] = []
        for k in range(n_layers):
            n_in = sizes[k] + (self.n_labels if k == n_layers - 1 else 0)
            self.rbms_.append(RBM(n_in, sizes[k + 1], seed=(self.seed_ + k) % 2**64, **per[k]))
        self._step = 0

    def __repr__(self) -> str:
        return f"DBN({self.layer_sizes}, n_labels={self.n_labels})"

    def _onehot(self, y, rows: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (rows,) or y.dtype.kind not in "iu":
            raise ValueError(f"y must be integer class ids of shape ({rows},), got {y.dtype} {y.shape}")
        if rows and (y.min() < 0 or y.max() >= self.n_labels):
            raise ValueError(f"y must lie in [0, {self.n_labels}), got range [{y.min()}, {y.max()}]")
        out = np.zeros((rows, self.n_labels), np.float32)
        out[np.arange(rows), y] = 1.0
        return out

    def _bernoulli(self, P: np.ndarray) -> np.ndarray:
        from . import _core
        u = _core.philox_uniforms(self.seed_, STREAM_VISIBLE, self._step, P.shape[0], P.shape[1], 0)
        self._step += 1
        return (u < P).astype(np.float32)

    def fit(self, X, y=None) -> "DBN":
        """Greedy layer-wise training: each RBM trains ``epochs`` epochs on the output of
        the (already trained) layers below."""
        H, _ = check_units(X, "X", self.layer_sizes[0], binary=False)
        if (y is None) != (self.n_labels == 0):
            raise ValueError("y is required exactly when the DBN has label units (n_labels > 0)")
        for k, rbm in enumerate(self.rbms_):
            top = k == len(self.rbms_) - 1
            inputs = np.hstack([H, self._onehot(y, H.shape[0])]) if (top and self.n_labels) else H
            rbm.fit(inputs)
            if not top:
                H = rbm.transform(H)
                if self.propagate == "samples":
                    H = self._bernoulli(H)
        return self

    def transform(self, X, layer: int | None = None) -> np.ndarray:
        """Up-pass probabilities p(h_k = 1 | .) of layer ``layer`` (1-based; default: the
        top hidden layer). Without labels; the top RBM sees zeros for the label units."""
        H, _ = check_units(X, "X", self.layer_sizes[0], binary=False)
        last = len(self.rbms_) if layer is None else check_int(layer, "layer", minimum=1, maximum=len(self.rbms_))
        for k in range(last):
            rbm = self.rbms_[k]
            if k == len(self.rbms_) - 1 and self.n_labels:
                H = np.hstack([H, np.zeros((H.shape[0], self.n_labels), np.float32)])
            H = rbm.transform(H)
        return H

    def predict_proba(self, X) -> np.ndarray:
        """p(class | x), exact in the top RBM: softmax over k of -F([features(x), e_k])."""
        if self.n_labels == 0:
            raise ValueError("the DBN has no label units (n_labels=0)")
        F = self.transform(X, layer=len(self.rbms_) - 1) if len(self.rbms_) > 1 else \
            check_units(X, "X", self.layer_sizes[0], binary=False)[0]
        top = self.rbms_[-1]
        scores = np.empty((F.shape[0], self.n_labels))
        for c in range(self.n_labels):
            V = np.hstack([F, np.zeros((F.shape[0], self.n_labels), np.float32)])
            V[:, F.shape[1] + c] = 1.0
            scores[:, c] = -top.free_energy(V)
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)

    def sample(self, n: int, n_steps: int = 1000, label: int | None = None) -> np.ndarray:
        """n visible samples: Gibbs in the top RBM (its label units clamped to ``label``
        when given), then one ancestral down pass through the layers below."""
        n = check_int(n, "n", minimum=1)
        n_steps = check_int(n_steps, "n_steps", minimum=1)
        top = self.rbms_[-1]
        if label is None:
            V = top.sample(n, n_steps=n_steps)
        else:
            if self.n_labels == 0:
                raise ValueError("label given but the DBN has no label units")
            label = check_int(label, "label", minimum=0, maximum=self.n_labels - 1)
            # clamp by resetting the label units after every step (one Gibbs step per call)
            V = top.sample(n, n_steps=1)
            nf = top.n_visible - self.n_labels
            for _ in range(n_steps):
                V[:, nf:] = 0.0
                V[:, nf + label] = 1.0
                V = top.gibbs(V, k=1)
            V[:, nf:] = 0.0
            V[:, nf + label] = 1.0
        H = V[:, :self.layer_sizes[-2]]
        for rbm in reversed(self.rbms_[:-1]):
            P = 1.0 / (1.0 + np.exp(-(H @ rbm.W.T + rbm.b)))
            H = self._bernoulli(P.astype(np.float32))
        return H
