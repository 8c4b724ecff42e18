"""An interactive timeline: one lane per family of models, eras shaded, entries that link."""
from __future__ import annotations

from typing import Mapping, Sequence


def timeline(entries: Sequence[Mapping], eras: Sequence[tuple[float, float, str]] = (),
             lanes: Sequence[str] | None = None, title: str = "", height: int = 520):
    """A Plotly figure of `entries` (dicts with `date` as a fractional year, `name`, `lane`,
    and optionally `link` (a page the name links to), `note` and `source`, shown on hover)
    over shaded `eras` (start, end, label). Lanes run top to bottom in the order given (by
    default the order of first appearance)."""
    import plotly.graph_objects as go

    if not entries:
        raise ValueError("a timeline needs at least one entry")
    lanes = list(lanes) if lanes is not None else list(dict.fromkeys(e["lane"] for e in entries))
    unknown = sorted({e["lane"] for e in entries} - set(lanes))
    if unknown:
        raise ValueError(f"entries in lanes {unknown} that are not among {lanes}")
    fig = go.Figure()
    for start, end, label in eras:
        fig.add_vrect(x0=start, x1=end, line_width=0, opacity=0.07, fillcolor="#4c78a8",
                      layer="below")
        fig.add_annotation(x=(start + end) / 2, y=1.0, xref="x", yref="paper",
                           yanchor="bottom", text=f"<i>{label}</i>", showarrow=False,
                           font=dict(size=12, color="#4c78a8"))
    years = [e["date"] for e in entries]
    span = max(years) - min(years) + 1.2
    for lane in lanes:
        rows = sorted((e for e in entries if e["lane"] == lane), key=lambda e: e["date"])
        fig.add_trace(go.Scatter(
            x=[e["date"] for e in rows], y=[lane] * len(rows), mode="markers", name=lane,
            marker=dict(size=11, line=dict(width=1, color="white")),
            customdata=[[e["name"], _year_month(e["date"]), e.get("note", ""),
                         e.get("source", "")] for e in rows],
            hovertemplate="<b>%{customdata[0]}</b> (%{customdata[1]})<br>%{customdata[2]}"
                          "<br><i>%{customdata[3]}</i><extra></extra>"))
        for entry, level in zip(rows, label_levels(rows, label_years=span / 95)):
            text = entry["name"]
            if entry.get("link"):
                text = f'<a href="{entry["link"]}">{text}</a>'
            fig.add_annotation(x=entry["date"], y=lane, text=text, showarrow=abs(level) > 1,
                               arrowwidth=0.6, arrowcolor="#999", ax=0, ay=-13 * level,
                               yshift=0 if abs(level) > 1 else 12 * level,
                               font=dict(size=11), bgcolor="rgba(255,255,255,0.6)")
    fig.update_layout(
        title=title, template="plotly_white", height=height, showlegend=False,
        margin=dict(l=10, r=10, t=80 if title else 40, b=40),
        xaxis=dict(title="year", range=[min(years) - 0.6, max(years) + 0.6], dtick=1),
        yaxis=dict(categoryorder="array", categoryarray=lanes[::-1], automargin=True))
    return fig


def label_levels(rows: Sequence[Mapping], label_years: float, gap: float = 0.1) -> list[int]:
    """A level for each entry's label (1 just above its point, -1 just below, 2 and -2 further
    out), the first whose neighbours leave room: a label is `label_years` wide per
    character."""
    placed: dict[int, list[tuple[float, float]]] = {}
    levels = []
    for entry in rows:
        half = len(entry["name"]) * label_years / 2
        for level in (1, -1, 2, -2, 3, -3):
            if all(abs(entry["date"] - x) >= half + h + gap for x, h in placed.get(level, [])):
                break
        placed.setdefault(level, []).append((entry["date"], half))
        levels.append(level)
    return levels


def _year_month(date: float) -> str:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    year = int(date)
    return f"{months[min(11, int(round((date - year) * 12)))]} {year}"
