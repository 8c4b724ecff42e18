"""Chapter 3's models on this machine: training throughput and test metrics.

    python benchmarks/vae.py              # throughput + metrics -> vae.md
    python benchmarks/vae.py --no-train   # throughput only (a few minutes)

Throughput: training images per second of `fit` on real data, for each model of
chapter 3 at the chapter's `cpu` settings and at its `full` settings. Each is
timed over `--steps` steps after a warm-up (so graph tracing is not counted),
twice, and the faster run is kept: the machine is shared, and the faster run
is the better estimate of what the model itself costs.

Metrics: the models trained exactly as in the chapter's `cpu` profile and
scored on held-out data, in nats per image (see chapter 3, section 3.6):
Fashion-MNIST autoencoder and VAEs with beta 1 and 10 (filters 16/32/64,
20,000 training images, 2 epochs, batch 64, Adam 1e-3, tested on the 10,000
official test images); face VAE (filters 16/32/64/128, 200-D latent, 9,000
training and 1,000 held-out faces of the offline CelebA copy at 32x32, 4 epochs,
batch 32). Seeds as in the chapter, so the numbers should match its table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("GDL_DATA_DIR", str(SHARED_DATA))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gdl  # noqa: E402
import gdl.config  # noqa: E402
import gdl.data  # noqa: E402
from gdl.models.vae import (VAE, build_decoder, build_encoder,  # noqa: E402
                            reconstruction_loss)

ROOT = Path(__file__).resolve().parents[1]
FASHION_FILTERS = {"cpu": (16, 32, 64), "full": (32, 64, 128)}
FACE_FILTERS = {32: (16, 32, 64, 128), 64: (32, 64, 128, 256)}
SHAPE = (32, 32, 1)


def fashion():
    split = gdl.data.fashion_mnist()

    def prep(x):
        x = np.pad(x.astype("float32") / 255.0, ((0, 0), (2, 2), (2, 2)))
        return x[..., None]

    return prep(split.x_train), prep(split.x_test)


def faces(size):
    x = gdl.data.celeba().load(image_size=size)
    n_hold = len(x) // 10
    return x[:-n_hold], x[-n_hold:]


def autoencoder(filters):
    enc = build_encoder(SHAPE, 2, filters, variational=False)
    dec = build_decoder(2, SHAPE, filters[::-1])
    x = keras.Input(SHAPE)
    model = keras.Model(x, dec(enc(x)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="binary_crossentropy")
    return model


def fashion_vae(filters, beta, seed):
    model = VAE(build_encoder(SHAPE, 2, filters),
                build_decoder(2, SHAPE, filters[::-1]), beta=beta, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def face_vae(size):
    shape, filters = (size, size, 3), FACE_FILTERS[size]
    model = VAE(build_encoder(shape, 200, filters, batch_norm=True,
                              activation="leaky_relu"),
                build_decoder(200, shape, filters[::-1], batch_norm=True,
                              activation="leaky_relu"), beta=1.0, seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def fit(model, x, batch, epochs=1, is_ae=False):
    y = x if is_ae else None
    return model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True,
                     verbose=0)


def throughput(model, x, batch, steps, is_ae=False) -> float:
    fit(model, x[:batch * 3], batch, is_ae=is_ae)          # trace the graph
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        fit(model, x[:batch * steps], batch, is_ae=is_ae)
        best = max(best, batch * steps / (time.perf_counter() - start))
    return best


def measure_speeds(x_train, steps):
    f32_train, _ = faces(32)
    f64_train, _ = faces(64)
    cases = [
        ("autoencoder, Fashion-MNIST, cpu (16/32/64), batch 64",
         lambda: autoencoder(FASHION_FILTERS["cpu"]), x_train, 64, True),
        ("VAE, Fashion-MNIST, cpu (16/32/64), batch 64",
         lambda: fashion_vae(FASHION_FILTERS["cpu"], 1.0, 1), x_train, 64,
         False),
        ("VAE, Fashion-MNIST, full (32/64/128), batch 100",
         lambda: fashion_vae(FASHION_FILTERS["full"], 1.0, 1), x_train, 100,
         False),
        ("face VAE, 32x32, cpu, batch 32", lambda: face_vae(32), f32_train,
         32, False),
        ("face VAE, 64x64, full, batch 128", lambda: face_vae(64), f64_train,
         128, False),
    ]
    speeds = {}
    for name, build, x, batch, is_ae in cases:
        n = steps if batch <= 64 else max(4, steps // 4)
        speeds[name] = throughput(build(), x, batch, n, is_ae=is_ae)
        print(f"{name:50s} {speeds[name]:8.0f} images/s", flush=True)
    return speeds


def train_metrics(x_train, x_test):
    """The chapter's cpu-profile runs, in the chapter's order and seeds."""
    gdl.seed_everything(42)
    x_train = x_train[:20_000]
    filters = FASHION_FILTERS["cpu"]
    metrics = []
    start = time.perf_counter()
    ae = autoencoder(filters)
    fit(ae, x_train, 64, epochs=2, is_ae=True)
    rec = float(np.mean(reconstruction_loss(
        x_test, ae.predict(x_test, batch_size=500, verbose=0))))
    metrics.append(("autoencoder", rec, None, time.perf_counter() - start))
    for beta, seed in ((1.0, 1), (10.0, 2)):
        start = time.perf_counter()
        vae = fashion_vae(filters, beta, seed)
        fit(vae, x_train, 64, epochs=2)
        m = vae.evaluate(x_test, batch_size=500, verbose=0, return_dict=True)
        metrics.append((f"VAE beta={beta:g}", m["reconstruction"], m["kl"],
                        time.perf_counter() - start))
    start = time.perf_counter()
    f32_train, f32_test = faces(32)
    vae = face_vae(32)
    fit(vae, f32_train, 32, epochs=4)
    m = vae.evaluate(f32_test, batch_size=250, verbose=0, return_dict=True)
    metrics.append(("face VAE 32x32", m["reconstruction"], m["kl"],
                    time.perf_counter() - start))
    for name, rec, kl, sec in metrics:
        kl_s = "-" if kl is None else f"{kl:.2f}"
        print(f"{name:18s} reconstruction {rec:8.1f}  KL {kl_s:>6s}  "
              f"({sec:.0f} s)", flush=True)
    return metrics


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "vae.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    x_train, x_test = fashion()
    speeds = measure_speeds(x_train, args.steps)
    metrics = [] if args.no_train else train_metrics(x_train, x_test)
    write(args.out, speeds, metrics, load_before, os.getloadavg()[0])


def write(path, speeds, metrics, load_before, load_after):
    lines = [
        "# Chapter 3 (VAE) benchmarks",
        "",
        f"Measured {dt.datetime.now().isoformat(timespec='minutes')} by "
        "`python benchmarks/vae.py` on "
        f"{gdl.config.device()}, Python {platform.python_version()}, "
        f"Keras {keras.__version__} ({keras.backend.backend()}). "
        f"1-minute load average {load_before:.1f} at the start and "
        f"{load_after:.1f} at the end: the machine is shared with other "
        "jobs, so throughput varies by 2-5x with what else runs.",
        "",
        "## Training throughput (images per second; best of two timed runs)",
        "",
        "| model | images/s |",
        "| --- | ---: |",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in speeds.items()]
    if metrics:
        lines += [
            "",
            "## Test metrics at the chapter's `cpu` settings (nats per image)",
            "",
            "Trained as in chapter 3's `cpu` profile (see the docstring of "
            "`benchmarks/vae.py`). VAE losses use one sampled z per image. "
            "We know of no published figure for these exact settings "
            "(chapter 3, section 3.6).",
            "",
            "| model | reconstruction | KL | seconds (train + test) |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [f"| {n} | {r:.1f} | {'—' if k is None else f'{k:.2f}'} "
                  f"| {s:.0f} |" for n, r, k, s in metrics]
    Path(path).write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
