"""Gaussian-Bernoulli RBM: sampled moments against the exact mixture, training, divergence,
bad input."""
import itertools

import numpy as np
import pytest

import ebmfast as ef


def tiny(seed=0):
    rng = np.random.default_rng(seed)
    m = ef.GaussianRBM(3, 3, sigma=[0.5, 1.0, 1.5], seed=seed)
    m.W = rng.standard_normal((3, 3)) * 0.7
    m.b = rng.standard_normal(3)
    m.c = rng.standard_normal(3) * 0.5
    return m


def exact_moments(m):
    """p(v) is a mixture over h of Normal(b + W h, diag sigma^2) with weights
    p(h) ∝ exp(c.h + sum_i ((b_i + (W h)_i)^2 - b_i^2) / (2 sigma_i^2))."""
    H = np.array(list(itertools.product([0, 1], repeat=m.n_hidden)), float)
    M = m.b + H @ m.W.T
    logp = H @ m.c + ((M**2 - m.b**2) / (2 * m.sigma**2)).sum(axis=1)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    mean = p @ M
    second = np.diag(m.sigma**2) + (M * p[:, None]).T @ M
    return mean, second - np.outer(mean, mean)


def test_sampled_moments_match_the_exact_mixture():
    m = tiny()
    V = m.sample(20000, n_steps=200)
    mean, cov = exact_moments(m)
    # 20000 independent chains: 5 standard errors per coordinate (false failure ~2e-6 each)
    se = np.sqrt(np.diag(cov) / V.shape[0])
    assert np.all(np.abs(V.mean(axis=0) - mean) < 5 * se), (V.mean(axis=0), mean)
    np.testing.assert_allclose(np.cov(V.T), cov, atol=5 * np.sqrt(2 / V.shape[0]) * np.diag(cov).max())


def test_free_energy_is_the_marginal():
    m = tiny(1)
    # log p(v) = -F(v) - log Z: differences of F between points equal differences of the
    # exact log density of the mixture
    H = np.array(list(itertools.product([0, 1], repeat=3)), float)
    def log_unnorm(v):
        e = ((v - m.b) ** 2 / (2 * m.sigma**2)).sum() - H @ m.c - (v / m.sigma**2) @ m.W @ H.T
        return np.log(np.exp(-e).sum())
    V = np.random.default_rng(2).standard_normal((5, 3))
    F = m.free_energy(V)
    exact = np.array([log_unnorm(v) for v in V])
    np.testing.assert_allclose(-(F - F[0]), exact - exact[0], atol=1e-9)


def test_training_reduces_reconstruction_error():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((3, 8)) * 3
    X = centres[rng.integers(0, 3, 600)] + 0.3 * rng.standard_normal((600, 8))
    X = (X - X.mean(0)) / X.std(0)  # standardised, as Gaussian RBMs want
    m = ef.GaussianRBM(8, 6, learning_rate=0.05, momentum=0.5, batch_size=50, epochs=30, seed=1).fit(X)
    err = [e["recon_error"] for e in m.history_]
    # untrained: ~8 (the total variance); three clusters 6 hidden units can code: ~1 measured
    assert err[0] > 7 and err[-1] < 0.4 * err[0]
    np.testing.assert_allclose(m.sigma, np.maximum(X.std(axis=0), 1e-3))
    a = ef.GaussianRBM(8, 6, epochs=2, seed=4).fit(X)
    b = ef.GaussianRBM(8, 6, epochs=2, seed=4).fit(X)
    np.testing.assert_array_equal(a.W, b.W)


def test_divergence_is_a_clear_error():
    X = np.random.default_rng(0).standard_normal((200, 5)) * 100
    m = ef.GaussianRBM(5, 5, sigma=0.01, learning_rate=10.0, epochs=50, seed=0)
    with pytest.raises(FloatingPointError, match="epoch"):
        m.fit(X)
    assert np.isfinite(m.W).all()


@pytest.mark.parametrize("call,exc", [
    (lambda: ef.GaussianRBM(0, 3), ValueError),
    (lambda: ef.GaussianRBM(3, 3, sigma=-1.0), ValueError),
    (lambda: ef.GaussianRBM(3, 3, sigma="std"), ValueError),
    (lambda: ef.GaussianRBM(3, 3, method="cd2"), ValueError),
    (lambda: ef.GaussianRBM(3, 3).fit(np.full((4, 3), np.nan)), ValueError),
    (lambda: ef.GaussianRBM(3, 3).fit(np.ones((4, 2))), ValueError),
    (lambda: ef.GaussianRBM(3, 3).sample(2), ValueError),
])
def test_bad_input(call, exc):
    with pytest.raises(exc):
        call()


def random_gaussian_rbm(n_v, n_h, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    g = ef.GaussianRBM(n_v, n_h, sigma=rng.uniform(0.5, 1.5, n_v), seed=seed)
    g.W = scale * rng.standard_normal((n_v, n_h))
    g.b = rng.standard_normal(n_v)
    g.c = 0.5 * rng.standard_normal(n_h)
    return g


def test_exact_log_partition_against_numerical_integration():
    # one visible unit: Z = sum_h exp(c.h) int exp(-(v-b)^2/(2s^2) + v (W h)/s^2) dv
    g = random_gaussian_rbm(1, 3, 0)
    v = np.linspace(-30, 30, 200_001)
    H = np.array([[(k >> j) & 1 for j in range(3)] for k in range(8)], float)
    s2 = g.sigma[0] ** 2
    dens = sum(np.exp(h @ g.c - (v - g.b[0]) ** 2 / (2 * s2) + v * (g.W[0] @ h) / s2) for h in H)
    want = np.log(np.trapezoid(dens, v))
    assert g.log_partition() == pytest.approx(want, abs=1e-6)
    assert ef.estimators.exact_log_partition(g) == g.log_partition()


@pytest.mark.parametrize("seed", [0, 1])
def test_ais_forward_and_reverse_match_exact(seed):
    from ebmfast.estimators import ais
    g = random_gaussian_rbm(6, 8, seed)
    exact = g.log_partition()
    betas = np.linspace(0.0, 1.0, 2000)
    fwd = ais(g, n_runs=200, betas=betas, seed=seed)
    rev = ais(g, n_runs=200, betas=betas, seed=seed + 5, reverse=True,
              init_states=g.sample(200, n_steps=1000))
    # 5 se: a 1e-6 two-sided Gaussian tail per check
    for r in (fwd, rev):
        assert r.se < 0.05
        assert abs(r.log_z - exact) < 5 * r.se + 1e-3, (r.log_z, exact, r.se)
    ll = g.log_likelihood(g.sample(5, n_steps=50), log_z=fwd.log_z)
    assert np.all(np.isfinite(ll))


def test_learned_sigma_recovers_the_data_scale():
    rng = np.random.default_rng(0)
    true_sigma = np.array([0.5, 2.0, 1.0])
    X = rng.normal([1.0, -2.0, 0.0], true_sigma, size=(4000, 3))
    g = ef.GaussianRBM(3, 2, sigma=1.0, learn_sigma=True, learning_rate=0.01, momentum=0.5,
                       batch_size=100, epochs=40, seed=0).fit(X)
    # independent Gaussian data: the weights stay small and sigma must move to the data's
    # standard deviation (from 1.0 for every unit)
    np.testing.assert_allclose(g.sigma, true_sigma, rtol=0.1)
    fixed = ef.GaussianRBM(3, 2, sigma=1.0, learning_rate=0.01, epochs=2, seed=0).fit(X)
    assert np.array_equal(fixed.sigma, np.ones(3))
    with pytest.raises(TypeError, match="learn_sigma"):
        ef.GaussianRBM(3, 2, learn_sigma="yes")


def test_training_on_a_2d_mixture_recovers_the_modes():
    """Four Gaussian modes at (+-2, +-2), width 0.5 (= the fixed sigma). A Gaussian RBM is
    itself a mixture: one Gaussian N(b + W h, sigma^2) per hidden state h, with weight
    p(h) ∝ exp(c.h + sum_i ((b + W h)_i^2 - b_i^2) / (2 sigma_i^2)) (exact, 2^n_h states).
    Training must put every data mode under a component holding real mass."""
    import itertools
    rng = np.random.default_rng(0)
    centers = np.array([[-2, -2], [2, -2], [-2, 2], [2, 2]], float)
    X = centers[rng.integers(0, 4, 4000)] + 0.5 * rng.standard_normal((4000, 2))

    def mode_masses(g):
        H = np.array(list(itertools.product([0, 1], repeat=g.n_hidden)), float)
        M = g.b + H @ g.W.T
        logp = H @ g.c + ((M ** 2 - g.b ** 2) / (2 * g.sigma ** 2)).sum(1)
        p = np.exp(logp - logp.max())
        p /= p.sum()
        d = np.linalg.norm(M[:, None, :] - centers[None], axis=2)
        return np.array([p[(d.argmin(1) == k) & (d.min(1) < 0.75)].sum() for k in range(4)])

    g = ef.GaussianRBM(2, 2, sigma=0.5, learning_rate=0.05, momentum=0.5, batch_size=50,
                       epochs=50, seed=1)
    g.sigma = np.full(2, 0.5)
    g.b = X.mean(axis=0)
    assert mode_masses(g).min() == 0.0  # untrained: one component at the data mean
    g.fit(X)
    mass = mode_masses(g)
    assert mass.min() > 0.05 and mass.sum() > 0.9, mass
