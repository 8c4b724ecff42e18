"""Plotly figures with a slider: a 2-D point cloud or a batch of images that
changes from frame to frame (a flow layer by layer, chains step by step).

Both return a `plotly.graph_objects.Figure`; show it with `gdl.viz.show(fig)`.
"""
from __future__ import annotations

import numpy as np

from gdl.viz.images import to_display
from gdl.viz.interactive import image_uri


def _slider_layout(names, prefix: str, duration: int):
    import plotly.graph_objects as go

    def animate(frame_names, play: bool):
        return dict(
            method="animate",
            args=[frame_names, dict(mode="immediate", fromcurrent=play,
                                    frame=dict(duration=duration, redraw=True),
                                    transition=dict(duration=0))])

    steps = [dict(label=str(n), **animate([n], False)) for n in names]
    slider = go.layout.Slider(active=0, steps=steps, x=0.12, len=0.88,
                              pad=dict(t=40, b=10),
                              currentvalue=dict(prefix=prefix))
    buttons = go.layout.Updatemenu(      # left of the slider, not over it
        type="buttons", direction="left", x=0.1, y=0.0, xanchor="right",
        yanchor="top", pad=dict(t=48, r=4), showactive=False,
        buttons=[dict(label="▶", **animate(None, True)),
                 dict(label="❚❚", method="animate",
                      args=[[None], dict(mode="immediate",
                                         frame=dict(duration=0, redraw=False),
                                         transition=dict(duration=0))])])
    return [slider], [buttons]


def point_cloud_slider(frames, labels, color=None, *, color_name: str = "",
                       title: str = "", axis_titles=("x₁", "x₂"),
                       axis_range=None, prefix: str = "", marker_size: int = 4,
                       duration: int = 300, height: int = 620, width=None):
    """A 2-D point cloud moving through `frames` (a list of (N, 2) arrays).

    Row i of every frame is the same point, so colouring by `color` (one value
    per point, fixed across frames) shows where each point goes. `axis_range`
    is (lo, hi) for both axes, by default wide enough for every frame.
    """
    import plotly.graph_objects as go

    frames = [np.asarray(f, dtype="float32") for f in frames]
    labels = [str(s) for s in labels]
    if not frames or len(frames) != len(labels):
        raise ValueError(f"need one label per frame; got {len(frames)} frames "
                         f"and {len(labels)} labels")
    n = len(frames[0])
    if any(f.shape != (n, 2) for f in frames):
        raise ValueError("every frame must be shaped (N, 2) with the same N; "
                         f"got {[f.shape for f in frames]}")
    if len(set(labels)) != len(labels):
        raise ValueError("frame labels must be unique (they name the frames)")
    if axis_range is None:
        lim = float(np.nanmax(np.abs(np.stack(frames)))) * 1.05
        axis_range = (-lim, lim)
    marker = dict(size=marker_size, opacity=0.7)
    if color is not None:
        marker.update(color=np.asarray(color, "float32"), colorscale="Viridis",
                      showscale=True, colorbar=dict(title=color_name))

    first = go.Scatter(x=frames[0][:, 0], y=frames[0][:, 1], mode="markers",
                       marker=marker, hoverinfo="x+y")
    # Frames carry only the coordinates; the markers (and colours) stay.
    fig = go.Figure(data=[first], frames=[
        go.Frame(data=[go.Scatter(x=f[:, 0], y=f[:, 1])], name=name)
        for f, name in zip(frames, labels)])
    sliders, menus = _slider_layout(labels, prefix, duration)
    fig.update_layout(title=title, template="plotly_white", height=height,
                      width=width, sliders=sliders, updatemenus=menus,
                      margin=dict(l=50, r=20, t=50, b=20),
                      xaxis=dict(title=axis_titles[0], range=list(axis_range)),
                      yaxis=dict(title=axis_titles[1], range=list(axis_range),
                                 scaleanchor="x", scaleratio=1))
    return fig


def image_slider(batches, labels, *, ncols: int | None = None,
                 cmap: str = "gray_r", title: str = "", prefix: str = "",
                 pad: int = 2, duration: int = 200, height: int = 520,
                 width=None):
    """A grid of images that changes with the slider.

    batches: a list of image batches (N, H, W[, C]), one per frame, e.g. the
    same N sampling chains after more and more steps. Each frame is one PNG.
    """
    import plotly.graph_objects as go

    batches = [to_display(b) for b in batches]
    labels = [str(s) for s in labels]
    if not batches or len(batches) != len(labels):
        raise ValueError(f"need one label per frame; got {len(batches)} "
                         f"batches and {len(labels)} labels")
    n = len(batches[0])
    if any(b.shape != batches[0].shape for b in batches):
        raise ValueError("every batch must have the same shape")
    ncols = ncols or min(n, 10)
    nrows = -(-n // ncols)
    # Gaps and empty cells take the background colour: white paper, which
    # is 0 under "gray_r" (ink on paper) and 1 otherwise.
    background = 0.0 if (cmap.endswith("_r") and batches[0].ndim == 3) else 1.0
    h, w = batches[0].shape[1:3]

    def picture(batch):
        tiles = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad,
                         *batch.shape[3:]), background, "float32")
        for i, img in enumerate(batch):
            r, c = divmod(i, ncols)
            tiles[r * (h + pad): r * (h + pad) + h,
                  c * (w + pad): c * (w + pad) + w] = img
        return go.Image(source=image_uri(tiles, cmap), hoverinfo="skip")

    fig = go.Figure(data=[picture(batches[0])],
                    frames=[go.Frame(data=[picture(b)], name=name)
                            for b, name in zip(batches, labels)])
    sliders, menus = _slider_layout(labels, prefix, duration)
    fig.update_layout(title=title, template="plotly_white", height=height,
                      width=width, sliders=sliders, updatemenus=menus,
                      margin=dict(l=10, r=10, t=50, b=10))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
