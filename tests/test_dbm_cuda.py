"""The DBM on the GPU (device="cuda": the CUDA layer kernel through CuPy) against the NumPy
reference and the CPU model on the same Philox stream. Skipped without a GPU and CuPy."""
from __future__ import annotations

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import estimators as E, reference as R

HAVE_GPU = ef.cuda_available()
try:
    import cupy as cp
except ImportError:  # pragma: no cover - depends on the machine
    cp = None

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not HAVE_GPU or cp is None, reason="no CUDA device (or no CuPy)")]

SEED = 0x1234_5678_9ABC


def pair(sizes, scale=1.0, seed=0):
    """The same random DBM on the CPU and on the GPU."""
    rng = np.random.default_rng(seed)
    Ws = [(scale * rng.standard_normal((a, b))).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [(0.5 * scale * rng.standard_normal(n)).astype(np.float32) for n in sizes]
    out = []
    for device in ("cpu", "cuda"):
        d = ef.DBM(sizes, seed=SEED, pretrain=False, device=device)
        xp = cp if device == "cuda" else np
        d.W_ = [xp.asarray(W) for W in Ws]
        d.biases_ = [xp.asarray(b) for b in bs]
        d._refresh_transposes()
        out.append(d)
    return out


@pytest.mark.parametrize("sizes,rows", [([33, 31, 257], 65), ([7, 129, 3, 32], 17), ([784, 500, 1000], 100)])
def test_gpu_sweeps_match_reference_and_cpu(sizes, rows):
    cpu, gpu = pair(sizes, scale=3.0 / np.sqrt(max(sizes)))
    rng = np.random.default_rng(1)
    states = [(rng.random((rows, n)) < 0.4).astype(np.float32) for n in sizes]
    got = gpu.gibbs([cp.asarray(s) for s in states], 3)
    want = R.dbm_gibbs(cpu.W_, cpu.biases_, states, 3, SEED, 0)
    ours_cpu = cpu.gibbs(states, 3)
    for g, w, c in zip(got, want, ours_cpu):
        g = cp.asnumpy(g)
        assert np.mean(g == w) >= 0.999
        assert np.mean(g == c) >= 0.999


def test_gpu_mean_field_matches_cpu():
    cpu, gpu = pair([64, 40, 30], scale=0.3)
    X = (np.random.default_rng(2).random((50, 64)) < 0.3).astype(np.float32)
    a = cpu.mean_field(X, n_iter=100, tol=1e-6)
    b = gpu.mean_field(cp.asarray(X), n_iter=100, tol=1e-6)
    assert a.converged and b.converged
    for qa, qb in zip(a.q, b.q):
        np.testing.assert_allclose(cp.asnumpy(qb), qa, atol=1e-4)


def test_gpu_training_tracks_cpu_and_raises_likelihood():
    X = ef.datasets.bars_and_stripes(3)
    kw = dict(seed=11, epochs=100, batch_size=2, n_chains=32, learning_rate=0.05,
              pretrain_epochs=100, pretrain_learning_rate=0.1, learning_rate_decay=0.0)
    gpu = ef.DBM([9, 8, 6], device="cuda", **kw)
    before = E.exact_log_likelihood(gpu, cp.asarray(X)).mean()
    gpu.fit(cp.asarray(X))
    after = E.exact_log_likelihood(gpu, cp.asarray(X)).mean()
    assert after > before + 1.0


def test_gpu_model_refuses_host_arrays():
    _, gpu = pair([9, 8, 6])
    with pytest.raises(TypeError, match="CuPy"):
        gpu.mean_field(np.zeros((2, 9), np.float32))
