"""Hostile input to the sampler entry points (DESIGN.md §4): every call either raises an
accepted exception whose message names the offending argument, or returns the same
result as the clean (C-contiguous, converted) equivalent input with the same seed. Inputs,
read-only ones included, are never modified; huge sizes fail fast; nothing crashes.

Entry points covered (hypothesis examples per test in parentheses; where the strategy is a
finite pool of hostile values, hypothesis stops once it has tried every one, so the count
is that of the pool):

* ``ebmfast.sample_ising``: h (400), dense J (400), dict J (300), scipy.sparse J (240),
  the scalar/keyword arguments num_reads, num_sweeps, beta_range, beta_schedule,
  proposal, order, seed, step_offset, device, clamp, trace, progress (pool of 95),
  initial_states (300); ``IsingResult.first`` / ``IsingResult.to_sampleset`` (40).
* ``ebmfast.IsingLattice2D``: constructor L, J, h (pool of 34); ``sample`` beta, n_sweeps,
  n_chains, seed, initial_states, proposal, step_offset, trace, device (pool of 57);
  ``energy`` (150); initial_states layouts (one fixed test).
* ``ebmfast.metropolis`` / ``mala`` / ``langevin`` (and ``MCMCResult``): x0 (400),
  energy, n_steps, step_size, seed, device, grad, burn_in, adapt, thin, step_offset (pool of
  192 with the three samplers).
* ``ebmfast.energies``: the constructors of Gaussian, GaussianMixture, DoubleWell,
  Rosenbrock, RBMFreeEnergy, CudaSource and the abstract Energy (pool of 107); evaluation
  ``E(X)``, ``E.energy_grad(X)``, ``E.kernel_energy(X)`` (300).
* ``ebmfast.diagnostics``: acceptance_rate, autocorrelation, integrated_autocorr_time,
  effective_sample_size, split_rhat with hostile traces (500) and hostile options (pool of 29);
  scale invariance at 1e+-300 (30); rank-normalized R-hat with ties (one fixed test).
* ``ebmfast.set_num_threads`` / ``get_num_threads`` (pool of 16), ``ebmfast.plotting.sample_grid``
  (images 25, options 25), ``ebmfast.build_info`` / ``cuda_available`` (10).
* A subprocess runs the riskiest probes so that a crash is a test failure.

Accepted exceptions: ValueError, TypeError, MemoryError (size checks before allocating);
RuntimeError or NotImplementedError only for ``device="cuda"`` when no GPU is present;
OSError from ``sample_grid`` only for a path that cannot be written.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ebmfast as ef
from ebmfast import diagnostics as D
from ebmfast import energies as E
from ebmfast import reference as ref

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.data_too_large])
ACCEPTED = (ValueError, TypeError, MemoryError)
#: Error calls must return at once: huge sizes are refused before any allocation or work.
FAST_S = 10.0


def names(arg, message):
    """True when ``arg`` occurs in ``message`` as a word of its own."""
    return re.search(rf"(?<![\w.]){re.escape(arg)}(?![\w(])", message) is not None


def attempt(fn, *args, **kwargs):
    """(result, None) or (None, exception) for an accepted exception; anything else fails."""
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs), None
    except ACCEPTED + (RuntimeError, NotImplementedError, OSError) as exc:
        assert time.perf_counter() - t0 < FAST_S, f"slow failure: {exc!r}"
        return None, exc


def check_error(exc, *args, device=None, oserror=False):
    """exc is an accepted type and names one of ``args``."""
    if isinstance(exc, (RuntimeError, NotImplementedError)):
        assert device == "cuda" and not ef.cuda_available(), repr(exc)
        assert names("device", str(exc)) or "cuda" in str(exc).lower(), repr(exc)
        return
    if isinstance(exc, OSError) and not isinstance(exc, MemoryError):
        assert oserror, repr(exc)
        return
    assert isinstance(exc, ACCEPTED), repr(exc)
    assert any(names(a, str(exc)) for a in args), f"{exc!r} does not name {args}"


# --------------------------------------------------------------------------- arrays

DTYPES = [np.float64, np.float64, np.float32, object, np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128, object,
          "U8", "S8"]
LAYOUTS = ["c", "f", "strided", "reversed", "readonly", "broadcast"]
REAL = ("b", "i", "u", "f")
SPIN_POOL = [1.0, -1.0] * 6 + [0.0, 2.0, 0.5, np.nan, np.inf, -3.0]
NUM_POOL = [0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-3] * 3 + [np.nan, np.inf, -np.inf, 1e300, -1e39,
                                                        1e-300]


@st.composite
def hostile_array(draw, shapes, pool=NUM_POOL, dtypes=DTYPES):
    """An array of a drawn shape, dtype and memory layout (non-contiguous, negative-stride,
    read-only, zero-stride broadcast views included)."""
    shape = draw(shapes)
    size = int(np.prod(shape, dtype=np.int64))
    vals = draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size))
    a = np.array(vals, np.float64).reshape(shape)
    dtype = draw(st.sampled_from(dtypes))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        arr = a.astype(dtype)
    layout = draw(st.sampled_from(LAYOUTS))
    if arr.ndim == 0 or arr.size == 0:
        layout = "readonly" if layout == "readonly" else "c"
    if layout == "f":
        arr = np.asfortranarray(arr)
    elif layout == "strided":
        big = np.empty((2 * arr.shape[0],) + arr.shape[1:], arr.dtype)
        big[::2] = arr
        arr = big[::2]
    elif layout == "reversed":
        arr = arr[::-1].copy()[::-1]
    elif layout == "readonly":
        arr.setflags(write=False)
    elif layout == "broadcast":
        arr = np.broadcast_to(arr[:1], arr.shape)
    return arr


def snapshot(x):
    return None if x is None else np.array(x, copy=True)


def unchanged(x, snap):
    if snap is None:
        return
    assert x.shape == snap.shape and x.dtype == snap.dtype
    if x.dtype == object:  # the object arrays here hold Python floats (NaN != NaN)
        x, snap = x.astype(np.float64), snap.astype(np.float64)
    if x.dtype.kind in "fc":
        assert np.array_equal(x, snap, equal_nan=True), "input was modified"
    else:
        assert np.array_equal(x, snap), "input was modified"


def clean(x, dtype=np.float64):
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


def is_real(x):
    return np.asarray(x).dtype.kind in REAL


def same_ising(a, b):
    assert np.array_equal(a.samples, b.samples)
    assert np.array_equal(a.energies, b.energies)
    assert np.array_equal(a.acceptance, b.acceptance)
    assert a.samples.dtype == np.int8 and a.energies.dtype == np.float64


def ising(h, J, **kw):
    base = dict(num_reads=3, num_sweeps=4, seed=7, beta_range=(0.1, 1.0))
    base.update(kw)
    return ef.sample_ising(h, J, **base)


N = 4
H0 = np.array([0.5, -1.0, 0.25, 0.0])
J0 = np.triu(np.arange(1.0, 17.0).reshape(4, 4) / 8.0, 1)


def valid_couplings(M):
    """True when the float64 matrix M is a coupling matrix sample_ising must accept."""
    if M.shape != (N, N) or not np.isfinite(M).all() or np.diag(M).any():
        return False
    if np.tril(M, -1).any() and not np.array_equal(M, M.T):
        return False
    sym = M if np.tril(M, -1).any() else M + M.T
    return float(np.max(np.abs(H0) + np.abs(sym).sum(axis=1))) < 8e37


def _exact_energies(h, pairs, S):
    S = S.astype(np.float64)
    e = S @ h
    for (i, j), v in pairs.items():
        e = e + v * S[:, i] * S[:, j]
    return e


# --------------------------------------------------------------------------- sample_ising

H_SHAPES = st.sampled_from([(N,)] * 4 + [(), (0,), (1,), (N, 1), (1, N), (2, 2, 1)])


@settings(max_examples=400, **SETTINGS)
@given(hostile_array(H_SHAPES))
@example(np.array([1e300, 0.0, 0.0, 0.0]))   # beyond float32: was a silent inf
@example(np.array([1e-40, 0.0, 0.0, 0.0]))   # default beta range beyond float32
@example(np.array([1.0, 2.0, 3.0, 4.0])[::-1])
def test_sample_ising_h(h):
    snap = snapshot(h)
    res, exc = attempt(ising, h, None)
    unchanged(h, snap)
    if exc is not None:
        check_error(exc, "h")
        return
    assert is_real(h) and np.isfinite(clean(h)).all()
    same_ising(res, ising(clean(h), None))
    hc = clean(h)
    assert np.allclose(res.energies, res.samples @ hc, rtol=0, atol=1e-9)


@st.composite
def dense_couplings(draw):
    shape = draw(st.sampled_from([(N, N)] * 5 + [(N,), (N, N + 1), (N + 1, N + 1), (0, 0),
                                                 (N, N, 1)]))
    structure = draw(st.sampled_from(["upper", "upper", "sym", "lower", "diag", "raw"]))
    pool = draw(st.sampled_from([[0.0, 1.0, -1.0, 0.5, 2.0], NUM_POOL]))
    arr = draw(hostile_array(st.just(shape), pool=pool))
    if len(shape) == 2 and shape[0] == shape[1] and arr.dtype.kind in REAL:
        M = np.array(arr, np.float64)
        if structure == "upper":
            M = np.triu(M, 1)
        elif structure == "sym":
            M = np.triu(M, 1) + np.triu(M, 1).T
        elif structure == "lower":
            M = np.tril(M, -1)
        elif structure == "diag":
            M = np.triu(M, 1) + np.eye(shape[0])
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = M.astype(arr.dtype)
        if not arr.flags.writeable:
            out.setflags(write=False)
        arr = out if arr.flags.c_contiguous else out[::-1].copy()[::-1]
    return arr


@settings(max_examples=400, **SETTINGS)
@given(dense_couplings())
@example(J0 * 1e300)   # beyond float32
@example(J0 * 1e38)    # within float32, but a local field overflows it
@example(np.ascontiguousarray(J0.T))  # lower-triangular: ambiguous, refused
def test_sample_ising_dense_J(J):
    snap = snapshot(J)
    res, exc = attempt(ising, H0, J)
    unchanged(J, snap)
    M = clean(J) if is_real(J) else None
    if exc is not None:
        check_error(exc, "J")
        assert M is None or not valid_couplings(M), f"valid J refused: {exc!r}"
        return
    assert M.shape == (N, N) and np.isfinite(M).all() and not np.diag(M).any()
    same_ising(res, ising(H0, M))
    upper = np.triu(M, 1) if np.tril(M, -1).any() else M  # symmetric: count each pair once
    pairs = {(i, j): upper[i, j] for i in range(N) for j in range(i + 1, N)}
    assert np.allclose(res.energies, _exact_energies(H0, pairs, res.samples), atol=1e-9)


KEYS = st.one_of(
    st.tuples(st.integers(-2, N + 1), st.integers(-2, N + 1)),
    st.tuples(st.integers(0, N - 1), st.integers(0, N - 1)),
    st.sampled_from([(0.0, 1.0), ("a", "b"), (0, 1, 2), 0, (0,), (np.int64(1), np.int8(2)),
                     (True, 2), (0, 2**70), (None, 1), frozenset({0, 1})]),
)
VALUES = st.one_of(st.sampled_from([0.0, 1.0, -0.5, 2, np.float32(1.5), True]),
                   st.sampled_from([np.nan, np.inf, 1e300, 1j, None, "1", [1.0], np.ones(2)]))


@settings(max_examples=300, **SETTINGS)
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_sample_ising_dict_J(J):
    before = dict(J)
    res, exc = attempt(ising, H0, J)
    assert J.keys() == before.keys()
    if exc is not None:
        check_error(exc, "J")
        return
    pairs = {}
    for (i, j), v in J.items():  # dimod: both orders summed
        key = (min(int(i), int(j)), max(int(i), int(j)))
        pairs[key] = pairs.get(key, 0.0) + float(v)
    assert all(0 <= i < j < N for i, j in pairs)
    assert np.allclose(res.energies, _exact_energies(H0, pairs, res.samples), atol=1e-9)
    dense = np.zeros((N, N))
    for (i, j), v in pairs.items():
        dense[i, j] = v
    same_ising(res, ising(H0, dense))


@st.composite
def sparse_couplings(draw):
    import scipy.sparse as sp
    shape = draw(st.sampled_from([(N, N)] * 5 + [(N, N + 1), (N + 1, N + 1), (1, 1)]))
    dtype = draw(st.sampled_from([np.bool_, np.int8, np.int64, np.uint8, np.uint64, np.float32,
                                  np.float64, np.complex128]))
    nnz = draw(st.integers(0, 8))
    rows = draw(st.lists(st.integers(0, shape[0] - 1), min_size=nnz, max_size=nnz))
    cols = draw(st.lists(st.integers(0, shape[1] - 1), min_size=nnz, max_size=nnz))
    vals = draw(st.lists(st.sampled_from([1.0, -1.0, 2.0, 0.5, np.nan, np.inf, 1e300]),
                         min_size=nnz, max_size=nnz))
    symmetric = draw(st.booleans())
    if symmetric and shape[0] == shape[1]:
        rows, cols, vals = rows + cols, cols + rows, vals + vals
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        data = np.array(vals, np.float64).astype(dtype)
    coo = sp.coo_matrix((data, (np.array(rows, np.int64), np.array(cols, np.int64))),
                        shape=shape)  # duplicates kept, as scipy allows
    fmt = draw(st.sampled_from(["coo", "csr", "csc", "array"]))
    if fmt == "csr":
        return coo.tocsr()
    if fmt == "csc":
        return coo.tocsc()
    if fmt == "array":
        return sp.csr_array(coo)
    return coo


def _dup_coo(vals):
    import scipy.sparse as sp
    return sp.coo_matrix((np.array(vals), (np.array([0, 0, 1]), np.array([1, 1, 0]))),
                         shape=(N, N))


@settings(max_examples=240, **SETTINGS)
@given(sparse_couplings())
@example(_dup_coo([1.0, 1.0, 2.0]))   # symmetric once duplicates are summed: was refused
@example(_dup_coo([1.0, 2.0, 2.0]))   # not symmetric (3 vs 2): was accepted with J01 = 5
def test_sample_ising_sparse_J(J):
    dense_before = J.toarray()
    nnz = J.nnz
    res, exc = attempt(ising, H0, J)
    assert np.array_equal(J.toarray(), dense_before, equal_nan=True) and J.nnz == nnz
    if exc is not None:
        check_error(exc, "J")
        assert J.dtype.kind not in REAL or not valid_couplings(clean(dense_before)), \
            f"valid J refused: {exc!r}"
        return
    M = clean(dense_before)
    same_ising(res, ising(H0, M))


BAD_KW = {
    "num_reads": [0, -1, 2.0, True, None, "3", 10**12, 2**30, np.int64(2), 1],
    "num_sweeps": [-1, 0, 2.5, True, "4", 10**12, 2**32, np.uint8(3), 3],
    "beta_range": [-1.0, 0.0, np.nan, np.inf, 1e300, (1.0, 2.0, 3.0), (0.1, -1.0), "ab", None,
                   (np.float32(0.5), 2), [0.1, 1.0], 1j, True, (1, np.nan)],
    "beta_schedule": ["cubic", None, b"linear", [1.0, 2.0], np.ones((2, 2)), [0.5, -1.0],
                      [np.nan], [1e300], np.array([True, True]), ["1", "2"], [],
                      np.array([0.5, 1.0, 1.5, 2.0])[::-1], 3.0, "linear"],
    "proposal": ["gibbs", "Gibbs", None, 1, ["gibbs"], np.array(["gibbs", "x"])],
    "order": ["random", "RANDOM", None, 0, np.array(["random"])],
    "seed": [-1, 2**64, 2**64 - 1, 1.5, "1", True, np.uint64(5), None],
    "step_offset": [-1, 2**32, 2**40, 1.0, None, 5],
    "device": ["tpu", "cuda", "CPU", None, 0, ["cpu"], "cpu", "auto"],
    "trace": ["yes", 1, None, np.bool_(True), True],
    "progress": ["no", 0, None, False],
    "clamp": [np.ones(N, int), np.ones(N + 1, bool), [True] * N, np.array([True, False] * 2),
              "all", np.ones((1, N), bool)],
}


@settings(max_examples=300, **SETTINGS)
@given(st.sampled_from(sorted(BAD_KW)), st.data())
def test_sample_ising_keywords(arg, data):
    value = data.draw(st.sampled_from(BAD_KW[arg]), label=arg)
    kw = {arg: value}
    if arg == "beta_schedule" and not isinstance(value, str):
        kw.update(beta_range=None, num_sweeps=None)
    if arg == "clamp":
        kw["initial_states"] = np.ones((3, N), np.int8)
    snap = snapshot(value) if isinstance(value, np.ndarray) else None
    res, exc = attempt(ising, H0, J0, **kw)
    unchanged(value, snap)
    if exc is not None:
        alias = {"num_reads": ("num_reads",), "beta_schedule": ("beta_schedule", "num_sweeps"),
                 "beta_range": ("beta_range",)}.get(arg, (arg,))
        check_error(exc, *alias, device=value if arg == "device" else None)
        return
    assert res.samples.shape == (kw.get("num_reads", 3), N)
    assert np.all(np.abs(res.samples) == 1)
    assert np.allclose(res.energies, _exact_energies(
        H0, {(i, j): J0[i, j] for i in range(N) for j in range(i + 1, N)}, res.samples))
    if arg == "beta_schedule" and isinstance(value, np.ndarray):  # strided -> same result
        same_ising(res, ising(H0, J0, beta_schedule=clean(value), beta_range=None,
                              num_sweeps=None))
    if arg == "clamp":
        assert np.array_equal(res.samples[:, np.asarray(value)], np.ones((3, int(np.sum(value)))))


INIT_SHAPES = st.sampled_from([(3, N)] * 5 + [(N,), (3, N + 1), (2, N), (0, N), (3, N, 1), ()])


@settings(max_examples=300, **SETTINGS)
@given(hostile_array(INIT_SHAPES, pool=SPIN_POOL))
@example(np.ones((3, N), np.complex128))   # was a ComplexWarning (imaginary part dropped)
def test_sample_ising_initial_states(S):
    snap = snapshot(S)
    res, exc = attempt(ising, H0, J0, initial_states=S)
    unchanged(S, snap)
    if exc is not None:
        check_error(exc, "initial_states")
        return
    assert S.shape == (3, N) and set(np.unique(clean(S)).tolist()) <= {-1.0, 1.0}
    same_ising(res, ising(H0, J0, initial_states=clean(S, np.int8)))
    # zero sweeps: the states come back as given
    zero = ising(H0, J0, initial_states=S, num_sweeps=0)
    assert np.array_equal(zero.samples, clean(S, np.int8))


@settings(max_examples=40, **SETTINGS)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**32))
def test_ising_result_first_and_sampleset(n, reads, seed):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=n)
    J = np.triu(rng.normal(size=(n, n)), 1)
    res = ef.sample_ising(h, J, num_reads=reads, num_sweeps=3, seed=seed)
    s, e = res.first
    k = int(np.argmin(res.energies))
    assert np.array_equal(s, res.samples[k]) and e == res.energies.min()
    dimod = pytest.importorskip("dimod")
    ss = res.to_sampleset()
    assert len(ss) == reads
    assert np.allclose(np.sort(ss.record.energy), np.sort(res.energies))
    bqm = dimod.BinaryQuadraticModel.from_ising(dict(enumerate(h)), {
        (i, j): J[i, j] for i in range(n) for j in range(i + 1, n)})
    assert np.allclose(bqm.energies((res.samples, range(n))), res.energies)


# --------------------------------------------------------------------------- lattice

LAT_KW = {
    "L": [0, 1, 2, 3, -4, 2.0, True, None, "4", 2**16, 10**12, np.int64(4), np.uint8(6), 4],
    "J": [np.nan, np.inf, 1e300, 1e38, "1", None, 1j, True, np.float32(-1.0), 0.0, 1],
    "h": [np.nan, -np.inf, 3e38, "0", None, [0.0], False, np.float16(0.5), -0.25],
}


@settings(max_examples=100, **SETTINGS)
@given(st.sampled_from(sorted(LAT_KW)), st.data())
def test_lattice_constructor(arg, data):
    value = data.draw(st.sampled_from(LAT_KW[arg]), label=arg)
    kw = dict(L=4, J=1.0, h=0.0)
    kw[arg] = value
    m, exc = attempt(ef.IsingLattice2D, **kw)
    if exc is not None:
        check_error(exc, arg)
        return
    assert m.L == int(kw["L"]) and m.L % 2 == 0 and isinstance(m.J, float)
    assert m.J == float(kw["J"]) and m.h == float(kw["h"])


LAT_SAMPLE_KW = {
    "beta": [0.0, -1.0, np.nan, np.inf, 1e300, True, "1", None, 1j, [0.5] * 3, [0.5, 0.5],
             np.array([0.2, 0.4, 0.6])[::-1], np.array([0.5, -0.5, 0.5]), [[0.5] * 3],
             np.float32(0.4), 2],
    "n_sweeps": [-1, 0, 2.0, True, None, 10**12, 2**31, 2**31 - 10, 3],
    "n_chains": [0, -1, 1.0, None, 10**12, 2**27, 2],
    "seed": [-1, 2**64, 1.5, None, 3],
    "step_offset": [-1, 2**32, 1.0, 7],
    "proposal": ["gibbs", "heat", None, ["gibbs"]],
    "trace": ["yes", None, 0, False],
    "device": ["tpu", "cuda", None, "cpu"],
    "initial_states": ["up", "down", 1, None],
}


@settings(max_examples=200, **SETTINGS)
@given(st.sampled_from(sorted(LAT_SAMPLE_KW)), st.data())
def test_lattice_sample_arguments(arg, data):
    value = data.draw(st.sampled_from(LAT_SAMPLE_KW[arg]), label=arg)
    m = ef.IsingLattice2D(4, J=1.0, h=0.1)
    m.sample(0.5, 1, n_chains=2, seed=1)
    before = (m.states_.copy(), m.next_step_)
    kw = dict(beta=0.5, n_sweeps=3, n_chains=2, seed=5)
    kw[arg] = value
    if arg == "n_sweeps" and isinstance(value, int) and value > 10**6:
        kw["trace"] = True  # must be refused (memory or step counter), never run
    snap = snapshot(value) if isinstance(value, np.ndarray) else None
    res, exc = attempt(m.sample, **kw)
    unchanged(value, snap)
    if exc is not None:
        check_error(exc, arg, "beta" if arg == "n_sweeps" else arg,
                    device=value if arg == "device" else None)
        assert np.array_equal(m.states_, before[0]) and m.next_step_ == before[1]
        return
    assert res.states.shape == (kw["n_chains"], 4, 4) and res.states.dtype == np.int8
    assert np.all(np.abs(res.states) == 1)
    e = ref.lattice_energy(res.states, 1.0, 0.1) / 16
    if kw.get("trace", True) and kw["n_sweeps"]:
        assert np.allclose(res.energy[-1], e, atol=1e-5)
    if isinstance(value, np.ndarray):
        other = ef.IsingLattice2D(4, J=1.0, h=0.1).sample(**dict(kw, beta=clean(value)))
        assert np.array_equal(other.states, res.states)


@settings(max_examples=150, **SETTINGS)
@given(hostile_array(st.sampled_from([(2, 4, 4)] * 5 + [(4, 4), (2, 4, 6), (0, 4, 4), (),
                                                        (2, 16), (1, 4, 4, 1)]),
                     pool=SPIN_POOL))
def test_lattice_energy(S):
    m = ef.IsingLattice2D(4, J=0.7, h=-0.2)
    snap = snapshot(S)
    e, exc = attempt(m.energy, S)
    unchanged(S, snap)
    if exc is not None:
        check_error(exc, "states")
        return
    assert np.array_equal(e, ref.lattice_energy(clean(S, np.int8), 0.7, -0.2) / 16)


def test_lattice_initial_states_arrays_not_modified():
    """Read-only and negative-stride initial states give the contiguous result."""
    m = ef.IsingLattice2D(4)
    S = np.where(np.random.default_rng(0).random((2, 4, 4)) < 0.5, 1, -1).astype(np.float64)
    want = m.sample(0.4, 3, n_chains=2, seed=9, initial_states=S.astype(np.int8))
    ro = S.copy()
    ro.setflags(write=False)
    for x in (ro, S[::-1].copy()[::-1], np.asfortranarray(S)):
        got = m.sample(0.4, 3, n_chains=2, seed=9, initial_states=x)
        assert np.array_equal(got.states, want.states)
        assert np.array_equal(x, S)


# --------------------------------------------------------------------------- mcmc

GAUSS = E.Gaussian([0.5, -1.0], cov=[[1.0, 0.3], [0.3, 2.0]])


def _quad(X):
    return 0.5 * np.sum(X * X, axis=1)


def _quad_grad(X):
    return X


SAMPLERS = {"metropolis": ef.metropolis, "mala": ef.mala, "langevin": ef.langevin}
X0_SHAPES = st.sampled_from([(3, 2)] * 5 + [(2,), (0, 2), (3, 0), (3, 3), (3, 2, 1), ()])


@settings(max_examples=400, **SETTINGS)
@given(hostile_array(X0_SHAPES, pool=[0.0, 1.0, -0.5, 2.0] * 4 + [np.nan, np.inf, 1e39]),
       st.sampled_from(sorted(SAMPLERS)), st.booleans())
def test_mcmc_x0(x0, sampler, builtin):
    fn = SAMPLERS[sampler]
    kw = dict(seed=3, burn_in=2)
    run = ((lambda x: fn(GAUSS, x, 4, 0.5, **kw)) if builtin else
           (lambda x: fn(_quad, x, 4, 0.5, grad=_quad_grad, **kw)))
    snap = snapshot(x0)
    res, exc = attempt(run, x0)
    unchanged(x0, snap)
    if exc is not None:
        check_error(exc, "x0")
        return
    assert x0.dtype in (np.float32, np.float64)
    want = run(clean(x0, x0.dtype))
    for a, b in ((res.samples, want.samples), (res.x, want.x), (res.energies, want.energies),
                 (res.step_size, want.step_size), (res.acceptance, want.acceptance)):
        assert np.array_equal(a, b, equal_nan=True)
    assert res.samples.shape == (4,) + x0.shape and np.isfinite(res.samples).all()
    assert "MCMCResult" in repr(res)


MCMC_KW = {
    "energy": [None, 3, "gaussian", E.DoubleWell(), E.Rosenbrock(), E.Gaussian([0.0] * 3)],
    "n_steps": [-1, 0, 2.5, True, None, 10**12, 2**32, 2**31, 5],
    "step_size": [0.0, -0.5, np.nan, np.inf, 1e300, 1e-50, "0.5", True, None, 1j,
                  [0.5, 0.5], np.full(3, 0.3)[::-1], np.array([0.1, 0.2, 0.3], np.float16),
                  np.array([[0.5] * 3]), [0.5, 0.5, -0.5], np.int64(1), 0.5],
    "seed": [-1, 2**64, 1.5, "0", 7],
    "device": ["tpu", "cuda", None, "GPU", "cpu"],
    "grad": [_quad_grad, "grad", 3],
    "burn_in": [-1, 2.0, None, 2**33, 3],
    "adapt": ["yes", 1, None, np.bool_(False)],
    "thin": [0, -1, 1.5, 2**40, 2],
    "step_offset": [-1, 2**32, 2**31, None, 4],
}


@settings(max_examples=200, **SETTINGS)
@given(st.sampled_from(sorted(MCMC_KW)), st.sampled_from(sorted(SAMPLERS)), st.data())
def test_mcmc_arguments(arg, sampler, data):
    value = data.draw(st.sampled_from(MCMC_KW[arg]), label=arg)
    x0 = np.zeros((3, 2), np.float32)
    kw = dict(energy=GAUSS, x0=x0, n_steps=4, step_size=0.5, seed=1)
    kw[arg] = value
    if arg == "n_steps" and isinstance(value, int) and value > 10**6:
        kw["x0"] = np.zeros((10**5, 2), np.float32)  # keeping the samples: far beyond memory
    energy = kw.pop("energy")
    snap = snapshot(value) if isinstance(value, np.ndarray) else None
    res, exc = attempt(SAMPLERS[sampler], energy, **kw)
    unchanged(value, snap)
    if exc is not None:
        alias = {"energy": ("energy", "x0"), "n_steps": ("n_steps",),
                 "step_offset": ("step_offset",), "burn_in": ("burn_in",)}.get(arg, (arg,))
        check_error(exc, *alias, device=value if arg == "device" else None)
        return
    n = kw["n_steps"]
    assert res.samples.shape == (n // kw.get("thin", 1), 3, 2) and np.isfinite(res.x).all()
    assert res.step_size.shape == (3,) and np.all(res.step_size > 0)
    if isinstance(value, np.ndarray) and arg == "step_size":
        want = SAMPLERS[sampler](energy, **dict(kw, step_size=clean(value)))
        assert np.array_equal(want.samples, res.samples)


# --------------------------------------------------------------------------- energies

ENERGY_ARGS = {
    ("Gaussian", "mean"): [[], [np.nan], [1e300], ["1"], [True], np.array([1j]), [[0.0]], None,
                           0.0, np.array([0.0, 1.0])[::-1], [0, 1]],
    ("Gaussian", "cov"): [0.0, -1.0, 1e-300, [1.0, -1.0], [[1.0, 0.5], [0.0, 1.0]],
                          [[1.0, 2.0], [2.0, 1.0]], np.zeros((2, 2)), np.ones((2, 2, 2)), "1",
                          1j, np.nan, [[2.0, 0.1], [0.1, 1.0]], 2],
    ("Gaussian", "precision"): [0.0, [[1.0, np.inf], [np.inf, 1.0]], 1e300, [1.0, 2.0]],
    ("GaussianMixture", "weights"): [[], [0.0, 1.0], [-1.0, 1.0], [1e308, 1e308], [np.nan, 1],
                                     ["a", "b"], [1, 2], [[1.0, 1.0]]],
    ("GaussianMixture", "means"): [np.zeros((2, 0)), np.zeros((3, 2)), np.zeros((2, 2, 1)),
                                   [[1e300, 0.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]], [0, 1]],
    ("GaussianMixture", "sigmas"): [0.0, -1.0, 1e-300, [1.0, 1.0, 1.0], np.ones((2, 3)),
                                    np.ones((2, 2)), [1.0, 2.0], "1", np.inf, 0.5],
    ("DoubleWell", "a"): [0.0, -1.0, np.nan, 1e300, "2", True, None, [1.0], 1j, 2, 0.5],
    ("Rosenbrock", "a"): [np.nan, 1e300, "1", -1.0],
    ("Rosenbrock", "b"): [0.0, -1.0, np.inf, 3e38, 100],
    ("Rosenbrock", "scale"): [0.0, 1e-300, None, 20.0],
    ("RBMFreeEnergy", "rbm"): [object(), "rbm", 3],
    ("RBMFreeEnergy", "W"): [np.ones(3), np.ones((0, 2)), np.ones((3, 2, 1)), np.full((3, 2),
                             np.nan), np.ones((2, 2)), np.full((3, 2), 1e300), None,
                             np.ones((3, 2), complex), np.ones((3, 2), np.int8),
                             np.ones((3, 2))[::-1]],
    ("RBMFreeEnergy", "confine"): [-1.0, np.nan, "0", None, 1.0],
    ("CudaSource", "source"): [None, b"energy", 3, "no function here", "energy"],
    ("CudaSource", "dim"): [0, -1, 2.5, "3", True, 2**40, 3],
    ("Energy", "none"): [None],
}


def _energy(cls, arg, value):
    base = {"Gaussian": dict(mean=[0.0, 1.0]),
            "GaussianMixture": dict(weights=[1.0, 2.0], means=[[0.0, 0.0], [1.0, 1.0]]),
            "DoubleWell": {}, "Rosenbrock": {},
            "RBMFreeEnergy": dict(W=np.ones((3, 2)), b=np.zeros(3), c=np.zeros(2)),
            "CudaSource": dict(source="__device__ float energy(const float* x, int d)"),
            "Energy": {}}[cls]
    kw = dict(base)
    if cls == "RBMFreeEnergy" and arg == "rbm":
        kw = {"rbm": value}
    elif arg != "none":
        kw[arg] = value
    return getattr(E, cls)(**kw)


@settings(max_examples=200, **SETTINGS)
@given(st.sampled_from(sorted(ENERGY_ARGS)), st.data())
def test_energy_constructors(key, data):
    cls, arg = key
    value = data.draw(st.sampled_from(ENERGY_ARGS[key]), label=f"{cls}.{arg}")
    snap = snapshot(value) if isinstance(value, np.ndarray) else None
    energy, exc = attempt(_energy, cls, arg, value)
    unchanged(value, snap)
    if exc is not None:
        alias = {"cov": ("cov",), "precision": ("precision",), "sigmas": ("sigmas",),
                 "scale": ("scale",), "none": ("Energy",), "rbm": ("rbm", "RBM"),
                 "W": ("W", "b", "c")}.get(arg, (arg,))
        check_error(exc, *alias)
        return
    if cls == "CudaSource":
        assert energy.dim is None or (isinstance(energy.dim, int) and energy.dim >= 1)
        return
    d = energy.dim or 2
    params = energy.params(d)
    for v in params.values():
        assert np.isfinite(np.asarray(v, np.float32)).all()
    X = np.linspace(-1.0, 1.0, 3 * d).reshape(3, d)
    e, g = energy.energy_grad(X)
    k_e, k_g = energy.kernel_energy(X)
    assert np.isfinite(e).all() and np.isfinite(g).all()
    ok = np.abs(e) < 1e30  # the float32 kernel's energy itself may pass float32's range
    assert np.allclose(k_e[ok], e[ok], rtol=1e-4, atol=1e-4 * (1 + np.abs(e[ok]).max(initial=0)))


ENERGIES = [GAUSS, E.GaussianMixture([1.0, 2.0], [[0.0, 0.0], [1.0, 1.0]], 0.5),
            E.DoubleWell(2.0), E.Rosenbrock(),
            E.RBMFreeEnergy(W=np.full((2, 3), 0.5), b=[0.1, -0.1], c=[0.0, 0.2, 0.1], confine=1.0)]


@settings(max_examples=300, **SETTINGS)
@given(hostile_array(st.sampled_from([(3, 2)] * 5 + [(2,), (0, 2), (3, 3), (3, 1), (3, 2, 2),
                                                    ()]),
                     pool=[0.0, 1.0, -0.5, 2.0] * 4 + [np.nan, np.inf, 1e39]),
       st.integers(0, len(ENERGIES) - 1), st.sampled_from(["call", "energy_grad", "kernel"]))
def test_energy_evaluation(X, k, how):
    energy = ENERGIES[k]
    fn = {"call": energy, "energy_grad": energy.energy_grad, "kernel": energy.kernel_energy}[how]
    snap = snapshot(X)
    out, exc = attempt(fn, X)
    unchanged(X, snap)
    if exc is not None:
        check_error(exc, "X")
        return
    Xc = clean(X, X.dtype if X.dtype in (np.float32, np.float64) else np.float64)
    want = fn(Xc)
    for a, b in zip(out if isinstance(out, tuple) else (out,),
                    want if isinstance(want, tuple) else (want,)):
        assert np.array_equal(a, b)
    e = out[0] if isinstance(out, tuple) else out
    exact = energy.energy_grad(np.atleast_2d(Xc).astype(np.float64))[0]
    assert e.shape == exact.shape == (np.atleast_2d(Xc).shape[0],)
    # the float32 kernel is compared where the energy itself is well inside float32's range
    ok = np.abs(exact) < 1e30
    assert np.isfinite(e[ok]).all()
    assert np.allclose(e[ok], exact[ok], rtol=1e-4,
                       atol=1e-4 * (1 + np.abs(exact[ok]).max(initial=0)))


# --------------------------------------------------------------------------- diagnostics

DIAG = {
    "acceptance_rate": lambda t: D.acceptance_rate(t),
    "autocorrelation": lambda t: D.autocorrelation(t),
    "integrated_autocorr_time": lambda t: D.integrated_autocorr_time(t),
    "integrated_autocorr_time_geyer": lambda t: D.integrated_autocorr_time(t, method="geyer"),
    "effective_sample_size": lambda t: D.effective_sample_size(t),
    "split_rhat": lambda t: D.split_rhat(t),
    "split_rhat_rank": lambda t: D.split_rhat(t, rank_normalize=True),
}
TRACE_SHAPES = st.sampled_from([(8, 2)] * 4 + [(8, 3, 2)] * 2 + [(8,), (), (0, 2), (3, 2),
                                                                   (8, 0), (8, 2, 0)])


@settings(max_examples=500, **SETTINGS)
@given(hostile_array(TRACE_SHAPES, pool=[0.0, 1.0, -0.5, 2.0, 3.0, -1.0] * 3
                     + [np.nan, np.inf, 1e300, -1e300, 1e-300]),
       st.sampled_from(sorted(DIAG)))
def test_diagnostics_traces(trace, name):
    fn = DIAG[name]
    snap = snapshot(trace)
    with np.errstate(over="raise"):  # no silent overflow inside
        out, exc = attempt(fn, trace)
    unchanged(trace, snap)
    if exc is not None:
        check_error(exc, "trace", "x", "trace_or_accepted")
        return
    base = trace if trace.dtype == bool else clean(trace)
    want = fn(base)
    # (R-hat is +inf for chains constant at different values: W = 0 < B)
    assert np.array_equal(np.asarray(out), np.asarray(want), equal_nan=True)


DIAG_OPTS = [
    (D.acceptance_rate, "axis", [5, -3, 1.0, "0", None, True, 1]),
    (D.autocorrelation, "axis", [2, -3, 0.0, None, 1]),
    (D.integrated_autocorr_time, "c", [0.0, -1.0, np.nan, np.inf, "5", None, True, 3]),
    (D.integrated_autocorr_time, "method", ["SOKAL", None, 1, ["geyer"], "geyer"]),
    (D.split_rhat, "rank_normalize", ["yes", 1, None, np.bool_(True)]),
]


@settings(max_examples=60, **SETTINGS)
@given(st.integers(0, len(DIAG_OPTS) - 1), st.data())
def test_diagnostics_options(k, data):
    fn, arg, pool = DIAG_OPTS[k]
    value = data.draw(st.sampled_from(pool), label=arg)
    trace = np.random.default_rng(k).normal(size=(20, 3))
    out, exc = attempt(fn, trace, **{arg: value})
    if exc is not None:
        check_error(exc, arg)
        return
    assert np.isfinite(np.asarray(out)).all()


@settings(max_examples=30, **SETTINGS)
@given(st.integers(0, 2**32), st.sampled_from([1e300, 2.0**600, 1e-300, 2.0**-700]),
       st.sampled_from(sorted(set(DIAG) - {"acceptance_rate"})))
def test_diagnostics_scale_invariant(seed, scale, name):
    """Diagnostics are scale-invariant; extreme scales must not overflow or underflow."""
    t = np.random.default_rng(seed).normal(size=(40, 3)).cumsum(axis=0)
    with np.errstate(over="raise"):
        got = np.asarray(DIAG[name](t * scale))
    want = np.asarray(DIAG[name](t))
    assert np.allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_rank_normalized_rhat_with_ties():
    """Discrete draws tie; ranks of ties are averaged, so iid +-1 chains look converged
    and constant chains give NaN (old positional tie-breaking gave ~1.8 for both)."""
    rng = np.random.default_rng(1)
    spins = np.where(rng.random((2000, 4)) < 0.5, 1.0, -1.0)
    # iid: split-R-hat - 1 is O(1/n) (about 1e-3 here); 1.02 is many standard errors away
    assert D.split_rhat(spins, rank_normalize=True) < 1.02
    assert np.isnan(D.split_rhat(np.ones((50, 2)), rank_normalize=True))


# --------------------------------------------------------------------------- threads, plots, build


@settings(max_examples=40, **SETTINGS)
@given(st.sampled_from([0, -1, 1, 2, 1024, 1025, 2.0, "2", None, True, np.int64(2), np.uint8(1),
                        10**12, 2**31, 2**64, [2]]))
def test_set_num_threads(n):
    n0 = ef.get_num_threads()
    try:
        _, exc = attempt(ef.set_num_threads, n)
        if exc is not None:
            check_error(exc, "n")
            assert ef.get_num_threads() == n0
        else:
            assert ef.get_num_threads() == int(n)
    finally:
        ef.set_num_threads(n0)
    assert ef.get_num_threads() == n0


IMG_SHAPES = st.sampled_from([(4, 9)] * 4 + [(9,), (0, 9), (4, 0), (4, 3, 3), (), (2, 10)])


@settings(max_examples=25, **SETTINGS)
@given(hostile_array(IMG_SHAPES, pool=[0.0, 1.0, 0.5, 3.0] * 4 + [np.nan, np.inf, 1e308,
                                                                   -1e308]))
def test_sample_grid_images(tmp_path_factory, images):
    pytest.importorskip("matplotlib")
    from ebmfast.plotting import sample_grid
    path = tmp_path_factory.mktemp("grid") / "g.png"
    snap = snapshot(images)
    out, exc = attempt(sample_grid, images, path)
    unchanged(images, snap)
    if exc is not None:
        check_error(exc, "images", "image_shape")
        return
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


GRID_KW = {
    "path": [None, 3, b"bytes.png", "sub/missing/g.png", "plain.png"],
    "title": [3, object(), b"t", "samples", None],
    "n_cols": [0, -1, 1.5, True, "2", 10**12, 2],
    "image_shape": [(3,), (3, 3, 1), (9, 1), ("3", "3"), (3.0, 3.0), (0, 9), (2**40, 2**40), 9,
                    np.array([3, 3])],
    "images": [np.zeros((2000, 4)), [[1, 2], [3]], "abc", None],
}


@settings(max_examples=25, **SETTINGS)
@given(st.sampled_from(sorted(GRID_KW)), st.data())
def test_sample_grid_options(tmp_path_factory, arg, data):
    pytest.importorskip("matplotlib")
    from ebmfast.plotting import sample_grid
    value = data.draw(st.sampled_from(GRID_KW[arg]), label=arg)
    d = tmp_path_factory.mktemp("opts")
    kw = dict(images=np.random.default_rng(0).random((4, 9)), path=d / "g.png")
    kw[arg] = value
    if arg == "path" and isinstance(value, (str, bytes)):
        kw["path"] = os.path.join(os.fsencode(d) if isinstance(value, bytes) else str(d), value)
    cwd = os.getcwd()
    try:
        os.chdir(d)
        out, exc = attempt(sample_grid, kw.pop("images"), kw.pop("path"), **kw)
    finally:
        os.chdir(cwd)
    if exc is not None:
        check_error(exc, arg, oserror=arg == "path")
        return
    assert os.path.getsize(out) > 0


@settings(max_examples=10, **SETTINGS)
@given(st.lists(st.sampled_from([0, None, "x", True]), max_size=2))
def test_build_info_and_cuda_available(args):
    if args:
        with pytest.raises(TypeError):
            ef.build_info(*args)
        with pytest.raises(TypeError):
            ef.cuda_available(*args)
        return
    info = ef.build_info()
    assert info["cuda_available"] is ef.cuda_available() and isinstance(ef.cuda_available(), bool)
    assert info["version"] == ef.__version__ and info["openmp_threads"] >= 1
    assert info["cuda_compiled"] or not info["cuda_available"]


# --------------------------------------------------------------------------- subprocess

RISKY = textwrap.dedent("""
    import numpy as np, scipy.sparse as sp, ebmfast as ef
    from ebmfast import energies as E
    def expect(fn, *types):
        try:
            fn()
        except types:
            return
        raise SystemExit("no error from " + repr(fn))
    h = np.zeros(5)
    # sparse input with duplicates, read-only and negative-stride arrays into the kernels
    J = sp.coo_matrix((np.array([1.0, 1.0, 2.0]), (np.array([0, 0, 1]), np.array([1, 1, 0]))),
                      shape=(5, 5))
    r = ef.sample_ising(h, J, num_reads=4, num_sweeps=5, seed=1)
    assert J.nnz == 3 and np.allclose(r.energies, 2.0 * r.samples[:, 0] * r.samples[:, 1])
    S = np.ones((4, 5), np.int8)[::-1]
    S.setflags(write=False)
    ef.sample_ising(h[::-1], np.triu(np.ones((5, 5)), 1)[::-1, ::-1].T.copy()[::-1, ::-1].T,
                    num_reads=4, num_sweeps=3, initial_states=S, seed=2)
    assert (S == 1).all()
    # huge sizes fail fast, no terabytes
    expect(lambda: ef.sample_ising(h, None, num_sweeps=10**12), ValueError, MemoryError)
    expect(lambda: ef.sample_ising(h, None, num_sweeps=2**31, trace=True, num_reads=10**4),
           ValueError, MemoryError)
    expect(lambda: ef.IsingLattice2D(8).sample(1.0, 2**31 - 1, n_chains=10**4), ValueError,
           MemoryError)
    expect(lambda: ef.metropolis(E.DoubleWell(), np.zeros((10**5, 2), np.float32), 2**31, 0.5),
           ValueError, MemoryError)
    # values at the float32 edge into the compiled kernels
    expect(lambda: ef.IsingLattice2D(4, J=3e38), ValueError)
    ef.IsingLattice2D(4, J=2e37).sample(1e30, 2, seed=1)
    ef.metropolis(E.Gaussian([0.0]), np.full((2, 1), 3e38, np.float32), 3, 1e30, seed=1)
    E.Gaussian([0.0, 0.0]).kernel_energy(np.zeros((6, 2), np.float32)[::-2])
    ef.set_num_threads(1024); assert ef.get_num_threads() == 1024; ef.set_num_threads(1)
    print("DONE")
""")


def test_riskiest_probes_in_subprocess():
    env = dict(os.environ, PYTHONWARNINGS="error")
    p = subprocess.run([sys.executable, "-c", RISKY], capture_output=True, text=True,
                       timeout=240, env=env)
    assert p.returncode == 0 and "DONE" in p.stdout, (p.returncode, p.stdout[-2000:],
                                                      p.stderr[-2000:])
