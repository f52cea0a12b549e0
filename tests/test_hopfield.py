"""Hopfield networks: the async recall kernel against the NumPy reference on the shared
Philox stream, the energy descent of async updates (property test), storage rules
(Hebbian capacity and noisy recall, SGD and pseudoinverse on correlated patterns where
Hebbian fails), sync 2-cycles, stochastic sampling against exact enumeration, annealing to
the exact ground state, and bad input."""
import itertools
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ebmfast as ef
from ebmfast import reference as ref

scipy_stats = pytest.importorskip("scipy.stats")


def random_model(n, rng, scale=1.0, bias=0.3):
    A = rng.standard_normal((n, n)) * scale
    W = ((A + A.T) / 2).astype(np.float32)
    np.fill_diagonal(W, 0.0)
    b = (rng.standard_normal(n) * bias).astype(np.float32)
    return W, b


def random_states(m, n, rng):
    return np.where(rng.random((m, n)) < 0.5, 1, -1).astype(np.int8)


def model(W, b=None):
    h = ef.Hopfield(W.shape[0], seed=0)
    h.W = W
    if b is not None:
        h.b = b
    return h


def all_spins(n):
    return np.array(list(itertools.product([-1, 1], repeat=n)), dtype=np.int8)


# ------------------------------------------------------------------ kernel vs reference

@pytest.mark.parametrize("order", ["sequential", "random"])
@pytest.mark.parametrize("n,cues", [(n, c) for n in (1, 7, 31, 33, 100) for c in (1, 15, 16, 17, 33)]
                         + [(33, 129), (17, 257)]  # and across the kernel's 128-cue tiles
                         # >= 64 cues: first fields from the spin table (every partial last
                         # group of four, and the panel widths 128, 64 and 16)
                         + [(n, 64) for n in (1, 2, 3, 5, 6, 7, 100)] + [(513, 65)])
def test_recall_matches_reference(cues, n, order):
    rng = np.random.default_rng(zlib.crc32(f"{cues}{n}{order}".encode()))
    W, b = random_model(n, rng)
    S = random_states(cues, n, rng)
    r = model(W, b).recall(S, order=order, seed=77)
    Y, sweeps, conv = ref.hopfield_recall(W, b, S, 100, random_order=order == "random", seed=77)
    # Gaussian weights: no field lies within float32 rounding of a tie, so the float32
    # kernel and the float64 reference take identical decisions.
    np.testing.assert_array_equal(r.states, Y)
    np.testing.assert_array_equal(r.sweeps, sweeps)
    np.testing.assert_array_equal(r.converged, conv)
    assert r.converged.all() and not r.cycled.any()
    assert model(W, b).stable(r.states).all()
    np.testing.assert_allclose(r.energies, ref.hopfield_energy(W, b, Y), rtol=1e-12)


def spin_table_fields(T, J, h, S):
    """h + S.J from the flat spin table, read as spin_table.h lays it out: column panels of
    `width` floats, each [8 * groups, width]; group g's row c (c < 8) holds the sum over
    b < 4 of (+1 if bit b of c else -1) J[4g + b], and a code c >= 8 reads row 15 - c negated."""
    n = J.shape[0]
    groups = -(-n // 4)
    width = 128
    while width > 16 and 8 * groups * width * 4 > 512 * 1024:
        width //= 2
    panels = -(-n // width)
    assert T.shape == (panels * 8 * groups * width,)
    Tp = T.reshape(panels, 8 * groups, width).transpose(1, 0, 2).reshape(8 * groups, -1)[:, :n]
    bits = np.zeros((S.shape[0], 4 * groups), np.int64)
    bits[:, :n] = S > 0
    code = (bits.reshape(-1, groups, 4) << np.arange(4)).sum(axis=2)
    row = 8 * np.arange(groups) + np.where(code >= 8, 15 - code, code)
    sign = np.where(code >= 8, -1.0, 1.0)
    return h + np.einsum("rg,rgj->rj", sign, Tp[row].astype(np.float64))


@pytest.mark.parametrize("n", [1, 3, 4, 5, 64, 513, 2050])
def test_spin_table_holds_the_signed_group_sums(n):
    rng = np.random.default_rng(n)
    W, b = random_model(n, rng)
    T = ef._core.spin_table(W)
    S = random_states(9, n, rng)
    np.testing.assert_allclose(spin_table_fields(T, W, b, S), S.astype(np.float64) @ W + b,
                               rtol=1e-5, atol=1e-4 * np.sqrt(n))
    with pytest.raises(ValueError, match="table"):
        ef._core.hopfield_recall(W, b, S, 5, False, 0, 0, 0, T[:-1])
    with pytest.raises(ValueError, match="square"):
        ef._core.spin_table(np.zeros((n, n + 1), np.float32))


def test_recall_of_a_wide_model_matches_reference():
    # n = 2050: the spin table's 16-wide panels. Stored patterns plus Gaussian jitter (no
    # ties), cues near them: a few sweeps, so the float64 reference stays quick.
    rng = np.random.default_rng(2050)
    n = 2050
    P = random_states(40, n, rng).astype(np.float32)
    W, b = random_model(n, rng, scale=0.02, bias=0.1)
    W += P.T @ P / 40
    np.fill_diagonal(W, 0.0)
    S = P[rng.integers(0, 40, 70)].astype(np.int8)
    S[rng.random(S.shape) < 0.15] *= -1
    r = model(W, b).recall(S)
    Y, sweeps, conv = ref.hopfield_recall(W, b, S, 100)
    np.testing.assert_array_equal(r.states, Y)
    np.testing.assert_array_equal(r.sweeps, sweeps)
    assert conv.all() and r.converged.all() and (Y != S).any(axis=1).all()


def test_recall_max_sweeps_stops_early_and_continues():
    rng = np.random.default_rng(3)
    W, b = random_model(40, rng)
    S = random_states(20, 40, rng)
    h = model(W, b)
    full = h.recall(S)
    assert full.sweeps.max() >= 2  # else the cut below tests nothing
    part = h.recall(S, max_sweeps=1)
    assert np.array_equal(part.converged, full.sweeps <= 1)
    assert np.all(part.sweeps == np.minimum(full.sweeps, 1))
    rest = h.recall(part.states)  # sequential sweeps continue the same run
    np.testing.assert_array_equal(rest.states, full.states)
    np.testing.assert_array_equal(rest.sweeps + part.sweeps, full.sweeps)


def test_ties_leave_the_unit_unchanged():
    # z_0 = y_1 + y_2 = 0 and z_1 = y_0 - y_2 = 0 at y = (-1, 1, -1): both keep their value.
    W = np.array([[0, 1, 1], [1, 0, -1], [1, -1, 0]], np.float32)
    y = np.array([[-1, 1, -1]], np.int8)
    h = model(W)
    for mode in ("async", "sync"):
        r = h.recall(y, mode=mode)
        np.testing.assert_array_equal(r.states, y)
        assert r.sweeps[0] == 0 and r.converged[0]
    assert h.stable(y)[0]
    assert not h.stable(np.array([[1, -1, -1]]))[0]  # z_0 = -2 against y_0 = +1


# ------------------------------------------------------------------ energy descent

@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 12), m=st.integers(1, 20), seed=st.integers(0, 2**32 - 1),
       order=st.sampled_from(["sequential", "random"]))
def test_async_never_increases_energy(n, m, seed, order):
    # Integer weights and biases: float32 fields are exact, so every energy is exact and a
    # single wrong-way flip (or a flip on a tie that should not happen) is caught.
    rng = np.random.default_rng(seed)
    A = rng.integers(-3, 4, (n, n))
    W = np.triu(A, 1)
    W = (W + W.T).astype(np.float32)
    b = rng.integers(-2, 3, n).astype(np.float32)
    h = model(W, b)
    S = random_states(m, n, rng)
    E_prev = h.energy(S)
    for _ in range(6):  # one sweep at a time; each call continues the last one's states
        r = h.recall(S, max_sweeps=1, order=order, seed=seed)
        assert np.all(r.energies <= E_prev)
        flipped = np.any(r.states != S, axis=1)
        assert np.all(r.energies[flipped] < E_prev[flipped])  # each flip lowers E by 2|z| > 0
        S, E_prev = r.states, r.energies
    final = h.recall(S, order=order, seed=seed)
    assert final.converged.all() and h.stable(final.states).all()


# ------------------------------------------------------------------ storage rules

def test_hebbian_matches_reference_and_recalls_noisy_cues():
    rng = np.random.default_rng(11)
    n, K = 200, 10
    P = random_states(K, n, rng)
    h = ef.Hopfield(n).store(P)
    np.testing.assert_allclose(h.W, ref.hopfield_hebbian(P), rtol=1e-6, atol=1e-7)
    assert np.array_equal(h.W, h.W.T) and not np.diag(h.W).any()
    assert h.stable(P).all()
    np.testing.assert_allclose(h.energy(), ref.hopfield_energy(h.W, h.b, P), rtol=1e-12)
    # 20 noisy cues per pattern, 10% of the bits flipped (exactly 20 of 200)
    cues = np.repeat(P, 20, axis=0)
    target = cues.copy()
    for row in cues:
        row[rng.choice(n, 20, replace=False)] *= -1
    for mode in ("async", "sync"):
        r = h.recall(cues, mode=mode)
        hit = np.all(r.states == target, axis=1).mean()
        assert hit >= 0.95, (mode, hit)
    # K/n = 0.05 is far below capacity: a random cue set is no shortcut - random states do
    # not land on the patterns.
    r = h.recall(random_states(50, n, rng))
    assert np.all(r.states[:, None, :] == P[None], axis=2).any(axis=1).mean() < 0.95


def test_hebbian_append_equals_storing_together():
    rng = np.random.default_rng(12)
    P = random_states(7, 30, rng)
    a = ef.Hopfield(30).store(P[:3]).store(P[3:], append=True)
    b = ef.Hopfield(30).store(P)
    np.testing.assert_allclose(a.W, b.W, atol=1e-6)
    c = ef.Hopfield(30).store(P[:3]).store(P[3:])  # replaces
    np.testing.assert_allclose(c.W, ref.hopfield_hebbian(P[3:]), atol=1e-6)


def correlated_patterns(n, K, rng, noise=0.15):
    """K patterns that are noisy copies of one base pattern: Hebbian W is dominated by the
    base, which pulls every pattern to it."""
    base = np.where(rng.random(n) < 0.5, 1, -1)
    P = np.tile(base, (K, 1))
    P[rng.random(P.shape) < noise] *= -1
    return P.astype(np.int8)


@pytest.mark.parametrize("dynamics", ["async", "gibbs"])
def test_sgd_and_pseudoinverse_store_correlated_patterns(dynamics):
    rng = np.random.default_rng(13)
    n, K = 100, 8
    P = correlated_patterns(n, K, rng)
    hebb = ef.Hopfield(n).store(P)
    assert hebb.stable(P).sum() <= K // 2  # Hebbian fails on most of them
    pinv = ef.Hopfield(n).store(P, rule="pseudoinverse")
    np.testing.assert_allclose(pinv.W, ref.hopfield_pseudoinverse(P), atol=1e-5)
    assert pinv.stable(P).all()
    sgd = ef.Hopfield(n).store(P, rule="sgd", learning_rate=0.05, epochs=200, k=3,
                               dynamics=dynamics, temperature=0.5, batch_size=4, seed=5)
    assert np.array_equal(sgd.W, sgd.W.T) and not np.diag(sgd.W).any()
    assert sgd.stable(P).all()
    # and they attract: 5% noisy cues come back
    cues = np.repeat(P, 5, axis=0)
    noisy = cues.copy()
    noisy[rng.random(noisy.shape) < 0.05] *= -1
    assert np.all(sgd.recall(noisy).states == cues, axis=1).mean() >= 0.8
    assert np.all(hebb.recall(noisy).states == cues, axis=1).mean() <= 0.5


def test_sgd_from_zeros_with_async_dynamics_does_not_move():
    # With W = 0 every field is a tie, async dynamics leave the patterns as they are and the
    # contrastive update is zero: the documented reason for init="hebbian".
    P = random_states(3, 10, np.random.default_rng(1))
    h = ef.Hopfield(10).store(P, rule="sgd", init="zeros", epochs=5)
    assert not h.W.any()


# ------------------------------------------------------------------ sync cycles

def test_sync_detects_two_cycle_async_converges():
    W = np.array([[0, 1], [1, 0]], np.float32)
    h = model(W)
    y = np.array([[1, -1], [1, 1]], np.int8)
    r = h.recall(y, mode="sync")
    assert r.cycled.tolist() == [True, False]
    assert r.converged.tolist() == [False, True]
    assert r.sweeps.tolist() == [1, 0]
    np.testing.assert_array_equal(r.states[0], [-1, 1])  # stopped one step into the cycle
    a = h.recall(y, mode="async")
    assert a.converged.all() and not a.cycled.any()
    assert h.stable(a.states).all()


# ------------------------------------------------------------------ stochastic dynamics

def chi_square_pvalue(samples, probs, states):
    """Pearson chi-square of sampled states against exact probabilities, bins with expected
    count < 5 merged into one."""
    n = states.shape[1]
    weights = 1 << np.arange(n)[::-1]
    lookup = np.zeros(1 << n, np.int64)
    lookup[(states > 0).astype(np.int64) @ weights] = np.arange(len(states))
    counts = np.bincount(lookup[(samples > 0).astype(np.int64) @ weights], minlength=len(states))
    expected = probs * len(samples)
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    stat = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
    return scipy_stats.chi2.sf(stat, keep.sum() - 1)


def boltzmann(h, T):
    states = all_spins(h.n_units)
    logp = -h.energy(states) / T
    p = np.exp(logp - logp.max())
    return states, p / p.sum()


@pytest.mark.parametrize("T", [0.7, 2.0])
def test_sampling_matches_enumeration(T):
    rng = np.random.default_rng(zlib.crc32(f"sample{T}".encode()))
    n, reads = 10, 20000
    W, b = random_model(n, rng, scale=0.5, bias=0.5)
    h = model(W, b)
    r = h.sample(random_states(reads, n, rng), temperature=T, n_sweeps=100, seed=31)
    states, p = boltzmann(h, T)
    # 20000 independent chains, 100 heat-bath sweeps each from a random start (these small
    # models mix in tens of sweeps). The sign is checked too: p(y) ∝ exp(-E/T) with the
    # lecture E; h = +b, J = +W instead would be rejected. False-failure rate: 1e-4 per test.
    assert chi_square_pvalue(r.states, p, states) > 1e-4
    np.testing.assert_allclose(r.energies, h.energy(r.states), rtol=1e-12)


def test_average_last_gives_the_magnetisation():
    rng = np.random.default_rng(21)
    n, reads, M = 8, 2000, 40
    W, b = random_model(n, rng, scale=0.3, bias=1.0)
    h = model(W, b)
    r = h.sample(random_states(reads, n, rng), temperature=1.0, n_sweeps=60, average_last=M,
                 seed=2)
    states, p = boltzmann(h, 1.0)
    m_exact = p @ states
    assert np.abs(m_exact).max() > 0.4  # a wrong sign or a missing bias would be visible
    # Each chain's time average lies in [-1, 1]: the mean over 2000 independent chains has
    # standard error <= 1/sqrt(2000) = 0.022 per unit; 5 of them (false failure < 1e-5 per
    # unit by Hoeffding-free normal approximation) plus a small burn-in bias.
    np.testing.assert_allclose(r.mean.mean(axis=0), m_exact, atol=0.12)
    assert r.mean.shape == (reads, n) and np.all(np.abs(r.mean) <= 1)


def test_annealing_reaches_exact_ground_state():
    rng = np.random.default_rng(5)
    n = 12
    W, b = random_model(n, rng, scale=1.0, bias=0.2)
    h = model(W, b)
    E = h.energy(all_spins(n))
    E0 = E.min()
    assert np.sort(E)[1] - E0 > 1e-6  # a unique ground state (b breaks the y -> -y symmetry)
    r = h.anneal(random_states(64, n, rng), T0=5.0, alpha=0.93, n_sweeps=120, seed=8)
    assert r.info["temperatures"][0] == 5.0 and r.info["temperatures"][-1] < 0.01
    assert np.isclose(r.energies.min(), E0, rtol=0, atol=1e-9)
    assert np.mean(np.isclose(r.energies, E0, atol=1e-9)) >= 0.5
    # a schedule given as a callable is the same run
    s = h.sample(random_states(64, n, np.random.default_rng(5)), lambda t: 5.0 * 0.93**t,
                 n_sweeps=120, seed=8)
    assert s.info["temperatures"].size == 120


def test_sampling_is_reproducible_and_model_seed_moves_on():
    rng = np.random.default_rng(4)
    W, b = random_model(20, rng)
    S = random_states(10, 20, rng)
    a = model(W, b).sample(S, 1.0, 5, seed=3)
    c = model(W, b).sample(S, 1.0, 5, seed=3)
    np.testing.assert_array_equal(a.states, c.states)
    h = model(W, b)
    x, y = h.sample(S, 1.0, 5), h.sample(S, 1.0, 5)
    assert x.info["next_step"] == y.info["step_offset"] and not np.array_equal(x.states, y.states)


# ------------------------------------------------------------------ bad input

def test_bad_input():
    h = ef.Hopfield(4)
    good = np.array([[1, -1, 1, -1]], np.int8)
    with pytest.raises(ValueError, match="n_units"):
        ef.Hopfield(0)
    with pytest.raises(TypeError, match="n_units"):
        ef.Hopfield(4.0)
    with pytest.raises(ValueError, match=r"\+1 and -1"):
        h.store(np.array([[1, 0, 1, -1]]))
    with pytest.raises(ValueError, match="patterns"):
        h.store(np.ones((2, 5)))
    with pytest.raises(ValueError, match="patterns"):
        h.store(np.ones((2, 4, 1)))
    with pytest.raises(TypeError, match="patterns"):
        h.store(np.array([["a"] * 4]))
    with pytest.raises(ValueError, match="rule"):
        h.store(good, rule="storkey")
    with pytest.raises(ValueError, match="append"):
        h.store(good, rule="sgd", append=True)
    with pytest.raises(ValueError, match="learning_rate"):
        h.store(good, rule="sgd", learning_rate=0.0)
    with pytest.raises(ValueError, match="dynamics"):
        h.store(good, rule="sgd", dynamics="metropolis")
    with pytest.raises(ValueError, match="temperature"):
        h.store(good, rule="sgd", dynamics="gibbs", temperature=-1.0)
    A = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.fill_diagonal(A, 0)
    with pytest.raises(ValueError, match="symmetric"):
        h.W = A
    with pytest.raises(ValueError, match="diagonal"):
        h.W = np.eye(4)
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        h.W = np.zeros((3, 3))
    with pytest.raises(ValueError, match="finite"):
        h.W = np.full((4, 4), np.nan)
    with pytest.raises(ValueError, match=r"b must have shape"):
        h.b = np.zeros(3)
    assert not h.W.any()  # nothing half-updated
    with pytest.raises(ValueError, match="read-only"):
        h.W[0, 1] = 1.0  # in-place edits would bypass the symmetry check
    with pytest.raises(ValueError, match="mode"):
        h.recall(good, mode="parallel")
    with pytest.raises(ValueError, match="order"):
        h.recall(good, order="shuffled")
    with pytest.raises(ValueError, match="max_sweeps"):
        h.recall(good, max_sweeps=-1)
    with pytest.raises(ValueError, match="states"):
        h.recall(np.ones((2, 3)))
    with pytest.raises(ValueError, match="states"):
        h.recall(np.array([[2, 1, 1, 1]]))
    with pytest.raises(ValueError, match="temperature"):
        h.sample(good, temperature=0.0, n_sweeps=3)
    with pytest.raises(ValueError, match="temperature"):
        h.sample(good, temperature=np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="n_sweeps"):
        h.sample(good, temperature=1.0)
    with pytest.raises(ValueError, match="average_last"):
        h.sample(good, temperature=1.0, n_sweeps=3, average_last=4)
    with pytest.raises(ValueError, match="T0"):
        h.anneal(good, T0=0.0, alpha=0.9, n_sweeps=3)
    with pytest.raises(ValueError, match="alpha"):
        h.anneal(good, T0=1.0, alpha=1.5, n_sweeps=3)
    with pytest.raises(ValueError, match="energy"):
        h.energy()


# ------------------------------------------------------------------ benchmark harness

def test_bench_smoke(tmp_path):
    import json

    from ebmfast import bench_hopfield
    assert bench_hopfield.main(["--smoke", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("hopfield_cpu_*_t*.json")
    assert '"/' not in path.read_text()  # no absolute paths of the machine in results
    row = json.loads(path.read_text())["rows"][0]
    assert row["agreement_with_numpy"] == 1.0  # the NumPy baseline reaches the same states
    assert set(row["median_ms"]) == {"ebmfast", "numpy", "floor_gemm"}


def test_demo_hopfield(tmp_path, capsys):
    from ebmfast.cli import main
    assert main(["demo", "hopfield", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # the pseudoinverse rule stores the ten correlated digit prototypes; Hebbian cannot
    assert "pseudoinverse rule: 100% of the 10 digits recalled exactly, 10/10" in out
    assert "hebbian rule: 0% of the 10 digits recalled exactly" in out
    assert (tmp_path / "hopfield_recall.png").exists() and (tmp_path / "hopfield_capacity.png").exists()
