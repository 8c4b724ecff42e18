"""Interactive latent-space views (chapter 3 onwards): an explorer of a 2-D
latent plane, drawn over the images decoded from a grid of that plane.

The figures are Plotly figures that render as static HTML (no kernel
needed); display them with `gdl.viz.show`. For walks through a latent space
(attribute strengths, morphs) use `gdl.viz.image_slider` on decoded frames.
"""
from __future__ import annotations

import numpy as np

from gdl.viz.images import mosaic, to_display
from gdl.viz.interactive import image_uri, latent_scatter


def plane_grid(extent, n: int) -> np.ndarray:
    """The centres of an n x n grid of cells over extent ((x0, x1), (y0, y1)).

    Returned row-major with the first row at the top (largest y), the order
    `gdl.viz.mosaic` tiles images in. Shape (n * n, 2).
    """
    (x0, x1), (y0, y1) = extent
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"extent must be ((x0, x1), (y0, y1)) with x0 < x1 "
                         f"and y0 < y1, got {extent}")
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def decode_plane(decode, extent, n: int = 20) -> np.ndarray:
    """One image tiled from `decode` applied to an n x n grid of the plane.

    decode: a function from points (M, 2) to images (M, H, W[, C]).
    """
    images = to_display(np.asarray(decode(plane_grid(extent, n))))
    return mosaic(images, n, n)


def default_extent(points, quantile: float = 0.005, margin: float = 0.1):
    """A square around the bulk of `points` (between their `quantile` and
    1 - `quantile` on each axis), widened by `margin` of its side. Square, so
    that images decoded on a grid over it keep their shape."""
    pts = np.asarray(points, float)
    lo = np.quantile(pts, quantile, axis=0)
    hi = np.quantile(pts, 1 - quantile, axis=0)
    centre, half = (lo + hi) / 2, (1 + 2 * margin) * float(np.max(hi - lo)) / 2
    return ((centre[0] - half, centre[0] + half),
            (centre[1] - half, centre[1] + half))


def latent_explorer(points, labels, decode, *, class_names=None, extent=None,
                    n_grid: int = 20, max_points: int | None = 3000,
                    hover=None, cmap: str = "gray_r", title: str = "",
                    axis_titles=("z[0]", "z[1]"), seed: int = 0,
                    height: int = 650):
    """A zoomable 2-D latent space: points coloured by class, over a mosaic
    of images decoded from a grid of the plane.

    points: (N, 2) encoded examples; labels: (N,) integer classes (names
    from `class_names`); decode: points (M, 2) -> images (M, H, W[, C]).
    At most `max_points` points are drawn (a random subset), so the images
    behind them stay visible; click a class in the legend to hide it.
    """
    pts = np.asarray(points, float)
    labels = np.asarray(labels)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be shaped (N, 2), got {pts.shape}")
    if len(labels) != len(pts):
        raise ValueError(f"{len(pts)} points but {len(labels)} labels")
    extent = extent or default_extent(pts)
    background = (decode_plane(decode, extent, n_grid), *extent)
    names = (np.asarray(class_names, dtype=object)[labels]
             if class_names is not None else labels.astype(str))
    index = np.arange(len(pts))
    if max_points is not None and len(pts) > max_points:
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(len(pts), max_points, replace=False))
    if hover is None:
        hover = [f"#{i}: {names[i]}" for i in range(len(pts))]
    hover = [hover[i] for i in index]
    fig = latent_scatter(pts[index], color=names[index], hover=hover,
                         background=background, cmap=cmap, title=title,
                         axis_titles=axis_titles, categorical=True,
                         height=height)
    fig.update_traces(marker=dict(size=4, opacity=0.6))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig
