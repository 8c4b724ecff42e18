"""The live generator widgets: the page's script runs the book's generator in the browser.

The cell's output is plain HTML: a picture of samples made by Keras when the chapter ran (what a
reader sees in Colab, in a notebook, or in a page read from disk) and the settings the book's
script ``_static/live.js`` reads to replace it, on a page served over HTTP, with the same
generator running live (``gdl.live`` exports it to ONNX when the book is built).

`live_generator` is for a generator of latent vectors (a GAN's), `live_diffusion` for a diffusion
model, which the page samples from with DDIM, `live_writer` for a language model (chapter 9's
GPT), which writes in the page word by word after a prompt the reader picks.
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
    """A live view of generator `name` (a `gdl.live.LIVE_MODELS` key of kind "latent-grid"),
    `images` its static stand-in.

    images: (N, H, W[, C]) samples in [0, 1] drawn by the same model in the notebook; N is also
    how many the live view draws at a time. ncols: samples per row; scale: screen pixels per
    image pixel; directions: sliders that move every latent vector along one of that many fixed
    random unit directions; seed: the first batch of latent vectors.
    """
    n = _count(images, ncols)
    return _widget(images, {"model": _name(name), "kind": "latent-grid", "n": n, "ncols": ncols, "scale": scale,
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
    if not 1 <= steps <= 20:
        raise ValueError(f"steps={steps}: the page's slider runs from 1 to 20")
    n = _count(images, ncols)
    return _widget(images, {"model": _name(name), "kind": "ddim", "n": n, "ncols": ncols,
                            "scale": scale, "steps": steps, "seed": seed}, caption)


TEXT_NOTE = ("A review written by the same model when this page was executed. On the book's "
             "website (or any copy served over HTTP with its runtime, e.g. <code>python -m "
             "http.server</code> in <code>_build/html</code>) the model writes here, word by "
             "word, in your browser.")


def live_writer(name: str, prompts, *, sample_text: str, temperature: float = 0.8,
                top_k: int | None = 20, seed: int = 0, caption: str = ""):
    """A live view of language model `name` (a `gdl.live.LIVE_MODELS` key of kind "text").

    The page writes after the prompt chosen from `prompts`, one token per network call, as
    ``GPT.generate`` samples (temperature, top-k, inverse-CDF draws from a seeded generator),
    showing each word as it comes, until the end token or the model's context is full; a
    "write" button writes again, picking another prompt writes with it.
    prompts: the review headers to choose from, written as the chapter's prompts (lower case,
    punctuation split off: "pinot noir from oregon , us :"); the page encodes them with the
    model's vocabulary (unknown words as [UNK]); "" lets the model write the header too.
    sample_text: a review written by the same model when the chapter ran (the static stand-in;
    a trailing "<end>" is dropped). temperature (0.1-1.5) and top_k (1-50, None: no cut): the
    sliders' first positions; seed: the page's draws.
    """
    prompts = [str(p) for p in ([prompts] if isinstance(prompts, str) else prompts)]
    if not prompts:
        raise ValueError("give at least one prompt")
    if not 0.1 <= temperature <= 1.5:
        raise ValueError(f"temperature={temperature}: the page's slider runs from 0.1 to 1.5")
    if top_k is not None and not 1 <= top_k <= 50:
        raise ValueError(f"top_k={top_k}: the page's slider runs from 1 to 50 (or None: all)")
    from IPython.display import HTML

    settings = {"model": _name(name), "kind": "text", "prompts": prompts, "temperature": temperature,
                "top_k": top_k, "seed": seed}
    text = sample_text.strip()
    if text.endswith("<end>"):
        text = text[:-len("<end>")].rstrip()
    body = (f'<div class="gdl-live" data-settings="{html.escape(json.dumps(settings))}">'
            f'<div class="gdl-live-static"><p class="gdl-live-text">{html.escape(text)}</p>'
            f'<p class="gdl-live-note">{TEXT_NOTE}</p></div>'
            + (f'<p class="gdl-live-caption">{html.escape(caption)}</p>' if caption else "")
            + "</div>")
    return HTML(body)


def _name(name) -> str:
    # Which live models exist is the build's to check (book/_ext/gdl_book.py against
    # gdl.live.LIVE_MODELS, kind included): a chapter's source hash then need not follow the
    # export machinery.
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{name!r} is not a live model's name (e.g. 'dcgan_bricks')")
    return name


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
