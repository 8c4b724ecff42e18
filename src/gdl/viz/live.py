"""The live generator widgets: the page's script runs the book's generator in the browser.

The cell's output is plain HTML: a picture of samples made by Keras when the chapter ran (what a
reader sees in Colab, in a notebook, or in a page read from disk) and the settings the book's
script ``_static/live.js`` reads to replace it, on a page served over HTTP, with the same
generator running live (``gdl.live`` exports it to ONNX when the book is built).

`live_generator` is for a generator of latent vectors (a GAN's), `live_diffusion` for a diffusion
model, which the page samples from with DDIM.
"""
from __future__ import annotations

import html
import json

import numpy as np

from gdl.viz.images import mosaic
from gdl.viz.interactive import image_uri

# Shown under the picture until the live view replaces it (and instead of it where it cannot).
STATIC_NOTE = ("A picture made when this page was executed. On the book's website (or any copy "
               "served over HTTP with its runtime, e.g. <code>python -m http.server</code> in "
               "<code>_build/html</code>) the same generator runs here, in your browser.")


def live_generator(name: str, images, *, ncols: int = 8, scale: int = 3, directions: int = 3,
                   seed: int = 0, caption: str = ""):
    """A live view of generator `name` (a `gdl.live.LIVE_MODELS` key), `images` its static stand-in.

    images: (N, H, W[, C]) samples in [0, 1] drawn by the same model in the notebook; N is also
    how many the live view draws at a time. ncols: samples per row; scale: screen pixels per
    image pixel; directions: sliders that move every latent vector along one of that many fixed
    random unit directions; seed: the first batch of latent vectors.
    """
    _check(name, "latent-grid")
    n = _count(images, ncols)
    return _widget(images, {"model": name, "n": n, "ncols": ncols, "scale": scale,
                            "directions": directions, "seed": seed}, caption)


def live_diffusion(name: str, images, *, ncols: int = 8, scale: int = 3, steps: int = 10,
                   seed: int = 0, caption: str = ""):
    """A live view of diffusion model `name` (a `gdl.live.LIVE_MODELS` key of kind "ddim").

    The page draws N samples with DDIM from seeded Gaussian noise, as
    ``DiffusionModel.generate`` does, showing each step's estimate of the clean images as it
    goes; a slider sets the number of steps (1-20), a button draws new noise.
    images: (N, H, W, C) samples in [0, 1] drawn by the same model in the notebook (the static
    stand-in); N is also how many the live view draws at a time. ncols: samples per row; scale:
    screen pixels per image pixel; steps: the sampling steps at first; seed: the first noise.
    """
    _check(name, "ddim")
    if not 1 <= steps <= 20:
        raise ValueError(f"steps={steps}: the page's slider runs from 1 to 20")
    n = _count(images, ncols)
    return _widget(images, {"model": name, "n": n, "ncols": ncols, "scale": scale,
                            "steps": steps, "seed": seed}, caption)


def _check(name: str, kind: str) -> None:
    from gdl.live import LIVE_MODELS

    if name not in LIVE_MODELS:
        raise ValueError(f"no live model {name!r}; known: {', '.join(sorted(LIVE_MODELS))}")
    if LIVE_MODELS[name].kind != kind:
        raise ValueError(f"{name!r} is a live model of kind {LIVE_MODELS[name].kind!r}, "
                         f"not {kind!r}: use " + ("live_diffusion" if kind == "latent-grid"
                                                  else "live_generator"))


def _count(images, ncols: int) -> int:
    n = len(images)
    if n == 0 or n % ncols:
        raise ValueError(f"{n} images do not fill rows of {ncols}; pass a multiple of ncols")
    return n


def _widget(images, settings: dict, caption: str):
    """The cell's HTML: the static picture (a mosaic of `images`) and the script's settings."""
    from IPython.display import HTML

    name, n, ncols, scale = (settings[k] for k in ("model", "n", "ncols", "scale"))
    grid = mosaic(np.asarray(images), n // ncols, ncols, pad=1)
    width = grid.shape[1] * scale
    body = (f'<div class="gdl-live" data-settings="{html.escape(json.dumps(settings))}">'
            f'<div class="gdl-live-static"><img src="{image_uri(grid, cmap="gray")}" '
            f'width="{width}" style="image-rendering: pixelated" alt="{html.escape(caption or name)}">'
            f'<p class="gdl-live-note">{STATIC_NOTE}</p></div>'
            + (f'<p class="gdl-live-caption">{html.escape(caption)}</p>' if caption else "")
            + "</div>")
    return HTML(body)
