"""Boltzmann machine on the spin-chain kernel: sampling against exact enumeration, the
Monte-Carlo gradient against the exact one, training, completion, labels, bad input."""
import numpy as np
import pytest

import ebmfast as ef
from ebmfast.bm import _all_binary

scipy_stats = pytest.importorskip("scipy.stats")


def random_bm(n_visible, n_hidden, seed, scale=0.5, **kw):
    rng = np.random.default_rng(seed)
    m = ef.BoltzmannMachine(n_visible, n_hidden, seed=seed, **kw)
    n = m.n_units
    W = np.triu(rng.standard_normal((n, n)) * scale, 1)
    m.W = W + W.T
    m.b = rng.standard_normal(n) * scale
    return m


def chi_square_p(states, probs):
    n = states.shape[1]
    idx = (states @ (1 << np.arange(n)[::-1])).astype(np.int64)
    counts = np.bincount(idx, minlength=2**n)
    expected = probs * len(states)
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    return scipy_stats.chi2.sf(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum(), keep.sum() - 1)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
def test_sampling_matches_enumeration(temperature):
    m = random_bm(6, 4, seed=int(temperature * 10))
    S = m.sample(20000, n_sweeps=100, temperature=temperature)
    Y = _all_binary(m.n_units)
    logp = -m.energy(Y) / temperature
    p = np.exp(logp - logp.max())
    # 20000 independent chains after 100 sweeps of a 10-unit model; false failure 1e-4.
    assert chi_square_p(S, p / p.sum()) > 1e-4


def test_monte_carlo_gradient_converges_to_exact():
    m = random_bm(6, 4, seed=5)
    X = (np.random.default_rng(1).random((20, 6)) < 0.5).astype(float)
    gW, gb = m.exact_gradient(X)
    errors = []
    for reps in (5, 50, 500):
        mc = ef.BoltzmannMachine(6, 4, seed=7, n_chains=20 * reps, clamped_sweeps=30,
                                 free_sweeps=60)
        mc.W, mc.b = m.W.copy(), m.b.copy()
        dW, db = mc.gradient(np.repeat(X, reps, axis=0))
        errors.append(max(np.abs(dW - gW).max(), np.abs(db - gb).max()))
        # Each entry is a difference of two means of {0,1} products over N = 20 reps samples
        # (clamped) and N chains (free): sd <= sqrt(2 * 0.25 / N); 5 sd over ~60 entries
        # fails with probability < 1e-4.
        assert errors[-1] < 5 * np.sqrt(0.5 / (20 * reps))
    assert errors[2] < errors[0]


def test_training_raises_exact_log_likelihood():
    X = ef.datasets.bars_and_stripes(3)
    m = ef.BoltzmannMachine(9, 6, learning_rate=0.05, batch_size=14, epochs=300, n_chains=100,
                            free_sweeps=2, seed=3)
    before = m.log_likelihood_exact(X).mean()
    m.fit(X)
    after = m.log_likelihood_exact(X).mean()
    assert before == pytest.approx(-9 * np.log(2), abs=1e-9)  # W = 0, b = 0: uniform
    assert after > before + 1.0


def test_fully_visible_bm_and_completion():
    # Two prototypes plus 5% noise: completion of half-hidden patterns must beat chance.
    rng = np.random.default_rng(4)
    proto = (rng.random((2, 16)) < 0.5).astype(float)
    X = proto[rng.integers(0, 2, 600)]
    X = np.where(rng.random(X.shape) < 0.05, 1 - X, X)
    m = ef.BoltzmannMachine(16, 0, learning_rate=0.1, batch_size=50, epochs=40, n_chains=100, seed=2)
    m.fit(X)
    test = proto[rng.integers(0, 2, 200)]
    mask = np.zeros(16, bool)
    mask[:8] = True
    done, marg = m.complete(test, mask, n_sweeps=100, average_last=50)
    acc = (done[:, 8:] == test[:, 8:]).mean()
    # Chance is 0.5; with 1600 completed bits, 0.5 + 5 sd = 0.5625. The noise level of the
    # data bounds what the model can learn: expect ~0.9.
    assert acc > 0.75
    assert np.all(done[:, :8] == test[:, :8])
    assert marg.shape == test.shape and np.all((marg >= 0) & (marg <= 1))


def test_labels_on_digits():
    X, y = ef.datasets.digits(return_labels=True)
    y = np.asarray(y)
    idx = np.random.default_rng(0).permutation(len(X))
    tr, te = idx[:1400], idx[1400:]
    m = ef.BoltzmannMachine(64, 0, n_labels=10, learning_rate=0.02, batch_size=50, epochs=10,
                            n_chains=100, seed=1)
    m.fit(X[tr], y[tr])
    proba = m.predict_proba(X[te])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    acc = (proba.argmax(axis=1) == y[te]).mean()
    assert acc > 0.8  # 10 classes: chance 0.1; measured ~0.87
    g = m.generate(3, 5, n_sweeps=50)
    assert g.shape == (5, 64) and set(np.unique(g)) <= {0.0, 1.0}


def test_exact_utilities_agree():
    m = random_bm(5, 3, seed=9)
    X = (np.random.default_rng(2).random((7, 5)) < 0.5).astype(float)
    # log-likelihood of all visible patterns sums to one
    V = _all_binary(5)
    assert np.exp(m.log_likelihood_exact(V)).sum() == pytest.approx(1.0, abs=1e-10)
    # exact gradient = finite difference of the mean log-likelihood
    gW, gb = m.exact_gradient(X)
    eps = 1e-6
    m.b[2] += eps
    up = m.log_likelihood_exact(X).mean()
    m.b[2] -= 2 * eps
    down = m.log_likelihood_exact(X).mean()
    m.b[2] += eps
    assert (up - down) / (2 * eps) == pytest.approx(gb[2], abs=1e-6)
    m.W[1, 6] += eps
    m.W[6, 1] += eps
    up = m.log_likelihood_exact(X).mean()
    m.W[1, 6] -= 2 * eps
    m.W[6, 1] -= 2 * eps
    down = m.log_likelihood_exact(X).mean()
    assert (up - down) / (2 * eps) == pytest.approx(gW[1, 6], abs=1e-6)


@pytest.mark.parametrize("call,exc", [
    (lambda: ef.BoltzmannMachine(0), ValueError),
    (lambda: ef.BoltzmannMachine(4, n_labels=1), ValueError),
    (lambda: ef.BoltzmannMachine(4, method="cd"), ValueError),
    (lambda: ef.BoltzmannMachine(4).fit(np.full((3, 4), 0.5)), ValueError),
    (lambda: ef.BoltzmannMachine(4).fit(np.ones((3, 5))), ValueError),
    (lambda: ef.BoltzmannMachine(4).fit(np.ones((3, 4)), [0, 1, 0]), ValueError),
    (lambda: ef.BoltzmannMachine(4, n_labels=2).fit(np.ones((3, 4))), ValueError),
    (lambda: ef.BoltzmannMachine(4, n_labels=2).fit(np.ones((3, 4)), [0, 2, 1]), ValueError),
    (lambda: ef.BoltzmannMachine(4).complete(np.ones((2, 4)), np.ones(3, bool)), ValueError),
    (lambda: ef.BoltzmannMachine(4).complete(np.ones((2, 4)), np.ones(4)), TypeError),
    (lambda: ef.BoltzmannMachine(4).sample(2, 3, temperature=0.0), ValueError),
    (lambda: ef.BoltzmannMachine(4).predict(np.ones((2, 4))), ValueError),
    (lambda: ef.BoltzmannMachine(30).log_partition_exact(), ValueError),
])
def test_bad_input(call, exc):
    with pytest.raises(exc):
        call()


def test_gram_and_bench_smoke(tmp_path):
    Y = (np.random.default_rng(0).random((37, 19)) < 0.5).astype(np.float32)
    np.testing.assert_array_equal(ef._core.gram(Y), Y.T @ Y)
    from ebmfast.cli import main
    assert main(["bench", "--suite", "bm", "--smoke", "--out", str(tmp_path)]) == 0
    assert list(tmp_path.glob("bm_cpu_*.json"))


def test_demo_bm(tmp_path, capsys):
    from ebmfast.cli import main
    assert main(["demo", "bm", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    accs = [float(line.split("test accuracy ")[1].split()[0]) for line in out.splitlines() if "test accuracy" in line]
    assert len(accs) == 2 and min(accs) > 0.8
    assert (tmp_path / "bm_generated_by_label.png").exists()


def test_device_argument():
    assert ef.BoltzmannMachine(4).device == "cpu"  # "auto": CPU until the CUDA path is verified
    with pytest.raises(ValueError, match="device"):
        ef.BoltzmannMachine(4, device="tpu")
    if not ef.cuda_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            ef.BoltzmannMachine(4, device="cuda")


@pytest.mark.cuda
def test_cuda_sampling_matches_cpu():
    if not ef.cuda_available():
        pytest.skip("no CUDA device available")
    pytest.importorskip("cupy")
    a = random_bm(6, 4, seed=3)
    b = random_bm(6, 4, seed=3, device="cuda")
    # same Philox stream; expf vs the CPU's polynomial may move a rare decision
    assert np.mean(a.sample(500, n_sweeps=20) == b.sample(500, n_sweeps=20)) >= 0.999


# --------------------------------------------------------------------------- fused CPU step

def _random_state(m, rng, scale=0.5):
    n = m.n_units
    W = np.triu(rng.standard_normal((n, n)) * scale, 1)
    vW = np.triu(rng.standard_normal((n, n)) * 0.01, 1)
    m.W, m._vW = W + W.T, vW + vW.T
    m.b, m._vb = rng.standard_normal(n) * scale, rng.standard_normal(n) * 0.01


# units 1, 7, 33, 65 (visible, labels, hidden); batch rows and chains straddle the 16-chain
# blocks of the kernel.
@pytest.mark.parametrize("method", ["pcd", "restart"])
@pytest.mark.parametrize("rows", [1, 15, 17, 33])
@pytest.mark.parametrize("sizes", [(1, 0, 0), (3, 0, 4), (20, 3, 10), (30, 5, 30)])
def test_fused_step_equals_the_composition_of_phases(sizes, rows, method, asymmetric_velocity=False):
    """_core.bm_step (one call: both phases, statistics, update) against reference.bm_step
    (NumPy: init, clamped sweeps, free sweeps, Y^T Y, momentum update) on the same stream."""
    from ebmfast import _core
    from ebmfast import reference as R
    nv, nl, nh = sizes
    rng = np.random.default_rng(rows * 100 + sum(sizes))
    m = ef.BoltzmannMachine(nv, nh, n_labels=nl, seed=5, method=method, n_chains=rows + 2,
                            clamped_sweeps=3, free_sweeps=2, learning_rate=0.1, momentum=0.5,
                            weight_decay=1e-3, batch_size=rows, epochs=1)
    _random_state(m, rng)
    if asymmetric_velocity:  # the update's general path (reads W' by columns too)
        m._vW = m._vW + np.triu(rng.standard_normal(m._vW.shape) * 0.01)
    X = (rng.random((rows, nv)) < 0.5).astype(float)
    y = rng.integers(0, nl, rows) if nl else None
    # fit's batch order (the Philox shuffle of epoch 0): row r of the batch is chain r
    order = np.argsort(_core.philox_uniforms(m.seed_, R.STREAM_SHUFFLE, 0, 1, rows)[0], kind="stable")
    D = m._data(X, y)[order]
    n, n_obs = m.n_units, m.n_observed
    chains = (rng.random((m.n_chains, n)) < 0.5).astype(float) if method == "pcd" else None
    m.chains_ = chains
    step = 40  # crosses no refresh boundary of the reference; any step will do
    m.step_ = step
    ref = R.bm_step(m.W, m.b, m._vW, m._vb, D, chains, n_observed=n_obs, seed=m.seed_, step=step,
                    clamped_sweeps=3, free_sweeps=2, learning_rate=0.1, momentum=0.5,
                    weight_decay=1e-3)
    P_ref, Q_ref, dW_ref, db_ref, W_ref, b_ref, vW_ref, vb_ref = ref

    # the kernel with its states exposed
    cs = 3 if nh else 0
    P = np.empty((rows, n), np.int8)
    Q = np.empty((Q_ref.shape[0], n), np.int8)
    dW, db = np.empty((n, n)), np.empty(n)
    assert _core.bm_step(m.W, m.b, m._vW, m._vb, D.astype(np.uint8), np.arange(rows), chains,
                         m.seed_, step, cs, step + cs, 2, 2**20, None, dW, db,
                         clamped_out=P, free_out=Q)
    # Same Philox units; the kernel's float32 fields could move a decision only where u lies
    # within ~1e-6 of p (~1e-6 per decision, a few 1e3 decisions here): states identical.
    np.testing.assert_array_equal(P > 0, P_ref > 0)
    np.testing.assert_array_equal(Q > 0, Q_ref > 0)
    # the statistics are counts / rows in float64 on both sides: identical states, equal bits
    np.testing.assert_array_equal(dW, dW_ref)
    np.testing.assert_array_equal(db, db_ref)

    # the model's update (fit on that one batch) against the reference update
    m.fit(X, y) if nl else m.fit(X)
    # A few float64 roundings of the same operations (the kernel does them in bm.py's order
    # without fused multiply-adds, so in practice the bits agree): 4 ulp of the operands.
    eps = np.finfo(np.float64).eps
    for got, want, scale in ((m.W, W_ref, np.abs(ref[4]) + np.abs(vW_ref)),
                             (m._vW, vW_ref, np.abs(vW_ref) + 0.1 * np.abs(dW_ref) + 1e-300),
                             (m.b, b_ref, np.abs(b_ref) + np.abs(vb_ref)),
                             (m._vb, vb_ref, np.abs(vb_ref) + 0.1 * np.abs(db_ref) + 1e-300)):
        assert np.all(np.abs(got - want) <= 4 * eps * scale)
    assert np.array_equal(m.W, m.W.T) and not np.diag(m.W).any()
    assert m.step_ == step + cs + 2
    if method == "pcd":
        np.testing.assert_array_equal(m.chains_, Q_ref)


@pytest.mark.parametrize("rows", [15, 33])
def test_fused_step_with_an_asymmetric_velocity(rows):
    test_fused_step_equals_the_composition_of_phases((20, 3, 10), rows, "pcd", asymmetric_velocity=True)


def test_fused_gradient_equals_the_kernel_composition():
    """gradient() on the CPU (one fused call) against bm.py's composition of ising_chains
    calls and the Gram of the states, which the CUDA path runs: same stream, same numbers."""
    X, y = ef.datasets.digits(return_labels=True)
    X, y = X[:37], np.asarray(y)[:37]
    a, b = (ef.BoltzmannMachine(64, 19, n_labels=10, seed=3, n_chains=21, clamped_sweeps=4,
                                free_sweeps=3) for _ in range(2))
    rng = np.random.default_rng(7)
    _random_state(a, rng, scale=0.2)
    b.W, b.b = a.W.copy(), a.b.copy()
    for _ in range(2):  # the second call continues the persistent chains
        dW, db = a.gradient(X, y)
        dW2, db2 = b._gradient(b._data(X, y))
        np.testing.assert_array_equal(dW, dW2)
        np.testing.assert_array_equal(db, db2)
        np.testing.assert_array_equal(a.chains_, b.chains_)
        assert a.step_ == b.step_


def test_fused_step_rejects_bad_arguments():
    from ebmfast import _core
    n = 5
    W, b = np.zeros((n, n)), np.zeros(n)
    D = np.zeros((4, 3), np.uint8)
    out = (np.empty((n, n)), np.empty(n))
    with pytest.raises(ValueError, match="rows must index data"):
        _core.bm_step(W, b, W, b, D, np.array([0, 4]), None, 1, 0, 1, 1, 1, 2**20, None, *out)
    with pytest.raises(ValueError, match="must not share memory"):
        _core.bm_step(W, b, W, b, D, np.array([0]), None, 1, 0, 1, 1, 1, 2**20, None, W, b)
    with pytest.raises(ValueError, match="chains"):
        _core.bm_step(W, b, W, b, D, np.array([0]), np.zeros((3, 4)), 1, 0, 1, 1, 1, 2**20, None, *out)
    with pytest.raises(ValueError, match="W must have shape"):
        m = ef.BoltzmannMachine(3, 2)
        m.W = np.zeros((4, 4))
        m.fit(np.zeros((2, 3)))


def _fit_state(m):
    return (m.W, m.b, m._vW, m._vb, m.chains_, m.step_)


@pytest.mark.parametrize("method", ["pcd", "restart"])
def test_fit_in_chunks_of_batches_equals_batch_by_batch(monkeypatch, method):
    """fit hands the kernel whole runs of mini-batches (_core.bm_steps); one batch per call
    gives the same states bit for bit (37 rows: a partial last batch; two epochs)."""
    rng = np.random.default_rng(11)
    X = (rng.random((37, 9)) < 0.4).astype(float)
    y = rng.integers(0, 3, 37)
    kw = dict(n_labels=3, seed=4, method=method, n_chains=19, batch_size=8, epochs=2,
              clamped_sweeps=2, free_sweeps=2, learning_rate=0.2, momentum=0.5, weight_decay=1e-3)
    whole = ef.BoltzmannMachine(9, 5, **kw).fit(X, y)
    calls = []
    core_steps = ef.bm._core.bm_steps
    monkeypatch.setattr(ef.bm._core, "bm_steps", lambda *a: calls.append(a[5].size) or core_steps(*a))
    monkeypatch.setattr(ef.BoltzmannMachine, "_batches_per_call", lambda self, n: 1)
    single = ef.BoltzmannMachine(9, 5, **kw).fit(X, y)
    assert calls == [8, 8, 8, 8, 5] * 2
    for a, b in zip(_fit_state(whole), _fit_state(single)):
        np.testing.assert_array_equal(a, b)


def test_a_diverging_batch_keeps_the_state_of_the_batches_before_it(monkeypatch):
    rng = np.random.default_rng(0)
    X = (rng.random((37, 6)) < 0.5).astype(float)
    kw = dict(seed=1, batch_size=5, momentum=0.9, learning_rate=2e35, epochs=1)
    states = []
    for per_call in (None, 1, 3):
        if per_call is not None:
            monkeypatch.setattr(ef.BoltzmannMachine, "_batches_per_call", lambda self, n: per_call)
        m = ef.BoltzmannMachine(6, 4, **kw)
        with pytest.raises(FloatingPointError, match="epoch 1.*learning_rate"):
            m.fit(X)
        assert np.isfinite(m.W).all() and np.abs(m.W).max() > 1e34  # some updates were taken
        assert 0 < m.step_ < 1 + 8 * 6 and m.epochs_trained_ == 0
        states.append(_fit_state(m))
    for other in states[1:]:
        for a, b in zip(states[0], other):
            np.testing.assert_array_equal(a, b)


def test_bm_steps_rejects_bad_arguments():
    from ebmfast import _core
    n = 5
    W, b = np.zeros((n, n)), np.zeros(n)
    D = np.zeros((4, 3), np.uint8)
    hyper = (0.1, 0.5, 0.0, True)
    new = lambda: (np.empty((n, n)), np.empty(n), np.empty((n, n)), np.empty(n), None)  # noqa: E731
    args = (W, b, W, b, D, np.arange(4), 2, None, 1, 0, 1, 1, 2**20, hyper)
    assert _core.bm_steps(*args, new(), new()) == (2, 1)
    with pytest.raises(ValueError, match="batch_size"):
        _core.bm_steps(*args[:6], 0, *args[7:], new(), new())
    o = new()
    with pytest.raises(ValueError, match="spare must not share memory"):
        _core.bm_steps(*args, o, o)
    with pytest.raises(ValueError, match="must not share memory with inputs"):
        _core.bm_steps(*args, new(), (W, b, np.empty((n, n)), np.empty(n), None))
    with pytest.raises(ValueError, match="float64"):
        _core.bm_steps(*args, new(), (np.empty((n, n), np.float32),) + new()[1:])
    with pytest.raises(ValueError, match="chains"):  # persistent chains need both chain arrays
        _core.bm_steps(*args[:7], np.zeros((3, n)), *args[8:], new(), new())
