"""An interactive attention viewer: which earlier tokens each token attends to, for every
layer and head of a transformer (chapter 9). Show the figure with `gdl.viz.show(fig)`.
"""
from __future__ import annotations

import numpy as np


def _unique_labels(tokens):
    """Category labels that look like the tokens but are all distinct (a repeated token
    gets zero-width spaces appended), so Plotly keeps one row and column per position."""
    seen: dict[str, int] = {}
    labels = []
    for token in tokens:
        k = seen.get(token, 0)
        seen[token] = k + 1
        labels.append(str(token) + "\u200b" * k)
    return labels


def attention_viewer(weights, tokens, *, layer_names=None, title: str = "",
                     height: int = 700, width=None, decimals: int = 3, zmax=None,
                     colorscale: str = "Blues"):
    """A heatmap of attention weights with a dropdown that picks the layer and head.

    weights: (layers, heads, T, T) for one sequence, row = the attending (query) token,
    column = the token attended to (key); tokens: the T tokens. The dropdown lists every
    head of every layer and, per layer, the mean over its heads. Entries above the
    diagonal (the future, for a causal model) are left blank when they are all zero.
    Hovering a cell shows both tokens and the weight.
    """
    import plotly.graph_objects as go

    w = np.asarray(weights, dtype="float64")
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"weights must be shaped (layers, heads, T, T), got {w.shape}")
    n_layers, n_heads, length, _ = w.shape
    if len(tokens) != length:
        raise ValueError(f"{len(tokens)} tokens for attention over {length} positions")
    layer_names = list(layer_names or [f"layer {i + 1}" for i in range(n_layers)])
    labels = _unique_labels(tokens)
    future = np.triu(np.ones((length, length), bool), k=1)
    blank_future = bool(np.all(w[..., future] == 0))

    views = []        # (name, (T, T) matrix)
    for layer in range(n_layers):
        for head in range(n_heads):
            views.append((f"{layer_names[layer]}, head {head + 1}", w[layer, head]))
        views.append((f"{layer_names[layer]}, mean of heads", w[layer].mean(axis=0)))
    top = float(zmax if zmax is not None else 1.0)

    fig = go.Figure()
    for i, (name, matrix) in enumerate(views):
        z = np.round(matrix, decimals).astype(object)
        if blank_future:
            z[future] = None
        fig.add_trace(go.Heatmap(
            z=z.tolist(), x=labels, y=labels, visible=i == 0, name=name,
            zmin=0.0, zmax=top, colorscale=colorscale,
            colorbar=dict(title="weight", thickness=14),
            hovertemplate=("<b>%{y}</b> attends to <b>%{x}</b>"
                           "<br>weight %{z:.3f}<extra>" + name + "</extra>")))
    buttons = [dict(label=name, method="update",
                    args=[{"visible": [j == i for j in range(len(views))]},
                          {"title.text": f"{title} — {name}" if title else name}])
               for i, (name, _) in enumerate(views)]
    fig.update_layout(
        title=dict(text=f"{title} — {views[0][0]}" if title else views[0][0], x=0.01,
                   y=0.99, yanchor="top"),
        template="plotly_white", height=height, width=width,
        margin=dict(l=10, r=10, t=70, b=10),
        # The menu sits in the top margin beside the title; the token axis goes below the map
        # so its slanted labels and axis title do not collide with either.
        updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right",
                          y=1.02, yanchor="bottom", showactive=True, active=0)],
        xaxis=dict(title="attended to (key)", tickangle=-60, tickfont=dict(size=10),
                   side="bottom", showgrid=False),
        yaxis=dict(title="attending token (query)", autorange="reversed",
                   tickfont=dict(size=10), showgrid=False))
    return fig
