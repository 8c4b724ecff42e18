"""Transformers of chapter 9: training speed against the curriculum's GPT, sampling speed with
and without the key/value cache, and the chapter's metrics as cached.

    python benchmarks/transformer.py throughput  # -> transformer.md
    python benchmarks/transformer.py metrics     # -> transformer_metrics.md

`throughput` runs everything side by side in one process, alternating, because absolute
times on this shared machine move by 2-5x from minute to minute (DESIGN §10):

1. one training step of the curriculum's GPT at its published settings (vocabulary 10,000,
   length 80, embedding 256, 2 heads of key size 256, feed-forward 256, one block, batch 32;
   Foster 2023, ch. 9), built as that notebook builds it: `keras.layers.MultiHeadAttention`
   with a causal mask and the attention scores returned, post-norm residual blocks, a softmax
   output and `fit` -- against `gdl.models.transformer.GPT` at the same settings. Rounds of
   a few steps of each alternate; the report gives the median ratio (book / ours: above 1
   means ours is faster) and the tokens per second of both;
2. training tokens per second of the chapter's `cpu` model (vocabulary 3,001, length 65,
   embedding 128, 4 heads, 2 blocks, batch 64), in the same rounds;
3. sampling tokens per second of the compiled key/value-cache loop and of the compiled
   loop that re-encodes the whole sequence per token (chapter `cpu` model, 8 samples of 64
   new tokens), alternating, with a check that both give the same tokens.

`metrics` copies the numbers chapter 9 printed in its cached `cpu` run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent

from common import machine, write_cached_metrics  # noqa: E402  (benchmarks/ is on sys.path)

# The curriculum's GPT (Foster 2023, chapter 9 notebook settings).
BOOK = dict(vocab=10_000, length=80, embed=256, heads=2, key_dim=256, ff=256, blocks=1,
            batch=32, dropout=0.1)
# Chapter 9's cpu profile.
CHAPTER = dict(vocab=3_001, length=65, embed=128, heads=4, key_dim=32, ff=512, blocks=2,
               batch=64, dropout=0.0)
ROUNDS, STEPS = 5, 6              # rounds of alternating timing, training steps per round
SAMPLES, NEW_TOKENS = 8, 64


def book_gpt(s):
    """The curriculum's architecture, written here from its published description."""
    import keras
    from keras import layers

    class TokenAndPosition(layers.Layer):
        def __init__(self, vocab, length, dim):
            super().__init__()
            self.token = layers.Embedding(vocab, dim)
            self.position = layers.Embedding(length, dim)

        def call(self, tokens):
            where = keras.ops.arange(keras.ops.shape(tokens)[-1])
            return self.token(tokens) + self.position(where)

    tokens = keras.Input(shape=(None,), dtype="int32")
    x = TokenAndPosition(s["vocab"], s["length"], s["embed"])(tokens)
    for _ in range(s["blocks"]):
        attended, _ = layers.MultiHeadAttention(
            s["heads"], s["key_dim"], output_shape=s["embed"])(
            x, x, use_causal_mask=True, return_attention_scores=True)
        x = layers.LayerNormalization(epsilon=1e-6)(x + layers.Dropout(s["dropout"])(attended))
        ff = layers.Dense(s["embed"])(layers.Dense(s["ff"], activation="relu")(x))
        x = layers.LayerNormalization(epsilon=1e-6)(x + layers.Dropout(s["dropout"])(ff))
    probs = layers.Dense(s["vocab"], activation="softmax")(x)
    model = keras.Model(tokens, probs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy())
    return model


def our_gpt(s):
    import keras

    from gdl.models.transformer import GPT

    model = GPT(s["vocab"], s["length"], embed_dim=s["embed"], num_heads=s["heads"],
                key_dim=s["key_dim"], ff_dim=s["ff"], num_blocks=s["blocks"],
                dropout=s["dropout"], exclude_ids=(0, 1, s["vocab"] - 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def batches(s, steps, seed):
    """Random token ids: a step's cost does not depend on which words they are."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(2, s["vocab"] - 1, (s["batch"] * steps, s["length"] + 1))
    return ids[:, :-1].astype("int32"), ids[:, 1:].astype("int32")


def seconds_per_step(model, s, seed):
    x, y = batches(s, STEPS, seed)
    start = time.perf_counter()
    model.fit(x, y, batch_size=s["batch"], epochs=1, shuffle=False, verbose=0)
    return (time.perf_counter() - start) / STEPS


def training():
    import keras

    keras.utils.set_random_seed(0)
    models = {"book": (book_gpt(BOOK), BOOK), "ours": (our_gpt(BOOK), BOOK),
              "chapter": (our_gpt(CHAPTER), CHAPTER)}
    for model, s in models.values():                  # trace and compile first
        x, y = batches(s, 2, 99)
        model.fit(x, y, batch_size=s["batch"], verbose=0)
    times = {name: [] for name in models}
    for r in range(ROUNDS):
        for name, (model, s) in models.items():
            times[name].append(seconds_per_step(model, s, r))
        print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.3f} s/step"
                                             for n, t in times.items()), flush=True)
    ratios = [b / o for b, o in zip(times["book"], times["ours"])]
    rate = {name: statistics.median(s["batch"] * s["length"] / t for t in times[name])
            for name, (_, s) in models.items()}
    params = {name: model.count_params() for name, (model, _) in models.items()}
    return ratios, rate, params


def sampling():
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = our_gpt(CHAPTER)
    prompt = [CHAPTER["vocab"] - 1]
    kwargs = dict(seed=0, prompt=prompt, max_tokens=NEW_TOKENS)
    outputs = {}
    for kv in (True, False):                                     # compile both
        outputs[kv] = np.asarray(model.generate(SAMPLES, kv_cache=kv, **kwargs))
    same = bool(np.array_equal(outputs[True], outputs[False]))
    times = {True: [], False: []}
    for r in range(ROUNDS):
        for kv in (True, False):
            start = time.perf_counter()
            np.asarray(model.generate(SAMPLES, kv_cache=kv, **{**kwargs, "seed": r}))
            times[kv].append(time.perf_counter() - start)
    ratios = [n / c for c, n in zip(times[True], times[False])]
    rate = {kv: statistics.median(SAMPLES * NEW_TOKENS / t for t in times[kv])
            for kv in times}
    return ratios, rate, same


def throughput():
    ratios, rate, params = training()
    s_ratios, s_rate, same = sampling()

    def settings(s):
        return (f"vocabulary {s['vocab']:,}, length {s['length']}, embedding {s['embed']}, "
                f"{s['heads']} heads of key size {s['key_dim']}, feed-forward {s['ff']}, "
                f"{s['blocks']} block(s), batch {s['batch']}, dropout {s['dropout']}")

    lines = [
        "# Transformers (chapter 9): throughput",
        "",
        f"Machine: {machine()}. Date: {dt.date.today().isoformat()}.",
        "Command: `python benchmarks/transformer.py throughput`. The machine is shared with "
        "other jobs, so absolute times vary by 2-5x; the ratios come from rounds that "
        f"alternate the models in one process ({ROUNDS} rounds of {STEPS} steps; medians).",
        "",
        "## Training: the curriculum's GPT against ours, same settings",
        "",
        f"Settings: {settings(BOOK)} (the curriculum's GPT, Foster 2023, ch. 9).",
        "",
        "| model | parameters | training tokens / s (median) |",
        "| --- | --- | --- |",
        f"| curriculum's architecture: `keras.layers.MultiHeadAttention`, post-norm, "
        f"softmax output | {params['book']:,} | {rate['book']:,.0f} |",
        f"| `gdl.models.transformer.GPT` (attention in `keras.ops`, pre-norm, logits) "
        f"| {params['ours']:,} | {rate['ours']:,.0f} |",
        "",
        f"Ratio of seconds per step, book / ours, per round: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; **median {statistics.median(ratios):.2f}** "
        "(above 1: ours is faster).",
        "",
        "## Training: the chapter's `cpu` model",
        "",
        f"Settings: {settings(CHAPTER)}; {params['chapter']:,} parameters. Median "
        f"**{rate['chapter']:,.0f} training tokens / s** in the same rounds.",
        "",
        f"## Sampling: key/value cache against re-encoding ({SAMPLES} samples of "
        f"{NEW_TOKENS} new tokens, chapter `cpu` model)",
        "",
        "| compiled loop | tokens / s (median) |",
        "| --- | --- |",
        f"| with the key/value cache | {s_rate[True]:,.0f} |",
        f"| re-encoding the whole sequence for every token | {s_rate[False]:,.0f} |",
        "",
        f"Ratio of seconds, re-encoding / cache, per round: "
        f"{', '.join(f'{r:.1f}' for r in s_ratios)}; **median "
        f"{statistics.median(s_ratios):.1f}**. Same tokens from both for the same seed: "
        f"{'yes' if same else 'NO'}.",
        "",
    ]
    (HERE / "transformer.md").write_text("\n".join(lines))
    print("\n".join(lines))


def metrics():
    """Copy the numbers chapter 9 printed in its cached `cpu` run."""
    write_cached_metrics(
        "ch09", ("profile=", "perplexity", "nats/token", "tokens/s", "tokens / s",
                 "largest difference", "largest gradient", "same tokens", "reward",
                 "whole chapter", "summary"),
        "transformer", "Chapter 9 metrics, as cached")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["throughput", "metrics"])
    args = parser.parse_args()
    throughput() if args.mode == "throughput" else metrics()
