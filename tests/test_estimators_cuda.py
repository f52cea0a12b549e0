"""Estimators on the GPU: exact log Z enumerated on the device and AIS chains on the CUDA
layer kernel, against the CPU on the same Philox stream. Skipped without a GPU and CuPy."""
from __future__ import annotations

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import estimators as E
from test_estimators import random_rbm

HAVE_GPU = ef.cuda_available()
try:
    import cupy as cp
except ImportError:  # pragma: no cover - depends on the machine
    cp = None

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not HAVE_GPU or cp is None, reason="no CUDA device (or no CuPy)")]


@pytest.mark.parametrize("n_v,n_h", [(30, 12), (9, 20), (784, 16)])
def test_gpu_exact_log_partition_matches_cpu(n_v, n_h):
    rbm = random_rbm(n_v, n_h, 1, scale=0.05 if n_v == 784 else 0.5)
    cpu = E.exact_log_partition(rbm)
    gpu = E.exact_log_partition(rbm, device="cuda")
    assert gpu == pytest.approx(cpu, rel=1e-5)


def test_gpu_ais_matches_cpu_and_exact():
    rbm = random_rbm(12, 10, 2, scale=0.5)
    betas = np.linspace(0.0, 1.0, 1000)
    a = E.ais(rbm, n_runs=200, betas=betas, seed=3)
    g = E.ais(rbm, n_runs=200, betas=betas, seed=3, device="cuda")
    # the same uniforms drive both: the weights agree up to samples flipped by rounding
    assert abs(a.log_z - g.log_z) < 1e-2
    assert abs(g.log_z - E.exact_log_partition(rbm)) < 5 * g.se + 1e-3
    samples = rbm.sample(200, n_steps=1000)
    r = E.ais(rbm, n_runs=200, betas=betas, seed=4, reverse=True, init_states=samples,
              device="cuda")
    assert abs(r.log_z - E.exact_log_partition(rbm)) < 5 * r.se + 1e-3


def test_gpu_dbm_ais_matches_exact():
    rng = np.random.default_rng(5)
    d = ef.DBM([10, 8, 6], seed=5, pretrain=False, device="cuda")
    d.W_ = [cp.asarray((0.6 * rng.standard_normal(s)).astype(np.float32)) for s in ((10, 8), (8, 6))]
    d.biases_ = [cp.asarray((0.5 * rng.standard_normal(n)).astype(np.float32)) for n in (10, 8, 6)]
    d._refresh_transposes()
    r = E.ais(d, n_runs=200, betas=np.linspace(0.0, 1.0, 2000), seed=6)
    assert abs(r.log_z - E.exact_log_partition(d)) < 5 * r.se + 1e-3
