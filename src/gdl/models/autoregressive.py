"""Autoregressive models (chapter 5): a recurrent language model with a text
generator, PixelCNN's masked convolutions, and the discretized logistic mixture
of PixelCNN++ written with Keras ops (no TensorFlow Probability).

Random draws are passed in as uniform noise where a loop is compiled, so the
same seed gives the same samples and no random state lives inside the loop.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from gdl import backend
from gdl.models.base import GenerativeModel, from_nested_config

# ------------------------------------------------------------------ text


def build_text_model(vocab_size: int, kind: str = "lstm", embed_dim: int = 100,
                     units: int = 128, name: str | None = None) -> keras.Model:
    """Token ids (batch, time) -> next-token logits (batch, time, vocab_size).

    `kind` is "lstm", "stacked" (two LSTM layers), "gru" or "bidirectional"
    (an LSTM reading each direction; it sees the future, see chapter 5).
    Id 0 is padding. Sequences are padded on the right, so a left-to-right
    model's predictions at real tokens never depend on it (no mask is needed,
    which keeps the fast fused recurrent kernels); the loss ignores id 0.
    """
    def lstm():
        return layers.LSTM(units, return_sequences=True)

    recurrent = {
        "lstm": [lstm()],
        "stacked": [lstm(), lstm()],
        "gru": [layers.GRU(units, return_sequences=True)],
        "bidirectional": [layers.Bidirectional(lstm())],
    }
    if kind not in recurrent:
        raise ValueError(f"kind must be one of {sorted(recurrent)}, "
                         f"got {kind!r}")
    tokens = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(vocab_size, embed_dim)(tokens)
    for layer in recurrent[kind]:
        x = layer(x)
    logits = layers.Dense(vocab_size)(x)
    return keras.Model(tokens, logits, name=name or f"{kind}_lm")


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Probabilities proportional to p ** (1 / temperature).

    Temperature 0 puts all the mass on the argmax.
    """
    logits = np.asarray(logits, dtype="float64")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        probs = np.zeros_like(logits)
        best = np.argmax(logits, axis=-1)[..., None]
        np.put_along_axis(probs, best, 1.0, axis=-1)
        return probs
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    probs = np.exp(scaled)
    return probs / probs.sum(axis=-1, keepdims=True)


class TextGenerator:
    """Writes text one token at a time with a trained next-token model.

    Each step feeds the last `window` tokens (right-padded with 0) through
    one compiled call and samples the next token from the prediction at the
    last real position. Padding (id 0) and the out-of-vocabulary token
    (id 1) are never sampled.
    """

    def __init__(self, model: keras.Model, vocab: list[str], window: int,
                 banned: tuple[int, ...] = (0, 1)):
        self.model, self.vocab, self.window = model, list(vocab), window
        self.banned = np.asarray(banned, dtype=int)
        self.index = {word: i for i, word in enumerate(self.vocab)}
        # Compiled once; on JAX the model's weights are inputs of the compiled call, so it
        # follows further training rather than baking in today's weights.
        self._call = backend.compile(lambda x: model(x, training=False), variables=model)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(word, 1) for word in text.split()]

    def next_logits(self, ids: list[int]) -> np.ndarray:
        """Logits over the vocabulary for the token that follows `ids`."""
        ids = list(ids)[-self.window:]
        x = np.zeros((1, self.window), dtype="int32")
        x[0, :len(ids)] = ids
        logits = np.asarray(self._call(x))[0, len(ids) - 1].astype("float64")
        logits[self.banned] = -np.inf
        return logits

    def generate(self, prompt: str, max_tokens: int, temperature: float = 1.0,
                 stop: str | None = None, seed: int | None = None) -> str:
        rng = np.random.default_rng(seed)
        ids = self.encode(prompt)
        stop_id = self.index.get(stop) if stop else None
        for _ in range(max_tokens):
            probs = apply_temperature(self.next_logits(ids), temperature)
            token = int(rng.choice(len(probs), p=probs))
            ids.append(token)
            if token == stop_id:
                break
        return " ".join(self.vocab[i] for i in ids)


# ------------------------------------------------------------------ PixelCNN


def causal_mask(kernel_size: int, mask_type: str) -> np.ndarray:
    """(k, k) mask of the taps a pixel may see: rows above, and left of centre.

    Type "A" also hides the centre (the pixel itself: first layer); type "B"
    keeps it (later layers, whose centre already only carries the past).
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    mask = np.zeros((kernel_size, kernel_size), dtype="float32")
    c = kernel_size // 2
    mask[:c, :] = 1.0                      # every row above the centre
    mask[c, :c] = 1.0                      # left of the centre on its row
    if mask_type == "B":
        mask[c, c] = 1.0
    return mask


@keras.saving.register_keras_serializable(package="gdl")
class MaskedConv2D(layers.Conv2D):
    """A 'same' convolution whose kernel is multiplied by a causal mask."""

    def __init__(self, mask_type: str, filters: int, kernel_size: int,
                 **kwargs):
        kwargs.setdefault("padding", "same")
        super().__init__(filters, kernel_size, **kwargs)
        self.mask_type = mask_type
        k = self.kernel_size[0]
        # (k, k) -> (k, k, 1, 1): broadcasts over input and output channels
        self.mask = causal_mask(k, mask_type)[:, :, None, None]

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * self.mask)

    def get_config(self):
        config = super().get_config()
        config["mask_type"] = self.mask_type
        return config


@keras.saving.register_keras_serializable(package="gdl")
class ResidualBlock(layers.Layer):
    """1×1 conv (halve the channels) -> masked 3×3 conv (type B) -> 1×1
    conv (restore them), plus the block's input."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.squeeze = layers.Conv2D(filters // 2, 1, activation="relu")
        self.masked = MaskedConv2D("B", filters // 2, 3, activation="relu")
        self.expand = layers.Conv2D(filters, 1, activation="relu")

    def build(self, input_shape):   # explicit, so a loaded model gets its weights back
        half = (*input_shape[:-1], self.filters // 2)
        self.squeeze.build(input_shape)
        self.masked.build(half)
        self.expand.build(half)

    def call(self, x):
        return x + self.expand(self.masked(self.squeeze(x)))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def build_pixelcnn(image_size: int, outputs: int, filters: int = 64,
                   blocks: int = 5, name: str = "pixelcnn") -> keras.Model:
    """(batch, H, W, 1) images in [0, 1] -> (batch, H, W, outputs).

    A 7×7 type-A masked convolution, `blocks` residual blocks, two 1×1 type-B
    layers, then a 1×1 convolution to `outputs` numbers per pixel (logits over
    the intensity levels, or the parameters of a logistic mixture).
    """
    images = keras.Input(shape=(image_size, image_size, 1))
    x = MaskedConv2D("A", filters, 7, activation="relu")(images)
    for _ in range(blocks):
        x = ResidualBlock(filters)(x)
    for _ in range(2):
        x = MaskedConv2D("B", filters, 1, activation="relu")(x)
    out = layers.Conv2D(outputs, 1)(x)
    return keras.Model(images, out, name=name)


def sample_categorical(logits, uniform):
    """One draw per row of `logits` (..., n) by the Gumbel-max trick.

    `uniform` has the shape of `logits`, with values in (0, 1).
    """
    gumbel = -ops.log(-ops.log(uniform))
    return ops.argmax(logits + gumbel, axis=-1)

# ------------------------------------------------------------------ mixture


def split_mixture(params):
    """(..., 3K) -> mixture logits, means and log-scales, each (..., K)."""
    logit_weights, means, log_scales = ops.split(params, 3, axis=-1)
    return logit_weights, means, ops.maximum(log_scales, -7.0)


def logistic_mixture_log_prob(levels, params, num_levels: int = 256):
    """log P(value) of integer intensities under a discretized logistic mixture.

    `levels` (...) holds integers in 0 .. num_levels-1; `params` (..., 3K). Each
    value v is the bin [x - h, x + h] of x = 2 v / (num_levels - 1) - 1 with
    h = 1 / (num_levels - 1); the two end bins reach out to -inf and +inf, so
    the probabilities of all num_levels values sum to one.
    """
    logit_weights, means, log_scales = split_mixture(params)
    v = ops.cast(levels, params.dtype)[..., None]               # (..., 1)
    half = 1.0 / (num_levels - 1)
    x = 2.0 * v * half - 1.0
    inv_scale = ops.exp(-log_scales)
    upper = inv_scale * (x - means + half)
    lower = inv_scale * (x - means - half)
    log_cdf_upper = upper - ops.softplus(upper)       # log sigmoid(upper)
    log_survival_lower = -ops.softplus(lower)         # log(1 - sigmoid(lower))
    mass = ops.sigmoid(upper) - ops.sigmoid(lower)
    # Where a bin's mass is too small to subtract accurately: density × width.
    centre = inv_scale * (x - means)
    log_density = centre - log_scales - 2.0 * ops.softplus(centre)
    log_mass = ops.where(mass > 1e-5, ops.log(ops.maximum(mass, 1e-12)),
                         log_density + math.log(2.0 * half))
    top = num_levels - 1.5
    log_bin = ops.where(v < 0.5, log_cdf_upper,
                        ops.where(v > top, log_survival_lower, log_mass))
    log_weights = ops.log_softmax(logit_weights, axis=-1)
    return ops.logsumexp(log_bin + log_weights, axis=-1)


def mixture_nll(y_true, params, num_levels: int = 256):
    """Keras loss: mean negative log-likelihood in nats per pixel."""
    levels = ops.squeeze(ops.cast(y_true, "int32"), axis=-1)   # (batch, H, W)
    return -ops.mean(logistic_mixture_log_prob(levels, params, num_levels))


def sample_logistic_mixture(params, u_component, u_value,
                            num_levels: int = 256):
    """Integer intensities drawn from the mixture, given uniform noise.

    `u_component` (..., K) picks a component (Gumbel-max on the mixture logits);
    `u_value` (...) is pushed through that logistic's inverse CDF; the result is
    clipped to [-1, 1] and rounded to the nearest of the `num_levels` values.
    """
    logit_weights, means, log_scales = split_mixture(params)
    k = sample_categorical(logit_weights, u_component)
    pick = ops.one_hot(k, ops.shape(means)[-1], dtype=params.dtype)
    mean = ops.sum(means * pick, axis=-1)
    scale = ops.exp(ops.sum(log_scales * pick, axis=-1))
    u = ops.clip(u_value, 1e-5, 1.0 - 1e-5)
    x = mean + scale * (ops.log(u) - ops.log(1.0 - u))   # inverse CDF
    x = ops.clip(x, -1.0, 1.0)
    return ops.cast(ops.round((x + 1.0) / 2.0 * (num_levels - 1)), "int32")

# ------------------------------------------------------------------ sampling


def pixel_sampler(model: keras.Model, num_levels: int, draw, noise_width: int):
    """A compiled function noise -> images, filling pixels in raster order.

    `draw(out, noise)` turns the model's outputs at one pixel, (batch, C),
    and uniform noise (batch, noise_width) into integer levels (batch,). The
    function takes noise of shape (H*W, batch, noise_width) and returns
    (batch, H, W, 1) integer images; each of its H*W steps is one call of the
    model on the whole batch.
    """
    height, width = model.input_shape[1:3]
    n_pixels = height * width

    def fill(noise):
        batch = ops.shape(noise)[1]
        images = ops.zeros((batch, height, width, 1), dtype="float32")

        def step(i, images):
            out = model(images / (num_levels - 1), training=False)
            out = ops.reshape(out, (batch, n_pixels, -1))
            value = draw(ops.take(out, i, axis=1), ops.take(noise, i, axis=0))
            where = ops.reshape(ops.one_hot(i, n_pixels), (1, height, width, 1))
            value = ops.cast(value, "float32")[:, None, None, None]
            return images * (1.0 - where) + value * where

        images = ops.fori_loop(0, n_pixels, step, images)
        return ops.cast(images, "int32")

    return backend.compile(fill, variables=model)


def categorical_sampler(model: keras.Model, num_levels: int):
    """Compiled sampler for a PixelCNN with a softmax over the levels."""
    return pixel_sampler(model, num_levels, sample_categorical, num_levels)


def mixture_sampler(model: keras.Model, num_levels: int = 256):
    """Compiled sampler for a PixelCNN whose outputs are a logistic mixture."""
    k = model.output_shape[-1] // 3

    def draw(params, noise):
        return sample_logistic_mixture(params, noise[:, :k], noise[:, k],
                                       num_levels)

    return pixel_sampler(model, num_levels, draw, k + 1)


def sample_naive(model: keras.Model, num_levels: int, n: int, seed: int = 0,
                 pixels: int | None = None) -> np.ndarray:
    """The slow way: one `predict` call from Python per pixel (softmax).

    Stops after the first `pixels` pixels when given (to time a part of it).
    """
    rng = np.random.default_rng(seed)
    height, width = model.input_shape[1:3]
    images = np.zeros((n, height, width, 1), dtype="float32")
    for i in range(height * width if pixels is None else pixels):
        row, col = divmod(i, width)
        logits = model.predict(images / (num_levels - 1), verbose=0)
        probs = apply_temperature(logits[:, row, col, :], 1.0)   # softmax
        u = rng.uniform(size=(n, 1))
        level = (u > probs.cumsum(axis=-1)).sum(axis=-1)          # inverse CDF
        images[:, row, col, 0] = np.minimum(level, num_levels - 1)
    return images.astype("int32")

# ------------------------------------------------------------------ the model


@keras.saving.register_keras_serializable(package="gdl")
class PixelCNN(GenerativeModel):
    """A PixelCNN network (see `build_pixelcnn`) with its likelihood and its compiled sampler.

    `fit` takes integer images (batch, H, W, 1) with levels 0 .. num_levels-1; the loss is
    the negative log-likelihood in nats per pixel. `head` says what the network outputs:
    "categorical" (num_levels logits per pixel) or "mixture" (3K logistic-mixture
    parameters). `generate(n, seed=...)` returns (n, H, W, 1) images in [0, 1].
    """

    HEADS = ("categorical", "mixture")

    def __init__(self, network, num_levels: int, head: str = "categorical", seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        if head not in self.HEADS:
            raise ValueError(f"head must be one of {self.HEADS}, not {head!r}")
        outputs = network.output_shape[-1]
        if head == "categorical" and outputs != num_levels:
            raise ValueError(f"a categorical head needs {num_levels} outputs per pixel "
                             f"(one logit per level); the network has {outputs}")
        if head == "mixture" and outputs % 3:
            raise ValueError(f"a mixture head needs 3K outputs per pixel; the network "
                             f"has {outputs}")
        self.network, self.num_levels, self.head, self.seed = network, num_levels, head, seed
        self.seeds = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._sampler = None
        self.built = True   # the network is a built functional model

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, levels, training=False):
        return self.network(ops.cast(levels, "float32") / (self.num_levels - 1),
                            training=training)

    def nll(self, levels, training=False):
        """Mean negative log-likelihood of integer images, nats per pixel."""
        out = self(levels, training=training)
        if self.head == "mixture":
            return mixture_nll(levels, out, self.num_levels)
        labels = ops.squeeze(ops.cast(levels, "int32"), axis=-1)
        return ops.mean(keras.losses.sparse_categorical_crossentropy(
            labels, out, from_logits=True))

    def stateful_train_step(self, data):
        levels = data[0] if isinstance(data, (tuple, list)) else data
        weights = self.network.trainable_variables
        loss, grads = backend.value_and_grad(lambda: self.nll(levels, training=True),
                                             weights)
        self.optimizers["optimizer"].apply(grads, weights)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def stateful_test_step(self, data):
        levels = data[0] if isinstance(data, (tuple, list)) else data
        self.loss_tracker.update_state(self.nll(levels))
        return {"loss": self.loss_tracker.result()}

    def optimizer_targets(self):
        return {"optimizer": self.network.trainable_variables}

    def generate(self, n: int, *, seed=None):
        """n images in [0, 1], drawn pixel by pixel in raster order."""
        if self._sampler is None:
            self._sampler = (categorical_sampler(self.network, self.num_levels)
                             if self.head == "categorical"
                             else mixture_sampler(self.network, self.num_levels))
        height, width = self.network.input_shape[1:3]
        noise_width = (self.num_levels if self.head == "categorical"
                       else self.network.output_shape[-1] // 3 + 1)
        # (0, 1) open: the Gumbel trick takes log(-log(u))
        noise = self.uniform((height * width, n, noise_width), 1e-6, 1.0 - 1e-6, seed=seed)
        levels = self._sampler(noise)
        return ops.cast(levels, "float32") / (self.num_levels - 1)

    def get_config(self):
        return {**super().get_config(),
                "network": keras.saving.serialize_keras_object(self.network),
                "num_levels": self.num_levels, "head": self.head, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "network")
