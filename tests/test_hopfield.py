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
@pytest.mark.parametrize("n", [1, 7, 31, 33, 100])
@pytest.mark.parametrize("cues", [1, 15, 16, 17, 33])
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
