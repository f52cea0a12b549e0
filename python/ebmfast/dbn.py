"""Deep belief network: a stack of RBMs trained greedily, layer by layer (Hinton, Osindero &
Teh 2006), on the compiled RBM kernels, then optionally fine-tuned by the up-down
(contrastive wake-sleep) algorithm of the same paper.

RBM 1 learns the data; RBM k learns the representation p(h_{k-1} = 1 | .) of the stack
below it (``propagate="probabilities"``, the usual choice, or Bernoulli samples of it).
With labels (``fit(X, y)``) the one-hot labels join the top RBM's visible layer and
``predict`` is exact: the top RBM's free energy of [features, class k] for each class.

Fine-tuning (:meth:`DBN.fit` first, then :meth:`DBN.fine_tune`) unties the weights of the
layers below the top RBM into recognition weights (up: p(h_{k+1} | h_k)) and generative
weights (down: p(h_k | h_{k+1})), both starting from the tied RBM weights. After it,
``transform`` goes up with the recognition weights and ``sample`` comes down with the
generative ones. Every random number comes from the shared Philox stream with the DBN's
own seed and step counter (streams 48-52, apart from those of the RBM kernels, which the
first RBM draws with the same seed), so a run is a pure function of the seed.
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import _checkpoint, _core
from ._backend import (check_bool, check_float, check_int, check_memory, check_seed,
                       check_steps, check_units)
from .rbm import RBM
from .reference import STREAM_VISIBLE

__all__ = ["DBN"]

# The DBN's own Philox streams (DESIGN.md §3); STREAM_VISIBLE stays the down pass of
# ``sample`` and the sampled propagation of ``fit``, as before fine-tuning existed.
_STREAM_UP = 48       # wake phase: up-pass samples with the recognition weights
_STREAM_TOP = 49      # top-level Gibbs (fine-tuning CD-k, predict(method="gibbs"))
_STREAM_DOWN = 50     # sleep phase: down-pass samples with the generative weights
_STREAM_LABEL = 51    # softmax samples of the label group
_STREAM_ORDER = 52    # mini-batch order of each fine-tuning epoch


def _mm_t(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A^T B (float32) with the module's BLAS: NumPy's thread pool would keep spinning
    beside the OpenMP layer kernels called right after (benchmarks/NOTES.md, BM section)."""
    return _core.matmul(np.ascontiguousarray(A.T, dtype=np.float32),
                        np.ascontiguousarray(B, dtype=np.float32))


class DBN:
    """A stack of RBMs. ``layer_sizes`` = [n_visible, n_1, ..., n_top]; ``rbm_params`` are
    the RBM hyper-parameters of every layer (learning_rate, method, k, momentum,
    weight_decay, batch_size, epochs, progress), or a list with one dict per layer.

    Attributes
    ----------
    rbms_ : list of RBM
        The stack; ``rbms_[-1]`` is the top-level associative memory (with the label units
        at the end of its visible layer when ``n_labels > 0``).
    rec_W_, rec_c_, gen_W_, gen_b_ : list of ndarray, or None
        After :meth:`fine_tune`, the untied weights of every layer k below the top RBM:
        recognition p(h_{k+1} = 1 | h_k) = sigmoid(h_k rec_W_[k] + rec_c_[k]) and generative
        p(h_k = 1 | h_{k+1}) = sigmoid(h_{k+1} gen_W_[k]^T + gen_b_[k]); rec_W_[k] and
        gen_W_[k] have the RBM's shape (n_k, n_{k+1}); float32 C-contiguous arrays that may
        be edited in place. None while the weights are tied.
    fine_tune_history_ : list of dict
        One entry per fine-tuning epoch (epoch, seconds, recon_error: mean squared error
        of the generative reconstruction of the data from the wake sample of layer 1).
    """

    def __init__(self, layer_sizes, *, n_labels: int = 0, propagate: str = "probabilities",
                 seed=None, **rbm_params):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__iter__"):
            raise TypeError(f"layer_sizes must be a list of layer widths, got {layer_sizes!r}")
        sizes = [check_int(s, "layer_sizes entries", minimum=1, maximum=2**28) for s in layer_sizes]
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least two layers, got {layer_sizes!r}")
        self.layer_sizes = sizes
        self.n_labels = check_int(n_labels, "n_labels", minimum=0, maximum=2**28)
        if self.n_labels == 1:
            raise ValueError("n_labels must be 0 (no labels) or >= 2 (one-hot classes)")
        widths = [a + (self.n_labels if i == len(sizes) - 2 else 0) for i, a in enumerate(sizes[:-1])]
        # each RBM: W, W^T, velocity, spare buffers (float32) and a float64 draw of W
        check_memory(24.0 * sum(a * b for a, b in zip(widths, sizes[1:])),
                     f"DBN(layer_sizes={sizes}, n_labels={self.n_labels})")
        if not isinstance(propagate, str) or propagate not in ("probabilities", "samples"):
            raise ValueError(f"propagate must be 'probabilities' or 'samples', got {propagate!r}")
        self.propagate = propagate
        self.seed_ = check_seed(seed)
        n_layers = len(sizes) - 1
        per = rbm_params.pop("layers", None)
        if per is None:
            per = [dict(rbm_params) for _ in range(n_layers)]
        elif rbm_params:
            raise ValueError("give hyper-parameters either for all layers or per layer (layers=[...])")
        if not isinstance(per, (list, tuple)) or not all(isinstance(d, dict) for d in per):
            raise TypeError(f"layers must be a list of dicts of RBM hyper-parameters, got {per!r}")
        if len(per) != n_layers:
            raise ValueError(f"layers must hold {n_layers} dicts, one per RBM, got {len(per)}")
        self.rbms_: list[RBM] = []
        for k in range(n_layers):
            n_in = sizes[k] + (self.n_labels if k == n_layers - 1 else 0)
            self.rbms_.append(RBM(n_in, sizes[k + 1], seed=(self.seed_ + k) % 2**64, **per[k]))
        self._step = 0
        self._tie()
        self.fine_tune_history_: list[dict[str, float]] = []

    def __repr__(self) -> str:
        return f"DBN({self.layer_sizes}, n_labels={self.n_labels})"

    # ------------------------------------------------------------------ helpers

    def _tie(self) -> None:
        self.rec_W_ = self.rec_c_ = self.gen_W_ = self.gen_b_ = None

    @property
    def untied(self) -> bool:
        """True once :meth:`fine_tune` has split recognition and generative weights."""
        return self.rec_W_ is not None

    def _onehot(self, y, rows: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (rows,) or y.dtype.kind not in "iu":
            raise ValueError(f"y must be integer class ids of shape ({rows},), got {y.dtype} {y.shape}")
        if rows and (y.min() < 0 or y.max() >= self.n_labels):
            raise ValueError(f"y must lie in [0, {self.n_labels}), got range [{y.min()}, {y.max()}]")
        out = np.zeros((rows, self.n_labels), np.float32)
        out[np.arange(rows), y] = 1.0
        return out

    def _take_steps(self, n: int) -> int:
        first = self._step
        if first + n >= 2**32:
            raise OverflowError("the DBN's Philox step counter is exhausted (2**32 steps)")
        self._step = first + n
        return first

    def _bernoulli(self, P: np.ndarray) -> np.ndarray:
        u = _core.philox_uniforms(self.seed_, STREAM_VISIBLE, self._take_steps(1), P.shape[0],
                                  P.shape[1], 0)
        return (u < P).astype(np.float32)

    def _layer(self, X: np.ndarray, M: np.ndarray, bias: np.ndarray, stream: int | None, *,
               binary: bool, field: bool = False):
        """(field or None, p, sample or None) of z = X M + bias by the compiled layer kernel,
        X (rows, n_in), M (n_in, n_out) float32 C-contiguous. With a stream the sample uses
        the uniforms (seed_, stream, row, the next DBN step, unit); binary=True only when
        every entry of X is 0 or 1 (it selects the gather kernel)."""
        sample = stream is not None
        step = self._take_steps(1) if sample else 0
        return _core.layer_forward(X, M, bias, 1.0, binary, field, True, sample,
                                   stream if sample else 0, self.seed_, step, 0)

    def _up(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(W (n_k, n_{k+1}), bias) of the up pass out of layer k."""
        if self.untied and k < len(self.rbms_) - 1:
            return self.rec_W_[k], self.rec_c_[k]
        return self.rbms_[k]._W, self.rbms_[k]._c

    def _down(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(W^T (n_{k+1}, n_k) C-contiguous, bias) of the down pass into layer k < top. The
        generative weights change with every fine-tuning batch, so their transpose is made
        per call rather than cached (users may also edit gen_W_ in place)."""
        if self.untied:
            return np.ascontiguousarray(self.gen_W_[k].T), self.gen_b_[k]
        return self.rbms_[k]._WT, self.rbms_[k]._b

    def _softmax_sample(self, Z: np.ndarray) -> np.ndarray:
        """One-hot samples (rows, n_labels) float32 of softmax(Z) per row, one uniform each."""
        Z = np.asarray(Z, np.float64)
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        u = _core.philox_uniforms(self.seed_, _STREAM_LABEL, self._take_steps(1), Z.shape[0], 1, 0)
        idx = np.minimum((np.cumsum(P, axis=1) <= u).sum(axis=1), Z.shape[1] - 1)
        out = np.zeros(Z.shape, np.float32)
        out[np.arange(Z.shape[0]), idx] = 1.0
        return out

    # ------------------------------------------------------------------ greedy training

    def _resume_from(self, resume, phase: str):
        """(model read from the checkpoint ``resume``, its progress of a ``phase`` call or
        None), after checking that it fits this DBN."""
        resume = _checkpoint.check_resume_path(resume)
        model, fit_meta = self._read(resume)
        if (model.layer_sizes, model.n_labels) != (self.layer_sizes, self.n_labels):
            raise ValueError(f"resume: {resume!r} holds a DBN{model.layer_sizes} with "
                             f"n_labels={model.n_labels}, this one is DBN{self.layer_sizes} "
                             f"with n_labels={self.n_labels}")
        if fit_meta is not None and fit_meta.get("phase") != phase:
            raise ValueError(f"resume: {resume!r} is a checkpoint of {fit_meta.get('phase')}(); "
                             f"resume it with {fit_meta.get('phase')}(..., resume=...), not {phase}()")
        return resume, model, fit_meta

    def fit(self, X, y=None, *, checkpoint=None, checkpoint_every: int = 1,
            resume=None) -> "DBN":
        """Greedy layer-wise training: each RBM trains ``epochs`` epochs on the output of
        the (already trained) layers below. Fitting again continues every RBM and drops
        any fine-tuning (the layers are tied again).

        checkpoint, checkpoint_every : write the whole stack's state atomically every
        ``checkpoint_every`` epochs of the RBM being trained and after each RBM's last
        epoch. resume : a checkpoint path; the DBN's state and hyper-parameters become the
        file's and the interrupted call is finished bit for bit (X and y must be the same
        data). A diverging RBM raises FloatingPointError naming the layer and the epoch."""
        ck = _checkpoint.FitCheckpoints(checkpoint, checkpoint_every)
        model, fit_meta = self, None
        if resume is not None:
            resume, model, fit_meta = self._resume_from(resume, "fit")
        H, _ = check_units(X, "X", self.layer_sizes[0], binary=False)
        if (y is None) != (self.n_labels == 0):
            raise ValueError("y is required exactly when the DBN has label units (n_labels > 0)")
        Y = self._onehot(y, H.shape[0]) if self.n_labels else None
        data_id = _checkpoint.fingerprint(H, Y) if (ck.path or model is not self) else None
        if model is not self:
            _checkpoint.check_same_data(resume, fit_meta, data_id)
            _checkpoint.adopt(self, model)
        if fit_meta is not None:
            targets, step0 = fit_meta["targets"], fit_meta["step0"]
        else:
            targets = [r.epochs_trained_ + r.epochs for r in self.rbms_]
            step0 = self._step
        progress = {"phase": "fit", "targets": targets, "step0": step0, "data": data_id}
        self._tie()
        # A resumed call replays the propagation draws of the finished layers (their RBMs
        # are at their targets and train no further), so every step matches.
        self._step = step0
        for k, rbm in enumerate(self.rbms_):
            top = k == len(self.rbms_) - 1
            inputs = np.hstack([H, Y]) if (top and self.n_labels) else H

            def on_epoch(rbm=rbm, k=k):
                ck.epoch_done(rbm.epochs_trained_, rbm.epochs_trained_ >= targets[k],
                              lambda p: self._write(p, progress))
            try:
                rbm.fit(inputs, _until=targets[k], _on_epoch=on_epoch)
            except FloatingPointError as exc:
                raise FloatingPointError(f"DBN layer {k + 1} (RBM {rbm.n_visible}x{rbm.n_hidden}): "
                                         f"{exc}") from None
            if not top:
                H = rbm.transform(H)
                if self.propagate == "samples":
                    H = self._bernoulli(H)
        return self

    # ------------------------------------------------------------------ fine-tuning

    def _untie(self) -> None:
        low = self.rbms_[:-1]
        self.rec_W_ = [r._W.copy() for r in low]
        self.rec_c_ = [r._c.copy() for r in low]
        self.gen_W_ = [r._W.copy() for r in low]
        self.gen_b_ = [r._b.copy() for r in low]

    def _up_down(self, V: np.ndarray, binary: bool, Y: np.ndarray | None, lr: float, k: int,
                 wd: float, clamp_labels: bool) -> float:
        """One up-down update on the batch V (rows, n_0); returns the wake reconstruction
        error. Every prediction uses the parameters from before the update; the new values
        are committed only when all of them are finite."""
        low = len(self.rbms_) - 1
        step0 = self._step
        gen = [self._down(j) for j in range(low)]
        # wake: binary states up the recognition weights
        S = [V]
        for j in range(low):
            S.append(self._layer(S[j], self.rec_W_[j], self.rec_c_[j], _STREAM_UP,
                                 binary=binary if j == 0 else True)[2])
        # generative predictions of each layer from the wake state above it
        wake_p = [self._layer(S[j + 1], *gen[j], None, binary=True)[1]
                  for j in range(low)]
        # top-level associative memory: CD-k from the wake state (labels clamped in the
        # positive phase; in the negative phase a softmax group, or clamped on request)
        top = self.rbms_[-1]
        nf = self.layer_sizes[-2]
        V0 = np.hstack([S[-1], Y]) if Y is not None else S[-1]
        top_binary = binary if low == 0 else True
        _, ph0, h = self._layer(V0, top._W, top._c, _STREAM_TOP, binary=top_binary)
        for _ in range(k):
            z, _, Vn = self._layer(h, top._WT, top._b, _STREAM_TOP, binary=True, field=Y is not None)
            if Y is not None:
                Vn[:, nf:] = Y if clamp_labels else self._softmax_sample(z[:, nf:])
            _, phn, h = self._layer(Vn, top._W, top._c, _STREAM_TOP, binary=True)
        # sleep: down the generative weights from the negative top-level sample (binary
        # states above, probabilities for the data layer, as in the paper's appendix B)
        T = [None] * (low + 1)
        T[low] = np.ascontiguousarray(Vn[:, :nf])
        for j in reversed(range(low)):
            _, p, s = self._layer(T[j + 1], *gen[j], _STREAM_DOWN if j > 0 else None, binary=True)
            T[j] = s if j > 0 else p
        sleep_q = [self._layer(T[j], self.rec_W_[j], self.rec_c_[j], None, binary=j > 0)[1]
                   for j in range(low)]

        with np.errstate(over="ignore", invalid="ignore"):  # checked below, then discarded
            new = self._new_params(S, wake_p, T, sleep_q, V0, ph0, Vn, phn, lr, wd)
        if not all(np.isfinite(a).all() for group in new for a in group):
            self._step = step0
            raise FloatingPointError(
                f"the fine-tuning update produced non-finite parameters and was discarded; "
                f"lower learning_rate (now {lr})")
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        new_gen_W, new_gen_b, new_rec_W, new_rec_c, (top_W, top_b, top_c) = new
        self.gen_W_ = [f32(a) for a in new_gen_W]
        self.gen_b_ = [f32(a) for a in new_gen_b]
        self.rec_W_ = [f32(a) for a in new_rec_W]
        self.rec_c_ = [f32(a) for a in new_rec_c]
        top.W, top.b, top.c = top_W, top_b, top_c
        return float(np.mean((V - wake_p[0]) ** 2)) if low else float(np.mean((V0 - Vn) ** 2))

    def _new_params(self, S, wake_p, T, sleep_q, V0, ph0, Vn, phn, lr: float, wd: float):
        """The parameters after one up-down step (new arrays; nothing is written)."""
        B = V0.shape[0]
        top = self.rbms_[-1]
        new_gen_W, new_gen_b, new_rec_W, new_rec_c = [], [], [], []
        for j in range(len(self.rbms_) - 1):
            d = S[j] - wake_p[j]             # wake: generative weights reconstruct layer j
            new_gen_W.append(self.gen_W_[j] + lr * (_mm_t(d, S[j + 1]) / B - wd * self.gen_W_[j]))
            new_gen_b.append(self.gen_b_[j] + lr * d.mean(axis=0))
            e = T[j + 1] - sleep_q[j]        # sleep: recognition weights predict layer j+1
            new_rec_W.append(self.rec_W_[j] + lr * (_mm_t(T[j], e) / B - wd * self.rec_W_[j]))
            new_rec_c.append(self.rec_c_[j] + lr * e.mean(axis=0))
        dW = (_mm_t(V0, ph0) - _mm_t(Vn, phn)) / B
        top_W = top._W + lr * (dW - wd * top._W)
        top_b = top._b + lr * (V0.mean(axis=0) - Vn.mean(axis=0))
        top_c = top._c + lr * (ph0.mean(axis=0) - phn.mean(axis=0))
        return new_gen_W, new_gen_b, new_rec_W, new_rec_c, [top_W, top_b, top_c]

    def fine_tune(self, X, epochs: int = 10, y=None, *, learning_rate: float = 0.01, k: int = 1,
                  batch_size: int | None = None, weight_decay: float = 0.0,
                  clamp_labels: bool = False, progress: bool = False, checkpoint=None,
                  checkpoint_every: int = 1, resume=None) -> "DBN":
        """Up-down fine-tuning (contrastive wake-sleep, Hinton, Osindero & Teh 2006, appendix B).

        Per mini-batch: *wake*, an up pass of binary samples through the recognition
        weights, and a delta-rule update of the generative weights so that each layer
        reconstructs the one below; *top*, CD-k in the top RBM started from the wake state
        of its visible layer (with the labels clamped to ``y`` when the DBN has labels);
        *sleep*, a down pass through the generative weights from the top RBM's negative
        sample and a delta-rule update of the recognition weights so that each layer
        predicts the one above. The first call unties the layers below the top RBM
        (``rec_W_``, ``gen_W_``, ... start from the RBM weights). Plain SGD, no momentum.

        Parameters
        ----------
        X : array (n_samples, n_visible), values in [0, 1]
        epochs : int >= 0
        y : int array (n_samples,), required exactly when the DBN has label units
        learning_rate : float > 0; k : Gibbs steps of the top-level CD (>= 1)
        batch_size : int >= 1, default the top RBM's batch_size
        weight_decay : float >= 0, on all weights (not biases)
        clamp_labels : keep the label units clamped to ``y`` in the negative phase too (the
            top RBM then learns p(features | label) only); default False samples them as a
            softmax group, as in the paper
        progress : show a tqdm bar with the epoch and the reconstruction error
        checkpoint, checkpoint_every : write the full state atomically every
            ``checkpoint_every`` epochs and after the last one
        resume : a checkpoint of fine_tune: the DBN's state and this call's settings
            (epochs, learning_rate, k, batch_size, weight_decay, clamp_labels) become the
            file's, and the interrupted call is finished bit for bit (X and y must be the
            same data)

        If an update diverges, FloatingPointError is raised and the model keeps the
        parameters of the last finite update.
        """
        ck = _checkpoint.FitCheckpoints(checkpoint, checkpoint_every)
        model, fit_meta = self, None
        if resume is not None:
            resume, model, fit_meta = self._resume_from(resume, "fine_tune")
            if fit_meta is not None:
                st = fit_meta["settings"]
                learning_rate, k, batch_size = st["learning_rate"], st["k"], st["batch_size"]
                weight_decay, clamp_labels = st["weight_decay"], st["clamp_labels"]
        V, binary = check_units(X, "X", self.layer_sizes[0], binary=False)
        if (y is None) != (self.n_labels == 0):
            raise ValueError("y is required exactly when the DBN has label units (n_labels > 0)")
        Y = self._onehot(y, V.shape[0]) if self.n_labels else None
        epochs = check_int(epochs, "epochs", minimum=0, maximum=2**31)
        lr = check_float(learning_rate, "learning_rate", minimum=0.0, open_min=True)
        k = check_int(k, "k", minimum=1, maximum=2**20)
        batch_size = self.rbms_[-1].batch_size if batch_size is None else \
            check_int(batch_size, "batch_size", minimum=1, maximum=2**24)
        wd = check_float(weight_decay, "weight_decay", minimum=0.0)
        for name, flag in (("clamp_labels", clamp_labels), ("progress", progress)):
            check_bool(flag, name)
        data_id = _checkpoint.fingerprint(V, Y) if (ck.path or model is not self) else None
        if model is not self:
            _checkpoint.check_same_data(resume, fit_meta, data_id)
            _checkpoint.adopt(self, model)
        target = (fit_meta["target"] if fit_meta is not None
                  else len(self.fine_tune_history_) + epochs)
        epochs = target - len(self.fine_tune_history_)
        progress_meta = {"phase": "fine_tune", "target": target, "data": data_id,
                         "settings": {"learning_rate": lr, "k": k, "batch_size": batch_size,
                                      "weight_decay": wd, "clamp_labels": bool(clamp_labels)}}
        n = V.shape[0]
        n_batches = -(-n // batch_size)
        steps_per_batch = (len(self.rbms_) - 1) + 1 + k * (2 + (Y is not None)) + len(self.rbms_)
        if self._step + epochs * n_batches * steps_per_batch >= 2**32:
            raise OverflowError("fine-tuning would exhaust the DBN's Philox step counter")
        fresh = not self.untied
        if fresh:
            self._untie()
        updates = 0
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=epochs, desc="DBN fine-tune", unit="epoch")
        try:
            for _ in range(epochs):
                t0 = time.perf_counter()
                epoch = len(self.fine_tune_history_)
                keys = _core.philox_uniforms(self.seed_, _STREAM_ORDER, epoch % 2**32, 1, n)[0]
                order = np.argsort(keys, kind="stable")
                err = 0.0
                for start in range(0, n, batch_size):
                    idx = order[start:start + batch_size]
                    try:
                        err += self._up_down(V[idx], binary, None if Y is None else Y[idx], lr,
                                             k, wd, bool(clamp_labels)) * len(idx)
                    except FloatingPointError as exc:
                        if fresh and updates == 0:
                            self._tie()  # as if never called
                        raise FloatingPointError(f"fine-tuning diverged in epoch {epoch + 1}: "
                                                 f"{exc}") from None
                    updates += 1
                entry = {"epoch": epoch + 1, "seconds": time.perf_counter() - t0,
                         "recon_error": err / n}
                self.fine_tune_history_.append(entry)
                if bar is not None:
                    bar.set_postfix(recon=f"{entry['recon_error']:.4f}")
                    bar.update(1)
                ck.epoch_done(epoch + 1, epoch + 1 >= target,
                              lambda p: self._write(p, progress_meta))
        finally:
            if bar is not None:
                bar.close()
        return self

    # ------------------------------------------------------------------ inference

    def transform(self, X, layer: int | None = None) -> np.ndarray:
        """Up-pass probabilities p(h_k = 1 | .) of layer ``layer`` (1-based; default: the
        top hidden layer), through the recognition weights once fine-tuned. Without labels;
        the top RBM sees zeros for the label units."""
        H, binary = check_units(X, "X", self.layer_sizes[0], binary=False)
        last = len(self.rbms_) if layer is None else check_int(layer, "layer", minimum=1, maximum=len(self.rbms_))
        for k in range(last):
            if k == len(self.rbms_) - 1 and self.n_labels:
                H = np.hstack([H, np.zeros((H.shape[0], self.n_labels), np.float32)])
            W, c = self._up(k)
            H = self._layer(H, W, c, None, binary=binary)[1]
            binary = False
        return H

    def _features(self, X) -> np.ndarray:
        if len(self.rbms_) > 1:
            return self.transform(X, layer=len(self.rbms_) - 1)
        return check_units(X, "X", self.layer_sizes[0], binary=False)[0]

    def predict_proba(self, X, method: str = "exact", n_steps: int = 100) -> np.ndarray:
        """p(class | x) (n_samples, n_labels) float64 from the top RBM given the features.

        method="exact": softmax over k of -F([features(x), e_k]) (the label group summed
        out exactly). method="gibbs": one chain per row of Gibbs sampling in the top RBM
        with the features clamped, hidden units Bernoulli and the label units a softmax
        group; returns the average of the label group's conditional softmax over the last
        half of ``n_steps`` steps (a Rao-Blackwellised estimate of the exact answer).
        """
        if self.n_labels == 0:
            raise ValueError("the DBN has no label units (n_labels=0)")
        if method not in ("exact", "gibbs"):
            raise ValueError(f"method must be 'exact' or 'gibbs', got {method!r}")
        n_steps = check_int(n_steps, "n_steps", minimum=1)
        if method == "gibbs":
            check_steps(self._step, 2 * n_steps, "n_steps", "the DBN")
        F = self._features(X)
        top = self.rbms_[-1]
        nf = F.shape[1]
        if method == "gibbs":
            WT_lab = np.ascontiguousarray(top._WT[:, nf:])
            b_lab = top._b[nf:].copy()
            L = np.zeros((F.shape[0], self.n_labels), np.float32)
            acc = np.zeros((F.shape[0], self.n_labels))
            burn = n_steps // 2
            for t in range(n_steps):
                h = self._layer(np.hstack([F, L]), top._W, top._c, _STREAM_TOP, binary=False)[2]
                z = self._layer(h, WT_lab, b_lab, None, binary=True, field=True)[0]
                if t >= burn:
                    e = np.exp(z - z.max(axis=1, keepdims=True), dtype=np.float64)
                    acc += e / e.sum(axis=1, keepdims=True)
                L = self._softmax_sample(z)
            return acc / (n_steps - burn)
        scores = np.empty((F.shape[0], self.n_labels))
        for c in range(self.n_labels):
            V = np.hstack([F, np.zeros((F.shape[0], self.n_labels), np.float32)])
            V[:, F.shape[1] + c] = 1.0
            scores[:, c] = -top.free_energy(V)
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X, method: str = "exact", n_steps: int = 100) -> np.ndarray:
        """The most probable class of each row (see :meth:`predict_proba`)."""
        return np.argmax(self.predict_proba(X, method=method, n_steps=n_steps), axis=1)

    def sample(self, n: int, n_steps: int = 1000, label: int | None = None) -> np.ndarray:
        """n visible samples: Gibbs in the top RBM (its label units clamped to ``label``
        when given), then one ancestral down pass through the layers below (the generative
        weights once fine-tuned), Bernoulli samples from the compiled layer kernel."""
        n = check_int(n, "n", minimum=1, maximum=2**31 - 1)
        n_steps = check_int(n_steps, "n_steps", minimum=1)
        top = self.rbms_[-1]
        check_memory(12.0 * n * max(r.n_visible + r.n_hidden for r in self.rbms_), f"sample(n={n})")
        check_steps(top.step, n_steps + 2, "n_steps", "the top RBM")
        check_steps(self._step, len(self.rbms_), "sample", "the DBN")
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
        H = np.ascontiguousarray(V[:, :self.layer_sizes[-2]])
        for k in reversed(range(len(self.rbms_) - 1)):
            WT, b = self._down(k)
            H = self._layer(H, WT, b, STREAM_VISIBLE, binary=True)[2]
        return H

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the whole stack (every RBM's full state, the untied fine-tuning weights,
        the DBN's Philox step and histories) to an .npz file, atomically."""
        self._write(path)

    def _write(self, path, fit: dict | None = None) -> None:
        rbm_meta, arrays = [], {}
        for k, rbm in enumerate(self.rbms_):
            m, a = rbm._state()
            rbm_meta.append(m)
            arrays.update({f"rbm{k}_{name}": v for name, v in a.items()})
        if self.untied:
            for k in range(len(self.rbms_) - 1):
                arrays[f"rec_W{k}"], arrays[f"rec_c{k}"] = self.rec_W_[k], self.rec_c_[k]
                arrays[f"gen_W{k}"], arrays[f"gen_b{k}"] = self.gen_W_[k], self.gen_b_[k]
        meta = {"layer_sizes": self.layer_sizes, "n_labels": self.n_labels,
                "propagate": self.propagate, "seed_": str(self.seed_), "step": self._step,
                "rbms": rbm_meta, "untied": self.untied,
                "fine_tune_history_": self.fine_tune_history_}
        if fit is not None:
            meta["fit"] = fit
        _checkpoint.write(path, "DBN", meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DBN":
        """Read a DBN written by :meth:`save` or a checkpoint of :meth:`fit` /
        :meth:`fine_tune`."""
        return cls._read(os.fspath(path))[0]

    @classmethod
    def _read(cls, path: str):
        meta, a = _checkpoint.read(path, "DBN")
        try:
            model = cls(meta["layer_sizes"], n_labels=meta["n_labels"],
                        propagate=meta["propagate"], seed=int(meta["seed_"]))
            if not isinstance(meta["rbms"], list) or len(meta["rbms"]) != len(model.rbms_):
                raise ValueError(f"rbms: expected {len(model.rbms_)} entries")
            for k, m in enumerate(meta["rbms"]):
                prefix = f"rbm{k}_"
                sub = {name[len(prefix):]: v for name, v in a.items() if name.startswith(prefix)}
                rbm = RBM._from_state(m, sub)
                want = model.rbms_[k]
                if (rbm.n_visible, rbm.n_hidden) != (want.n_visible, want.n_hidden):
                    raise ValueError(f"rbm {k} has shape {rbm.n_visible}x{rbm.n_hidden}, "
                                     f"expected {want.n_visible}x{want.n_hidden}")
                model.rbms_[k] = rbm
            if meta["untied"]:
                low = model.rbms_[:-1]
                model.rec_W_ = [_checkpoint.array(a, f"rec_W{k}", r._W.shape) for k, r in enumerate(low)]
                model.rec_c_ = [_checkpoint.array(a, f"rec_c{k}", r._c.shape) for k, r in enumerate(low)]
                model.gen_W_ = [_checkpoint.array(a, f"gen_W{k}", r._W.shape) for k, r in enumerate(low)]
                model.gen_b_ = [_checkpoint.array(a, f"gen_b{k}", r._b.shape) for k, r in enumerate(low)]
            model._step = check_int(meta["step"], "step", minimum=0, maximum=2**32 - 1)
            if not isinstance(meta["fine_tune_history_"], list):
                raise TypeError("fine_tune_history_ is not a list")
            model.fine_tune_history_ = list(meta["fine_tune_history_"])
            fit = meta.get("fit")
            if fit is not None:
                if fit.get("phase") == "fit":
                    targets = fit["targets"]
                    if (not isinstance(targets, list) or len(targets) != len(model.rbms_)
                            or any(not isinstance(t, int) or t < r.epochs_trained_
                                   for t, r in zip(targets, model.rbms_))):
                        raise ValueError(f"fit targets {targets!r}")
                    check_int(fit["step0"], "step0", minimum=0, maximum=model._step)
                elif fit.get("phase") == "fine_tune":
                    if (not isinstance(fit.get("target"), int)
                            or fit["target"] < len(model.fine_tune_history_)
                            or not isinstance(fit.get("settings"), dict)):
                        raise ValueError("fine_tune progress")
                else:
                    raise ValueError(f"fit phase {fit.get('phase')!r}")
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise _checkpoint.damaged(path, "DBN", exc) from None
        return model, fit
