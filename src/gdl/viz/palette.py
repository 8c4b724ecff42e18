"""Class colours that match between matplotlib figures and Plotly views."""
import matplotlib as mpl
from matplotlib.colors import to_hex


def class_colours(class_names) -> dict[str, str]:
    """{name: hex colour}: the colour matplotlib gives the k-th class plotted in turn."""
    cycle = [to_hex(c["color"]) for c in mpl.rcParams["axes.prop_cycle"]]
    return {str(name): cycle[k % len(cycle)] for k, name in enumerate(class_names)}


def match_classes(fig, class_names):
    """Put a Plotly figure's per-class traces in `class_names` order, coloured as matplotlib colours them."""
    colours = class_colours(class_names)
    unknown = [t.name for t in fig.data if t.name not in colours]
    if unknown:
        raise ValueError(f"traces {unknown} are not among the classes {list(colours)}")
    rank = {name: k for k, name in enumerate(colours)}
    fig.data = sorted(fig.data, key=lambda t: rank[t.name])
    for trace in fig.data:
        trace.marker.color = colours[trace.name]
    return fig
