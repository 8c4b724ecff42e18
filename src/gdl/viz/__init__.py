"""Figures: image grids, training curves, and interactive Plotly views."""
from gdl.viz.curves import plot_history
from gdl.viz.images import image_grid, mosaic, to_display
from gdl.viz.interactive import image_uri, latent_scatter, show

__all__ = ["plot_history", "image_grid", "mosaic", "to_display", "image_uri", "latent_scatter", "show"]
