"""Chapter 14's capstone: every family of the book on one dataset, one budget, one yardstick.

The dataset is Fashion-MNIST padded to 32 x 32 (every family's architecture in the book
halves or doubles 32 cleanly, and 1 channel keeps eight models inside a CPU budget). Each
family is built from the chapter that teaches it (`FAMILIES`), trained by `train` until a
wall-clock `Budget` runs out (its clock includes compiling and any work between two stages),
and scored by `score`: the Fréchet distance and the k-NN precision and recall of its samples
in the features of one yardstick classifier, bits per dimension where the family has an
exact likelihood, the sampling time per image, and the parameter count.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import keras
import numpy as np
from keras import ops

import gdl
import gdl.data
from gdl.train import NaNGuard, batches

IMAGE_SHAPE = (32, 32, 1)
LEVELS = 256


def fashion_levels(split: str = "train", limit: int | None = None) -> np.ndarray:
    """Fashion-MNIST as uint8 levels (N, 32, 32, 1): the 28 x 28 images with a 2-pixel
    black border, as chapter 3 pads them."""
    data = gdl.data.fashion_mnist()
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    images = (data.x_train if split == "train" else data.x_test)[:limit]
    return np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None]


# --------------------------------------------------------------------------- the budget
class Budget(keras.callbacks.Callback):
    """Stops `fit` once `seconds` of wall-clock time have passed since the first `fit` it
    watched (or `start()`); one Budget spans all the stages of a family.

    `until(fraction)` sets the deadline of the next stage to that fraction of the budget. A
    step that is running when the deadline passes finishes (a step cannot be cut in half):
    the report says by how much it overran. `clock` is for tests.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter):
        super().__init__()
        if seconds <= 0:
            raise ValueError(f"a budget needs a positive number of seconds, got {seconds}")
        self.seconds, self.clock = float(seconds), clock
        self.started: float | None = None
        self.deadline = self.seconds
        self.steps: dict[str, int] = {}
        self.stage = "train"
        self.stopped = False

    def start(self) -> Budget:
        if self.started is None:
            self.started = self.clock()
        return self

    def elapsed(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started

    def until(self, fraction: float, stage: str) -> Budget:
        """The next `fit` is stage `stage` and stops at `fraction` of the budget."""
        self.deadline, self.stage = self.seconds * float(fraction), stage
        self.steps.setdefault(stage, 0)
        return self

    def left(self) -> float:
        return self.deadline - self.elapsed()

    def on_train_begin(self, logs=None):
        self.start()
        self.steps.setdefault(self.stage, 0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[self.stage] += 1
        if self.elapsed() >= self.deadline:
            self.stopped = self.deadline >= self.seconds
            self.model.stop_training = True

    def report(self) -> dict:
        used = self.elapsed()
        return {"budget_seconds": self.seconds, "seconds": round(used, 2),
                "overrun_seconds": round(max(0.0, used - self.seconds), 2),
                "steps": dict(self.steps), "stopped_by_budget": self.stopped}


def run_stage(model, stream: Iterator, budget: Budget, callbacks=(), chunk: int = 50):
    """`fit` `model` on `stream` until `budget`'s current deadline; a stage whose deadline
    has already passed does not start."""
    if budget.start().left() <= 0:
        budget.steps.setdefault(budget.stage, 0)
        return
    model.fit(stream, steps_per_epoch=chunk, epochs=10**9, verbose=0,
              callbacks=[budget, NaNGuard(), *callbacks])


# --------------------------------------------------------------------------- the families
@dataclass
class Family:
    """How chapter `chapter` builds and trains one family for the capstone."""

    name: str
    label: str
    chapter: int
    settings: Callable[[], dict]                    # architecture and training, per profile
    build: Callable[[dict], keras.Model]            # settings -> a compiled, built model
    train: Callable[[keras.Model, np.ndarray, Budget, dict, int], int]   # -> examples seen
    bits_per_dim: Callable[[keras.Model, np.ndarray], float] | None = None
    sample_kwargs: dict = field(default_factory=dict)


def _adam(lr, **kw):
    return keras.optimizers.Adam(lr, **kw)


def _unit(levels):
    return (levels.astype("float32") / (LEVELS - 1))                 # [0, 1]


def _signed(levels):
    return _unit(levels) * 2.0 - 1.0                                 # [-1, 1]


def _one_stage(prepare):
    """A `train` function for a one-network family fed `prepare(levels)` batches."""
    def train(model, levels, budget, s, seed):
        run_stage(model, batches(prepare(levels), batch_size=s["batch"], seed=seed),
                  budget.until(1.0, "train"))
        return budget.steps["train"] * s["batch"]
    return train


# VAE (chapter 3)
def _vae_settings():
    return dict(latent_dim=gdl.pick(full=32, cpu=16, smoke=4),
                filters=list(gdl.pick(full=(32, 64, 128), cpu=(32, 64, 128), smoke=(8, 16))),
                batch=gdl.pick(full=128, cpu=128, smoke=16), lr=1e-3)


def _build_vae(s, prefix="vae"):
    from gdl.models.vae import VAE, build_decoder, build_encoder

    model = VAE(build_encoder(IMAGE_SHAPE, s["latent_dim"], filters=s["filters"],
                              name=f"{prefix}_encoder"),
                build_decoder(s["latent_dim"], IMAGE_SHAPE, filters=s["filters"][::-1],
                              name=f"{prefix}_decoder"), seed=1)
    model.compile(optimizer=_adam(s["lr"]))
    model(np.zeros((1, *IMAGE_SHAPE), "float32"))
    return model


# DCGAN (chapter 4)
def _dcgan_settings():
    return dict(latent_dim=gdl.pick(full=100, cpu=64, smoke=8),
                generator=list(gdl.pick(full=(256, 128, 64), cpu=(128, 64, 32), smoke=(8, 8, 8))),
                discriminator=list(gdl.pick(full=(64, 128, 256), cpu=(32, 64, 128),
                                            smoke=(8, 8, 8))),
                batch=gdl.pick(full=128, cpu=128, smoke=16), lr=2e-4, beta_1=0.5)


def _build_dcgan(s):
    from gdl.models import gan

    model = gan.DCGAN(gan.build_generator(s["latent_dim"], 32, 1, filters=s["generator"]),
                      gan.build_discriminator(32, 1, filters=s["discriminator"]),
                      latent_dim=s["latent_dim"], seed=2)
    model.compile(generator_optimizer=_adam(s["lr"], beta_1=s["beta_1"]),
                  discriminator_optimizer=_adam(s["lr"], beta_1=s["beta_1"]))
    return model


# PixelCNN with a discretized logistic mixture (chapter 5)
def _pixelcnn_settings():
    return dict(filters=gdl.pick(full=64, cpu=32, smoke=4), blocks=gdl.pick(full=5, cpu=3, smoke=1),
                components=5, batch=gdl.pick(full=64, cpu=64, smoke=8), lr=5e-4)


def _build_pixelcnn(s):
    from gdl.models import autoregressive as ar

    net = ar.build_pixelcnn(32, 3 * s["components"], filters=s["filters"], blocks=s["blocks"],
                            name="capstone_pixelcnn")
    model = ar.PixelCNN(net, LEVELS, head="mixture", seed=3)
    model.compile(optimizer=_adam(s["lr"]))
    return model


def _pixelcnn_bits(model, levels, batch_size=256):
    nats = [float(ops.convert_to_numpy(model.nll(levels[i:i + batch_size])))
            * len(levels[i:i + batch_size]) for i in range(0, len(levels), batch_size)]
    return sum(nats) / len(levels) / math.log(2.0)


# RealNVP over whole images (chapter 6)
def _flow_settings():
    return dict(n_couplings=gdl.pick(full=8, cpu=6, smoke=2), units=gdl.pick(full=128, cpu=32, smoke=8),
                depth=gdl.pick(full=2, cpu=1, smoke=1), batch=gdl.pick(full=128, cpu=128, smoke=16),
                lr=1e-3)


def _build_flow(s):
    from gdl.models.flows import RealNVP
    from gdl.models.image_flow import ImageFlow

    dim = int(np.prod(IMAGE_SHAPE))
    model = ImageFlow(RealNVP(dim, s["n_couplings"], s["units"], s["depth"]), IMAGE_SHAPE, seed=4)
    model.compile(optimizer=_adam(s["lr"]))
    return model


# EBM (chapter 7)
def _ebm_settings():
    return dict(filters=list(gdl.pick(full=(16, 32, 64, 64), cpu=(16, 32, 64, 64), smoke=(4, 4))),
                dense=gdl.pick(full=64, cpu=64, smoke=4), langevin_steps=gdl.pick(full=60, cpu=20, smoke=4),
                buffer=gdl.pick(full=8192, cpu=512, smoke=64), batch=gdl.pick(full=128, cpu=32, smoke=8),
                lr=gdl.pick(full=1e-4, cpu=1e-3, smoke=1e-3), beta_1=gdl.pick(full=0.9, cpu=0.0, smoke=0.0),
                sample_steps=gdl.pick(full=1000, cpu=200, smoke=4))


def _build_ebm(s):
    from gdl.models.ebm import EBM, build_energy_net

    model = EBM(build_energy_net(32, 1, filters=s["filters"], dense=s["dense"]),
                buffer_size=s["buffer"], steps=s["langevin_steps"], step_size=10.0, noise=0.005,
                grad_clip=0.03, alpha=0.1, fresh=0.05, seed=5)
    model.compile(optimizer=_adam(s["lr"], beta_1=s["beta_1"]))
    return model


# Diffusion (chapter 8)
def _diffusion_settings():
    return dict(widths=list(gdl.pick(full=(32, 64, 96, 128), cpu=(16, 32, 64), smoke=(4, 8))),
                block_depth=gdl.pick(full=2, cpu=2, smoke=1), mean=0.2860, std=0.3530,
                batch=gdl.pick(full=64, cpu=64, smoke=8), lr=1e-3, ema=0.999,
                sample_steps=gdl.pick(full=50, cpu=20, smoke=2))


def _build_diffusion(s):
    from gdl.models.diffusion import DiffusionModel, build_unet

    net = build_unet(32, tuple(s["widths"]), s["block_depth"], embedding_dims=32, channels=1)
    model = DiffusionModel(net, [s["mean"]], [s["std"]], ema=s["ema"], seed=6)
    model.compile(optimizer=keras.optimizers.AdamW(s["lr"], weight_decay=1e-4))
    return model


# VQ-VAE + transformer prior (chapters 9 and 10)
def _vq_settings():
    return dict(code_dim=gdl.pick(full=32, cpu=16, smoke=4), num_codes=gdl.pick(full=128, cpu=64, smoke=8),
                filters=list(gdl.pick(full=(64, 128), cpu=(32, 64), smoke=(4, 8))),
                embed_dim=gdl.pick(full=128, cpu=64, smoke=8), blocks=gdl.pick(full=4, cpu=2, smoke=1),
                batch=gdl.pick(full=128, cpu=128, smoke=16), lr=1e-3, prior_lr=1e-3,
                vq_share=0.5)


def _build_vq(s):
    from gdl.models import vq
    from gdl.models.transformer import GPT
    from gdl.models.vq_prior import VQPrior, prior_vocabulary

    vqvae = vq.VQVAE(vq.build_vq_encoder(IMAGE_SHAPE, s["code_dim"], filters=s["filters"]),
                     vq.VectorQuantizer(s["num_codes"], s["code_dim"]),
                     vq.build_vq_decoder(IMAGE_SHAPE, s["code_dim"], filters=s["filters"][::-1]))
    vqvae.compile(optimizer=_adam(s["lr"]), loss="mse")
    grid = vqvae.encoder.output_shape[1:3]                                  # (8, 8)
    vocab, start = prior_vocabulary(s["num_codes"])
    length = int(np.prod(grid))
    prior = GPT(vocab, length + 1, embed_dim=s["embed_dim"], num_heads=4,
                num_blocks=s["blocks"], start_id=start, exclude_ids=(0, start), seed=7)
    prior.compile(optimizer=_adam(s["prior_lr"]))
    prior(np.zeros((1, length), "int32"))
    return VQPrior(vqvae, prior, grid)


def _train_vq(model, levels, budget, s, seed):
    x = _unit(levels)
    model.vqvae.restart_dead_codes(x[:1024], seed=seed)     # a data-dependent codebook start
    restarts = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda *_: model.vqvae.restart_dead_codes(x[:1024], seed=seed))
    run_stage(model.vqvae, batches(x, x, batch_size=s["batch"], seed=seed),
              budget.until(s["vq_share"], "vqvae"), callbacks=[restarts])
    budget.until(1.0, "prior")
    inputs, targets = model.tokens(x)                      # on the clock: the stage needs it
    run_stage(model.prior, batches(inputs, targets, batch_size=s["batch"], seed=seed), budget)
    return (budget.steps["vqvae"] + budget.steps["prior"]) * s["batch"]


# Latent diffusion (chapter 13): a VAE, then diffusion over its latents
def _latent_settings():
    vae = _vae_settings()
    return dict(vae=vae, width=gdl.pick(full=256, cpu=128, smoke=8),
                depth=gdl.pick(full=3, cpu=2, smoke=1), batch=gdl.pick(full=128, cpu=128, smoke=16),
                lr=1e-3, ema=0.999, vae_share=0.5, sample_steps=gdl.pick(full=50, cpu=20, smoke=2))


def _build_latent(s):
    from gdl.models import multimodal as mm

    vae = _build_vae(s["vae"], prefix="latent_vae")
    latent_dim = s["vae"]["latent_dim"]
    # An unconditional model: a 1-wide condition that is always the null vector (drop rate
    # 1). The KL term keeps the latents near N(0, I), so they are not standardised further.
    net = mm.build_latent_denoiser(latent_dim, width=s["width"], depth=s["depth"],
                                   condition_dims=1)
    diffusion = mm.GuidedDiffusion(net, [0.0] * latent_dim, [1.0] * latent_dim, drop_rate=1.0,
                                   value_range=None, ema=s["ema"], seed=8)
    diffusion.compile(optimizer=keras.optimizers.AdamW(s["lr"], weight_decay=1e-4))
    return mm.LatentDiffusion(vae.encoder, vae.decoder, diffusion, name="latent_diffusion")


def _train_latent(model, levels, budget, s, seed):
    from gdl.models.vae import VAE

    x = _unit(levels)
    vae = VAE(model.encoder, model.decoder, seed=seed)
    vae.compile(optimizer=_adam(s["vae"]["lr"]))
    run_stage(vae, batches(x, batch_size=s["vae"]["batch"], seed=seed),
              budget.until(s["vae_share"], "vae"))
    budget.until(1.0, "diffusion")
    latents = model.encode(x)                               # (N, 1, 1, L), on the clock
    nulls = np.zeros((len(latents), 1), "float32")
    run_stage(model.diffusion, batches(latents, nulls, batch_size=s["batch"], seed=seed), budget)
    return budget.steps["vae"] * s["vae"]["batch"] + budget.steps["diffusion"] * s["batch"]


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("vae", "VAE", 3, _vae_settings, _build_vae, _one_stage(_unit)),
    Family("dcgan", "DCGAN", 4, _dcgan_settings, _build_dcgan, _one_stage(_signed)),
    Family("pixelcnn", "PixelCNN", 5, _pixelcnn_settings, _build_pixelcnn,
           _one_stage(lambda levels: levels.astype("float32")), bits_per_dim=_pixelcnn_bits),
    Family("flow", "RealNVP", 6, _flow_settings, _build_flow, _one_stage(lambda levels: levels),
           bits_per_dim=lambda model, levels: model.bits_per_dim(levels)),
    Family("ebm", "EBM", 7, _ebm_settings, _build_ebm, _one_stage(_signed)),
    Family("diffusion", "Diffusion", 8, _diffusion_settings, _build_diffusion, _one_stage(_unit)),
    Family("vq_gpt", "VQ-VAE + GPT", 10, _vq_settings, _build_vq, _train_vq),
    Family("latent_diffusion", "Latent diffusion", 13, _latent_settings, _build_latent,
           _train_latent),
]}


def weights_name(family: str) -> str:
    """The weights store's name for a family's long run."""
    return f"capstone_{family}"


def sample_kwargs(family: str, s: dict) -> dict:
    """What a family's `generate` needs besides n and seed (its sampler's step count)."""
    steps = s.get("sample_steps")
    return {} if steps is None else {"steps": steps}


def build(family: str, settings: dict | None = None) -> tuple[keras.Model, dict]:
    """A compiled, built model of `family` and its settings (the profile's, by default)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; the capstone has {', '.join(FAMILIES)}")
    s = FAMILIES[family].settings() if settings is None else settings
    keras.utils.set_random_seed(14)
    return FAMILIES[family].build(s), s


def drop_nested_optimizers(model) -> None:
    """Detach the optimizers of a two-stage family's compiled parts: their state is for
    training on, not for sampling, and `gdl.weights` handles only a model's own optimizers
    (so the published file has none, and a model loading it must have none either)."""
    for part in ("vqvae", "prior", "diffusion"):
        sub = getattr(model, part, None)
        if isinstance(sub, keras.Model):
            sub.optimizer = None
            if hasattr(sub, "optimizers"):
                sub.optimizers = {}


def load(family: str) -> tuple[keras.Model, dict]:
    """The published long run of `family` in this profile, and its weights record."""
    import gdl.weights

    name = gdl.weights.for_profile(weights_name(family))
    rec = gdl.weights.record(name)
    model, _ = build(family, rec["settings"])
    drop_nested_optimizers(model)
    gdl.weights.load(name, model, rec["settings"])
    return model, rec


def train(family: str, levels: np.ndarray, seconds: float, *, model=None, settings=None,
          seed: int = 14, clock: Callable[[], float] = time.perf_counter) -> tuple[keras.Model, dict]:
    """Train `family` on uint8 `levels` (N, 32, 32, 1) for `seconds` of wall-clock time;
    return the model and the budget's report (with the examples seen)."""
    levels = np.asarray(levels)
    if levels.shape[1:] != IMAGE_SHAPE or levels.dtype != np.uint8:
        raise ValueError(f"need uint8 levels of shape (N, {', '.join(map(str, IMAGE_SHAPE))}), "
                         f"got {levels.dtype} {levels.shape}")
    if model is None:
        model, settings = build(family, settings)
    budget = Budget(seconds, clock)
    examples = FAMILIES[family].train(model, levels, budget, settings, seed)
    return model, {**budget.report(), "examples_seen": int(examples)}


# --------------------------------------------------------------------------- the yardsticks
def precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
    """k-NN precision and recall (Kynkäänniemi et al. 2019): the share of generated samples
    inside the real data's manifold (the union of balls reaching each real sample's k-th
    nearest real neighbour), and the share of real samples inside the generated manifold."""
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need two (N, D) feature arrays with one D, got {real.shape} and "
                         f"{fake.shape}")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k={k} samples in each set")

    def distances(a, b):
        d = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
        return np.sqrt(np.maximum(d, 0.0))

    def radii(a):                       # distance to the k-th nearest other point
        return np.sort(distances(a, a), axis=1)[:, k]

    cross = distances(fake, real)                                           # (F, R)
    precision = (cross <= radii(real)[None, :]).any(axis=1).mean()
    recall = (cross.T <= radii(fake)[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


def generate(model, n: int, *, batch: int, seed: int = 0, **kwargs) -> tuple[np.ndarray, float]:
    """n samples in [0, 1] in batches of `batch`, and the seconds per image (a first batch,
    not counted, compiles the sampler)."""
    if n % batch:
        raise ValueError(f"n ({n}) must be a multiple of the batch ({batch})")
    model.generate(batch, seed=seed + 10_000, **kwargs)
    start = time.perf_counter()
    out = [ops.convert_to_numpy(model.generate(batch, seed=seed + i, **kwargs))
           for i in range(n // batch)]
    seconds = time.perf_counter() - start
    return np.concatenate(out).astype("float32"), seconds / n


def score(samples, real, yardstick, *, k: int = 3, real_features=None) -> dict:
    """The sample yardsticks in `yardstick`'s features: the Fréchet distance to all the `real`
    images (or their precomputed `real_features`), and k-NN precision/recall against as many
    of them as there are samples (the manifolds' radii depend on the set sizes: equal sizes,
    as Kynkäänniemi et al. compare them)."""
    from gdl.metrics import frechet_distance

    ref = yardstick.features(real) if real_features is None else np.asarray(real_features)
    feats = yardstick.features(np.asarray(samples, np.float32))
    if len(ref) < len(feats):
        raise ValueError(f"need at least as many real images ({len(ref)}) as samples "
                         f"({len(feats)})")
    precision, recall = precision_recall(ref[:len(feats)], feats, k)
    return {"frechet": frechet_distance(feats, ref), "precision": precision, "recall": recall}
