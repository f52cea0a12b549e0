"""Build facts and device selection: they must work (and not crash) with or without a GPU."""
from __future__ import annotations

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import _core

cuda = pytest.mark.skipif(not ef.cuda_available(), reason="no CUDA device available")


def test_build_info_reports_every_field():
    info = ef.build_info()
    for key in ("version", "cuda_compiled", "cuda_available", "cuda_archs", "device_name",
                "openmp_threads", "blas"):
        assert key in info, key
    assert info["version"] == ef.__version__
    assert info["openmp_threads"] >= 1
    assert "OpenBLAS" in info["blas"]
    assert info["cuda_available"] == ef.cuda_available()
    if info["cuda_compiled"]:
        assert info["cuda_archs"], "a CUDA build names its architectures"


def test_cuda_on_build_compiled_the_cuda_backend():
    # CI installs with EBMFAST_CUDA=ON: every .cu file must have compiled into the module.
    import os
    if os.environ.get("EBMFAST_CUDA", "").upper() != "ON":
        pytest.skip("not an EBMFAST_CUDA=ON build")
    assert ef.build_info()["cuda_compiled"] is True
    assert "90" in ef.build_info()["cuda_archs"]


def test_cuda_available_is_false_without_a_device():
    # On a machine with no driver/GPU the static cudart reports 0 devices, not an error.
    if _core.cuda_device_count() == 0:
        assert ef.cuda_available() is False
        assert ef.build_info()["device_name"] is None


def test_auto_device_picks_cpu_until_the_cuda_rbm_is_verified():
    from ebmfast import rbm
    if not rbm._CUDA_VERIFIED or not ef.cuda_available():
        assert ef.RBM(4, 3, device="auto").device_ == "cpu"
    if not ef.cuda_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            ef.RBM(4, 3, device="cuda")


def test_thread_control_round_trips():
    before = ef.get_num_threads()
    try:
        ef.set_num_threads(1)
        assert ef.get_num_threads() == 1
    finally:
        ef.set_num_threads(before)
    with pytest.raises(ValueError, match="n_threads"):
        _core.set_num_threads(0)


@pytest.mark.cuda
@cuda
def test_cuda_device_query_names_the_device():
    assert _core.cuda_device_count() >= 1
    name = _core.cuda_device_name(0)
    assert isinstance(name, str) and name
    assert ef.build_info()["device_name"] == name
    assert _core.cuda_runtime_version() >= 12000


@pytest.mark.cuda
@cuda
def test_cuda_query_of_a_missing_device_is_empty_not_a_crash():
    assert _core.cuda_device_name(_core.cuda_device_count() + 5) == ""


def test_cli_help_documents_both_commands(capsys):
    from ebmfast.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "bench" in out


def test_cli_demo_runs_and_writes_pngs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from ebmfast.cli import main
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1500", "--no-digits"]) == 0
    out = capsys.readouterr().out
    assert "before" in out and "after" in out
    png = tmp_path / "bars_and_stripes_3x3_samples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the printed log-likelihood rose with training
    line = [l for l in out.splitlines() if "exact mean log-likelihood" in l][0]
    before = float(line.split("before")[1].split()[0])
    after = float(line.split("after")[1].split()[0])
    assert after > before + 0.5
    assert np.isfinite(after)


def test_cli_bench_writes_its_json(tmp_path, capsys):
    # `ebmfast bench` end to end on a tiny size: a table on stdout and a JSON whose ratios
    # are formed from the medians it reports.
    import json
    from ebmfast.cli import main
    assert main(["bench", "--quick", "--sizes", "64x32x100", "--no-peers",
                 "--out", str(tmp_path)]) == 0
    assert "CD-1 update" in capsys.readouterr().out
    data = json.loads((tmp_path / "rbm_cpu_latest_t2.json").read_text()) \
        if (tmp_path / "rbm_cpu_latest_t2.json").exists() else \
        json.loads(next(tmp_path.glob("rbm_cpu_latest_t*.json")).read_text())
    rows = {(r["n_visible"], r["n_hidden"], r["batch"], r["kernel"]): r for r in data["rows"]}
    assert set(k[3] for k in rows) == {"gibbs", "cd1", "pcd1"}
    for r in rows.values():
        m = r["median_ms"]
        assert m["ebmfast"] > 0 and m["numpy"] > 0 and m["sklearn"] is None
        assert r["ratios"]["numpy/ebmfast"] == pytest.approx(m["numpy"] / m["ebmfast"])


def test_cli_bench_ising_writes_its_json(tmp_path, capsys):
    # `ebmfast bench --suite ising` end to end on tiny sizes: every row has a finite rate for
    # ebmfast and NumPy and the ratio between them.
    import json

    from ebmfast.cli import main
    assert main(["bench", "--suite", "ising", "--smoke", "--no-peers", "--out", str(tmp_path)]) == 0
    files = list(tmp_path.glob("ising_cpu_*.json"))
    assert len(files) == 1
    rows = json.loads(files[0].read_text())["rows"]
    assert len(rows) == 4  # smoke: one dense, two sparse, one lattice row
    for row in rows:
        assert np.isfinite(row["updates_per_ns"]["ebmfast"]) and row["updates_per_ns"]["ebmfast"] > 0
    assert "ebmfast/numpy" in rows[0]["ratios"]
    assert "Ising CPU benchmark" in capsys.readouterr().out
    assert main(["bench", "--suite", "nope"]) == 2
