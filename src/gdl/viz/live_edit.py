"""The live latent-editing widget: named directions (attribute vectors) added to given latent codes,
decoded in the reader's browser.

As the other live widgets (``gdl.viz.live``), the cell's output is plain HTML: a picture made when
the chapter ran, and settings that the book's script ``_static/live.js`` reads to replace it, on
a page served over HTTP, with the decoder running live: one slider per direction, all of them
added together, applied to the given codes (e.g. held-out faces' posterior means) or to new draws
from the prior.
"""
from __future__ import annotations

import numpy as np

from gdl.viz.live import _count, _name, _widget


def live_attributes(name: str, images, latents, directions: dict, *, strengths=(-3.0, 3.0),
                    given: str = "the first faces", ncols: int = 6, scale: int = 3,
                    seed: int = 0, caption: str = ""):
    """A live view of decoder `name` (a `gdl.live.LIVE_MODELS` key of kind "latent-grid") that
    edits `latents` along `directions`.

    images: (N, H, W, C) in [0, 1], the decoded `latents` as the notebook drew them (the static
    stand-in). latents: (N, D) codes to start from. directions: {name: (D,) vector}, one slider
    each, over `strengths` (the vector's multiple; 0 at first). A "new samples" button swaps the
    codes for draws from N(0, I), a button labelled `given` brings the given ones back.
    """
    latents = np.asarray(latents, "float32")
    n = _count(images, ncols)
    if latents.ndim != 2 or len(latents) != n:
        raise ValueError(f"latents must be ({n}, D), one per image; got {latents.shape}")
    if not directions:
        raise ValueError("give at least one direction")
    named = []
    for label, vector in directions.items():
        vector = np.asarray(vector, "float32")
        if vector.shape != latents.shape[1:]:
            raise ValueError(f"direction {label!r} has shape {vector.shape}, the codes "
                             f"{latents.shape[1:]}")
        named.append({"name": str(label), "vector": _rounded(vector)})
    lo, hi = (float(s) for s in strengths)
    if not lo < 0 < hi:
        raise ValueError(f"strengths={strengths}: the range must run from below 0 to above 0")
    return _widget(images, {"model": _name(name), "kind": "latent-grid", "n": n, "ncols": ncols,
                            "scale": scale, "seed": seed, "directions": 0,
                            "latents": [_rounded(z) for z in latents],
                            "named_directions": named, "strengths": [lo, hi],
                            "given": str(given)}, caption)


def _rounded(values) -> list[float]:
    # four decimals keep the page small; the page decodes these rounded values
    return [round(float(v), 4) for v in values]
