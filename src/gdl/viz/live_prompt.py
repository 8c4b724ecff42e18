"""The live text-to-image widget: chapter 13's prompt -> prior -> guided diffusion, in the page.

As the other live widgets (``gdl.viz.live``), the cell's output is plain HTML: a picture made when
the chapter ran, and settings that the book's script ``_static/live.js`` reads to replace it, on
a page served over HTTP, with the same models running in the reader's browser: the reader types
or picks a prompt, sets the guidance scale and the DDIM steps, and the faces are painted step by
step.
"""
from __future__ import annotations

from gdl.viz.live import _count, _name, _widget


def live_text_to_image(name: str, images, prompts, *, guidance: float = 3.0, steps: int = 20,
                       ncols: int = 6, scale: int = 3, seed: int = 0, caption: str = ""):
    """A live view of guided diffusion model `name` (a `gdl.live.LIVE_MODELS` key of kind
    "guided-ddim"), `images` its static stand-in.

    images: (N, H, W, C) samples in [0, 1] for prompts[0] at `guidance`, drawn by the same
    models in the notebook; N is also how many the live view draws at a time. prompts: the
    examples the reader can pick (and edit), written in the captions' words
    (``gdl.data.captions.vocabulary()``). guidance: the slider's first position (0-8, in steps
    of 0.5); steps: the DDIM steps at first (1-20); ncols: samples per row; scale: screen
    pixels per image pixel; seed: the first noise.
    """
    prompts = [str(p).strip() for p in ([prompts] if isinstance(prompts, str) else prompts)]
    if not prompts or not all(prompts):
        raise ValueError("give at least one prompt, none of them empty")
    if not (0 <= guidance <= 8 and float(guidance * 2).is_integer()):
        raise ValueError(f"guidance={guidance}: the page's slider runs from 0 to 8 in steps of 0.5")
    if not 1 <= steps <= 20:
        raise ValueError(f"steps={steps}: the page's slider runs from 1 to 20")
    n = _count(images, ncols)
    return _widget(images, {"model": _name(name), "kind": "guided-ddim", "n": n, "ncols": ncols,
                            "scale": scale, "steps": steps, "seed": seed, "prompts": prompts,
                            "guidance": float(guidance)}, caption)
