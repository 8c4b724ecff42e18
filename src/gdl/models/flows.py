"""Normalizing flows: affine coupling layers and RealNVP, with keras.ops.

Conventions (chapter 6): the flow f maps data x to latent z. Every layer
returns its output together with log|det J| of the map it applied, one number
per example, so that

    log p(x) = log N(f(x); 0, I) + sum over layers of log|det J_layer|.

No TensorFlow Probability: the only distribution needed is the standard
normal, whose log-density is one line.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z):
    """log N(z; 0, I) of each row: (N, D) -> (N,)."""
    dim = ops.shape(z)[-1]
    return -0.5 * ops.sum(ops.square(z), axis=-1) - 0.5 * dim * LOG_2PI


def alternating_masks(n_layers: int, dim: int) -> np.ndarray:
    """(n_layers, dim) 0/1 masks; 1 marks the coordinates a layer keeps.

    Layer 0 keeps coordinates 0, 2, 4, ... and transforms 1, 3, 5, ...;
    layer 1 does the opposite, and so on, so every coordinate is transformed.
    """
    if n_layers < 1 or dim < 2:
        raise ValueError("need at least one layer and two dimensions")
    base = (1 - np.arange(dim) % 2).astype("float32")    # 1, 0, 1, 0, ...
    return np.stack([base if i % 2 == 0 else 1.0 - base
                     for i in range(n_layers)])


@keras.saving.register_keras_serializable(package="gdl")
class AffineCoupling(keras.layers.Layer):
    """One affine coupling layer of RealNVP.

    With a fixed 0/1 `mask` (1 = keep), the layer computes
        z = x * exp(s(x_keep)) + t(x_keep)   on the coordinates it changes,
        z = x                                on the coordinates it keeps,
    where s (bounded by tanh) and t are MLPs that see only the kept part.
    Its Jacobian is triangular, so log|det J| = sum of s over the changed
    coordinates: no determinant is ever computed.
    """

    def __init__(self, mask, units: int = 256, depth: int = 4,
                 l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask = np.asarray(mask, dtype="float32")
        self.units, self.depth, self.l2 = int(units), int(depth), float(l2)
        dim = len(self.mask)
        reg = keras.regularizers.L2(l2) if l2 else None

        def mlp(last_activation, name):
            hidden = [keras.layers.Dense(units, activation="relu",
                                         kernel_regularizer=reg)
                      for _ in range(depth)]
            last = keras.layers.Dense(dim, activation=last_activation,
                                      kernel_regularizer=reg)
            return keras.Sequential(hidden + [last], name=name)

        self.scale_net = mlp("tanh", "scale")   # s: log-scale in [-1, 1]
        self.shift_net = mlp(None, "shift")     # t: unbounded shift

    def build(self, input_shape):
        self.scale_net.build(input_shape)
        self.shift_net.build(input_shape)
        self.built = True

    def scale_and_shift(self, x):
        """s and t for each row of x, zero on the kept coordinates."""
        keep = ops.convert_to_tensor(self.mask, dtype=x.dtype)
        x_keep = x * keep                                  # (N, D)
        s = self.scale_net(x_keep) * (1.0 - keep)          # (N, D)
        t = self.shift_net(x_keep) * (1.0 - keep)          # (N, D)
        return s, t

    def call(self, x):
        """Data direction -> latent direction: (z, log|det dz/dx|)."""
        s, t = self.scale_and_shift(x)
        z = x * ops.exp(s) + t          # kept coordinates: s = t = 0
        return z, ops.sum(s, axis=-1)

    def inverse(self, z):
        """Latent direction -> data direction: (x, log|det dx/dz|)."""
        s, t = self.scale_and_shift(z)  # z equals x on the kept coordinates
        x = (z - t) * ops.exp(-s)
        return x, -ops.sum(s, axis=-1)

    def get_config(self):
        return {**super().get_config(), "mask": self.mask.tolist(),
                "units": self.units, "depth": self.depth, "l2": self.l2}


@keras.saving.register_keras_serializable(package="gdl")
class RealNVP(keras.Model):
    """A stack of affine coupling layers with alternating masks.

    `model(x)` returns (z, log|det dz/dx|); `model.log_prob(x)` the exact
    log-density; `model.generate(n)` (or `sample(n)`) draws z ~ N(0, I) and inverts the stack.
    Training minimises the negative log-likelihood in nats per example
    (compile with an optimizer only; the loss is built in).
    """

    def __init__(self, dim: int = 2, n_couplings: int = 2, units: int = 256,
                 depth: int = 4, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.n_couplings = int(dim), int(n_couplings)
        self.units, self.depth, self.l2 = int(units), int(depth), float(l2)
        self.couplings = [
            AffineCoupling(mask, units, depth, l2, name=f"coupling_{i}")
            for i, mask in enumerate(alternating_masks(n_couplings, dim))]

    def build(self, input_shape):
        for layer in self.couplings:
            layer.build(input_shape)
        self.built = True

    def call(self, x):
        log_det = ops.zeros(ops.shape(x)[:1], dtype=x.dtype)
        for layer in self.couplings:
            x, layer_log_det = layer(x)
            log_det = log_det + layer_log_det
        return x, log_det

    def inverse(self, z):
        log_det = ops.zeros(ops.shape(z)[:1], dtype=z.dtype)
        for layer in reversed(self.couplings):
            z, layer_log_det = layer.inverse(z)
            log_det = log_det + layer_log_det
        return z, log_det

    def log_prob(self, x):
        """Exact log p(x) in nats: (N, D) -> (N,)."""
        z, log_det = self(x)
        return standard_normal_log_prob(z) + log_det

    #: `generate` returns points of R^dim: no bounds
    output_range = (-math.inf, math.inf)

    def generate(self, n: int, *, seed=None):
        """n points x = f^-1(z), z ~ N(0, I), shape (n, dim). As in `gdl.models.base`: an
        integer `seed` draws z with NumPy (the same samples on every backend); None draws
        from Keras' global seed generator (a new batch each call)."""
        if seed is None:
            z = keras.random.normal((n, self.dim))
        else:
            z = ops.convert_to_tensor(
                np.random.default_rng(seed).standard_normal((n, self.dim)), "float32")
        return self.inverse(z)[0]

    def sample(self, n: int, seed=None):
        """`generate(n, seed=seed)`."""
        return self.generate(n, seed=seed)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        z, log_det = y_pred
        nll = -ops.mean(standard_normal_log_prob(z) + log_det)
        if training and self.losses:
            nll = nll + ops.sum(self.losses)     # weight penalties, if any
        return nll

    def get_config(self):
        return {**super().get_config(), "dim": self.dim,
                "n_couplings": self.n_couplings, "units": self.units,
                "depth": self.depth, "l2": self.l2}
