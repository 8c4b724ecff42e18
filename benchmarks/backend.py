"""Seconds per training step of every family, at the chapters' `cpu` settings, measured as
ratios of runs made side by side (alternating) in one invocation.

    python benchmarks/backend.py backends     # TensorFlow vs JAX, every family
    python benchmarks/backend.py batchnorm    # TF: gdl.backend.BatchNormalization vs Keras'
    python benchmarks/backend.py before REV   # TF: this tree's models vs the gdl of commit REV

Each measurement is a fresh subprocess (one backend per process) that builds the model, runs
`fit` once to compile, then times `--steps` steps of `fit` on random data of the chapter's
shapes. The modes alternate their two variants `--repeats` times and report medians and the
ratio; results go to benchmarks/backend.md (one section per mode).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FAMILIES = ("vae", "dcgan", "wgan_gp", "pixelcnn", "realnvp", "ebm", "diffusion")


# ----------------------------------------------------------------------------- the worker
def _compile(model, **optimizers):
    """New keywords (the contract), or the ones the models had before it."""
    try:
        model.compile(**optimizers)
    except TypeError:
        renames = {"generator_optimizer": "g_optimizer",
                   "discriminator_optimizer": ("c_optimizer" if "WGAN" in type(model).__name__
                                               else "d_optimizer")}
        model.compile(**{renames.get(k, k): v for k, v in optimizers.items()})


def build(family: str):
    """(model, x, y, batch): the chapter's `cpu` model and a batch-shaped random dataset."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    adam = keras.optimizers.Adam
    if family == "vae":
        from gdl.models.vae import VAE, build_decoder, build_encoder

        model = VAE(build_encoder((32, 32, 1), 2, (16, 32, 64)),
                    build_decoder(2, (32, 32, 1), (64, 32, 16)), seed=0)
        model.compile(optimizer=adam(5e-4))
        return model, rng.uniform(0, 1, (64, 32, 32, 1)), None, 64
    if family in ("dcgan", "wgan_gp"):
        from gdl.models import gan

        if family == "dcgan":
            model = gan.DCGAN(gan.build_generator(100, 32, 1, (128, 64, 32)),
                              gan.build_discriminator(32, 1, (32, 64, 128)), 100, 0.1)
            _compile(model, generator_optimizer=adam(5e-4, beta_1=0.5),
                     discriminator_optimizer=adam(5e-4, beta_1=0.5))
            return model, rng.uniform(-1, 1, (64, 32, 32, 1)), None, 64
        model = gan.WGANGP(gan.build_generator(128, 32, 3, (128, 64, 32)),
                           gan.build_discriminator(32, 3, (32, 64, 128), norm=None),
                           128, 3, 10.0)
        _compile(model, generator_optimizer=adam(4e-4, beta_1=0.5, beta_2=0.9),
                 discriminator_optimizer=adam(4e-4, beta_1=0.5, beta_2=0.9))
        return model, rng.uniform(-1, 1, (3 * 64, 32, 32, 3)), None, 3 * 64
    if family == "pixelcnn":
        from gdl.models import autoregressive as ar

        model = ar.build_pixelcnn(16, 4, 64, 5)
        model.compile(optimizer=adam(5e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        levels = rng.integers(0, 4, (128, 16, 16, 1))
        return model, levels / 3.0, levels, 128
    if family == "realnvp":
        from gdl.models.flows import RealNVP

        model = RealNVP(dim=2, n_couplings=2, units=256, depth=4)
        model.build((None, 2))
        model.compile(optimizer=adam(1e-3))
        return model, rng.normal(size=(256, 2)), None, 256
    if family == "ebm":
        from gdl.models.ebm import EBM, build_energy_net

        model = EBM(build_energy_net(), buffer_size=2048, steps=20, step_size=10.0,
                    noise=0.005, grad_clip=0.03, alpha=0.1, fresh=0.05, seed=0)
        model.compile(optimizer=adam(1e-3, beta_1=0.0))
        return model, rng.uniform(-1, 1, (32, 32, 32, 1)), None, 32
    if family == "diffusion":
        from gdl.models.diffusion import DiffusionModel, build_unet

        x = rng.uniform(0, 1, (32, 32, 32, 3))
        model = DiffusionModel(build_unet(32, (32, 64, 96, 128), 1), x.mean((0, 1, 2)),
                               x.std((0, 1, 2)), ema=0.99, seed=0)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4))
        return model, x, None, 32
    raise SystemExit(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")


def worker(family: str, steps: int, keras_bn: bool) -> None:
    import numpy as np

    if keras_bn:   # the Keras layer instead of the seam's fused one
        import keras

        import gdl.backend

        gdl.backend.BatchNormalization = keras.layers.BatchNormalization
        for module in ("gdl.models.gan", "gdl.models.diffusion"):
            __import__(module)
            sys.modules[module].BatchNormalization = keras.layers.BatchNormalization
    model, x, y, batch = build(family)
    x = np.asarray(x, "float32")
    xs = np.concatenate([x] * (steps + 1))
    ys = None if y is None else np.concatenate([y] * (steps + 1))
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)            # compile, warm up
    start = time.perf_counter()
    model.fit(xs[batch:], None if ys is None else ys[batch:], batch_size=batch, epochs=1,
              verbose=0, shuffle=False)
    print(json.dumps({"seconds_per_step": (time.perf_counter() - start) / steps}))


# ----------------------------------------------------------------------------- the driver
def measure(family, steps, backend="tensorflow", keras_bn=False, pythonpath=None) -> float:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, __file__, "worker", family, "--steps", str(steps)]
    if keras_bn:
        cmd.append("--keras-bn")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{family} on {backend} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds_per_step"]


def compare(title, labels, variants, families, steps, repeats):
    """Alternate two variants per family; a markdown table of medians and their ratio."""
    from common import machine

    rows = [f"## {title}", "", machine(), "",
            f"| family | {labels[0]} s/step | {labels[1]} s/step | {labels[1]} / {labels[0]} |",
            "| --- | --- | --- | --- |"]
    for family in families:
        times = ([], [])
        for _ in range(repeats):
            for i, variant in enumerate(variants):
                times[i].append(measure(family, steps, **variant))
        a, b = (statistics.median(t) for t in times)
        rows.append(f"| {family} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
        print(rows[-1], flush=True)
    rows += ["", f"{steps} steps per run after one warm-up `fit`, median of {repeats} "
             "alternating runs.", ""]
    return "\n".join(rows)


def write_section(key: str, text: str) -> None:
    """Replace (or add) one mode's section in benchmarks/backend.md."""
    path = HERE / "backend.md"
    sections = {}
    if path.exists():
        for block in path.read_text().split("<!-- mode: ")[1:]:
            name, body = block.split(" -->\n", 1)
            sections[name] = body
    sections[key] = text + "\n\n"
    head = "# Training speed per family, backends and kernels\n\n" + \
        "Reproduce with `python benchmarks/backend.py MODE`.\n\n"
    path.write_text(head + "".join(f"<!-- mode: {k} -->\n{v}" for k, v in sections.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["backends", "batchnorm", "before", "worker"])
    parser.add_argument("arg", nargs="?", help="family (worker) or git revision (before)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--keras-bn", action="store_true")
    args = parser.parse_args()
    if args.mode == "worker":
        return worker(args.arg, args.steps, args.keras_bn)
    sys.path.insert(0, str(HERE))
    families = args.families.split(",")
    if args.mode == "backends":
        text = compare("TensorFlow vs JAX (CPU)", ("TensorFlow", "JAX"),
                       [dict(backend="tensorflow"), dict(backend="jax")],
                       families, args.steps, args.repeats)
    elif args.mode == "batchnorm":
        bn = [f for f in families if f in ("dcgan", "diffusion")]
        text = compare("TensorFlow: fused batch norm (gdl.backend) vs Keras' layer",
                       ("fused", "Keras"), [dict(), dict(keras_bn=True)], bn, args.steps,
                       args.repeats)
    else:
        if not args.arg:
            raise SystemExit("name the revision to compare with, e.g. `before b7de2dc`")
        old = tempfile.mkdtemp(prefix="gdl-before-")
        archive = subprocess.run(["git", "archive", args.arg, "src/gdl"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        text = compare(f"TensorFlow: gdl at {args.arg} vs this tree",
                       (args.arg, "now"),
                       [dict(pythonpath=str(Path(old) / "src")), dict()],
                       families, args.steps, args.repeats)
    write_section(args.mode, text)


if __name__ == "__main__":
    main()
