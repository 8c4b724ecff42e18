"""Static image figures (matplotlib): grids of images."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np


def to_display(images) -> np.ndarray:
    """Images as a float array in [0, 1] shaped (N, H, W) or (N, H, W, 3)."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
        raise ValueError(f"expected images shaped (N, H, W), (N, H, W, 1) or (N, H, W, 3); got {np.shape(images)}")
    return np.clip(x, 0.0, 1.0)


def image_grid(images, ncols: int | None = None, titles=None, size: float = 1.2,
               suptitle: str | None = None, cmap: str = "gray_r"):
    """Show images in a grid; grayscale uses `cmap` (ink dark on white by default)."""
    x = to_display(images)
    n = len(x)
    ncols = ncols or min(n, 10)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles is not None else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(x[i], cmap=cmap if x.ndim == 3 else None, vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def mosaic(images, nrows: int, ncols: int, pad: int = 0) -> np.ndarray:
    """Tile N = nrows*ncols images into one image (row-major, first row on top)."""
    x = to_display(images)
    if len(x) != nrows * ncols:
        raise ValueError(f"need {nrows * ncols} images for a {nrows}×{ncols} mosaic, got {len(x)}")
    h, w = x.shape[1:3]
    tail = x.shape[3:]
    out = np.ones((nrows * (h + pad) - pad, ncols * (w + pad) - pad, *tail), np.float32)
    for i, img in enumerate(x):
        r, c = divmod(i, ncols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return out
