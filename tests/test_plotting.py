import numpy as np
import pytest

from ebmfast.plotting import sample_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def mpl_image():
    pytest.importorskip("matplotlib")
    import matplotlib.image

    return matplotlib.image


def _bars(n=14, side=3, seed=0):
    return (np.random.default_rng(seed).random((n, side * side)) > 0.5).astype(np.float32)


def test_sample_grid_writes_png(tmp_path, mpl_image):
    out = sample_grid(_bars(14), tmp_path / "grid.png", title="samples")
    assert isinstance(out, str)
    assert out == str(tmp_path / "grid.png")
    data = (tmp_path / "grid.png").read_bytes()
    assert data.startswith(PNG_MAGIC)
    img = mpl_image.imread(out)
    h, w = img.shape[:2]
    # 14 images -> 4x4 grid; each cell is tens of pixels, far below 2000.
    assert 100 <= h <= 2000 and 100 <= w <= 2000
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    # both black and white pixels were drawn
    assert img[..., :3].min() < 0.1 and img[..., :3].max() > 0.9


def test_sample_grid_layout_follows_n_cols(tmp_path, mpl_image):
    X = _bars(12, side=4)
    wide = mpl_image.imread(sample_grid(X, tmp_path / "wide.png", n_cols=12))
    tall = mpl_image.imread(sample_grid(X, tmp_path / "tall.png", n_cols=1))
    assert wide.shape[1] > wide.shape[0]
    assert tall.shape[0] > tall.shape[1]


def test_sample_grid_non_square_images(tmp_path, mpl_image):
    X = np.random.default_rng(1).random((6, 2 * 5))
    out = sample_grid(X, str(tmp_path / "rect.png"), image_shape=(2, 5), n_cols=3)
    assert (tmp_path / "rect.png").read_bytes().startswith(PNG_MAGIC)
    assert mpl_image.imread(out).ndim == 3


def test_sample_grid_single_and_constant_image(tmp_path, mpl_image):
    out = sample_grid(np.zeros((1, 4)), tmp_path / "one.png")
    assert (tmp_path / "one.png").read_bytes().startswith(PNG_MAGIC)
    assert mpl_image.imread(out).ndim == 3


def test_sample_grid_does_not_touch_pyplot_backend(tmp_path, mpl_image):
    import sys

    import matplotlib

    had_pyplot = "matplotlib.pyplot" in sys.modules
    before = matplotlib.rcParams["backend"] if had_pyplot else None
    sample_grid(_bars(4, side=2), tmp_path / "g.png")
    if had_pyplot:
        assert matplotlib.rcParams["backend"] == before
    else:
        assert "matplotlib.pyplot" not in sys.modules


@pytest.mark.parametrize(
    "images",
    [
        np.zeros(9),  # 1-D
        np.zeros((2, 3, 3)),  # 3-D
        np.zeros((0, 9)),  # no images
        np.zeros((3, 0)),  # no features
        np.array([[np.nan] * 4]),  # non-finite
    ],
)
def test_sample_grid_bad_images(tmp_path, mpl_image, images):
    with pytest.raises(ValueError, match="images"):
        sample_grid(images, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_sample_grid_requires_shape_for_non_square(tmp_path, mpl_image):
    with pytest.raises(ValueError, match="image_shape"):
        sample_grid(np.zeros((2, 10)), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="image_shape"):
        sample_grid(np.zeros((2, 10)), tmp_path / "bad.png", image_shape=(3, 3))
    with pytest.raises(ValueError, match="image_shape"):
        sample_grid(np.zeros((2, 10)), tmp_path / "bad.png", image_shape=(10,))
    with pytest.raises(ValueError, match="image_shape"):
        sample_grid(np.zeros((2, 10)), tmp_path / "bad.png", image_shape=10)


@pytest.mark.parametrize("n_cols", [0, -1, 2.5, True])
def test_sample_grid_bad_n_cols(tmp_path, mpl_image, n_cols):
    with pytest.raises(ValueError, match="n_cols"):
        sample_grid(np.zeros((4, 4)), tmp_path / "bad.png", n_cols=n_cols)
