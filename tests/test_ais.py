"""AIS estimates of log Z against exact enumeration."""
import numpy as np
import pytest

import ebmfast as ef
from ebmfast.estimators import ais, default_ais_betas


def random_rbm(n_v, n_h, seed, scale=0.8):
    rng = np.random.default_rng(seed)
    rbm = ef.RBM(n_v, n_h, seed=seed)
    rbm.W = (rng.standard_normal((n_v, n_h)) * scale).astype(np.float32)
    rbm.b = (rng.standard_normal(n_v) * 0.5).astype(np.float32)
    rbm.c = (rng.standard_normal(n_h) * 0.5).astype(np.float32)
    return rbm


@pytest.mark.parametrize("n_v,n_h,seed", [(12, 10, 0), (8, 16, 1), (16, 6, 2)])
def test_ais_matches_exact_log_partition(n_v, n_h, seed):
    rbm = random_rbm(n_v, n_h, seed)
    exact = rbm.log_partition()
    r = ais(rbm, n_runs=200, betas=np.linspace(0.0, 1.0, 2000), seed=seed)
    # The delta-method standard error of log Z-hat; 5 se is a 1e-6 two-sided Gaussian tail,
    # and the estimator's bias (about -se^2/2) is far below it. The se itself must be small
    # enough that the check means something.
    assert r.se < 0.05
    assert abs(r.log_z - exact) < 5 * r.se + 1e-3, (r.log_z, exact, r.se)
    assert r.interval[0] < r.log_z < r.interval[1]
    assert 1 < r.ess <= 200


def test_ais_with_a_base_rate_model_on_trained_rbm():
    X = ef.datasets.bars_and_stripes(3)
    rbm = ef.RBM(9, 16, epochs=300, learning_rate=0.1, momentum=0.5, batch_size=14, seed=0).fit(X)
    exact = rbm.log_partition()
    r = ais(rbm, n_runs=100, betas=np.linspace(0.0, 1.0, 3000), data=X, seed=4)
    assert abs(r.log_z - exact) < 5 * r.se + 1e-3
    assert rbm.log_partition(method="ais", n_runs=100, betas=np.linspace(0, 1, 3000), data=X,
                             seed=4) == r.log_z
    ll = rbm.log_likelihood(X, log_z=r.log_z)
    np.testing.assert_allclose(ll, rbm.log_likelihood(X), atol=5 * r.se + 1e-3)


def test_ais_reproducible_and_validated():
    rbm = random_rbm(6, 5, 3)
    a = ais(rbm, n_runs=20, betas=np.linspace(0, 1, 200), seed=7)
    b = ais(rbm, n_runs=20, betas=np.linspace(0, 1, 200), seed=7)
    c = ais(rbm, n_runs=20, betas=np.linspace(0, 1, 200), seed=8)
    assert a.log_z == b.log_z and a.log_z != c.log_z
    betas = default_ais_betas()
    assert betas[0] == 0.0 and betas[-1] == 1.0 and np.all(np.diff(betas) > 0) and betas.size == 14501
    for bad in ([0.0, 0.5], [0.1, 1.0], [0.0, 0.7, 0.3, 1.0], [0.0, np.nan, 1.0]):
        with pytest.raises(ValueError, match="betas"):
            ais(rbm, betas=bad)
    with pytest.raises(ValueError, match="n_runs"):
        ais(rbm, n_runs=1)
    with pytest.raises(ValueError, match="data"):
        ais(rbm, data=np.ones((3, 7)))


def test_reverse_ais_from_model_samples_brackets_log_z():
    rbm = random_rbm(10, 8, 5)
    exact = rbm.log_partition()
    betas = np.linspace(0.0, 1.0, 2000)
    fwd = ais(rbm, n_runs=200, betas=betas, seed=1)
    samples = rbm.sample(200, n_steps=2000)  # close to exact samples of this small model
    rev = ais(rbm, n_runs=200, betas=betas, seed=2, reverse=True, init_states=samples)
    for r in (fwd, rev):
        assert r.se < 0.05
        assert abs(r.log_z - exact) < 5 * r.se + 1e-3, (r.log_z, exact, r.se)
    with pytest.raises(ValueError, match="init_states"):
        ais(rbm, reverse=True)
    with pytest.raises(ValueError, match="n_runs"):
        ais(rbm, n_runs=5, reverse=True, init_states=samples)


def test_core_matmul():
    rng = np.random.default_rng(0)
    A = rng.random((300, 37)).astype(np.float32)
    B = rng.random((37, 11)).astype(np.float32)
    np.testing.assert_allclose(ef._core.matmul(A, B), A @ B, rtol=1e-5)
    with pytest.raises(ValueError, match="matmul"):
        ef._core.matmul(A, A)


def test_quality_report_quick(tmp_path, capsys):
    import json

    from ebmfast.cli import main
    assert main(["report", "quality", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads(next(tmp_path.glob("quality_*.json")).read_text())["rows"]
    assert {r["model"] for r in rows} >= {"ebmfast CD-1", "ebmfast CD-10", "ebmfast PCD-1"}
    for r in rows:
        assert np.isfinite(r["log_z_forward"]) and np.isfinite(r["log_z_reverse"])
        assert r["test_ll_forward"] < 0 and r["test_pl"] < 0
    assert main(["report", "nothing"]) == 2


def random_dbm(sizes, seed, scale=0.6):
    rng = np.random.default_rng(seed)
    d = ef.DBM(sizes, seed=seed, pretrain=False)
    d.W_ = [(scale * rng.standard_normal((a, b))).astype(np.float32)
            for a, b in zip(sizes[:-1], sizes[1:])]
    d.biases_ = [(0.5 * rng.standard_normal(n)).astype(np.float32) for n in sizes]
    d._refresh_transposes()
    return d


@pytest.mark.parametrize("sizes,seed", [([10, 8, 6], 0), ([6, 10, 5, 4], 1), ([12, 6, 9], 2)])
def test_dbm_ais_forward_and_reverse_match_exact(sizes, seed):
    from ebmfast.estimators import exact_log_partition
    d = random_dbm(sizes, seed)
    exact = exact_log_partition(d)
    betas = np.linspace(0.0, 1.0, 2000)
    fwd = ais(d, n_runs=200, betas=betas, seed=seed)
    states = d.sample(200, n_steps=2000, return_all=True)  # near-exact samples at this size
    rev = ais(d, n_runs=200, betas=betas, seed=seed + 10, reverse=True, init_states=states)
    # 5 se: a 1e-6 two-sided Gaussian tail per check (bias ~ se^2/2 is far below it)
    for r in (fwd, rev):
        assert r.se < 0.05
        assert abs(r.log_z - exact) < 5 * r.se + 1e-3, (r.log_z, exact, r.se)
    # the check can fail: a wrong model (weights scaled) is far outside
    assert abs(ais(random_dbm(sizes, seed, scale=0.7), n_runs=200, betas=betas,
                   seed=seed).log_z - exact) > 5 * fwd.se + 1e-3


def test_dbm_ais_with_base_rate_and_elbo():
    from ebmfast.estimators import exact_log_likelihood, exact_log_partition
    X = ef.datasets.bars_and_stripes(3)
    d = ef.DBM([9, 8, 6], seed=3, epochs=50, batch_size=2, pretrain_epochs=100,
               pretrain_learning_rate=0.1, learning_rate=0.05).fit(X)
    exact = exact_log_partition(d)
    r = ais(d, n_runs=100, betas=np.linspace(0.0, 1.0, 3000), data=X, seed=4)
    assert abs(r.log_z - exact) < 5 * r.se + 1e-3
    # the variational bound on the test log-likelihood with the AIS log Z
    elbo = d.elbo(X, log_z=r.log_z)
    assert np.all(elbo <= exact_log_likelihood(d, X) + 5 * r.se + 1e-3)
    with pytest.raises(ValueError, match="init_states"):
        ais(d, reverse=True)


def test_ais_interval_coverage_on_20_hidden_units():
    """Random RBMs with 20 hidden units at three weight scales, 10 seeds each: the exact
    log Z must lie in the reported interval (log Z-hat +- 3 se, nominal coverage 99.7%).
    Misses are counted over the 30 estimates; allowing 2 gives a false-failure rate of
    P(Binomial(30, 0.0027) >= 3) ~ 1e-4 if the interval is calibrated."""
    from ebmfast.estimators import exact_log_partition
    betas = np.linspace(0.0, 1.0, 500)
    misses, total = 0, 0
    for scale in (0.2, 0.5, 1.0):
        for seed in range(8):
            rbm = random_rbm(32, 20, 100 + seed, scale=scale)
            exact = exact_log_partition(rbm)
            r = ais(rbm, n_runs=100, betas=betas, seed=seed)
            misses += not (r.interval[0] <= exact <= r.interval[1])
            total += 1
    assert total == 24 and misses <= 2, misses


def test_forward_and_reverse_ais_bias_in_opposite_directions():
    """With a short schedule and few runs both estimators are visibly biased: forward AIS
    below log Z in expectation (Jensen), reverse AIS from exact model samples above it.
    Averaged over 60 seeds, each mean error must be on its side by more than 3 standard
    errors of the mean (measured: about -0.55 and +0.51 nats, 4-5 standard errors)."""
    from ebmfast.estimators import exact_log_partition
    rbm = random_rbm(12, 10, 7, scale=2.0)
    exact = exact_log_partition(rbm)
    betas = np.linspace(0.0, 1.0, 20)
    fwd, rev = [], []
    for seed in range(60):
        fwd.append(ais(rbm, n_runs=4, betas=betas, seed=seed).log_z - exact)
        samples = rbm.sample(4, n_steps=500)
        rev.append(ais(rbm, n_runs=4, betas=betas, seed=seed + 100, reverse=True,
                       init_states=samples).log_z - exact)
    for errs, sign in ((np.array(fwd), -1), (np.array(rev), 1)):
        sem = errs.std(ddof=1) / np.sqrt(errs.size)
        assert sign * errs.mean() > 3 * sem, (errs.mean(), sem)
