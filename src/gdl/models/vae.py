"""Autoencoders and variational autoencoders (chapter 3).

Everything here uses `keras.ops` and `keras.random` only, so it runs on any
Keras 3 backend. The pieces:

- `Sampling`: the reparameterization trick, z = mean + sigma * epsilon;
- `kl_divergence`, `reconstruction_loss`: the two terms of the VAE loss,
  per example, in nats;
- `build_encoder`, `build_decoder`: convolutional encoder and its mirror
  image, a decoder of transposed convolutions;
- `VAE`: a model that owns its encoder and decoder (no global objects),
  trains with `fit` through `compute_loss`, and saves to `.keras`.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from gdl.models.base import from_nested_config

PACKAGE = "gdl"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Sampling(layers.Layer):
    """Draw z ~ N(z_mean, exp(z_log_var)) so that gradients reach both.

    The noise epsilon ~ N(0, I) is the only random input; z is a
    differentiable function of z_mean and z_log_var given epsilon.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean),
                                      seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def kl_divergence(z_mean, z_log_var):
    """KL( N(z_mean, diag(exp(z_log_var))) || N(0, I) ), one value per row.

    The closed form for a diagonal Gaussian, summed over latent dimensions.
    """
    terms = 1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var)
    return -0.5 * ops.sum(terms, axis=-1)


def reconstruction_loss(x, x_hat):
    """Binary cross-entropy summed over pixels: nats per image.

    `x` holds targets in [0, 1]; `x_hat` the decoder's probabilities.
    """
    bce = ops.binary_crossentropy(x, x_hat)          # per pixel, (B, H, W, C)
    return ops.sum(ops.reshape(bce, (ops.shape(bce)[0], -1)), axis=-1)


def _activation(name):
    if name == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2)
    return layers.Activation(name)


def build_encoder(input_shape, latent_dim, filters=(32, 64, 128),
                  variational=True, batch_norm=False, activation="relu",
                  momentum=0.9, name="encoder"):
    """Strided 3x3 convolutions, each halving the image, then dense heads.

    variational=True: outputs [z_mean, z_log_var], each (B, latent_dim);
    variational=False: outputs one embedding z (B, latent_dim).
    momentum: of the batch-norm moving averages (Keras' default 0.99 needs
    thousands of steps to settle; short runs need a faster average).
    """
    images = keras.Input(shape=input_shape, name="image")
    h = images
    for f in filters:
        h = layers.Conv2D(f, 3, strides=2, padding="same")(h)
        if batch_norm:
            h = layers.BatchNormalization(momentum=momentum)(h)
        h = _activation(activation)(h)
    h = layers.Flatten()(h)
    if not variational:
        z = layers.Dense(latent_dim, name="z")(h)
        return keras.Model(images, z, name=name)
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(h)
    return keras.Model(images, [z_mean, z_log_var], name=name)


def build_decoder(latent_dim, output_shape, filters=(128, 64, 32),
                  batch_norm=False, activation="relu", momentum=0.9,
                  name="decoder"):
    """The encoder's mirror: dense to a small feature map, then transposed
    convolutions that each double it, then a sigmoid to pixel probabilities.
    """
    height, width, channels = output_shape
    scale = 2 ** len(filters)
    if height % scale or width % scale:
        raise ValueError(f"image size {height}x{width} must be divisible by "
                         f"{scale} for {len(filters)} upsampling layers")
    start = (height // scale, width // scale, filters[0])
    z = keras.Input(shape=(latent_dim,), name="z")
    h = layers.Dense(math.prod(start))(z)
    if batch_norm:
        h = layers.BatchNormalization(momentum=momentum)(h)
    h = _activation(activation)(h)
    h = layers.Reshape(start)(h)
    for f in filters:
        h = layers.Conv2DTranspose(f, 3, strides=2, padding="same")(h)
        if batch_norm:
            h = layers.BatchNormalization(momentum=momentum)(h)
        h = _activation(activation)(h)
    x_hat = layers.Conv2D(channels, 3, padding="same", activation="sigmoid",
                          name="pixels")(h)
    return keras.Model(z, x_hat, name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VAE(keras.Model):
    """A variational autoencoder: loss = reconstruction + beta * KL.

    The encoder maps x to [z_mean, z_log_var]; the decoder maps z to pixel
    probabilities. `call` returns (reconstruction, z_mean, z_log_var) and
    `fit(x)` minimises `compute_loss`; the reconstruction and KL terms are
    reported separately (nats per image).
    """

    def __init__(self, encoder, decoder, beta=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.beta = float(beta)
        self.seed = seed
        self.sampling = Sampling(seed=seed, name="sampling")
        self.reconstruction_tracker = keras.metrics.Mean(
            name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def call(self, x, training=False):
        z_mean, z_log_var = self.encoder(x, training=training)
        z = self.sampling([z_mean, z_log_var])
        reconstruction = self.decoder(z, training=training)
        return reconstruction, z_mean, z_log_var

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        reconstruction, z_mean, z_log_var = y_pred
        rec = ops.mean(reconstruction_loss(x, reconstruction))
        kl = ops.mean(kl_divergence(z_mean, z_log_var))
        self.reconstruction_tracker.update_state(rec)
        self.kl_tracker.update_state(kl)
        return rec + self.beta * kl

    def reconstruct(self, x, training=False):
        """Decode the posterior mean: the deterministic reconstruction."""
        z_mean, _ = self.encoder(x, training=training)
        return self.decoder(z_mean, training=training)

    #: the range of `generate`'s output (the decoder ends in a sigmoid)
    output_range = (0.0, 1.0)

    def generate(self, n, *, seed=None):
        """Decode n draws from the prior N(0, I): pixel probabilities in [0, 1].

        As in `gdl.models.base`: `seed=None` draws from the model's own seed generator (a new
        batch each call); an integer draws z with NumPy, so the same seed gives the same
        samples on every backend.
        """
        latent_dim = self.decoder.input_shape[-1]
        if seed is None:
            z = keras.random.normal((n, latent_dim), seed=self.sampling.seed_generator)
        else:
            z = ops.convert_to_tensor(
                np.random.default_rng(seed).standard_normal((n, latent_dim)), "float32")
        return self.decoder(z, training=False)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": self.beta,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "encoder", "decoder")
