"""The CUDA Hopfield recall kernel against the CPU kernel (same Philox stream for the random
order). Skipped without a GPU (and CuPy)."""
import numpy as np
import pytest

import ebmfast as ef

try:
    import cupy as cp
except ImportError:  # pragma: no cover - depends on the machine
    cp = None

# Skipped per test (not at import): tests/test_cuda_glue_emulated.py runs these bodies on
# the host emulator.
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not ef.cuda_available() or cp is None,
                                 reason="no CUDA device (or no CuPy)")]


@pytest.mark.parametrize("n", [1, 7, 33, 200])
@pytest.mark.parametrize("cues", [1, 17, 300])
@pytest.mark.parametrize("order", ["sequential", "random"])
def test_cuda_recall_matches_cpu(n, cues, order):
    rng = np.random.default_rng(n * 1000 + cues)
    P = np.where(rng.random((max(1, n // 20), n)) < 0.5, 1, -1).astype(np.int8)
    net = ef.Hopfield(n, seed=3).store(P)
    C = np.where(rng.random((cues, n)) < 0.5, 1, -1).astype(np.int8)
    a = net.recall(C, order=order, seed=5, device="cpu")
    b = net.recall(C, order=order, seed=5, device="cuda")
    assert np.mean(a.states == b.states) >= 0.999
    assert np.mean(a.sweeps == b.sweeps) >= 0.99


def test_cuda_sampling_matches_cpu():
    rng = np.random.default_rng(0)
    P = np.where(rng.random((3, 40)) < 0.5, 1, -1).astype(np.int8)
    net = ef.Hopfield(40, seed=1).store(P)
    C = np.where(rng.random((50, 40)) < 0.5, 1, -1).astype(np.int8)
    a = net.sample(C, temperature=0.8, n_sweeps=10, seed=2, device="cpu")
    b = net.sample(C, temperature=0.8, n_sweeps=10, seed=2, device="cuda")
    assert np.mean(a.states == b.states) >= 0.999
