"""Memory: repeated kernel calls do not grow the resident set (scratch buffers are reused,
nothing leaks per call), and requests larger than any memory fail with MemoryError or a
ValueError naming the size - never a crash."""
from __future__ import annotations

import gc
import os
import sys

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import _core

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/statm")

_CALLS = 10_000
_WARMUP = 500
_BOUND_MB = 5.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _entry_points():
    rng = np.random.default_rng(0)
    X = (rng.random((8, 20)) < 0.4).astype(np.float32)
    rbm = ef.RBM(20, 12, seed=1, batch_size=8)
    W = rng.standard_normal((20, 12)).astype(np.float32)
    c = np.zeros(12, np.float32)
    J = np.triu(rng.standard_normal((10, 10)), 1)
    h = rng.standard_normal(10)
    lat = ef.IsingLattice2D(8)
    E = ef.energies.Gaussian(np.zeros(3))
    x0 = np.zeros((4, 3), np.float32)
    hop = ef.Hopfield(30, seed=1)
    hop.store(rng.integers(0, 2, (3, 30)) * 2 - 1)
    cues = rng.integers(0, 2, (5, 30)) * 2 - 1
    dbm = ef.DBM([12, 8, 6], seed=1)
    states = [(rng.random((4, n)) < 0.5).astype(np.float32) for n in (12, 8, 6)]
    return {
        "rbm.gibbs": lambda: rbm.gibbs(X, 2),
        "rbm.transform": lambda: rbm.transform(X),
        "rbm.partial_fit": lambda: rbm.partial_fit(X),
        "rbm.free_energy": lambda: rbm.free_energy(X),
        "rbm.score_samples": lambda: rbm.score_samples(X),
        "_core.layer_update": lambda: _core.layer_update(X, W, c, 1.0, True, want_prob=True,
                                                         want_sample=True, seed=1, step=2),
        "sample_ising": lambda: ef.sample_ising(h, J, num_reads=4, num_sweeps=5, beta_range=1.0,
                                                seed=1),
        "lattice.sample": lambda: lat.sample(0.4, 3, n_chains=2, seed=1),
        "metropolis": lambda: ef.metropolis(E, x0, 5, 0.5, seed=1),
        "hopfield.recall": lambda: hop.recall(cues, order="random"),
        "dbm.gibbs": lambda: dbm.gibbs(states, 2),
    }


def test_no_resident_growth_over_repeated_calls():
    grown = {}
    for name, call in _entry_points().items():
        for _ in range(_WARMUP):
            call()
        gc.collect()
        before = _rss_mb()
        for _ in range(_CALLS):
            call()
        gc.collect()
        grown[name] = _rss_mb() - before
    bad = {k: round(v, 2) for k, v in grown.items() if v >= _BOUND_MB}
    assert not bad, f"resident memory grew (MB) over {_CALLS} calls: {bad}"


# --------------------------------------------------------------------------- too large

@pytest.mark.parametrize("make", [
    lambda: ef.RBM(10**6, 10**6),                 # 4 TB of weights
    lambda: ef.RBM(2**28, 2**28),                 # beyond any machine (checked up front)
    lambda: ef.Hopfield(2**24),                   # 1 PB of weights
    lambda: ef.DBM([10**6, 10**6, 10]),
    lambda: ef.BoltzmannMachine(2**20, 2**20),
    lambda: _core.philox_uniforms(0, 0, 0, 2**20, 2**20),   # 4 TB through pybind11
    lambda: _core.layer_update(np.zeros((2**20, 1), np.float32), np.zeros((1, 2**20), np.float32),
                               np.zeros(2**20, np.float32), 1.0, True, want_prob=True),
], ids=["rbm", "rbm-huge", "hopfield", "dbm", "bm", "philox", "layer_update"])
def test_requests_beyond_memory_raise(make):
    with pytest.raises((MemoryError, ValueError)) as info:
        make()
    if info.type is ValueError:  # a ValueError must say which size is the problem
        assert any(ch.isdigit() for ch in str(info.value)), str(info.value)


def test_spin_chain_requests_beyond_the_limit_name_the_size():
    with pytest.raises(ValueError, match=r"num_reads \* n = \d+"):
        ef.sample_ising(np.zeros(2**20), {}, num_reads=2**12, num_sweeps=1)
    with pytest.raises(ValueError, match=r"n_chains \* L \* L = \d+"):
        ef.IsingLattice2D(2**10).sample(0.5, 1, n_chains=2**12)
