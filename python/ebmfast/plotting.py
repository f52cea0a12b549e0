# PNG grids of images (e.g. RBM samples or filters) for quick visual checks.
#
# The figure is drawn with matplotlib.figure.Figure + FigureCanvasAgg directly
# instead of pyplot, so calling this never selects or changes pyplot's global
# backend and works headless.  matplotlib is optional (``ebmfast[plot]``).
from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = ["sample_grid"]

#: Most images one grid draws (a 32 x 32 grid, about 20 s).
MAX_IMAGES = 1024


def sample_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    image_shape: tuple[int, int] | None = None,
    n_cols: int | None = None,
    title: str | None = None,
) -> str:
    """Write a grid of images to a PNG file.

    Parameters
    ----------
    images : array_like of shape (n_images, n_features)
        One flattened image per row; each row is reshaped to
        ``image_shape`` (row-major).  Values are shown on a gray colormap
        scaled to the array's global min/max (binary data: 0 black, 1 white).
    path : str or os.PathLike
        Output file; written as PNG regardless of the extension.
    image_shape : (int, int), optional
        ``(height, width)`` of one image, with ``height * width ==
        n_features``.  Default: a square of side ``sqrt(n_features)``, which
        must then be a perfect square.
    n_cols : int, optional
        Number of grid columns.  Default: ``ceil(sqrt(n_images))``.
    title : str, optional
        Figure title.

    Returns
    -------
    str
        ``path`` as a string.

    Raises
    ------
    ValueError
        If ``images`` is not a nonempty 2-D finite numeric array, or
        ``image_shape`` / ``n_cols`` are invalid.
    TypeError
        If ``path`` is not a str, bytes or os.PathLike, or ``title`` not a str.
    ImportError
        If matplotlib is not installed.
    OSError
        If ``path`` cannot be written (e.g. its directory does not exist).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "sample_grid() needs matplotlib: pip install 'ebmfast[plot]'"
        ) from exc

    try:
        out = os.fsdecode(path)  # str even for bytes or PathLike input
    except TypeError:
        raise TypeError(f"path must be a str, bytes or os.PathLike, got {type(path).__name__}") from None
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    try:
        images = np.asarray(images)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"images must be a 2-D numeric array: {exc}") from None
    if images.ndim != 2:
        raise ValueError(
            f"images must be a 2-D array (n_images, n_features), got shape {images.shape}"
        )
    n_images, n_features = images.shape
    if n_images == 0 or n_features == 0:
        raise ValueError(f"images must be nonempty, got shape {images.shape}")
    if n_images > MAX_IMAGES:  # one Axes per image: ~20 ms each, so fail fast instead
        raise ValueError(f"images has {n_images} rows; sample_grid draws at most {MAX_IMAGES} "
                         "images (pass a subset)")
    if images.dtype == bool:
        images = images.astype(np.float32)
    if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
        raise ValueError(f"images must be real numeric, got dtype {images.dtype}")
    if not np.all(np.isfinite(images)):
        raise ValueError("images must contain only finite values")

    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"image_shape is required: n_features={n_features} is not a perfect square"
            )
        height, width = side, side
    else:
        try:
            image_shape = tuple(image_shape)
        except TypeError:
            image_shape = (image_shape,)  # reported as invalid just below
        if (
            len(image_shape) != 2
            or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                for s in image_shape
            )
        ):
            raise ValueError(
                f"image_shape must be two positive ints (height, width), got {image_shape!r}"
            )
        height, width = int(image_shape[0]), int(image_shape[1])
        if height * width != n_features:
            raise ValueError(
                f"image_shape {image_shape!r} has {height * width} pixels, "
                f"but images has {n_features} features"
            )

    if n_cols is None:
        n_cols = math.ceil(math.sqrt(n_images))
    elif isinstance(n_cols, bool) or not isinstance(n_cols, numbers.Integral) or n_cols < 1:
        raise ValueError(f"n_cols must be a positive int, got {n_cols!r}")
    n_cols = min(int(n_cols), n_images)
    n_rows = math.ceil(n_images / n_cols)

    # One shared color scale, so that e.g. all-zero and all-one images are
    # distinguishable (per-image autoscaling would render both flat).
    # Scaled to [0, 1] here, in float64 and halves, so that a range wider than the float
    # maximum (e.g. -1e308 .. 1e308) cannot overflow inside matplotlib's normalization.
    images = images.astype(np.float64)
    lo, hi = float(images.min()), float(images.max())
    if lo == hi:
        images = np.full(images.shape, 0.5)
    else:
        images = (images / 2 - lo / 2) / (hi / 2 - lo / 2)
    vmin, vmax = 0.0, 1.0

    # ~0.6 inch per image (scaled by aspect), plus room for an optional title.
    cell = 0.6
    fig_w = max(n_cols * cell * width / max(height, width), 1.0)
    fig_h = max(n_rows * cell * height / max(height, width), 1.0)
    top_pad = 0.4 if title else 0.0
    # Mid-gray background: the gaps between cells stay visible next to both
    # all-black and all-white images (common for binary data).
    fig = Figure(figsize=(fig_w, fig_h + top_pad), dpi=100, facecolor="0.6")
    FigureCanvasAgg(fig)  # attaches itself to fig; needed by savefig
    top = fig_h / (fig_h + top_pad)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top - 0.01,
                        wspace=0.05, hspace=0.05)

    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        # Hide ticks/frame on every cell, including unused trailing ones.
        ax.set_axis_off()
        if k < n_images:
            ax.imshow(
                images[k].reshape(height, width),
                cmap="gray",
                vmin=vmin,
                vmax=vmax,
                interpolation="nearest",
            )
    if title:
        fig.suptitle(title)

    fig.savefig(out, format="png")
    return out
