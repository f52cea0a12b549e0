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
