"""Ctrl-C during long calls (DESIGN.md §4): the kernels release the GIL, so long loops run
in chunks and a SIGINT must come back as KeyboardInterrupt within a second, leaving the
model valid (finite, internally consistent, not half-updated) and usable.

Each case runs in a child interpreter: it builds its model, prints "started", enters the
long call; the parent sends SIGINT a moment later and times the "interrupted" line the
child prints from its KeyboardInterrupt handler; the child then checks the model and
prints "OK". The chunked == unchunked tests at the end check that cutting a run into
kernel calls changes no result.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import _core

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# Seconds from SIGINT to the KeyboardInterrupt handler (the bound of the task), and the
# pause after "started" so that the signal lands inside the long call.
_BOUND_S = 1.0
_SETTLE_S = 0.3

_PRELUDE = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the parent inherited
import numpy as np
import ebmfast as ef
from ebmfast import _core

def finite(*arrays):
    return all(bool(np.isfinite(np.asarray(a)).all()) for a in arrays)
"""

_RUN = """
def case_{name}():
{setup}
    print("started", flush=True)
    try:
        {call}
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    else:
        print("finished", flush=True)
        sys.exit(3)
{check}
    print("OK", flush=True)
case_{name}()
"""

# name: (setup, long call, checks after the interrupt). Every long call would run for
# minutes if not interrupted.
CASES = {
    "rbm_fit": (
        """
        X = (np.random.default_rng(0).random((600, 196)) < 0.3).astype(np.float32)
        kw = dict(seed=1, batch_size=20, learning_rate=0.05, momentum=0.5, k=2)
        m = ef.RBM(196, 256, epochs=10**6, **kw)
        """,
        "m.fit(X)",
        """
        assert finite(m.W, m.b, m.c) and np.array_equal(m.components_, m.W.T)
        # No half-done update: replaying the completed updates on a fresh model gives the
        # same parameters bit for bit (each update consumes k Philox steps).
        u = m.step // m.k
        assert u * m.k == m.step and u >= 1
        nb = 600 // 20
        ref = ef.RBM(196, 256, epochs=u // nb, **kw).fit(X)
        keys = _core.philox_uniforms(ref.seed_, ef.reference.STREAM_SHUFFLE, u // nb, 1, 600)[0]
        order = np.argsort(keys, kind="stable")
        for i in range(u % nb):
            ref.partial_fit(X[order[20 * i:20 * i + 20]])
        assert ref.step == m.step
        for a, b in ((m.W, ref.W), (m.b, ref.b), (m.c, ref.c), (m._vW, ref._vW)):
            np.testing.assert_array_equal(a, b)
        if m._tables is not None and m._tables[0] == m._w_version:
            np.testing.assert_array_equal(m._tables[1], _core.subset_table(m._W))
        m.epochs = 1
        m.fit(X[:40])
        assert finite(m.W) and m.sample(3, 2).shape == (3, 196)
        """),
    "rbm_sample": (
        """
        m = ef.RBM(784, 500, seed=2)
        W0 = m.W.copy()
        """,
        "m.sample(200, n_steps=10**7)",
        """
        assert np.array_equal(m.W, W0) and 1 <= m.step < 10**7
        step = m.step
        assert m.sample(2, 3).shape == (2, 784) and m.step == step + 4
        """),
    "rbm_gibbs": (
        """
        m = ef.RBM(784, 500, seed=3)
        V = (np.random.default_rng(1).random((100, 784)) < 0.5).astype(np.float32)
        V0 = V.copy()
        """,
        "m.gibbs(V, k=10**7)",
        """
        assert np.array_equal(V, V0) and 1 <= m.step < 10**7
        assert m.gibbs(V, k=2).shape == V.shape
        """),
    "sample_ising": (
        """
        rng = np.random.default_rng(0)
        J = np.triu(rng.standard_normal((400, 400)), 1)
        h = rng.standard_normal(400)
        """,
        "ef.sample_ising(h, J, num_reads=200, num_sweeps=10**5, beta_range=(0.1, 1.0), seed=1)",
        """
        r = ef.sample_ising(h, J, num_reads=5, num_sweeps=3, seed=1)
        assert r.samples.shape == (5, 400) and finite(r.energies)
        """),
    "lattice": (
        """
        m = ef.IsingLattice2D(128)
        """,
        "m.sample(0.44, 10**5, n_chains=8, seed=1, trace=False)",
        """
        assert m.states_ is None and m.next_step_ == 0  # nothing recorded by the interrupted call
        r = m.sample(0.44, 3, n_chains=2, seed=1)
        assert r.states.shape == (2, 128, 128) and m.next_step_ == 6
        """),
    "metropolis": (
        """
        E = ef.energies.Gaussian(np.zeros(20))
        x0 = np.zeros((2000, 20), np.float32)
        """,
        "ef.metropolis(E, x0, 10, 0.5, seed=1, burn_in=10**8)",
        """
        assert np.all(x0 == 0)
        r = ef.metropolis(E, x0, 5, 0.5, seed=1)
        assert r.samples.shape == (5, 2000, 20)
        """),
    "mala": (
        """
        E = ef.energies.Gaussian(np.zeros(20))
        x0 = np.zeros((2000, 20), np.float32)
        """,
        "ef.mala(E, x0, 10, 0.5, seed=1, burn_in=10**8)",
        """
        assert ef.mala(E, x0, 5, 0.5, seed=1).samples.shape == (5, 2000, 20)
        """),
    "langevin": (
        """
        E = ef.energies.Gaussian(np.zeros(20))
        x0 = np.zeros((2000, 20), np.float32)
        """,
        "ef.langevin(E, x0, 10**8, 0.5, seed=1, thin=10**7)",
        """
        assert ef.langevin(E, x0, 7, 0.5, seed=1, thin=7).samples.shape == (1, 2000, 20)
        """),
    "metropolis_callable": (
        """
        x0 = np.zeros((500, 5))
        E = lambda X: 0.5 * (X ** 2).sum(axis=1)
        """,
        "ef.metropolis(E, x0, 10, 0.5, seed=1, burn_in=10**8)",
        """
        assert ef.metropolis(E, x0, 3, 0.5, seed=1).samples.shape == (3, 500, 5)
        """),
    "dbm_fit": (
        """
        X = (np.random.default_rng(0).random((400, 64)) < 0.3).astype(np.float32)
        m = ef.DBM([64, 48, 32], seed=1, epochs=10**6, pretrain_epochs=3, batch_size=20,
                   n_chains=20)
        """,
        "m.fit(X)",
        """
        assert finite(*m.W_, *m.biases_)
        for W, WT in zip(m.W_, m._WT):
            np.testing.assert_array_equal(WT, W.T)
        assert m.mean_field(X[:5]).q[0].shape == (5, 48)
        m.epochs = 1
        m.fit(X[:40])
        assert finite(*m.W_) and m.sample(2, 2).shape == (2, 64)
        """),
    "dbm_pretrain": (
        """
        X = (np.random.default_rng(0).random((400, 64)) < 0.3).astype(np.float32)
        m = ef.DBM([64, 48, 32], seed=1, epochs=0, pretrain_epochs=10**6, batch_size=20)
        W0 = [W.copy() for W in m.W_]
        """,
        "m.fit(X)",
        """
        assert not m.pretrained_  # interrupted inside pre-training: nothing committed
        for W, W_0, WT in zip(m.W_, W0, m._WT):
            np.testing.assert_array_equal(W, W_0)
            np.testing.assert_array_equal(WT, W.T)
        assert m.sample(2, 2).shape == (2, 64)
        """),
    "dbm_sample": (
        """
        m = ef.DBM([784, 500, 500], seed=1)
        """,
        "m.sample(500, n_steps=10**7)",
        """
        step = m.step_
        assert 1 <= step <= 10**7 + 1
        assert m.sample(2, 3).shape == (2, 784) and m.step_ == step + 4
        """),
    "bm_fit": (
        """
        X = (np.random.default_rng(0).random((200, 30)) < 0.4).astype(np.float32)
        m = ef.BoltzmannMachine(30, 20, seed=1, epochs=10**6, batch_size=20, n_chains=50,
                                learning_rate=0.01)
        """,
        "m.fit(X)",
        """
        assert finite(m.W, m.b) and np.array_equal(m.W, m.W.T) and not np.diag(m.W).any()
        m.epochs = 1
        m.fit(X[:20])
        assert m.sample(3, 2).shape == (3, 50)
        """),
    "bm_sample": (
        """
        m = ef.BoltzmannMachine(200, 100, seed=1)
        m.W = np.random.default_rng(0).standard_normal((300, 300)) * 0.01
        m.W = 0.5 * (m.W + m.W.T)
        np.fill_diagonal(m.W, 0.0)
        """,
        "m.sample(1000, n_sweeps=10**5)",
        """
        step = m.step_
        assert step >= 1
        assert m.sample(3, 2).shape == (3, 300) and m.step_ == step + 2
        """),
    "hopfield_recall": (
        """
        rng = np.random.default_rng(0)
        m = ef.Hopfield(2048)
        m.store(rng.integers(0, 2, (50, 2048), dtype=np.int8) * 2 - 1)
        cues = rng.integers(0, 2, (16384, 2048), dtype=np.int8) * 2 - 1
        W0 = m.W.copy()
        """,
        "m.recall(cues, order='random')",
        """
        assert np.array_equal(m.W, W0)
        r = m.recall(cues[:5], order="random")
        assert r.states.shape == (5, 2048) and np.all(np.abs(r.states) == 1)
        """),
    "hopfield_sample": (
        """
        rng = np.random.default_rng(0)
        m = ef.Hopfield(500)
        m.store(np.where(rng.random((20, 500)) < 0.5, 1, -1))
        S = np.where(rng.random((100, 500)) < 0.5, 1, -1)
        """,
        "m.sample(S, 1.0, 10**5)",
        """
        assert m.sample(S[:2], 1.0, 3).states.shape == (2, 500)
        """),
    "hopfield_anneal": (
        """
        rng = np.random.default_rng(0)
        m = ef.Hopfield(500)
        m.store(np.where(rng.random((20, 500)) < 0.5, 1, -1))
        S = np.where(rng.random((100, 500)) < 0.5, 1, -1)
        """,
        "m.anneal(S, 2.0, 0.99999, 10**5)",
        """
        assert m.anneal(S[:2], 2.0, 0.5, 3).states.shape == (2, 500)
        """),
    "ais": (
        """
        m = ef.RBM(784, 500, seed=1)
        W0 = m.W.copy()
        """,
        "ef.estimators.ais(m, n_runs=100, betas=np.linspace(0.0, 1.0, 10**5))",
        """
        assert np.array_equal(m.W, W0)
        r = ef.estimators.ais(m, n_runs=4, betas=np.linspace(0.0, 1.0, 5))
        assert np.isfinite(r.log_z)
        """),
}


# One child per model family (start-up is the slow part); its cases run one after another.
GROUPS = {
    "rbm": ["rbm_fit", "rbm_sample", "rbm_gibbs", "ais"],
    "ising": ["sample_ising", "lattice", "hopfield_recall", "hopfield_sample", "hopfield_anneal"],
    "mcmc": ["metropolis", "mala", "langevin", "metropolis_callable"],
    "dbm": ["dbm_fit", "dbm_pretrain", "dbm_sample"],
    "bm": ["bm_fit", "bm_sample"],
}


def _child_source(names) -> str:
    src = _PRELUDE
    for name in names:
        setup, call, check = CASES[name]
        src += _RUN.format(name=name, setup=textwrap.indent(textwrap.dedent(setup).strip(), "    "),
                           call=call, check=textwrap.indent(textwrap.dedent(check).strip(), "    "))
    return src


def _reader(stream, q):
    for line in stream:
        q.put((time.perf_counter(), line.strip()))
    q.put((time.perf_counter(), None))


def _next_line(q, timeout):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None, "<timeout>"


def test_groups_cover_every_case():
    assert sorted(n for g in GROUPS.values() for n in g) == sorted(CASES)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_ctrl_c_returns_within_a_second(group):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", _child_source(GROUPS[group])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    q: queue.Queue = queue.Queue()
    errq: queue.Queue = queue.Queue()
    readers = [threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True),
               threading.Thread(target=_reader, args=(proc.stderr, errq), daemon=True)]
    for r in readers:
        r.start()

    def stderr_text():
        lines = []
        while not errq.empty():
            lines.append(errq.get()[1] or "")
        return "\n".join(lines)

    name = None
    try:
        for name in GROUPS[group]:
            deadline = time.perf_counter() + 300  # start-up and set-up are not timed
            line = ""
            while line not in ("started", None, "<timeout>"):  # skip what an import printed
                _, line = _next_line(q, max(deadline - time.perf_counter(), 0.1))
            assert line == "started", f"child did not start: {line!r}"
            time.sleep(_SETTLE_S)
            assert proc.poll() is None, "the long call ended before the signal"
            t_sig = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            t_line, line = _next_line(q, 30)
            assert line == "interrupted", f"expected 'interrupted', got {line!r}"
            assert t_line - t_sig < _BOUND_S, f"KeyboardInterrupt {t_line - t_sig:.2f} s after SIGINT"
            _, line = _next_line(q, 120)
            assert line == "OK", f"model check after the interrupt failed ({line!r})"
        rc = proc.wait(timeout=120)
        assert rc == 0, f"child exit status {rc}"
    except AssertionError as exc:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for r in readers:
            r.join(timeout=10)
        raise AssertionError(f"{name}: {exc}\nchild stderr:\n{stderr_text()}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for r in readers:
            r.join(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


# --------------------------------------------------------------------------- chunked == one call
# Cutting a run into kernel calls (for Ctrl-C) must not change a single bit: the Philox
# step of every update is absolute, and what a kernel carries (fields, tables) is handed on.

def _one_call(monkeypatch):
    monkeypatch.setattr(ef._interrupt, "CHUNK_WORK", 1e30)


def _tiny_chunks(monkeypatch):
    monkeypatch.setattr(ef._interrupt, "CHUNK_WORK", 1.0)


@pytest.mark.parametrize("rows,steps", [(3, 9), (40, 9), (7, 100)])  # no tables / cached / built
@pytest.mark.parametrize("cache_tables", [True, False])
def test_rbm_gibbs_and_sample_chunked_equal_one_call(monkeypatch, rows, steps, cache_tables):
    if not cache_tables:  # a model too large for cached tables: tables built per call
        monkeypatch.setattr(ef.rbm, "_TABLE_CACHE_MAX_BYTES", 0)
    rng = np.random.default_rng(rows)
    rbm = ef.RBM(37, 29, seed=5)
    rbm.W = rng.standard_normal((37, 29))
    V = (rng.random((rows, 37)) < 0.4).astype(np.float32)
    out = {}
    for mode in ("one", "tiny"):
        (_one_call if mode == "one" else _tiny_chunks)(monkeypatch)
        rbm.step = 11
        rbm._tables = None
        g = rbm.gibbs(V, k=steps)
        s = rbm.sample(rows, n_steps=steps, beta=0.7)
        out[mode] = (g, s, rbm.step)
    for a, b in zip(out["one"], out["tiny"]):
        np.testing.assert_array_equal(a, b)
    # and equal to one direct kernel call, where the kernel's own table choice is the same
    if rows * steps >= 512 or rows * steps < 256:
        W = np.ascontiguousarray(rbm.W)
        direct = V.copy()
        _core.gibbs(W, np.ascontiguousarray(W.T), rbm.b, rbm.c, V, direct, steps, 1.0,
                    rbm.seed_, 11, 0, None)
        np.testing.assert_array_equal(out["one"][0], direct)


def test_lattice_chunked_equals_one_call(monkeypatch):
    m = ef.IsingLattice2D(10, J=1.0, h=0.1)
    betas = np.linspace(0.2, 0.6, 23)
    whole = m.sample(betas, 23, n_chains=3, seed=4, step_offset=5)
    monkeypatch.setattr(ef.ising, "_CHUNK_WORK", ef.ising._LATTICE_WORK_PER_SPIN * 300 * 4)
    cut = m.sample(betas, 23, n_chains=3, seed=4, step_offset=5)  # 4-sweep calls
    np.testing.assert_array_equal(cut.states, whole.states)
    np.testing.assert_array_equal(cut.energy, whole.energy)
    np.testing.assert_array_equal(cut.acceptance, whole.acceptance)


def test_boltzmann_machine_sweeps_chunked_equal_one_call(monkeypatch):
    rng = np.random.default_rng(3)
    out = {}
    for mode in ("one", "tiny"):
        (_one_call if mode == "one" else _tiny_chunks)(monkeypatch)
        m = ef.BoltzmannMachine(9, 5, seed=2)
        W = rng.standard_normal((14, 14)) if mode == "one" else out["W"]
        W = 0.5 * (W + W.T)
        np.fill_diagonal(W, 0.0)
        out["W"] = W
        m.W, m.b = W, np.linspace(-1, 1, 14)
        s = m.sample(6, n_sweeps=70, temperature=np.linspace(2.0, 0.5, 70))
        X = (rng.random((4, 9)) < 0.5).astype(float) if mode == "one" else out["X"]
        out["X"] = X
        c = m.complete(X, np.arange(9) < 4, n_sweeps=40, average_last=5)
        out[mode] = (s, c[0], c[1], m.step_)
    for a, b in zip(out["one"], out["tiny"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("order", ["sequential", "random"])
@pytest.mark.parametrize("n", [7, 100])
def test_hopfield_recall_chunked_equals_one_call(monkeypatch, order, n):
    rng = np.random.default_rng(n)
    m = ef.Hopfield(n, seed=3)
    m.store(rng.integers(0, 2, (max(2, n // 10), n)) * 2 - 1)
    m.b = 0.1 * rng.standard_normal(n)
    cues = rng.integers(0, 2, (300, n)) * 2 - 1  # not a multiple of the 128-cue tile
    _one_call(monkeypatch)
    whole = m.recall(cues, order=order, seed=9)
    monkeypatch.setattr(ef._interrupt, "CALL_S", 0.0)  # blocks of one tile after the first
    calls = []
    core_recall = ef.hopfield._core.hopfield_recall
    monkeypatch.setattr(ef.hopfield._core, "hopfield_recall",
                        lambda *a: calls.append(a[2].shape[0]) or core_recall(*a))
    cut = m.recall(cues, order=order, seed=9)
    expected, c0, block = [], 0, 128 * ef.get_num_threads()  # one tile per thread, then tiles
    while c0 < 300:
        expected.append(min(block, 300 - c0))
        c0, block = c0 + expected[-1], 128
    assert calls == expected
    np.testing.assert_array_equal(cut.states, whole.states)
    np.testing.assert_array_equal(cut.sweeps, whole.sweeps)
    np.testing.assert_array_equal(cut.converged, whole.converged)


@pytest.mark.parametrize("thin", [1, 3, 50])
@pytest.mark.parametrize("builtin", [True, False])
def test_mcmc_chunks_shorter_than_thin_equal_one_call(monkeypatch, thin, builtin):
    # A large thin used to stretch every chunk to thin steps (minutes without a Ctrl-C
    # check); chunks now cut thinning blocks and still keep exactly the same samples.
    from ebmfast import mcmc
    E = ef.energies.Gaussian(np.zeros(3))
    energy = E if builtin else (lambda X: 0.5 * (X ** 2).sum(axis=1))
    grad = None if builtin else (lambda X: X)
    x0 = np.zeros((4, 3), np.float32 if builtin else np.float64)
    kw = dict(seed=2, burn_in=7, thin=thin, grad=grad)
    monkeypatch.setattr(mcmc, "_CHUNK_WORK", 1 << 40)
    whole = ef.mala(energy, x0, 120, 0.5, **kw)
    monkeypatch.setattr(mcmc, "_CHUNK_WORK", 4 * 7 * 5 * (1 if builtin else 64))  # 5-step chunks
    cut = ef.mala(energy, x0, 120, 0.5, **kw)
    assert whole.samples.shape == (120 // thin, 4, 3)
    np.testing.assert_array_equal(cut.samples, whole.samples)
    np.testing.assert_array_equal(cut.energies, whole.energies)
    np.testing.assert_array_equal(cut.acceptance, whole.acceptance)
    np.testing.assert_array_equal(cut.x, whole.x)
