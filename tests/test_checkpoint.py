"""Checkpoints and numerical safety of every trainable model.

For RBM, GaussianRBM, BoltzmannMachine, DBM and DBN (greedy fit and fine_tune):
save -> load -> continue equals continuing without the round trip; resuming from *every*
checkpoint a run wrote (mid pre-training and mid-stack included) ends bit for bit where the
uninterrupted run ends; a SIGKILLed training process resumes to the same bits; a crash in
the middle of a checkpoint write leaves the previous checkpoint as it was; corrupt, foreign,
other-kind and future-version files raise a ValueError naming the path. Then: diverging
training stops with FloatingPointError naming the epoch and the remedy and keeps the last
finite state, for every fit / partial_fit / fine_tune and Hopfield's SGD storage.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import _checkpoint

X_BIN = ef.datasets.bars_and_stripes(3).astype(np.float32)           # (14, 9)
Y_BIN = (X_BIN[:, 0] > 0.5).astype(np.int64)                         # 2 classes
X_REAL = np.random.default_rng(7).standard_normal((24, 5))


# --------------------------------------------------------------------------- the models
# Each case: make(epochs) -> fresh model; fit(model, **kw) -> the training call under test.
# Sizes are tiny: every fit below runs in milliseconds.

def _rbm(e):
    return ef.RBM(9, 6, seed=3, method="pcd", momentum=0.5, weight_decay=1e-3, k=2,
                  batch_size=4, epochs=e, learning_rate=0.1)


def _grbm(e):
    return ef.GaussianRBM(5, 4, seed=5, method="pcd", momentum=0.5, weight_decay=1e-3,
                          batch_size=8, epochs=e, learning_rate=0.02)


def _grbm_learned_sigma(e):
    return ef.GaussianRBM(5, 4, seed=6, learn_sigma=True, momentum=0.5, batch_size=8, epochs=e,
                          learning_rate=0.02)


def _bm(e):
    return ef.BoltzmannMachine(9, 2, n_labels=2, seed=11, momentum=0.5, batch_size=5,
                               n_chains=6, clamped_sweeps=2, epochs=e, learning_rate=0.05)


def _dbm(e):
    return ef.DBM([9, 6, 4], seed=13, batch_size=5, n_chains=6, pretrain_epochs=2,
                  epochs=e, mf_iter=3, learning_rate=0.02)


def _dbn(e):
    return ef.DBN([9, 6, 4], n_labels=2, seed=17, method="pcd", momentum=0.5, batch_size=5,
                  epochs=e, learning_rate=0.1)


def _dbn_samples(e):  # propagates Bernoulli samples: the DBN's own Philox steps matter
    return ef.DBN([9, 6, 4], propagate="samples", seed=19, batch_size=5, epochs=e,
                  learning_rate=0.1)


def _fine_tune_base(e):
    m = _dbn(2)
    m.fit(X_BIN, Y_BIN)
    m._ft_epochs = e
    return m


CASES = {
    "RBM": (_rbm, lambda m, **kw: m.fit(X_BIN, **kw)),
    "GaussianRBM": (_grbm, lambda m, **kw: m.fit(X_REAL, **kw)),
    "GaussianRBM.learn_sigma": (_grbm_learned_sigma, lambda m, **kw: m.fit(X_REAL, **kw)),
    "BoltzmannMachine": (_bm, lambda m, **kw: m.fit(X_BIN, Y_BIN, **kw)),
    "DBM": (_dbm, lambda m, **kw: m.fit(X_BIN, **kw)),
    "DBN": (_dbn, lambda m, **kw: m.fit(X_BIN, Y_BIN, **kw)),
    "DBN.samples": (_dbn_samples, lambda m, **kw: m.fit(X_BIN, **kw)),
    "DBN.fine_tune": (_fine_tune_base, lambda m, **kw: m.fine_tune(
        X_BIN, getattr(m, "_ft_epochs", 3), Y_BIN, learning_rate=0.05, k=2, batch_size=5, **kw)),
}
KINDS = {"RBM": ef.RBM, "GaussianRBM": ef.GaussianRBM, "BoltzmannMachine": ef.BoltzmannMachine,
         "DBM": ef.DBM, "DBN": ef.DBN}


def snapshot(model, tmp_path, name="snap.npz"):
    """Every array of the model's full saved state, plus its meta without timings."""
    path = tmp_path / name
    model.save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    arrays.pop("digest")  # covers the timings too

    def strip(o):  # wall-clock seconds differ between runs; everything else must not
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in ("seconds", "fit", "progress")}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    os.remove(path)
    return strip(meta), arrays


def assert_same(a, b):
    meta_a, arr_a = a
    meta_b, arr_b = b
    assert meta_a == meta_b
    assert sorted(arr_a) == sorted(arr_b)
    for k in arr_a:
        assert arr_a[k].dtype == arr_b[k].dtype, k
        assert np.array_equal(arr_a[k], arr_b[k]), k   # bit for bit (no NaN in a state)


# --------------------------------------------------------------------------- (a) round trips

@pytest.mark.parametrize("case", list(CASES))
def test_save_load_continue_equals_continuing(tmp_path, case):
    make, fit = CASES[case]
    a = make(2)
    fit(a)
    a.save(tmp_path / "m.npz")
    kind = case.split(".")[0]
    b = KINDS[kind].load(tmp_path / "m.npz")
    assert type(b) is KINDS[kind]
    assert_same(snapshot(b, tmp_path), snapshot(a, tmp_path))
    if case == "DBN.fine_tune":
        b._ft_epochs = a._ft_epochs
    fit(a)
    fit(b)
    assert_same(snapshot(b, tmp_path), snapshot(a, tmp_path))
    assert os.listdir(tmp_path) == ["m.npz"]  # atomic writes leave no temporary files


@pytest.mark.parametrize("case", list(CASES))
def test_resume_from_every_checkpoint_is_bit_identical(tmp_path, case, monkeypatch):
    """The run with checkpoint_every=1 equals the run without checkpoints, and resuming
    from each checkpoint it wrote (a copy taken right after each write) finishes with the
    same bits. For DBM the copies include pre-training states, for DBN mid-stack ones."""
    make, fit = CASES[case]
    ref = make(3)
    fit(ref)
    expected = snapshot(ref, tmp_path)

    path = tmp_path / "ck.npz"
    copies = []
    real_write = _checkpoint.write

    def write_and_copy(p, *args, **kw):
        real_write(p, *args, **kw)
        copies.append(tmp_path / f"copy{len(copies)}.npz")
        shutil.copyfile(p, copies[-1])
    monkeypatch.setattr(_checkpoint, "write", write_and_copy)
    m = make(3)
    fit(m, checkpoint=path, checkpoint_every=1)
    monkeypatch.undo()
    assert_same(snapshot(m, tmp_path), expected)
    # DBM: 3 joint epochs + 2 pre-training epochs per layer; DBN: 3 epochs per layer
    minimum = {"DBM": 3 + 2 * 2, "DBN": 2 * 3, "DBN.samples": 2 * 3}.get(case, 3)
    assert len(copies) >= minimum
    for copy in copies:
        r = make(3)
        fit(r, resume=copy)
        assert_same(snapshot(r, tmp_path), expected)


@pytest.mark.parametrize("every,expected_epochs", [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]),
                                                   (7, [5])])
def test_checkpoint_cadence(tmp_path, monkeypatch, every, expected_epochs):
    written = []
    real_write = _checkpoint.write

    def spy(p, kind, meta, arrays):
        written.append(meta["epochs_trained_"])
        real_write(p, kind, meta, arrays)
    monkeypatch.setattr(_checkpoint, "write", spy)
    _rbm(5).fit(X_BIN, checkpoint=tmp_path / "ck.npz", checkpoint_every=every)
    assert written == expected_epochs


def test_resume_of_a_finished_run_trains_no_further(tmp_path):
    a = _rbm(3).fit(X_BIN, checkpoint=tmp_path / "ck.npz")
    b = _rbm(3).fit(X_BIN, resume=tmp_path / "ck.npz")
    assert b.epochs_trained_ == 3
    assert_same(snapshot(b, tmp_path), snapshot(a, tmp_path))


def test_resume_from_a_plain_save_trains_epochs_more(tmp_path):
    a = _bm(2).fit(X_BIN, Y_BIN)
    a.save(tmp_path / "m.npz")
    b = _bm(2).fit(X_BIN, Y_BIN, resume=tmp_path / "m.npz")
    assert b.epochs_trained_ == 4
    ref = snapshot(_bm(4).fit(X_BIN, Y_BIN), tmp_path)
    got = snapshot(b, tmp_path)
    assert got[0]["params"]["epochs"] == 2 and ref[0]["params"]["epochs"] == 4
    got[0]["params"]["epochs"] = 4
    assert_same(got, ref)


# --------------------------------------------------------------------------- (b) SIGKILL

_CHILD = """
import sys, time
import numpy as np
import ebmfast as ef
from ebmfast import _checkpoint
sys.path.insert(0, {tests!r})
import test_checkpoint as T
real_write = _checkpoint.write
def slow_write(*args, **kw):       # slow the run down so that the parent can kill it
    real_write(*args, **kw)
    time.sleep(0.03)
_checkpoint.write = slow_write
make, fit = T.CASES[{case!r}]
m = make({epochs})
fit(m, checkpoint={path!r}, checkpoint_every=1)
print("finished", flush=True)
"""


def _progress(path, case):
    """Epochs recorded in a readable checkpoint (any error: none yet)."""
    try:
        meta, _ = _checkpoint.read(path, case.split(".")[0])
    except (OSError, ValueError):
        return -1
    if case == "DBN.fine_tune":
        return len(meta["fine_tune_history_"])
    if case in ("DBN", "DBN.samples"):
        return sum(r["epochs_trained_"] for r in meta["rbms"])
    if case.startswith("GaussianRBM"):
        return len(meta["history_"])
    return meta["epochs_trained_"]


@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path, case):
    epochs = 40
    path = str(tmp_path / "ck.npz")
    code = _CHILD.format(tests=os.path.dirname(__file__), case=case, epochs=epochs, path=path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "error"}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while _progress(path, case) < 3:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child wrote no checkpoint in 60 s"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGKILL, (out, err)
    assert b"finished" not in out
    done = _progress(path, case)
    stack = case in ("DBN", "DBN.samples")           # two RBMs of `epochs` epochs each
    assert 3 <= done < epochs * (2 if stack else 1)  # really interrupted mid-run
    make, fit = CASES[case]
    resumed = make(epochs)
    fit(resumed, resume=path)
    ref = make(epochs)
    fit(ref)
    assert_same(snapshot(resumed, tmp_path), snapshot(ref, tmp_path))


# --------------------------------------------------------------------------- (c) crash mid-write

@pytest.mark.parametrize("case", list(CASES))
def test_crash_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, case):
    make, fit = CASES[case]
    path = tmp_path / "ck.npz"
    calls = []
    real_savez = np.savez

    def savez_crashing_on_third_call(f, **arrays):
        calls.append(1)
        if len(calls) == 3:
            f.write(b"PK\x03\x04 half of a file")
            raise OSError("disk full")
        real_savez(f, **arrays)
    monkeypatch.setattr(np, "savez", savez_crashing_on_third_call)
    m = make(5)
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(OSError, match="disk full"):
        fit(m, checkpoint=path, checkpoint_every=1)
    monkeypatch.undo()
    assert before is None and len(calls) == 3
    assert os.listdir(tmp_path) == ["ck.npz"]     # the temporary file is gone
    kind = case.split(".")[0]
    meta, _ = _checkpoint.read(path, kind)        # still a good file: the second write
    back = KINDS[kind].load(path)
    assert back is not None and meta["kind"] == kind
    # resuming from it finishes the run bit for bit
    r = make(5)
    fit(r, resume=path)
    ref = make(5)
    fit(ref)
    assert_same(snapshot(r, tmp_path), snapshot(ref, tmp_path))


def test_crash_in_replace_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = _rbm(1).fit(X_BIN)
    old.save(path)
    raw = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("rename failed")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        _rbm(2).fit(X_BIN).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == raw and os.listdir(tmp_path) == ["m.npz"]


def test_fsync_is_called_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    _grbm(1).fit(X_REAL).save(tmp_path / "m.npz")
    assert events[:2] == ["fsync", "replace"]


# --------------------------------------------------------------------------- (d) bad files

def _good_files(tmp_path):
    paths = {}
    for kind, (make, fit) in CASES.items():
        if "." in kind:
            continue
        m = make(1)
        fit(m)
        paths[kind] = tmp_path / f"{kind}.npz"
        m.save(paths[kind])
    return paths


def _rewrite(src, dst, meta_update=None, drop=None, replace=None):
    """A copy of a good file with the given edits and a matching digest, so that the
    checks behind the checksum are what gets tested."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    arrays.pop("digest")
    meta.update(meta_update or {})
    arrays.pop(drop, None)
    arrays.update(replace or {})
    raw = json.dumps(meta)
    np.savez(dst, meta=np.array(raw), digest=np.array(_checkpoint.digest(raw, arrays)), **arrays)


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_files_raise_a_clear_value_error(tmp_path, kind):
    good = _good_files(tmp_path)
    cls = KINDS[kind]
    raw = good[kind].read_bytes()
    bad = {}
    rng = np.random.default_rng(1)

    def put(name, content, match):
        (tmp_path / name).write_bytes(content)
        bad[name] = match
    put("truncated.npz", raw[: len(raw) // 2], "truncated or corrupt")
    put("truncated-tail.npz", raw[:-10], "truncated or corrupt")
    put("random.npz", rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(), "truncated or corrupt")
    put("empty.npz", b"", "truncated or corrupt")
    np.savez(tmp_path / "foreign.npz", W=np.zeros((3, 3)))
    bad["foreign.npz"] = "not an ebmfast"
    np.save(tmp_path / "array.npy", np.zeros(3))
    bad["array.npy"] = "single array"
    np.save(tmp_path / "pickle.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad["pickle.npy"] = "truncated or corrupt"
    np.savez(tmp_path / "meta-junk.npz", meta=np.array("{not json"))
    bad["meta-junk.npz"] = "JSON"
    _rewrite(good[kind], tmp_path / "other-format.npz", {"format": "torch"})
    bad["other-format.npz"] = "format tag"
    _rewrite(good[kind], tmp_path / "future.npz", {"version": 2})
    bad["future.npz"] = "newer ebmfast .*version 2"
    _rewrite(good[kind], tmp_path / "version-junk.npz", {"version": "one"})
    bad["version-junk.npz"] = "damaged"
    other = next(k for k in KINDS if k != kind)
    shutil.copyfile(good[other], tmp_path / "other-kind.npz")
    bad["other-kind.npz"] = f"holds an ebmfast '{other}' model, not a '{kind}'"
    with np.load(good[kind]) as z:
        first = next(k for k in z.files if k not in ("meta", "digest"))
        shape = z[first].shape
    _rewrite(good[kind], tmp_path / "missing.npz", drop=first)
    bad["missing.npz"] = "damaged"
    _rewrite(good[kind], tmp_path / "nan.npz", replace={first: np.full(shape, np.nan)})
    bad["nan.npz"] = "damaged"
    _rewrite(good[kind], tmp_path / "shape.npz", replace={first: np.zeros((2, 2, 2))})
    bad["shape.npz"] = "damaged"
    _rewrite(good[kind], tmp_path / "edited.npz")
    edited = np.load(tmp_path / "edited.npz")
    arrays = {k: edited[k] for k in edited.files}
    edited.close()
    arrays[first] = arrays[first] + 1.0       # a value changed, digest left as it was
    np.savez(tmp_path / "tampered.npz", **arrays)
    bad["tampered.npz"] = "checksum mismatch"
    for name, match in bad.items():
        with pytest.raises(ValueError, match=match) as info:
            cls.load(tmp_path / name)
        assert name in str(info.value), (name, info.value)
    # A flipped bit anywhere: an error naming the path, or (zip bookkeeping nobody reads,
    # e.g. a timestamp) the very same model. Never a silently different one.
    original = snapshot(cls.load(good[kind]), tmp_path)
    raised = 0
    for at in range(0, len(raw), max(1, len(raw) // 40)):
        flipped = bytearray(raw)
        flipped[at] ^= 0x10
        (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
        try:
            back = cls.load(tmp_path / "flipped.npz")
        except ValueError as exc:
            assert "flipped.npz" in str(exc)
            raised += 1
            continue
        assert_same(snapshot(back, tmp_path), original)
    assert raised >= 30   # most of the file is array data and meta
    # fit(resume=...) says the same, and leaves the model untouched
    make, fit = CASES[kind]
    m = make(1)
    fit(m)
    before = snapshot(m, tmp_path)
    for name in ("truncated.npz", "other-kind.npz", "future.npz", "foreign.npz"):
        with pytest.raises(ValueError, match=name):
            fit(m, resume=tmp_path / name)
    assert_same(snapshot(m, tmp_path), before)
    with pytest.raises(FileNotFoundError):
        cls.load(tmp_path / "absent.npz")


def test_resume_checks_sizes_data_and_phase(tmp_path):
    _rbm(2).fit(X_BIN, checkpoint=tmp_path / "r.npz")
    with pytest.raises(ValueError, match="9x6"):
        ef.RBM(9, 5, epochs=2).fit(X_BIN, resume=tmp_path / "r.npz")
    m = _rbm(2)
    with pytest.raises(ValueError, match="other data"):
        m.fit(X_BIN[::-1], resume=tmp_path / "r.npz")
    assert m.epochs_trained_ == 0                      # nothing adopted
    _dbn(1).fit(X_BIN, Y_BIN, checkpoint=tmp_path / "d.npz")
    with pytest.raises(ValueError, match="resume it with fit"):
        _dbn(1).fine_tune(X_BIN, 1, Y_BIN, resume=tmp_path / "d.npz")
    with pytest.raises(ValueError, match="other data"):
        _dbn(1).fit(X_BIN, 1 - Y_BIN, resume=tmp_path / "d.npz")
    with pytest.raises(ValueError, match="DBN"):
        ef.DBN([9, 5, 4], n_labels=2).fit(X_BIN, Y_BIN, resume=tmp_path / "d.npz")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        _rbm(1).fit(X_BIN, checkpoint=tmp_path / "no" / "such.npz")
    with pytest.raises(ValueError, match="checkpoint_every"):
        _rbm(1).fit(X_BIN, checkpoint=tmp_path / "x.npz", checkpoint_every=0)
    with pytest.raises(TypeError, match="resume"):
        _rbm(1).fit(X_BIN, resume=3)


def test_files_written_before_the_shared_format_still_load(tmp_path):
    """RBM files of the first format (format tag "ebmfast.RBM/1", no version/kind)."""
    m = _rbm(2).fit(X_BIN)
    meta, arrays = m._state()
    meta = {**meta, "format": "ebmfast.RBM/1", "seed_": str(m.seed_)}
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps(meta)), **arrays)
    assert_same(snapshot(ef.RBM.load(tmp_path / "old.npz"), tmp_path), snapshot(m, tmp_path))


# --------------------------------------------------------------------------- numerical safety

def _state_arrays(m):
    """Everything a rejected update must leave as it was."""
    if isinstance(m, ef.GaussianRBM):
        return [m.W, m.b, m.c, *m._vel, m.chains_, m._step, len(m.history_)]
    if isinstance(m, ef.BoltzmannMachine):
        return [m.W, m.b, m._vW, m._vb, m.chains_, m.step_, m.epochs_trained_]
    if isinstance(m, ef.DBN):
        return [a for r in m.rbms_ for a in (r.W, r.b, r.c, r._vW, r._chains, r.step)]
    raise TypeError(m)


def _assert_state_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y)
        else:
            assert x == y


@pytest.mark.parametrize("case", ["GaussianRBM", "BoltzmannMachine", "DBN"])
def test_divergence_stops_with_the_epoch_and_keeps_the_last_finite_state(case):
    """One update per epoch (batch_size = n), epoch by epoch, snapshot before each: the
    epoch that diverges raises FloatingPointError naming it and the remedy, and the model
    is exactly the snapshot taken before it (parameters, velocities, chains, steps)."""
    if case == "GaussianRBM":
        X = np.random.default_rng(0).standard_normal((40, 5)) * 10
        m = ef.GaussianRBM(5, 5, sigma=0.01, method="pcd", learning_rate=10.0, momentum=0.9,
                           batch_size=40, epochs=1, seed=0)
        fit = lambda: m.fit(X)  # noqa: E731
    elif case == "BoltzmannMachine":
        # couplings of 1e300 are finite in float64 but not in the float32 sampler
        m = ef.BoltzmannMachine(9, 2, learning_rate=1e300, batch_size=14, n_chains=4,
                                epochs=1, seed=1)
        fit = lambda: m.fit(X_BIN)  # noqa: E731
    else:
        # W <- W (1 - lr wd) + lr grad: |1 - lr wd| = 4 grows W geometrically
        m = ef.DBN([9, 6], seed=2, method="pcd", learning_rate=1.0, weight_decay=5.0,
                   batch_size=14, epochs=1)
        fit = lambda: m.fit(X_BIN)  # noqa: E731
    for epoch in range(1, 200):
        before = _state_arrays(m)
        before = [a.copy() if isinstance(a, np.ndarray) else a for a in before]
        try:
            fit()
        except FloatingPointError as exc:
            msg = str(exc)
            break
    else:
        pytest.fail("training never diverged")
    assert f"epoch {epoch}:" in msg, msg
    assert "lower learning_rate" in msg, msg
    if case == "DBN":
        assert "DBN layer 1" in msg
    _assert_state_equal(_state_arrays(m), before)
    for a in _state_arrays(m):
        if isinstance(a, np.ndarray):
            assert np.isfinite(a).all()


def test_gaussian_rbm_divergence_leaves_pcd_chains_and_step_unchanged():
    X = np.random.default_rng(0).standard_normal((30, 4)) * 50
    m = ef.GaussianRBM(4, 3, sigma=0.01, method="pcd", learning_rate=50.0, batch_size=30,
                       epochs=1, seed=3)
    for _ in range(100):
        step, chains = m._step, None if m.chains_ is None else m.chains_.copy()
        try:
            m.fit(X)
        except FloatingPointError:
            break
    else:
        pytest.fail("never diverged")
    assert m._step == step
    assert (chains is None and m.chains_ is None) or np.array_equal(m.chains_, chains)


def test_dbm_pretraining_divergence_names_the_remedy():
    m = ef.DBM([9, 6, 4], pretrain_learning_rate=1e38, pretrain_epochs=3, epochs=1, seed=0,
               batch_size=14)
    W0 = [w.copy() for w in m.W_]
    with pytest.raises(FloatingPointError, match="pre-training diverged.*pretrain_learning_rate"):
        m.fit(X_BIN)
    assert all(np.array_equal(a, b) for a, b in zip(m.W_, W0)) and not m.pretrained_


def test_fine_tune_divergence_names_the_epoch_and_keeps_the_state(tmp_path):
    m = _dbn(1).fit(X_BIN, Y_BIN)
    for epoch in range(1, 300):   # lr * weight_decay = 5: the weights grow geometrically
        before = snapshot(m, tmp_path)
        try:
            m.fine_tune(X_BIN, 1, Y_BIN, learning_rate=1.0, weight_decay=5.0, batch_size=14)
        except FloatingPointError as exc:
            msg = str(exc)
            break
    else:
        pytest.fail("fine-tuning never diverged")
    assert epoch > 1 and f"epoch {epoch}:" in msg and "lower learning_rate" in msg, msg
    assert_same(snapshot(m, tmp_path), before)


@pytest.mark.parametrize("dynamics", ["async", "gibbs"])
def test_hopfield_sgd_divergence_is_an_error_and_keeps_the_weights(dynamics):
    rng = np.random.default_rng(0)
    P = np.where(rng.random((40, 20)) < 0.5, -1, 1).astype(np.int8)  # beyond capacity
    h = ef.Hopfield(20, seed=1)
    h.store(P[:2])                                   # some finite weights to keep
    W0, b0 = h.W.copy(), h.b.copy()
    # |W| grows by up to 2 lr per batch: past the float32 range within a few batches.
    # Before the check this silently stored an infinite W (with a RuntimeWarning).
    with pytest.raises(FloatingPointError, match=r"epoch \d+.*lower learning_rate"):
        h.store(P, rule="sgd", learning_rate=1e38, dynamics=dynamics, epochs=100,
                fit_bias=True, batch_size=1)
    assert np.array_equal(h.W, W0) and np.array_equal(h.b, b0)
    h.store(P[:3], rule="sgd", learning_rate=0.1, epochs=20)   # a sane rate still works
    assert np.isfinite(h.W).all() and np.abs(h.W).max() > 0
