"""ebmfast.diagnostics on series with known answers.

* AR(1) x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t has rho(t) = phi^t and integrated
  autocorrelation time tau = (1 + phi) / (1 - phi). Sokal's windowed estimator has
  relative standard deviation sqrt(2 (2M + 1) / N) for window M (Sokal 1997, eq. 3.19);
  averaged over m chains it shrinks by sqrt(m). Checks are at 5 of those standard
  deviations plus the window's truncation bias 2 phi^(M+1) / (1 - phi) (< 1e-3 here): a
  two-sided normal tail of 5.7e-7 per check.
* ESS of m AR(1) chains is N m / tau, with the same relative error.
* split-R-hat of iid N(0, 1) chains: with M = 2m half-chains of n draws,
  R^2 - 1 ~ (chi2_{M-1} / (M - 1) - 1) / n, so R - 1 < (q - 1) / (2 n) with q the
  1 - 1e-6 quantile of chi2_{M-1} / (M - 1) (false-failure rate 1e-6). Chains with
  shifted means give R-hat ~ sqrt(1 + var(shift)) >> 1.
Seeds are fixed.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ebmfast import diagnostics as D

K = 5.0


def ar1(phi: float, n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, m)) * np.sqrt(1 - phi**2)
    x = np.empty((n, m))
    x[0] = rng.normal(size=m)  # stationary start
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_autocorrelation_of_ar1():
    phi, n, m = 0.6, 20000, 8
    x = ar1(phi, n, m, 0)
    rho = D.autocorrelation(x, axis=0).mean(axis=1)
    # var(rho_hat(t)) ~ (1 + phi^2) / (1 - phi^2) / N (Bartlett) for small t, over m chains
    se = np.sqrt((1 + phi**2) / (1 - phi**2) / (n * m))
    for t in range(6):
        assert abs(rho[t] - phi**t) <= K * se + 1.0 / n, (t, rho[t])
    # axis argument: same along axis=1 of the transpose
    np.testing.assert_allclose(D.autocorrelation(x.T, axis=1), D.autocorrelation(x, axis=0).T)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.8, 0.9])
@pytest.mark.parametrize("method", ["sokal", "geyer"])
def test_integrated_autocorr_time_ar1(phi, method):
    n, m = 20000, 8
    x = ar1(phi, n, m, int(phi * 100))
    tau_true = (1 + phi) / (1 - phi)
    tau = D.integrated_autocorr_time(x, method=method)
    assert tau.shape == (m,)
    M = 5 * tau_true  # Sokal's window; Geyer's sequence stops at a comparable lag
    rel_sd = np.sqrt(2 * (2 * M + 1) / n) / np.sqrt(m)
    bias = 2 * phi ** (M + 1) / (1 - phi) / tau_true
    assert abs(tau.mean() / tau_true - 1) <= K * rel_sd + bias, (tau.mean(), tau_true)


def test_integrated_autocorr_time_can_fail():
    """Independent draws are not mistaken for the phi = 0.5 chain (tau 1 vs 3)."""
    tau = D.integrated_autocorr_time(ar1(0.0, 20000, 8, 1))
    assert abs(tau.mean() - 3.0) > 1.0


@pytest.mark.parametrize("phi", [0.0, 0.7])
def test_effective_sample_size(phi):
    n, m = 10000, 8
    x = ar1(phi, n, m, 5)
    tau_true = (1 + phi) / (1 - phi)
    ess = D.effective_sample_size(x)
    rel_sd = np.sqrt(2 * (2 * 5 * tau_true + 1) / n) / np.sqrt(m)
    assert abs(ess / (n * m / tau_true) - 1) <= K * rel_sd, ess
    # trailing axes are separate quantities
    both = D.effective_sample_size(np.stack([x, 2 * x + 1], axis=2))
    assert both.shape == (2,)
    np.testing.assert_allclose(both[0], both[1], rtol=1e-9)


def test_split_rhat_iid_vs_shifted():
    n, m = 1000, 4
    rng = np.random.default_rng(9)
    x = rng.normal(size=(n, m))
    half = n // 2
    M = 2 * m
    q = stats.chi2.ppf(1 - 1e-6, M - 1) / (M - 1)
    bound = 1 + (q - 1) / (2 * half)
    for rank in (False, True):
        r = D.split_rhat(x, rank_normalize=rank)
        assert r < bound, (rank, r, bound)
        shifted = D.split_rhat(x + np.arange(m) * 2.0, rank_normalize=rank)
        assert shifted > 1.5, (rank, shifted)
    # a trend inside each chain (non-stationarity) is what splitting catches
    trend = x + np.linspace(0, 3, n)[:, None]
    assert D.split_rhat(trend) > 1.2


def test_acceptance_rate():
    acc = np.array([[True, False], [True, True], [False, False], [True, False]])
    np.testing.assert_allclose(D.acceptance_rate(acc), [0.75, 0.25])
    trace = np.array([[0.0, 1.0], [0.0, 2.0], [1.0, 2.0], [1.0, 2.0]])[:, :, None]
    np.testing.assert_allclose(D.acceptance_rate(trace), [1 / 3, 1 / 3])


def test_bad_input():
    with pytest.raises(ValueError, match="trace"):
        D.split_rhat(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        D.effective_sample_size(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="method"):
        D.integrated_autocorr_time(np.zeros((10, 2)), method="magic")


def test_rank_normalized_rhat_is_unit_free():
    # Found by hypothesis (seed 83, scale 1e300): folding about the midpoint of the two
    # middle draws made them tie exactly, and float rounding broke the tie differently
    # after rescaling (R-hat 1.13373 vs 1.13401). Folding about the lower median fixes it.
    t = np.random.default_rng(83).normal(size=(40, 3)).cumsum(axis=0)
    base = D.split_rhat(t, rank_normalize=True)
    for scale in (1e300, 1e-300, 3.7, 2.0**600):
        assert np.allclose(D.split_rhat(t * scale, rank_normalize=True), base, rtol=1e-12)
