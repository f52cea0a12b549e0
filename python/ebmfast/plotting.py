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
    ImportError
        If matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "sample_grid() needs matplotlib: pip install 'ebmfast[plot]'"
        ) from exc

    images = np.asarray(images)
    if images.ndim != 2:
        raise ValueError(
            f"images must be a 2-D array (n_images, n_features), got shape {images.shape}"
        )
    n_images, n_features = images.shape
    if n_images == 0 or n_features == 0:
        raise ValueError(f"images must be nonempty, got shape {images.shape}")
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
    vmin, vmax = float(images.min()), float(images.max())
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5

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

    out = os.fsdecode(path)  # str even for bytes or PathLike input
    fig.savefig(out, format="png")
    return out
