"""A prompt explorer for a static page: precomputed samples for prompts × guidance scales."""
from __future__ import annotations

import numpy as np

from gdl.viz.images import mosaic, to_display
from gdl.viz.interactive import image_uri


def prompt_explorer(images, prompts, scales, *, active: int = 0, title: str = "", pad: int = 2,
                    prefix: str = "guidance scale ", height: int | None = None, width=None):
    """One picture per guidance scale, a row of samples per prompt (labelled), and a slider.

    images: (S, P, K, H, W, C) floats in [0, 1], K samples for each of the P `prompts` at each of
    the S `scales`. The figure opens on scale number `active` and never plays by itself.
    """
    import plotly.graph_objects as go

    images = np.asarray(images)
    if images.ndim != 6:
        raise ValueError(f"images must be (scales, prompts, samples, H, W, C), got {images.shape}")
    s, p, k, h, w = images.shape[:5]
    if (s, p) != (len(scales), len(prompts)):
        raise ValueError(f"images hold {s} scales × {p} prompts, but got {len(scales)} scales "
                         f"and {len(prompts)} prompts")
    if not 0 <= active < s:
        raise ValueError(f"active must index one of the {s} scales, got {active}")
    pictures = []
    for per_scale in images:
        tiles = to_display(per_scale.reshape(p * k, *per_scale.shape[2:]))
        grid = mosaic(tiles, p, k, pad=pad)
        pictures.append(go.Image(source=image_uri(grid), hoverinfo="skip"))
    labels = [f"{v:g}" for v in scales]
    fig = go.Figure(data=[pictures[active]],
                    frames=[go.Frame(data=[pic], name=name) for pic, name in zip(pictures, labels)])
    steps = [dict(label=name, method="animate",
                  args=[[name], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                     transition=dict(duration=0))]) for name in labels]
    fig.update_layout(
        title=title, template="plotly_white", width=width,
        height=height or 120 + p * (h + pad) * 3,
        sliders=[dict(active=active, steps=steps, pad=dict(t=30), currentvalue=dict(prefix=prefix))],
        margin=dict(l=10, r=10, t=50 if title else 20, b=10))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(tickmode="array", ticktext=list(prompts), showgrid=False, zeroline=False,
                     tickvals=[r * (h + pad) + h / 2 for r in range(p)], automargin=True)
    return fig
