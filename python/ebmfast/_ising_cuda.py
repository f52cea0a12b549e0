"""CUDA glue of ``ising.py`` and ``hopfield.py``: device buffers through CuPy (its memory pool, its current
stream), raw pointers into ``_core``. Imported only when a run is placed on the GPU."""
from __future__ import annotations

import numpy as np

from . import _core

try:
    import cupy as cp
except ImportError:  # pragma: no cover - exercised only where CuPy is missing
    cp = None


def _require_cupy():
    if cp is None:
        raise RuntimeError("device='cuda' needs CuPy: pip install 'ebmfast[cuda]'")
    if not getattr(_core, "cuda_compiled", False):
        raise RuntimeError("this ebmfast was built without CUDA")


def _ptr(a) -> int:
    return 0 if a is None else int(a.data.ptr)


def _stream() -> int:
    return int(cp.cuda.get_current_stream().ptr)


def to_device(S: np.ndarray):
    _require_cupy()
    return cp.asarray(S)


def to_host(S) -> np.ndarray:
    return cp.asnumpy(S) if cp is not None and isinstance(S, cp.ndarray) else np.asarray(S)


def chain_runner(c, clamped, gibbs: bool, random_order: bool, seed: int):
    """run(S, betas, step, trace) on host spins S (chains, n) int8, updated in place; the
    chains live site-major on the device during the call."""
    _require_cupy()
    h = cp.asarray(c.h)
    J = None if c.dense is None else cp.asarray(c.dense)
    indptr = None if c.indptr is None else cp.asarray(c.indptr)
    indices = None if c.indices is None else cp.asarray(c.indices)
    data = None if c.data is None else cp.asarray(c.data)
    mask = None if clamped is None else cp.asarray(clamped)

    def run(S, betas, step, want_trace):
        chains, n = S.shape
        St = cp.ascontiguousarray(cp.asarray(S).T)
        F = cp.empty((n, chains), cp.float32)
        flips = cp.zeros(chains, cp.int64)
        trace = cp.empty((betas.size, chains), cp.float64) if want_trace else None
        b = cp.asarray(betas)
        _core.cuda_ising_chains(_ptr(h), _ptr(J), _ptr(indptr), _ptr(indices), _ptr(data), n,
                                _ptr(b), betas.size, gibbs, random_order, _ptr(mask), _ptr(St),
                                _ptr(F), chains, seed, step, 0, _ptr(flips), _ptr(trace), _stream())
        S[...] = cp.asnumpy(St.T)
        return cp.asnumpy(flips), (None if trace is None else cp.asnumpy(trace))
    return run


def lattice_runner(model, gibbs: bool, seed: int):
    """run(S, betas, step, trace) on device states S (chains, L, L) int8, in place."""
    _require_cupy()
    L = model.L

    def run(S, betas, step, want_trace):
        chains = S.shape[0]
        flips = cp.zeros(chains, cp.uint64)
        bonds = cp.zeros((betas.size, chains), cp.int64) if want_trace else None
        magnet = cp.zeros((betas.size, chains), cp.int64) if want_trace else None
        _core.cuda_lattice_sweeps(_ptr(S), chains, L, model.J, model.h,
                                  np.ascontiguousarray(betas, np.float32), gibbs, seed, step, 0,
                                  _ptr(flips), _ptr(bonds), _ptr(magnet), _stream())
        f = cp.asnumpy(flips).astype(np.int64)
        if not want_trace:
            return f, None, None
        b, m = cp.asnumpy(bonds).astype(np.float64), cp.asnumpy(magnet).astype(np.float64)
        N = float(L * L)
        return f, (-model.J * b - model.h * m) / N, m / N
    return run


def hopfield_recall(W: np.ndarray, b: np.ndarray, S: np.ndarray, max_sweeps: int,
                    random_order: bool, seed: int, step: int):
    """Async recall of host cues S (cues, n) int8 on the GPU; returns host (S, sweeps,
    converged) like ``_core.hopfield_recall`` (which updates S in place)."""
    _require_cupy()
    cues, n = S.shape
    Wd, bd = cp.asarray(W, cp.float32), cp.asarray(b, cp.float32)
    St = cp.ascontiguousarray(cp.asarray(S).T)
    F = cp.empty((n, cues), cp.float32)
    sweeps = cp.empty(cues, cp.int32)
    conv = cp.empty(cues, cp.uint8)
    _core.cuda_hopfield_recall(_ptr(Wd), _ptr(bd), _ptr(St), _ptr(F), n, cues, max_sweeps,
                               random_order, seed, step, _ptr(sweeps), _ptr(conv), _stream())
    return cp.asnumpy(St.T), cp.asnumpy(sweeps), cp.asnumpy(conv)
