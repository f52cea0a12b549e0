"""The RBM on the GPU (csrc/cuda/rbm.cu through ebmfast._rbm_cuda and RBM(device="cuda"))
against the NumPy reference and the CPU model on the shared Philox stream.

The GPU tests carry the cuda marker and skip without a GPU (and CuPy); the bounds are the
CPU suite's derivations (tests/test_kernels.py) adapted to the GPU's summation order:
- fp32: every product sum is one float32 accumulator over its terms (the same gamma_n
  bound as the CPU); the CD gradient adds both phases into one accumulator (n_data +
  n_chain terms);
- tf32: each operand is rounded to a 10-bit mantissa (relative error <= 2**-11) before the
  product, so a field moves by at most 2 * 2**-11 * sum |x||m| more, and a gradient entry
  by 2**-11 * (pos + neg) more (the states are 0/1, exact in tf32).
The tests at the top (glue, bindings, host-side errors) run everywhere.
"""
from __future__ import annotations

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import _core
from ebmfast import reference as R
from test_kernels import (EPS, SEED, STEP, agreement, assert_close, assert_samples, binary,
                          check_gibbs_exact_distribution, field_bound, free_energy_bound,
                          gaussian, pll_bound, prob_bound, rbm_params, rng_for)

HAVE_GPU = ef.cuda_available()
try:
    import cupy as cp
except ImportError:  # pragma: no cover - depends on the machine
    cp = None

TF32 = 2.0**-11  # unit roundoff of tf32 (10 explicit mantissa bits, round to nearest)


def gpu(test):
    """Mark a GPU test: the cuda marker, skipped without a device or CuPy."""
    skip = pytest.mark.skipif(not HAVE_GPU or cp is None, reason="no CUDA device (or no CuPy)")
    return pytest.mark.cuda(skip(test))


# --------------------------------------------------------------------------- everywhere

def test_bindings_follow_the_build():
    for name in ("cuda_rbm_gibbs", "cuda_rbm_cd_update", "cuda_rbm_free_energy"):
        assert hasattr(_core, name) == bool(_core.cuda_compiled), name


def test_glue_imports_without_a_gpu():
    from ebmfast import _rbm_cuda
    assert _rbm_cuda.bits_to_float(0x3F800000) == 1.0
    assert _rbm_cuda.bits_to_float(_rbm_cuda.NON_FINITE_BITS) == float("inf")


class FakeDeviceArray:
    """Anything exposing __cuda_array_interface__ (a torch CUDA tensor, say)."""
    __cuda_array_interface__ = {"shape": (2, 3), "typestr": "<f4", "data": (0, False),
                                "version": 3}


def test_a_gpu_array_given_to_a_cpu_model_is_a_type_error():
    rbm = ef.RBM(3, 2, seed=0, device="cpu")
    before = rbm.W.copy()
    for call in (lambda: rbm.transform(FakeDeviceArray()), lambda: rbm.partial_fit(FakeDeviceArray()),
                 lambda: rbm.gibbs(FakeDeviceArray()), lambda: rbm.free_energy(FakeDeviceArray())):
        with pytest.raises(TypeError, match="GPU array"):
            call()
    with pytest.raises(TypeError, match="GPU array"):
        rbm.W = FakeDeviceArray()
    np.testing.assert_array_equal(rbm.W, before)


@pytest.mark.skipif(HAVE_GPU, reason="checks the machine without a GPU")
def test_load_onto_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    rbm = ef.RBM(4, 3, seed=1)
    rbm.save(tmp_path / "m.npz")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ef.RBM.load(tmp_path / "m.npz", device="cuda")
    with pytest.raises(ValueError, match="device"):
        ef.RBM.load(tmp_path / "m.npz", device="gpu")
    back = ef.RBM.load(tmp_path / "m.npz", device="cpu")
    np.testing.assert_array_equal(back.W, rbm.W)


def test_old_gpus_and_missing_cupy_are_clear_errors(monkeypatch):
    # The kernels are built for sm_80 / sm_90: an older GPU must be refused up front (not
    # fail later with "no kernel image"), and "auto" must then stay on the CPU.
    monkeypatch.setattr(_core, "cuda_compiled", True)
    monkeypatch.setattr(_core, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(_core, "cuda_compute_capability", lambda: 75)
    with pytest.raises(RuntimeError, match="compute capability 7.5"):
        ef.RBM(3, 2, device="cuda")
    assert ef.RBM(3, 2, device="auto").device_ == "cpu"
    monkeypatch.setattr(_core, "cuda_compute_capability", lambda: 90)
    import builtins
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("no cupy")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_cupy)
    with pytest.raises(RuntimeError, match="CuPy"):
        ef.RBM(3, 2, device="cuda")
    assert ef.RBM(3, 2, device="auto").device_ == "cpu"


# --------------------------------------------------------------------------- helpers (GPU)

def tf32_field_bound(X, M, bias, beta=1.0):
    """field_bound plus the two tf32 operand roundings of every product."""
    S = abs(beta) * (np.abs(np.asarray(X, np.float64)) @ np.abs(np.asarray(M, np.float64)))
    return field_bound(X, M, bias, beta) + 2.2 * TF32 * S


def bound_for(precision):
    return tf32_field_bound if precision == "tf32" else field_bound


def to_gpu(*arrays):
    return [cp.asarray(a) for a in arrays]


# Every dimension straddling the 64 x 64 tile, the 16-deep slice and the warp.
EDGE = [1, 31, 32, 33, 127, 128, 129, 1000]
BASE = (17, 40, 70)  # rows, n_v, n_h


def vary(base, values):
    out = []
    for axis in range(3):
        for v in values:
            shape = list(base)
            shape[axis] = v
            out.append(tuple(shape))
    return sorted(set(out))


# --------------------------------------------------------------------------- Gibbs

@gpu
@pytest.mark.parametrize("precision", ["fp32", "tf32"])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("rows,n_v,n_h", vary(BASE, EDGE))
def test_gibbs_matches_reference_stream(rows, n_v, n_h, k, precision):
    from ebmfast import _rbm_cuda
    rng = rng_for(rows, n_v, n_h, k, "gpu-gibbs")
    W, _, b, c = rbm_params(rng, n_v, n_h)
    V0 = binary(rng, (rows, n_v), 0.5)
    beta = 0.8
    bb, cb = (beta * b).astype(np.float32), (beta * c).astype(np.float32)
    Wd, bd, cd, V = to_gpu(W, bb, cb, V0)
    scratch = _rbm_cuda.Scratch()
    _rbm_cuda.gibbs(Wd, bd, cd, V, k, beta, SEED, STEP, precision, scratch)
    H = scratch.get("gibbs_H", (rows, n_h)).get()
    V = V.get()
    V_ref, H_ref = R.gibbs(W, bb, cb, V0, k, beta, SEED, STEP)
    assert set(np.unique(V).tolist()) <= {0.0, 1.0} and set(np.unique(H).tolist()) <= {0.0, 1.0}
    # fp32: the DESIGN bar (>= 99.9 % identical states); tf32 moves probabilities by
    # ~1e-3 relative, so a state flips when u lands that close to p: <= 1 %.
    bar = 0.999 if precision == "fp32" else 0.99
    assert agreement(V, V_ref) >= bar
    assert agreement(H, H_ref) >= bar
    if k == 1:  # the first hidden layer sees exact inputs: every mismatch is rounding
        z, p_ref, _ = R.layer_forward(V0, W, cb, beta, R.STREAM_HIDDEN, SEED, STEP)
        u = R.uniform_grid(SEED, R.STREAM_HIDDEN, STEP, rows, n_h)
        tol = prob_bound(z, bound_for(precision)(V0, W, cb, beta))
        if precision == "fp32":
            assert_samples(H, p_ref, u, tol, "hidden")
        else:
            mism = H.astype(bool) != (u < p_ref)
            assert not (mism & (np.abs(u - p_ref) > tol)).any(), "tf32 mismatch beyond rounding"


@gpu
def test_gibbs_matches_the_cpu_kernel_at_784_500_1000():
    rng = np.random.default_rng(5)
    W, WT, b, c = rbm_params(rng, 784, 500)
    V0 = binary(rng, (1000, 784), 0.3)
    Vc = V0.copy()
    _core.gibbs(W, WT, b, c, Vc, None, 3, 1.0, SEED, STEP, 0)
    from ebmfast import _rbm_cuda
    Wd, bd, cd, Vd = to_gpu(W, b, c, V0)
    _rbm_cuda.gibbs(Wd, bd, cd, Vd, 3, 1.0, SEED, STEP, "fp32", _rbm_cuda.Scratch())
    assert agreement(Vd.get(), Vc) >= 0.999


@gpu
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gibbs_samples_exact_distribution_on_the_gpu(beta):
    # The CPU suite's chi-square test (tests/test_kernels.py) on the GPU kernel.
    from ebmfast import _rbm_cuda

    def run(W, bb, cb, V, n_steps, beta):
        Wd, bd, cd, Vd = to_gpu(W, bb, cb, V)
        _rbm_cuda.gibbs(Wd, bd, cd, Vd, n_steps, beta, SEED, 0, "fp32", _rbm_cuda.Scratch())
        return Vd.get()
    check_gibbs_exact_distribution(run, beta)


# --------------------------------------------------------------------------- CD-k update

def gpu_gradient_bounds(W, b, c, V0, chain_ref, n_bad_rows, precision):
    """|GPU - reference| for (dW, db, dc). dW: both phases in one float32 accumulator
    (n_d + n_c terms of |v p| / n, <= (n_d + n_c + 4) EPS (pos + neg)), the probability
    errors propagated (sum |v| dp / n per phase), the Bc/Bd rescale and the 1/Bc product
    (2 EPS); tf32 adds 2**-11 (pos + neg) for the rounding of p. A chain row that differs
    from the reference moves an entry by <= 1/n_c. Biases: float64 sums, one cast."""
    bound = bound_for(precision)
    n_d, n_c = V0.shape[0], chain_ref.shape[0]

    def phase(V):
        V = np.asarray(V, np.float64)
        z = V @ W.astype(np.float64) + c
        p = R.sigmoid(z)
        dp = prob_bound(z, bound(V, W, c))
        n = V.shape[0]
        return np.abs(V).T @ p / n, np.abs(V).T @ dp / n, dp.mean(axis=0)

    pos, prop_pos, dc_pos = phase(V0)
    neg, prop_neg, dc_neg = phase(chain_ref)
    shift = n_bad_rows / n_c
    extra = TF32 if precision == "tf32" else 0.0
    tol_W = (n_d + n_c + 6) * EPS * (pos + neg) + prop_pos + prop_neg + extra * (pos + neg) + shift
    tol_b = 2 * EPS + shift
    tol_c = dc_pos + dc_neg + 4 * EPS + shift
    return tol_W, tol_b, tol_c


CD_SHAPES = [(1, 1, 1), (17, 33, 65), (64, 129, 31), (100, 784, 500), (33, 1000, 127)]


@gpu
@pytest.mark.parametrize("precision", ["fp32", "tf32"])
@pytest.mark.parametrize("data_kind", ["binary", "real"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
@pytest.mark.parametrize("n_data,n_v,n_h", CD_SHAPES)
def test_cd_gradient_matches_reference(n_data, n_v, n_h, persistent, k, data_kind, precision):
    from ebmfast import _rbm_cuda
    rng = rng_for(n_data, n_v, n_h, persistent, k, data_kind, "gpu-cd")
    W, _, b, c = rbm_params(rng, n_v, n_h)
    V0 = binary(rng, (n_data, n_v), 0.3) if data_kind == "binary" else \
        rng.random((n_data, n_v)).astype(np.float32)
    # PCD with more chains than data rows: the phases are normalised separately.
    chain = binary(rng, (n_data + 5, n_v), 0.5) if persistent else None
    ref = R.cd_gradient(W, b, c, V0, k, SEED, STEP, chain)
    Wd, bd, cd, V0d = to_gpu(W, b, c, V0)
    chain_d = None if chain is None else cp.asarray(chain)
    grads = (cp.full_like(Wd, np.nan), cp.full_like(bd, np.nan), cp.full_like(cd, np.nan))
    scratch = _rbm_cuda.Scratch()
    _rbm_cuda.cd_update((Wd, bd, cd), None, grads, None, V0d, chain_d, k, learning_rate=0.1,
                        momentum=0.5, weight_decay=0.01, seed=SEED, step=STEP,
                        precision=precision, scratch=scratch, gradient_only=True)
    dW, db, dc = (g.get() for g in grads)
    # gradient_only leaves the parameters alone
    np.testing.assert_array_equal(Wd.get(), W)
    np.testing.assert_array_equal(bd.get(), b)
    chain_k = chain_d.get() if persistent else scratch.get("Vk", (n_data, n_v)).get()
    bar = 0.999 if precision == "fp32" else 0.99
    assert agreement(chain_k, ref.chain) >= bar
    n_bad = int(np.any(chain_k != ref.chain, axis=1).sum())
    tol_W, tol_b, tol_c = gpu_gradient_bounds(W, b, c, V0, ref.chain, n_bad, precision)
    assert_close(dW, ref.dW, tol_W, "dW")
    assert_close(db, ref.db, tol_b, "db")
    assert_close(dc, ref.dc, tol_c, "dc")


@gpu
def test_gradient_bound_can_fail():
    # Half a data row's worth of error in dW is far outside the fp32 and tf32 bounds.
    rng = np.random.default_rng(3)
    W, _, b, c = rbm_params(rng, 33, 40)
    V0 = binary(rng, (64, 33), 0.3)
    ref = R.cd_gradient(W, b, c, V0, 1, SEED, STEP)
    for precision in ("fp32", "tf32"):
        tol_W, _, _ = gpu_gradient_bounds(W, b, c, V0, ref.chain, 0, precision)
        assert np.all(tol_W < 0.5 / V0.shape[0])


@gpu
@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
def test_cd_update_applies_momentum_and_weight_decay(persistent):
    # The update = the gradient (same stream) fed through reference.momentum_update; in
    # place and into other buffers give identical results; the stats are max |.| exactly.
    from ebmfast import _rbm_cuda
    rng = np.random.default_rng(11)
    n_d, n_v, n_h = 50, 70, 45
    W, _, b, c = rbm_params(rng, n_v, n_h)
    vW, vb, vc = (0.01 * gaussian(rng, a.shape, 1.0) for a in (W, b, c))
    V0 = binary(rng, (n_d, n_v), 0.4)
    chain = binary(rng, (n_d, n_v), 0.5) if persistent else None
    lr, mom, wd = 0.05, 0.7, 0.02
    args = dict(learning_rate=lr, momentum=mom, weight_decay=wd, seed=SEED, step=STEP,
                precision="fp32")
    Wd, bd, cd, V0d = to_gpu(W, b, c, V0)
    vel = tuple(to_gpu(vW, vb, vc))
    grads = tuple(cp.empty_like(a) for a in (Wd, bd, cd))
    ch = None if chain is None else cp.asarray(chain)
    _rbm_cuda.cd_update((Wd, bd, cd), None, grads, None, V0d, ch, 1, scratch=_rbm_cuda.Scratch(),
                        gradient_only=True, **args)
    g = [x.get() for x in grads]
    # out of place
    outs = tuple(cp.empty_like(a) for a in (Wd, bd, cd))
    outv = tuple(cp.empty_like(a) for a in vel)
    stats = cp.zeros(2, cp.uint32)
    ch = None if chain is None else cp.asarray(chain)
    _rbm_cuda.cd_update((Wd, bd, cd), vel, outs, outv, V0d, ch, 1, scratch=_rbm_cuda.Scratch(),
                        stats=stats, **args)
    for p, v, grad, o, ov, decay in zip((W, b, c), (vW, vb, vc), g, outs, outv, (wd, 0.0, 0.0)):
        want_p, want_v = R.momentum_update(p, v, grad, lr, mom, decay)
        np.testing.assert_allclose(ov.get(), want_v, rtol=4 * EPS, atol=4 * EPS * (np.abs(v).max() + lr))
        np.testing.assert_allclose(o.get(), want_p, rtol=4 * EPS, atol=4 * EPS * (np.abs(p).max() + 1))
    mw, mv = (int(x) for x in stats.get())
    assert _rbm_cuda.bits_to_float(mw) == max(float(np.abs(o.get()).max()) for o in outs)
    assert _rbm_cuda.bits_to_float(mv) == max(float(np.abs(o.get()).max()) for o in outv)
    # in place equals out of place, bit for bit
    ch = None if chain is None else cp.asarray(chain)
    _rbm_cuda.cd_update((Wd, bd, cd), vel, (Wd, bd, cd), vel, V0d, ch, 1,
                        scratch=_rbm_cuda.Scratch(), stats=cp.zeros(2, cp.uint32), **args)
    for a, o in zip((Wd, bd, cd) + vel, outs + outv):
        np.testing.assert_array_equal(a.get(), o.get())


@gpu
@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
def test_large_tile(persistent):
    # The 128 x 128 tile (fp32 products of >= 1024 x 1024 outputs): at its natural size,
    # and forced onto small problems that straddle its edges.
    test_gibbs_matches_reference_stream(1030, 1100, 1050, 1, "fp32")
    _core.cuda_set_tile_policy(2)
    try:
        test_gibbs_matches_reference_stream(130, 129, 140, 2, "fp32")
        test_cd_gradient_matches_reference(17, 129, 130, persistent, 2, "binary", "fp32")
        test_cd_update_applies_momentum_and_weight_decay(persistent)
    finally:
        _core.cuda_set_tile_policy(0)


# --------------------------------------------------------------------------- scores

@gpu
@pytest.mark.parametrize("rows,n_v,n_h", [(1, 1, 1), (33, 17, 65), (65, 129, 257), (7, 784, 500)])
def test_free_energy_and_pll_match_reference(rows, n_v, n_h):
    from ebmfast import _rbm_cuda
    rng = rng_for(rows, n_v, n_h, "gpu-score")
    W, _, b, c = rbm_params(rng, n_v, n_h)
    Vb = binary(rng, (rows, n_v), 0.5)
    Vr = rng.random((rows, n_v)).astype(np.float32)
    Wd, bd, cd = to_gpu(W, b, c)
    for V in (Vb, Vr):
        F = _rbm_cuda.free_energy(Wd, bd, cd, cp.asarray(V))
        assert F.dtype == cp.float64 and F.shape == (rows,)
        assert_close(F.get(), R.free_energy(W, b, c, V), free_energy_bound(W, b, c, V), "F")
    pll = _rbm_cuda.pseudo_log_likelihood(Wd, bd, cd, cp.asarray(Vb)).get()
    assert np.all(pll <= 0)
    assert_close(pll, R.pseudo_log_likelihood(W, b, c, Vb), pll_bound(W, b, c, Vb), "PLL")


# --------------------------------------------------------------------------- the model

def model_pair(n_v=20, n_h=12, **kw):
    cpu = ef.RBM(n_v, n_h, seed=7, device="cpu", **kw)
    gpu_model = ef.RBM(n_v, n_h, seed=7, device="cuda", **kw)
    return cpu, gpu_model


@gpu
def test_the_whole_api_on_the_gpu_returns_gpu_arrays():
    X = cp.asarray(binary(np.random.default_rng(0), (60, 20), 0.4))
    rbm = ef.RBM(20, 12, seed=7, device="cuda", batch_size=16, epochs=2)
    assert rbm.device_ == "cuda"
    rbm.fit(X)
    assert rbm.epochs_trained_ == 2 and len(rbm.history_) == 2
    rbm.partial_fit(X[:10])
    for out, shape, dtype in [(rbm.transform(X), (60, 12), cp.float32),
                              (rbm.gibbs(X, k=2), (60, 20), cp.float32),
                              (rbm.sample(5, n_steps=3), (5, 20), cp.float32),
                              (rbm.free_energy(X), (60,), cp.float64),
                              (rbm.score_samples(X), (60,), cp.float64),
                              (rbm.W, (20, 12), cp.float32),
                              (rbm.components_, (12, 20), cp.float32)]:
        assert isinstance(out, cp.ndarray) and out.shape == shape and out.dtype == dtype
    dW, db, dc = rbm.gradient(X[:10])
    assert isinstance(dW, cp.ndarray) and dW.shape == (20, 12)
    assert np.isfinite(rbm.log_partition())  # exact, from host copies of the parameters
    ll = rbm.log_likelihood(X)
    assert isinstance(ll, cp.ndarray) and bool((ll < 0).all())


@gpu
@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_gpu_training_follows_the_cpu(method):
    # Same seed, data and batch order: the initial weights are equal, and each update
    # differs only by rounding and rare sample flips, so after one epoch the parameters
    # agree closely (a flip moves an entry by <= lr / batch).
    X = binary(np.random.default_rng(1), (80, 20), 0.4)
    cpu, gpu_model = model_pair(method=method, batch_size=20, epochs=1, learning_rate=0.05)
    np.testing.assert_array_equal(cpu.W, gpu_model.W.get())
    cpu.fit(X)
    gpu_model.fit(cp.asarray(X))
    assert cpu.step == gpu_model.step
    err = np.abs(gpu_model.W.get() - cpu.W)
    assert err.max() <= 4 * 0.05 / 20  # at most a few flipped rows over four updates
    assert np.median(err) <= 1e-5


@gpu
@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_gpu_divergence_restores_the_model(method):
    # An absurd learning rate overflows float32 within a few updates; the failing update
    # is discarded whole (parameters, velocities, PCD chains, step).
    rbm = ef.RBM(4, 3, seed=0, device="cuda", learning_rate=1e38, momentum=0.9,
                 method=method, batch_size=6)
    X = cp.ones((6, 4), cp.float32)

    def snapshot():
        arrays = [rbm._W, rbm._b, rbm._c, rbm._vW, rbm._vb, rbm._vc]
        chains = None if rbm._chains is None else rbm._chains.get()
        return [a.get() for a in arrays], chains, rbm.step

    for _ in range(10):
        before = snapshot()
        try:
            rbm.partial_fit(X)
        except FloatingPointError as exc:
            assert "learning_rate" in str(exc)
            after = snapshot()
            for a, b in zip(after[0], before[0]):
                np.testing.assert_array_equal(a, b)
            assert (after[1] is None) == (before[1] is None)
            if before[1] is not None:
                np.testing.assert_array_equal(after[1], before[1])
            assert after[2] == before[2]
            break
    else:
        pytest.fail("updates of 1e38 * gradient must overflow float32")


@gpu
def test_save_on_gpu_load_on_cpu_and_back(tmp_path):
    X = binary(np.random.default_rng(2), (60, 20), 0.4)
    a = ef.RBM(20, 12, seed=7, device="cuda", method="pcd", batch_size=20, epochs=1)
    a.fit(cp.asarray(X))
    a.save(tmp_path / "gpu.npz")
    on_cpu = ef.RBM.load(tmp_path / "gpu.npz", device="cpu")
    assert on_cpu.device_ == "cpu"
    np.testing.assert_array_equal(on_cpu.W, a.W.get())
    back = ef.RBM.load(tmp_path / "gpu.npz")  # the device it was saved from
    assert back.device_ == "cuda"
    # training continues identically from the file (deterministic kernels)
    a.fit(cp.asarray(X))
    back.fit(cp.asarray(X))
    np.testing.assert_array_equal(a.W.get(), back.W.get())
    # a CPU model moves to the GPU on request
    on_cpu.set_params(device="cuda")
    assert on_cpu.device_ == "cuda" and isinstance(on_cpu.W, cp.ndarray)


@gpu
def test_interop_and_wrong_device_errors():
    rbm = ef.RBM(20, 12, seed=7, device="cuda")
    with pytest.raises(TypeError, match="GPU array"):
        rbm.transform(np.zeros((3, 20), np.float32))  # host data is never copied silently
    with pytest.raises(TypeError, match="GPU array"):
        rbm.W = np.zeros((20, 12), np.float32)
    with pytest.raises(ValueError, match="binary"):
        rbm.gibbs(cp.full((3, 20), 0.5, cp.float32))
    with pytest.raises(ValueError, match="NaN"):
        rbm.partial_fit(cp.full((3, 20), cp.nan, cp.float32))
    X = cp.asarray(binary(np.random.default_rng(0), (8, 20), 0.5))
    # float64 and bool device inputs are converted on the device
    np.testing.assert_array_equal(rbm.transform(X.astype(cp.float64)).get(), rbm.transform(X).get())
    np.testing.assert_array_equal(rbm.transform(X.astype(bool)).get(), rbm.transform(X).get())
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    T = torch.as_tensor(X.get(), device="cuda")
    np.testing.assert_array_equal(rbm.transform(T).get(), rbm.transform(X).get())


@gpu
def test_tf32_model_trains():
    X = cp.asarray(R.all_states(4)[:8].repeat(4, axis=0).astype(np.float32))
    X = cp.concatenate([X, 1 - X], axis=1)
    rbm = ef.RBM(8, 6, seed=3, device="cuda", precision="tf32", learning_rate=0.1,
                 batch_size=8, epochs=30)
    ll0 = float(rbm.log_likelihood(X).mean())
    rbm.fit(X)
    assert float(rbm.log_likelihood(X).mean()) > ll0 + 0.5


@gpu
@pytest.mark.skipif(not HAVE_GPU or cp is None or cp.cuda.runtime.getDeviceCount() < 2,
                    reason="needs two CUDA devices")
def test_array_on_another_device_is_refused():
    rbm = ef.RBM(20, 12, seed=7, device="cuda")
    with cp.cuda.Device(1):
        X = cp.zeros((3, 20), cp.float32)
    with pytest.raises(ValueError, match="GPU 1"):
        rbm.transform(X)
