"""Deep Boltzmann machine: two-block Gibbs on the shared layer kernel against the reference
(same Philox stream) and against exact enumeration, mean field, the ELBO, exact log Z and
log p(v), variational SML training with pre-training, bad input."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import estimators as E, reference as R
from test_kernels import merged_chisquare

SEED = 0x1234_5678_9ABC


def random_dbm(sizes, scale=1.0, seed=0, **kw):
    d = ef.DBM(sizes, seed=SEED, pretrain=False, **kw)
    rng = np.random.default_rng(seed)
    d.W_ = [(scale * rng.standard_normal((a, b))).astype(np.float32)
            for a, b in zip(sizes[:-1], sizes[1:])]
    d.biases_ = [(0.5 * scale * rng.standard_normal(n)).astype(np.float32) for n in sizes]
    d._refresh_transposes()
    return d


def all_states(n):
    return np.array(list(itertools.product([0, 1], repeat=n)), np.float32)[:, ::-1].copy()


def joint_distribution(d):
    """p(x) over every joint state of a tiny DBM, states indexed by their bits (layer 0
    first, unit 0 = least significant)."""
    sizes = d.layer_sizes
    X = all_states(sum(sizes))
    parts = np.split(X, np.cumsum(sizes)[:-1], axis=1)
    e = d.energy(parts)
    p = np.exp(-(e - e.min()))
    return p / p.sum()


def state_index(states):
    bits = np.hstack(states).astype(np.int64)
    return bits @ (1 << np.arange(bits.shape[1], dtype=np.int64))


# ---------------------------------------------------------------- same stream as reference


@pytest.mark.parametrize("sizes,rows", [([33, 31, 257], 65), ([7, 129, 3, 32], 17),
                                        ([1, 1, 1], 3), ([256, 33, 255], 33)])
@pytest.mark.parametrize("clamp", [False, True])
def test_sweeps_match_reference(sizes, rows, clamp):
    d = random_dbm(sizes, scale=3.0 / np.sqrt(max(sizes)))
    rng = np.random.default_rng(1)
    states = [(rng.random((rows, n)) < 0.4).astype(np.float32) for n in sizes]
    step = d.step_
    got = d.gibbs(states, 3, clamp_visible=clamp)
    want = R.dbm_gibbs(d.W_, d.biases_, states, 3, SEED, step, clamp_visible=clamp)
    for g, w in zip(got, want):
        assert np.mean(g == w) >= 0.999
    if clamp:
        assert np.array_equal(got[0], states[0])
    # the inputs are left alone and the step advanced by the sweeps
    assert d.step_ == step + 3


def test_sweeps_at_beta_match_reference():
    d = random_dbm([20, 15, 10], scale=0.8)
    states = d.sample(50, n_steps=0, return_all=True)
    step = d.step_
    got = d.gibbs(states, 2, beta=0.3)
    want = R.dbm_gibbs(d.W_, d.biases_, states, 2, SEED, step, beta=0.3)
    for g, w in zip(got, want):
        assert np.mean(g == w) >= 0.999


def test_sweeps_with_prebuilt_tables_match_reference():
    # sweeps x chains >= 512: the CPU path prebuilds every subset table once
    d = random_dbm([40, 30, 20], scale=0.3)
    states = d.sample(300, n_steps=0, return_all=True)
    step = d.step_
    got = d.gibbs(states, 2)
    want = R.dbm_gibbs(d.W_, d.biases_, states, 2, SEED, step)
    assert d._tables is not None
    for g, w in zip(got, want):
        assert np.mean(g == w) >= 0.999


# ---------------------------------------------------------------- exact distribution


def test_two_block_gibbs_samples_the_exact_joint():
    """4-3-3 DBM (1024 joint states): independent chains after burn-in against p(x),
    chi-square on cells pooled to expected counts >= 5."""
    d = random_dbm([4, 3, 3], scale=1.0, seed=3)
    p = joint_distribution(d)
    N = 40_000
    states = d.sample(N, n_steps=40, return_all=True)
    counts = np.bincount(state_index(states), minlength=p.size)
    assert merged_chisquare(counts, N * p).pvalue > 1e-4
    # the test can fail: the same counts against a slightly different model
    q = joint_distribution(random_dbm([4, 3, 3], scale=1.1, seed=3))
    assert merged_chisquare(counts, N * q).pvalue < 1e-4


def test_clamped_gibbs_samples_the_exact_posterior():
    d = random_dbm([4, 3, 3], scale=1.0, seed=4)
    p = joint_distribution(d).reshape(2**6, 2**4)  # [hidden bits, visible bits]
    v = np.array([1, 0, 1, 1], np.float32)
    post = p[:, int(v @ (1 << np.arange(4)))]
    post = post / post.sum()
    N = 20_000
    states = d.sample(N, n_steps=0, return_all=True)
    states[0] = np.tile(v, (N, 1))
    states = d.gibbs(states, 30, clamp_visible=True)
    idx = state_index(states[1:])
    counts = np.bincount(idx, minlength=post.size)
    assert merged_chisquare(counts, N * post).pvalue > 1e-4


# ---------------------------------------------------------------- exact log Z and log p(v)


def test_exact_log_partition_and_likelihood_by_brute_force():
    d = random_dbm([4, 3, 3, 2], scale=1.0, seed=5)
    sizes = d.layer_sizes
    X = all_states(sum(sizes))
    e = d.energy(np.split(X, np.cumsum(sizes)[:-1], axis=1))
    log_z = np.log(np.exp(-e).sum())
    assert E.exact_log_partition(d) == pytest.approx(log_z, abs=1e-9)
    V = all_states(4)
    ll = E.exact_log_likelihood(d, V)
    vi = (X[:, :4].astype(np.int64) @ (1 << np.arange(4)))
    pv = np.bincount(vi, weights=np.exp(-e - log_z), minlength=16)
    want = np.log(pv[(V.astype(np.int64) @ (1 << np.arange(4)))])
    np.testing.assert_allclose(ll, want, atol=1e-9)


# ---------------------------------------------------------------- mean field and ELBO


def test_mean_field_fixed_point_and_elbo_bound():
    d = random_dbm([6, 4, 5], scale=0.8, seed=6)
    V = all_states(6)
    mf = d.mean_field(V, n_iter=500, tol=1e-7)
    assert mf.converged and mf.n_iter < 500 and mf.max_change < 1e-7
    q1, q2 = [q.astype(np.float64) for q in mf.q]
    W1, W2 = [W.astype(np.float64) for W in d.W_]
    b1, b2 = [b.astype(np.float64) for b in d.biases_[1:]]
    # the fixed-point equations hold (float32 kernel; each q moved < 1e-7 last iteration)
    np.testing.assert_allclose(q1, R.sigmoid(V @ W1 + q2 @ W2.T + b1), atol=1e-5)
    np.testing.assert_allclose(q2, R.sigmoid(q1 @ W2 + b2), atol=1e-5)
    elbo = d.elbo(V, n_iter=500)
    ll = E.exact_log_likelihood(d, V)
    assert np.all(elbo <= ll + 1e-6)
    # and it is a real bound, not -inf: within a few nats of log p(v) at this size
    assert np.all(ll - elbo < 3.0)


def test_mean_field_reports_non_convergence():
    d = random_dbm([6, 4, 5], scale=3.0, seed=7)
    mf = d.mean_field(all_states(6), n_iter=1, tol=0.0)
    assert not mf.converged and mf.n_iter == 1


# ---------------------------------------------------------------- training


def test_training_raises_exact_log_likelihood():
    X = ef.datasets.bars_and_stripes(3)
    # 14 patterns: log p(v) <= log(1/14) = -2.64; the untrained model sits at -9 log 2
    d = ef.DBM([9, 8, 6], seed=11, epochs=300, batch_size=2, n_chains=32, learning_rate=0.05,
               pretrain_epochs=300, pretrain_learning_rate=0.1, learning_rate_decay=0.0)
    before = E.exact_log_likelihood(d, X).mean()
    d.fit(X)
    after = E.exact_log_likelihood(d, X).mean()
    assert d.pretrained_ and len(d.history_) == 300
    assert after > before + 2.0, (before, after)
    assert all(np.isfinite(W).all() for W in d.W_)


def test_pretraining_alone_raises_log_likelihood():
    X = ef.datasets.bars_and_stripes(3)
    d = ef.DBM([9, 8, 6], seed=12, epochs=0, batch_size=2, pretrain_epochs=300,
               pretrain_learning_rate=0.1)
    before = E.exact_log_likelihood(d, X).mean()
    d.fit(X)
    assert d.pretrained_
    assert E.exact_log_likelihood(d, X).mean() > before + 1.0


def test_training_is_deterministic():
    X = ef.datasets.bars_and_stripes(3)
    kw = dict(seed=13, epochs=2, batch_size=4, pretrain_epochs=2)
    a = ef.DBM([9, 8, 6], **kw).fit(X)
    b = ef.DBM([9, 8, 6], **kw).fit(X)
    for x, y in zip(a.W_ + a.biases_, b.W_ + b.biases_):
        assert np.array_equal(x, y)


def test_diverging_update_is_rejected_and_model_unchanged():
    X = ef.datasets.bars_and_stripes(3)
    d = ef.DBM([9, 8, 6], seed=14, pretrain=False, learning_rate=1e38, momentum=0.0)
    d.partial_fit(X)  # the first huge step is still finite; the next overflows
    before = [a.copy() for a in d.W_ + d.biases_]
    chains = [c.copy() for c in d._chains]
    with pytest.raises(FloatingPointError, match="learning_rate"):
        d.partial_fit(X)
    assert all(np.array_equal(x, y) for x, y in zip(before, d.W_ + d.biases_))
    assert all(np.array_equal(x, y) for x, y in zip(chains, d._chains))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("sizes,exc", [([4, 3], ValueError), ([4], ValueError),
                                       ([4, 0, 3], ValueError), (5, TypeError),
                                       ([4, 3.5, 2], TypeError)])
def test_bad_layer_sizes(sizes, exc):
    with pytest.raises(exc, match="layer_sizes"):
        ef.DBM(sizes)


def test_bad_data_leaves_model_unchanged():
    d = ef.DBM([9, 8, 6], seed=15, pretrain=False)
    before = [a.copy() for a in d.W_ + d.biases_]
    X = ef.datasets.bars_and_stripes(3)
    with pytest.raises(ValueError, match="X must have 9 columns"):
        d.fit(X[:, :8])
    with pytest.raises(ValueError, match="X values must lie in"):
        d.partial_fit(X * 2.0)
    with pytest.raises(ValueError, match="NaN"):
        d.mean_field(np.full((2, 9), np.nan))
    with pytest.raises(ValueError, match="binary"):
        E.exact_log_likelihood(d, X * 0.5)
    with pytest.raises(ValueError, match=r"states\[1\] must be binary"):
        d.gibbs([X, np.full((X.shape[0], 8), 0.5), np.zeros((X.shape[0], 6))])
    with pytest.raises(ValueError, match="3 arrays"):
        d.gibbs([X])
    with pytest.raises(ValueError, match="rows"):
        d.gibbs([X, np.zeros((2, 8)), np.zeros((X.shape[0], 6))])
    with pytest.raises(ValueError, match="device"):
        ef.DBM([9, 8, 6], device="tpu")
    assert all(np.array_equal(x, y) for x, y in zip(before, d.W_ + d.biases_))
    assert d.step_ == 0


# ---------------------------------------------------------------- demo and harness


def test_demo_dbm_improves_held_out_likelihood(tmp_path, capsys):
    pytest.importorskip("sklearn")
    import argparse
    from ebmfast import dbm_demo
    args = argparse.Namespace(out=str(tmp_path), seed=0, dbm_epochs=2, dbm_hidden=8,
                              dbm_pretrain_epochs=3, mnist=False)
    assert dbm_demo.main(args) == 0
    out = capsys.readouterr().out
    lls = [float(line.split("log p(v)")[1].split()[0]) for line in out.splitlines()
           if "held-out log p(v)" in line]
    assert len(lls) == 3 and lls[1] > lls[0] + 5.0  # pre-training alone gains nats
    pytest.importorskip("matplotlib")
    assert (tmp_path / "dbm_digits_samples.png").exists()


def test_bench_dbm_smoke(tmp_path):
    from ebmfast.cli import main
    assert main(["bench", "--suite", "dbm", "--smoke", "--out", str(tmp_path)]) == 0
    assert list(tmp_path.glob("dbm_cpu_*.json"))
