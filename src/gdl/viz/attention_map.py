"""An interactive view of a self-attention layer over an image's feature map: hover (or click)
a query cell of the grid and see where that position attends.

Taught in chapter 10, §10.4 (self-attention GANs). Works in a static HTML page with no kernel
and no network: the attention rows travel inside the page (quantised to bytes, base64) and a
small script redraws the heatmap when the pointer moves; plotly.js is the copy the book ships.
"""
from __future__ import annotations

import base64
import json
import sys

import numpy as np

__all__ = ["attention_map_viewer"]

# Traces, in the order they are added (the script addresses them by index).
_PICK, _HEAT, _MARK_LEFT, _MARK_RIGHT = 1, 3, 4, 5


def _grid_shape(grid) -> tuple[int, int]:
    rows, cols = (grid, grid) if np.isscalar(grid) else tuple(grid)
    if int(rows) != rows or int(cols) != cols or rows < 1 or cols < 1:
        raise ValueError(f"grid must be a positive int or (rows, cols), got {grid!r}")
    return int(rows), int(cols)


def _check(image, weights, grid):
    img = np.asarray(image, dtype="float64")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {img.shape}")
    if img.min() < 0 or img.max() > 1:
        raise ValueError("image values must lie in [0, 1]")
    rows, cols = _grid_shape(grid)
    w = np.asarray(weights, dtype="float64")
    n = rows * cols
    if w.shape != (n, n):
        raise ValueError(f"a {rows}x{cols} grid needs weights shaped ({n}, {n}) (one row per "
                         f"query position, one column per key position), got {w.shape}")
    if (w < 0).any() or not np.allclose(w.sum(1), 1.0, atol=1e-3):
        raise ValueError("each row of weights must be a softmax: non-negative, summing to 1 "
                         f"(row sums range {w.sum(1).min():.4f}..{w.sum(1).max():.4f})")
    return img, w, rows, cols


def _encode(weights):
    """Rows scaled by their maximum and quantised to bytes: (base64 text, row maxima)."""
    top = weights.max(1)
    q = np.round(weights / top[:, None] * 255).astype("uint8")
    return base64.b64encode(q.tobytes()).decode("ascii"), top


def _script(data: str, top, rows: int, cols: int) -> str:
    # plotly's to_html replaces '{plot_id}' with the figure's element id.
    return """
var gd = document.getElementById('{plot_id}');
var bytes = atob('%s'), top = %s, R = %d, C = %d, N = R * C;
function row(r) {
  var z = [];
  for (var y = 0; y < R; y++) {
    var line = [];
    for (var x = 0; x < C; x++)
      line.push(bytes.charCodeAt(r * N + y * C + x) * top[r] / 255);
    z.push(line);
  }
  return z;
}
function pick(ev) {
  var p = ev.points.filter(function (q) { return q.curveNumber === %d; })[0];
  if (!p) return;
  var x = Math.round(p.x), y = Math.round(p.y);
  Plotly.restyle(gd, {z: [row(y * C + x)]}, [%d]);
  Plotly.restyle(gd, {x: [[x], [x]], y: [[y], [y]]}, [%d, %d]);
}
gd.on('plotly_hover', pick);
gd.on('plotly_click', pick);
""" % (data, json.dumps([round(float(t), 6) for t in top]), rows, cols,
       _PICK, _HEAT, _MARK_LEFT, _MARK_RIGHT)


def attention_map_viewer(image, weights, grid, *, query=None, title: str = "",
                         height: int = 380, colorscale: str = "Inferno",
                         display: bool = True):
    """Show (and return as HTML) where each position of a feature map attends.

    image: the generated image, (H, W[, 1 or 3]) in [0, 1].
    weights: (R*C, R*C) attention rows of one image, row-major positions of the R×C grid
    (row = the query position that attends, column = the key position it reads); each row
    sums to 1. grid: R (square) or (R, C); the grid is stretched over the whole image.
    query: (row, col) shown first (default: the centre).
    display: show it in the notebook (a text/html output; plotly.js must be on the page, as
    it is in the built book; Colab gets plotly.js from its CDN). Returns the HTML.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    img, w, rows, cols = _check(image, weights, grid)
    qy, qx = (rows // 2, cols // 2) if query is None else query
    if not (0 <= qy < rows and 0 <= qx < cols):
        raise ValueError(f"query {query} lies outside the {rows}x{cols} grid")
    rgb = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img
    rgb = np.round(rgb * 255).astype("uint8")
    h, wd = rgb.shape[:2]
    # Image pixels in grid units, so that grid cell (r, c) is centred on (c, r).
    placed = dict(z=rgb, dx=cols / wd, dy=rows / h, x0=-0.5 + cols / wd / 2,
                  y0=-0.5 + rows / h / 2, hoverinfo="skip")
    fig = make_subplots(1, 2, horizontal_spacing=0.08, subplot_titles=(
        "query: hover or click a cell", "where it attends (its attention row)"))
    fig.add_trace(go.Image(**placed), 1, 1)
    clear = [[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]]
    fig.add_trace(go.Heatmap(z=np.zeros((rows, cols)).tolist(), colorscale=clear,
                             showscale=False,
                             hovertemplate="query (%{y}, %{x})<extra></extra>"), 1, 1)
    fig.add_trace(go.Image(**placed), 1, 2)
    first = w[qy * cols + qx].reshape(rows, cols).round(6).tolist()  # numbers, not bdata
    fig.add_trace(go.Heatmap(z=first, colorscale=colorscale, opacity=0.65, zmin=0,
                             colorbar=dict(title="weight", len=0.9),
                             hovertemplate="key (%{y}, %{x}): %{z:.4f}<extra></extra>"),
                  1, 2)
    for col in (1, 2):
        fig.add_trace(go.Scatter(x=[qx], y=[qy], mode="markers", hoverinfo="skip",
                                 showlegend=False,
                                 marker=dict(symbol="square-open", size=14, color="cyan",
                                             line=dict(width=3))), 1, col)
    for col in (1, 2):
        fig.update_xaxes(range=[-0.5, cols - 0.5], showticklabels=False, row=1, col=col)
        fig.update_yaxes(range=[rows - 0.5, -0.5], showticklabels=False, scaleanchor=f"x{col}",
                         row=1, col=col)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60, b=10),
                      template="plotly_white", hovermode="closest")
    data, top = _encode(w)
    colab = "google.colab" in sys.modules
    html = fig.to_html(include_plotlyjs="cdn" if colab else False, full_html=False,
                       post_script=_script(data, top, rows, cols),
                       config={"displaylogo": False, "responsive": True})
    if display:
        from IPython.display import display as show

        show({"text/html": html}, raw=True)
    return html
