"""A VQ-VAE with a transformer prior over its code grid, as one generative model.

Chapter 10 trains the two parts on faces (VQ-GAN's recipe, van den Oord et al. 2017; Esser
et al. 2021); this class holds them together so they are saved, loaded and sampled as one:
the GPT writes a grid of code indices in raster order and the VQ-VAE's decoder paints it.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from gdl.models.base import GenerativeModel, from_nested_config

#: token 0 is the GPT's padding (never a target); code k is token k + 1
CODE_OFFSET = 1


def prior_vocabulary(num_codes: int) -> tuple[int, int]:
    """(vocabulary size, start id) of a prior over `num_codes` codes: padding, the codes,
    a start token (build the GPT with ``exclude_ids=(0, start)``: neither is ever drawn)."""
    return num_codes + 2, num_codes + 1


@keras.saving.register_keras_serializable(package="gdl")
class VQPrior(GenerativeModel):
    """`vqvae` (a trained `gdl.models.vq.VQVAE`) and `prior` (a `GPT` over its codes);
    `generate(n)` gives images in [0, 1]. Each part is trained with its own `fit`."""

    def __init__(self, vqvae, prior, grid, **kwargs):
        super().__init__(**kwargs)
        self.vqvae, self.prior, self.grid = vqvae, prior, tuple(int(g) for g in grid)
        self.built = True

    def tokens(self, images, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Images -> the prior's (inputs, targets), through the VQ-VAE's encoder."""
        codes = np.concatenate([
            ops.convert_to_numpy(self.vqvae.encode(images[i:i + batch_size]))
            for i in range(0, len(images), batch_size)])                      # (N, h, w)
        tokens = codes.reshape(len(codes), -1).astype("int32") + CODE_OFFSET  # (N, h w)
        start = np.full((len(tokens), 1), self.prior.start_id, "int32")
        return np.concatenate([start, tokens[:, :-1]], axis=1), tokens

    def generate(self, n: int, *, seed=None, temperature: float = 1.0):
        length = self.grid[0] * self.grid[1]
        ids = self.prior.generate(n, seed=seed, max_tokens=length, temperature=temperature)
        codes = ops.convert_to_numpy(ids)[:, 1:] - CODE_OFFSET                 # (n, h w)
        return self.vqvae.decode(ops.reshape(codes, (n, *self.grid)))

    def get_config(self):
        return {**super().get_config(), "vqvae": keras.saving.serialize_keras_object(self.vqvae),
                "prior": keras.saving.serialize_keras_object(self.prior),
                "grid": list(self.grid)}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "vqvae", "prior")
