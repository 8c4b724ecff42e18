"""Transformers (chapter 9): attention written with `keras.ops`, a causal multi-head
self-attention layer with a key/value cache, the pre-norm transformer block, learned and
sinusoidal positions, and `GPT`, a decoder-only language model that meets the book's
model contract.

Taught in chapter 9 (§9.1 attention, §9.2 the block and positions, §9.3 GPT, §9.4 the
key/value cache). Token ids follow chapter 5's tokenizer: id 0 is padding.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from gdl import backend
from gdl.models.base import GenerativeModel

NEGATIVE = -1e9   # the score of a masked pair: exp() of it is exactly 0 in float32


def _init():
    return keras.initializers.RandomNormal(stddev=0.02)   # GPT-2's initialisation


# ------------------------------------------------------------------ attention


def attention(q, k, v, mask=None):
    """Scaled dot-product attention: softmax(q k^T / sqrt(d_k)) v.

    q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v); `mask` (boolean,
    broadcastable to (..., T_q, T_k)) is True where a query may look at a key.
    Returns the outputs (..., T_q, d_v) and the weights (..., T_q, T_k).
    """
    scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = ops.where(mask, scores, NEGATIVE)
    weights = ops.softmax(scores, axis=-1)          # each row sums to 1
    return ops.matmul(weights, v), weights


def causal_mask(length):
    """(length, length) booleans: query i may look at keys 0..i, not after."""
    i = ops.arange(length)
    return i[:, None] >= i[None, :]


@keras.saving.register_keras_serializable(package="gdl")
class CausalSelfAttention(layers.Layer):
    """Multi-head self-attention over a sequence (batch, T, d) -> (batch, T, d).

    Each of `num_heads` heads projects the input to queries, keys and values of size
    `key_dim`, attends with `attention`, and the heads' outputs are projected back to
    d. The weights have the shapes of `keras.layers.MultiHeadAttention`'s (query, key
    and value kernels (d, heads, key_dim), output kernel (heads, key_dim, d)). With
    `causal=True` position i attends to positions 0..i only. `step` processes one new
    position against a key/value cache (used for fast sampling).
    """

    def __init__(self, num_heads: int, key_dim: int, causal: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim, self.causal = num_heads, key_dim, causal

    def build(self, input_shape):
        d, h, k = input_shape[-1], self.num_heads, self.key_dim
        for name in ("query", "key", "value"):
            kernel = self.add_weight(shape=(d, h, k), initializer=_init(),
                                     name=f"{name}_kernel")
            bias = self.add_weight(shape=(h, k), initializer="zeros", name=f"{name}_bias")
            setattr(self, f"{name}_kernel", kernel)
            setattr(self, f"{name}_bias", bias)
        self.output_kernel = self.add_weight(shape=(h, k, d), initializer=_init(),
                                             name="output_kernel")
        self.output_bias = self.add_weight(shape=(d,), initializer="zeros",
                                           name="output_bias")

    def project(self, x):
        """(batch, T, d) -> queries, keys, values, each (batch, heads, T, key_dim)."""
        def heads(kernel, bias):
            return ops.einsum("btd,dhk->bhtk", x, kernel) + bias[:, None, :]
        return (heads(self.query_kernel, self.query_bias),
                heads(self.key_kernel, self.key_bias),
                heads(self.value_kernel, self.value_bias))

    def merge(self, heads):
        """(batch, heads, T, key_dim) -> (batch, T, d): concatenate and project."""
        return ops.einsum("bhtk,hkd->btd", heads, self.output_kernel) + self.output_bias

    def call(self, x, return_weights=False):
        q, k, v = self.project(x)
        mask = causal_mask(ops.shape(x)[1]) if self.causal else None
        heads, weights = attention(q, k, v, mask)   # (B, h, T, k), (B, h, T, T)
        out = self.merge(heads)
        return (out, weights) if return_weights else out

    def step(self, x, cache_k, cache_v, t):
        """One new position t: x (batch, 1, d); caches (batch, heads, L, key_dim) hold
        the keys and values of positions < t. Returns the output (batch, 1, d) and the
        caches with position t written in."""
        q, k, v = self.project(x)                              # (B, h, 1, k) each
        cache_k = ops.slice_update(cache_k, (0, 0, t, 0), k)
        cache_v = ops.slice_update(cache_v, (0, 0, t, 0), v)
        seen = ops.arange(ops.shape(cache_k)[2]) <= t          # (L,): 0..t, not later
        heads, _ = attention(q, cache_k, cache_v, seen)
        return self.merge(heads), cache_k, cache_v

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "key_dim": self.key_dim, "causal": self.causal}


# ------------------------------------------------------------------ the block


@keras.saving.register_keras_serializable(package="gdl")
class TransformerBlock(layers.Layer):
    """A pre-norm transformer block (as in GPT-2), (batch, T, d) -> (batch, T, d):

        x = x + attention(LayerNorm(x))
        x = x + feed_forward(LayerNorm(x))    feed_forward: d -> ff_dim (GELU) -> d

    Dropout (rate `dropout`) acts on both branches while training.
    """

    def __init__(self, embed_dim: int, num_heads: int, key_dim: int, ff_dim: int,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.key_dim = embed_dim, num_heads, key_dim
        self.ff_dim, self.rate = ff_dim, dropout
        self.norm1 = layers.LayerNormalization(epsilon=1e-5)
        self.attention = CausalSelfAttention(num_heads, key_dim)
        self.norm2 = layers.LayerNormalization(epsilon=1e-5)
        self.ff_in = layers.Dense(ff_dim, activation="gelu", kernel_initializer=_init())
        self.ff_out = layers.Dense(embed_dim, kernel_initializer=_init())
        self.dropout = layers.Dropout(dropout)

    def build(self, input_shape=None):   # explicit: a loaded model gets its weights back
        shape = (None, None, self.embed_dim)
        for layer in (self.norm1, self.attention, self.norm2, self.ff_in):
            layer.build(shape)
        self.ff_out.build((None, None, self.ff_dim))

    def feed_forward(self, x):
        return self.ff_out(self.ff_in(x))

    def call(self, x, training=False, return_weights=False):
        a, weights = self.attention(self.norm1(x), return_weights=True)
        x = x + self.dropout(a, training=training)
        x = x + self.dropout(self.feed_forward(self.norm2(x)), training=training)
        return (x, weights) if return_weights else x

    def step(self, x, cache_k, cache_v, t):
        """`call` for one new position t, with the attention's key/value cache."""
        a, cache_k, cache_v = self.attention.step(self.norm1(x), cache_k, cache_v, t)
        x = x + a
        return x + self.feed_forward(self.norm2(x)), cache_k, cache_v

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim,
                "num_heads": self.num_heads, "key_dim": self.key_dim,
                "ff_dim": self.ff_dim, "dropout": self.rate}


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """(length, dim) fixed position codes of Vaswani et al. (2017): for pair i of the
    dim / 2 frequencies, sin and cos of position / 10000^(2i / dim)."""
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dimension, got {dim}")
    position = np.arange(length)[:, None]                      # (L, 1)
    frequency = 1.0 / 10_000 ** (np.arange(0, dim, 2) / dim)   # (dim / 2,)
    table = np.zeros((length, dim), "float32")
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency)
    return table


# ------------------------------------------------------------------ sampling


def next_token(logits, u, temperature: float = 1.0, top_k: int | None = None):
    """Token ids (batch,) drawn from logits (batch, V) by inverse-CDF sampling.

    `u` (batch,) is uniform in (0, 1): the same u gives the same token, so two samplers
    fed the same noise agree. `temperature` divides the logits (0: the argmax);
    `top_k` keeps only the k likeliest tokens.
    """
    if temperature == 0:
        return ops.cast(ops.argmax(logits, axis=-1), "int32")
    logits = logits / temperature
    if top_k:
        kth = ops.top_k(logits, top_k)[0][:, -1:]               # (batch, 1)
        logits = ops.where(logits < kth, NEGATIVE, logits)
    cdf = ops.cumsum(ops.softmax(logits, axis=-1), axis=-1)     # (batch, V)
    below = ops.cast(cdf < u[:, None] * cdf[:, -1:], "int32")
    return ops.minimum(ops.sum(below, axis=-1), ops.shape(logits)[-1] - 1)


# ------------------------------------------------------------------ the model


@keras.saving.register_keras_serializable(package="gdl")
class GPT(GenerativeModel):
    """A decoder-only transformer language model: token ids (batch, T) -> logits of the
    next token (batch, T, vocab_size).

    Token embedding + position code (`positions`: "learned", "sinusoidal" or "none"),
    `num_blocks` pre-norm `TransformerBlock`s, a final layer norm and a dense layer to the
    vocabulary. `fit` takes (inputs, targets) id arrays, targets being the inputs shifted
    one step; the loss is the mean cross-entropy over targets that are not padding
    (`pad_id`).

    `generate(n, *, seed=None, prompt=None, max_tokens=None, temperature=1.0,
    top_k=None, kv_cache=True)` returns (n, len(prompt) + max_tokens) int32 token ids,
    the prompt included, in `output_range` = (0, vocab_size - 1). `prompt` is a list of
    ids shared by the n samples (default: `[start_id]`); `max_tokens` defaults to filling
    the context of `max_len` tokens. Ids in `exclude_ids` (padding, unknown word, start
    token) are never drawn. The same integer seed gives the same tokens on every
    backend, with the key/value cache or without it (`kv_cache=False` re-encodes the
    whole sequence for every new token).
    """

    POSITIONS = ("learned", "sinusoidal", "none")

    def __init__(self, vocab_size: int, max_len: int, embed_dim: int = 128,
                 num_heads: int = 4, key_dim: int | None = None,
                 ff_dim: int | None = None, num_blocks: int = 2, dropout: float = 0.1,
                 positions: str = "learned", pad_id: int = 0,
                 start_id: int | None = None, exclude_ids=(), seed=None, **kwargs):
        super().__init__(**kwargs)
        if positions not in self.POSITIONS:
            raise ValueError(f"positions must be one of {self.POSITIONS}, "
                             f"not {positions!r}")
        self.vocab_size, self.max_len, self.embed_dim = vocab_size, max_len, embed_dim
        self.num_heads, self.num_blocks, self.rate = num_heads, num_blocks, dropout
        self.key_dim = key_dim or embed_dim // num_heads
        self.ff_dim = ff_dim or 4 * embed_dim
        self.positions, self.pad_id = positions, pad_id
        self.start_id = start_id if start_id is not None else vocab_size - 1
        self.exclude_ids = tuple(int(i) for i in exclude_ids)
        self.seed = seed
        self.output_range = (0, vocab_size - 1)
        self.seeds = keras.random.SeedGenerator(seed)

        self.token_embedding = layers.Embedding(vocab_size, embed_dim,
                                                embeddings_initializer=_init())
        self.token_embedding.build()
        if positions == "learned":
            self.position_embedding = layers.Embedding(max_len, embed_dim,
                                                       embeddings_initializer=_init())
            self.position_embedding.build()
        self.embed_dropout = layers.Dropout(dropout)
        self.blocks = [TransformerBlock(embed_dim, num_heads, self.key_dim, self.ff_dim,
                                        dropout, name=f"block_{i}")
                       for i in range(num_blocks)]
        for block in self.blocks:
            block.build()
        self.final_norm = layers.LayerNormalization(epsilon=1e-5)
        self.final_norm.build((None, None, embed_dim))
        self.head = layers.Dense(vocab_size, kernel_initializer=_init())
        self.head.build((None, None, embed_dim))
        bias = np.zeros(vocab_size, "float32")
        bias[list(self.exclude_ids)] = NEGATIVE
        self._exclude_bias = bias
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._samplers = {}
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker]

    # -------------------------------------------------------------- forward
    def position_codes(self, positions):
        """The codes (..., d) added to the token embeddings at integer `positions`, or
        None when the model has no position information."""
        if self.positions == "learned":
            return self.position_embedding(positions)
        if self.positions == "sinusoidal":
            table = sinusoidal_positions(self.max_len, self.embed_dim)
            return ops.take(table, positions, axis=0)
        return None

    def embed(self, tokens, training=False):
        """Token ids (batch, T) -> token embeddings plus position codes (batch, T, d)."""
        x = self.token_embedding(tokens)
        codes = self.position_codes(ops.arange(ops.shape(tokens)[1]))
        if codes is not None:
            x = x + codes
        return self.embed_dropout(x, training=training)

    def transform(self, x, training=False, return_weights=False):
        """Embedded inputs (batch, T, d) through the blocks and the final norm."""
        weights = []
        for block in self.blocks:
            x, w = block(x, training=training, return_weights=True)
            weights.append(w)
        x = self.final_norm(x)
        return (x, weights) if return_weights else x

    def call(self, tokens, training=False):
        return self.head(self.transform(self.embed(tokens, training), training))

    def attention_weights(self, tokens) -> list:
        """One (batch, heads, T, T) array of attention weights per block."""
        _, weights = self.transform(self.embed(tokens), return_weights=True)
        return [ops.convert_to_numpy(w) for w in weights]

    # -------------------------------------------------------------- training
    def token_nll(self, inputs, targets, training=False):
        """Mean negative log-likelihood (nats) per target token that is not padding."""
        logits = self(inputs, training=training)
        nll = keras.losses.sparse_categorical_crossentropy(targets, logits,
                                                           from_logits=True)  # (B, T)
        real = ops.cast(ops.not_equal(targets, self.pad_id), nll.dtype)
        return ops.sum(nll * real) / ops.maximum(ops.sum(real), 1.0)

    def stateful_train_step(self, data):
        inputs, targets = data[:2]
        weights = self.trainable_variables
        loss, grads = backend.value_and_grad(
            lambda: self.token_nll(inputs, targets, training=True), weights)
        self.optimizers["optimizer"].apply(grads, weights)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def stateful_test_step(self, data):
        inputs, targets = data[:2]
        self.loss_tracker.update_state(self.token_nll(inputs, targets))
        return {"loss": self.loss_tracker.result()}

    # -------------------------------------------------------------- sampling
    def _choose(self, hidden, u, temperature, top_k):
        """Final hidden state (batch, d) and noise (batch,) -> next token ids (batch,)."""
        logits = self.head(hidden) + self._exclude_bias
        return next_token(logits, u, temperature, top_k)

    def _cached_loop(self, prompt, noise, temperature, top_k):
        """Feed one token per step through every block's `step`, keeping the keys and
        values of earlier positions in a cache: each step costs one position's work."""
        batch, p = ops.shape(prompt)[0], prompt.shape[1]
        total = p + noise.shape[0]
        tokens = ops.concatenate(
            [prompt, ops.zeros((batch, total - p), "int32")], axis=1)   # (B, total)
        cache = ops.zeros((batch, self.num_heads, total, self.key_dim))
        caches = [(cache, cache) for _ in self.blocks]

        def step(t, state):
            tokens, caches = state
            x = self.token_embedding(ops.take(tokens, t, axis=1))[:, None, :]   # (B,1,d)
            codes = self.position_codes(t)
            if codes is not None:
                x = x + codes
            new_caches = []
            for block, (cache_k, cache_v) in zip(self.blocks, caches):
                x, cache_k, cache_v = block.step(x, cache_k, cache_v, t)
                new_caches.append((cache_k, cache_v))
            u = ops.take(noise, ops.maximum(t + 1 - p, 0), axis=0)
            drawn = self._choose(self.final_norm(x)[:, 0], u, temperature, top_k)
            keep = ops.take(tokens, t + 1, axis=1)        # a prompt token stays
            drawn = ops.where(t + 1 >= p, drawn, keep)
            tokens = ops.slice_update(tokens, (0, t + 1), drawn[:, None])
            return tokens, new_caches

        tokens, _ = ops.fori_loop(0, total - 1, step, (tokens, caches))
        return tokens

    def _naive_loop(self, prompt, noise, temperature, top_k):
        """For each new token, run the whole network over the whole sequence again (the
        positions not yet written hold padding, which the causal mask keeps unseen)."""
        batch, p = ops.shape(prompt)[0], prompt.shape[1]
        total = p + noise.shape[0]
        tokens = ops.concatenate(
            [prompt, ops.zeros((batch, total - p), "int32")], axis=1)

        def step(t, tokens):
            hidden = self.transform(self.embed(tokens))              # (B, total, d)
            u = ops.take(noise, t + 1 - p, axis=0)
            drawn = self._choose(ops.take(hidden, t, axis=1), u, temperature, top_k)
            return ops.slice_update(tokens, (0, t + 1), drawn[:, None])

        return ops.fori_loop(p - 1, total - 1, step, tokens)

    def sampler(self, temperature: float = 1.0, top_k: int | None = None,
                kv_cache: bool = True):
        """The compiled function (prompt (n, P) int32, noise (max_tokens, n) uniform)
        -> tokens (n, P + max_tokens) that `generate` calls (one per setting)."""
        key = (float(temperature), top_k, bool(kv_cache))
        if key not in self._samplers:
            loop = self._cached_loop if kv_cache else self._naive_loop

            def sample(prompt, noise):
                return loop(prompt, noise, temperature, top_k)

            self._samplers[key] = backend.compile(sample, variables=self)
        return self._samplers[key]

    def generate(self, n: int, *, seed=None, prompt=None, max_tokens: int | None = None,
                 temperature: float = 1.0, top_k: int | None = None,
                 kv_cache: bool = True):
        """n token sequences (n, len(prompt) + max_tokens), int32; see the class doc."""
        prompt = [self.start_id] if prompt is None else [int(i) for i in prompt]
        if not prompt:
            raise ValueError("the prompt needs at least one token "
                             "(e.g. [model.start_id])")
        if max_tokens is None:
            max_tokens = self.max_len - len(prompt)
        if max_tokens < 1 or len(prompt) + max_tokens > self.max_len:
            raise ValueError(f"the prompt ({len(prompt)} tokens) plus max_tokens "
                             f"({max_tokens}) must fit the context of "
                             f"{self.max_len} tokens")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        # (0, 1) open, one number per drawn token: the inverse CDF picks the token
        noise = self.uniform((max_tokens, n), 1e-7, 1.0 - 1e-7, seed=seed)
        prompts = ops.convert_to_tensor(np.tile(np.asarray(prompt, "int32"), (n, 1)))
        return self.sampler(temperature, top_k, kv_cache)(prompts, noise)

    # -------------------------------------------------------------- saving
    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "max_len": self.max_len, "embed_dim": self.embed_dim,
                "num_heads": self.num_heads, "key_dim": self.key_dim,
                "ff_dim": self.ff_dim,
                "num_blocks": self.num_blocks, "dropout": self.rate,
                "positions": self.positions, "pad_id": self.pad_id,
                "start_id": self.start_id, "exclude_ids": list(self.exclude_ids),
                "seed": self.seed}
