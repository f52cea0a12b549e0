"""The GPU paths of the models - RBM(device="cuda") with ebmfast._rbm_cuda, the DBM and the
estimators on _layer_cuda - run
on a machine without a GPU: a host stand-in for CuPy (tests/cuda_emu/fake_cupy.py) holds
the "device" arrays and the _core.cuda_* bindings are replaced by the same launchers of
csrc/cuda compiled by the host emulator (tests/cuda_emu). The test bodies are those of
tests/test_rbm_cuda.py (the real-GPU file), called here on small sizes, so the Python
glue (buffers, steps, in-place / spare-buffer updates, divergence handling, batching,
save/load across devices, input checks) is exercised against the reference before any
GPU is at hand. What this cannot check: real CuPy (streams, pools, interop with other
libraries) and the kernels' behaviour on hardware (see test_cuda_emulated.py)."""
from __future__ import annotations

import ctypes
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import _core, _ising_cuda, _layer_cuda, _rbm_cuda
import test_bm as TB
import test_cuda_emulated as TC  # the emulator build and the launchers' argument types
import test_dbm_cuda as TD  # the real-GPU test modules whose bodies run here
import test_estimators_cuda as TE
import test_hopfield_cuda as TH
import test_mcmc as TM
import test_ising_cuda as TI
import test_rbm_cuda as T

HERE = Path(__file__).resolve().parent


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


emu_build = TC.emu_build
fake_cupy = _load("ebm_fake_cupy", HERE / "cuda_emu" / "fake_cupy.py")
SIGNATURES = {name: TC.SIGNATURES[name] for name in
              ("emu_layer_update", "emu_rbm_gibbs", "emu_rbm_cd_update", "emu_rbm_scores",
               "emu_summarize", "emu_ising_chains", "emu_lattice_sweeps", "emu_hopfield_recall",
               "emu_set_tile_policy", "emu_mcmc_run_chunk")}


@pytest.fixture(scope="module")
def emu_lib():
    try:
        lib = emu_build.load()
    except emu_build.EmuUnavailable as exc:
        pytest.skip(f"CUDA host emulator unavailable: {exc}")
    for name, args in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, ctypes.c_char_p
    lib.emu_set_timeout.argtypes, lib.emu_set_timeout.restype = [ctypes.c_double], None
    lib.emu_mcmc_scratch_floats.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                                            ctypes.c_int64, ctypes.c_int64]
    lib.emu_mcmc_scratch_floats.restype = ctypes.c_int64
    lib.emu_set_timeout(60.0)
    return lib


def _checked(fn):
    def call(*args):
        err = fn(*[0 if a is None else a for a in args])
        if err:
            raise RuntimeError(err.decode())
    return call


@pytest.fixture
def fake_gpu(emu_lib, monkeypatch):
    """CuPy -> the host stand-in; the cuda_* bindings -> the emulated launchers (same
    arguments; the CUDA stream is dropped: the emulator runs launches in order)."""
    layer, gibbs = _checked(emu_lib.emu_layer_update), _checked(emu_lib.emu_rbm_gibbs)
    cd, scores = _checked(emu_lib.emu_rbm_cd_update), _checked(emu_lib.emu_rbm_scores)
    summarize = _checked(emu_lib.emu_summarize)
    chains, lattice = _checked(emu_lib.emu_ising_chains), _checked(emu_lib.emu_lattice_sweeps)
    recall = _checked(emu_lib.emu_hopfield_recall)
    tile_policy = _checked(emu_lib.emu_set_tile_policy)
    mcmc = _checked(emu_lib.emu_mcmc_run_chunk)

    def mcmc_run_chunk_cuda(kind, params, sampler, x, eps, n_accept, n_chains, d, n_steps, seed,
                            step, chain_offset, adapt, adapt_index, target_accept, samples,
                            energies, thin, scratch, stream):
        p = params.get
        mcmc(kind, d, p("mean"), p("precision"), p("k", 0), p("log_coef"), p("means"),
             p("inv_var"), p("W"), p("b"), p("c"), p("n_hidden", 0), p("a", 1.0),
             p("b_coef", 100.0), p("inv_scale", 1.0), sampler, x, eps, n_accept, n_chains,
             n_steps, seed, step, chain_offset, int(adapt), adapt_index, target_accept, samples,
             energies, thin, scratch)

    def cuda_layer_update(X1, M1, n1, X2, M2, n2, bias, rows, n_out, beta, field, prob, sample,
                          stream_id, seed, step, chain_offset, cuda_stream, m1_transposed=False,
                          m2_transposed=False, precision=0):
        layer(X1, M1, n1, X2, M2, n2, bias, rows, n_out, beta, field, prob, sample, stream_id,
              seed, step, chain_offset, int(m1_transposed), int(m2_transposed), precision)

    def cuda_rbm_gibbs(W, b, c, n_v, n_h, beta, V, H, rows, k, seed, step, chain_offset,
                       cuda_stream, precision):
        assert chain_offset == 0
        gibbs(W, b, c, n_v, n_h, beta, V, H, rows, k, seed, step, precision)

    def cuda_rbm_cd_update(*args):
        assert len(args) == 34
        cd(*args[:32], args[33])  # drop cuda_stream (argument 33)

    def cuda_rbm_free_energy(W, b, c, n_v, n_h, V, rows, Z, out, pll, cuda_stream):
        scores(W, b, c, n_v, n_h, V, rows, Z, out, int(pll))

    def cuda_summarize(x, n, out, cuda_stream):
        summarize(x, n, out)

    def cuda_ising_chains(h, J, indptr, indices, data, n, betas, n_sweeps, gibbs, random_order,
                          clamped, St, F, n_chains, seed, step, chain_offset, flips, trace, stream):
        chains(n, h, J, indptr, indices, data, betas, n_sweeps, int(gibbs), int(random_order),
               clamped, St, F, n_chains, seed, step, chain_offset, flips, trace)

    def cuda_lattice_sweeps(S, n_chains, L, J, h, betas, gibbs, seed, step, chain_offset, flips,
                            bonds, magnet, stream):
        betas = np.ascontiguousarray(betas, np.float32)  # a host array, as the binding takes
        lattice(S, n_chains, L, J, h, betas.ctypes.data, betas.size, int(gibbs), seed, step,
                chain_offset, flips, bonds, magnet)

    def cuda_hopfield_recall(W, b, St, F, n, cues, max_sweeps, random_order, seed, step, sweeps,
                             converged, stream):
        recall(W, b, St, F, n, cues, max_sweeps, int(random_order), seed, step, sweeps, converged)

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    for mod in (_layer_cuda, _rbm_cuda, _ising_cuda, T, TD, TE, TH, TI):
        monkeypatch.setattr(mod, "cp", fake_cupy)
    monkeypatch.setattr(_core, "cuda_compiled", True)
    monkeypatch.setattr(_core, "cuda_device_count", lambda: 1)
    for name, fn in [("cuda_layer_update", cuda_layer_update), ("cuda_rbm_gibbs", cuda_rbm_gibbs),
                     ("cuda_rbm_cd_update", cuda_rbm_cd_update),
                     ("cuda_rbm_free_energy", cuda_rbm_free_energy),
                     ("cuda_summarize", cuda_summarize),
                     ("cuda_ising_chains", cuda_ising_chains),
                     ("cuda_lattice_sweeps", cuda_lattice_sweeps),
                     ("cuda_hopfield_recall", cuda_hopfield_recall),
                     ("cuda_set_tile_policy", tile_policy),
                     ("mcmc_run_chunk_cuda", mcmc_run_chunk_cuda),
                     # a CUDA-off build (the sanitizer stage) lacks this host helper too
                     ("mcmc_cuda_scratch_floats", emu_lib.emu_mcmc_scratch_floats)]:
        monkeypatch.setattr(_core, name, fn, raising=False)
    return fake_cupy


# --------------------------------------------------------------------------- the fake itself

def test_fake_cupy_behaves_like_cupy_where_it_matters(fake_gpu):
    cp = fake_gpu
    a = cp.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)  # host code handed a device array fails, as with CuPy
    assert isinstance(np.isfinite(a), cp.ndarray) and isinstance(a[0], cp.ndarray)
    assert a.data.ptr == a.__cuda_array_interface__["data"][0]
    host = np.ones(3, np.float32)
    d = cp.asarray(host)
    host[0] = 5  # asarray of host data is a copy (a transfer), not a view
    assert float(d[0]) == 1.0
    assert isinstance(a.get(), np.ndarray) and not isinstance(a.get(), cp.ndarray)


# --------------------------------------------------------------------------- kernel tests

@pytest.mark.parametrize("precision", ["fp32", "tf32"])
@pytest.mark.parametrize("rows,n_v,n_h", [(1, 33, 65), (33, 17, 31), (17, 129, 40)])
def test_gibbs_through_the_glue(fake_gpu, rows, n_v, n_h, precision):
    T.test_gibbs_matches_reference_stream(rows, n_v, n_h, 2, precision)
    T.test_gibbs_matches_reference_stream(rows, n_v, n_h, 1, precision)


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
@pytest.mark.parametrize("data_kind", ["binary", "real"])
@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
@pytest.mark.parametrize("n_data,n_v,n_h", [(1, 1, 1), (17, 33, 65)])
def test_cd_gradient_through_the_glue(fake_gpu, n_data, n_v, n_h, persistent, data_kind,
                                      precision):
    T.test_cd_gradient_matches_reference(n_data, n_v, n_h, persistent, 2, data_kind, precision)


@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
def test_momentum_step_through_the_glue(fake_gpu, persistent):
    T.test_cd_update_applies_momentum_and_weight_decay(persistent)


@pytest.mark.parametrize("rows,n_v,n_h", [(1, 1, 1), (33, 17, 65)])
def test_scores_through_the_glue(fake_gpu, rows, n_v, n_h):
    T.test_free_energy_and_pll_match_reference(rows, n_v, n_h)


# --------------------------------------------------------------------------- the model

def test_large_tile_through_the_glue(fake_gpu):
    # The natural-size case (1030 x 1100 x 1050) is left to a real GPU: the forced cases.
    from ebmfast import _core as core
    core.cuda_set_tile_policy(2)
    try:
        T.test_gibbs_matches_reference_stream(130, 129, 140, 2, "fp32")
        T.test_cd_gradient_matches_reference(17, 129, 130, True, 2, "binary", "fp32")
        T.test_cd_update_applies_momentum_and_weight_decay(False)
    finally:
        core.cuda_set_tile_policy(0)


def test_auto_picks_the_gpu_when_usable(fake_gpu, monkeypatch):
    from ebmfast import rbm
    assert ef.RBM(3, 2).device_ == "cpu"  # until verified on hardware (rbm._CUDA_VERIFIED)
    monkeypatch.setattr(rbm, "_CUDA_VERIFIED", True)
    assert ef.RBM(3, 2).device_ == "cuda"
    monkeypatch.setattr(_core, "cuda_compute_capability", lambda: 75)
    assert ef.RBM(3, 2).device_ == "cpu"  # kernels built for sm_80 / sm_90 only


def test_whole_api(fake_gpu):
    T.test_the_whole_api_on_the_gpu_returns_gpu_arrays()


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_training_follows_the_cpu(fake_gpu, method):
    T.test_gpu_training_follows_the_cpu(method)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_divergence_restores_the_model(fake_gpu, method):
    T.test_gpu_divergence_restores_the_model(method)


def test_save_load_across_devices(fake_gpu, tmp_path):
    T.test_save_on_gpu_load_on_cpu_and_back(tmp_path)


def test_input_errors(fake_gpu):
    with pytest.raises(pytest.skip.Exception):  # the PyTorch part needs a real GPU
        T.test_interop_and_wrong_device_errors()


def test_tf32_training(fake_gpu):
    T.test_tf32_model_trains()


def test_gpu_and_cpu_models_agree_update_for_update(fake_gpu):
    # PCD with momentum and weight decay over several updates, one update at a time: the
    # in-place GPU path with host-side bounds must track the CPU model.
    cp = fake_gpu
    X = T.binary(np.random.default_rng(4), (30, 20), 0.4)
    kw = dict(method="pcd", k=2, momentum=0.5, weight_decay=1e-3, learning_rate=0.05,
              batch_size=10)
    cpu, gpu = T.model_pair(**kw)
    for start in range(0, 30, 10):
        cpu.partial_fit(X[start:start + 10])
        gpu.partial_fit(cp.asarray(X[start:start + 10]))
        assert cpu.step == gpu.step
        np.testing.assert_allclose(gpu.W.get(), cpu.W, atol=1e-5)
        np.testing.assert_allclose(gpu.c.get(), cpu.c, atol=1e-5)
    # the host-side bounds are bounds
    assert gpu._max_param >= float(np.abs(gpu.W.get()).max())


# --------------------------------------------------------------------------- DBM, estimators
# The bodies of test_dbm_cuda.py / test_estimators_cuda.py on sizes the emulator runs in
# seconds (their 784-unit cases and the DBM training run are left to a real GPU).

@pytest.mark.parametrize("sizes,rows", [([33, 31, 257], 65), ([7, 129, 3, 32], 17)])
def test_dbm_sweeps_through_the_glue(fake_gpu, sizes, rows):
    TD.test_gpu_sweeps_match_reference_and_cpu(sizes, rows)


def test_dbm_mean_field_through_the_glue(fake_gpu):
    TD.test_gpu_mean_field_matches_cpu()


def test_dbm_refuses_host_arrays(fake_gpu):
    TD.test_gpu_model_refuses_host_arrays()


@pytest.mark.parametrize("n_v,n_h", [(30, 12), (9, 20)])
def test_exact_log_partition_through_the_glue(fake_gpu, n_v, n_h):
    TE.test_gpu_exact_log_partition_matches_cpu(n_v, n_h)


def test_ais_through_the_glue(fake_gpu):
    # test_estimators_cuda's check on a shorter schedule (the emulator runs ~1 ms per
    # launch): the same uniforms drive both devices, so the estimates agree up to chains
    # flipped by rounding, far inside the runs' own standard error.
    from ebmfast import estimators as E
    from test_estimators import random_rbm
    rbm = random_rbm(12, 10, 2, scale=0.5)
    betas = np.linspace(0.0, 1.0, 60)
    a = E.ais(rbm, n_runs=64, betas=betas, seed=3)
    g = E.ais(rbm, n_runs=64, betas=betas, seed=3, device="cuda")
    assert abs(a.log_z - g.log_z) < 1e-3
    assert abs(g.log_z - E.exact_log_partition(rbm)) < 5 * g.se + 1e-3


def test_dbm_ais_through_the_glue(fake_gpu):
    # test_estimators_cuda's DBM check on a shorter schedule: the estimate lies within
    # five of its own standard errors of the exact log Z (false-failure rate < 1e-6 for a
    # normal estimate), and equals the CPU estimate on the same stream up to rounding.
    from ebmfast import estimators as E
    rng = np.random.default_rng(5)
    Ws = [(0.6 * rng.standard_normal(s)).astype(np.float32) for s in ((10, 8), (8, 6))]
    bs = [(0.5 * rng.standard_normal(n)).astype(np.float32) for n in (10, 8, 6)]
    out = []
    for device, xp in (("cpu", np), ("cuda", fake_gpu)):
        d = ef.DBM([10, 8, 6], seed=5, pretrain=False, device=device)
        d.W_ = [xp.asarray(W) for W in Ws]
        d.biases_ = [xp.asarray(b) for b in bs]
        d._refresh_transposes()
        out.append(E.ais(d, n_runs=64, betas=np.linspace(0.0, 1.0, 200), seed=6))
    cpu, gpu = out
    assert abs(gpu.log_z - E.exact_log_partition(d)) < 5 * gpu.se + 1e-3
    assert abs(gpu.log_z - cpu.log_z) < 1e-3


# --------------------------------------------------------------------------- chains, Hopfield
# The bodies of test_ising_cuda.py / test_hopfield_cuda.py: sample_ising, IsingLattice2D,
# Hopfield recall and sampling with device="cuda" through _ising_cuda and CuPy.

@pytest.mark.parametrize("n", [1, 33])
@pytest.mark.parametrize("proposal", ["metropolis", "gibbs"])
@pytest.mark.parametrize("order", ["sequential", "random"])
def test_sample_ising_through_the_glue(fake_gpu, n, proposal, order):
    TI.test_cuda_chains_match_cpu_and_reference(n, proposal, order)


def test_sparse_sample_ising_through_the_glue(fake_gpu):
    TI.test_cuda_sparse_chains_match_cpu()


@pytest.mark.parametrize("L", [2, 34])
@pytest.mark.parametrize("proposal", ["metropolis", "gibbs"])
def test_lattice_through_the_glue(fake_gpu, L, proposal):
    TI.test_cuda_lattice_matches_cpu(L, proposal)


@pytest.mark.parametrize("n,cues", [(7, 17), (33, 1)])
@pytest.mark.parametrize("order", ["sequential", "random"])
def test_hopfield_recall_through_the_glue(fake_gpu, n, cues, order):
    TH.test_cuda_recall_matches_cpu(n, cues, order)


def test_hopfield_sampling_through_the_glue(fake_gpu):
    TH.test_cuda_sampling_matches_cpu()


def test_boltzmann_machine_sampling_through_the_glue(fake_gpu):
    TB.test_cuda_sampling_matches_cpu()


# --------------------------------------------------------------------------- continuous chains
# test_mcmc.py's device-parametrised checks with device="cuda": metropolis / mala /
# langevin on the built-in energies through _mcmc_cuda (user CUDA sources need CuPy's
# runtime compiler: real GPU only).

@pytest.mark.parametrize("sampler", ["rwmh", "mala", "ula"])
@pytest.mark.parametrize("d,n", [(1, 1), (3, 33)])
def test_continuous_chains_through_the_glue(fake_gpu, d, n, sampler):
    TM.test_kernel_matches_spec(d, n, sampler, "cuda")


@pytest.mark.parametrize("kind", range(6))
def test_every_energy_through_the_glue(fake_gpu, kind):
    TM.test_every_energy_matches_spec(kind, "mala", "cuda")
