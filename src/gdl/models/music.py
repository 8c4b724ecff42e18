"""A two-headed music transformer (chapter 11): it reads a melody as two parallel token
streams, pitch ids and duration ids, and predicts the next pitch and the next duration.

    note ids (B, T) ----> Embedding(d/2) --+
                                           +-- concatenate (B, T, d) + sine positions
    duration ids (B, T) -> Embedding(d/2) -+
        -> causal `TransformerBlock`s (chapter 9) -> LayerNorm
        -> softmax over the note vocabulary      ("note",     (B, T, note_vocab))
        -> softmax over the duration vocabulary  ("duration", (B, T, duration_vocab))

The two embeddings are *concatenated* (each takes half of `embed_dim`), as the curriculum
does (128 + 128 at its settings), so a pitch and a duration never share coordinates; one
sine code of the full width (`gdl.models.transformer.sinusoidal_positions`) is then added.
The blocks are chapter 9's pre-norm blocks, so position i sees positions 0..i only.

Token ids follow `gdl.data.music.Vocabulary`: 0 is padding, 1 the unknown token. The loss
(`compile_music_transformer`) is one sparse cross-entropy per head, averaged over the
target positions that are not padding, summed over the two heads. `generate` samples
both heads with a temperature each and never draws padding or the unknown token.

Taught in chapter 11 (§11.2 the music transformer).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from gdl.models.transformer import NEGATIVE, TransformerBlock, next_token, sinusoidal_positions

PAD_ID, UNKNOWN_ID = 0, 1   # gdl.data.music.Vocabulary's reserved ids


@keras.saving.register_keras_serializable(package="gdl")
class SinePositions(layers.Layer):
    """Adds the fixed sine/cosine position codes of `sinusoidal_positions` to (B, T, d),
    for any T up to `max_len` (no weights)."""

    def __init__(self, max_len: int, **kwargs):
        super().__init__(**kwargs)
        self.max_len = max_len

    def call(self, x):
        table = ops.convert_to_tensor(sinusoidal_positions(self.max_len, x.shape[-1]))
        return x + table[None, : ops.shape(x)[1]]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_len": self.max_len}


def build_music_transformer(note_vocab: int, duration_vocab: int, max_len: int = 50,
                            embed_dim: int = 256, heads: int = 5, key_dim: int = 256,
                            ff_dim: int = 256, blocks: int = 1, dropout: float = 0.3,
                            seed: int | None = None, name: str = "music_transformer"
                            ) -> keras.Model:
    """[note ids (B, T), duration ids (B, T)] -> {"note": (B, T, note_vocab),
    "duration": (B, T, duration_vocab)}, softmax probabilities of the *next* token at
    every position (see the module doc). T may be anything up to `max_len`.

    The defaults are the curriculum's settings (sequences of 50, embedding 256 = 128 + 128,
    5 heads of key_dim 256, feed-forward 256, one block); its dropout is 0.3. `seed`, if
    given, seeds Keras' global random state (`keras.utils.set_random_seed`) before the
    weights are made, so the same seed gives the same initial model.
    """
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even (two halves, then sine codes), "
                         f"got {embed_dim}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    notes = keras.Input((None,), dtype="int32", name="note_ids")
    durations = keras.Input((None,), dtype="int32", name="duration_ids")
    x = layers.Concatenate(name="embeddings")([
        layers.Embedding(note_vocab, embed_dim // 2, embeddings_initializer="he_uniform",
                         name="note_embedding")(notes),
        layers.Embedding(duration_vocab, embed_dim // 2,
                         embeddings_initializer="he_uniform",
                         name="duration_embedding")(durations)])          # (B, T, d)
    x = SinePositions(max_len, name="positions")(x)
    for i in range(blocks):
        x = TransformerBlock(embed_dim, heads, key_dim, ff_dim, dropout,
                             name=f"block_{i}")(x)
    x = layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    outputs = {"note": layers.Dense(note_vocab, activation="softmax", name="note")(x),
               "duration": layers.Dense(duration_vocab, activation="softmax",
                                        name="duration")(x)}
    return keras.Model([notes, durations], outputs, name=name)


def compile_music_transformer(model: keras.Model, learning_rate: float = 1e-3,
                              optimizer=None) -> keras.Model:
    """Compile with one sparse cross-entropy per head, padding (id 0) masked.

    `ignore_class=PAD_ID` drops the target positions that hold padding and averages over
    the others, so a window padded at its end counts only its real tokens. The total loss
    is the sum of the two heads' losses (Keras reports each as `note_loss` and
    `duration_loss`).
    """
    def loss():
        return keras.losses.SparseCategoricalCrossentropy(ignore_class=PAD_ID)

    model.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate),
                  loss={"note": loss(), "duration": loss()})
    return model


# ------------------------------------------------------------------ data
def token_windows(note_ids, duration_ids, length: int = 50, stride: int | None = None):
    """Windows of `length + 1` tokens cut from each piece (never across two pieces).

    note_ids, duration_ids: per piece, parallel 1-D id arrays (`Vocabulary.encode`).
    A window starts every `stride` tokens (default `length`); the last, shorter window of
    a piece is padded with PAD_ID (masked out of the loss). Returns two int32 arrays
    (N, length + 1): notes and durations.
    """
    stride = stride or length
    notes_out, durations_out = [], []
    for notes, durations in zip(note_ids, duration_ids):
        notes, durations = np.asarray(notes, "int32"), np.asarray(durations, "int32")
        if len(notes) != len(durations):
            raise ValueError(f"a piece has {len(notes)} notes but {len(durations)} durations")
        for start in range(0, max(len(notes) - 1, 1), stride):
            for piece, out in ((notes, notes_out), (durations, durations_out)):
                window = np.full(length + 1, PAD_ID, "int32")
                chunk = piece[start:start + length + 1]
                window[:len(chunk)] = chunk
                out.append(window)
    return np.stack(notes_out), np.stack(durations_out)


def training_pairs(notes, durations):
    """(N, L + 1) windows -> the inputs and targets `fit` takes: ([notes, durations] of the
    first L tokens, {"note", "duration"} of the last L), the targets one step ahead."""
    return ([notes[:, :-1], durations[:, :-1]],
            {"note": notes[:, 1:], "duration": durations[:, 1:]})


# ------------------------------------------------------------------ sampling
def generate(model: keras.Model, start_notes, start_durations, steps: int,
             note_temperature: float = 0.5, duration_temperature: float = 0.5,
             seed=None, exclude_ids=(PAD_ID, UNKNOWN_ID)):
    """Continue melodies by `steps` events, one (note, duration) pair at a time.

    start_notes, start_durations: the prompt, 1-D (one melody) or 2-D (n, P) id arrays.
    At each step the model reads the last `max_len` events (its context), and the two
    heads' distributions at the last position are sampled, each with its own
    temperature (0: the likeliest id); ids in `exclude_ids` (padding and the unknown
    token by default) are never drawn. The same integer `seed` gives the same music.
    Returns (notes, durations), int32, the prompt followed by the new events, 1-D or
    (n, P + steps) like the prompt.
    """
    notes = np.asarray(start_notes, "int32")
    durations = np.asarray(start_durations, "int32")
    one = notes.ndim == 1
    notes, durations = np.atleast_2d(notes), np.atleast_2d(durations)
    if notes.shape != durations.shape or notes.shape[1] == 0:
        raise ValueError(f"the prompt needs as many notes as durations, at least one: "
                         f"got {notes.shape} and {durations.shape}")
    for t in (note_temperature, duration_temperature):
        if t < 0:
            raise ValueError(f"temperatures must be >= 0, got {t}")
    context = model.get_layer("positions").max_len
    rng = np.random.default_rng(seed)

    def draw(probabilities, temperature):
        logits = np.log(np.maximum(np.asarray(probabilities, "float64"), 1e-30))
        logits[:, list(exclude_ids)] = NEGATIVE
        u = rng.uniform(1e-7, 1 - 1e-7, len(logits))
        ids = next_token(ops.convert_to_tensor(logits, "float32"),
                         ops.convert_to_tensor(u, "float32"), temperature)
        return ops.convert_to_numpy(ids).astype("int32")

    def window(ids):
        # always `context` wide (one input shape: JAX compiles each op once), the events
        # first and padding after them, which the causal attention never lets them see
        ids = ids[:, -context:]
        return np.pad(ids, ((0, 0), (0, context - ids.shape[1]))), ids.shape[1] - 1

    for _ in range(steps):
        (note_window, last), (duration_window, _) = window(notes), window(durations)
        out = model([note_window, duration_window], training=False)
        new_note = draw(ops.convert_to_numpy(out["note"][:, last]), note_temperature)
        new_duration = draw(ops.convert_to_numpy(out["duration"][:, last]),
                            duration_temperature)
        notes = np.concatenate([notes, new_note[:, None]], axis=1)
        durations = np.concatenate([durations, new_duration[:, None]], axis=1)
    return (notes[0], durations[0]) if one else (notes, durations)
