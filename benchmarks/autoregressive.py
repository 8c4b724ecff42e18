"""Autoregressive models of chapter 5: training throughput, sampling speed
(compiled loop against the naive per-pixel `predict` loop), and the chapter's
metrics as cached.

    python benchmarks/autoregressive.py throughput  # -> autoregressive.md
    python benchmarks/autoregressive.py metrics     # -> autoregressive_metrics.md

`throughput` times, at the chapter's `cpu` sizes: one training step of each
recurrent language model (batch 64, 64 tokens, 3,000-word vocabulary); training
images per second of the two PixelCNNs (16x16, 64 channels, 5 residual
blocks); sampling a batch of 32 images with the compiled loop and with 256
Python `predict` calls (the whole naive loop, not an extrapolation); and text
generation in words per second. `metrics` copies the numbers chapter 5 printed
in its cached `cpu` run (the outputs the book shows).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from common import machine, write_cached_metrics  # noqa: E402  (benchmarks/ is on sys.path)

VOCAB, SEQ_LEN, TEXT_BATCH = 3_000, 64, 64
SIZE, FILTERS, BLOCKS, IMAGE_BATCH, N_SAMPLES = 16, 64, 5, 128, 32


def fashion16(n):
    import numpy as np
    import tensorflow as tf

    import gdl.data

    x = gdl.data.fashion_mnist().x_train[:n, :, :, None].astype("float32")
    x = tf.image.resize(x, (SIZE, SIZE), antialias=True)
    return np.clip(np.round(np.asarray(x)), 0, 255).astype("int32")


def text_step_seconds(kind, steps=15):
    import keras
    import numpy as np

    from gdl.models.autoregressive import build_text_model

    keras.utils.set_random_seed(0)
    model = build_text_model(VOCAB, kind)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0))
    # Token ids drawn at random: the cost of a step does not depend on the words.
    x = np.random.default_rng(0).integers(2, VOCAB, (TEXT_BATCH * (steps + 1), SEQ_LEN))
    model.fit(x[:TEXT_BATCH], x[:TEXT_BATCH], batch_size=TEXT_BATCH, verbose=0)
    start = time.perf_counter()
    model.fit(x[TEXT_BATCH:], x[TEXT_BATCH:], batch_size=TEXT_BATCH, verbose=0)
    return (time.perf_counter() - start) / steps, model


def image_rate(model, loss, x, y, steps=10):
    import keras

    model.compile(keras.optimizers.Adam(5e-4), loss)
    n = IMAGE_BATCH * steps
    model.fit(x[:IMAGE_BATCH], y[:IMAGE_BATCH], batch_size=IMAGE_BATCH, verbose=0)
    start = time.perf_counter()
    model.fit(x[IMAGE_BATCH:IMAGE_BATCH + n], y[IMAGE_BATCH:IMAGE_BATCH + n],
              batch_size=IMAGE_BATCH, verbose=0)
    return n / (time.perf_counter() - start)


def throughput():
    import keras
    import numpy as np

    from gdl.models import autoregressive as ar

    lines = [
        "# Autoregressive models (chapter 5): throughput",
        "",
        f"Machine: {machine()}. Date: {dt.date.today().isoformat()}.",
        "Command: `python benchmarks/autoregressive.py throughput`. The machine "
        "is shared with other jobs, so timings vary by up to 2-3x.",
        "",
        f"## Language models (batch {TEXT_BATCH}, {SEQ_LEN} tokens, "
        f"{VOCAB:,}-word vocabulary)",
        "",
        "| model | parameters | s / training step | tokens / s |",
        "| --- | --- | --- | --- |",
    ]
    lstm = None
    for kind in ("lstm", "stacked", "gru", "bidirectional"):
        seconds, model = text_step_seconds(kind)
        lstm = lstm or model
        lines.append(f"| {kind} | {model.count_params():,} | {seconds:.3f} | "
                     f"{TEXT_BATCH * SEQ_LEN / seconds:,.0f} |")
        print(lines[-1], flush=True)
    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(VOCAB - 2)]
    writer = ar.TextGenerator(lstm, vocab, window=SEQ_LEN)
    writer.generate("w1 w2", 5, seed=0)                     # compile
    start = time.perf_counter()
    writer.generate("w1 w2", 100, seed=0)
    words = 100 / (time.perf_counter() - start)
    lines += ["", f"Text generation (one compiled call per word, window {SEQ_LEN}): "
              f"**{words:,.0f} words / s**.", ""]

    x = fashion16(IMAGE_BATCH * 11)
    x4 = x * 4 // 256
    keras.utils.set_random_seed(0)
    pix4 = ar.build_pixelcnn(SIZE, 4, FILTERS, BLOCKS)
    rate4 = image_rate(pix4, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       x4 / 3, x4)
    mix = ar.build_pixelcnn(SIZE, 15, FILTERS, BLOCKS)
    rate256 = image_rate(mix, ar.mixture_nll, x / 255, x)
    lines += [
        f"## PixelCNN ({SIZE}x{SIZE}, {FILTERS} channels, {BLOCKS} residual blocks, "
        f"batch {IMAGE_BATCH})",
        "",
        "| model | parameters | training images / s |",
        "| --- | --- | --- |",
        f"| softmax over 4 levels | {pix4.count_params():,} | {rate4:,.0f} |",
        f"| mixture of 5 logistics, 256 levels | {mix.count_params():,} | {rate256:,.0f} |",
        "",
    ]
    print("\n".join(lines[-4:]), flush=True)

    rng = np.random.default_rng(0)
    sampler = ar.categorical_sampler(pix4, 4)
    noise = rng.uniform(size=(SIZE * SIZE, N_SAMPLES, 4)).astype("float32")
    sampler(noise)                                          # trace and compile
    start = time.perf_counter()
    sampler(noise)
    compiled = time.perf_counter() - start
    mix_sampler = ar.mixture_sampler(mix)
    mix_noise = rng.uniform(size=(SIZE * SIZE, N_SAMPLES, 6)).astype("float32")
    mix_sampler(mix_noise)
    start = time.perf_counter()
    mix_sampler(mix_noise)
    compiled_mix = time.perf_counter() - start
    start = time.perf_counter()
    ar.sample_naive(pix4, 4, N_SAMPLES, seed=0)
    naive = time.perf_counter() - start
    lines += [
        f"## Sampling {N_SAMPLES} images of {SIZE}x{SIZE} ({SIZE * SIZE} network passes)",
        "",
        "| sampler | seconds | pixels / s |",
        "| --- | --- | --- |",
        f"| naive: 256 Python `model.predict` calls, softmax | {naive:.1f} | "
        f"{N_SAMPLES * SIZE * SIZE / naive:,.0f} |",
        f"| compiled `fori_loop`, softmax | {compiled:.1f} | "
        f"{N_SAMPLES * SIZE * SIZE / compiled:,.0f} |",
        f"| compiled `fori_loop`, logistic mixture | {compiled_mix:.1f} | "
        f"{N_SAMPLES * SIZE * SIZE / compiled_mix:,.0f} |",
        "",
        f"The compiled loop is {naive / compiled:.1f}x faster than the naive loop "
        "(after its one-off compilation).",
    ]
    (HERE / "autoregressive.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def metrics():
    """Copy the numbers chapter 5 printed in its cached `cpu` run."""
    write_cached_metrics(
        "ch05", ("profile=", "perplexity", "nats/token", "images/s", "bits/dim",
                 "nats/pixel", "compiled", "uniform", "independent", "PNG",
                 "frechet", "Frechet", "FID", "accuracy", "whole chapter",
                 "NumPy cell"),
        "autoregressive", "Chapter 5 metrics, as cached")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["throughput", "metrics"])
    args = parser.parse_args()
    throughput() if args.mode == "throughput" else metrics()
