"""RealNVP on two moons (chapter 6): throughput, and the published schedule.

    python benchmarks/flows.py throughput   # -> benchmarks/flows.md
    python benchmarks/flows.py published    # -> benchmarks/flows_published.md (long)
    python benchmarks/flows.py metrics      # chapter 6's cached numbers

`throughput` times training steps, exact log-likelihood evaluation and sampling
for the two flows of chapter 6 (the published architecture, 2 coupling layers
of 256 units, and the chapter's deeper flow, 8 coupling layers of 64 units).

`published` trains the published architecture with the published schedule
(30,000 points, noise 0.05, standardised; Adam 1e-4, batch 256, 300 epochs)
and reports the held-out negative log-likelihood in nats, next to the exact
NLL of the true density (the best any model can do on average). The data are
made exactly as in the chapter.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

from gdl.config import seed_everything  # noqa: E402
from gdl.models.flows import RealNVP  # noqa: E402

HERE = Path(__file__).resolve().parent

from common import machine, write_cached_metrics  # noqa: E402  (benchmarks/ is on sys.path)
NOISE = 0.05
CONFIGS = {"published (2 × 256)": dict(n_couplings=2, units=256, depth=4),
           "chapter's deeper flow (8 × 64)": dict(n_couplings=8, units=64,
                                                   depth=2)}


def moons(n_train=30_000, n_test=10_000):
    """Standardised train/test moons, as in chapter 6; also the scaler."""
    x_train = make_moons(n_train, noise=NOISE, random_state=1)[0]
    x_test = make_moons(n_test, noise=NOISE, random_state=2)[0]
    mean, std = x_train.mean(0), x_train.std(0)
    f32 = lambda a: ((a - mean) / std).astype("float32")  # noqa: E731
    return f32(x_train), f32(x_test), mean, std


def true_log_density(x_std, mean, std, n_theta=1000):
    """Exact log-density of standardised moons data (numerical integral)."""
    x = x_std * std + mean
    theta = np.linspace(0, np.pi, n_theta)
    curve = np.concatenate([
        np.stack([np.cos(theta), np.sin(theta)], 1),
        np.stack([1 - np.cos(theta), 1 - np.sin(theta) - 0.5], 1)])
    out = []
    for block in np.array_split(x, max(1, len(x) // 500)):
        d2 = ((block[:, None, :] - curve[None]) ** 2).sum(-1)
        log_k = -d2 / (2 * NOISE ** 2) - np.log(2 * np.pi * NOISE ** 2)
        m = log_k.max(1, keepdims=True)
        out.append(m[:, 0] + np.log(np.exp(log_k - m).mean(1)))
    return np.concatenate(out) + np.log(std).sum()


def throughput(steps=200, batch=256):
    x_train, x_test, *_ = moons()
    rows = []
    for name, cfg in CONFIGS.items():
        seed_everything(0)
        model = RealNVP(dim=2, **cfg)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        n = steps * batch
        model.fit(x_train[:batch * 20], batch_size=batch, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(x_train[:n] if n <= len(x_train) else
                  np.resize(x_train, (n, 2)), batch_size=batch, epochs=1,
                  verbose=0, shuffle=False)
        step_ms = (time.perf_counter() - start) / steps * 1e3
        eval_fn = model.make_predict_function()  # noqa: F841 (warm Keras)
        log_prob = lambda a: np.asarray(model.log_prob(a))  # noqa: E731
        log_prob(x_test[:100])
        start = time.perf_counter()
        for _ in range(5):
            log_prob(x_test)
        lp_rate = 5 * len(x_test) / (time.perf_counter() - start)
        model.sample(100)
        start = time.perf_counter()
        for _ in range(5):
            np.asarray(model.sample(10_000))
        sample_rate = 50_000 / (time.perf_counter() - start)
        params = model.count_params()
        rows.append((name, params, step_ms, batch / step_ms * 1e3,
                     lp_rate, sample_rate))
        print(rows[-1], flush=True)
    lines = [
        "# Normalizing flows (chapter 6): throughput",
        "",
        f"Machine: {machine()}. Date: {dt.date.today().isoformat()}.",
        "Command: `python benchmarks/flows.py throughput`. The machine is "
        "shared with other jobs, so timings vary by up to 2×.",
        "",
        f"Training: {steps} steps of batch {batch} after a warm-up epoch "
        "(graph mode, Adam). Log-likelihood and sampling: eager calls on "
        "10,000 points.",
        "",
        "| flow | parameters | ms / training step | training examples / s "
        "| log p(x) evaluations / s | samples / s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {n} | {p:,} | {ms:.1f} | {ex:,.0f} | {lp:,.0f} | {s:,.0f} |"
              for n, p, ms, ex, lp, s in rows]
    (HERE / "flows.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def published(epochs=300):
    x_train, x_test, mean, std = moons()
    seed_everything(0)
    model = RealNVP(dim=2, n_couplings=2, units=256, depth=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    start = time.time()
    history = model.fit(x_train, batch_size=256, epochs=epochs, verbose=0,
                        validation_data=(x_test,), validation_freq=10)
    minutes = (time.time() - start) / 60
    nll = -float(np.mean(np.asarray(model.log_prob(x_test))))
    train_nll = -float(np.mean(np.asarray(model.log_prob(x_train))))
    ceiling = -float(np.mean(true_log_density(x_test, mean, std)))
    val = history.history.get("val_loss", [])
    lines = [
        "# RealNVP on two moons with the published schedule",
        "",
        f"Machine: {machine()}. Date: {dt.date.today().isoformat()}.",
        "Command: `python benchmarks/flows.py published` "
        f"({minutes:.0f} min on this shared machine).",
        "",
        "Setting (the published notebook's): 30,000 points of "
        "`make_moons(noise=0.05)`, standardised; 2 affine coupling layers, "
        "s and t nets of 4 × 256 ReLU units; Adam, learning rate 1e-4, "
        f"batch 256, {epochs} epochs; no weight penalty (see chapter 6).",
        "",
        "| quantity | nats per point |",
        "| --- | --- |",
        f"| held-out NLL (10,000 fresh points) | **{nll:.3f}** |",
        f"| training NLL (30,000 points) | {train_nll:.3f} |",
        f"| NLL of the true density on the held-out points | {ceiling:.3f} |",
        "| published notebook's logged loss (training) | about 1.70 |",
        "",
        "Held-out NLL every 10 epochs: "
        + ", ".join(f"{v:.3f}" for v in val) + ".",
    ]
    (HERE / "flows_published.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def metrics():
    """Copy the numbers chapter 6 printed in its cached `cpu` run."""
    write_cached_metrics(
        "ch06", ("profile=", "ms per step", "test NLL", "off the moons", "floor"),
        "flows", "Chapter 6 metrics, as cached")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["throughput", "published", "metrics"])
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    {"throughput": throughput, "metrics": metrics,
     "published": lambda: published(args.epochs)}[args.mode]()
