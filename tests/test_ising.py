"""Spin chains (sample_ising) and the 2-D lattice: kernels against the NumPy reference on
the shared Philox stream, distributions against exact enumeration, the lattice against
Onsager and Yang, and bad input."""
import itertools
import math
import zlib

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import _core
from ebmfast import reference as ref
from ebmfast.ising import _couplings

scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")


def random_dense(n, rng, scale=1.0):
    J = np.triu(rng.standard_normal((n, n)) * scale, 1)
    return J, rng.standard_normal(n) * scale


def random_sparse_dict(n, degree, rng, scale=1.0):
    J = {}
    for i in range(n):
        for j in rng.choice(n, degree, replace=False):
            if i != j:
                J[(i, int(j))] = float(rng.standard_normal() * scale)
    return J


def dict_to_dense_upper(J, n):
    M = np.zeros((n, n))
    for (i, j), v in J.items():
        M[min(i, j), max(i, j)] += v
    return M


def run_kernel(c, S, betas, *, gibbs, random_order=False, clamped=None, seed=7, step=3, chain_offset=0):
    S = S.copy()
    flips, _ = _core.ising_chains(c.h, c.dense, c.indptr, c.indices, c.data,
                                  np.asarray(betas, np.float32), gibbs, random_order,
                                  None if clamped is None else clamped.astype(np.uint8), S, seed,
                                  step, chain_offset, False)
    return S, flips


# ------------------------------------------------------------------ kernel vs reference

@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 31, 33])
@pytest.mark.parametrize("chains", [1, 15, 16, 17, 33])
@pytest.mark.parametrize("storage", ["dense", "csr"])
def test_chains_match_reference(n, chains, storage):
    rng = np.random.default_rng(n * 100 + chains)
    Ju, h = random_dense(n, rng)
    if storage == "csr":
        Ju[rng.random((n, n)) < 0.6] = 0.0
    c = _couplings(h, Ju)
    if storage == "csr" and c.dense is not None:  # small n stays dense: force CSR
        r, col = np.nonzero(np.triu(Ju, 1))
        from ebmfast.ising import _csr_from_pairs
        c.indptr, c.indices, data = _csr_from_pairs(n, r, col, Ju[r, col])
        c.data, c.dense = data.astype(np.float32), None
    Jsym = (Ju + Ju.T).astype(np.float32)
    S0 = np.where(rng.random((chains, n)) < 0.5, 1, -1).astype(np.int8)
    betas = [0.3, 0.8, 1.5]
    clamped = rng.random(n) < 0.25
    for gibbs, random_order, clamp in [(False, False, None), (True, False, None),
                                       (False, True, None), (True, True, clamped),
                                       (False, False, clamped)]:
        S, flips = run_kernel(c, S0, betas, gibbs=gibbs, random_order=random_order,
                              clamped=clamp, chain_offset=5)
        Sr, flips_r = ref.ising_sweeps(c.h, Jsym, S0, betas, gibbs=gibbs, seed=7, step=3,
                                       chain_offset=5, random_order=random_order, clamped=clamp)
        # Same uniforms: only float rounding of a field may move a decision (DESIGN §3).
        assert np.mean(S == Sr) >= 0.999, (gibbs, random_order)
        assert np.mean(flips == flips_r) >= 0.99
        if clamp is not None:
            assert np.array_equal(S[:, clamp], S0[:, clamp])


def test_chains_thread_count_independent():
    rng = np.random.default_rng(3)
    n = 200
    Ju, h = random_dense(n, rng, 0.1)
    J = random_sparse_dict(5000, 3, rng)
    before = ef.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            ef.set_num_threads(threads)
            a = ef.sample_ising(h, Ju, num_reads=70, num_sweeps=20, beta_range=(0.1, 2.0), seed=11)
            b = ef.sample_ising(np.zeros(5000), J, num_reads=40, num_sweeps=5, seed=11, proposal="gibbs")
            out.append((a.samples, b.samples))
    finally:
        ef.set_num_threads(before)
    assert np.array_equal(out[0][0], out[1][0])
    assert np.array_equal(out[0][1], out[1][1])


def test_same_seed_same_samples_and_continuation():
    rng = np.random.default_rng(4)
    n = 50
    J = {(i, j): float(rng.choice([-1, 1])) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.2}
    h = rng.choice([-1.0, 0.0, 1.0], n)
    a = ef.sample_ising(h, J, num_reads=20, num_sweeps=40, beta_range=1.0, seed=5)
    b = ef.sample_ising(h, J, num_reads=20, num_sweeps=40, beta_range=1.0, seed=5)
    c = ef.sample_ising(h, J, num_reads=20, num_sweeps=40, beta_range=1.0, seed=6)
    assert np.array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)
    # Two halves with step_offset = one run (integer couplings: the fields are exact).
    init = ef.ising.random_spins(5, 20, n)
    first = ef.sample_ising(h, J, num_reads=20, num_sweeps=20, beta_range=1.0, seed=5, initial_states=init)
    second = ef.sample_ising(h, J, num_reads=20, num_sweeps=20, beta_range=1.0, seed=5,
                             initial_states=first.samples, step_offset=first.info["next_step"])
    assert np.array_equal(second.samples, a.samples)


# ------------------------------------------------------------------ energies and conventions

def test_energies_match_dimod_and_reference():
    dimod = pytest.importorskip("dimod")
    rng = np.random.default_rng(5)
    n = 12
    Jd = random_sparse_dict(n, 4, rng)
    h = rng.standard_normal(n)
    upper = dict_to_dense_upper(Jd, n)
    sp = pytest.importorskip("scipy.sparse")
    bqm = dimod.BinaryQuadraticModel.from_ising(dict(enumerate(h)), Jd)
    for J in (Jd, upper, upper + upper.T, sp.csr_matrix(upper), sp.coo_matrix(upper + upper.T)):
        r = ef.sample_ising(h, J, num_reads=30, num_sweeps=10, seed=1)
        expect = bqm.energies((r.samples, range(n)))
        np.testing.assert_allclose(r.energies, expect, rtol=0, atol=1e-9 * (1 + np.abs(expect).max()))
        np.testing.assert_allclose(r.energies, ref.ising_energy(h, upper + upper.T, r.samples), atol=1e-9)
    ss = r.to_sampleset()
    np.testing.assert_allclose(ss.record.energy, r.energies)
    assert r.samples.dtype == np.int8 and r.samples.shape == (30, n)
    assert r.energies.dtype == np.float64


def test_energy_trace_follows_the_chain():
    rng = np.random.default_rng(6)
    Ju, h = random_dense(20, rng)
    r = ef.sample_ising(h, Ju, num_reads=5, num_sweeps=7, beta_range=0.5, seed=2, trace=True)
    tr = r.info["energy_trace"]
    assert tr.shape == (7, 5)
    np.testing.assert_allclose(tr[-1], r.energies, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ exact enumeration

def all_spins(n):
    return np.array(list(itertools.product([-1, 1], repeat=n)), dtype=np.int8)


def chi_square_pvalue(samples, probs, states):
    """Pearson chi-square of sampled states against exact probabilities, bins with expected
    count < 5 merged into one."""
    n = states.shape[1]
    weights = 1 << np.arange(n)[::-1]
    idx_states = ((states > 0).astype(np.int64) @ weights)
    lookup = np.zeros(1 << n, np.int64)
    lookup[idx_states] = np.arange(len(states))
    counts = np.bincount(lookup[(samples > 0).astype(np.int64) @ weights], minlength=len(states))
    expected = probs * len(samples)
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    stat = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
    return scipy_stats.chi2.sf(stat, keep.sum() - 1)


@pytest.mark.parametrize("kind,n", [("dense", 10), ("sparse", 12)])
@pytest.mark.parametrize("proposal", ["metropolis", "gibbs"])
@pytest.mark.parametrize("clamp", [False, True])
def test_distribution_matches_enumeration(kind, n, proposal, clamp):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{proposal}{clamp}".encode()))
    beta = 1.0
    if kind == "dense":
        Ju, h = random_dense(n, rng, 0.4)
        J = Ju
    else:
        J = random_sparse_dict(n, 2, rng, 0.5)
        Ju = dict_to_dense_upper(J, n)
        h = rng.standard_normal(n) * 0.5
    reads = 30000
    mask = np.zeros(n, bool)
    init = None
    if clamp:
        mask[[1, 4, 7]] = True
        init = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
        init = np.tile(init, (reads, 1))
    r = ef.sample_ising(h, J, num_reads=reads, num_sweeps=300, beta_range=beta, proposal=proposal,
                        seed=123, initial_states=init, clamp=mask if clamp else None,
                        order="random" if (proposal == "gibbs" and not clamp) else "sequential")
    states = all_spins(n)
    if clamp:
        states = states[np.all(states[:, mask] == init[0, mask], axis=1)]
        assert np.all(r.samples[:, mask] == init[:, mask])
    E = ref.ising_energy(h, Ju + Ju.T, states)
    logp = -beta * E
    p = np.exp(logp - logp.max())
    p /= p.sum()
    # 30000 independent chains, each 300 sweeps from a random start (these small models
    # mix in tens of sweeps; random order, which visits sites with replacement, is the
    # slowest and measurably biased at 60). False-failure rate: 1e-4 per test.
    assert chi_square_pvalue(r.samples, p, states) > 1e-4


def test_annealing_finds_ground_state():
    rng = np.random.default_rng(9)
    n = 14
    J = random_sparse_dict(n, 3, rng)
    h = rng.standard_normal(n) * 0.2
    states = all_spins(n)
    Ju = dict_to_dense_upper(J, n)
    e_min = ref.ising_energy(h, Ju + Ju.T, states).min()
    r = ef.sample_ising(h, J, num_reads=50, num_sweeps=500, seed=3)
    assert r.first[1] == pytest.approx(e_min, abs=1e-9)
    assert r.info["beta_schedule"][0] < r.info["beta_schedule"][-1]


# ------------------------------------------------------------------ schedules and results

def test_schedules():
    h, J = np.zeros(3), {(0, 1): 1.0}
    r = ef.sample_ising(h, J, num_reads=2, num_sweeps=5, beta_range=(0.1, 10), beta_schedule="linear", seed=1)
    np.testing.assert_allclose(r.info["beta_schedule"], np.linspace(0.1, 10, 5))
    r = ef.sample_ising(h, J, num_reads=2, num_sweeps=5, beta_range=(0.1, 10), seed=1)
    np.testing.assert_allclose(r.info["beta_schedule"], np.geomspace(0.1, 10, 5))
    r = ef.sample_ising(h, J, num_reads=2, beta_schedule=[1.0, 2.0, 3.0], seed=1)
    assert r.info["num_sweeps"] == 3
    r = ef.sample_ising(h, J, num_reads=2, num_sweeps=0, seed=1, initial_states=[[1, 1, -1], [-1, 1, 1]])
    np.testing.assert_array_equal(r.samples, [[1, 1, -1], [-1, 1, 1]])
    hot, cold = ef.ising.default_beta_range(np.array([0.0, 0.5, 0.0]), {(0, 1): 1.0, (1, 2): -2.0})
    assert hot == pytest.approx(math.log(2) / (2 * 3.5)) and cold == pytest.approx(math.log(100) / 1.0)


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(J=np.ones((3, 4))), ValueError, "shape"),
    (dict(J=np.array([[0, 1, 0], [2, 0, 0], [0, 0, 0.]])), ValueError, "upper-triangular"),
    (dict(J=np.eye(3)), ValueError, "diagonal"),
    (dict(h=[0, np.nan, 0]), ValueError, "finite"),
    (dict(J={(0, 5): 1.0}), ValueError, "index"),
    (dict(J={(1, 1): 1.0}), ValueError, "itself"),
    (dict(J={("a", 1): 1.0}), TypeError, "integer pairs"),
    (dict(beta_range=0.0), ValueError, "beta_range"),
    (dict(beta_range=(-1, 2)), ValueError, "beta_range"),
    (dict(beta_schedule=[1.0, -1.0]), ValueError, "beta"),
    (dict(beta_schedule="cubic"), ValueError, "beta_schedule"),
    (dict(num_reads=0), ValueError, "num_reads"),
    (dict(num_sweeps=-1), ValueError, "num_sweeps"),
    (dict(proposal="swendsen"), ValueError, "proposal"),
    (dict(order="backwards"), ValueError, "order"),
    (dict(initial_states=np.ones((2, 3))), ValueError, "initial_states"),
    (dict(initial_states=np.zeros((4, 3))), ValueError, "initial_states"),
    (dict(clamp=np.array([True, False, False])), ValueError, "initial_states"),
    (dict(clamp=[1, 0, 0], initial_states=np.ones((4, 3))), ValueError, "clamp"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(device="tpu"), ValueError, "device"),
    (dict(h=np.zeros((3, 1))), ValueError, "h"),
    (dict(J="couplings"), TypeError, "J"),
])
def test_bad_input(kwargs, exc, match):
    args = dict(h=np.zeros(3), J={(0, 1): 1.0}, num_reads=4, num_sweeps=3)
    args.update(kwargs)
    h, J = args.pop("h"), args.pop("J")
    with pytest.raises(exc, match=match):
        ef.sample_ising(h, J, **args)


def test_core_rejects_bad_buffers():
    h = np.zeros(4, np.float32)
    J = np.zeros((4, 4), np.float32)
    betas = np.ones(2, np.float32)
    with pytest.raises(TypeError):  # float spins would be a silent copy: refused
        _core.ising_chains(h, J, None, None, None, betas, False, False, None, np.ones((2, 4)), 1, 0)
    with pytest.raises(ValueError, match="indices"):
        _core.ising_chains(h, None, np.array([0, 1, 1, 1, 1]), np.array([9], np.int32),
                           np.ones(1, np.float32), betas, False, False, None,
                           np.ones((2, 4), np.int8), 1, 0)
    with pytest.raises(ValueError, match="indptr"):
        _core.ising_chains(h, None, np.array([0, 2, 1, 1, 1]), np.array([1], np.int32),
                           np.ones(1, np.float32), betas, False, False, None,
                           np.ones((2, 4), np.int8), 1, 0)
    with pytest.raises(ValueError, match="S"):
        _core.ising_chains(h, J, None, None, None, betas, False, False, None, np.ones((2, 5), np.int8), 1, 0)


# ------------------------------------------------------------------ 2-D lattice

@pytest.mark.parametrize("L", [2, 4, 6, 8, 34, 64])
@pytest.mark.parametrize("gibbs", [False, True])
def test_lattice_matches_reference(L, gibbs):
    rng = np.random.default_rng(L)
    S0 = np.where(rng.random((3, L, L)) < 0.5, 1, -1).astype(np.int8)
    betas = np.array([0.2, 0.44, 0.7], np.float32)
    S = S0.copy()
    flips, e, m = _core.lattice_sweeps(S, 1.0, 0.1, betas, gibbs, 5, 4, 1, True)
    Sr, flips_r = ref.lattice_sweeps(S0, betas, J=1.0, h=0.1, seed=5, step=4, chain_offset=1, gibbs=gibbs)
    assert np.mean(S == Sr) >= 0.999
    np.testing.assert_allclose(e[-1], ref.lattice_energy(S, 1.0, 0.1) / L**2, atol=1e-12)
    np.testing.assert_allclose(m[-1], S.mean(axis=(1, 2)), atol=1e-12)
    assert np.mean(flips == flips_r) >= 0.99


def onsager_energy(beta, J=1.0):
    """Exact energy per spin of the infinite square lattice (Onsager 1944)."""
    k = 2 * np.sinh(2 * beta * J) / np.cosh(2 * beta * J) ** 2
    K = scipy_special.ellipk(k * k)
    return -J / np.tanh(2 * beta * J) * (1 + 2 / np.pi * (2 * np.tanh(2 * beta * J) ** 2 - 1) * K)


def yang_magnetization(beta, J=1.0):
    return (1 - np.sinh(2 * beta * J) ** -4) ** 0.125


@pytest.mark.parametrize("beta", [0.3, 0.6])
def test_lattice_against_onsager_and_yang(beta):
    L, chains, burn, sweeps = 64, 32, 300, 1500
    model = ef.IsingLattice2D(L)
    r = model.sample(beta, burn + sweeps, n_chains=chains, seed=17,
                     initial_states="up" if beta > 0.45 else None)
    e = r.energy[burn:].mean(axis=0)  # one time average per independent chain
    se = e.std(ddof=1) / np.sqrt(chains)
    # 5 standard errors (t with 31 dof: false failure ~2e-5) plus the finite-size shift,
    # exponentially small in L / xi at these temperatures (xi < 2 sites): 1e-4 allowed.
    assert abs(e.mean() - onsager_energy(beta)) < 5 * se + 1e-4, (e.mean(), onsager_energy(beta), se)
    if beta > 0.45:
        m = r.magnetization[burn:].mean(axis=0)
        se_m = m.std(ddof=1) / np.sqrt(chains)
        assert abs(m.mean() - yang_magnetization(beta)) < 5 * se_m + 1e-4


def test_lattice_continuation_and_state():
    model = ef.IsingLattice2D(16, J=1.0, h=0.05)
    a = model.sample(0.4, 30, n_chains=2, seed=3)
    model2 = ef.IsingLattice2D(16, J=1.0, h=0.05)
    first = model2.sample(0.4, 10, n_chains=2, seed=3)
    second = model2.sample(0.4, 20, n_chains=2, seed=3, initial_states=model2.states_,
                           step_offset=model2.next_step_)
    assert np.array_equal(second.states, a.states)
    assert first.states.shape == (2, 16, 16) and first.states.dtype == np.int8
    np.testing.assert_allclose(model.energy(a.states), a.energy[-1])


@pytest.mark.parametrize("call,match", [
    (lambda: ef.IsingLattice2D(7), "even"),
    (lambda: ef.IsingLattice2D(0), "L"),
    (lambda: ef.IsingLattice2D(8, J=np.nan), "J"),
    (lambda: ef.IsingLattice2D(8).sample(0.0, 3), "beta"),
    (lambda: ef.IsingLattice2D(8).sample(0.5, -1), "n_sweeps"),
    (lambda: ef.IsingLattice2D(8).sample(0.5, 3, n_chains=0), "n_chains"),
    (lambda: ef.IsingLattice2D(8).sample([0.5, 0.6], 3), "beta"),
    (lambda: ef.IsingLattice2D(8).sample(0.5, 3, initial_states=np.ones((1, 8, 9))), "initial_states"),
    (lambda: ef.IsingLattice2D(8).sample(0.5, 3, initial_states=np.zeros((1, 8, 8))), "initial_states"),
    (lambda: ef.IsingLattice2D(8).sample(0.5, 3, initial_states="down"), "initial_states"),
    (lambda: ef.IsingLattice2D(8).sample(0.5, 3, proposal="wolff"), "proposal"),
])
def test_lattice_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("order", ["sequential", "random"])
def test_chunked_run_equals_one_call(monkeypatch, order):
    """Long runs are cut into kernel calls (Ctrl-C, progress); the local fields are handed
    from call to call and refreshed on the absolute step, so the cut changes nothing."""
    rng = np.random.default_rng(12)
    Ju, h = random_dense(60, rng, 0.3)
    kw = dict(num_reads=20, num_sweeps=70, beta_range=(0.2, 2.0), seed=8, order=order, trace=True)
    whole = ef.sample_ising(h, Ju, **kw)
    monkeypatch.setattr(ef.ising, "_CHUNK_WORK", 20 * (60 * 59 + 8 * 60) * 3.5)  # 3-sweep calls
    cut = ef.sample_ising(h, Ju, **kw)
    np.testing.assert_array_equal(cut.samples, whole.samples)
    np.testing.assert_array_equal(cut.info["energy_trace"], whole.info["energy_trace"])


def csr_reference(n, i, j, v):
    """The CSR of pair couplings written plainly: a dict of summed pairs, sorted."""
    acc = {}
    for a, b, x in zip(i.tolist(), j.tolist(), v.tolist()):
        key = (min(a, b), max(a, b))
        acc[key] = acc.get(key, 0.0) + x
    rows = [[] for _ in range(n)]
    for (a, b), x in acc.items():
        if x != 0.0:
            rows[a].append((b, x))
            rows[b].append((a, x))
    indptr = np.cumsum([0] + [len(r) for r in rows])
    flat = [e for r in rows for e in sorted(r)]
    return indptr, np.array([c for c, _ in flat], np.int32), np.array([x for _, x in flat])


@pytest.mark.parametrize("n, m", [(1, 0), (2, 1), (5, 30), (40, 200), (300, 900)])
def test_csr_from_pairs_matches_reference(n, m):
    rng = np.random.default_rng(n + m)
    if n < 2:
        i = j = np.zeros(0, np.int64)
    else:
        i = rng.integers(0, n, m)
        j = (i + rng.integers(1, n, m)) % n  # never i
    v = rng.choice([-1.0, 0.5, 1.0, 2.0], m)
    v[: m // 5] = -v[m // 5: 2 * (m // 5)]  # some pairs cancel when repeated
    if m:
        i[: m // 5], j[: m // 5] = j[m // 5: 2 * (m // 5)], i[m // 5: 2 * (m // 5)]
    got = _core.csr_from_pairs(n, i, j, v)
    want = csr_reference(n, i, j, v)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert got[1].dtype == np.int32 and got[0].dtype == np.int64
    with pytest.raises(ValueError, match="distinct spins"):
        _core.csr_from_pairs(3, np.array([0]), np.array([0]), np.array([1.0]))
    with pytest.raises(ValueError, match="distinct spins"):
        _core.csr_from_pairs(3, np.array([0]), np.array([3]), np.array([1.0]))


def test_pairs_from_dict_fast_path_and_fallbacks():
    i, j, v = _core.pairs_from_dict({(0, 1): 0.5, (2, 1): -1, (1, 0): 2.0}, 3)
    assert i.tolist() == [0, 2, 1] and j.tolist() == [1, 1, 0] and v.tolist() == [0.5, -1.0, 2.0]
    assert _core.pairs_from_dict({}, 3)[0].size == 0
    for bad in ({(np.int64(0), 1): 1.0}, {(True, 1): 1.0}, {(0.0, 1): 1.0}, {(0, 1, 2): 1.0},
                {0: 1.0}, {(0, 1): float("nan")}, {(0, 1): 1e39}, {(0, 3): 1.0}, {(-1, 1): 1.0},
                {(1, 1): 1.0}, {(2**70, 1): 1.0}, {(0, 1): 2**1100}, {(0, 1): "x"}):
        assert _core.pairs_from_dict(bad, 3) is None, bad
    # ... and the public call still reports what is wrong through the NumPy path
    with pytest.raises(ValueError, match="finite"):
        ef.sample_ising(np.zeros(3), {(0, 1): float("nan")}, num_reads=1, num_sweeps=1)
    with pytest.raises(ValueError, match="index spins"):
        ef.sample_ising(np.zeros(3), {(0, 5): 1.0}, num_reads=1, num_sweeps=1)
    # numpy integer keys and values take the NumPy path to the same couplings
    a, b = _couplings(np.zeros(3), {(np.int64(0), np.int64(1)): np.float32(0.5)}), \
        _couplings(np.zeros(3), {(0, 1): 0.5})
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize("chains", [1, 15, 16, 17, 40])
@pytest.mark.parametrize("n", [1, 2, 7, 130])
def test_energy_kernels_match_reference(n, chains):
    rng = np.random.default_rng(n * 7 + chains)
    Ju, h = random_dense(n, rng)
    Jsym = Ju + Ju.T
    S = np.where(rng.random((chains, n)) < 0.5, 1, -1).astype(np.int8)
    want = ref.ising_energy(h, Jsym, S)
    tol = 1e-12 * (1 + np.abs(h).sum() + np.abs(Ju).sum())
    np.testing.assert_allclose(_core.ising_energies_dense(h, Jsym, S), want, rtol=0, atol=tol)
    Ju[rng.random((n, n)) < 0.5] = 0.0
    Jsym = Ju + Ju.T
    r, c = np.nonzero(np.triu(Jsym, 1))
    indptr, indices, data = _core.csr_from_pairs(n, r, c, Jsym[r, c])
    np.testing.assert_allclose(_core.ising_energies_csr(h, indptr, indices, data, S),
                               ref.ising_energy(h, Jsym, S), rtol=0, atol=tol)


def test_random_spins_follow_the_init_stream():
    u = _core.philox_uniforms(3, ref.STREAM_INIT, 0, 37, 101, 5)
    s = _core.random_spins(3, ref.STREAM_INIT, 0, 37, 101, 5)
    assert s.dtype == np.int8 and s.shape == (37, 101)
    np.testing.assert_array_equal(s, np.where(u < 0.5, 1, -1))


@pytest.mark.parametrize("h, J, exact", [
    (np.zeros(4), {(0, 1): 1.0, (1, 2): -1.0, (2, 3): 1.0}, True),          # +-1 spin glass
    (np.array([0.5, 0, 0, 0.25]), {(0, 1): 0.125, (2, 3): -3.0}, True),      # dyadic
    (np.zeros(3), {(0, 1): 0.1}, False),                                    # 0.1 is not dyadic
    (np.zeros(3), {(0, 1): 2.0**30, (1, 2): 2.0}, False),                   # 2^30 + 2 needs 30 bits
    (np.array([2.0**23, 0, 0]), {(0, 1): 2.0**23, (1, 2): 2.0}, True),      # field <= 2^24 exactly
    (np.array([2.0**23, 0, 0]), {(0, 1): 2.0**23, (1, 2): 1.0}, False),     # 2^24 + 1 is not a float32
    (np.zeros(2), {}, True),
])
def test_exact_field_detection(h, J, exact):
    assert _couplings(h, J).exact_fields is exact
    # float32 sums of exactly these magnitudes: the claim is checkable directly
    c = _couplings(h, J)
    if exact and c.data is not None and c.data.size:
        worst = np.abs(c.h).astype(np.float32) + np.bincount(
            np.repeat(np.arange(c.n), np.diff(c.indptr)), weights=np.abs(c.data), minlength=c.n
        ).astype(np.float32)
        assert np.array_equal(worst.astype(np.float64), np.abs(c.exact[0]) + np.bincount(
            np.repeat(np.arange(c.n), np.diff(c.indptr)), weights=np.abs(c.exact[1]), minlength=c.n))


@pytest.mark.parametrize("storage", ["dense", "csr"])
def test_exact_fields_skip_the_refresh_without_drift(storage):
    """Integer couplings: the kernel skips the periodic refresh (exact_fields). The fields it
    hands back after 70 sweeps (two refresh points) must equal h + J s recomputed in float64,
    bit for bit, and the samples those of a run that refreshes."""
    rng = np.random.default_rng(21)
    n = 90
    Ju = np.triu(rng.integers(-3, 4, (n, n)), 1).astype(np.float64)
    if storage == "csr":
        Ju[rng.random((n, n)) < 0.97] = 0.0  # below 5% density: CSR
    h = rng.integers(-2, 3, n).astype(np.float64)
    c = _couplings(h, Ju)
    assert c.exact_fields and ((c.dense is None) == (storage == "csr"))
    S0 = np.where(rng.random((33, n)) < 0.5, 1, -1).astype(np.int8)
    betas = np.full(70, 0.4, np.float32)
    out = {}
    for exact in (False, True):
        S, F = S0.copy(), np.empty(S0.shape, np.float32)
        _core.ising_chains(c.h, c.dense, c.indptr, c.indices, c.data, betas, False, False, None,
                           S, 5, 0, 0, False, F, False, exact)
        out[exact] = (S, F)
        np.testing.assert_array_equal(F.astype(np.float64), h + S @ (Ju + Ju.T))
    np.testing.assert_array_equal(out[True][0], out[False][0])


@pytest.mark.parametrize("impl", ["portable", "avx2"])
def test_philox_lane_implementations_agree(impl):
    """The chain kernels draw their uniforms through the run-time chosen Philox lanes
    (AVX-512 / AVX2 / portable): a narrower one, forced in a subprocess, gives the same
    chains."""
    import os
    import subprocess
    import sys
    code = ("import numpy as np, ebmfast as ef\n"
            "rng = np.random.default_rng(0)\n"
            "J = np.triu(rng.standard_normal((40, 40)), 1) * 0.3\n"
            "a = ef.sample_ising(np.zeros(40), J, num_reads=37, num_sweeps=6, seed=3)\n"
            "b = ef.sample_ising(np.zeros(40), J, num_reads=37, num_sweeps=6, seed=3, order='random', proposal='gibbs')\n"
            "import sys; sys.stdout.buffer.write(a.samples.tobytes() + b.samples.tobytes())\n")
    env = dict(os.environ, EBMFAST_PHILOX_LANES=impl)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    rng = np.random.default_rng(0)
    J = np.triu(rng.standard_normal((40, 40)), 1) * 0.3
    a = ef.sample_ising(np.zeros(40), J, num_reads=37, num_sweeps=6, seed=3)
    b = ef.sample_ising(np.zeros(40), J, num_reads=37, num_sweeps=6, seed=3, order="random", proposal="gibbs")
    want = a.samples.tobytes() + b.samples.tobytes()
    assert out.stdout[-len(want):] == want


def test_traces_feed_the_diagnostics():
    """The energy traces of both samplers are (n_sweeps, n_chains) arrays the MCMC
    diagnostics take as they are: chains started apart mix (split-R-hat near 1 after
    burn-in) and the integrated autocorrelation time is finite and >= ~1."""
    r = ef.IsingLattice2D(32).sample(0.3, 600, n_chains=8, seed=4)
    tail = r.energy[100:]
    tau = ef.diagnostics.integrated_autocorr_time(tail)
    assert np.all(np.isfinite(tau)) and np.all(tau > 0.5) and np.all(tau < 50)
    assert ef.diagnostics.split_rhat(tail).item() < 1.05
    rng = np.random.default_rng(2)
    Ju, h = random_dense(30, rng, 0.2)
    s = ef.sample_ising(h, Ju, num_reads=8, num_sweeps=300, beta_range=1.0, seed=1, trace=True)
    ess = ef.diagnostics.effective_sample_size(s.info["energy_trace"][50:])
    assert 10 < float(np.asarray(ess).sum()) <= 8 * 250 * 1.5


def test_progress_bars(capsys):
    ef.sample_ising(np.zeros(5), {(0, 1): 1.0}, num_reads=3, num_sweeps=4, seed=1, progress=True)
    ef.IsingLattice2D(8).sample(0.4, 3, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "sample_ising" in err and "Ising 8x8" in err
