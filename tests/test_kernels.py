"""The CPU RBM kernels of ``ebmfast._core`` against the NumPy spec ``ebmfast.reference``.

* layer_forward, gibbs, cd_update (gradient and update paths), free_energy and
  pseudo_log_likelihood on sizes that straddle the kernels' edges (8-wide vectors,
  4-unit Philox blocks, 32-uniform AVX2 runs, 128-wide tiles, 16-row tasks) and on
  both ways of forming X.M (the gather kernel for binary X with <= 40 % ones, one sgemm
  per thread's block of rows otherwise), with the same Philox stream as the reference:
  floats to a derived float32 bound, samples >= 99.9 % identical (DESIGN.md §3, §6);
* bit-identical results with 1 and 2 threads;
* statistics against exact enumeration: Gibbs samples of a 6x4 RBM by chi-square, and
  the CD-k gradient against the exact CD-k expectation and the exact log-likelihood
  gradient of a 5x3 RBM.

The compiled core has no CUDA kernels for these yet (no device argument), so every test
here runs on the CPU only.

Error bounds. EPS = 2**-23 is float32's machine epsilon (twice the unit roundoff
u = 2**-24). A float32 sum of n terms has error <= gamma_n * sum|terms| with
gamma_n = n*u / (1 - n*u) < (n + 1) * u; each bound below is that worst case written
with EPS in place of u (a factor-2 margin), plus the propagation of input errors through
the derivative (sigmoid' <= 1/4, softplus' = sigmoid <= 1, log-sigmoid' <= 1). The
references run in float64 on the same float32 inputs, so their own error is ~1e-16
relative and is ignored. These are deterministic worst-case bounds: they cannot fail on
a correct kernel (observed errors reach at most ~0.5 of them, typically 0.01-0.1), while
a kernel error of one weight (a missed or doubled row, a wrong tile edge) is >= 1e-2 and
fails them (the *_can_fail tests).
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy import stats

import ebmfast
from ebmfast import _core, reference as R

EPS = 2.0**-23
TINY = 1e-37  # absolute slack for sigmoid/softplus of |z| > 87, where exp_f clamps

# Sizes that straddle the CPU kernels' boundaries: 8-wide float vectors, 4-unit Philox
# blocks, 32-uniform AVX2 runs, 128-wide output tiles, rows per task (<= 16), 256.
SIZES = [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257]
SHORT = [1, 7, 33, 128, 129, 257]
# Binary inputs with at most this fraction of ones take the gather kernel, denser ones
# the GEMM (csrc/cpu/rbm_layer.cpp); test data sits well inside either side.
SPARSE, DENSE = 0.2, 0.7
SEED = 0xA5A5_0000_1234_5678  # > 2**32: the high key word matters
STEP = 12_345
CHAIN_OFFSET = 1_000


def vary_one(base, sizes):
    """Shapes that move one dimension of ``base`` over ``sizes``, the others fixed."""
    out = []
    for d in range(len(base)):
        for s in sizes:
            shape = list(base)
            shape[d] = s
            if tuple(shape) not in out:
                out.append(tuple(shape))
    return out


def rng_for(*key):
    """A generator fixed by the test's parameters (crc32 of the strings: stable across
    processes, unlike hash())."""
    return np.random.default_rng([zlib.crc32(k.encode()) if isinstance(k, str) else int(k)
                                  for k in key])


def binary(rng, shape, density=SPARSE):
    return (rng.random(shape) < density).astype(np.float32)


def gaussian(rng, shape, scale):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


# ---------------------------------------------------------------- bounds


def field_bound(X, M, bias, beta=1.0):
    """|z_kernel - z| for z = beta * X.M + bias summed in float32 over n_in terms: the
    sum's gamma_{n_in} bound, then one rounding each for beta*acc and + bias."""
    X = np.abs(np.asarray(X, np.float64))
    S = abs(beta) * (X @ np.abs(np.asarray(M, np.float64))) + np.abs(np.asarray(bias, np.float64))
    return (X.shape[1] + 3) * EPS * S + TINY


def prob_bound(z, dz):
    """|sigmoid_f(z + dz') - sigmoid(z)| for |dz'| <= dz: sigmoid'(z) e^dz * dz (sigmoid'
    changes by at most e^|dz| over the interval) plus sigmoid_f's own relative error (exp_f
    <= 2 ulp, one add, one divide: < 4 EPS, taken as 8 EPS)."""
    p = R.sigmoid(z)
    return p * (1 - p) * np.exp(dz) * dz + 8 * EPS * p + TINY


def assert_close(got, want, tol, what):
    err = np.abs(np.asarray(got, np.float64) - want)
    bad = err > tol
    if bad.any():
        ratio = np.max(err[bad] / tol[bad]) if np.ndim(tol) else err.max() / tol
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} outside the bound; worst "
                             f"error {err.max():.3g}, worst err/bound {ratio:.3g}")


def assert_samples(got, p_ref, u, tol_p, what):
    """Sampled bits: values in {0, 1}, >= 99.9 % equal to the reference's 1[u < p], and
    every disagreement explained by rounding (u within the probability's error bound)."""
    assert set(np.unique(got).tolist()) <= {0.0, 1.0}
    want = (u < p_ref)
    mism = got.astype(bool) != want
    assert mism.mean() <= 1e-3, f"{what}: {mism.mean():.2%} of samples differ"
    unexplained = mism & (np.abs(u - p_ref) > tol_p)
    assert not unexplained.any(), f"{what}: {unexplained.sum()} mismatches not due to rounding"


def agreement(a, b):
    return float(np.mean(np.asarray(a) == np.asarray(b)))


# ---------------------------------------------------------------- layer_forward

LAYER_SHAPES = vary_one((17, 45, 140), SIZES) + [(1, 1, 1), (257, 257, 257), (65, 129, 513)]
# (data, binary flag): sparse binary -> gather kernel; dense binary with the flag, any
# binary without it, and real-valued data -> GEMM.
PATHS = ["binary-gather", "binary-dense", "binary-blas", "real-blas"]


def is_binary_flag(path):
    return path in ("binary-gather", "binary-dense")


def layer_inputs(rows, n_in, n_out, path):
    rng = rng_for(rows, n_in, n_out, path)
    X = binary(rng, (rows, n_in), DENSE if path == "binary-dense" else SPARSE) \
        if path.startswith("binary") else rng.random((rows, n_in)).astype(np.float32)
    # weights scaled so z spreads over a few units whatever n_in: every p in (0, 1) occurs
    M = gaussian(rng, (n_in, n_out), 3.0 / np.sqrt(n_in))
    bias = gaussian(rng, (n_out,), 1.0)
    return X, M, bias


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("rows,n_in,n_out", LAYER_SHAPES)
def test_layer_forward_matches_reference(rows, n_in, n_out, path):
    X, M, bias = layer_inputs(rows, n_in, n_out, path)
    beta, stream = 0.7, R.STREAM_HIDDEN
    f, p, s = _core.layer_forward(X, M, bias, beta, is_binary_flag(path), True, True, True,
                                  stream, SEED, STEP, CHAIN_OFFSET)
    z, p_ref, _ = R.layer_forward(X, M, bias, beta, stream, SEED, STEP, CHAIN_OFFSET)
    for a in (f, p, s):
        assert a.dtype == np.float32 and a.shape == (rows, n_out)
    dz = field_bound(X, M, bias, beta)
    tol_p = prob_bound(z, dz)
    assert_close(f, z, dz, "field")
    assert_close(p, p_ref, tol_p, "prob")
    u = R.uniform_grid(SEED, stream, STEP, rows, n_out, CHAIN_OFFSET)
    assert_samples(s, p_ref, u, tol_p, "sample")


def test_layer_forward_bound_can_fail():
    # The field bound is tight enough to see one weight of error (a missed row of M).
    X, M, bias = layer_inputs(33, 257, 65, "binary-gather")
    z, _, _ = R.layer_forward(X, M, bias, 1.0, 0, SEED, 0)
    M2 = M.copy()
    M2[np.argmax(X[0])] = 0.0  # drop one active input of row 0
    f, _, _ = _core.layer_forward(X, M2, bias, 1.0, True, True, False, False, 0, SEED, 0, 0)
    with pytest.raises(AssertionError):
        assert_close(f, z, field_bound(X, M, bias), "field")


@pytest.mark.parametrize("path", PATHS)
def test_layer_forward_output_flags(path):
    # Any subset of outputs: unwanted ones are None, wanted ones equal the full call's.
    X, M, bias = layer_inputs(19, 40, 130, path)
    args = (0, SEED, STEP, CHAIN_OFFSET)
    full = _core.layer_forward(X, M, bias, 1.3, is_binary_flag(path), True, True, True, *args)
    for flags in [(True, False, False), (False, True, False), (False, False, True),
                  (True, False, True), (False, True, True), (False, False, False)]:
        out = _core.layer_forward(X, M, bias, 1.3, is_binary_flag(path), *flags, *args)
        for want, got, ref in zip(flags, out, full):
            if want:
                np.testing.assert_array_equal(got, ref)
            else:
                assert got is None


@pytest.mark.parametrize("path", PATHS)
def test_layer_forward_chain_offset_selects_rows(path):
    # Row r with chain_offset o draws the uniforms of chain o + r: a slice of the batch
    # run with offset o + r0 reproduces rows r0.. of the full run. The gather kernel sums
    # each row on its own, so bit for bit; an sgemm's rounding of a row depends on the
    # block it sits in, so there a sample may flip where u is within rounding of p.
    X, M, bias = layer_inputs(40, 33, 140, path)
    _, _, full = _core.layer_forward(X, M, bias, 1.0, is_binary_flag(path), False, False,
                                     True, 1, SEED, STEP, CHAIN_OFFSET)
    _, _, part = _core.layer_forward(X[13:29].copy(), M, bias, 1.0, is_binary_flag(path),
                                     False, False, True, 1, SEED, STEP, CHAIN_OFFSET + 13)
    if path == "binary-gather":
        np.testing.assert_array_equal(part, full[13:29])
    else:
        assert agreement(part, full[13:29]) >= 0.999
    # and a different offset gives different samples (~half of them differ)
    _, _, other = _core.layer_forward(X[13:29].copy(), M, bias, 1.0, is_binary_flag(path),
                                      False, False, True, 1, SEED, STEP, CHAIN_OFFSET + 14)
    assert agreement(other, full[13:29]) < 0.9


@pytest.mark.parametrize("entry", ["philox_uniforms", "layer_forward", "gibbs"])
def test_chain_index_past_2_32_is_rejected_or_matches_reference(entry):
    # The chain index is one 32-bit counter word. With chain_offset = 2**32 - 1 a second
    # row would be chain 2**32: the kernel must refuse (as it does for step + k) or agree
    # with the reference (silently wrapping to chain 0 would be a bug).
    rows, n, off = 2, 8, 2**32 - 1
    rng = rng_for("wrap", entry)
    W, WT, b, c = rbm_params(rng, n, n)
    X = binary(rng, (rows, n), 0.5)
    try:
        if entry == "philox_uniforms":
            got = _core.philox_uniforms(SEED, 0, STEP, rows, n, off)
            want = R.uniform_grid(SEED, 0, STEP, rows, n, off)
        elif entry == "layer_forward":
            got = _core.layer_forward(X, W, c, 1.0, True, False, False, True, 1, SEED, STEP,
                                      off)[2]
            want = R.layer_forward(X, W, c, 1.0, 1, SEED, STEP, off)[2]
        else:
            got = X.copy()
            _core.gibbs(W, WT, b, c, got, None, 1, 1.0, SEED, STEP, off)
            want = R.gibbs(W, b, c, X, 1, 1.0, SEED, STEP, off)[0]
    except ValueError:
        return
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- gibbs

GIBBS_SHAPES = vary_one((17, 40, 140), SIZES)


def rbm_params(rng, n_v, n_h, scale=None, bias_scale=1.0):
    scale = 2.0 / np.sqrt(max(n_v, n_h)) if scale is None else scale
    W = gaussian(rng, (n_v, n_h), scale)
    return W, np.ascontiguousarray(W.T), gaussian(rng, (n_v,), bias_scale), \
        gaussian(rng, (n_h,), bias_scale)


@pytest.mark.parametrize("states", ["sparse", "dense"])
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("rows,n_v,n_h", GIBBS_SHAPES)
def test_gibbs_matches_reference(rows, n_v, n_h, k, states):
    # sparse: biases -3 keep both layers at ~5-20 % ones (gather kernel); dense: ~50 %
    # ones (GEMM).
    rng = rng_for(rows, n_v, n_h, k, "gibbs", states)
    W, WT, b, c = rbm_params(rng, n_v, n_h)
    if states == "sparse":
        b, c = b - 3.0, c - 3.0
    V0 = binary(rng, (rows, n_v), SPARSE if states == "sparse" else 0.5)
    beta = 0.8
    V = V0.copy()
    H = _core.gibbs(W, WT, b, c, V, None, k, beta, SEED, STEP, CHAIN_OFFSET)
    V_ref, H_ref = R.gibbs(W, b, c, V0, k, beta, SEED, STEP, CHAIN_OFFSET)
    assert H.shape == (rows, n_h) and H.dtype == np.float32
    assert set(np.unique(V).tolist()) <= {0.0, 1.0} and set(np.unique(H).tolist()) <= {0.0, 1.0}
    assert agreement(V, V_ref) >= 0.999
    assert agreement(H, H_ref) >= 0.999
    if k == 1:  # the first hidden sample sees exact inputs: mismatches only by rounding
        z, p_ref, _ = R.layer_forward(V0, W, c, beta, R.STREAM_HIDDEN, SEED, STEP, CHAIN_OFFSET)
        u = R.uniform_grid(SEED, R.STREAM_HIDDEN, STEP, rows, n_h, CHAIN_OFFSET)
        assert_samples(H, p_ref, u, prob_bound(z, field_bound(V0, W, c, beta)), "hidden")


def test_gibbs_chunks_compose():
    # k steps in one call == k1 steps then k - k1 steps from step + k1 (how RBM chunks).
    rng = rng_for("chunks")
    W, WT, b, c = rbm_params(rng, 70, 33)
    V0 = binary(rng, (21, 70), 0.5)
    V1 = V0.copy()
    H1 = _core.gibbs(W, WT, b, c, V1, None, 7, 1.0, SEED, STEP, 3)
    V2 = V0.copy()
    _core.gibbs(W, WT, b, c, V2, None, 3, 1.0, SEED, STEP, 3)
    H2 = _core.gibbs(W, WT, b, c, V2, None, 4, 1.0, SEED, STEP + 3, 3)
    np.testing.assert_array_equal(V1, V2)
    np.testing.assert_array_equal(H1, H2)
    assert not np.array_equal(V1, V0)


# ---------------------------------------------------------------- cd_update

CD_SHAPES = vary_one((20, 33, 40), SHORT)


def cd_setup(n_data, n_v, n_h, data_kind, persistent, key):
    rng = rng_for(n_data, n_v, n_h, data_kind, persistent, key)
    W, WT, b, c = rbm_params(rng, n_v, n_h)
    V0 = binary(rng, (n_data, n_v), DENSE if data_kind == "binary-dense" else SPARSE) \
        if data_kind.startswith("binary") else \
        rng.random((n_data, n_v)).astype(np.float32)
    # PCD with a different number of chains than data rows: the two phases are normalised
    # separately (1/n_data, 1/n_chain).
    chain = binary(rng, (n_data + 5, n_v), 0.5) if persistent else None
    return rng, W, WT, b, c, V0, chain


def zeros_like_params(W, b, c):
    return np.zeros_like(W), np.zeros_like(b), np.zeros_like(c)


def kernel_cd_chain(W, WT, b, c, V0, v0_binary, k, seed, step):
    """The CD-k chain as the spec defines it, composed of kernel calls: h ~ p(h|v0) at
    `step`, v ~ p(v|h) at `step`, then k - 1 Gibbs steps from step + 1."""
    _, _, H = _core.layer_forward(V0, W, c, 1.0, v0_binary, False, False, True,
                                  R.STREAM_HIDDEN, seed, step, 0)
    _, _, V = _core.layer_forward(H, WT, b, 1.0, True, False, False, True, R.STREAM_VISIBLE,
                                  seed, step, 0)
    if k > 1:
        _core.gibbs(W, WT, b, c, V, None, k - 1, 1.0, seed, step + 1, 0)
    return V


def cd_gradient_bounds(W, b, c, V0, chain_ref, n_mismatched_rows):
    """Bounds on |kernel - reference| for (dW, db, dc) of one CD/PCD gradient.

    dW = (1/nd) V0^T p(h|V0) - (1/nc) Vk^T p(h|Vk). Each phase is a float32 sum over its
    rows (gather sums, or sgemm with alpha = 1/nd), error <= (rows + 2) EPS sum|v p| / rows,
    plus the propagated probability errors sum|v| dp / rows; then one subtraction. The bias
    gradients are float64 sums of the same probabilities, cast to float32. A chain row
    that differs from the reference (Philox rounding flip) moves every entry by <= 1/nc:
    its contribution v p^T lies in [0, 1].
    """
    def phase(V):
        V = np.asarray(V, np.float64)
        z = V @ W.astype(np.float64) + c
        p = R.sigmoid(z)
        dp = prob_bound(z, field_bound(V, W, c))
        n = V.shape[0]
        stat = np.abs(V).T @ p / n
        tol_W = ((n + 2) * EPS * stat + np.abs(V).T @ dp / n)
        return stat, tol_W, dp.mean(axis=0)

    pos, tolW_pos, dc_pos = phase(V0)
    neg, tolW_neg, dc_neg = phase(chain_ref)
    shift = n_mismatched_rows / chain_ref.shape[0]
    tol_W = tolW_pos + tolW_neg + EPS * (pos + neg) + shift
    tol_b = 2 * EPS + shift
    tol_c = dc_pos + dc_neg + 4 * EPS + shift
    return tol_W, tol_b, tol_c


def recon_bound(W, b, c, V0):
    """The mean-field reconstruction sum (V0 - sigmoid(p(h|V0) W^T + b))^2 / nd: the
    kernel's p(h|V0) carries dp, which moves the visible field by sum_j |W_ij| dp_j, plus
    that layer's own float32 field bound; the squared error moves by 2|d| dpv + dpv^2."""
    V0 = np.asarray(V0, np.float64)
    z_h = V0 @ W + c
    ph = R.sigmoid(z_h)
    dph = prob_bound(z_h, field_bound(V0, W, c))
    z_v = ph @ W.T.astype(np.float64) + b
    dz_v = field_bound(ph, W.T, b) + dph @ np.abs(W.T.astype(np.float64))
    dpv = prob_bound(z_v, dz_v)
    d = np.abs(V0 - R.sigmoid(z_v))
    return float(np.sum(2 * d * dpv + dpv**2) / V0.shape[0] + 1e-12)


@pytest.mark.parametrize("data_kind", ["binary", "binary-dense", "real"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
@pytest.mark.parametrize("n_data,n_v,n_h", CD_SHAPES)
def test_cd_gradient_matches_reference(n_data, n_v, n_h, persistent, k, data_kind):
    _, W, WT, b, c, V0, chain = cd_setup(n_data, n_v, n_h, data_kind, persistent, "grad")
    W0, b0, c0 = W.copy(), b.copy(), c.copy()
    vW, vb, vc = zeros_like_params(W, b, c)
    chain_k = None if chain is None else chain.copy()
    grads, recon, *_ = _core.cd_update(W, WT, b, c, vW, vb, vc, V0, data_kind != "real", chain_k,
                                   k, 0.1, 0.5, 0.01, SEED, STEP, True, True)
    dW, db, dc = grads
    ref = R.cd_gradient(W, b, c, V0, k, SEED, STEP, chain)

    # gradient_only leaves the parameters and velocities alone
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(c, c0)
    assert not (vW.any() or vb.any() or vc.any())

    # the negative-phase chain: in place for PCD, composed from kernels for CD
    if not persistent:
        chain_k = kernel_cd_chain(W, WT, b, c, V0, data_kind != "real", k, SEED, STEP)
    assert agreement(chain_k, ref.chain) >= 0.999
    n_bad_rows = int(np.any(chain_k != ref.chain, axis=1).sum())

    tol_W, tol_b, tol_c = cd_gradient_bounds(W, b, c, V0, ref.chain, n_bad_rows)
    assert dW.shape == (n_v, n_h) and db.shape == (n_v,) and dc.shape == (n_h,)
    assert_close(dW, ref.dW, tol_W, "dW")
    assert_close(db, ref.db, tol_b, "db")
    assert_close(dc, ref.dc, tol_c, "dc")
    # the derived worst case, and rtol 1e-5: rounding errors add like a random walk,
    # ~sqrt(n) u ~ 1e-6 relative at these sizes (observed <= 2.2e-7)
    assert abs(recon - ref.recon) <= recon_bound(W, b, c, V0)
    assert abs(recon - ref.recon) <= 1e-5 * ref.recon


def test_cd_gradient_bound_can_fail():
    # Half a data row's worth of error in dW (what a dropped or doubled row gives) is far
    # outside the bound.
    _, W, WT, b, c, V0, _ = cd_setup(64, 33, 40, "binary", False, "power")
    ref = R.cd_gradient(W, b, c, V0, 1, SEED, STEP)
    tol_W, _, _ = cd_gradient_bounds(W, b, c, V0, ref.chain, 0)
    assert np.all(tol_W < 0.5 / V0.shape[0])


def test_cd_recon_disabled_is_nan():
    _, W, WT, b, c, V0, _ = cd_setup(9, 7, 5, "binary", False, "nan")
    _, recon, *_ = _core.cd_update(W, WT, b, c, *zeros_like_params(W, b, c), V0, True, None, 1,
                               0.1, 0.0, 0.0, SEED, STEP, True, False)
    assert np.isnan(recon)


@pytest.mark.parametrize("k", [1, 3])
def test_cd_equals_pcd_started_at_the_data(k):
    # Spec identity: CD-k on binary data is PCD-k whose chains start at that data (same
    # hidden uniforms at `step`, same visible ones, same later steps): the chains agree bit
    # for bit; the gradients to float32 rounding (CD sums ph0 - phk once over the rows where
    # data and chain are both one, PCD sums ph0 and phk separately: the order differs).
    _, W, WT, b, c, V0, _ = cd_setup(40, 65, 33, "binary", False, f"cd=pcd{k}")
    vel = zeros_like_params(W, b, c)
    g_cd, r_cd, *_ = _core.cd_update(W, WT, b, c, *vel, V0, True, None, k, 0.1, 0.0, 0.0, SEED,
                                 STEP, True, True)
    chain = V0.copy()
    g_pcd, r_pcd, *_ = _core.cd_update(W, WT, b, c, *vel, V0, True, chain, k, 0.1, 0.0, 0.0, SEED,
                                   STEP, True, True)
    for a, bb in zip(g_cd, g_pcd):
        # each entry: two sums of <= 40 terms in [0, 1], divided by 40 -> |error| < 2 * 40 eps
        np.testing.assert_allclose(a, bb, rtol=0, atol=2 * 40 * np.finfo(np.float32).eps)
    assert np.array_equal(g_cd[1], g_pcd[1])   # db is a difference of exact counts
    assert r_cd == r_pcd
    np.testing.assert_array_equal(chain, kernel_cd_chain(W, WT, b, c, V0, True, k, SEED, STEP))


@pytest.mark.parametrize("data_kind", ["binary", "binary-dense", "real"])
@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
@pytest.mark.parametrize("n_data,n_v,n_h", [(1, 1, 1), (20, 33, 40), (33, 257, 65),
                                            (257, 64, 257)])
def test_cd_update_path(n_data, n_v, n_h, persistent, data_kind):
    rng, W, WT, b, c, V0, chain = cd_setup(n_data, n_v, n_h, data_kind, persistent, "update")
    vW, vb, vc = gaussian(rng, (n_v, n_h), 0.01), gaussian(rng, (n_v,), 0.01), \
        gaussian(rng, (n_h,), 0.01)
    lr, mom, wd, k = 0.1, 0.6, 0.02, 2
    P = [a.copy() for a in (W, WT, b, c, vW, vb, vc)]
    chain_u = None if chain is None else chain.copy()
    out, _, *_ = _core.cd_update(*P, V0, data_kind != "real", chain_u, k, lr, mom, wd, SEED, STEP,
                             False, False)
    assert out is None
    W1, WT1, b1, c1, vW1, vb1, vc1 = P
    np.testing.assert_array_equal(WT1, W1.T)  # the cached transpose, exactly

    # 1) against the reference gradient pushed through reference.momentum_update
    ref = R.cd_gradient(W, b, c, V0, k, SEED, STEP, chain)
    chain_k = chain_u if persistent else \
        kernel_cd_chain(W, WT, b, c, V0, data_kind != "real", k, SEED, STEP)
    assert agreement(chain_k, ref.chain) >= 0.999
    tol_g = cd_gradient_bounds(W, b, c, V0, ref.chain,
                               int(np.any(chain_k != ref.chain, axis=1).sum()))
    for name, (p0, v0, g, tg, p1, v1, decay) in {
            "W": (W, vW, ref.dW, tol_g[0], W1, vW1, wd),
            "b": (b, vb, ref.db, tol_g[1], b1, vb1, 0.0),
            "c": (c, vc, ref.dc, tol_g[2], c1, vc1, 0.0)}.items():
        p_ref, v_ref = R.momentum_update(p0, v0, g, lr, mom, decay)
        # float32 update: ~4 roundings on the velocity terms, one on the parameter add
        arith = 4 * EPS * (np.abs(mom * v0) + lr * np.abs(g) + lr * decay * np.abs(p0)
                           + np.abs(v_ref)) + EPS * np.abs(p_ref)
        assert_close(v1, v_ref, lr * tg + arith, f"velocity {name}")
        assert_close(p1, p_ref, lr * tg + arith + EPS * np.abs(v_ref), name)

    # 2) against the kernel's own gradient (same step): only the update arithmetic differs
    g_k, _, *_ = _core.cd_update(W, WT, b, c, vW, vb, vc, V0, data_kind != "real",
                             None if chain is None else chain.copy(), k, lr, mom, wd, SEED,
                             STEP, True, False)
    for p0, v0, g, p1, v1, decay in [(W, vW, g_k[0], W1, vW1, wd), (b, vb, g_k[1], b1, vb1, 0.0),
                                     (c, vc, g_k[2], c1, vc1, 0.0)]:
        p_ref, v_ref = R.momentum_update(p0, v0, g, lr, mom, decay)
        arith = 4 * EPS * (np.abs(mom * v0) + lr * np.abs(g) + lr * decay * np.abs(p0)
                           + np.abs(v_ref)) + EPS * np.abs(p_ref)
        assert_close(v1, v_ref, arith + TINY, "velocity (own gradient)")
        assert_close(p1, p_ref, arith + EPS * np.abs(v_ref) + TINY, "param (own gradient)")


# ---------------------------------------------------------------- thread-count independence


@pytest.fixture
def restore_threads():
    n = ebmfast.get_num_threads()
    yield
    ebmfast.set_num_threads(n)


def thread_case(name):
    """Every output of one kernel call on fresh inputs. "sparse": binary data and a model
    whose states stay at ~5-20 % ones (biases -3), so every product is a gather; "dense":
    binary data at 70 % ones and a model at ~50 % (GEMM for both); "real": real-valued
    data (GEMM)."""
    kind, _, data = name.partition(":")
    rng = rng_for("threads", data)
    n_v, n_h, rows = 257, 300, 300
    W, WT, b, c = rbm_params(rng, n_v, n_h)
    if data == "sparse":
        b, c = b - 3.0, c - 3.0
    X = {"sparse": binary(rng, (rows, n_v), SPARSE), "dense": binary(rng, (rows, n_v), DENSE),
         "real": rng.random((rows, n_v)).astype(np.float32)}[data]
    is_bin = data != "real"
    chain = binary(rng, (200, n_v), SPARSE if data == "sparse" else 0.5)
    vel = [gaussian(rng, W.shape, 0.01), gaussian(rng, b.shape, 0.01),
           gaussian(rng, c.shape, 0.01)]
    if kind == "layer_forward":
        return list(_core.layer_forward(X, W, c, 0.9, is_bin, True, True, True, 1, SEED, STEP, 7))
    if kind == "gibbs":
        V = chain.copy()
        return [_core.gibbs(W, WT, b, c, V, None, 3, 1.0, SEED, STEP, 0), V]
    if kind in ("cd", "pcd", "cd-recon", "cd-update", "pcd-update"):
        ch = chain.copy() if kind.startswith("pcd") else None
        update = kind.endswith("update")
        P = [a.copy() for a in (W, WT, b, c)] + (vel if update else
                                                 list(zeros_like_params(W, b, c)))
        g, r, *_ = _core.cd_update(*P, X, is_bin, ch, 2, 0.1, 0.5, 0.01, SEED, STEP, not update,
                               kind == "cd-recon")
        return (P if update else list(g)) + ([np.float64(r)] if kind == "cd-recon" else []) + \
            ([] if ch is None else [ch])
    if kind == "free_energy":
        return [_core.free_energy(W, WT, b, c, X, is_bin)]
    if kind == "pll":
        return [_core.pseudo_log_likelihood(W, WT, b, c, X, is_bin)]
    raise AssertionError(name)


# Every path (gather, and GEMM in fixed row blocks) must give bit-identical results with
# 1 and 2 threads (DESIGN.md §3).
THREAD_CASES = [
    "layer_forward:sparse",
    "layer_forward:dense",
    "layer_forward:real",
    "gibbs:sparse",
    # samples only: a GEMM rounding difference flips a sample only where u is within
    # ~1e-7 of p, so this is expected (not guaranteed) to pass at these seeds
    "gibbs:dense",
    "cd:sparse", "pcd:sparse", "cd-update:sparse", "pcd-update:sparse",
    "cd:dense",
    "pcd:real",
    "cd-update:real",
    # the reconstruction error runs p(h|v0) (real-valued) through the GEMM path
    "cd-recon:sparse",
    "free_energy:sparse",
    "free_energy:real",
    "pll:sparse",
]


@pytest.mark.parametrize("name", THREAD_CASES)
def test_results_independent_of_thread_count(name, restore_threads):
    ebmfast.set_num_threads(1)
    one = thread_case(name)
    ebmfast.set_num_threads(2)
    assert ebmfast.get_num_threads() == 2
    two = thread_case(name)
    assert len(one) == len(two)
    for i, (a, b) in enumerate(zip(one, two)):
        assert np.array_equal(a, b), f"output {i} of {name} differs between 1 and 2 threads"


# ---------------------------------------------------------------- exact distribution


def conditional_table(W, b, c):
    """Exact block-Gibbs transition matrix on visible states, T[v, v'] = sum_h p(h|v)
    p(v'|h), states in the order of reference.all_states."""
    Sv, Sh = R.all_states(W.shape[0]), R.all_states(W.shape[1])

    def cond(S_in, M, bias, S_out):  # [in, out] = prod_j p(s_out_j | s_in)
        p = R.sigmoid(S_in @ M + bias)
        return np.prod(np.where(S_out[None] == 1, p[:, None, :], 1 - p[:, None, :]), axis=2)

    return cond(Sv, W, c, Sh) @ cond(Sh, W.T, b, Sv)


def merged_chisquare(counts, expected):
    """scipy.stats.chisquare after pooling the cells with expected count < 5 (and the
    next smallest ones until the pool reaches 5)."""
    order = np.argsort(expected)
    n_small = int(np.sum(expected < 5))
    n_pool = max(n_small, int(np.searchsorted(np.cumsum(expected[order]), 5.0)) + 1) \
        if n_small else 0
    pool, keep = order[:n_pool], order[n_pool:]
    obs = np.append(counts[keep], counts[pool].sum()) if n_pool else counts[keep]
    exp = np.append(expected[keep], expected[pool].sum()) if n_pool else expected[keep]
    return stats.chisquare(obs, exp)


def check_gibbs_exact_distribution(run_chains, beta):
    """6 visible x 4 hidden, 200,000 independent chains (chain index = row, so the draws
    are exactly independent) run N_BURN steps from a uniform start; each chain's final
    state is one sample. p ∝ exp(-beta E): the kernel scales v.W, the caller the biases.
    ``run_chains(W, bb, cb, V, n_steps, beta)`` returns the final states (host array)."""
    rng = np.random.default_rng(20240611)
    n_v, n_h, N, N_BURN = 6, 4, 200_000, 32
    W = gaussian(rng, (n_v, n_h), 1.0)
    b, c = gaussian(rng, (n_v,), 0.5), gaussian(rng, (n_h,), 0.5)
    bb, cb = (beta * b).astype(np.float32), (beta * c).astype(np.float32)
    p = R.visible_distribution(beta * W.astype(np.float64), bb, cb)

    # Burn-in is sufficient: the exact distribution after N_BURN steps from the uniform
    # start is within 1e-9 TV of p, far below the chi-square's resolution ~1/sqrt(N).
    T = conditional_table(beta * W.astype(np.float64), bb, cb)
    p_t = np.full(2**n_v, 2.0**-n_v) @ np.linalg.matrix_power(T, N_BURN)
    assert 0.5 * np.abs(p_t - p).sum() < 1e-9

    V = run_chains(W, bb, cb, binary(rng, (N, n_v), 0.5), N_BURN, beta)
    idx = (V.astype(np.int64) << np.arange(n_v)).sum(axis=1)  # state = sum_i v_i 2^i
    counts = np.bincount(idx, minlength=2**n_v)
    # False-failure rate 1e-4: the chi-square statistic of exactly iid multinomial counts
    # (burn-in bias < 1e-9 TV) with all expected counts >= 5 is chi2(dof) to O(1/N).
    assert merged_chisquare(counts, N * p).pvalue > 1e-4
    # Power: the same samples against a model with W + 0.3 must be rejected.
    q = R.visible_distribution(beta * (W.astype(np.float64) + 0.3), bb, cb)
    assert merged_chisquare(counts, N * q).pvalue < 1e-4


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gibbs_samples_exact_distribution(beta):
    def run(W, bb, cb, V, n_steps, beta):
        _core.gibbs(W, np.ascontiguousarray(W.T), bb, cb, V, None, n_steps, beta, SEED, 0, 0)
        return V
    check_gibbs_exact_distribution(run, beta)


# ---------------------------------------------------------------- CD-k vs exact gradient


def cd_statistics(V, W, c):
    """Per-row sufficient statistics (v p(h|v)^T, v, p(h|v)), flattened: [rows, 23]."""
    V = np.asarray(V, np.float64)
    ph = R.sigmoid(V @ W + c)
    return np.concatenate([(V[:, :, None] * ph[:, None, :]).reshape(len(V), -1), V, ph], axis=1)


def test_cd_k_approaches_exact_gradient():
    # 5 visible x 3 hidden, 4 data rows tiled 2,500x: 10,000 independent chains (one per
    # row). The kernel's gradient is the mean over the copies; PCD started at the data is
    # CD (test_cd_equals_pcd_started_at_the_data), which hands us the chains, so each
    # copy's negative statistics give the standard error. The positive phase is exact.
    rng = np.random.default_rng(7)
    n_v, n_h, reps = 5, 3, 2_500
    W = gaussian(rng, (n_v, n_h), 1.0)
    b, c = gaussian(rng, (n_v,), 0.5), gaussian(rng, (n_h,), 0.5)
    data = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 1, 0], [1, 0, 1, 0, 1], [0, 0, 0, 1, 1]],
                    np.float32)
    V0 = np.tile(data, (reps, 1))
    W64 = W.astype(np.float64)
    exact = np.concatenate([g.ravel() for g in R.exact_log_likelihood_gradient(W64, b, c, data)])
    T = conditional_table(W64, b, c)
    S = R.all_states(n_v)
    stat_states = cd_statistics(S, W64, c)
    positive = cd_statistics(data, W64, c).mean(axis=0)
    d_index = (data.astype(np.int64) << np.arange(n_v)).sum(axis=1)

    def exact_cd(k):  # exact CD-k expectation: v_k ~ delta_{v0} T^k
        Tk = np.linalg.matrix_power(T, k)
        return positive - (Tk[d_index] @ stat_states).mean(axis=0)

    def kernel_cd(k, step):
        chain = V0.copy()
        g, _, *_ = _core.cd_update(W, np.ascontiguousarray(W.T), b, c,
                               *zeros_like_params(W, b, c), V0, True, chain, k, 0.1, 0.0, 0.0,
                               SEED, step, True, False)
        mean = np.concatenate([a.ravel() for a in g]).astype(np.float64)
        per_row = cd_statistics(chain, W64, c)
        # rows of different data points are not identically distributed: pool the
        # within-group variances
        groups = per_row.reshape(reps, len(data), -1)
        se = np.sqrt(groups.var(axis=0, ddof=1).sum(axis=0) / (reps * len(data)) ** 2 * reps)
        # the kernel's mean is these chains' mean, up to its float32 sums over 10^4 rows
        # (cd_gradient_bounds: (nd + nc + 4) EPS and the probability errors)
        tol = np.concatenate([t.ravel() if np.ndim(t) else np.full(n, t) for t, n in zip(
            cd_gradient_bounds(W, b, c, V0, chain, 0), (n_v * n_h, n_v, n_h))])
        assert_close(mean, positive - per_row.mean(axis=0), tol, "CD mean")
        return mean, se, tol

    # 23 coordinates at 5 standard errors: false-failure rate <= 23 * 5.7e-7 = 1.3e-5 per
    # assertion (normal approximation of a mean of 10^4 bounded iid terms).
    # The kernel's float32 error (tol, worst case ~2e-3, observed ~1e-7) is added.
    mean, se, tol = kernel_cd(200, STEP)
    assert np.all(np.abs(exact_cd(200) - exact) < 1e-3 * se)  # CD-200 is unbiased here
    assert np.all(np.abs(mean - exact) < 5 * se + tol)

    # CD-1 from data the model does not fit is biased: the kernel matches the exact CD-1
    # expectation, and that differs from the true gradient by many standard errors.
    mean1, se1, tol1 = kernel_cd(1, STEP + 1000)
    assert np.all(np.abs(mean1 - exact_cd(1)) < 5 * se1 + tol1)
    assert np.max(np.abs(exact_cd(1) - exact) / se1) > 10
    assert np.max((np.abs(mean1 - exact) - tol1) / se1) > 5


# ---------------------------------------------------------------- free energy, PLL

SCORE_SHAPES = [(9, n_v, n_h) for n_v in (1, 7, 33, 257) for n_h in (1, 7, 33, 257)] + \
    [(1, 33, 65), (257, 65, 33)]




def tile_sum(n_h):
    """Relative error of the score kernels' float32 partial sums of softplus terms over
    tiles of kTile = 128 hidden units (then float64): gamma_m < (m + 1) u, m = min(n_h, 128),
    taken as (m + 2) EPS."""
    return (min(n_h, 128) + 2) * EPS


def softplus_bound(z, dz):
    """|softplus_f(z + dz') - softplus(z)|, |dz'| <= dz: sigmoid(z) e^dz dz plus the
    function's relative error (exp_f, log1p_f, one add: < 4 EPS, taken as 8 EPS)."""
    return np.minimum(1.0, R.sigmoid(z) * np.exp(dz)) * dz + 8 * EPS * R.softplus(z) + TINY


def free_energy_bound(W, b, c, V):
    """F = -b.v - sum_j softplus(z_j): the field bound through softplus, then the float32
    sums over tiles of 128 hidden units (tile_sum), b.v in float64."""
    V64 = np.asarray(V, np.float64)
    z = V64 @ W + c
    sp = R.softplus(z)
    return softplus_bound(z, field_bound(V, W, c)).sum(axis=1) \
        + tile_sum(W.shape[1]) * sp.sum(axis=1) \
        + 1e-14 * (np.abs(V64) @ np.abs(b) + sp.sum(axis=1))


def pll_bound(W, b, c, V):
    """sum_i log sigmoid(dF_i), dF_i = -b_i s_i - sum_j [softplus(x_j + s_i W_ij) -
    softplus(x_j)], x the hidden field, s_i = 1 - 2 v_i. The field error dx_j enters both
    terms: to first order through sigmoid(x_j + s W_ij) - sigmoid(x_j), second order
    dx^2 / 4; x + s W rounds once; each sum is float32 over tiles (tile_sum). The
    log-sigmoid's derivative is <= 1."""
    V = np.asarray(V, np.float64)
    W = np.asarray(W, np.float64)
    x = V @ W + c
    dx = field_bound(V, W, c)
    s = 1 - 2 * V
    y = x[:, None, :] + s[:, :, None] * W[None]                 # [rows, n_v, n_h]
    first = np.abs(R.sigmoid(y) - R.sigmoid(x)[:, None, :]) * dx[:, None, :]
    own = softplus_bound(y, EPS * np.abs(y)) + 8 * EPS * R.softplus(x)[:, None, :]
    tiles = tile_sum(W.shape[1]) * (R.softplus(y) + R.softplus(x)[:, None, :])
    per_flip = (first + dx[:, None, :] ** 2 / 4 + own + tiles).sum(axis=2)
    return per_flip.sum(axis=1) + 1e-14 * np.abs(R.pseudo_log_likelihood(W, b, c, V)) + 1e-300


@pytest.mark.parametrize("weight_scale", ["unit", "large"])
@pytest.mark.parametrize("rows,n_v,n_h", SCORE_SHAPES)
def test_free_energy_and_pll_match_reference(rows, n_v, n_h, weight_scale):
    rng = rng_for(rows, n_v, n_h, weight_scale, "score")
    if weight_scale == "large":  # fields of order 10 sqrt(n_v): softplus far in its tails
        W, WT, b, c = rbm_params(rng, n_v, n_h, scale=10.0, bias_scale=10.0)
    else:
        W, WT, b, c = rbm_params(rng, n_v, n_h)
    Vb = binary(rng, (rows, n_v), 0.5)
    Vr = rng.random((rows, n_v)).astype(np.float32)
    for V, flag in [(Vb, True), (Vb, False), (Vr, False)]:
        F = _core.free_energy(W, WT, b, c, V, flag)
        assert F.dtype == np.float64 and F.shape == (rows,) and np.all(np.isfinite(F))
        assert_close(F, R.free_energy(W, b, c, V), free_energy_bound(W, b, c, V),
                     f"free energy (binary={flag})")
    pll = _core.pseudo_log_likelihood(W, WT, b, c, Vb, True)
    assert pll.dtype == np.float64 and pll.shape == (rows,) and np.all(np.isfinite(pll))
    assert np.all(pll <= 0)
    assert_close(pll, R.pseudo_log_likelihood(W, b, c, Vb), pll_bound(W, b, c, Vb), "PLL")


def test_score_bounds_can_fail():
    # The bounds resolve a bias off by 0.5 in one unit (F moves by 0.5 in every row with
    # v_0 = 1; each PLL by ~0.5 sigma(-dF_0) summed with the flips it shifts).
    rng = rng_for("score-power")
    W, WT, b, c = rbm_params(rng, 33, 65)
    V = binary(rng, (9, 33), 0.5)
    V[:, 0] = 1.0
    b2 = b.copy()
    b2[0] += 0.5
    with pytest.raises(AssertionError):
        assert_close(_core.free_energy(W, WT, b2, c, V, True), R.free_energy(W, b, c, V),
                     free_energy_bound(W, b, c, V), "F")
    with pytest.raises(AssertionError):
        assert_close(_core.pseudo_log_likelihood(W, WT, b2, c, V, True),
                     R.pseudo_log_likelihood(W, b, c, V), pll_bound(W, b, c, V), "PLL")


@pytest.mark.parametrize("persistent", [False, True])
def test_cd_update_into_spare_buffers_equals_in_place(persistent):
    # The RBM writes an update into spare buffers when it cannot rule out overflow; that
    # path must give bit-identical parameters, and leave the inputs untouched.
    rng = np.random.default_rng(5)
    n_v, n_h, n = 33, 17, 21
    W = gaussian(rng, (n_v, n_h), 0.3)
    WT = np.ascontiguousarray(W.T)
    b, c = gaussian(rng, (n_v,), 0.2), gaussian(rng, (n_h,), 0.2)
    vW, vb, vc = gaussian(rng, (n_v, n_h), 0.01), gaussian(rng, (n_v,), 0.01), \
        gaussian(rng, (n_h,), 0.01)
    V0 = (rng.random((n, n_v)) < 0.3).astype(np.float32)
    chain = (rng.random((9, n_v)) < 0.5).astype(np.float32) if persistent else None
    inputs = [a.copy() for a in (W, WT, b, c, vW, vb, vc)]
    spare = tuple(np.full_like(a, np.nan) for a in inputs)
    ch1 = None if chain is None else chain.copy()
    _, _, finite, max_p, max_v = _core.cd_update(*inputs, V0, True, ch1, 2, 0.1, 0.5, 0.01,
                                                 SEED, STEP, False, False, spare)
    assert finite
    for a, orig in zip(inputs, (W, WT, b, c, vW, vb, vc)):
        assert np.array_equal(a, orig)          # inputs untouched
    in_place = [a.copy() for a in (W, WT, b, c, vW, vb, vc)]
    ch2 = None if chain is None else chain.copy()
    _core.cd_update(*in_place, V0, True, ch2, 2, 0.1, 0.5, 0.01, SEED, STEP, False, False)
    for a, bb in zip(spare, in_place):
        assert np.array_equal(a, bb)
    assert max_p == max(np.abs(x).max() for x in in_place[:4])
    assert max_v == max(np.abs(x).max() for x in in_place[4:])


@pytest.mark.parametrize("rows,n_v,n_h,k", [(300, 64, 31, 2), (40, 257, 129, 13), (7, 33, 17, 3)])
def test_long_gibbs_runs_with_prebuilt_tables_match_reference(rows, n_v, n_h, k):
    # k x rows >= 512 makes gibbs_chains build both subset tables once for all k steps
    # (the first two cases); the third stays below and decides per layer.
    rng = np.random.default_rng(11)
    W = gaussian(rng, (n_v, n_h), 0.4)
    WT = np.ascontiguousarray(W.T)
    b, c = gaussian(rng, (n_v,), 0.3), gaussian(rng, (n_h,), 0.3)
    V = (rng.random((rows, n_v)) < 0.4).astype(np.float32)
    got = V.copy()
    _core.gibbs(W, WT, b, c, V, got, k, 0.9, SEED, STEP, 2)
    want, _ = R.gibbs(W, b, c, V, k, 0.9, SEED, STEP, 2)
    assert agreement(got, want) >= 0.999


@pytest.mark.parametrize("rows,n_v,n_h", [(7, 33, 17), (300, 64, 31), (40, 257, 129)])
def test_gibbs_with_handed_in_tables_matches_reference(rows, n_v, n_h):
    # Tables handed in (as the RBM keeps them between calls) give the reference's chains.
    # The subset table's row 16 g + s is the sum of the rows 4g + b of W over the bits b of
    # s; after its 16 G rows (G groups), the signed table's row 8 g + c (c < 8) is
    # 1/2 sum_b (+1 if bit b of c else -1) W[4g + b], then C = 1/2 sum_i W[i], then zeros.
    rng = np.random.default_rng(12)
    W = gaussian(rng, (n_v, n_h), 0.4)
    WT = np.ascontiguousarray(W.T)
    b, c = gaussian(rng, (n_v,), 0.3), gaussian(rng, (n_h,), 0.3)
    V = (rng.random((rows, n_v)) < 0.4).astype(np.float32)
    T_vh, T_hv = _core.subset_table(W), _core.subset_table(WT)
    G = (n_v + 3) // 4
    pad = max(1, -(-15 // n_h))  # zero rows: >= 15 floats after C
    assert T_vh.shape == (16 * G + 8 * G + 1 + pad, n_h)
    eps = np.finfo(np.float32).eps
    g = 5
    for s_ in (1, 6, 15):
        picked = [4 * g + bit for bit in range(4) if s_ >> bit & 1 and 4 * g + bit < n_v]
        bound = 4 * eps * np.abs(W[picked]).sum(axis=0).max()
        np.testing.assert_allclose(T_vh[16 * g + s_], W[picked].sum(axis=0), rtol=0, atol=bound)
    Wp = np.zeros((4 * G, n_h))
    Wp[:n_v] = W
    for g in (0, 5, G - 1):
        rows4 = Wp[4 * g:4 * g + 4]
        for c_ in range(8):
            sign = np.array([1.0 if c_ >> bit & 1 else -1.0 for bit in range(4)])
            bound = 4 * eps * np.abs(rows4).sum(axis=0).max()
            np.testing.assert_allclose(T_vh[16 * G + 8 * g + c_], 0.5 * sign @ rows4, rtol=0, atol=bound)
    np.testing.assert_allclose(T_vh[24 * G], 0.5 * W.sum(axis=0), rtol=0,
                               atol=n_v * eps * np.abs(W).sum(axis=0).max())
    assert not T_vh[24 * G + 1:].any()
    got = V.copy()
    _core.gibbs(W, WT, b, c, V, got, 3, 0.9, SEED, STEP, 2, (T_vh, T_hv))
    want, _ = R.gibbs(W, b, c, V, 3, 0.9, SEED, STEP, 2)
    assert agreement(got, want) >= 0.999
    with pytest.raises(ValueError, match="tables"):
        _core.gibbs(W, WT, b, c, V, got, 1, 1.0, SEED, STEP, 0, (T_hv, T_vh))
