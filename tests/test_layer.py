"""The shared layer update "layer l from its neighbours" (`_core.layer_update`): z = beta *
(X.M + X2.M2) + bias, then sigmoid and Philox Bernoulli samples, against
`reference.layer_update` on the same stream; one neighbour is exactly `layer_forward`.
The DBM's Gibbs sweeps and mean field, the DBN's passes and the RBM run on it."""
from __future__ import annotations

import numpy as np
import pytest

import ebmfast
from ebmfast import _core, reference as R
from test_kernels import (DENSE, SEED, SPARSE, STEP, CHAIN_OFFSET, SIZES, assert_close,
                          assert_samples, binary, field_bound, gaussian, prob_bound, rng_for,
                          vary_one)

# (rows, n_in below, n_in above, n_out) moving one at a time over the kernel boundaries
SHAPES = vary_one((17, 45, 30, 140), [1, 3, 7, 31, 32, 33, 129, 255, 256, 257]) + [(1, 1, 1, 1)]
# how the two inputs are formed: both sparse binary (gather), both dense binary (subset
# tables), one of each (each input picks its own way), real-valued (sgemm), binary below
# with real-valued above (mean field with the data clamped: sgemm for both)
PATHS = ["gather", "table", "mixed", "real", "binary+real"]


def inputs(rows, n1, n2, n_out, path):
    rng = rng_for("layer_update", rows, n1, n2, n_out, path)
    dens = {"gather": (SPARSE, SPARSE), "table": (DENSE, DENSE), "mixed": (SPARSE, DENSE)}
    if path in dens:
        X = binary(rng, (rows, n1), dens[path][0])
        X2 = binary(rng, (rows, n2), dens[path][1])
        flags = (True, True)
    elif path == "real":
        X = rng.random((rows, n1)).astype(np.float32)
        X2 = rng.random((rows, n2)).astype(np.float32)
        flags = (False, False)
    else:
        X = binary(rng, (rows, n1), SPARSE)
        X2 = rng.random((rows, n2)).astype(np.float32)
        flags = (True, False)
    scale = 3.0 / np.sqrt(n1 + n2)
    M = gaussian(rng, (n1, n_out), scale)
    M2 = gaussian(rng, (n2, n_out), scale)
    bias = gaussian(rng, (n_out,), 1.0)
    return X, M, X2, M2, bias, flags


def run(X, M, X2, M2, bias, flags, beta=0.8, stream=R.STREAM_LAYER + 1, **kw):
    return _core.layer_update(X, M, bias, beta, flags[0], X2, M2, flags[1], want_field=True,
                              want_prob=True, want_sample=True, stream=stream, seed=SEED,
                              step=STEP, chain_offset=CHAIN_OFFSET, **kw)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("rows,n1,n2,n_out", SHAPES)
def test_two_neighbours_match_reference(rows, n1, n2, n_out, path):
    X, M, X2, M2, bias, flags = inputs(rows, n1, n2, n_out, path)
    beta, stream = 0.8, R.STREAM_LAYER + 1
    f, p, s = run(X, M, X2, M2, bias, flags, beta, stream)
    z, p_ref, _ = R.layer_update([(X, M), (X2, M2)], bias, beta, stream, SEED, STEP, CHAIN_OFFSET)
    for a in (f, p, s):
        assert a.dtype == np.float32 and a.shape == (rows, n_out)
    # the two products are one sum over n1 + n2 terms
    dz = field_bound(np.hstack([X, X2]), np.vstack([M, M2]), bias, beta)
    tol_p = prob_bound(z, dz)
    assert_close(f, z, dz, "field")
    assert_close(p, p_ref, tol_p, "prob")
    u = R.uniform_grid(SEED, stream, STEP, rows, n_out, CHAIN_OFFSET)
    assert_samples(s, p_ref, u, tol_p, "sample")


def test_second_neighbour_is_not_ignored():
    # The check above can fail: the same call without the second input is far outside it.
    X, M, X2, M2, bias, flags = inputs(64, 45, 30, 140, "gather")
    f_one, _, _ = _core.layer_update(X, M, bias, 0.8, True, want_field=True)
    z, _, _ = R.layer_update([(X, M), (X2, M2)], bias, 0.8, 0, SEED, STEP)
    dz = field_bound(np.hstack([X, X2]), np.vstack([M, M2]), bias, 0.8)
    with pytest.raises(AssertionError):
        assert_close(f_one, z, dz, "field")


@pytest.mark.parametrize("path", ["binary-gather", "binary-table", "real"])
def test_one_neighbour_is_layer_forward(path):
    rng = rng_for("one neighbour", path)
    X = binary(rng, (300, 257), DENSE if path == "binary-table" else SPARSE) \
        if path != "real" else rng.random((300, 257)).astype(np.float32)
    M = gaussian(rng, (257, 140), 0.2)
    bias = gaussian(rng, (140,), 1.0)
    is_bin = path != "real"
    want = _core.layer_forward(X, M, bias, 0.9, is_bin, True, True, True, 3, SEED, STEP, 5)
    got = _core.layer_update(X, M, bias, 0.9, is_bin, want_field=True, want_prob=True,
                             want_sample=True, stream=3, seed=SEED, step=STEP, chain_offset=5)
    for a, b in zip(want, got):
        assert np.array_equal(a, b)


def test_prebuilt_tables_and_output_buffers():
    X, M, X2, M2, bias, flags = inputs(200, 100, 120, 90, "table")
    want = run(X, M, X2, M2, bias, flags)
    out_p = np.full((200, 90), -1.0, np.float32)
    out_s = np.full((200, 90), -1.0, np.float32)
    got = run(X, M, X2, M2, bias, flags, table=_core.subset_table(M),
              table2=_core.subset_table(M2), out_prob=out_p, out_sample=out_s)
    assert got[1] is out_p and got[2] is out_s
    for a, b in zip(want, got):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("path", PATHS)
def test_independent_of_thread_count(path):
    n = ebmfast.get_num_threads()
    try:
        X, M, X2, M2, bias, flags = inputs(300, 257, 200, 300, path)
        ebmfast.set_num_threads(1)
        one = run(X, M, X2, M2, bias, flags)
        ebmfast.set_num_threads(2)
        two = run(X, M, X2, M2, bias, flags)
    finally:
        ebmfast.set_num_threads(n)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_bad_arguments():
    X, M, X2, M2, bias, flags = inputs(10, 8, 6, 5, "gather")
    with pytest.raises(ValueError, match="X2"):
        _core.layer_update(X, M, bias, 1.0, True, X2[:5], M2, True)
    with pytest.raises(ValueError, match="M2"):
        _core.layer_update(X, M, bias, 1.0, True, X2, M2[:, :4], True)
    with pytest.raises(ValueError, match="together"):
        _core.layer_update(X, M, bias, 1.0, True, X2, None, True)
    with pytest.raises(ValueError, match="table"):
        _core.layer_update(X, M, bias, 1.0, True, table=np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="real-valued"):
        _core.layer_update(X, M, bias, 1.0, False, table=_core.subset_table(M))
    with pytest.raises(ValueError, match="out_sample"):
        _core.layer_update(X, M, bias, 1.0, True, want_sample=True,
                           out_sample=np.zeros((10, 4), np.float32))
    with pytest.raises(ValueError, match="aliases"):
        Y = np.zeros((10, 5), np.float32)
        _core.layer_update(Y, np.zeros((5, 5), np.float32), bias, 1.0, True, want_sample=True,
                           out_sample=Y)


@pytest.mark.parametrize("n_in", [1, 2, 3, 4, 5, 7, 64, 130])
@pytest.mark.parametrize("prebuilt", [False, True])
def test_half_dense_input_takes_the_signed_table(n_in, prebuilt):
    # 50% ones over enough rows: the kernel sums x.M as C + sum over every group of four of
    # +- a signed-table row (C = M's column sums / 2), so every row of M enters each field,
    # zeros included: the bound is that of a sum over all n_in rows of |M|.
    rng = rng_for("signed table", n_in, prebuilt)
    rows, n_out = 64, 150
    X = binary(rng, (rows, n_in), 0.5)
    M = gaussian(rng, (n_in, n_out), 1.0 / np.sqrt(n_in))
    bias = gaussian(rng, (n_out,), 1.0)
    kw = dict(table=_core.subset_table(M)) if prebuilt else {}
    f, p, s = _core.layer_update(X, M, bias, 0.8, True, want_field=True, want_prob=True,
                                 want_sample=True, stream=R.STREAM_LAYER, seed=SEED, step=STEP,
                                 chain_offset=CHAIN_OFFSET, **kw)
    z, p_ref, _ = R.layer_update([(X, M)], bias, 0.8, R.STREAM_LAYER, SEED, STEP, CHAIN_OFFSET)
    dz = field_bound(np.ones_like(X), M, bias, 0.8)
    assert_close(f, z, dz, "field")
    tol_p = prob_bound(z, dz)
    assert_close(p, p_ref, tol_p, "prob")
    assert_samples(s, p_ref, R.uniform_grid(SEED, R.STREAM_LAYER, STEP, rows, n_out, CHAIN_OFFSET),
                   tol_p, "sample")
    # the zero rows must not leak in: the fields equal those of the gather over the ones
    assert np.abs(f - z).max() < 1e-4
