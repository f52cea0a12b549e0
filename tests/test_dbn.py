"""DBN: greedy stacking of RBMs, exact label prediction, sampling, bad input."""
import numpy as np
import pytest

import ebmfast as ef


def test_one_layer_dbn_is_an_rbm():
    X = ef.datasets.bars_and_stripes(3)
    dbn = ef.DBN([9, 16], seed=5, epochs=50, learning_rate=0.1, batch_size=14).fit(X)
    rbm = ef.RBM(9, 16, seed=5, epochs=50, learning_rate=0.1, batch_size=14).fit(X)
    np.testing.assert_array_equal(dbn.rbms_[0].W, rbm.W)
    np.testing.assert_array_equal(dbn.transform(X), rbm.transform(X))


def test_greedy_layers_train_on_the_layer_below():
    X = ef.datasets.digits()
    dbn = ef.DBN([64, 32, 16], seed=1, epochs=5, learning_rate=0.05, batch_size=50).fit(X)
    H1 = dbn.transform(X, layer=1)
    # layer 2 was trained on exactly these probabilities: refitting an identical RBM on
    # them with the same seed reproduces its weights
    twin = ef.RBM(32, 16, seed=(dbn.seed_ + 1) % 2**64, epochs=5, learning_rate=0.05, batch_size=50).fit(H1)
    np.testing.assert_array_equal(twin.W, dbn.rbms_[1].W)
    assert dbn.transform(X).shape == (len(X), 16)
    S = dbn.sample(7, n_steps=20)
    assert S.shape == (7, 64) and set(np.unique(S)) <= {0.0, 1.0}


def test_labels_predict_digits():
    X, y = ef.datasets.digits(return_labels=True)
    y = np.asarray(y)
    order = np.random.default_rng(0).permutation(len(X))
    tr, te = order[:1400], order[1400:]
    dbn = ef.DBN([64, 100, 100], n_labels=10, seed=2, epochs=20, learning_rate=0.05,
                 momentum=0.5, batch_size=20).fit(X[tr], y[tr])
    p = dbn.predict_proba(X[te])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    acc = (p.argmax(axis=1) == y[te]).mean()
    assert acc > 0.8, acc  # chance 0.1
    g = dbn.sample(4, n_steps=10, label=3)
    assert g.shape == (4, 64)


@pytest.mark.parametrize("call,exc", [
    (lambda: ef.DBN([9]), ValueError),
    (lambda: ef.DBN([9, 0]), ValueError),
    (lambda: ef.DBN([9, 4], n_labels=1), ValueError),
    (lambda: ef.DBN([9, 4], propagate="means"), ValueError),
    (lambda: ef.DBN([9, 4, 3], layers=[{}]), ValueError),
    (lambda: ef.DBN([9, 4]).fit(np.ones((3, 8))), ValueError),
    (lambda: ef.DBN([9, 4], n_labels=2).fit(np.ones((3, 9))), ValueError),
    (lambda: ef.DBN([9, 4]).fit(np.ones((3, 9)), [0, 1, 0]), ValueError),
    (lambda: ef.DBN([9, 4]).predict(np.ones((3, 9))), ValueError),
    (lambda: ef.DBN([9, 4]).sample(2, label=1), ValueError),
])
def test_bad_input(call, exc):
    with pytest.raises(exc):
        call()


def test_per_layer_parameters_and_sampled_propagation():
    X = ef.datasets.digits()[:300]
    dbn = ef.DBN([64, 20, 10], propagate="samples", seed=3,
                 layers=[dict(epochs=2, learning_rate=0.1), dict(epochs=3, method="pcd")]).fit(X)
    assert [r.epochs for r in dbn.rbms_] == [2, 3] and dbn.rbms_[1].method == "pcd"
    assert len(dbn.rbms_[1].history_) == 3
    assert dbn.transform(X).shape == (300, 10)


# --------------------------------------------------------------------------- exact quantities
# A two-layer DBN with a small first hidden layer (n_1 <= 6) is summed exactly over h1:
#   generative model  p(v) = sum_h1 p2(h1) p(v | h1), p2 the top RBM's visible marginal;
#   variational bound log p(v) >= sum_h1 q(h1|v) [log p(v|h1) + log p2(h1)] + H(q)
#   (Hinton, Osindero & Teh 2006, eq. 5), q the factorial recognition distribution.

def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def _top_log_marginal(top, H):
    """log p2(h1) of every row of H: -F2(h1) - log Z2, exact."""
    return -top.free_energy(H.astype(np.float32)) - top.log_partition()


def _layer_terms(rec, gen, top, X):
    """(log q(h1|v), log p(v|h1), log p2(h1)) over all h1 (rows) and every v (columns)."""
    (Wr, cr), (Wg, bg) = rec, gen
    X = np.asarray(X, np.float64)
    H = ef.reference.all_states(np.asarray(Wr).shape[1])
    zr = X @ np.asarray(Wr, np.float64) + cr                     # (n, n_1)
    log_q = H @ _log_sigmoid(zr).T + (1 - H) @ _log_sigmoid(-zr).T  # (2^n_1, n)
    zg = H @ np.asarray(Wg, np.float64).T + bg                    # (2^n_1, n_0)
    log_pvh = _log_sigmoid(zg) @ X.T + _log_sigmoid(-zg) @ (1 - X).T
    return log_q, log_pvh, _top_log_marginal(top, H)[:, None]


def _weights(dbn):
    r = dbn.rbms_[0]
    if dbn.untied:
        return (dbn.rec_W_[0], dbn.rec_c_[0]), (dbn.gen_W_[0], dbn.gen_b_[0])
    return (r.W, r.c), (r.W, r.b)


def variational_bound(dbn, X, top=None):
    log_q, log_pvh, log_p2 = _layer_terms(*_weights(dbn), dbn.rbms_[1] if top is None else top, X)
    q = np.exp(log_q)
    return (q * (log_pvh + log_p2 - log_q)).sum(axis=0)


def dbn_log_likelihood(dbn, X):
    _, log_pvh, log_p2 = _layer_terms(*_weights(dbn), dbn.rbms_[1], X)
    return ef.reference.logsumexp(log_pvh + log_p2, axis=0)


def _bas_dbn(seed=0):
    # 4 hidden units underfit 3x3 bars-and-stripes (exact mean log-likelihood about -4 nats
    # against the optimum log(1/14) = -2.64), which leaves room for a second layer.
    X = ef.datasets.bars_and_stripes(3)
    dbn = ef.DBN([9, 4, 16], seed=seed, layers=[
        dict(epochs=3000, learning_rate=0.1, batch_size=14, momentum=0.5),
        dict(epochs=3000, learning_rate=0.05, batch_size=14, momentum=0.5)]).fit(X)
    return dbn, X


def test_stacking_raises_the_variational_bound():
    dbn, X = _bas_dbn()
    rbm1 = dbn.rbms_[0]
    ll1 = rbm1.log_likelihood(X)  # the one-layer model (RBM 1 alone), exact
    # With RBM 2 = RBM 1 transposed, p2(h1) is RBM 1's hidden marginal and q(h1|v) its exact
    # posterior: the bound equals log p1(v) (Hinton et al. 2006, section 4). This pins the
    # bound's computation.
    mirror = ef.RBM(4, 9, seed=1)
    mirror.W, mirror.b, mirror.c = rbm1.W.T, rbm1.c, rbm1.b
    np.testing.assert_allclose(variational_bound(dbn, X, top=mirror), ll1, rtol=0, atol=1e-5)
    # Training RBM 2 on the aggregated posterior raises the bound above the one-layer
    # log-likelihood. Everything here is exact and deterministic in the seed, so the margin
    # is not a sampling tolerance: it asks for an improvement of 0.05 nats per pattern
    # (seeds 0-7 give 0.10-0.52).
    bound = variational_bound(dbn, X)
    assert bound.mean() > ll1.mean() + 0.05, (bound.mean(), ll1.mean())
    # ... and it is a lower bound of the stacked model's exact log-likelihood (Jensen)
    assert np.all(bound <= dbn_log_likelihood(dbn, X) + 1e-9)


def test_fine_tune_raises_the_bound_and_the_likelihood():
    dbn, X = _bas_dbn()
    bound0, ll0 = variational_bound(dbn, X).mean(), dbn_log_likelihood(dbn, X).mean()
    W0 = dbn.rbms_[0].W.copy()
    dbn.fine_tune(X, 1000, learning_rate=0.1, batch_size=14)
    assert dbn.untied and len(dbn.fine_tune_history_) == 1000
    np.testing.assert_array_equal(dbn.rbms_[0].W, W0)  # the greedy RBM 1 itself is kept
    assert not np.array_equal(dbn.rec_W_[0], dbn.gen_W_[0])
    params = dbn.rec_W_ + dbn.rec_c_ + dbn.gen_W_ + dbn.gen_b_ + [dbn.rbms_[1].W]
    assert all(np.isfinite(p).all() for p in params)
    bound1, ll1 = variational_bound(dbn, X).mean(), dbn_log_likelihood(dbn, X).mean()
    # exact and deterministic; seeds 0-5 gain 0.10-0.20 nats in both
    assert bound1 > bound0 + 0.05, (bound0, bound1)
    assert ll1 > ll0 + 0.05, (ll0, ll1)


def _fine_tuned(seed, labels=True, sizes=(64, 24, 16, 12)):
    X, y = ef.datasets.digits(return_labels=True)
    X, y = X[:400], np.asarray(y)[:400]
    dbn = ef.DBN(list(sizes), n_labels=10 if labels else 0, seed=seed, epochs=2,
                 learning_rate=0.05, batch_size=50)
    dbn.fit(X, y if labels else None)
    dbn.fine_tune(X, 2, y if labels else None, learning_rate=0.02, k=2, batch_size=50)
    return dbn, X, y


@pytest.mark.parametrize("labels,sizes", [(True, (64, 24, 16, 12)), (False, (64, 20)),
                                          (True, (64, 20))])
def test_fine_tune_is_deterministic_in_the_seed(labels, sizes):
    a, X, y = _fine_tuned(11, labels, sizes)
    b, _, _ = _fine_tuned(11, labels, sizes)
    c, _, _ = _fine_tuned(12, labels, sizes)
    arrays = lambda d: (d.rec_W_ + d.rec_c_ + d.gen_W_ + d.gen_b_  # noqa: E731
                        + [d.rbms_[-1].W, d.rbms_[-1].b, d.rbms_[-1].c])
    for p, q in zip(arrays(a), arrays(b)):
        np.testing.assert_array_equal(p, q)
        assert np.isfinite(p).all()
    assert not np.array_equal(a.rbms_[-1].W, c.rbms_[-1].W)
    assert len(a.rec_W_) == len(sizes) - 2
    np.testing.assert_array_equal(a.sample(5, n_steps=10), b.sample(5, n_steps=10))
    if labels:
        np.testing.assert_array_equal(a.predict(X[:50], method="gibbs", n_steps=6),
                                      b.predict(X[:50], method="gibbs", n_steps=6))


def test_transform_uses_the_recognition_weights_after_fine_tuning():
    dbn, X, _ = _fine_tuned(4)
    H = X.astype(np.float64)
    for W, c in zip(dbn.rec_W_, dbn.rec_c_):
        H = ef.reference.sigmoid(H @ W + c)
    np.testing.assert_allclose(dbn.transform(X, layer=2), H, rtol=0, atol=1e-5)
    assert np.abs(dbn.transform(X, layer=1) - dbn.rbms_[0].transform(X)).max() > 1e-4
    p = dbn.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_sample_comes_down_the_generative_weights():
    dbn, _, _ = _fine_tuned(5)
    target = (np.arange(64) % 3 == 0).astype(np.float32)
    dbn.gen_W_[0][...] = 0.0                     # layer 1 -> visible: ignore the layer above
    dbn.gen_b_[0][...] = np.where(target > 0, 30.0, -30.0)
    S = dbn.sample(6, n_steps=3)
    np.testing.assert_array_equal(S, np.tile(target, (6, 1)))


def test_fine_tuned_samples_follow_the_generative_model():
    dbn, _ = _bas_dbn()
    dbn.fine_tune(ef.datasets.bars_and_stripes(3), 1000, learning_rate=0.1, batch_size=14)
    V = ef.reference.all_states(9)
    exact = np.exp(dbn_log_likelihood(dbn, V))  # p(v) of the untied generative model
    tied = np.exp(_tied_log_likelihood(dbn, V))  # ... and of the tied one (RBM 1 down)
    np.testing.assert_allclose(exact.sum(), 1.0, rtol=1e-6)
    n = 20000
    S = dbn.sample(n, n_steps=50)
    emp = np.bincount(S.astype(np.int64) @ (1 << np.arange(9)), minlength=512) / n
    # E[TV] <= 1/2 sum_v sqrt(p(1-p)/n) (Jensen), and TV moves by at most 1/n per sample,
    # so P(TV > that + t) <= exp(-2 n t^2) (McDiarmid): t for a 1e-6 false-failure rate.
    # (Top-level chains of 50 steps on a 4x16 RBM are mixed far below this bound.)
    bound = 0.5 * np.sqrt(exact * (1 - exact) / n).sum() + np.sqrt(np.log(1e6) / (2 * n))
    assert 0.5 * np.abs(emp - exact).sum() < bound
    # the test can tell: the tied down pass (RBM 1's weights) is further away than that
    assert 0.5 * np.abs(tied - exact).sum() > bound


def _tied_log_likelihood(dbn, V):
    r = dbn.rbms_[0]
    _, log_pvh, log_p2 = _layer_terms((r.W, r.c), (r.W, r.b), dbn.rbms_[1], V)
    return ef.reference.logsumexp(log_pvh + log_p2, axis=0)


def test_gibbs_prediction_estimates_the_exact_label_posterior():
    dbn = ef.DBN([6, 8], n_labels=3, seed=7, epochs=0)
    top = dbn.rbms_[0]
    rng = np.random.default_rng(0)
    top.W = rng.normal(0.0, 1.0, top.W.shape)
    top.b, top.c = rng.normal(0.0, 0.5, 9), rng.normal(0.0, 0.5, 8)
    x = np.array([[1, 0, 1, 1, 0, 0]], np.float32)
    exact = dbn.predict_proba(x)[0]
    n = 4000  # independent chains (one per row), each averaging steps 20-39
    est = dbn.predict_proba(np.repeat(x, n, axis=0), method="gibbs", n_steps=40)
    np.testing.assert_allclose(est.sum(axis=1), 1.0)
    # mean of n independent values in [0, 1]: 5 standard errors (normal approximation,
    # false-failure rate ~6e-7 per class); the 20 burn-in steps of an 8-hidden-unit chain
    # leave a bias far below that
    se = est.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(est.mean(axis=0) - exact) < 5 * se + 1e-4), (est.mean(axis=0), exact, se)
    assert se.max() < 0.01  # the bound is tight enough to mean something


def _snapshot(dbn):
    arrs = [a.copy() for r in dbn.rbms_ for a in (r.W, r.b, r.c)]
    if dbn.untied:
        arrs += [a.copy() for a in dbn.rec_W_ + dbn.rec_c_ + dbn.gen_W_ + dbn.gen_b_]
    return arrs, dbn._step, dbn.untied, len(dbn.fine_tune_history_)


X9 = ef.datasets.bars_and_stripes(3)
Y9 = np.arange(14) % 2


@pytest.mark.parametrize("labels,args,kwargs,exc,match", [
    (False, (np.ones((3, 8)), 1), {}, ValueError, "X"),
    (False, (X9 * 2, 1), {}, ValueError, "X"),
    (False, (np.full((14, 9), np.nan), 1), {}, ValueError, "X"),
    (False, (X9, 1, Y9), {}, ValueError, "y"),
    (True, (X9, 1), {}, ValueError, "y"),
    (True, (X9, 1, Y9 + 1), {}, ValueError, "y"),
    (True, (X9, 1, Y9[:5]), {}, ValueError, "y"),
    (True, (X9, 1, Y9.astype(float)), {}, ValueError, "y"),
    (False, (X9, -1), {}, ValueError, "epochs"),
    (False, (X9, 1.5), {}, TypeError, "epochs"),
    (False, (X9, 1), dict(learning_rate=0.0), ValueError, "learning_rate"),
    (False, (X9, 1), dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (False, (X9, 1), dict(k=0), ValueError, "k"),
    (False, (X9, 1), dict(batch_size=0), ValueError, "batch_size"),
    (False, (X9, 1), dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (False, (X9, 1), dict(clamp_labels="yes"), TypeError, "clamp_labels"),
])
@pytest.mark.parametrize("tuned", [False, True])
def test_fine_tune_bad_input_leaves_the_model_unchanged(labels, args, kwargs, exc, match, tuned):
    dbn = ef.DBN([9, 4, 3], n_labels=2 if labels else 0, seed=1, epochs=2, batch_size=7)
    dbn.fit(X9, Y9 if labels else None)
    if tuned:
        dbn.fine_tune(X9, 1, Y9 if labels else None)
    before = _snapshot(dbn)
    with pytest.raises(exc, match=match):
        dbn.fine_tune(*args, **kwargs)
    after = _snapshot(dbn)
    assert after[1:] == before[1:]
    for p, q in zip(before[0], after[0]):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("kwargs,exc", [(dict(method="mcmc"), ValueError),
                                        (dict(method="gibbs", n_steps=0), ValueError),
                                        (dict(method="gibbs", n_steps=2.0), TypeError)])
def test_predict_bad_method(kwargs, exc):
    dbn = ef.DBN([9, 4], n_labels=2, seed=1, epochs=1).fit(X9, Y9)
    with pytest.raises(exc):
        dbn.predict(X9, **kwargs)


@pytest.mark.parametrize("tuned", [False, True])
def test_fine_tune_divergence_keeps_the_last_finite_parameters(tuned):
    dbn = ef.DBN([9, 4, 3], seed=1, epochs=2, batch_size=7).fit(X9)
    if tuned:
        dbn.fine_tune(X9, 1)
    before = _snapshot(dbn)
    with pytest.raises(FloatingPointError, match="learning_rate"):
        dbn.fine_tune(X9, 1, learning_rate=1e39)  # finite, but the update overflows float32
    after = _snapshot(dbn)
    assert after[1:] == before[1:]
    for p, q in zip(before[0], after[0]):
        np.testing.assert_array_equal(p, q)


def test_demo_dbn_quick(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from ebmfast.cli import main
    assert main(["demo", "dbn", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    label = [float(line.split("test accuracy ")[1].split()[0]) for line in out.splitlines()
             if "label units: test accuracy" in line]
    assert len(label) == 2 and min(label) > 0.15  # 10 classes: chance 0.1 (deterministic run)
    raw = float(out.split("on the raw pixels (64) ")[1].split()[0])
    assert raw > 0.8
    assert (tmp_path / "dbn_digits_samples_by_label.png").stat().st_size > 1000


def test_bench_dbn_smoke(tmp_path, capsys):
    import json

    from ebmfast.cli import main
    assert main(["bench", "--suite", "dbn", "--smoke", "--no-peers", "--out", str(tmp_path)]) == 0
    files = list(tmp_path.glob("dbn_cpu_*.json"))
    assert len(files) == 1
    (row,) = json.loads(files[0].read_text())["rows"]
    m = row["median_ms"]
    assert m["ebmfast"] > 0 and m["numpy"] > 0 and "sklearn" not in m
    assert row["ratios"]["numpy/ebmfast"] == pytest.approx(m["numpy"] / m["ebmfast"])
    # both implementations trained the same first layer: reconstruction errors alike
    r = row["recon_error_layer1"]
    assert abs(r["ebmfast"] - r["numpy"]) < 0.1 * r["numpy"]
    assert "greedy epoch" in capsys.readouterr().out
