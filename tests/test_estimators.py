"""Exact log Z by enumeration (`ef.estimators`): against brute force over every joint state
for tiny RBMs, Boltzmann machines and Ising models (dimod's ExactSolver for the dimod
convention), and independence from the chunk size."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import estimators as E
from ebmfast.reference import logsumexp


def all_states(n, spins=False):
    S = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    return 2 * S - 1 if spins else S


def random_rbm(n_v, n_h, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    rbm = ef.RBM(n_v, n_h, seed=seed)
    rbm.W = (scale * rng.standard_normal((n_v, n_h))).astype(np.float32)
    rbm.b = (0.5 * rng.standard_normal(n_v)).astype(np.float32)
    rbm.c = (0.5 * rng.standard_normal(n_h)).astype(np.float32)
    return rbm


@pytest.mark.parametrize("n_v,n_h", [(5, 4), (3, 7), (6, 6)])
def test_rbm_log_partition_against_every_joint_state(n_v, n_h):
    rbm = random_rbm(n_v, n_h, n_v * 10 + n_h)
    X = all_states(n_v + n_h)
    V, H = X[:, :n_v], X[:, n_v:]
    W, b, c = (np.asarray(a, np.float64) for a in (rbm.W, rbm.b, rbm.c))
    neg_e = V @ b + H @ c + np.einsum("ri,ij,rj->r", V, W, H)
    assert E.exact_log_partition(rbm) == pytest.approx(logsumexp(neg_e), abs=1e-10)


def test_result_does_not_depend_on_chunking():
    rbm = random_rbm(30, 14, 1, scale=0.3)
    W, b, c = (np.asarray(a, np.float64) for a in (rbm.W, rbm.b, rbm.c))

    def scores(H):
        return H @ c + np.logaddexp(0.0, H @ W.T + b).sum(1)
    ref = E._log_sum_exp_chunks(scores, 14, chunk=2**14)
    for chunk in (1, 7, 2**10, 2**13 + 5, 2**20):
        assert E._log_sum_exp_chunks(scores, 14, chunk=chunk) == pytest.approx(ref, rel=1e-13)
    assert E.exact_log_partition(rbm) == pytest.approx(ref, rel=1e-13)


def test_boltzmann_machine_log_partition():
    bm = ef.BoltzmannMachine(6, n_hidden=4, seed=0)
    rng = np.random.default_rng(3)
    W = rng.standard_normal((10, 10))
    bm.W = np.triu(W, 1) + np.triu(W, 1).T
    bm.b = rng.standard_normal(10)
    Y = all_states(10)
    assert E.exact_log_partition(bm) == pytest.approx(logsumexp(-bm.energy(Y)), abs=1e-10)
    assert E.exact_log_partition(bm) == pytest.approx(bm.log_partition_exact(), abs=1e-10)
    assert E.exact_log_partition(bm, beta=0.5) == pytest.approx(logsumexp(-0.5 * bm.energy(Y)),
                                                               abs=1e-10)


@pytest.mark.parametrize("L", [2, 4])
def test_lattice_log_partition_against_its_energy(L):
    model = ef.IsingLattice2D(L, J=0.7, h=0.2)
    S = all_states(L * L, spins=True).reshape(-1, L, L).astype(np.int8)
    e = model.energy(S) * L * L  # energy per spin -> total
    for beta in (0.3, 1.0):
        assert E.exact_log_partition(model, beta=beta) == pytest.approx(logsumexp(-beta * e),
                                                                       abs=1e-9)


def test_ising_log_partition_matches_dimod_exact_solver():
    dimod = pytest.importorskip("dimod")
    rng = np.random.default_rng(5)
    n = 9
    h = rng.standard_normal(n)
    J = {(i, j): float(rng.standard_normal()) for i in range(n) for j in range(i + 1, n)
         if rng.random() < 0.5}
    ss = dimod.ExactSolver().sample_ising(dict(enumerate(h)), J)
    for beta in (0.5, 2.0):
        want = logsumexp(-beta * ss.record.energy)
        assert E.exact_log_partition_ising(h, J, beta=beta) == pytest.approx(want, abs=1e-9)
    # dense and scipy.sparse couplings give the same value
    D = np.zeros((n, n))
    for (i, j), v in J.items():
        D[i, j] = v
    import scipy.sparse as sp
    a = E.exact_log_partition_ising(h, D)
    assert a == pytest.approx(E.exact_log_partition_ising(h, J), abs=1e-12)
    assert a == pytest.approx(E.exact_log_partition_ising(h, sp.csr_matrix(D + D.T)), abs=1e-12)


def test_too_large_or_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="2\\*\\*26"):
        E.exact_log_partition_ising(np.zeros(26), {})
    with pytest.raises(ValueError, match="beta"):
        E.exact_log_partition(random_rbm(3, 2, 0), beta=0.5)
    with pytest.raises(ValueError, match="beta"):
        E.exact_log_partition_ising(np.zeros(3), {}, beta=np.nan)


@pytest.mark.parametrize("n_v,n_h,scale", [(784, 12, 0.05), (100, 14, 1.0), (7, 13, 2.0), (20, 3, 1.0)])
def test_compiled_enumeration_matches_float64(n_v, n_h, scale):
    rng = np.random.default_rng(n_v + n_h)
    W = scale * rng.standard_normal((n_v, n_h))
    b, c = 0.5 * rng.standard_normal(n_v), 0.5 * rng.standard_normal(n_h)
    ref = E._log_sum_exp_chunks(lambda H: H @ c + np.logaddexp(0.0, H @ W.T + b).sum(1), n_h)
    got = ef._core.enumerate_log_partition(np.ascontiguousarray(W.T, np.float32), c,
                                           b.astype(np.float32))
    # float32 fields and softplus products (relative error ~1e-7 per term), float64 sums:
    # measured |error| / |log Z| <= 3e-8; 1e-6 leaves room and still sees a changed weight
    assert got == pytest.approx(ref, rel=1e-6, abs=1e-6)
    W2 = W.copy()
    W2[0, 0] += 0.05
    other = ef._core.enumerate_log_partition(np.ascontiguousarray(W2.T, np.float32), c,
                                             b.astype(np.float32))
    assert abs(other - ref) > 1e-6 * abs(ref) + 1e-6


def test_compiled_enumeration_is_thread_independent_and_used_for_large_models():
    rbm = random_rbm(784, 15, 3, scale=0.05)
    n = ef.get_num_threads()
    try:
        ef.set_num_threads(1)
        one = E.exact_log_partition(rbm)
        ef.set_num_threads(2)
        two = E.exact_log_partition(rbm)
    finally:
        ef.set_num_threads(n)
    assert one == two
    W = np.asarray(rbm.W, np.float64)
    ref = E._log_sum_exp_chunks(
        lambda H: H @ np.asarray(rbm.c, np.float64)
        + np.logaddexp(0.0, H @ W.T + np.asarray(rbm.b, np.float64)).sum(1), 15)
    assert one == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match="rows"):
        ef._core.enumerate_log_partition(np.zeros((0, 3), np.float32), np.zeros(0), np.zeros(3, np.float32))


def test_bench_estimators_smoke(tmp_path):
    from ebmfast.cli import main
    assert main(["bench", "--suite", "estimators", "--smoke", "--out", str(tmp_path)]) == 0
    assert list(tmp_path.glob("estimators_cpu_*.json"))


def test_pseudo_likelihood_against_the_enumerated_distribution():
    """score_samples = sum_i log p(v_i | v_-i), each conditional p(v) / (p(v) + p(v with bit
    i flipped)) read off the exactly enumerated p(v) of a 7-visible RBM."""
    rbm = random_rbm(7, 5, 21)
    V = all_states(7)
    W, b, c = (np.asarray(a, np.float64) for a in (rbm.W, rbm.b, rbm.c))
    log_p = V @ b + np.logaddexp(0.0, V @ W + c).sum(1)  # unnormalised log p(v)
    index = (V @ (1 << np.arange(7))).astype(int)
    lp = np.empty(2**7)
    lp[index] = log_p
    want = np.zeros(len(V))
    for i in range(7):
        flipped = index ^ (1 << i)
        want += lp[index] - np.logaddexp(lp[index], lp[flipped])
    got = rbm.score_samples(V.astype(np.float32))
    # float32 free energies of 5 hidden units: a few 1e-6 per term, 7 terms
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.abs(got - want).max() < 1e-4 < np.abs(np.roll(want, 1) - want).max()
