"""Chapter 13's regression prior (DALL·E 2's first stage, in its simplest form)."""
from __future__ import annotations

import keras


def build_prior(embed_dim: int, width: int = 256) -> keras.Model:
    """A CLIP text embedding (N, embed_dim) -> a unit-length guess at the image's (N, embed_dim)."""
    return keras.Sequential([keras.Input((embed_dim,)),
                             keras.layers.Dense(width, activation="gelu"),
                             keras.layers.Dense(width, activation="gelu"),
                             keras.layers.Dense(embed_dim),
                             keras.layers.UnitNormalization()], name="prior")
