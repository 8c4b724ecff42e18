"""The latent-plane widget: the reader drags a point over a 2-D latent plane and the page's
script (``_static/live.js``) decodes it in the browser with the book's own decoder.

A cell's output, like those of `gdl.viz.live`: a static stand-in made when the chapter ran (the
encoded examples and a grid of decoded images) and the settings the script reads to replace it
with the live view on a page served over HTTP.
"""
from __future__ import annotations

import html
import json

import numpy as np

from gdl.viz.images import mosaic
from gdl.viz.interactive import image_uri
from gdl.viz.live import _name


def live_plane(name: str, images, points, labels, class_names, *, extent=(-3.5, 3.5),
               plane_px: int = 320, scale: int = 6, start=(0.0, 0.0), caption: str = ""):
    """A live view of decoder `name` (a `gdl.live.LIVE_MODELS` key of kind "latent-plane"): the
    reader drags a point over its 2-D latent plane and sees the image decoded there.

    images: (G*G, H, W, C) images in [0, 1] decoded in the notebook from a regular G x G grid
    over the plane (row by row from the top), the static stand-in beside the plane. points,
    labels: (N, 2) encoded examples and their class ids, drawn behind the point in the class
    colours of matplotlib's default cycle (as the chapters' scatter plots), named by
    `class_names` in a legend. extent: the square (lo, hi) x (lo, hi) the plane shows;
    plane_px: its side on screen; scale: screen pixels per pixel of the decoded image;
    start: where the point starts.
    """
    import matplotlib.colors
    import matplotlib.pyplot as plt

    images, points, labels = np.asarray(images), np.asarray(points), np.asarray(labels)
    side = int(round(np.sqrt(len(images))))
    if side * side != len(images) or side == 0:
        raise ValueError(f"{len(images)} images are not a square grid over the plane")
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(f"points {points.shape} and labels {labels.shape}: give (N, 2) and (N,)")
    lo, hi = (float(v) for v in extent)
    if not lo < hi or not all(lo <= v <= hi for v in start):
        raise ValueError(f"extent {extent} must be (lo, hi) with lo < hi, holding start {start}")
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]     # C0, C1, ...: the scatters'
    colours = [matplotlib.colors.to_rgb(c) for c in cycle]
    if labels.max(initial=0) >= min(len(class_names), len(colours)):
        raise ValueError(f"labels up to {labels.max()} for {len(class_names)} class names "
                         f"({len(colours)} colours)")
    plane = _scatter_raster(points, labels, colours, (lo, hi), plane_px)
    settings = {"model": _name(name), "kind": "latent-plane", "extent": [lo, hi],
                "plane_px": plane_px, "scale": scale, "start": [float(v) for v in start],
                "background": image_uri(plane)}
    grid = mosaic(images, side, side, pad=0)
    legend = "".join(f'<span style="--swatch: {matplotlib.colors.to_hex(colours[c])}">'
                     f"{html.escape(str(n))}</span>" for c, n in enumerate(class_names))
    from IPython.display import HTML

    body = (f'<div class="gdl-live" data-settings="{html.escape(json.dumps(settings))}">'
            f'<div class="gdl-live-static"><div class="gdl-live-row">'
            f'<img src="{settings["background"]}" width="{plane_px}" alt="the encoded examples">'
            f'<img src="{image_uri(grid, cmap="gray")}" width="{plane_px}" '
            f'alt="{html.escape(caption or name)}: images decoded over the plane"></div>'
            f'<p class="gdl-live-note">{PLANE_NOTE}</p></div>'
            f'<div class="gdl-live-legend">{legend}</div>'
            + (f'<p class="gdl-live-caption">{html.escape(caption)}</p>' if caption else "")
            + "</div>")
    return HTML(body)


PLANE_NOTE = ("The encoded examples (left) and images decoded from a grid over the same square "
              "(right), made when this page was executed. On the book's website (or any copy "
              "served over HTTP with its runtime, e.g. <code>python -m http.server</code> in "
              "<code>_build/html</code>) you drag a point over the plane instead, and the "
              "decoder paints what is there, in your browser.")


def _scatter_raster(points, labels, colours, extent, px: int) -> np.ndarray:
    """(px, px, 3) in [0, 1]: white, with a 2x2 dot per point in its class colour at 60 %."""
    lo, hi = extent
    canvas = np.ones((px, px, 3))
    col = np.floor((points[:, 0] - lo) / (hi - lo) * px).astype(int)
    row = np.floor((hi - points[:, 1]) / (hi - lo) * px).astype(int)   # z[1] up
    inside = (col >= 0) & (col < px - 1) & (row >= 0) & (row < px - 1)
    rgb = np.asarray(colours)[labels[inside]]
    for dr in (0, 1):
        for dc in (0, 1):
            r, c = row[inside] + dr, col[inside] + dc
            canvas[r, c] = 0.4 * canvas[r, c] + 0.6 * rgb
    for t in np.arange(np.ceil(lo), np.floor(hi) + 1):     # faint lines at whole numbers
        k = int(round((t - lo) / (hi - lo) * (px - 1)))
        weight = 0.25 if t == 0 else 0.08
        canvas[:, k] = canvas[:, k] * (1 - weight)
        canvas[px - 1 - k, :] = canvas[px - 1 - k, :] * (1 - weight)
    return canvas
