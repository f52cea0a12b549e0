"""Continuous chains (ebmfast.metropolis / mala / langevin) against the NumPy spec
``reference.mcmc_chains`` and against known moments.

* Kernel vs spec on the same Philox stream, sizes straddling the kernel's edges (d and
  n_chains in {1, 3, 7, 16, 17, 33}: pairs of dims per Philox block, 16-lane Philox
  batches, 16-chain groups): accept decisions >= 99.9 % identical and, on chains whose
  decisions all agree, states within a float32 rounding bound.
* Moments: a correlated 2-D Gaussian and 3-component 1-D / 2-D mixtures, RWMH and MALA;
  the error bar of each estimated mean / covariance entry is the standard error
  std / sqrt(ESS) with ESS from ebmfast.diagnostics (which accounts for the measured
  autocorrelation); every check is at 5 standard errors, a two-sided normal tail of
  5.7e-7 per comparison, < 1e-4 for the whole file (~100 comparisons). Seeds are fixed,
  so a pass is reproducible.
* ULA on a Gaussian: its exact stationary variance (derived in test_ula_stationary_variance).
* Same seed -> same samples; chunking, continuation and thread count do not change them.
* Bad input -> ValueError / TypeError naming the argument.
CUDA variants are parametrized over the devices present and skip without a GPU.
"""
from __future__ import annotations

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import diagnostics as D
from ebmfast import energies as En
from ebmfast import mcmc
from ebmfast import reference as R

SEED = 0xC0FFEE_0000_1234  # > 2**32: the high key word matters
SIZES = [1, 3, 7, 16, 17, 33]
K_SIGMA = 5.0
EPS32 = 2.0**-23

SAMPLERS = {"rwmh": ef.metropolis, "mala": ef.mala, "ula": ef.langevin}

cuda_ok = ef.cuda_available()
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not cuda_ok, reason="no CUDA device available")])]


def _to_device(a, device):
    if device == "cuda":
        import cupy as cp
        return cp.asarray(a)
    return a


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _energy_for(d: int, rng) -> En.Energy:
    """A built-in energy of dimension d, cycling over the kinds (all kinds get d's)."""
    kinds = [
        lambda: En.Gaussian(rng.normal(size=d), cov=_spd(d, rng)),
        lambda: En.Gaussian(rng.normal(size=d), precision=rng.uniform(0.5, 2.0, d)),
        lambda: En.GaussianMixture([0.2, 0.5, 0.3], rng.normal(size=(3, d)) * 2,
                                   rng.uniform(0.5, 1.5, (3, d))),
        lambda: En.DoubleWell(1.5),
        lambda: En.Rosenbrock() if d >= 2 else En.DoubleWell(0.5),
        lambda: En.RBMFreeEnergy(W=0.3 * rng.normal(size=(d, 5)), b=0.1 * rng.normal(size=d),
                                 c=0.1 * rng.normal(size=5)),
    ]
    return kinds[(d * 7 + int(rng.integers(6))) % 6]()


def _spd(d, rng):
    A = rng.normal(size=(d, d))
    return A @ A.T / d + np.eye(d)


# --------------------------------------------------------------------------- vs the spec

SHAPES = sorted({(d, 7) for d in SIZES} | {(3, n) for n in SIZES})


def _compare_with_spec(sampler, energy, n, d, device, rng, T=12, burn_in=3):
    x0 = rng.normal(size=(n, d)).astype(np.float32)
    step = {"rwmh": 0.6, "mala": 0.4, "ula": 0.1}[sampler]
    res = SAMPLERS[sampler](energy, _to_device(x0, device), T, step, seed=SEED, burn_in=burn_in,
                            step_offset=1000, device=device)
    ref = R.mcmc_chains(sampler, energy.energy_grad, x0, step, T, SEED, burn_in=burn_in,
                        step_offset=1000)
    samples = _host(res.samples)
    # decisions of the sampling steps from the kernel's states (a proposal never equals
    # the current state in every coordinate); the kernel's state after burn-in comes from
    # the same call with n_steps = 0
    start = _host(SAMPLERS[sampler](energy, _to_device(x0, device), 0, step, seed=SEED,
                                    burn_in=burn_in, step_offset=1000, device=device).x)
    prev = np.concatenate([start[None], samples[:-1]])
    moved = np.any(samples != prev, axis=2)
    agree = moved == ref.accepted[burn_in:]
    # float32 vs float64 moves log alpha by <~1e-5, so a decision flips with probability
    # <~1e-5 (u uniform); allowing max(1, 0.1 %) flips of ~400 decisions leaves a
    # false-failure rate < (400e-5)^2 / 2 ~ 1e-5 per test
    assert (~agree).sum() <= max(1, 0.001 * agree.size), \
        f"{sampler}: {(~agree).sum()} of {agree.size} decisions differ"
    # chains whose every decision agrees follow the spec to rounding: each step adds
    # O(d + 10) float32 roundings of terms of size <= 1 + |x| (energy sums, proposal);
    # 64 (d + 10) EPS32 (1 + |x|) per step is a >10x margin over what we observe
    good = agree.all(axis=0)
    scale = 1.0 + np.abs(ref.samples[:, good]).max(initial=0.0)
    bound = T * 64 * (d + 10) * EPS32 * scale
    if sampler != "rwmh":
        bound *= 10  # gradients add a factor |grad'| step^2 per step
    err = np.abs(samples[:, good] - ref.samples[:, good]).max(initial=0.0)
    assert err <= bound, f"{sampler}: state error {err} > {bound}"
    e_err = np.abs(_host(res.energies)[:, good] - ref.energies[:, good])
    assert (e_err <= 1e3 * bound * (1 + np.abs(ref.energies[:, good]))).all()
    if sampler != "ula":
        assert (np.abs(_host(res.step_size) - ref.step_size) <= 1e-4 * ref.step_size).mean() >= 0.999


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sampler", ["rwmh", "mala", "ula"])
@pytest.mark.parametrize("d,n", SHAPES)
def test_kernel_matches_spec(d, n, sampler, device):
    rng = np.random.default_rng(1000 * d + n)
    _compare_with_spec(sampler, _energy_for(d, rng), n, d, device, rng)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", range(6))
@pytest.mark.parametrize("sampler", ["rwmh", "mala"])
def test_every_energy_matches_spec(kind, sampler, device):
    rng = np.random.default_rng(kind)
    d = 5
    energy = [
        En.Gaussian(rng.normal(size=d), cov=_spd(d, rng)),
        En.Gaussian(rng.normal(size=d), precision=rng.uniform(0.5, 2.0, d)),
        En.GaussianMixture([0.2, 0.5, 0.3], rng.normal(size=(3, d)) * 2, [0.6, 1.0, 1.4]),
        En.DoubleWell(1.5),
        En.Rosenbrock(),
        En.RBMFreeEnergy(W=0.3 * rng.normal(size=(d, 5)), b=0.1 * rng.normal(size=d),
                         c=0.1 * rng.normal(size=5), confine=0.7),
    ][kind]
    _compare_with_spec(sampler, energy, 17, d, device, rng, T=15)


@pytest.mark.parametrize("d", SIZES)
def test_kernel_energy_and_gradient(d):
    """The compiled energies against the float64 spec; float32 sums of O(d) terms of size
    <= s: bound 4 (d + K) EPS32 s (K mixture components / hidden units)."""
    rng = np.random.default_rng(d)
    X = rng.normal(size=(9, d)).astype(np.float32)
    for kind in range(6):
        for e in [_energy_for(d, np.random.default_rng(7 * kind + j)) for j in range(2)]:
            e32, g32 = e.kernel_energy(X)
            e64, g64 = e.energy_grad(X)
            s = 10.0 * (1 + np.abs(e64).max() + np.abs(g64).max() + np.abs(X).max() ** 4)
            bound = 8 * (d + 16) * EPS32 * s
            assert np.abs(e32 - e64).max() <= bound, type(e).__name__
            assert np.abs(g32 - g64).max() <= bound, type(e).__name__


def test_spec_can_fail():
    """The comparison notices a wrong acceptance rule: a kernel run with a different
    step offset (other uniforms) disagrees with the spec."""
    rng = np.random.default_rng(5)
    E = En.Gaussian(np.zeros(3))
    x0 = rng.normal(size=(33, 3)).astype(np.float32)
    res = ef.metropolis(E, x0, 12, 1.5, seed=SEED, step_offset=1001)
    ref = R.mcmc_chains("rwmh", E.energy_grad, x0, 1.5, 12, SEED, step_offset=1000)
    assert np.abs(res.samples - ref.samples).max() > 0.1


# --------------------------------------------------------------------------- moments


def _check_moments(samples, mean, cov):
    """Each mean and covariance entry within K_SIGMA standard errors (std / sqrt(ESS))."""
    s = np.asarray(samples, np.float64)                       # (n_draws, n_chains, d)
    d = s.shape[2]
    m_hat = s.mean(axis=(0, 1))
    ess = D.effective_sample_size(s)
    se = s.std(axis=(0, 1)) / np.sqrt(ess)
    assert (np.abs(m_hat - mean) <= K_SIGMA * se).all(), (m_hat, mean, se)
    c = s - np.asarray(mean)
    for i in range(d):
        for j in range(i, d):
            prod = c[..., i] * c[..., j]
            se_ij = prod.std() / np.sqrt(D.effective_sample_size(prod))
            assert abs(prod.mean() - cov[i][j]) <= K_SIGMA * se_ij, (i, j, prod.mean(), cov[i][j])
    # and the chains have mixed
    assert (D.split_rhat(s) < 1.05).all()


@pytest.mark.parametrize("sampler", ["rwmh", "mala"])
def test_correlated_gaussian_moments(sampler):
    mean = np.array([1.0, -2.0])
    cov = np.array([[1.0, 0.8], [0.8, 2.0]])
    E = En.Gaussian(mean, cov=cov)
    x0 = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
    res = SAMPLERS[sampler](E, x0, 1500, 0.5, seed=11, burn_in=500)
    _check_moments(res.samples, mean, cov)
    target = R.MCMC_TARGET_ACCEPT[sampler]
    # Robbins-Monro reaches the target to within the noise of 500 adaptation steps; without
    # adaptation from step 0.5 the rates would be 0.7 (RWMH) and 0.99 (MALA)
    assert abs(res.acceptance.mean() - target) < 0.06


@pytest.mark.parametrize("sampler", ["rwmh", "mala"])
@pytest.mark.parametrize("d", [1, 2])
def test_mixture_moments(sampler, d):
    rng = np.random.default_rng(d)
    means = np.array([[-2.0, 0.5], [0.0, -1.0], [2.5, 1.0]])[:, :d]
    E = En.GaussianMixture([0.3, 0.2, 0.5], means, [0.8, 0.6, 1.0])
    x0 = (rng.normal(size=(512, d)) * 2).astype(np.float32)
    res = SAMPLERS[sampler](E, x0, 2000, 1.0, seed=12, burn_in=500)
    _check_moments(res.samples, E.mean, E.cov)


@pytest.mark.parametrize("sampler", ["rwmh", "mala"])
def test_rbm_free_energy_moments(sampler):
    """A confined RBM free energy in 2-D: moments by quadrature on a fine grid (the density
    is smooth and < e^-30 beyond the grid, so the quadrature error is far below the error
    bars)."""
    W = np.array([[2.0, -1.5, 0.5], [1.0, 2.0, -2.0]])
    E = En.RBMFreeEnergy(W=W, b=[0.3, -0.2], c=[-1.0, 0.5, 0.0], confine=1.0)
    g = np.linspace(-12, 12, 961)
    G = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    logp = -E(G)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    mean = p @ G
    cov = (G - mean).T @ ((G - mean) * p[:, None])
    x0 = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
    res = SAMPLERS[sampler](E, x0, 1500, 0.8, seed=21, burn_in=500)
    _check_moments(res.samples, mean, cov)


def test_rosenbrock_moments():
    """Rosenbrock with d = 2 factorizes: x0 ~ N(a, scale/2), x1 | x0 ~ N(x0^2, scale/(2b)).
    With a = 1, b = 2, scale = 1: E = (1, 1.5), Var x0 = 0.5, Cov(x0, x1) = 2 a 0.5 = 1,
    Var x1 = 2 (0.5)^2 + 4 a^2 0.5 + 1/4 = 2.75. RWMH only: the gradient grows like |x|^3,
    for which MALA is not geometrically ergodic (Roberts & Tweedie 1996) - its chains
    linger in the tails and split-R-hat stays ~1.1 at this run length."""
    E = En.Rosenbrock(a=1.0, b=2.0, scale=1.0)
    x0 = np.random.default_rng(4).normal(size=(256, 2)).astype(np.float32)
    res = ef.metropolis(E, x0, 8000, 0.3, seed=23, burn_in=2000, thin=2)
    _check_moments(res.samples, [1.0, 1.5], [[0.5, 1.0], [1.0, 2.75]])


@pytest.mark.parametrize("sampler", ["rwmh", "mala"])
def test_double_well_moments(sampler):
    """Double well a = 1 in d = 3: x0 has density ∝ exp(-(x0^2 - 1)^2) (its second moment
    by quadrature), the other coordinates are N(0, 1); everything is uncorrelated."""
    E = En.DoubleWell(1.0)
    g = np.linspace(-6, 6, 24001)
    w = np.exp(-((g * g - 1) ** 2))
    m2 = float(np.sum(w * g * g) / np.sum(w))
    x0 = np.random.default_rng(5).normal(size=(256, 3)).astype(np.float32)
    res = SAMPLERS[sampler](E, x0, 2000, 0.8, seed=24, burn_in=500)
    _check_moments(res.samples, np.zeros(3), np.diag([m2, 1.0, 1.0]))


def test_moment_check_can_fail():
    """The same check rejects samples of a slightly wrong distribution (variance 1.1)."""
    E = En.Gaussian(np.zeros(1), cov=1.1)
    x0 = np.random.default_rng(0).normal(size=(256, 1)).astype(np.float32)
    res = ef.mala(E, x0, 1500, 0.5, seed=11, burn_in=500)
    with pytest.raises(AssertionError):
        _check_moments(res.samples, np.zeros(1), np.eye(1))


def test_ula_stationary_variance():
    """ULA on N(mu, sigma^2): x' - mu = (1 - a)(x - mu) + eps z with a = eps^2/(2 sigma^2),
    an AR(1) with stationary variance v = eps^2 / (1 - (1 - a)^2) = sigma^2 / (1 - a/2)
    = sigma^2 / (1 - h / (2 sigma^2)) for the time step h = eps^2 / 2: inflated by O(h).
    Per coordinate of a diagonal Gaussian with sigma = (1, 2, 0.7) and eps = 0.8."""
    sig = np.array([1.0, 2.0, 0.7])
    E = En.Gaussian(np.array([0.5, 0.0, -1.0]), cov=sig**2)
    eps = 0.8
    h = eps**2 / 2
    v_ula = sig**2 / (1 - h / (2 * sig**2))
    x0 = np.random.default_rng(3).normal(size=(512, 3)).astype(np.float32)
    res = ef.langevin(E, x0, 2000, eps, seed=13, burn_in=300)
    s = res.samples.astype(np.float64) - E.mean
    for i in range(3):
        sq = s[..., i] ** 2
        se = sq.std() / np.sqrt(D.effective_sample_size(sq))
        assert abs(sq.mean() - v_ula[i]) <= K_SIGMA * se, (i, sq.mean(), v_ula[i], se)
        # the O(h) bias is resolved: the exact variance sigma^2 is rejected at the same level
        assert abs(sq.mean() - sig[i] ** 2) > K_SIGMA * se
    assert np.all(res.acceptance == 1.0)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_samples_and_chunking():
    E = En.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 1.0]], 0.7)
    x0 = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    a = ef.mala(E, x0, 60, 0.5, seed=7, burn_in=20, thin=3)
    b = ef.mala(E, x0, 60, 0.5, seed=7, burn_in=20, thin=3)
    c = ef.mala(E, x0, 60, 0.5, seed=8, burn_in=20, thin=3)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.energies, b.energies)
    assert a.samples.shape == (20, 40, 2) and a.energies.dtype == np.float64
    assert not np.array_equal(a.samples, c.samples)
    # tiny chunks (one thin-multiple each, last one partial) give the same run
    old = mcmc._CHUNK_WORK
    try:
        mcmc._CHUNK_WORK = 40 * 6 * 4
        d = ef.mala(E, x0, 61, 0.5, seed=7, burn_in=20, thin=3)
    finally:
        mcmc._CHUNK_WORK = old
    np.testing.assert_array_equal(a.samples, d.samples)
    # continuing from the final state with step_offset = next_step equals one long run
    e1 = ef.mala(E, x0, 30, 0.5, seed=7, burn_in=20, thin=3)
    e2 = ef.mala(E, e1.x, 30, e1.step_size, seed=7, thin=3, step_offset=e1.info["next_step"])
    np.testing.assert_array_equal(np.concatenate([e1.samples, e2.samples]), a.samples)
    np.testing.assert_array_equal(e2.x, a.x)


@pytest.mark.parametrize("d", [3, 10])  # the structure-of-arrays (d <= 8) and row paths
@pytest.mark.parametrize("sampler", ["rwmh", "mala", "ula"])
def test_thread_count_independence(sampler, d):
    E = En.Rosenbrock()
    x0 = np.random.default_rng(1).normal(size=(3001, d)).astype(np.float32)
    before = ef.get_num_threads()
    try:
        ef.set_num_threads(1)
        a = SAMPLERS[sampler](E, x0, 20, 0.05, seed=3, burn_in=5)
        ef.set_num_threads(2)
        b = SAMPLERS[sampler](E, x0, 20, 0.05, seed=3, burn_in=5)
    finally:
        ef.set_num_threads(before)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.step_size, b.step_size)


@pytest.mark.parametrize("sampler", ["rwmh", "mala", "ula"])
def test_callable_matches_builtin(sampler):
    """A Python callable draws the same Philox numbers as the compiled kernel."""
    E = En.Gaussian(np.array([0.3, -0.2, 1.0]), cov=_spd(3, np.random.default_rng(2)))
    x0 = np.random.default_rng(4).normal(size=(17, 3)).astype(np.float32)
    kw = dict(seed=5, burn_in=5)
    a = SAMPLERS[sampler](E, x0, 15, 0.4, **kw)
    b = SAMPLERS[sampler](lambda X: E.energy_grad(X)[0], x0, 15, 0.4,
                          grad=lambda X: E.energy_grad(X)[1], **kw)
    assert b.samples.dtype == np.float32 and b.info["mode"] == "callable"
    moved_a = np.diff(a.samples, axis=0) != 0
    moved_b = np.diff(b.samples, axis=0) != 0
    assert (moved_a.any(axis=2) == moved_b.any(axis=2)).mean() >= 0.999
    assert np.abs(a.samples - b.samples).max() < 1e-4


def test_callable_float64_path_and_info():
    x0 = np.random.default_rng(0).normal(size=(64, 2))
    res = ef.metropolis(lambda X: 0.5 * np.sum(X**2, axis=1), x0, 200, 1.0, seed=1,
                        burn_in=50, progress=False)
    assert res.samples.dtype == np.float64 and res.samples.shape == (200, 64, 2)
    assert res.info["next_step"] == 250 and res.info["proposals_per_s"] > 0
    assert 0.05 < res.acceptance.mean() < 0.6


# --------------------------------------------------------------------------- bad input


def test_bad_input():
    E = En.Gaussian(np.zeros(2))
    x0 = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="x0"):
        ef.metropolis(E, np.zeros(4, np.float32), 10, 0.5)
    with pytest.raises(ValueError, match="columns"):
        ef.metropolis(E, np.zeros((4, 3), np.float32), 10, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        ef.metropolis(E, np.full((4, 2), np.nan, np.float32), 10, 0.5)
    with pytest.raises(TypeError, match="x0"):
        ef.metropolis(E, np.zeros((4, 2), np.int32), 10, 0.5)
    with pytest.raises(ValueError, match="float32"):
        ef.metropolis(E, np.full((4, 2), 1e300), 10, 0.5)
    with pytest.raises(ValueError, match="step_size"):
        ef.metropolis(E, x0, 10, 0.0)
    with pytest.raises(ValueError, match="step_size"):
        ef.metropolis(E, x0, 10, np.ones(3))
    with pytest.raises(ValueError, match="step_size"):
        ef.metropolis(E, x0, 10, np.nan)
    with pytest.raises(ValueError, match="n_steps"):
        ef.metropolis(E, x0, -1, 0.5)
    with pytest.raises(TypeError, match="n_steps"):
        ef.metropolis(E, x0, 1.5, 0.5)
    with pytest.raises(ValueError, match="thin"):
        ef.metropolis(E, x0, 10, 0.5, thin=0)
    with pytest.raises(ValueError, match="device"):
        ef.metropolis(E, x0, 10, 0.5, device="tpu")
    with pytest.raises(ValueError, match="seed"):
        ef.metropolis(E, x0, 10, 0.5, seed=-1)
    with pytest.raises(ValueError, match="step_offset"):
        ef.metropolis(E, x0, 10, 0.5, step_offset=2**32 - 5)
    with pytest.raises(TypeError, match="energy"):
        ef.metropolis("gaussian", x0, 10, 0.5)
    with pytest.raises(ValueError, match="grad"):
        ef.mala(lambda X: np.sum(X**2, axis=1), x0, 10, 0.5)
    with pytest.raises(ValueError, match="grad"):
        ef.mala(E, x0, 10, 0.5, grad=lambda X: X)
    with pytest.raises(ValueError, match="CudaSource"):
        ef.metropolis(En.CudaSource("__device__ float energy(const float* x, int d) {return 0;}"),
                      x0, 10, 0.5)
    with pytest.raises(ValueError, match="shape"):
        ef.metropolis(lambda X: np.sum(X, axis=0), x0, 10, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        ef.metropolis(lambda X: np.full(X.shape[0], np.nan), x0, 10, 0.5)
    with pytest.raises(ValueError, match="grad"):
        ef.mala(lambda X: np.sum(X**2, axis=1), x0, 10, 0.5, grad=lambda X: X[:, :1])
    with pytest.raises(ValueError, match="grad"):
        ef.langevin(lambda X: np.sum(X**2, axis=1), x0, 10, 0.5, grad=lambda X: np.full(X.shape, np.inf))
    if not cuda_ok:
        with pytest.raises((RuntimeError, TypeError)):
            ef.metropolis(E, x0, 10, 0.5, device="cuda")
    # energies validate their own parameters
    with pytest.raises(ValueError, match="positive definite"):
        En.Gaussian(np.zeros(2), cov=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="weights"):
        En.GaussianMixture([0.5, -0.5], [0.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="columns"):
        ef.metropolis(En.Rosenbrock(), np.zeros((3, 1), np.float32), 5, 0.1)


def test_zero_steps():
    x0 = np.ones((3, 2), np.float32)
    res = ef.metropolis(En.Gaussian(np.zeros(2)), x0, 0, 0.5, seed=1)
    assert res.samples.shape == (0, 3, 2) and np.isnan(res.acceptance).all()
    np.testing.assert_array_equal(res.x, x0)


# --------------------------------------------------------------------------- CUDA only


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_ok, reason="no CUDA device available")
def test_cuda_source_matches_builtin():
    import cupy as cp
    src = """
    __device__ float energy(const float* x, int d) {
      float e = 0.f; for (int i = 0; i < d; ++i) e += 0.5f * x[i] * x[i]; return e; }
    __device__ void grad(const float* x, float* g, int d) {
      for (int i = 0; i < d; ++i) g[i] = x[i]; }
    """
    x0 = np.random.default_rng(0).normal(size=(33, 3)).astype(np.float32)
    for f in (ef.metropolis, ef.mala, ef.langevin):
        a = f(En.CudaSource(src), cp.asarray(x0), 20, 0.5, seed=3, burn_in=5)
        b = f(En.Gaussian(np.zeros(3)), x0, 20, 0.5, seed=3, burn_in=5)
        assert np.abs(a.samples.get() - b.samples).max() < 1e-4
    with pytest.raises(ValueError, match="compile"):
        ef.metropolis(En.CudaSource("__device__ float energy(const float* x, int d) { oops }"),
                      cp.asarray(x0), 5, 0.5)


def test_progress_bar_runs(capsys):
    E = En.DoubleWell(2.0)
    x0 = np.zeros((8, 3), np.float32)
    old = mcmc._CHUNK_WORK
    try:
        mcmc._CHUNK_WORK = 8 * 7 * 5  # several chunks
        a = ef.metropolis(E, x0, 40, 0.5, seed=2, burn_in=10, progress=True)
    finally:
        mcmc._CHUNK_WORK = old
    b = ef.metropolis(E, x0, 40, 0.5, seed=2, burn_in=10)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert "proposals/s" in capsys.readouterr().err


def test_bench_mcmc_smoke(tmp_path, capsys):
    from ebmfast import bench_mcmc
    rows = bench_mcmc.run([("mixture", 3, "mala"), ("gaussian", 2, "rwmh")], n_chains=64,
                          steps=2, repeats=1, warmup=1, log=lambda *_: None)
    assert len(rows) == 2
    for r in rows:
        assert r["proposals_per_s"]["ebmfast"] > 0 and r["ratios"]["numpy/ebmfast"] > 0
    # the NumPy baseline is a correct sampler too: MALA keeps a Gaussian's variance
    E = bench_mcmc.make_energy("gaussian", 2)
    x0 = (E.mean + np.random.default_rng(0).normal(size=(20000, 2)) / np.sqrt(E.precision)
          ).astype(np.float32)
    x = bench_mcmc.numpy_runner(E, x0, "mala", 0.8, 20)()
    var = ((x - E.mean) ** 2).mean(axis=0)
    # 20000 independent chains started in the target: relative se of a variance is sqrt(2/N)
    assert np.all(np.abs(var * E.precision - 1) < K_SIGMA * np.sqrt(2 / 20000))
    assert bench_mcmc.main(["--quick", "--chains", "64", "--steps", "2",
                            "--out", str(tmp_path)]) == 0
    assert list(tmp_path.glob("mcmc_cpu_*_t*.json"))


@pytest.mark.parametrize("impl", ["portable", "avx2"])
def test_philox_lane_implementations_agree(impl):
    """The run-time chosen Philox lanes (AVX-512 / AVX2 / portable) give identical chains;
    the narrower ones are forced through EBMFAST_PHILOX_LANES in a subprocess."""
    import os
    import subprocess
    import sys
    code = ("import numpy as np, ebmfast as ef\n"
            "E = ef.energies.GaussianMixture([0.4, 0.6], [[-1.0, 0, 1], [1.0, 2, 0]], 0.8)\n"
            "x0 = np.random.default_rng(0).normal(size=(37, 3)).astype(np.float32)\n"
            "r = ef.mala(E, x0, 25, 0.5, seed=99, burn_in=5)\n"
            "import sys; sys.stdout.buffer.write(r.samples.tobytes())\n")
    env = dict(os.environ, EBMFAST_PHILOX_LANES=impl)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    E = En.GaussianMixture([0.4, 0.6], [[-1.0, 0, 1], [1.0, 2, 0]], 0.8)
    x0 = np.random.default_rng(0).normal(size=(37, 3)).astype(np.float32)
    ref = ef.mala(E, x0, 25, 0.5, seed=99, burn_in=5).samples
    got = np.frombuffer(out.stdout[-ref.nbytes:], np.float32).reshape(ref.shape)
    np.testing.assert_array_equal(got, ref)
