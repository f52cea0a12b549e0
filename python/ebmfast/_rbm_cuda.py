"""GPU operations of :class:`ebmfast.RBM` (``device="cuda"``): thin glue between the model's
CuPy arrays and the hand-written kernels of csrc/cuda/rbm.cu (``_core.cuda_rbm_*``).

Every buffer, scratch included, comes from CuPy's memory pool; every launch goes on CuPy's
current stream, and nothing here synchronises except where a result must reach the host
(the divergence check of an update that is not provably finite). The NumPy spec of each
operation is in ``reference.py`` (gibbs, cd_gradient + momentum_update, free_energy,
pseudo_log_likelihood); the CPU kernels share its Philox streams and steps, so the devices
agree state for state up to float rounding.
"""
from __future__ import annotations

from . import _core
from ._layer_cuda import _require_cupy, cp, layer_update, precision_code
from .reference import STREAM_HIDDEN

#: A |value| whose float32 bits are at least this is inf or NaN (the kernels' stats).
NON_FINITE_BITS = 0x7F800000


def stream_ptr() -> int:
    return int(cp.cuda.get_current_stream().ptr)


def ptr(a) -> int:
    return 0 if a is None or a.size == 0 else int(a.data.ptr)


class Scratch:
    """Device buffers of the update, kept while the shapes stay the same (a training loop
    reuses them; CuPy's pool recycles them when they are dropped)."""

    def __init__(self):
        self._bufs: dict = {}

    def get(self, name: str, shape: tuple, dtype=None):
        dtype = cp.float32 if dtype is None else dtype
        buf = self._bufs.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = cp.empty(shape, dtype)
            self._bufs[name] = buf
        return buf


def gibbs(W, b, c, V, n_steps: int, beta: float, seed: int, step: int, precision: str,
          scratch: Scratch) -> None:
    """n_steps block-Gibbs steps of V (rows, n_v) in place (reference.gibbs); b, c as given."""
    _require_cupy()
    rows = V.shape[0]
    n_v, n_h = W.shape
    H = scratch.get("gibbs_H", (rows, n_h))
    _core.cuda_rbm_gibbs(ptr(W), ptr(b), ptr(c), n_v, n_h, float(beta), ptr(V), ptr(H), rows,
                         int(n_steps), seed, step, 0, stream_ptr(), precision_code(precision))


def cd_update(params, velocities, out_params, out_velocities, V0, chain, k: int, *,
              learning_rate: float, momentum: float, weight_decay: float, seed: int, step: int,
              precision: str, scratch: Scratch, stats=None, recon=None,
              gradient_only: bool = False) -> None:
    """One CD-k (chain None) or PCD-k update on the GPU (reference.cd_gradient, then
    reference.momentum_update; steps step .. step + k - 1).

    params = (W, b, c) and velocities = (vW, vb, vc) are read; the new ones go to
    out_params / out_velocities (which may be the same arrays: in place). With
    ``gradient_only``, out_params receives (dW, db, dc) and nothing else is written.
    stats: cupy uint32 (2,) receiving the float32 bits of max |parameter| and max
    |velocity| written; recon: cupy float64 (1,) to which the batch's summed squared
    mean-field reconstruction error is added (None: not computed).
    """
    _require_cupy()
    W, b, c = params
    n_v, n_h = W.shape
    B0 = V0.shape[0]
    Bc = 0 if chain is None else chain.shape[0]
    rows = max(B0, Bc)
    P0 = scratch.get("P0", (B0, n_h))
    H = scratch.get("H", (rows, n_h))
    Vk = scratch.get("Vk", (B0, n_v)) if chain is None else None
    Pk = scratch.get("Pk", (Bc or B0, n_h))
    Pv = scratch.get("Pv", (B0, n_v)) if recon is not None else None
    vW, vb, vc = velocities if velocities is not None else (None, None, None)
    oW, ob, oc = out_params
    ovW, ovb, ovc = out_velocities if out_velocities is not None else (None, None, None)
    _core.cuda_rbm_cd_update(
        ptr(W), ptr(b), ptr(c), n_v, n_h, ptr(V0), B0, ptr(chain), Bc, ptr(P0), ptr(H), ptr(Vk),
        ptr(Pk), ptr(Pv), ptr(vW), ptr(vb), ptr(vc), ptr(oW), ptr(ob), ptr(oc), ptr(ovW),
        ptr(ovb), ptr(ovc), float(learning_rate), float(momentum), float(weight_decay),
        bool(gradient_only), ptr(stats), ptr(recon), int(k), seed, step, stream_ptr(),
        precision_code(precision))


def hidden_probabilities(W, c, X, precision: str):
    """p(h = 1 | v) for the rows of X: (rows, n_h) float32 on the GPU."""
    _, p, _ = layer_update(X, W, c, 1.0, stream=STREAM_HIDDEN, seed=0, step=0, want_prob=True,
                           precision=precision)
    return p


def _scores(W, b, c, V, pseudo_log_likelihood: bool):
    _require_cupy()
    rows = V.shape[0]
    n_v, n_h = W.shape
    Z = cp.empty((rows, n_h), cp.float32)
    out = cp.empty(rows, cp.float64)
    _core.cuda_rbm_free_energy(ptr(W), ptr(b), ptr(c), n_v, n_h, ptr(V), rows, ptr(Z), ptr(out),
                               pseudo_log_likelihood, stream_ptr())
    return out


def free_energy(W, b, c, V):
    """F(v) per row of V (rows,) float64 on the GPU (exact fp32 products)."""
    return _scores(W, b, c, V, False)


def pseudo_log_likelihood(W, b, c, V):
    """sum_i log p(v_i | v_-i) per binary row of V (rows,) float64 on the GPU."""
    return _scores(W, b, c, V, True)


def bits_to_float(bits: int) -> float:
    """The float32 whose bits are ``bits`` (a kernel stat), as a Python float."""
    import numpy as np
    return float(np.array([bits], np.uint32).view(np.float32)[0])
