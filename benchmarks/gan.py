"""GANs of chapter 4: training and sampling throughput, and the chapter's
metrics as cached.

    python benchmarks/gan.py throughput   # -> benchmarks/gan.md (minutes)
    python benchmarks/gan.py metrics      # -> benchmarks/gan_metrics.md

`throughput` times training steps (compiled, after a warm-up) of the DCGAN
on LEGO bricks and of the WGAN-GP on CelebA faces, at the chapter's `cpu`
settings (32x32, lean networks) and at the `full` settings (64x64, the
published network widths), and the generators' sampling speed. Images/s
counts real images consumed per second of training (for the WGAN-GP, each
generator step consumes critic_steps x batch real images). `metrics`
copies the numbers chapter 4 printed in its cached `cpu` run (the outputs
the book shows) into benchmarks/gan_metrics.md.
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

SETTINGS = {  # name: (size, batch, generator filters, critic filters)
    "cpu": (32, 64, (128, 64, 32), (32, 64, 128)),
    "full": (64, 128, (512, 256, 128, 64), (64, 128, 256, 512)),
}


def bricks(size):
    import gdl.data

    x = gdl.data.lego_bricks(image_size=min(size, 40)).images
    x = x.astype("float32")[..., None] / 127.5 - 1.0
    if size > 40:      # the offline copy is 40x40: upsample for timing only
        import tensorflow as tf

        x = tf.image.resize(x, (size, size)).numpy()
    return x


def faces(size, n):
    import gdl.data

    return gdl.data.celeba(limit=n).load(image_size=size) * 2.0 - 1.0


def stream(x, batch):
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices(x).repeat()
            .batch(batch, drop_remainder=True).prefetch(2))


def time_fit(model, data, steps):
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)   # trace, warm up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def dcgan_rate(setting, steps):
    import keras

    from gdl.models.gan import DCGAN, build_discriminator, build_generator

    size, batch, gf, df = SETTINGS[setting]
    keras.utils.set_random_seed(0)
    model = DCGAN(build_generator(100, size, 1, gf),
                  build_discriminator(size, 1, df), 100)
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5),
                  keras.optimizers.Adam(2e-4, beta_1=0.5))
    seconds = time_fit(model, stream(bricks(size), batch), steps)
    return seconds, batch / seconds, sample_rate(model.generator, 100)


def wgan_rate(setting, steps, critic_steps=3):
    import keras

    from gdl.models.gan import WGANGP, build_discriminator, build_generator

    size, batch, gf, df = SETTINGS[setting]
    keras.utils.set_random_seed(0)
    model = WGANGP(build_generator(128, size, 3, gf),
                   build_discriminator(size, 3, df, norm=None), 128,
                   critic_steps)
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9),
                  keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9))
    x = faces(size, 2000)
    seconds = time_fit(model, stream(x, critic_steps * batch), steps)
    return seconds, critic_steps * batch / seconds, \
        sample_rate(model.generator, 128)


def sample_rate(generator, z_dim, n=1000):
    import numpy as np

    z = np.random.default_rng(0).normal(size=(n, z_dim)).astype("float32")
    generator.predict(z[:250], batch_size=250, verbose=0)
    start = time.perf_counter()
    generator.predict(z, batch_size=250, verbose=0)
    return n / (time.perf_counter() - start)


def throughput():
    rows = []
    for label, fn, setting, steps in [
            ("DCGAN bricks, chapter cpu (32x32, batch 64)", dcgan_rate,
             "cpu", 30),
            ("WGAN-GP faces, chapter cpu (32x32, batch 64, 3 critic steps)",
             wgan_rate, "cpu", 10),
            ("DCGAN, full (64x64, batch 128)", dcgan_rate, "full", 5),
            ("WGAN-GP, full (64x64, batch 128, 3 critic steps)", wgan_rate,
             "full", 3)]:
        rows.append((label, *fn(setting, steps)))
        print(rows[-1], flush=True)
    lines = [
        "# GANs (chapter 4): throughput",
        "",
        f"Machine: {machine()}. Date: {dt.date.today().isoformat()}.",
        "Command: `python benchmarks/gan.py throughput`. The machine is shared "
        "with other jobs, so timings vary by up to 2x or more.",
        "",
        "One training step = one generator update (after one discriminator "
        "update, or 3 critic updates with the gradient penalty). Real images/s "
        "counts the real images consumed. Sampling: generator.predict, "
        "batch 250. The full settings at 64x64 use the LEGO renders upsampled "
        "from the offline 40x40 copy (timing only).",
        "",
        "| setting | s / step | real images / s | samples / s |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {label} | {s:.3f} | {r:,.0f} | {g:,.0f} |"
              for label, s, r, g in rows]
    (HERE / "gan.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def metrics():
    """Copy the numbers chapter 4 printed in its cached `cpu` run."""
    write_cached_metrics(
        "ch04", ("profile=", "classifier:", "distance", "FID", "images/s",
                 "steps/s", "classified", "nearest training", "correlation"),
        "gan", "Chapter 4 metrics, as cached")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["throughput", "metrics"])
    args = parser.parse_args()
    throughput() if args.mode == "throughput" else metrics()
