"""The CUDA spin-chain and lattice kernels: the same checks as the CPU ones, against the
NumPy reference on the shared Philox stream and against the CPU kernels. Skipped without
a GPU (and CuPy)."""
import numpy as np
import pytest

import ebmfast as ef
from ebmfast import reference as ref

try:
    import cupy as cp
except ImportError:  # pragma: no cover - depends on the machine
    cp = None

# Skipped per test (not at import): tests/test_cuda_glue_emulated.py runs these bodies on
# the host emulator.
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not ef.cuda_available() or cp is None,
                                 reason="no CUDA device (or no CuPy)")]


@pytest.mark.parametrize("n", [1, 7, 33, 257])
@pytest.mark.parametrize("proposal", ["metropolis", "gibbs"])
@pytest.mark.parametrize("order", ["sequential", "random"])
def test_cuda_chains_match_cpu_and_reference(n, proposal, order):
    rng = np.random.default_rng(n)
    J = np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)
    h = rng.standard_normal(n) * 0.3
    kw = dict(num_reads=70, num_sweeps=6, beta_range=(0.3, 1.5), proposal=proposal, order=order,
              seed=9, initial_states=ef.ising.random_spins(9, 70, n))
    gpu = ef.sample_ising(h, J, device="cuda", **kw)
    cpu = ef.sample_ising(h, J, device="cpu", **kw)
    Sr, _ = ref.ising_sweeps(h.astype(np.float32), (J + J.T).astype(np.float32), kw["initial_states"],
                             gpu.info["beta_schedule"].astype(np.float32), gibbs=proposal == "gibbs",
                             seed=9, step=0, random_order=order == "random")
    assert np.mean(gpu.samples == Sr) >= 0.999
    assert np.mean(gpu.samples == cpu.samples) >= 0.999


def test_cuda_sparse_chains_match_cpu():
    rng = np.random.default_rng(1)
    n = 3000
    J = {(i, int(j)): float(rng.choice([-1, 1])) for i in range(n) for j in rng.choice(n, 3) if i != j}
    kw = dict(num_reads=100, num_sweeps=20, seed=4, initial_states=ef.ising.random_spins(4, 100, n))
    gpu = ef.sample_ising(np.zeros(n), J, device="cuda", **kw)
    cpu = ef.sample_ising(np.zeros(n), J, device="cpu", **kw)
    # +-1 couplings: the fields are exact on both devices, so the chains agree exactly.
    np.testing.assert_array_equal(gpu.samples, cpu.samples)
    np.testing.assert_allclose(gpu.energies, cpu.energies)


@pytest.mark.parametrize("L", [2, 6, 34, 64])
@pytest.mark.parametrize("proposal", ["metropolis", "gibbs"])
def test_cuda_lattice_matches_cpu(L, proposal):
    init = ef.ising.random_spins(3, 3, L * L).reshape(3, L, L)
    kw = dict(n_chains=3, seed=3, initial_states=init, proposal=proposal)
    g = ef.IsingLattice2D(L, h=0.1).sample(0.44, 10, device="cuda", **kw)
    c = ef.IsingLattice2D(L, h=0.1).sample(0.44, 10, device="cpu", **kw)
    np.testing.assert_array_equal(g.states, c.states)
    np.testing.assert_allclose(g.energy, c.energy)
    np.testing.assert_allclose(g.magnetization, c.magnetization)
