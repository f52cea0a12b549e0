"""Public API of ebmfast.RBM (DESIGN.md §4, §5): construction and sklearn protocol,
inference against the NumPy reference, exact sampling statistics, exact log Z,
training, and save/load. Bad input lives in test_rbm_bad_input.py."""
from __future__ import annotations

import inspect
import math
import os

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import reference as ref

EPS32 = float(np.finfo(np.float32).eps)
LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- helpers


def random_rbm(n_visible, n_hidden, *, seed=0, w_scale=2.0, bias_scale=0.5, **kwargs):
    """An RBM with non-trivial random parameters (set through the public properties):
    W ~ N(0, w_scale^2 / n_visible) so that fields are O(w_scale), biases ~ N(0, bias_scale^2)."""
    rbm = ef.RBM(n_visible, n_hidden, seed=seed, **kwargs)
    rng = np.random.default_rng([seed, n_visible, n_hidden])
    rbm.W = w_scale * rng.standard_normal((n_visible, n_hidden)) / np.sqrt(n_visible)
    rbm.b = bias_scale * rng.standard_normal(n_visible)
    rbm.c = bias_scale * rng.standard_normal(n_hidden)
    return rbm


def binary(rng, rows, cols, p=0.5):
    return (rng.random((rows, cols)) < p).astype(np.float32)


def state(rbm):
    """Everything a call may change: parameters, velocities, chains, counters, params."""
    chains = None if rbm._chains is None else rbm._chains.copy()
    return dict(W=rbm.W.copy(), b=rbm.b.copy(), c=rbm.c.copy(), vW=rbm._vW.copy(),
                vb=rbm._vb.copy(), vc=rbm._vc.copy(), chains=chains, step=rbm.step,
                seed_=rbm.seed_, epochs=rbm.epochs_trained_, params=rbm.get_params(),
                history=[(h["epoch"], h.get("recon_error")) for h in rbm.history_])


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None, key
            assert x.dtype == y.dtype and np.array_equal(x, y), key
        else:
            assert x == y, key


def fe_scale(rbm, V):
    """Sum of the magnitudes of everything a float32 free energy F(v) adds up: |v|.|b|,
    sum_j (|v|.|W| + |c|)_j (the fields) and sum_j softplus(z_j). Rounding errors of a float32
    evaluation are a small multiple of eps32 times this (measured: < 0.4 eps32)."""
    V64 = np.asarray(V, np.float64)
    W, b, c = (a.astype(np.float64) for a in (rbm.W, rbm.b, rbm.c))
    return (np.abs(V64) @ np.abs(b) + (np.abs(V64) @ np.abs(W) + np.abs(c)).sum(1)
            + ref.softplus(V64 @ W + c).sum(1))


def bas():
    return ef.datasets.bars_and_stripes(3)


def mean_exact_ll(rbm, X):
    return float(rbm.log_likelihood(X).mean())


# --------------------------------------------------------------------------- 1. construction


CTOR_ARGS = dict(device="cpu", seed=123, learning_rate=0.07, method="pcd", k=3, momentum=0.4,
                 weight_decay=1e-4, batch_size=17, epochs=5, progress=False, precision="tf32")


def test_get_params_is_exactly_the_constructor_arguments():
    rbm = ef.RBM(11, 6, **CTOR_ARGS)
    sig = inspect.signature(ef.RBM.__init__)
    names = [n for n in sig.parameters if n != "self"]
    assert sorted(rbm.get_params()) == sorted(names)
    assert rbm.get_params() == dict(n_visible=11, n_hidden=6, **CTOR_ARGS)
    assert rbm.get_params(deep=False) == rbm.get_params()
    # defaults are reported as the signature's defaults
    default = ef.RBM(3, 2).get_params()
    for name in names[2:]:
        assert default[name] == sig.parameters[name].default, name


def test_set_params_roundtrip_is_a_no_op():
    X = bas()
    rbm = ef.RBM(9, 5, seed=1, method="pcd", momentum=0.5, batch_size=7, epochs=2)
    rbm.fit(X)  # velocities, chains, step and history are non-trivial now
    before = state(rbm)
    assert rbm.set_params(**rbm.get_params()) is rbm
    assert_same_state(state(rbm), before)
    assert rbm.set_params() is rbm
    assert_same_state(state(rbm), before)


def test_set_params_updates_values_and_reinitialises_on_seed_or_size_change():
    rbm = ef.RBM(6, 4, seed=3, epochs=2, batch_size=4)
    rbm.fit(bas()[:, :6])
    W_trained = rbm.W.copy()
    rbm.set_params(learning_rate=0.2, k=2, epochs=7)
    assert (rbm.learning_rate, rbm.k, rbm.epochs) == (0.2, 2, 7)
    assert np.array_equal(rbm.W, W_trained)  # hyper-parameters only: weights kept
    rbm.set_params(seed=4)
    assert np.array_equal(rbm.W, ef.RBM(6, 4, seed=4).W) and rbm.step == 0
    rbm.set_params(n_hidden=9)
    assert rbm.W.shape == (6, 9) and rbm.c.shape == (9,)
    assert np.array_equal(rbm.W, ef.RBM(6, 9, seed=4).W)


def test_sklearn_clone_same_params_and_same_initial_weights():
    base = pytest.importorskip("sklearn.base")
    rbm = ef.RBM(8, 5, **CTOR_ARGS)
    W_init = rbm.W.copy()
    rbm.set_params(method="cd")
    rbm.fit(binary(np.random.default_rng(0), 20, 8))  # clone must not copy the training state
    twin = base.clone(rbm)
    assert twin is not rbm
    assert twin.get_params() == rbm.get_params()
    assert np.array_equal(twin.W, W_init)
    assert not np.array_equal(twin.W, rbm.W)
    assert twin.step == 0 and twin.history_ == []
    assert np.array_equal(twin.b, np.zeros(8, np.float32))


def test_sklearn_pipeline_and_grid_search():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    X = bas()
    y = (X[:, 0] > 0).astype(int)
    pipe = Pipeline([("rbm", ef.RBM(9, 8, seed=0, epochs=3, batch_size=7)),
                     ("clf", LogisticRegression())])
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (14,)
    grid = GridSearchCV(pipe, {"rbm__n_hidden": [3, 5]}, cv=2).fit(X, y)
    assert grid.best_params_["rbm__n_hidden"] in (3, 5)
    assert grid.best_estimator_.named_steps["rbm"].W.shape[1] == grid.best_params_["rbm__n_hidden"]


def test_sklearn_aliases():
    rbm = random_rbm(7, 4, seed=2)
    assert rbm.components_.shape == (4, 7)
    assert np.array_equal(rbm.components_, rbm.W.T)
    assert np.array_equal(rbm.intercept_hidden_, rbm.c)
    assert np.array_equal(rbm.intercept_visible_, rbm.b)
    assert rbm.n_components == 4 and rbm.n_features_in_ == 7
    # the cached transpose stays in sync through training, for both methods
    for method in ("cd", "pcd"):
        rbm.set_params(method=method, epochs=3, batch_size=5, momentum=0.5, weight_decay=0.01)
        rbm.fit(binary(np.random.default_rng(1), 13, 7))
        assert np.array_equal(rbm.components_, rbm.W.T)
        assert np.array_equal(rbm.intercept_hidden_, rbm.c)
        assert np.array_equal(rbm.intercept_visible_, rbm.b)


@pytest.mark.parametrize("name", ["W", "b", "c", "components_", "intercept_hidden_",
                                  "intercept_visible_"])
def test_parameter_views_are_read_only(name):
    rbm = random_rbm(5, 3)
    before = state(rbm)
    view = getattr(rbm, name)
    assert view.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        view[...] = 0.0
    with pytest.raises(ValueError):
        view.flat[0] = 1.0
    assert_same_state(state(rbm), before)


def test_assigning_parameters_updates_the_model_and_the_cached_transpose():
    rng = np.random.default_rng(5)
    rbm = ef.RBM(6, 4, seed=0)
    X = rng.random((9, 6))
    W = rng.standard_normal((6, 4))          # float64: stored as float32
    c = rng.standard_normal(4).tolist()      # a list works too
    b = rng.standard_normal(6).astype(np.float16)
    rbm.W, rbm.b, rbm.c = W, b, c
    assert rbm.W.dtype == rbm.b.dtype == rbm.c.dtype == np.float32
    assert np.array_equal(rbm.W, W.astype(np.float32))
    assert np.array_equal(rbm.b, b.astype(np.float32))
    assert np.array_equal(rbm.c, np.float32(c))
    assert np.array_equal(rbm.components_, W.astype(np.float32).T)
    W32, c32 = W.astype(np.float32).astype(np.float64), np.float32(c).astype(np.float64)
    np.testing.assert_allclose(rbm.transform(X), 1 / (1 + np.exp(-(X @ W32 + c32))), atol=1e-6)
    # the model copied the array: changing the source afterwards changes nothing
    W[...] = 0.0
    assert np.array_equal(rbm.W, W32.astype(np.float32))
    # and Gibbs sampling (which uses the transpose for v|h) sees the new weights
    V = binary(rng, 40, 6)
    s0 = rbm.step
    out = rbm.gibbs(V, 2)
    expect, _ = ref.gibbs(rbm.W, rbm.b, rbm.c, V, 2, 1.0, rbm.seed_, s0)
    assert np.mean(out == expect) >= 0.999


def test_device_cpu_and_auto():
    assert ef.RBM(3, 2, device="cpu").device_ == "cpu"
    auto = ef.RBM(3, 2, device="auto")
    if not ef.cuda_available():
        assert auto.device_ == "cpu"
    else:
        assert auto.device_ in ("cpu", "cuda")
    assert auto.get_params()["device"] == "auto"


@pytest.mark.skipif(ef.cuda_available(), reason="checks the machine without a GPU")
def test_device_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ef.RBM(3, 2, device="cuda")
    rbm = ef.RBM(3, 2, seed=0)
    before = state(rbm)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        rbm.set_params(device="cuda")
    assert_same_state(state(rbm), before)


def test_precision_is_checked():
    for bad in ("fp16", "FP32", None, 32):
        with pytest.raises(ValueError, match="precision"):
            ef.RBM(3, 2, precision=bad)
    rbm = ef.RBM(3, 2, seed=0)
    with pytest.raises(ValueError, match="precision"):
        rbm.set_params(precision="bf16")
    assert rbm.precision == "fp32"


def test_seed_none_draws_a_fresh_seed():
    a, b = ef.RBM(4, 3), ef.RBM(4, 3)
    assert a.seed is None and isinstance(a.seed_, int) and 0 <= a.seed_ < 2**64
    assert a.seed_ != b.seed_  # two 64-bit draws collide with probability 2**-64
    assert not np.array_equal(a.W, b.W)


# --------------------------------------------------------------------------- 2. inference


SIZES = [(1, 1), (7, 3), (33, 31), (100, 257), (257, 64)]


def _inputs(rng, rows, n_visible):
    Xb = binary(rng, rows, n_visible)
    return {
        "binary-f32": Xb,
        "binary-f64": Xb.astype(np.float64),
        "binary-bool": Xb.astype(bool),
        "binary-uint8": Xb.astype(np.uint8),
        "binary-fortran": np.asfortranarray(Xb),
        "real-f32": rng.random((rows, n_visible)).astype(np.float32),
        "real-f64": rng.random((rows, n_visible)),
        "real-strided": rng.random((rows, 2 * n_visible))[:, ::2],
        "list": Xb.tolist(),
    }


@pytest.mark.parametrize("n_visible,n_hidden", SIZES)
def test_transform_matches_reference(n_visible, n_hidden):
    rbm = random_rbm(n_visible, n_hidden, seed=n_hidden)
    rng = np.random.default_rng(n_visible)
    W = rbm.W.astype(np.float64)
    for kind, X in _inputs(rng, 37, n_visible).items():
        X64 = np.asarray(X, dtype=np.float64)
        X_copy = np.array(X, copy=True)
        P = rbm.transform(X)
        assert P.shape == (37, n_hidden) and P.dtype == np.float32, kind
        # float32 field: the error in z is a few eps32 * sum|x_i W_ij|, and sigmoid' <= 1/4
        expect = ref.sigmoid(X64 @ W + rbm.c)
        tol = 8 * EPS32 * (1 + np.abs(X64) @ np.abs(W) + np.abs(rbm.c)).max()
        np.testing.assert_allclose(P, expect, rtol=0, atol=tol, err_msg=kind)
        np.testing.assert_allclose(P, 1 / (1 + np.exp(-(X64 @ W + rbm.c))), rtol=0, atol=tol)
        assert np.array_equal(np.asarray(X), X_copy), kind  # input untouched


@pytest.mark.parametrize("n_visible,n_hidden", SIZES)
def test_free_energy_matches_reference(n_visible, n_hidden):
    rbm = random_rbm(n_visible, n_hidden, seed=7)
    rng = np.random.default_rng(n_hidden)
    for kind, V in _inputs(rng, 29, n_visible).items():
        F = rbm.free_energy(V)
        assert F.shape == (29,) and F.dtype == np.float64, kind
        expect = ref.free_energy(rbm.W, rbm.b, rbm.c, np.asarray(V, np.float64))
        np.testing.assert_array_less(np.abs(F - expect), 4 * EPS32 * (1 + fe_scale(rbm, V)))


@pytest.mark.parametrize("n_visible,n_hidden", SIZES)
def test_score_samples_is_the_deterministic_pseudo_log_likelihood(n_visible, n_hidden):
    rbm = random_rbm(n_visible, n_hidden, seed=11)
    rng = np.random.default_rng(3)
    X = binary(rng, 23, n_visible)
    step = rbm.step
    s1 = rbm.score_samples(X)
    s2 = rbm.score_samples(X.astype(bool))
    assert s1.shape == (23,) and s1.dtype == np.float64
    assert np.array_equal(s1, s2)           # deterministic, and dtype-independent
    assert rbm.step == step                 # no random numbers consumed
    assert np.all(s1 <= 0.0)
    expect = ref.pseudo_log_likelihood(rbm.W, rbm.b, rbm.c, X)
    # each of the n_visible terms is log sigmoid(F(v^i) - F(v)), |d/dx| <= 1, and each float32
    # free-energy difference is off by a few eps32 * fe_scale (measured total: < 0.1 of this)
    np.testing.assert_array_less(np.abs(s1 - expect), EPS32 * n_visible * (1 + fe_scale(rbm, X)))


@pytest.mark.parametrize("k", [1, 3, 70])   # 70 crosses the 64-step chunk of the Gibbs loop
@pytest.mark.parametrize("n_visible,n_hidden", [(1, 1), (7, 3), (33, 31), (20, 65)])
def test_gibbs_matches_reference_stream(n_visible, n_hidden, k):
    rbm = random_rbm(n_visible, n_hidden, seed=k)
    rng = np.random.default_rng(k)
    V = binary(rng, 50, n_visible)
    V_before = V.copy()
    rbm.step = 17
    out = rbm.gibbs(V, k)
    assert rbm.step == 17 + k
    assert out is not V and not np.shares_memory(out, V)
    assert np.array_equal(V, V_before)
    assert out.shape == V.shape and out.dtype == np.float32
    assert np.all((out == 0) | (out == 1))
    expect, _ = ref.gibbs(rbm.W, rbm.b, rbm.c, V, k, 1.0, rbm.seed_, 17, 0)
    assert np.mean(out == expect) >= 0.999
    assert np.mean(np.all(out == expect, axis=1)) >= 0.98
    # other dtypes and layouts of the same states give the same chain
    for V2 in (V.astype(bool), V.astype(np.int64), np.asfortranarray(V), V.tolist()):
        rbm.step = 17
        assert np.array_equal(rbm.gibbs(V2, k), out)


def test_gibbs_default_k_and_step_continuation():
    rbm = random_rbm(6, 4, seed=1)
    V = binary(np.random.default_rng(0), 10, 6)
    one = rbm.gibbs(V)
    assert rbm.step == 1
    two = rbm.gibbs(one, 1)
    rbm.step = 0
    assert np.array_equal(rbm.gibbs(V, 2), two)  # continuing == one call of k=2


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0, 2.0])
def test_sample_matches_reference_stream(beta):
    rbm = random_rbm(13, 9, seed=4, w_scale=3.0, bias_scale=1.0)
    rbm.step = 5
    n, n_steps = 64, 70
    S = rbm.sample(n, n_steps=n_steps, beta=beta)
    assert S.shape == (n, 13) and S.dtype == np.float32
    assert np.all((S == 0) | (S == 1))
    assert rbm.step == 5 + 1 + n_steps   # one step for the uniform start, then n_steps
    V0 = (ref.uniform_grid(rbm.seed_, ref.STREAM_INIT, 5, n, 13) < 0.5).astype(np.float32)
    expect, _ = ref.gibbs(rbm.W, beta * rbm.b.astype(np.float64), beta * rbm.c.astype(np.float64),
                          V0, n_steps, beta, rbm.seed_, 6)
    assert np.mean(S == expect) >= 0.999


def test_sample_is_deterministic_for_seed_and_step():
    a = random_rbm(10, 6, seed=9)
    b = random_rbm(10, 6, seed=9)
    s1 = a.sample(20, n_steps=30)
    assert np.array_equal(s1, b.sample(20, n_steps=30))
    s2 = a.sample(20, n_steps=30)          # the step advanced: new numbers
    assert not np.array_equal(s1, s2)
    a.step = 0
    assert np.array_equal(a.sample(20, n_steps=30), s1)
    c = random_rbm(10, 6, seed=9)
    c.set_params(seed=10)
    c.W, c.b, c.c = a.W, a.b, a.c
    assert not np.array_equal(c.sample(20, n_steps=30), s1)   # another seed, another stream
    zero = a.sample(5, n_steps=0)
    assert zero.shape == (5, 10) and np.all((zero == 0) | (zero == 1))


def test_sample_beta_zero_is_uniform():
    """beta=0 makes every unit Bernoulli(1/2), however strong the model. Binomial tests at
    total false-failure rate 1e-6 (half on the grand total, half Bonferroni over units)."""
    stats = pytest.importorskip("scipy.stats")
    rbm = random_rbm(40, 10, seed=5, w_scale=4.0)
    rbm.b = np.full(40, 5.0)   # at beta=1 nearly every visible unit is on
    hot = rbm.sample(500, n_steps=20, beta=1.0)
    assert hot.mean() > 0.9
    S = rbm.sample(2500, n_steps=20, beta=0.0)
    ones = int(S.sum())
    assert stats.binomtest(ones, S.size, 0.5).pvalue > 0.5e-6
    for j in range(S.shape[1]):
        assert stats.binomtest(int(S[:, j].sum()), S.shape[0], 0.5).pvalue > 0.5e-6 / 40


def _gibbs_transition_matrix(W, b, c):
    """T[v, v'] = sum_h p(h|v) p(v'|h) over all states (order of reference.all_states)."""
    W, b, c = (np.asarray(a, np.float64) for a in (W, b, c))
    V = ref.all_states(W.shape[0])
    H = ref.all_states(W.shape[1])
    ph = ref.sigmoid(V @ W + c)                      # (n_V, n_h)
    P_h = np.prod(np.where(H[None] == 1, ph[:, None], 1 - ph[:, None]), axis=2)   # (n_V, n_H)
    pv = ref.sigmoid(H @ W.T + b)                    # (n_H, n_v)
    P_v = np.prod(np.where(V[None] == 1, pv[:, None], 1 - pv[:, None]), axis=2)   # (n_H, n_V)
    return P_h @ P_v


def test_sample_draws_from_the_exact_distribution():
    """Chi-square of 20,000 samples against the exact p(v) of a 5x3 RBM. The chains start
    uniform; n_steps is chosen so that the exact law after n_steps (from the Gibbs transition
    matrix) is within 1e-9 in total variation of p(v), far below what 20,000 samples resolve.
    Bins with expected count < 5 are pooled. False-failure rate 1e-4."""
    stats = pytest.importorskip("scipy.stats")
    rbm = random_rbm(5, 3, seed=12, w_scale=2.0, bias_scale=1.0)
    p = ref.visible_distribution(rbm.W, rbm.b, rbm.c)
    T = _gibbs_transition_matrix(rbm.W, rbm.b, rbm.c)
    np.testing.assert_allclose(p @ T, p, atol=1e-12)   # p is stationary: checks T itself
    n_steps = 60
    law = np.full(32, 1 / 32) @ np.linalg.matrix_power(T, n_steps)
    assert 0.5 * np.abs(law - p).sum() < 1e-9

    n = 20_000
    S = rbm.sample(n, n_steps=n_steps)
    idx = (S.astype(np.int64) << np.arange(5)).sum(axis=1)   # same order as all_states
    counts = np.bincount(idx, minlength=32)
    expected = n * p
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] < 5:   # pool the small bins into the smallest big one
        j = np.argmin(exp[:-1])
        obs[j] += obs[-1]
        exp[j] += exp[-1]
        obs, exp = obs[:-1], exp[:-1]
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    assert stats.chi2.sf(chi2, df=len(obs) - 1) > 1e-4, (chi2, len(obs))


# --------------------------------------------------------------------------- 3. exact log Z


@pytest.mark.parametrize("n_visible,n_hidden", [(4, 9), (9, 4), (6, 6), (15, 17), (17, 15),
                                                (1, 3)])
def test_log_partition_matches_reference(n_visible, n_hidden):
    rbm = random_rbm(n_visible, n_hidden, seed=3, w_scale=1.5, bias_scale=1.0)
    expect = ref.log_partition_exact(rbm.W, rbm.b, rbm.c)
    got = rbm.log_partition()
    assert isinstance(got, float)
    assert got == pytest.approx(expect, rel=1e-12, abs=1e-10)
    assert rbm.log_partition(method="exact") == got


def test_log_partition_of_zero_model_is_n_log2():
    rbm = ef.RBM(5, 7, seed=0)
    rbm.W = np.zeros((5, 7))
    assert rbm.log_partition() == pytest.approx(12 * LOG2, rel=1e-14)


def test_log_likelihood_is_minus_free_energy_minus_log_z():
    rbm = random_rbm(8, 5, seed=6, w_scale=1.5, bias_scale=1.0)
    rng = np.random.default_rng(0)
    X = binary(rng, 31, 8)
    log_z = rbm.log_partition()
    ll = rbm.log_likelihood(X)
    assert ll.shape == (31,) and ll.dtype == np.float64
    np.testing.assert_allclose(ll, -rbm.free_energy(X) - log_z, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(rbm.log_likelihood(X, log_z=log_z), ll)
    np.testing.assert_array_equal(rbm.log_likelihood(X, method="exact"), ll)
    assert np.all(ll < 0)
    # normalised: the probabilities of all 2**8 states sum to one
    all_v = ref.all_states(8)
    assert abs(np.exp(rbm.log_likelihood(all_v)).sum() - 1.0) < 1e-6
    np.testing.assert_allclose(np.exp(rbm.log_likelihood(all_v)),
                               ref.visible_distribution(rbm.W, rbm.b, rbm.c), rtol=1e-5)


def test_log_partition_methods():
    rbm = ef.RBM(4, 3, seed=0)
    rbm.W = np.zeros((4, 3), np.float32)
    # W = 0, b = c = 0: Z = 2**7 exactly, and AIS is exact too (every weight is 1)
    assert rbm.log_partition(method="ais", n_runs=4, betas=[0.0, 0.5, 1.0], seed=1) == pytest.approx(7 * np.log(2))
    with pytest.raises(ValueError, match="method"):
        rbm.log_partition(method="bogus")
    with pytest.raises(ValueError, match="2\\*\\*30"):
        ef.RBM(30, 30, seed=0).log_partition()   # too big to enumerate: clear error


# --------------------------------------------------------------------------- 4. training


@pytest.mark.parametrize("method,kwargs", [
    # PCD with 14 persistent chains needs k=5 to stay stable at this learning rate
    ("pcd", dict(learning_rate=0.05, momentum=0.5, k=5, epochs=2500)),
    ("cd", dict(learning_rate=0.1, momentum=0.5, k=1, epochs=3000)),
])
def test_training_on_bars_and_stripes_raises_the_exact_likelihood(method, kwargs):
    """Initial mean log-likelihood ~ -9 log 2 = -6.24, optimum log(1/14) = -2.64. Over 30-40
    seeds this configuration reaches between -4.0 and -3.0 (median ~ -3.3)."""
    X = bas()
    rbm = ef.RBM(9, 16, method=method, batch_size=14, seed=0, **kwargs)
    ll0 = mean_exact_ll(rbm, X)
    assert abs(ll0 + 9 * LOG2) < 0.05
    rbm.fit(X)
    ll = mean_exact_ll(rbm, X)
    assert ll > -4.5, ll
    assert ll <= math.log(1 / 14) + 1e-9    # Gibbs' inequality: the optimum cannot be beaten
    assert len(rbm.history_) == kwargs["epochs"] == rbm.epochs_trained_
    steps_per_update = kwargs["k"]
    assert rbm.step == kwargs["epochs"] * steps_per_update + (method == "pcd")


def test_fit_progress_bar_and_history(capsys):
    X = bas()
    rbm = ef.RBM(9, 6, seed=0, epochs=4, batch_size=5, progress=True)
    assert rbm.fit(X) is rbm
    err = capsys.readouterr().err
    assert "RBM fit" in err and "4/4" in err and "recon" in err
    assert [h["epoch"] for h in rbm.history_] == [1, 2, 3, 4]
    for h in rbm.history_:
        assert h["seconds"] >= 0
        assert np.isfinite(h["recon_error"]) and 0 <= h["recon_error"] <= 9
    # without a bar: the same epochs, no recon error (it costs time), nothing printed
    quiet = ef.RBM(9, 6, seed=0, epochs=2, batch_size=5)
    quiet.fit(X)
    assert capsys.readouterr().err == ""
    assert [h["epoch"] for h in quiet.history_] == [1, 2]
    assert all("recon_error" not in h for h in quiet.history_)


def test_recon_error_matches_reference_for_one_full_batch(capsys):
    X = bas()
    rbm = random_rbm(9, 6, seed=2, epochs=1, batch_size=14, progress=True)
    W, b, c = rbm.W.copy(), rbm.b.copy(), rbm.c.copy()
    rbm.fit(X)
    capsys.readouterr()
    expect = ref.cd_gradient(W, b, c, X, 1, rbm.seed_, 0).recon   # does not depend on order
    assert rbm.history_[0]["recon_error"] == pytest.approx(expect, rel=1e-4)


@pytest.mark.parametrize("k", [1, 2])
def test_partial_fit_is_one_reference_update(k):
    rbm = random_rbm(12, 7, seed=1, k=k, learning_rate=0.1, momentum=0.5, weight_decay=0.01)
    rng = np.random.default_rng(2)
    X = binary(rng, 20, 12)
    for _ in range(2):   # twice: the second update uses the velocity of the first
        W, b, c = (a.astype(np.float64) for a in (rbm.W, rbm.b, rbm.c))
        vW, vb, vc = rbm._vW.copy(), rbm._vb.copy(), rbm._vc.copy()
        step = rbm.step
        assert rbm.partial_fit(X) is rbm
        assert rbm.step == step + k
        assert not np.array_equal(rbm.W, W.astype(np.float32))
        g = ref.cd_gradient(W, b, c, X, k, rbm.seed_, step)
        W2, _ = ref.momentum_update(W, vW, g.dW, 0.1, 0.5, 0.01)
        b2, _ = ref.momentum_update(b, vb, g.db, 0.1, 0.5)
        c2, _ = ref.momentum_update(c, vc, g.dc, 0.1, 0.5)
        np.testing.assert_allclose(rbm.W, W2, atol=1e-5)
        np.testing.assert_allclose(rbm.b, b2, atol=1e-5)
        np.testing.assert_allclose(rbm.c, c2, atol=1e-5)
        assert np.array_equal(rbm.components_, rbm.W.T)
    assert rbm.history_ == [] and rbm.epochs_trained_ == 0   # partial_fit is not an epoch


def test_partial_fit_pcd_initialises_chains_once():
    rbm = ef.RBM(9, 5, seed=0, method="pcd", k=2, batch_size=6)
    X = bas()[:6]
    rbm.partial_fit(X)
    assert rbm.step == 1 + 2                   # chain initialisation + k
    assert rbm._chains.shape == (6, 9)
    chains = rbm._chains.copy()
    rbm.partial_fit(X)
    assert rbm.step == 3 + 2
    assert not np.array_equal(rbm._chains, chains)   # the persistent chains moved


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_fit_continues_from_current_parameters(method):
    X = bas()
    kw = dict(method=method, momentum=0.5, weight_decay=1e-3, batch_size=4, k=2, seed=8)
    twice = ef.RBM(9, 7, epochs=3, **kw)
    twice.fit(X).fit(X)
    once = ef.RBM(9, 7, epochs=6, **kw)
    once.fit(X)
    for name in ("W", "b", "c", "components_"):
        assert np.array_equal(getattr(twice, name), getattr(once, name)), name
    assert np.array_equal(twice._vW, once._vW)
    assert twice.step == once.step and twice.epochs_trained_ == once.epochs_trained_ == 6
    if method == "pcd":
        assert np.array_equal(twice._chains, once._chains)
    assert len(twice.history_) == 6


def test_fit_zero_epochs_and_real_valued_data():
    rbm = ef.RBM(9, 4, seed=0, epochs=0)
    before = state(rbm)
    rbm.fit(bas())
    assert_same_state(state(rbm), before)
    rbm.set_params(epochs=2, batch_size=3)   # 14 rows: the last batch has 2 rows
    rbm.fit(np.random.default_rng(0).random((14, 9)))   # probabilities are valid data
    assert rbm.epochs_trained_ == 2 and rbm.step == 2 * 5
    assert np.isfinite(rbm.W).all()


def test_divergence_restores_the_model():
    """An absurd learning rate overflows float32; the failing update is discarded whole
    (one batch per epoch here, so the model is exactly as before the failing fit)."""
    rbm = ef.RBM(4, 3, seed=0, learning_rate=1e38, momentum=0.9, epochs=1, batch_size=6)
    X = np.ones((6, 4))
    for _ in range(10):
        before = state(rbm)
        try:
            rbm.fit(X)
        except FloatingPointError as exc:
            assert "learning_rate" in str(exc) and "epoch" in str(exc)
            assert_same_state(state(rbm), before)
            break
    else:
        pytest.fail("updates of 1e38 * gradient must overflow float32")


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_diverging_partial_fit_leaves_the_model_unchanged(method):
    """The update is computed into spare buffers and swapped in only when finite: a
    diverging partial_fit changes nothing, PCD chains and the step counter included."""
    # 1e39 rounds to inf in the float32 kernel: the very first update is non-finite
    rbm = ef.RBM(6, 4, seed=3, method=method, learning_rate=1e39, momentum=0.9, batch_size=5)
    X = (np.random.default_rng(1).random((5, 6)) < 0.5).astype(np.float32)
    before = state(rbm)
    with pytest.raises(FloatingPointError, match="learning_rate"):
        rbm.partial_fit(X)          # the very first update (PCD: creates the chains) overflows
    assert_same_state(state(rbm), before)
    rbm.learning_rate = 1e-2
    rbm.partial_fit(X)              # then a sane update
    for _ in range(10):
        rbm.learning_rate = 1e38
        before = state(rbm)
        try:
            rbm.partial_fit(X)
        except FloatingPointError as exc:
            assert "learning_rate" in str(exc)
            assert_same_state(state(rbm), before)
            assert np.isfinite(rbm.W).all()
            break
    else:
        pytest.fail("updates of 1e38 * gradient must overflow float32")


# --------------------------------------------------------------------------- 5. save / load


def _files(directory):
    return sorted(os.listdir(directory))


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_save_load_roundtrip_and_identical_continuation(tmp_path, method):
    X = bas()
    rbm = ef.RBM(9, 6, seed=21, method=method, momentum=0.6, weight_decay=1e-3, k=2,
                 batch_size=5, epochs=3, learning_rate=0.08)
    rbm.fit(X)
    path = tmp_path / "model.npz"
    assert rbm.save(path) is None
    assert _files(tmp_path) == ["model.npz"]   # atomic: no temp file left behind
    back = ef.RBM.load(path)
    assert type(back) is ef.RBM
    assert_same_state(state(back), state(rbm))
    assert back.device_ == rbm.device_
    if method == "pcd":
        assert back._chains is not None and back._chains.shape == (5, 9)
    else:
        assert back._chains is None
    assert np.array_equal(back.components_, rbm.components_)
    # continue both: bit-identical
    rbm.fit(X)
    back.fit(X)
    rbm.partial_fit(X[:3])
    back.partial_fit(X[:3])
    assert_same_state(state(back), state(rbm))
    assert np.array_equal(back.sample(7, 5), rbm.sample(7, 5))
    # str paths work too, and overwriting replaces the file atomically
    back.save(str(path))
    assert _files(tmp_path) == ["model.npz"]
    assert_same_state(state(ef.RBM.load(str(path))), state(rbm))


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_interrupted_training_equals_uninterrupted(tmp_path, method):
    X = bas()
    kw = dict(seed=5, method=method, momentum=0.5, batch_size=4, epochs=2)
    a = ef.RBM(9, 8, **kw)
    a.fit(X)
    a.save(tmp_path / "half.npz")
    b = ef.RBM.load(tmp_path / "half.npz")
    b.fit(X)
    full = ef.RBM(9, 8, **{**kw, "epochs": 4})
    full.fit(X)
    for name in ("W", "b", "c"):
        assert np.array_equal(getattr(b, name), getattr(full, name)), name
    assert b.step == full.step and b.epochs_trained_ == 4


def test_save_load_with_seed_none_keeps_the_drawn_seed(tmp_path):
    rbm = ef.RBM(5, 3, method="pcd", batch_size=4, epochs=1)
    rbm.fit(bas()[:, :5])
    rbm.save(tmp_path / "m.npz")
    back = ef.RBM.load(tmp_path / "m.npz")
    assert back.seed is None and back.seed_ == rbm.seed_
    assert np.array_equal(back.gibbs(np.ones((3, 5)), 3), rbm.gibbs(np.ones((3, 5)), 3))


def test_save_without_npz_suffix_writes_the_given_name(tmp_path):
    rbm = random_rbm(4, 3)
    rbm.save(tmp_path / "model.bin")
    assert _files(tmp_path) == ["model.bin"]
    assert np.array_equal(ef.RBM.load(tmp_path / "model.bin").W, rbm.W)


def test_save_with_numpy_integer_seed(tmp_path):
    rbm = ef.RBM(4, 3, seed=np.int64(7))
    rbm.save(tmp_path / "m.npz")
    back = ef.RBM.load(tmp_path / "m.npz")
    assert back.seed_ == 7 and back.seed == 7


def test_failed_save_leaves_old_file_and_no_temp_files(tmp_path, monkeypatch):
    import ebmfast.rbm as rbm_module

    path = tmp_path / "m.npz"
    old = random_rbm(4, 3, seed=1)
    old.save(path)

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(rbm_module.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        random_rbm(4, 3, seed=2).save(path)
    monkeypatch.undo()
    assert _files(tmp_path) == ["m.npz"]
    assert np.array_equal(ef.RBM.load(path).W, old.W)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ef.RBM.load(tmp_path / "nope.npz")
    with pytest.raises((FileNotFoundError, OSError)):
        ef.RBM(3, 2).save(tmp_path / "no_such_dir" / "m.npz")
    assert _files(tmp_path) == []


def _bad_files(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good.npz"
    random_rbm(4, 3).save(good)
    files = {}
    files["random-bytes"] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    files["empty"] = b""
    files["text"] = b"W = [[1, 2], [3, 4]]\n"
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    np.savez(tmp_path / "other.npz", a=np.arange(3), b=np.ones(2))
    np.savez(tmp_path / "other-meta.npz", meta=np.array('{"format": "something/else"}'))
    np.savez(tmp_path / "meta-not-json.npz", meta=np.array("not json {"))
    np.savez(tmp_path / "meta-list.npz", meta=np.array("[1, 2, 3]"))
    np.save(tmp_path / "plain.npy", np.zeros((4, 3)))
    np.save(tmp_path / "pickled.npy", np.array([{"W": 1}], dtype=object), allow_pickle=True)
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "missing-W.npz", **{k: v for k, v in arrays.items() if k != "W"})
    np.savez(tmp_path / "wrong-shape.npz", **{**arrays, "W": np.zeros((5, 5), np.float32)})
    np.savez(tmp_path / "nan-W.npz", **{**arrays, "W": np.full((4, 3), np.nan, np.float32)})
    os.remove(good)
    return sorted(p for p in tmp_path.iterdir())


def test_load_rejects_corrupt_and_foreign_files(tmp_path):
    paths = _bad_files(tmp_path)
    assert len(paths) == 12
    for path in paths:
        with pytest.raises(ValueError) as info:
            ef.RBM.load(path)
        assert str(path.name) in str(info.value) or "W" in str(info.value), path.name


def test_load_rejects_file_with_format_tag_but_missing_fields(tmp_path):
    good = tmp_path / "good.npz"
    random_rbm(4, 3).save(good)
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "bad.npz", **{**arrays, "meta": np.array('{"format": "ebmfast.RBM/1"}')})
    with pytest.raises(ValueError):
        ef.RBM.load(tmp_path / "bad.npz")


def test_load_rejects_truncated_npz_without_leaking_the_file(tmp_path):
    import gc
    import warnings

    good = tmp_path / "good.npz"
    random_rbm(4, 3).save(good)
    raw = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "zip-garbage.npz").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("truncated.npz", "zip-garbage.npz"):
            with pytest.raises(ValueError, match="not an ebmfast RBM file"):
                ef.RBM.load(tmp_path / name)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_gibbs_tables_follow_the_weights():
    # Large Gibbs calls reuse subset tables of W kept by the model; after any change of W
    # (training, assignment) they must be rebuilt, so every call matches the reference
    # computed with the weights of that moment.
    rng = np.random.default_rng(4)
    rbm = ef.RBM(20, 12, seed=8, learning_rate=0.1, batch_size=300)
    V = (rng.random((300, 20)) < 0.3).astype(np.float32)

    def check():
        step = rbm.step
        got = rbm.gibbs(V, k=1)
        want, _ = ref.gibbs(rbm.W, rbm.b, rbm.c, V, 1, 1.0, rbm.seed_, step, 0)
        assert np.mean(got == want) >= 0.999

    check()
    check()                                   # tables reused
    rbm.partial_fit(V)                        # W changes by an update
    check()
    rbm.W = rng.standard_normal((20, 12))     # W changes by assignment
    check()


def test_fit_monitors_record_history():
    X = ef.datasets.bars_and_stripes(3)
    rbm = ef.RBM(9, 16, epochs=2000, learning_rate=0.1, momentum=0.5, batch_size=14, seed=0)
    rbm.fit(X, monitor="recon")
    recon = [e["recon_error"] for e in rbm.history_]
    # the untrained model reconstructs at ~2.25 squared units; trained, almost exactly
    assert len(recon) == 2000 and recon[-1] < 0.1 * recon[0]
    pl_model = ef.RBM(9, 16, epochs=2000, learning_rate=0.1, momentum=0.5, batch_size=14, seed=0)
    pl_model.fit(X, monitor="pl")
    pl = [e["pseudo_log_likelihood"] for e in pl_model.history_]
    # from ~9 log(1/2) untrained to near 0 (the 14 patterns are nearly deterministic given
    # their other pixels)
    assert pl[0] < -6.0 and pl[-1] > -1.0
    assert pl[-1] == pytest.approx(pl_model.score_samples(X).mean())
    with pytest.raises(ValueError, match="monitor"):
        rbm.fit(X, monitor="loss")
