"""Multimodal models (chapter 13): a small CLIP (an image encoder and a text encoder trained
with the symmetric contrastive loss), diffusion conditioned on an embedding with
classifier-free guidance, latent diffusion in a VAE's latent space, and Flamingo's Perceiver
resampler and gated cross-attention around a frozen language model.

Everything is `keras.ops` and Keras layers, so it trains on TensorFlow, JAX and PyTorch. The
diffusion parts extend chapter 8's `DiffusionModel` and U-Net (`gdl.models.diffusion`); the text
encoder and the language model are chapter 9's transformer blocks and `GPT`.
"""
from __future__ import annotations

import math
import warnings

import keras
import numpy as np
from keras import layers, ops

from gdl import backend
from gdl.models.base import GenerativeModel, from_nested_config
from gdl.models.diffusion import DiffusionModel, NoiseEmbedding, residual_block
from gdl.models.transformer import TransformerBlock

NULL = "null"   # what a dropped condition becomes: the zero vector


# --------------------------------------------------------------------------- CLIP
def normalize(x, axis=-1):
    """x scaled to unit length along `axis` (the embeddings CLIP compares)."""
    return x / ops.sqrt(ops.sum(x * x, axis=axis, keepdims=True) + 1e-12)


def contrastive_logits(image_embeddings, text_embeddings, scale):
    """scale × cosine similarity of every image with every text: (N images, N texts)."""
    return scale * ops.matmul(normalize(image_embeddings),
                              ops.transpose(normalize(text_embeddings)))


def contrastive_loss(logits):
    """CLIP's symmetric loss: the mean of the cross-entropies that pick row i's text
    among all texts (rows) and column i's image among all images (columns); pair i is
    the match."""
    labels = ops.arange(ops.shape(logits)[0])
    per_image = keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True)
    per_text = keras.losses.sparse_categorical_crossentropy(
        labels, ops.transpose(logits), from_logits=True)
    return 0.5 * (ops.mean(per_image) + ops.mean(per_text))


def build_image_encoder(image_size=32, widths=(32, 64, 128), embed_dim=64, channels=3,
                        name="image_encoder"):
    """A small CNN: image -> [feature grid (N, S/2^k, S/2^k, widths[-1]), embedding (N, D)].

    Each width is a 3×3 convolution and a strided 3×3 convolution (size / 2), both followed by
    group normalisation (batch statistics would let the examples of a contrastive batch see
    each other); the embedding is a projection of the grid's mean.
    """
    image = keras.Input((image_size, image_size, channels), name="image")
    x = image
    for width in widths:
        for stride in (1, 2):
            x = layers.Conv2D(width, 3, strides=stride, padding="same")(x)
            x = layers.GroupNormalization(groups=8)(x)
            x = layers.Activation("swish")(x)
    grid = layers.Identity(name="grid")(x)                  # (N, S/2^k, S/2^k, w)
    pooled = layers.GlobalAveragePooling2D()(grid)
    embedding = layers.Dense(embed_dim, name="embedding")(layers.LayerNormalization()(pooled))
    return keras.Model(image, [grid, embedding], name=name)


@keras.saving.register_keras_serializable(package="gdl")
class TextEncoder(layers.Layer):
    """Caption ids (N, T) -> embedding (N, embed_dim), as CLIP's text tower: token + learned
    position embeddings, causal transformer blocks (chapter 9), a final layer norm, and a
    projection of the state at the <end> token, the last non-padding id. Causal attention
    means no position ever attends to the padding after it."""

    def __init__(self, vocab_size, max_len, width=64, num_heads=4, num_blocks=2,
                 embed_dim=64, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.max_len, self.width = vocab_size, max_len, width
        self.num_heads, self.num_blocks, self.embed_dim = num_heads, num_blocks, embed_dim
        self.rate = dropout
        self.tokens = layers.Embedding(vocab_size, width)
        self.positions = layers.Embedding(max_len, width)
        self.blocks = [TransformerBlock(width, num_heads, width // num_heads, 4 * width,
                                        dropout, name=f"block_{i}") for i in range(num_blocks)]
        self.norm = layers.LayerNormalization(epsilon=1e-5)
        self.projection = layers.Dense(embed_dim)

    def build(self, input_shape=None):
        self.tokens.build()
        self.positions.build()
        for block in self.blocks:
            block.build()
        self.norm.build((None, None, self.width))
        self.projection.build((None, self.width))

    def call(self, tokens, training=False):
        t = ops.shape(tokens)[1]
        x = self.tokens(tokens) + self.positions(ops.arange(t))[None]
        for block in self.blocks:
            x = block(x, training=training)
        x = self.norm(x)                                            # (N, T, width)
        last = ops.sum(ops.cast(ops.not_equal(tokens, 0), "int32"), axis=1) - 1
        end = ops.take_along_axis(x, ops.reshape(last, (-1, 1, 1)), axis=1)[:, 0]
        return self.projection(end)                                 # (N, embed_dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "max_len": self.max_len,
                "width": self.width, "num_heads": self.num_heads,
                "num_blocks": self.num_blocks, "embed_dim": self.embed_dim,
                "dropout": self.rate}


@keras.saving.register_keras_serializable(package="gdl")
class CLIP(keras.Model):
    """Contrastive language-image pretraining: `call([images, tokens])` gives the (N, N)
    similarity logits and `fit([images, tokens])` minimises `contrastive_loss`.

    The temperature is learned as log(scale), starting at scale = 1 / `temperature` and
    capped at `max_scale` (as in CLIP: 1/0.07 and 100).
    """

    def __init__(self, image_encoder, text_encoder, temperature=0.07, max_scale=100.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.temperature, self.max_scale = float(temperature), float(max_scale)
        self.log_scale = self.add_weight(
            shape=(), name="log_scale",
            initializer=keras.initializers.Constant(math.log(1.0 / temperature)))
        if not self.text_encoder.built:
            self.text_encoder.build()

    @property
    def scale(self):
        return ops.exp(ops.minimum(self.log_scale, math.log(self.max_scale)))

    def encode_images(self, images, training=False):
        """Unit-length image embeddings (N, D)."""
        return normalize(self.image_encoder(images, training=training)[1])

    def encode_text(self, tokens, training=False):
        """Unit-length text embeddings (N, D)."""
        return normalize(self.text_encoder(tokens, training=training))

    def call(self, inputs, training=False):
        images, tokens = inputs
        return self.scale * ops.matmul(self.encode_images(images, training),
                                       ops.transpose(self.encode_text(tokens, training)))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return contrastive_loss(y_pred)

    def get_config(self):
        return {**super().get_config(),
                "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
                "text_encoder": keras.saving.serialize_keras_object(self.text_encoder),
                "temperature": self.temperature, "max_scale": self.max_scale}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "image_encoder", "text_encoder")


def embed_in_batches(fn, x, batch_size=256) -> np.ndarray:
    """fn over x in batches, as one NumPy array (embeddings of a whole split)."""
    return np.concatenate([ops.convert_to_numpy(fn(x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])


# --------------------------------------------------------------------------- guidance
def guided_noise(conditional, unconditional, scale):
    """Classifier-free guidance: eps_u + s (eps_c - eps_u). s = 0 is the unconditional
    prediction, s = 1 the conditional one, s > 1 moves further along their difference."""
    return unconditional + scale * (conditional - unconditional)


def build_conditional_unet(image_size=32, widths=(32, 64, 96, 128), block_depth=1,
                           embedding_dims=32, condition_dims=64, channels=3):
    """Chapter 8's U-Net (`gdl.models.diffusion.build_unet`) with a third input, a
    condition vector (N, condition_dims), projected and added to the noise embedding, so
    that every residual block sees what to draw as well as how noisy its input is."""
    noisy = keras.Input((image_size, image_size, channels), name="noisy_images")
    variance = keras.Input((1, 1, 1), name="noise_variance")
    condition = keras.Input((condition_dims,), name="condition")
    emb = NoiseEmbedding(embedding_dims)(variance)                      # (N,1,1,E)
    emb = layers.Dense(4 * embedding_dims, activation="swish")(emb)
    cond = layers.Dense(4 * embedding_dims, activation="swish")(condition)
    cond = layers.Dense(4 * embedding_dims)(cond)
    emb = emb + layers.Reshape((1, 1, 4 * embedding_dims))(cond)        # (N,1,1,4E)

    x = layers.Conv2D(widths[0], 1)(noisy)
    skips = []
    for width in widths[:-1]:                                          # down
        for _ in range(block_depth):
            x = residual_block(x, emb, width)
            skips.append(x)
        x = layers.AveragePooling2D(2)(x)
    for _ in range(block_depth):                                       # bottom
        x = residual_block(x, emb, widths[-1])
    for width in reversed(widths[:-1]):                                # up
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        for _ in range(block_depth):
            x = layers.Concatenate()([x, skips.pop()])
            x = residual_block(x, emb, width)
    x = backend.BatchNormalization(center=False, scale=False)(x)
    out = layers.Conv2D(channels, 1, kernel_initializer="zeros",
                        name="predicted_noise")(x)
    return keras.Model([noisy, variance, condition], out, name="conditional_unet")


def build_latent_denoiser(latent_dim=200, width=512, depth=4, embedding_dims=32,
                          condition_dims=64):
    """A residual MLP that predicts the noise in a latent vector, stored as a 1×1
    "image" (N, 1, 1, latent_dim) so that chapter 8's diffusion code runs on it as is."""
    noisy = keras.Input((1, 1, latent_dim), name="noisy_latents")
    variance = keras.Input((1, 1, 1), name="noise_variance")
    condition = keras.Input((condition_dims,), name="condition")
    emb = NoiseEmbedding(embedding_dims)(variance)                      # (N,1,1,E)
    emb = layers.Dense(width, activation="swish")(emb)
    cond = layers.Dense(width, activation="swish")(condition)
    emb = emb + layers.Reshape((1, 1, width))(layers.Dense(width)(cond))   # (N,1,1,W)
    x = layers.Dense(width)(noisy)
    for _ in range(depth):
        h = layers.LayerNormalization()(x)
        h = layers.Dense(width, activation="swish")(h) + layers.Dense(width)(emb)
        x = x + layers.Dense(width)(h)
    x = layers.LayerNormalization()(x)
    out = layers.Dense(latent_dim, kernel_initializer="zeros",
                       name="predicted_noise")(x)
    return keras.Model([noisy, variance, condition], out, name="latent_denoiser")


@keras.saving.register_keras_serializable(package="gdl")
class GuidedDiffusion(DiffusionModel):
    """Chapter 8's `DiffusionModel` with a condition: trained on (images, conditions) pairs,
    with each condition replaced by the null (zero) vector with probability `drop_rate`, so
    one network learns both eps(x_t, c) and eps(x_t, null); sampling combines them with
    `guided_noise`. `value_range=None` (latent vectors) turns off the clipping to [0, 1]."""

    def __init__(self, network, mean, std, drop_rate=0.1, value_range=(0.0, 1.0), **kwargs):
        super().__init__(network, mean, std, **kwargs)
        self.drop_rate = float(drop_rate)
        self.value_range = None if value_range is None else tuple(value_range)
        self.condition_dims = int(network.input_shape[2][-1])

    def denormalize(self, x):
        x = x * self.std + self.mean
        return x if self.value_range is None else ops.clip(x, *self.value_range)

    def noise_loss(self, data, network, training):
        if len(data) == 1:      # fit(x=(images, conditions)) gives ((images, conditions),)
            data = data[0]
        images, condition = data[0], data[1]
        x0 = self.normalize(images)
        n = ops.shape(x0)[0]
        eps = keras.random.normal(ops.shape(x0), seed=self.seeds)
        t = keras.random.uniform((n, 1, 1, 1), seed=self.seeds)
        signal, noise_rate = self.schedule(t)
        if training:   # drop some conditions: one network learns the unconditional model
            keep = keras.random.uniform((n, 1), seed=self.seeds) >= self.drop_rate
            condition = condition * ops.cast(keep, condition.dtype)
        predicted = network([signal * x0 + noise_rate * eps, noise_rate**2, condition],
                            training=training)
        return ops.mean((eps - predicted) ** 2)

    def predict_noise(self, x, signal, noise_rate, ema=True, condition=None, guidance=1.0):
        """The guided noise estimate: one network call on the conditioned and the null batch."""
        key = "ema" if ema else "raw"
        if key not in self._predictors:
            net = self.ema_network if ema else self.network

            def guided(x, v, c, s):
                both = net([ops.concatenate([x, x]), ops.concatenate([v, v]),
                            ops.concatenate([c, ops.zeros_like(c)])], training=False)
                cond, uncond = ops.split(both, 2)
                return guided_noise(cond, uncond, s)

            self._predictors[key] = backend.compile(guided, variables=[net])
        return self._predictors[key](x, noise_rate**2, condition,
                                     ops.convert_to_tensor(guidance, "float32"))

    def generate(self, n=None, *, condition=None, guidance=1.0, seed=None, steps=20,
                 initial_noise=None, ema=True, clip=True):
        """Samples for each row of `condition` (N, condition_dims; None: unconditional), in
        `value_range`, from `steps` DDIM steps at guidance scale `guidance`."""
        return self.reverse_process(n, condition=condition, guidance=guidance, seed=seed,
                                    steps=steps, initial_noise=initial_noise, ema=ema,
                                    clip=clip)[0]

    def reverse_process(self, n=None, *, condition=None, guidance=1.0, seed=None, steps=20,
                        initial_noise=None, ema=True, clip=True):
        """`generate`, keeping the way there (as chapter 8's `reverse_process`)."""
        from gdl.models.diffusion import ddim_sample

        if condition is None:
            if n is None:
                raise ValueError("give n or a condition (one row per sample)")
            condition = np.zeros((n, self.condition_dims), "float32")
        condition = ops.convert_to_tensor(condition, "float32")
        if n is None:
            n = int(ops.shape(condition)[0])
        if int(ops.shape(condition)[0]) != n or condition.shape[-1] != self.condition_dims:
            raise ValueError(f"condition must be ({n}, {self.condition_dims}), "
                             f"got {tuple(condition.shape)}")
        bounds = None
        if clip and self.value_range is not None:
            bounds = (self.normalize(self.value_range[0]), self.normalize(self.value_range[1]))
        x0, path, estimates = ddim_sample(
            lambda x, s, r: self.predict_noise(x, s, r, ema=ema, condition=condition,
                                               guidance=guidance),
            self._start(n, initial_noise, seed), steps, self.schedule, trajectory=True,
            clip=bounds)
        return (self.denormalize(x0), [self.denormalize(x) for x in path],
                [self.denormalize(e) for e in estimates])

    def get_config(self):
        return {**super().get_config(), "drop_rate": self.drop_rate,
                "value_range": None if self.value_range is None else list(self.value_range)}


@keras.saving.register_keras_serializable(package="gdl")
class LatentDiffusion(GenerativeModel):
    """Stable Diffusion's idea at book scale: a `GuidedDiffusion` over the latent vectors of a
    trained VAE (chapter 3), whose decoder turns the sampled latents into images in [0, 1].

    `encode(images)` gives the latents (N, 1, 1, latent_dim) the diffusion is trained on (the
    encoder's posterior means); `generate` samples latents with guidance and decodes them.
    """

    def __init__(self, encoder, decoder, diffusion, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.diffusion = encoder, decoder, diffusion
        self.latent_dim = int(decoder.input_shape[-1])
        self.built = True

    def encode(self, images, batch_size=256) -> np.ndarray:
        means = embed_in_batches(lambda x: self.encoder(x, training=False)[0], images,
                                 batch_size)
        return means.reshape(-1, 1, 1, self.latent_dim)                 # (N, 1, 1, L)

    def decode(self, latents):
        return self.decoder(ops.reshape(latents, (-1, self.latent_dim)), training=False)

    def generate(self, n=None, *, condition=None, guidance=1.0, seed=None, steps=20):
        latents = self.diffusion.generate(n, condition=condition, guidance=guidance,
                                          seed=seed, steps=steps)
        return self.decode(latents)

    def get_config(self):
        return {**super().get_config(),
                **{k: keras.saving.serialize_keras_object(getattr(self, k))
                   for k in ("encoder", "decoder", "diffusion")}}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "encoder", "decoder", "diffusion")


# --------------------------------------------------------------------------- Flamingo
def _feed_forward(dim, hidden):
    return keras.Sequential([layers.Dense(hidden, activation="gelu"), layers.Dense(dim)])


@keras.saving.register_keras_serializable(package="gdl")
class PerceiverResampler(layers.Layer):
    """A fixed number of learned latent queries attend to a variable number of visual
    features (N, M, d_in) -> (N, num_latents, dim), as Flamingo's resampler: each layer's
    latents attend to [features; latents], then pass a feed-forward layer, both residual."""

    def __init__(self, num_latents=8, dim=64, num_heads=4, depth=1, **kwargs):
        super().__init__(**kwargs)
        self.num_latents, self.dim, self.num_heads, self.depth = num_latents, dim, num_heads, depth
        self.input_projection = layers.Dense(dim)
        self.norms_x = [layers.LayerNormalization() for _ in range(depth)]
        self.norms_latent = [layers.LayerNormalization() for _ in range(depth)]
        self.attentions = [layers.MultiHeadAttention(num_heads, dim // num_heads)
                           for _ in range(depth)]
        self.norms_ff = [layers.LayerNormalization() for _ in range(depth)]
        self.ffs = [_feed_forward(dim, 4 * dim) for _ in range(depth)]

    def build(self, input_shape):
        self.latents = self.add_weight(shape=(self.num_latents, self.dim), name="latents",
                                       initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.input_projection.build(input_shape)
        seq = (None, None, self.dim)
        for i in range(self.depth):
            for norm in (self.norms_x[i], self.norms_latent[i], self.norms_ff[i]):
                norm.build(seq)
            self.attentions[i].build(seq, seq)
            self.ffs[i].build(seq)

    def call(self, features):
        x = self.input_projection(features)                              # (N, M, dim)
        n = ops.shape(x)[0]
        lat = ops.broadcast_to(self.latents[None], (n, self.num_latents, self.dim))
        for i in range(self.depth):
            q = self.norms_latent[i](lat)
            kv = ops.concatenate([self.norms_x[i](x), q], axis=1)      # (N, M + K, dim)
            lat = lat + self.attentions[i](q, kv)
            lat = lat + self.ffs[i](self.norms_ff[i](lat))
        return lat                                                       # (N, K, dim)

    def get_config(self):
        return {**super().get_config(), "num_latents": self.num_latents, "dim": self.dim,
                "num_heads": self.num_heads, "depth": self.depth}


@keras.saving.register_keras_serializable(package="gdl")
class GatedCrossAttention(layers.Layer):
    """Flamingo's GATED XATTN-DENSE layer: text (N, T, d), visual tokens (N, K, d_v) ->
    (N, T, d),

        x = x + tanh(a) · cross_attention(LayerNorm(x), visual)
        x = x + tanh(b) · feed_forward(LayerNorm(x))

    with the gates a = b = 0 at initialisation, so that inserted into a frozen language
    model it changes nothing until training opens the gates.
    """

    def __init__(self, dim, num_heads=4, ff_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.ff_dim = dim, num_heads, ff_dim or 4 * dim
        self.norm_attention = layers.LayerNormalization()
        self.attention = layers.MultiHeadAttention(num_heads, dim // num_heads)
        self.norm_ff = layers.LayerNormalization()
        self.ff = _feed_forward(dim, self.ff_dim)

    def build(self, text_shape, visual_shape=None):
        visual_shape = visual_shape or (None, None, self.dim)
        self.attention_gate = self.add_weight(shape=(), name="attention_gate",
                                              initializer="zeros")
        self.ff_gate = self.add_weight(shape=(), name="ff_gate", initializer="zeros")
        seq = (None, None, self.dim)
        self.norm_attention.build(seq)
        self.attention.build(seq, visual_shape)
        self.norm_ff.build(seq)
        self.ff.build(seq)

    def call(self, x, visual):
        attended = self.attention(self.norm_attention(x), visual)     # (N, T, d)
        x = x + ops.tanh(self.attention_gate) * attended
        return x + ops.tanh(self.ff_gate) * self.ff(self.norm_ff(x))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim}


@keras.saving.register_keras_serializable(package="gdl")
class Captioner(keras.Model):
    """A Flamingo-style captioner: a frozen vision encoder (its feature grid), a Perceiver
    resampler, and one gated cross-attention layer before each block of a frozen `GPT`.
    `call([images, tokens])` gives next-token logits (N, T, vocab); only the resampler and
    the gated layers train."""

    def __init__(self, vision, language, num_latents=8, num_heads=4, **kwargs):
        super().__init__(**kwargs)
        self.vision, self.language = vision, language
        self.vision.trainable = False
        self.language.trainable = False
        self.num_latents, self.num_heads = num_latents, num_heads
        dim = language.embed_dim
        self.resampler = PerceiverResampler(num_latents, dim, num_heads, name="resampler")
        self.resampler.build((None, None, vision.output_shape[0][-1]))
        self.gated = [GatedCrossAttention(dim, num_heads, name=f"gated_xattn_{i}")
                      for i in range(len(language.blocks))]
        for layer in self.gated:
            layer.build((None, None, dim), (None, num_latents, dim))
        self.built = True

    def visual_tokens(self, images):
        grid = self.vision(images, training=False)[0]                  # (N, h, w, C)
        n, h, w, c = ops.shape(grid)
        return self.resampler(ops.reshape(grid, (n, h * w, c)))         # (N, K, d)

    def call(self, inputs, training=False):
        images, tokens = inputs
        return self.next_token_logits(self.visual_tokens(images), tokens)

    def next_token_logits(self, visual, tokens):
        """Logits (N, T, vocab) of the frozen language model, its blocks each preceded by a
        gated cross-attention to the visual tokens (N, K, d)."""
        lm = self.language
        x = lm.embed(tokens, training=False)
        for gate, block in zip(self.gated, lm.blocks):
            x = block(gate(x, visual), training=False)
        return lm.head(lm.final_norm(x))                                 # (N, T, vocab)

    def caption(self, images, max_tokens=None, banned=(0,), end_id=None, batch_size=256):
        """Greedy captions (N, 1 + max_tokens) ids, starting from the language model's start
        token; `banned` ids are never chosen, and a row stops changing after `end_id`."""
        lm = self.language
        max_tokens = max_tokens or lm.max_len - 1
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            visual = self.visual_tokens(x)                  # looked at once per image
            ids = np.zeros((len(x), max_tokens + 1), "int32")
            ids[:, 0] = lm.start_id
            done = np.zeros(len(x), bool)
            for t in range(max_tokens):
                with warnings.catch_warnings():   # at t = 0 attention has one key: softmax of size 1
                    warnings.filterwarnings("ignore", message=".*softmax over axis")
                    logits = ops.convert_to_numpy(
                        self.next_token_logits(visual, ids[:, :t + 1]))[:, -1]
                logits[:, list(banned)] = -np.inf
                nxt = np.where(done, 0, logits.argmax(-1))
                ids[:, t + 1] = nxt
                if end_id is not None:
                    done |= nxt == end_id
                    if done.all():
                        break
            out.append(ids)
        return np.concatenate(out)

    def get_config(self):
        return {**super().get_config(),
                "vision": keras.saving.serialize_keras_object(self.vision),
                "language": keras.saving.serialize_keras_object(self.language),
                "num_latents": self.num_latents, "num_heads": self.num_heads}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "vision", "language")
