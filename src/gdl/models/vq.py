"""Vector quantisation (chapter 10): a learned codebook that turns an encoder's continuous
outputs into discrete codes, and `VQVAE`, a small convolutional VQ-VAE built around it.

Taught in chapter 10: the VQ-VAE of van den Oord et al. (2017), "Neural Discrete Representation
Learning" (arXiv 1711.00937), whose quantiser VQ-GAN (Esser et al. 2021, "Taming Transformers
for High-Resolution Image Synthesis", arXiv 2012.09841) reuses with an adversarial decoder. The
pieces:

- `VectorQuantizer`: nearest-codebook-entry lookup, the straight-through estimator, the
  codebook + commitment loss (added with `add_loss`), code usage and perplexity, and restarting
  dead codes on encoder outputs (as in Jukebox, Dhariwal et al. 2020, arXiv 2005.00341);
- `build_vq_encoder`, `build_vq_decoder`: strided convolutions and residual blocks, an image
  (H, W, C) to a grid of vectors (H / f, W / f, code_dim) and back, f = 2 ** len(filters);
- `VQVAE`: encoder, quantiser and decoder; `compile(optimizer, loss="mse")`, then `fit(x, x)`.

Everything is written with `keras.ops`, so it runs on any Keras 3 backend.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from gdl.models.base import from_nested_config

PACKAGE = "gdl"


def vq_loss(z, quantized, beta=0.25):
    """The VQ-VAE loss ||sg[z] - e||^2 + beta ||z - sg[e]||^2, each term a mean over elements.

    The first (codebook) term moves the chosen entries e towards the encoder outputs z; the
    second (commitment) term keeps the encoder's outputs near the entries it picked.
    """
    codebook = ops.mean(ops.square(ops.stop_gradient(z) - quantized))
    commitment = ops.mean(ops.square(z - ops.stop_gradient(quantized)))
    return codebook + beta * commitment


@keras.saving.register_keras_serializable(package=PACKAGE)
class VectorQuantizer(layers.Layer):
    """Replace each vector (..., code_dim) by its nearest entry of a learned codebook of
    `num_codes` vectors.

    `call(z)` returns the quantised vectors, with the straight-through estimator's gradient
    (the identity, from the decoder back to the encoder), and adds `vq_loss(z, q, beta)` to
    the layer's losses. `codes(z)` gives the indices, `lookup(indices)` the vectors,
    `usage`/`perplexity` how many codes a batch uses, and `restart_dead_codes` moves codes used
    fewer than `dead_code_threshold` times onto encoder outputs (between training steps).
    """

    def __init__(self, num_codes: int, code_dim: int, beta: float = 0.25,
                 dead_code_threshold: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.num_codes, self.code_dim = int(num_codes), int(code_dim)
        self.beta, self.dead_code_threshold = float(beta), float(dead_code_threshold)
        # Small entries, all near the origin: a vector then picks the code that points most its
        # way (||e||^2 is negligible in `distances`). Codes it never picks stay where they are:
        # `restart_dead_codes` moves them onto the data.
        limit = 1.0 / self.num_codes
        self.codebook = self.add_weight(
            shape=(self.num_codes, self.code_dim), name="codebook",
            initializer=keras.initializers.RandomUniform(-limit, limit))
        self.built = True   # the codebook's shape does not depend on the input

    def distances(self, z):
        """Squared Euclidean distances (..., num_codes) from each vector to every entry."""
        # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2: a matrix product instead of an
        # (..., num_codes, code_dim) tensor of differences.
        e = self.codebook                                               # (K, D)
        return (ops.sum(ops.square(z), axis=-1, keepdims=True)          # (..., 1)
                - 2.0 * ops.matmul(z, ops.transpose(e))                 # (..., K)
                + ops.sum(ops.square(e), axis=-1))                      # (K,)

    def codes(self, z):
        """The index of the nearest entry, (..., code_dim) -> (...,) int32."""
        return ops.cast(ops.argmin(self.distances(z), axis=-1), "int32")

    def lookup(self, indices):
        """Codebook entries for integer indices, (...,) -> (..., code_dim)."""
        return ops.take(self.codebook, ops.cast(indices, "int32"), axis=0)

    def call(self, z):
        quantized = self.lookup(self.codes(z))                          # (..., D)
        self.add_loss(vq_loss(z, quantized, self.beta))
        # The straight-through estimator z + sg(q - z): q forward, identity backward. Grouped
        # as sg(q) + (z - sg(z)) so that the forward value is q to the last bit (z - z is
        # exactly 0; z + (q - z) is not always q in floating point).
        return ops.stop_gradient(quantized) + (z - ops.stop_gradient(z))

    # ------------------------------------------------------------------ code usage
    def usage(self, indices):
        """How many times each code occurs in `indices`: (num_codes,) float32 counts."""
        flat = ops.reshape(ops.cast(indices, "int32"), (-1,))
        return ops.sum(ops.one_hot(flat, self.num_codes), axis=0)

    def perplexity(self, indices):
        """exp(entropy of the codes' usage): the number of equally used codes that would
        give the same entropy (num_codes at best, 1 when one code does everything)."""
        counts = self.usage(indices)
        p = counts / ops.sum(counts)
        # An unused code adds 0 log 0 = 0; the maximum keeps log() finite there.
        entropy = -ops.sum(p * ops.log(ops.maximum(p, 1e-12)))
        return ops.exp(entropy)

    def restart_dead_codes(self, z_batch, counts, threshold=None, seed=None) -> np.ndarray:
        """Move every code used fewer than `threshold` times (default: `dead_code_threshold`)
        onto an encoder output drawn at random from `z_batch` (..., code_dim); return the
        indices of the moved codes.

        A code that no encoder output is nearest to gets no gradient and would stay unused for
        ever; restarting it where the data are gives it a chance. Runs eagerly, between
        training steps (not inside a compiled step); `seed` makes the draw repeatable.
        """
        threshold = self.dead_code_threshold if threshold is None else threshold
        counts = np.asarray(ops.convert_to_numpy(counts))
        dead = np.flatnonzero(counts < threshold)
        if dead.size == 0:
            return dead
        vectors = np.asarray(ops.convert_to_numpy(z_batch)).reshape(-1, self.code_dim)  # (N, D)
        rng = np.random.default_rng(seed)
        # Distinct outputs where the batch has enough of them, so restarted codes differ.
        picks = rng.choice(len(vectors), size=dead.size, replace=dead.size > len(vectors))
        codebook = np.array(ops.convert_to_numpy(self.codebook))
        codebook[dead] = vectors[picks]
        self.codebook.assign(codebook)
        return dead

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_codes": self.num_codes, "code_dim": self.code_dim,
                "beta": self.beta, "dead_code_threshold": self.dead_code_threshold}


# ---------------------------------------------------------------------- encoder and decoder
def _residual_block(h, hidden):
    """h + conv1x1(relu(conv3x3(relu(h)))), the VQ-VAE paper's block (shape unchanged)."""
    r = layers.ReLU()(h)
    r = layers.Conv2D(hidden, 3, padding="same", activation="relu")(r)
    r = layers.Conv2D(h.shape[-1], 1)(r)
    return layers.Add()([h, r])


def build_vq_encoder(input_shape, code_dim, filters=(32, 64), residual_blocks=1,
                     name="encoder"):
    """An image (H, W, C) -> a grid of vectors (H / f, W / f, code_dim), f = 2 ** len(filters).

    One 4x4 convolution of stride 2 per entry of `filters`, `residual_blocks` residual blocks,
    then a linear 1x1 convolution into the codebook's space (the quantiser compares these
    outputs with its entries, so the last layer has no activation).
    """
    images = keras.Input(shape=input_shape, name="image")
    h = images
    for f in filters:
        h = layers.Conv2D(f, 4, strides=2, padding="same", activation="relu")(h)
    for _ in range(residual_blocks):
        h = _residual_block(h, filters[-1])
    h = layers.ReLU()(h)
    z = layers.Conv2D(code_dim, 1, name="z")(h)          # (H / f, W / f, code_dim)
    return keras.Model(images, z, name=name)


def build_vq_decoder(output_shape, code_dim, filters=(64, 32), residual_blocks=1,
                     name="decoder"):
    """The encoder's mirror: a grid (H / f, W / f, code_dim) -> pixels (H, W, C) in (0, 1).

    A 3x3 convolution, `residual_blocks` residual blocks, one 4x4 transposed convolution of
    stride 2 per entry of `filters`, and a 3x3 convolution with a sigmoid to the channels.
    """
    height, width, channels = output_shape
    scale = 2 ** len(filters)
    if height % scale or width % scale:
        raise ValueError(f"image size {height}x{width} must be divisible by {scale} for "
                         f"{len(filters)} upsampling layers")
    grid = keras.Input(shape=(height // scale, width // scale, code_dim), name="quantized")
    h = layers.Conv2D(filters[0], 3, padding="same")(grid)
    for _ in range(residual_blocks):
        h = _residual_block(h, filters[0])
    h = layers.ReLU()(h)
    for f in filters:
        h = layers.Conv2DTranspose(f, 4, strides=2, padding="same", activation="relu")(h)
    pixels = layers.Conv2D(channels, 3, padding="same", activation="sigmoid",
                           name="pixels")(h)                  # (H, W, C)
    return keras.Model(grid, pixels, name=name)


# ---------------------------------------------------------------------- the model
@keras.saving.register_keras_serializable(package=PACKAGE)
class VQVAE(keras.Model):
    """A VQ-VAE: encoder -> `VectorQuantizer` -> decoder; `call(x)` returns the reconstruction.

    Training is Keras' own: `compile(optimizer, loss="mse")` and `fit(x, x)` minimise the
    reconstruction loss plus the quantiser's VQ loss (which it adds with `add_loss`); the logs
    show both parts as "reconstruction" and "vq_loss". `encode(x)` gives the grid of code
    indices (batch, H / f, W / f), `decode(indices)` the images, `restart_dead_codes(x)` moves
    the codes that a batch of images leaves unused onto its encoder outputs: call it once
    before training (a data-dependent start for the codebook) and then every epoch or so (from
    a callback; it is safe inside `fit` on every backend).
    """

    def __init__(self, encoder, quantizer, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.vq_loss_tracker = keras.metrics.Mean(name="vq_loss")
        self.built = True   # the parts come built, so a model saved before any call is whole

    def call(self, x, training=False):
        z = self.encoder(x, training=training)              # (B, h, w, D)
        return self.decoder(self.quantizer(z), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        vq = sum(self.losses)                      # the quantiser's add_loss from this call
        self.vq_loss_tracker.update_state(vq)
        self.reconstruction_tracker.update_state(total - vq)
        return total

    def encode(self, x):
        """Images (B, H, W, C) -> code indices (B, H / f, W / f)."""
        return self.quantizer.codes(self.encoder(x, training=False))

    def decode(self, indices):
        """Code indices (B, h, w) -> images (B, H, W, C)."""
        return self.decoder(self.quantizer.lookup(indices), training=False)

    def restart_dead_codes(self, x, threshold=None, seed=None) -> np.ndarray:
        """Restart the codes that the images `x` use fewer than `threshold` times (see
        `VectorQuantizer.restart_dead_codes`); return their indices. Safe in a callback."""
        # During `fit` on JAX the current weights live in the trainer's state: write them back
        # first (the trainer rereads them at its next step). Keras' `Callback.model` does this
        # too, but a callback may hold the model itself. Other backends have no such state.
        sync = getattr(self, "jax_state_sync", None)
        if sync is not None:
            sync()
        z = self.encoder(x, training=False)
        counts = self.quantizer.usage(self.quantizer.codes(z))
        return self.quantizer.restart_dead_codes(z, counts, threshold, seed)

    def get_config(self):
        return {**super().get_config(),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "quantizer": keras.saving.serialize_keras_object(self.quantizer),
                "decoder": keras.saving.serialize_keras_object(self.decoder)}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "encoder", "quantizer", "decoder")
