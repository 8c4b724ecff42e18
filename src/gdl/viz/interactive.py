"""Plotly figures that render in the built book (offline), in Jupyter and in Colab."""
from __future__ import annotations

import base64
import io
import json
import sys

import numpy as np

from gdl.viz.images import to_display


def show(fig) -> None:
    """Display a Plotly figure.

    The book ships plotly.js as a static asset, so the HTML output leaves it out; the
    same output carries Plotly's JSON for Jupyter front ends that render it. Colab gets
    Plotly's own Colab renderer.
    """
    if "google.colab" in sys.modules:
        fig.show(renderer="colab")
        return
    from IPython.display import display

    # auto_play=False: a slider figure opens on its first frame instead of playing once.
    html = fig.to_html(include_plotlyjs=False, full_html=False, auto_play=False,
                       config={"displaylogo": False, "responsive": True})
    bundle = {"text/html": html, "application/vnd.plotly.v1+json": json.loads(fig.to_json())}
    display(bundle, raw=True)


def image_uri(image, cmap: str = "gray_r") -> str:
    """A PNG data URI for one image (H, W), (H, W, 1) or (H, W, 3), float in [0, 1] or uint8."""
    import matplotlib.image

    x = to_display(np.asarray(image)[None])[0]
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, x, cmap=cmap if x.ndim == 2 else None, vmin=0, vmax=1, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def latent_scatter(points, color=None, hover=None, *, color_name: str = "", background=None,
                   thumbnails=None, thumbnail_size: float | None = None, cmap: str = "gray_r", title: str = "",
                   axis_titles=("z[0]", "z[1]"), categorical: bool | None = None, width=None, height=600):
    """A 2-D latent space: points coloured by `color`, over an optional image background.

    background: (image, (x_min, x_max), (y_min, y_max)), e.g. a mosaic decoded from a grid.
    thumbnails: (positions (K, 2), images (K, H, W[, C])) drawn at those positions.
    cmap: colour map for grayscale images ("gray_r": dark ink on white, "gray": photographs).
    """
    import plotly.graph_objects as go

    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be shaped (N, 2), got {pts.shape}")
    fig = go.Figure()
    hovertext = None if hover is None else [str(h) for h in hover]
    if color is not None and (categorical or (categorical is None and not np.issubdtype(np.asarray(color).dtype, np.floating))):
        names = np.asarray(color).astype(str)
        for name in sorted(set(names), key=lambda s: (len(s), s)):
            m = names == name
            fig.add_trace(go.Scattergl(
                x=pts[m, 0], y=pts[m, 1], mode="markers", name=name, marker=dict(size=5, opacity=0.75),
                hovertext=None if hovertext is None else [h for h, k in zip(hovertext, m) if k],
                hoverinfo="text+name" if hovertext else "x+y+name"))
    else:
        fig.add_trace(go.Scattergl(
            x=pts[:, 0], y=pts[:, 1], mode="markers", hovertext=hovertext,
            hoverinfo="text" if hovertext else "x+y",
            marker=dict(size=5, opacity=0.8, color=None if color is None else np.asarray(color, float),
                        colorscale="Viridis", showscale=color is not None,
                        colorbar=dict(title=color_name) if color is not None else None)))
    if background is not None:
        image, (x0, x1), (y0, y1) = background
        fig.add_layout_image(dict(source=image_uri(image, cmap), xref="x", yref="y", x=x0, y=y1,
                                  sizex=x1 - x0, sizey=y1 - y0, sizing="stretch", layer="below", opacity=0.9))
        fig.update_xaxes(range=[x0, x1])
        fig.update_yaxes(range=[y0, y1])
    if thumbnails is not None:
        positions, images = thumbnails
        positions = np.asarray(positions, float)
        size = thumbnail_size or 0.06 * float(np.ptp(pts[:, 0]) or 1.0)
        for (x, y), img in zip(positions, images):
            fig.add_layout_image(dict(source=image_uri(img, cmap), xref="x", yref="y", x=x, y=y,
                                      sizex=size, sizey=size, xanchor="center", yanchor="middle",
                                      sizing="contain", layer="above"))
    fig.update_layout(title=title, width=width, height=height, template="plotly_white",
                      xaxis_title=axis_titles[0], yaxis_title=axis_titles[1],
                      legend_title_text=color_name, margin=dict(l=50, r=20, t=50, b=50))
    return fig
