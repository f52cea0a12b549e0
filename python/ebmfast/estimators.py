"""Estimators of model quality. This issue provides exact log Z by enumeration for RBMs;
AIS and the others come with the estimators issue."""
from __future__ import annotations

import numpy as np

_MAX_EXACT_BITS = 25
_CHUNK = 1 << 14


def _log_sum_exp_chunks(scores_of, n_bits: int) -> float:
    """log sum_s exp(scores_of(S)) over all 2**n_bits binary rows S, in chunks."""
    total = -np.inf
    shifts = np.arange(n_bits, dtype=np.int64)
    for start in range(0, 2**n_bits, _CHUNK):
        r = np.arange(start, min(start + _CHUNK, 2**n_bits), dtype=np.int64)[:, None]
        S = ((r >> shifts) & 1).astype(np.float64)
        s = scores_of(S)
        m = max(total, float(s.max()))
        total = m + np.log(np.exp(total - m) + np.exp(s - m).sum())
    return float(total)


def exact_log_partition(model, max_bits: int = _MAX_EXACT_BITS) -> float:
    """log Z of an RBM by enumerating its smaller layer in float64:
    log Z = log sum_h exp(c.h + sum_i softplus(b_i + (W h)_i)) (or the same over v)."""
    W = np.asarray(model.W, np.float64)
    b = np.asarray(model.b, np.float64)
    c = np.asarray(model.c, np.float64)
    n_v, n_h = W.shape
    n = min(n_v, n_h)
    if n > max_bits:
        raise ValueError(f"exact log Z needs 2**{n} terms (min(n_visible, n_hidden) = {n} > "
                         f"{max_bits}); use AIS for models this large")
    if n_h <= n_v:
        return _log_sum_exp_chunks(lambda H: H @ c + np.logaddexp(0.0, H @ W.T + b).sum(1), n_h)
    return _log_sum_exp_chunks(lambda V: V @ b + np.logaddexp(0.0, V @ W + c).sum(1), n_v)
