"""Diffusion model of chapter 8: training and sampling throughput, and the
chapter's metrics as cached.

    python benchmarks/diffusion.py throughput   # -> benchmarks/diffusion.md
    python benchmarks/diffusion.py metrics      # -> benchmarks/diffusion_metrics.md

`throughput` times one training step (noise, predict, AdamW update, EMA update)
of the chapter's `cpu` U-Net (32×32, widths 32-64-96-128, one block per level,
batch 32) and of the curriculum's `full` U-Net (64×64, two blocks per level,
batch 64), on real flower photographs, then DDIM sampling with each network
(images per second at 20 steps). `metrics` copies the numbers the chapter
printed in its cached `cpu` run (the outputs the book shows).
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

SETTINGS = [  # label, image size, widths, block depth, batch
    ("chapter cpu: 32×32, widths 32-64-96-128, 1 block, batch 32",
     32, (32, 64, 96, 128), 1, 32),
    ("curriculum / full: 64×64, widths 32-64-96-128, 2 blocks, batch 64",
     64, (32, 64, 96, 128), 2, 64),
]


def flowers(size, n):
    import numpy as np

    import gdl.data

    x = gdl.data.flowers(size).images[:n].astype("float32") / 255.0
    return x, x.mean((0, 1, 2)), x.std((0, 1, 2))


def time_setting(size, widths, depth, batch, steps):
    import keras
    import numpy as np
    import tensorflow as tf

    from gdl.models.diffusion import DiffusionModel, build_unet

    keras.utils.set_random_seed(0)
    x, mean, std = flowers(size, batch * 4)
    model = DiffusionModel(build_unet(size, widths, depth), mean, std, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4))
    data = tf.data.Dataset.from_tensor_slices(x).repeat().batch(batch)
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)        # trace
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    train = (time.perf_counter() - start) / steps
    noise = np.random.default_rng(0).normal(size=(64, size, size, 3)).astype("float32")
    model.generate(steps=2, initial_noise=noise)                   # trace
    start = time.perf_counter()
    model.generate(steps=20, initial_noise=noise)
    sample_rate = 64 / (time.perf_counter() - start)
    return model.network.count_params(), train, sample_rate


def throughput(steps, note=""):
    rows = []
    for label, size, widths, depth, batch in SETTINGS:
        params, train, rate = time_setting(size, widths, depth, batch, steps)
        rows.append((label, params, train, rate))
        print(rows[-1], flush=True)
    lines = [
        "# Diffusion model (chapter 8): throughput",
        "",
        f"Machine: {machine()}. Date: {dt.date.today().isoformat()}.",
        f"Command: `python benchmarks/diffusion.py throughput --steps {steps}`. "
        "On the 2-core machine other jobs share the CPU, so timings vary by up to 2×.",
        "",
        f"Training: mean of {steps} steps after two warm-up steps (noise, U-Net "
        "forward and backward, AdamW, EMA update). Sampling: 64 images, 20 DDIM "
        "steps, EMA network, compiled.",
        "",
        "| setting | U-Net weights | s / training step | images / s (20 DDIM steps) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {label} | {params:,} | {train:.3f} | {rate:,.1f} |"
              for label, params, train, rate in rows]
    if note:
        lines += ["", f"Conditions: {note}"]
    full = rows[1][2]
    lines += ["", f"At this speed the `full` profile's 6,350 training steps take "
              f"about {6350 * full / 3600:.1f} hours."]
    out = HERE / ("diffusion.md" if "CPU" in machine() or "cores" in machine()
                  else "diffusion_gpu.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def metrics():
    """Copy the numbers chapter 8 printed in its cached `cpu` run."""
    write_cached_metrics(
        "ch08", ("profile=", "photographs,", "train (", "U-Net:", "s per step",
                 "validation loss", "noise-prediction loss", "flower classifier",
                 "standard FID", "in-book FD", "held-out photographs",
                 "statistics", "DDIM steps"),
        "diffusion", "Chapter 8 metrics, as cached")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["throughput", "metrics"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--note", default="", help="how busy the machine was")
    args = parser.parse_args()
    throughput(args.steps, args.note) if args.mode == "throughput" else metrics()
