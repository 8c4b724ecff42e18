"""RealNVP on whole images: dequantise, map to the logit scale, flow over the flat pixels.

Chapter 6 trains RealNVP on points of the plane; an image of H x W x C 8-bit pixels is a point
of R^D, D = H W C, once its discrete levels are made continuous. `ImageFlow` does the three
steps of Dinh et al. (2017, §4.1) and reports an exact likelihood in bits per dimension:

1. dequantise: x = (level + u) / 256, u ~ U(0, 1), so that a density on [0, 1]^D bounds the
   probability of the levels: -log2 P(levels) <= -log2 p(x) + D log2 256 (in expectation);
2. logit: y = logit(a + (1 - 2a) x), which spreads [0, 1] over R (a = 0.05 keeps it finite);
3. a `RealNVP` over the D coordinates of y, with the change-of-variables term of step 2.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from gdl import backend
from gdl.models.base import GenerativeModel, from_nested_config
from gdl.models.flows import RealNVP

LEVELS = 256


@keras.saving.register_keras_serializable(package="gdl")
class ImageFlow(GenerativeModel):
    """A `RealNVP` over flattened images; `fit` takes integer levels (N, H, W, C) in 0..255,
    `bits_per_dim(levels)` gives the held-out bound, `generate(n)` images in [0, 1]."""

    def __init__(self, flow, image_shape, alpha: float = 0.05, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.flow, self.image_shape = flow, tuple(int(s) for s in image_shape)
        self.alpha, self.seed = float(alpha), seed
        self.dim = int(np.prod(self.image_shape))
        if flow.dim != self.dim:
            raise ValueError(f"the flow has {flow.dim} dimensions; {self.image_shape} images "
                             f"have {self.dim}")
        self.seeds = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="bits_per_dim")
        if not flow.built:
            flow.build((None, self.dim))
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker]

    def _to_logits(self, levels, noise):
        """Levels -> (y on the logit scale (N, D), log|dy/dx| (N,))."""
        x = (ops.reshape(ops.cast(levels, "float32"), (-1, self.dim)) + noise) / LEVELS
        s = self.alpha + (1.0 - 2.0 * self.alpha) * x
        y = ops.log(s) - ops.log(1.0 - s)
        log_det = ops.sum(math.log(1.0 - 2.0 * self.alpha) - ops.log(s) - ops.log(1.0 - s),
                          axis=-1)
        return y, log_det

    def bits(self, levels, noise):
        """Per-image bound on -log2 P(levels) / D, for the dequantisation `noise` (N, D)."""
        y, log_det_logit = self._to_logits(levels, noise)
        log_p = self.flow.log_prob(y) + log_det_logit       # density of x on [0, 1]^D
        return (self.dim * math.log(LEVELS) - log_p) / (self.dim * math.log(2.0))

    def bits_per_dim(self, levels, batch_size: int = 256, seed: int = 0) -> float:
        """The mean bound over `levels` (one dequantisation draw per image, seeded)."""
        levels = np.asarray(levels)
        noise = np.random.default_rng(seed).uniform(size=(len(levels), self.dim))
        parts = [ops.convert_to_numpy(self.bits(levels[i:i + batch_size],
                                                noise[i:i + batch_size].astype("float32")))
                 for i in range(0, len(levels), batch_size)]
        return float(np.concatenate(parts).mean())

    def stateful_train_step(self, data):
        levels = data[0] if isinstance(data, (tuple, list)) else data
        noise = keras.random.uniform((ops.shape(levels)[0], self.dim), seed=self.seeds)
        weights = self.flow.trainable_variables
        loss, grads = backend.value_and_grad(lambda: ops.mean(self.bits(levels, noise)),
                                             weights)
        self.optimizers["optimizer"].apply(grads, weights)
        self.loss_tracker.update_state(loss)
        return {"bits_per_dim": self.loss_tracker.result()}

    def optimizer_targets(self):
        return {"optimizer": self.flow.trainable_variables}

    def generate(self, n: int, *, seed=None, temperature: float = 1.0):
        """n images in [0, 1]: z ~ N(0, temperature^2 I) through the inverse flow, back from
        the logit scale."""
        z = self.normal((n, self.dim), seed=seed) * temperature
        y = self.flow.inverse(z)[0]
        x = (ops.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)
        return ops.reshape(ops.clip(x, 0.0, 1.0), (n, *self.image_shape))

    def get_config(self):
        return {**super().get_config(), "flow": keras.saving.serialize_keras_object(self.flow),
                "image_shape": list(self.image_shape), "alpha": self.alpha, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "flow")
