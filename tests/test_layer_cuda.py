"""The CUDA layer update (csrc/cuda/layer_update.cu via ebmfast._layer_cuda) against the
NumPy spec reference.layer_update on the shared Philox stream, and against the CPU layer
kernel for one neighbour. The GPU tests carry the cuda marker and skip without a GPU (and
CuPy); the build check at the top runs everywhere."""
from __future__ import annotations

import numpy as np
import pytest

import ebmfast as ef
from ebmfast import _core
from ebmfast import reference as ref

HAVE_GPU = ef.cuda_available()
try:
    import cupy as cp
except ImportError:  # pragma: no cover - depends on the machine
    cp = None


def gpu(test):
    """Mark a GPU test: the cuda marker, skipped without a device or CuPy."""
    skip = pytest.mark.skipif(not HAVE_GPU or cp is None, reason="no CUDA device (or no CuPy)")
    return pytest.mark.cuda(skip(test))

EPS32 = 2.0 ** -24  # unit roundoff of float32


# --------------------------------------------------------------------------- build (CPU)

def test_binding_compiled_with_cuda():
    """A CUDA build must carry the binding; a CPU-only build must not pretend to."""
    assert hasattr(_core, "cuda_layer_update") == bool(_core.cuda_compiled)


def test_glue_imports_without_gpu():
    from ebmfast import _layer_cuda
    assert callable(_layer_cuda.layer_update)


# --------------------------------------------------------------------------- helpers

SIZES = [1, 3, 7, 31, 32, 33, 255, 256, 257]
# (rows, n_in, n_out): each size on each axis against odd partners, plus the cube.
SHAPES = sorted({(s, 33, 70) for s in SIZES} | {(70, s, 33) for s in SIZES}
                | {(33, 70, s) for s in SIZES} | {(s, s, s) for s in SIZES})


def _inputs(rng, rows, n_in, n_out, binary):
    X = (rng.random((rows, n_in)) < 0.3) if binary else rng.random((rows, n_in))
    M = rng.standard_normal((n_in, n_out)) / np.sqrt(max(n_in, 1))
    return X.astype(np.float32), M.astype(np.float32)


def _bounds(pairs, bias, beta):
    """Elementwise bounds on |z32 - z| and |p32 - p| of a float32 kernel vs the float64 spec."""
    # Recursive float32 summation of n products: |error| <= gamma_n sum_i |x_i m_i| with
    # gamma_n ~ n u (Higham, Thm 3.1); plus the rounding of beta*acc and of + bias.
    n = sum(X.shape[1] for X, _ in pairs)
    mag = abs(beta) * sum(np.abs(X.astype(np.float64)) @ np.abs(M.astype(np.float64))
                          for X, M in pairs) + np.abs(bias.astype(np.float64))
    tol_z = (n + 3) * EPS32 * mag + 1e-30
    # sigmoid is 1/4-Lipschitz; the device expf and the division add a few ulps of p <= 1.
    tol_p = tol_z / 4 + 8 * EPS32
    return tol_z, tol_p


def _check_against_reference(pairs, bias, beta, stream, seed, step, chain_offset, out):
    """field/prob within derived float32 bounds of the float64 spec; samples >= 99.9% equal
    and every mismatch where the spec's u lies within the prob bound of p."""
    field, prob, sample = out
    z, p, s = ref.layer_update(pairs, bias, beta, stream, seed, step, chain_offset)
    tol_z, tol_p = _bounds(pairs, bias, beta)
    np.testing.assert_array_less(np.abs(cp.asnumpy(field) - z), tol_z)
    np.testing.assert_array_less(np.abs(cp.asnumpy(prob) - p), tol_p)
    sg = cp.asnumpy(sample)
    assert set(np.unique(sg)) <= {0.0, 1.0}
    assert np.mean(sg == s) >= 0.999
    u = ref.uniform_grid(seed, stream, step, s.shape[0], s.shape[1], chain_offset)
    bad = sg != s
    assert np.all(np.abs(u[bad] - p[bad]) <= tol_p[bad])


# --------------------------------------------------------------------------- GPU

@gpu
@pytest.mark.parametrize("rows,n_in,n_out", SHAPES)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "real"])
@pytest.mark.parametrize("two", [False, True], ids=["one", "two"])
def test_cuda_layer_update_matches_reference(rows, n_in, n_out, binary, two):
    from ebmfast._layer_cuda import layer_update
    rng = np.random.default_rng(rows * 1_000_003 + n_in * 1009 + n_out)
    X1, M1 = _inputs(rng, rows, n_in, n_out, binary)
    pairs = [(X1, M1)]
    if two:  # the second neighbour has its own width (the layer above)
        pairs.append(_inputs(rng, rows, max(1, n_in // 2 + 5), n_out, binary))
    bias = (rng.standard_normal(n_out) * 0.5).astype(np.float32)
    beta, stream, seed, step, chain_offset = 0.8, ref.STREAM_LAYER + 1, 12345 + rows, 7, 3
    kw = {}
    if two:
        kw = dict(X2=cp.asarray(pairs[1][0]), M2=cp.asarray(pairs[1][1]))
    out = layer_update(cp.asarray(X1), cp.asarray(M1), cp.asarray(bias), beta, stream=stream,
                       seed=seed, step=step, chain_offset=chain_offset, want_field=True,
                       want_prob=True, want_sample=True, **kw)
    _check_against_reference(pairs, bias, beta, stream, seed, step, chain_offset, out)


@gpu
@pytest.mark.parametrize("rows,n_in,n_out", [(1, 1, 1), (33, 257, 255), (257, 64, 7)])
def test_cuda_matches_cpu_kernel_one_neighbour(rows, n_in, n_out):
    """Same Philox stream, same sigmoid formulation: the GPU samples are the CPU kernel's."""
    from ebmfast._layer_cuda import layer_update
    rng = np.random.default_rng(rows + n_in + n_out)
    X, M = _inputs(rng, rows, n_in, n_out, True)
    bias = (rng.standard_normal(n_out) * 0.5).astype(np.float32)
    zc, pc, sc = _core.layer_forward(X, M, bias, 1.0, True, True, True, True, ref.STREAM_HIDDEN,
                                     99, 4, 10)
    zg, pg, sg = layer_update(cp.asarray(X), cp.asarray(M), cp.asarray(bias), 1.0,
                              stream=ref.STREAM_HIDDEN, seed=99, step=4, chain_offset=10,
                              want_field=True, want_prob=True, want_sample=True)
    # Both kernels lie within the bounds of the float64 spec, so within twice of each other.
    tol_z, tol_p = _bounds([(X, M)], bias, 1.0)
    np.testing.assert_array_less(np.abs(cp.asnumpy(zg) - zc), 2 * tol_z)
    np.testing.assert_array_less(np.abs(cp.asnumpy(pg) - pc), 2 * tol_p)
    assert np.mean(cp.asnumpy(sg) == sc) >= 0.999


@gpu
def test_cuda_outputs_optional_out_sample_and_stream():
    from ebmfast._layer_cuda import layer_update
    rng = np.random.default_rng(5)
    X, M = _inputs(rng, 70, 40, 90, False)
    bias = np.zeros(90, np.float32)
    Xd, Md, bd = cp.asarray(X), cp.asarray(M), cp.asarray(bias)
    kw = dict(stream=ref.STREAM_VISIBLE, seed=2**64 - 1, step=2**32 - 1)
    assert layer_update(Xd, Md, bd, 1.0, **kw) == (None, None, None)
    f, p, s = layer_update(Xd, Md, bd, 1.0, want_prob=True, **kw)
    assert f is None and s is None and p.shape == (70, 90)
    # A preallocated sample, on a non-default stream: the result is ordered on that stream.
    out = cp.full((70, 90), 7.0, cp.float32)
    with cp.cuda.Stream(non_blocking=True) as st:
        f2, p2, s2 = layer_update(Xd, Md, bd, 1.0, out_sample=out, **kw)
        st.synchronize()
    assert s2 is out and f2 is None and p2 is None
    _, _, s_ref = ref.layer_update([(X, M)], bias, 1.0, ref.STREAM_VISIBLE, 2**64 - 1, 2**32 - 1)
    assert np.mean(cp.asnumpy(out) == s_ref) >= 0.999
    # Empty batches and layers are no-ops that still return the right shapes.
    f, p, s = layer_update(Xd[:0], Md, bd, 1.0, want_field=True, want_sample=True, **kw)
    assert f.shape == (0, 90) and s.shape == (0, 90)


@gpu
def test_cuda_layer_update_bad_input():
    from ebmfast._layer_cuda import layer_update
    X = cp.zeros((4, 3), cp.float32)
    M = cp.zeros((3, 5), cp.float32)
    b = cp.zeros(5, cp.float32)
    kw = dict(stream=0, seed=1, step=0, want_sample=True)
    with pytest.raises(TypeError, match="X must be a CuPy array"):
        layer_update(np.zeros((4, 3), np.float32), M, b, 1.0, **kw)
    with pytest.raises(TypeError, match="M must have dtype float32"):
        layer_update(X, M.astype(cp.float64), b, 1.0, **kw)
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        layer_update(cp.zeros((3, 4), cp.float32).T, M, b, 1.0, **kw)
    with pytest.raises(ValueError, match="M must have shape"):
        layer_update(X, cp.zeros((4, 5), cp.float32), b, 1.0, **kw)
    with pytest.raises(ValueError, match="bias must have shape"):
        layer_update(X, M, cp.zeros(4, cp.float32), 1.0, **kw)
    with pytest.raises(ValueError, match="bias must be 1-D"):
        layer_update(X, M, cp.zeros((1, 5), cp.float32), 1.0, **kw)
    with pytest.raises(ValueError, match="X2 and M2"):
        layer_update(X, M, b, 1.0, X2=X, **kw)
    with pytest.raises(ValueError, match="X2 must have 4 rows"):
        layer_update(X, M, b, 1.0, X2=cp.zeros((3, 2), cp.float32), M2=cp.zeros((2, 5), cp.float32),
                     **kw)
    with pytest.raises(ValueError, match="M2 must have shape"):
        layer_update(X, M, b, 1.0, X2=cp.zeros((4, 2), cp.float32), M2=cp.zeros((3, 5), cp.float32),
                     **kw)
    with pytest.raises(ValueError, match="beta must be finite"):
        layer_update(X, M, b, float("nan"), **kw)
    with pytest.raises(ValueError, match="step"):
        layer_update(X, M, b, 1.0, stream=0, seed=1, step=-1)
    with pytest.raises(ValueError, match="step"):
        layer_update(X, M, b, 1.0, stream=0, seed=1, step=2**32)
    with pytest.raises(ValueError, match="seed"):
        layer_update(X, M, b, 1.0, stream=0, seed=-1, step=0)
    with pytest.raises(TypeError, match="stream"):
        layer_update(X, M, b, 1.0, stream=1.5, seed=1, step=0)
    with pytest.raises(ValueError, match="chain_offset"):
        layer_update(X, M, b, 1.0, stream=0, seed=1, step=0, chain_offset=2**32 - 2)
    with pytest.raises(ValueError, match="out_sample must have shape"):
        layer_update(X, M, b, 1.0, out_sample=cp.zeros((5, 4), cp.float32), **kw)
    with pytest.raises(ValueError, match="out_sample must not overlap"):
        buf = cp.zeros(40, cp.float32)
        layer_update(buf[:12].reshape(4, 3), M, b, 1.0, out_sample=buf[8:28].reshape(4, 5), **kw)


@pytest.mark.cuda
@pytest.mark.skipif(not HAVE_GPU or cp is None or _core.cuda_device_count() < 2,
                    reason="needs two CUDA devices")
def test_cuda_layer_update_rejects_other_device():
    from ebmfast._layer_cuda import layer_update
    with cp.cuda.Device(1):
        M = cp.zeros((3, 5), cp.float32)
    with pytest.raises(ValueError, match="M lives on GPU 1"):
        layer_update(cp.zeros((4, 3), cp.float32), M, cp.zeros(5, cp.float32), 1.0, stream=0,
                     seed=1, step=0, want_sample=True)
