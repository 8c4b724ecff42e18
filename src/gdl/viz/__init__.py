"""Figures: image grids, training curves, and interactive Plotly views."""
from gdl.viz.curves import plot_history
from gdl.viz.images import image_grid, mosaic, to_display
from gdl.viz.interactive import image_uri, latent_scatter, show
from gdl.viz.latent import decode_plane, latent_explorer, plane_grid
from gdl.viz.sliders import image_slider, point_cloud_slider

__all__ = ["plot_history", "image_grid", "mosaic", "to_display", "image_uri", "latent_scatter", "show",
           "decode_plane", "latent_explorer", "plane_grid", "image_slider", "point_cloud_slider"]
