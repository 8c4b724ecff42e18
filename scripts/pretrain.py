"""Train a named model for long, checkpointing as it goes, and publish its weights (DESIGN §4).

    python scripts/pretrain.py NAME [--steps N] [--minutes M] [--checkpoint-minutes C]
    python scripts/pretrain.py NAME --publish    # publish the latest checkpoint; train nothing
    python scripts/pretrain.py --list            # the recipes and the chapter variables they mirror

Each recipe builds the model exactly as its chapter does in the `cpu` profile (`full` under
GDL_PROFILE=full, `smoke` under GDL_PROFILE=smoke: `gdl.pick`, as the chapters use it), trains it
with its own `fit` on NumPy batch streams, chunk by chunk, and every few minutes writes a
checkpoint (weights and every optimizer's state, steps, examples seen, wall time, the losses) to
``gdl.paths.cache_dir()/pretrain/NAME/``. Running the same command again resumes from there, so a
long run survives being stopped. It ends at --steps (the total) or once --minutes of training
(summed over resumes) are spent, then writes ``NAME.weights.h5`` and its manifest record through
`gdl.weights.save` (into $GDL_WEIGHTS_DIR, else the repository's weights/). Weights made in
another profile are named NAME.PROFILE (e.g. dcgan_bricks.full).

On any Keras backend: `KERAS_BACKEND=jax GDL_PROFILE=full python scripts/pretrain.py NAME` is how
a GPU machine makes `full` weights. On a shared CPU, run it at low priority (`nice -n 19 ...`).

The recipes live here, not in gdl: changing one changes no chapter's recorded source hash.
A recipe may train with another learning rate or batch than the chapter's short run (each says
why), never with another architecture: the chapter must be able to load the weights.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TensorFlow's start-up lines drown the progress

import keras
import numpy as np

import gdl
import gdl.data
import gdl.weights
from gdl.paths import cache_dir
from gdl.train import NaNGuard, batches

# The streams are shuffled NumPy batches; Keras warns that it cannot shuffle a generator.
warnings.filterwarnings("ignore", message=".*shuffle.*")

CHECKPOINT = re.compile(r"^step-(\d{9})$")


@dataclass
class Recipe:
    """A model to pretrain: how it is built and fed, and what a chapter must match to load it."""

    family: str
    settings: dict           # the architecture (builder arguments): a loading chapter must match these
    training: dict           # optimisation and data: batch, learning rate, ... (free to differ)
    model: keras.Model       # built and compiled
    stream: Callable[[int], Iterator]   # seed -> an endless stream of batches for `fit`
    examples_per_step: int
    unit: str                # what an example is, for the record ("images", "reviews")
    steps: int               # the default target: about what two hours of two CPU cores reach in
                             # `cpu` (measured Dec 2026, under load); --minutes stops it anyway
    evaluate: Callable[[keras.Model], dict] | None = None   # held-out metrics for the record
    extra: dict | None = None   # further record fields a page needs (a text model's vocabulary)


# --------------------------------------------------------------------------- data, as the chapters prepare it
def _bricks(size: int, n: int | None) -> np.ndarray:
    """Chapter 4 §4.2: renders in [-1, 1], (N, S, S, 1); the chapter holds out the first fifth."""
    bricks = gdl.data.lego_bricks(image_size=size, limit=None)
    order = np.random.default_rng(0).permutation(len(bricks))[:n]
    x = bricks.images[order].astype("float32")[..., None] / 127.5 - 1.0
    return x[len(x) // 5:]


def _faces(size: int, n: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Chapters 3 §3.5 and 4 §4.9: faces in [0, 1] and their 40 attributes as 0/1, the last tenth held out."""
    celeba = gdl.data.celeba(limit=n)
    faces = celeba.load(image_size=size)
    attrs = (celeba.attributes.to_numpy() > 0).astype("float32")
    n_hold = len(faces) // 10
    return faces[:-n_hold], attrs[:-n_hold], list(celeba.attributes.columns)


def _shrunk_fashion(n: int) -> np.ndarray:
    """Chapter 5 §5.7: Fashion-MNIST training images area-averaged to 16x16, int32 levels 0..255."""
    images = gdl.data.fashion_mnist().x_train[:n]
    x = keras.ops.image.resize(images[..., None].astype("float32"), (16, 16), antialias=True)
    return np.clip(np.round(np.asarray(keras.ops.convert_to_numpy(x))), 0, 255).astype("int32")


def _plain(value):
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _sha256_lines(lines) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# --------------------------------------------------------------------------- recipes
def dcgan_bricks() -> Recipe:
    """Chapter 4 §4.4-4.6: the DCGAN on LEGO bricks (BRICK_SIZE, Z_DIM, GEN_FILTERS, DISC_FILTERS, DC_BATCH)."""
    from gdl.models.gan import DCGAN, build_discriminator, build_generator

    size = gdl.pick(full=64, cpu=32, smoke=32)
    settings = {
        "generator": dict(latent_dim=100, image_size=size, channels=1,
                          filters=list(gdl.pick(full=(512, 256, 128, 64), cpu=(128, 64, 32),
                                                smoke=(32, 16, 8)))),
        "discriminator": dict(image_size=size, channels=1,
                              filters=list(gdl.pick(full=(64, 128, 256, 512), cpu=(32, 64, 128),
                                                    smoke=(8, 16, 32)))),
    }
    batch = gdl.pick(full=128, cpu=64, smoke=32)
    # The DCGAN paper's rate (the chapter's `full` DC_LR): the chapter's cpu 5e-4 hurries a
    # 1,250-step run along; tens of thousands of steps need the steadier rate.
    lr = 2e-4
    x_train = _bricks(size, gdl.pick(full=None, cpu=None, smoke=1_200))
    keras.utils.set_random_seed(4)
    model = DCGAN(build_generator(**settings["generator"]),
                  build_discriminator(**settings["discriminator"]), 100, 0.1, seed=4)
    model.compile(discriminator_optimizer=keras.optimizers.Adam(lr, beta_1=0.5),
                  generator_optimizer=keras.optimizers.Adam(lr, beta_1=0.5))
    return Recipe("gan", settings,
                  dict(batch_size=batch, optimizer="Adam", learning_rate=lr, beta_1=0.5,
                       label_smoothing=0.1, training_images=len(x_train)),
                  model, lambda seed: batches(x_train, batch_size=batch, seed=seed), batch,
                  "images", gdl.pick(full=30_000, cpu=50_000, smoke=20))


def _wgan(n_classes: int) -> tuple[dict, dict, keras.Model, np.ndarray, np.ndarray]:
    """Chapter 4 §4.9-4.10: the WGAN-GP on faces (FACE_SIZE, W_Z_DIM, W_GEN_FILTERS, W_CRITIC_FILTERS,
    W_BATCH, CRITIC_STEPS, GP_WEIGHT); with n_classes=2, the conditional one (Blond_Hair)."""
    from gdl.models.gan import WGANGP, build_discriminator, build_generator

    size = gdl.pick(full=64, cpu=32, smoke=32)
    settings = {
        "generator": dict(latent_dim=128, image_size=size, channels=3, n_classes=n_classes,
                          filters=list(gdl.pick(full=(512, 256, 128, 64), cpu=(128, 64, 32),
                                                smoke=(32, 16, 8)))),
        "critic": dict(image_size=size, channels=3, n_classes=n_classes, norm=None,
                       filters=list(gdl.pick(full=(64, 128, 256, 512), cpu=(32, 64, 128),
                                             smoke=(8, 16, 32)))),
    }
    batch, critic_steps = gdl.pick(full=64, cpu=64, smoke=16), gdl.pick(full=5, cpu=3, smoke=2)
    # The WGAN-GP paper's rate (the chapter's `full` W_LR): the chapter's cpu 4e-4 is for a
    # 300-400-step run; a long run at that rate keeps the faces blotchy.
    lr = 1e-4
    faces, attrs, columns = _faces(size, gdl.pick(full=None, cpu=10_000, smoke=640))
    faces = faces * 2.0 - 1.0
    seed = 9 if n_classes else 8
    keras.utils.set_random_seed(seed)
    model = WGANGP(build_generator(**settings["generator"]),
                   build_discriminator(**settings["critic"], name="critic"),
                   128, critic_steps, 10.0, n_classes=n_classes, seed=seed)
    adam = lambda: keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9)  # noqa: E731
    model.compile(discriminator_optimizer=adam(), generator_optimizer=adam())
    training = dict(batch_size=batch, critic_steps=critic_steps, gp_weight=10.0, optimizer="Adam",
                    learning_rate=lr, beta_1=0.5, beta_2=0.9, training_images=len(faces))
    labels = None
    if n_classes:
        blond = attrs[:, columns.index("Blond_Hair")].astype("int32")
        labels = np.eye(2, dtype="float32")[blond]                     # (N, 2) one-hot
        settings["label"] = "Blond_Hair"
    return settings, training, model, faces, labels


def wgan_faces() -> Recipe:
    """Chapter 4 §4.9: the WGAN-GP on CelebA faces."""
    settings, training, model, faces, _ = _wgan(0)
    n = training["batch_size"] * training["critic_steps"]   # real images per generator step
    return Recipe("gan", settings, training, model,
                  lambda seed: batches(faces, batch_size=n, seed=seed), n, "images",
                  gdl.pick(full=20_000, cpu=15_000, smoke=6))


def cgan_blond() -> Recipe:
    """Chapter 4 §4.10: the conditional WGAN-GP, labelled by Blond_Hair."""
    settings, training, model, faces, labels = _wgan(2)
    n = training["batch_size"] * training["critic_steps"]
    return Recipe("gan", settings, training, model,
                  lambda seed: batches(faces, labels, batch_size=n, seed=seed), n, "images",
                  gdl.pick(full=20_000, cpu=15_000, smoke=4))


def stylegan_faces() -> Recipe:
    """Chapter 10 §10.2: the style-based generator on CelebA faces (SG_SETTINGS, SG_BATCH)."""
    from gdl.models.stylegan import build_style_wgan

    settings = dict(latent_dim=64, w_dim=64, mapping_depth=8, filters=[64, 64, 32, 16],
                    channels=3, gp_weight=10.0)
    batch = gdl.pick(full=64, cpu=32, smoke=8)
    lr = 1e-3                    # ProGAN's Adam(1e-3, beta_1=0, beta_2=0.99), as in the chapter
    faces, _, _ = _faces(32, gdl.pick(full=None, cpu=10_000, smoke=640))
    faces = faces * 2.0 - 1.0
    keras.utils.set_random_seed(11)
    model = build_style_wgan(**settings, seed=11)
    adam = lambda: keras.optimizers.Adam(lr, beta_1=0.0, beta_2=0.99)  # noqa: E731
    model.compile(discriminator_optimizer=adam(), generator_optimizer=adam())
    return Recipe("gan", settings,
                  dict(batch_size=batch, critic_steps=1, optimizer="Adam", learning_rate=lr,
                       beta_1=0.0, beta_2=0.99, training_images=len(faces)),
                  model, lambda seed: batches(faces, batch_size=batch, seed=seed), batch,
                  "images", gdl.pick(full=40_000, cpu=40_000, smoke=4))


def _vae(settings: dict, x: np.ndarray, batch: int, steps: int, seed: int, prefix: str) -> Recipe:
    """Chapter 3's VAE (beta 1, Adam 1e-3) built from `settings`, fed `x` in [0, 1]."""
    from gdl.models.vae import VAE, build_decoder, build_encoder

    lr = 1e-3
    keras.utils.set_random_seed(seed)
    model = VAE(build_encoder(**settings["encoder"], name=f"{prefix}_encoder"),
                build_decoder(**settings["decoder"], name=f"{prefix}_decoder"), beta=1.0,
                seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(lr))
    model(x[:2])   # build it, so a checkpoint can be loaded before the first step
    return Recipe("vae", settings,
                  dict(batch_size=batch, optimizer="Adam", learning_rate=lr, beta=1.0,
                       training_images=len(x)),
                  model, lambda seed: batches(x, batch_size=batch, seed=seed), batch, "images",
                  steps)


def vae_fashion() -> Recipe:
    """Chapter 3 §3.4: the VAE with a 2-D latent plane on Fashion-MNIST (LATENT_DIM, FILTERS,
    BATCH_SIZE, LEARNING_RATE, BETA); all 60,000 training images, padded to 32x32 as there."""
    filters = list(gdl.pick(full=(32, 64, 128), cpu=(16, 32, 64), smoke=(16, 32, 64)))
    shape = [32, 32, 1]
    settings = {"encoder": dict(input_shape=shape, latent_dim=2, filters=filters),
                "decoder": dict(latent_dim=2, output_shape=shape, filters=filters[::-1])}
    images = gdl.data.fashion_mnist().x_train[:gdl.pick(full=None, cpu=None, smoke=512)]
    x = np.pad(images.astype("float32") / 255.0, ((0, 0), (2, 2), (2, 2)))[..., None]
    return _vae(settings, x, gdl.pick(full=100, cpu=64, smoke=64),
                gdl.pick(full=30_000, cpu=20_000, smoke=4), 1, "vae")   # cpu: 21 passes


def vae_faces() -> Recipe:
    """Chapter 3 §3.5: the face VAE (FACE_SIZE, Z_DIM, FACE_FILTERS, FACE_BATCH, LEARNING_RATE)."""
    size = gdl.pick(full=64, cpu=32, smoke=32)
    filters = list(gdl.pick(full=(32, 64, 128, 256), cpu=(16, 32, 64, 128), smoke=(16, 32, 64, 128)))
    shape = [size, size, 3]
    settings = {
        "encoder": dict(input_shape=shape, latent_dim=200, filters=filters, batch_norm=True,
                        activation="leaky_relu"),
        "decoder": dict(latent_dim=200, output_shape=shape, filters=filters[::-1], batch_norm=True,
                        activation="leaky_relu"),
    }
    faces, _, _ = _faces(size, gdl.pick(full=None, cpu=10_000, smoke=320))
    return _vae(settings, faces, gdl.pick(full=128, cpu=32, smoke=32),
                gdl.pick(full=20_000, cpu=30_000, smoke=4), 3, "face")


def ebm_digits() -> Recipe:
    """Chapter 7 §7.5-7.7: the EBM on MNIST (BATCH_SIZE, LANGEVIN_STEPS, BUFFER_SIZE, LEARNING_RATE, BETA_1)."""
    from gdl.models.ebm import EBM, build_energy_net

    settings = {"energy_net": dict(image_size=32, channels=1, filters=[16, 32, 64, 64], dense=64),
                "buffer_size": gdl.pick(full=8192, cpu=2048, smoke=64)}
    batch = gdl.pick(full=128, cpu=32, smoke=32)
    langevin = gdl.pick(full=60, cpu=20, smoke=20)
    # The chapter's cpu optimiser (Adam 1e-3 without momentum), its rate decaying to a tenth over
    # the run: at a constant 1e-3 a run of this recipe (Dec 2026) split the energies apart after
    # about 8,500 steps (E(real) -4.8, E(fake) +4.8, the regulariser's optimum), and its chains
    # stopped looking like digits.
    steps = gdl.pick(full=28_140, cpu=8_000, smoke=20)
    lr0, beta_1 = gdl.pick(full=1e-4, cpu=1e-3, smoke=1e-3), gdl.pick(full=0.9, cpu=0.0, smoke=0.0)
    lr = keras.optimizers.schedules.CosineDecay(lr0, decay_steps=steps, alpha=0.1)
    x = gdl.data.mnist().x_train.astype("float32") / 127.5 - 1.0
    x_train = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)[..., None]   # (N, 32, 32, 1)
    sampler = dict(steps=langevin, step_size=10.0, noise=0.005, grad_clip=0.03, alpha=0.1,
                   fresh=0.05)
    keras.utils.set_random_seed(7)
    model = EBM(build_energy_net(**settings["energy_net"]), buffer_size=settings["buffer_size"],
                seed=7, **sampler)
    model.compile(optimizer=keras.optimizers.Adam(lr, beta_1=beta_1))
    return Recipe("ebm", settings,
                  dict(batch_size=batch, optimizer="Adam", learning_rate=f"cosine {lr0:g} -> {lr0 / 10:g}",
                       decay_steps=steps, beta_1=beta_1, training_images=len(x_train), **sampler),
                  model, lambda seed: batches(x_train, batch_size=batch, seed=seed), batch, "images",
                  steps)


def diffusion_flowers() -> Recipe:
    """Chapter 8 §8.2-8.7: the DDIM U-Net on flowers (IMAGE_SIZE, WIDTHS, BLOCK_DEPTH, EMBEDDING_DIMS, BATCH_SIZE)."""
    from gdl.models.diffusion import DiffusionModel, build_unet

    size = gdl.pick(full=64, cpu=32, smoke=32)
    data = gdl.data.flowers(size, layout=gdl.pick(full="official", cpu="auto", smoke="auto"))
    is_val = np.zeros(len(data), bool)
    for c in np.unique(data.labels):      # the chapter holds out the last three of every species
        is_val[np.flatnonzero(data.labels == c)[-3:]] = True
    x_train = data.images[~is_val].astype("float32") / 255.0
    mean, std = x_train.mean(axis=(0, 1, 2)), x_train.std(axis=(0, 1, 2))
    settings = {
        "network": dict(image_size=size, block_depth=gdl.pick(full=2, cpu=1, smoke=1),
                        widths=list(gdl.pick(full=(32, 64, 96, 128), cpu=(32, 64, 96, 128),
                                             smoke=(16, 32))), embedding_dims=32),
        "mean": mean.tolist(), "std": std.tolist(), "schedule": "offset cosine",
    }
    batch, lr, decay = gdl.pick(full=64, cpu=32, smoke=16), 1e-3, 1e-4
    # The curriculum's (and `full`'s) EMA of 0.999: the chapter's cpu 0.99 averages over ~100
    # steps because it only has 1,700; a long run wants the smoother average.
    ema = gdl.pick(full=0.999, cpu=0.999, smoke=0.9)
    keras.utils.set_random_seed(8)
    model = DiffusionModel(build_unet(**settings["network"]), mean, std, schedule="offset cosine",
                           ema=ema, seed=8)
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=decay))

    def flipped(seed):
        """Shuffled batches, each image mirrored left-right with probability 1/2 (as the chapter)."""
        rng = np.random.default_rng(seed)
        for (batch_x,) in batches(x_train, batch_size=batch, seed=seed):
            flip = rng.random(len(batch_x)) < 0.5
            yield (np.where(flip[:, None, None, None], batch_x[:, :, ::-1], batch_x),)

    return Recipe("diffusion", settings,
                  dict(batch_size=batch, optimizer="AdamW", learning_rate=lr, weight_decay=decay,
                       ema=ema, horizontal_flips=True, training_images=len(x_train)),
                  model, flipped, batch, "images", gdl.pick(full=32_000, cpu=16_000, smoke=30))


def _pixelcnn(outputs: int, levels: int, seed: int, name: str) -> tuple[dict, keras.Model, np.ndarray]:
    """Chapter 5 §5.7-5.8: a PixelCNN on 16x16 Fashion-MNIST (FILTERS, BLOCKS, PIXEL_BATCH, PIXEL_LR)."""
    from gdl.models import autoregressive as ar

    settings = {"network": dict(image_size=16, outputs=outputs,
                                filters=gdl.pick(full=128, cpu=64, smoke=16),
                                blocks=gdl.pick(full=5, cpu=5, smoke=2)),
                "levels": levels}
    # All 60,000 training images (the chapter's cpu run takes 30,000 for time): the chapter
    # validates on the test split, so none of its held-out images is trained on.
    train256 = _shrunk_fashion(gdl.pick(full=60_000, cpu=60_000, smoke=256))
    keras.utils.set_random_seed(seed)
    network = ar.build_pixelcnn(**settings["network"], name=name)
    return settings, network, train256


def pixelcnn_levels() -> Recipe:
    """Chapter 5 §5.7: the PixelCNN over 4 intensity levels."""
    settings, model, train256 = _pixelcnn(4, 4, 2, "pixelcnn")
    train4 = train256 * 4 // 256                                      # levels 0..3
    model.compile(optimizer=keras.optimizers.Adam(5e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = (train4 / 3).astype("float32")
    return Recipe("autoregressive", settings,
                  dict(batch_size=128, optimizer="Adam", learning_rate=5e-4, training_images=len(x)),
                  model, lambda seed: batches(x, train4, batch_size=128, seed=seed), 128, "images",
                  gdl.pick(full=70_000, cpu=30_000, smoke=4))


def pixelcnn_mixture() -> Recipe:
    """Chapter 5 §5.8: the PixelCNN with a mixture of 5 discretized logistics (N_MIXTURE) over 256 levels."""
    from gdl.models import autoregressive as ar

    settings, model, train256 = _pixelcnn(3 * 5, 256, 3, "pixelcnn_mixture")
    settings["components"] = 5
    model.compile(optimizer=keras.optimizers.Adam(5e-4), loss=ar.mixture_nll)
    x = (train256 / 255).astype("float32")
    return Recipe("autoregressive", settings,
                  dict(batch_size=128, optimizer="Adam", learning_rate=5e-4, training_images=len(x)),
                  model, lambda seed: batches(x, train256, batch_size=128, seed=seed), 128, "images",
                  gdl.pick(full=23_000, cpu=25_000, smoke=4))


def _wine(vocab_size: int, length: int):
    """Chapters 5 and 9: the corpus, its split and chapter 5's tokenizer (`gdl.data.wine`)."""
    from gdl.data.wine import wine_corpus

    corpus = wine_corpus(gdl.pick(full=None, cpu=None, smoke=300))
    vectorize = corpus.vectorizer(vocab_size, length)
    def ids(texts):
        return np.asarray(keras.ops.convert_to_numpy(vectorize(texts)), dtype="int32")
    return corpus, vectorize.get_vocabulary(), ids(corpus.train_texts), ids(corpus.val_texts)


def _perplexity(model, x_val: np.ndarray, y_val: np.ndarray, first: int = 0) -> dict:
    """Validation NLL and perplexity over the real (non-padding) target words from position
    `first` on, as chapters 5 (first=0) and 9 (first=1: the word after <start> is not scored)."""
    total = count = 0.0
    for i in range(0, len(x_val), 256):
        xb, yb = x_val[i:i + 256], y_val[i:i + 256]
        nll = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(
            yb, model(xb), from_logits=True))[:, first:]
        real = yb[:, first:] > 0
        total += float(nll[real].sum())
        count += float(real.sum())
    return {"validation_nll": total / count, "validation_perplexity": float(np.exp(total / count))}


def lstm_wine() -> Recipe:
    """Chapter 5 §5.2-5.4: the LSTM language model on wine reviews (VOCAB_SIZE, SEQ_LEN, EMBED_DIM, UNITS)."""
    from gdl.models import autoregressive as ar

    vocab_size = gdl.pick(full=10_000, cpu=3_000, smoke=1_000)
    seq_len = gdl.pick(full=100, cpu=64, smoke=24)
    _, vocab, train_ids, val_ids = _wine(vocab_size, seq_len + 1)
    x, y = train_ids[:, :-1], train_ids[:, 1:]
    x_val, y_val = val_ids[:, :-1], val_ids[:, 1:]
    settings = {"network": dict(vocab_size=vocab_size, kind="lstm", embed_dim=100, units=128),
                "seq_len": seq_len,
                # sha256 of the vocabulary, one word a line: the weights mean nothing with other ids
                "vocabulary_sha256": _sha256_lines(vocab)}
    # About nine passes over the 14,000 reviews, the learning rate decaying to a tenth: without
    # dropout an 800k-parameter LSTM overfits this corpus if it goes on at full rate much longer.
    steps = gdl.pick(full=6_000, cpu=2_000, smoke=4)
    keras.utils.set_random_seed(1)
    model = ar.build_text_model(**settings["network"])
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps, alpha=0.1)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))

    return Recipe("autoregressive", settings,
                  dict(batch_size=64, optimizer="Adam", learning_rate="cosine 1e-3 -> 1e-4",
                       decay_steps=steps, training_reviews=len(x)),
                  model, lambda seed: batches(x, y, batch_size=64, seed=seed), 64, "reviews",
                  steps, lambda model: _perplexity(model, x_val, y_val))


def gpt_wine() -> Recipe:
    """Chapter 9 §9.3: the GPT on wine reviews (VOCAB_SIZE, SEQ_LEN, EMBED_DIM, NUM_HEADS, KEY_DIM, FF_DIM, NUM_BLOCKS)."""
    from gdl.models import transformer as tr

    vocab_size = gdl.pick(full=10_000, cpu=3_000, smoke=1_000)
    seq_len = gdl.pick(full=100, cpu=64, smoke=24)
    _, vocab, train_ids, val_ids = _wine(vocab_size, seq_len + 1)
    start = len(vocab)                       # the chapter's one extra token, <start>
    vocab = vocab + ["<start>"]

    def inputs(ids):                          # <start> + the first SEQ_LEN ids -> the next ids
        return np.concatenate([np.full((len(ids), 1), start, "int32"), ids[:, :-1]], axis=1)

    x, y, x_val, y_val = inputs(train_ids), train_ids, inputs(val_ids), val_ids
    network = dict(vocab_size=len(vocab), max_len=seq_len + 1,
                   embed_dim=gdl.pick(full=256, cpu=128, smoke=32),
                   num_heads=gdl.pick(full=2, cpu=4, smoke=2),
                   key_dim=gdl.pick(full=256, cpu=32, smoke=16),
                   ff_dim=gdl.pick(full=256, cpu=512, smoke=64),
                   num_blocks=gdl.pick(full=1, cpu=2, smoke=2),
                   positions="learned", start_id=start, exclude_ids=[0, 1, start])
    settings = {"network": network, "vocabulary_sha256": _sha256_lines(vocab)}
    steps = gdl.pick(full=20_000, cpu=3_300, smoke=20)     # cpu: 15 passes over the reviews
    # Many passes over 14,000 reviews overfit a 1.2M-parameter model: dropout 0.1 (the chapter's
    # two-epoch run needs none) and a learning rate that decays to a tenth over the run.
    dropout = 0.1
    keras.utils.set_random_seed(1)
    model = tr.GPT(**network, dropout=dropout)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps, alpha=0.1)
    model.compile(optimizer=keras.optimizers.Adam(schedule))

    return Recipe("transformer", settings,
                  dict(batch_size=64, optimizer="Adam", learning_rate="cosine 1e-3 -> 1e-4",
                       decay_steps=steps, dropout=dropout, training_reviews=len(x)),
                  model, lambda seed: batches(x, y, batch_size=64, seed=seed), 64, "reviews",
                  steps, lambda model: _perplexity(model, x_val, y_val, first=1),   # as §9.3
                  extra={"vocabulary": "\n".join(vocab)})   # for the live page


def musegan_chorales() -> Recipe:
    """Chapter 11 §11.5: MuseGAN on every 2-bar window of the JSB training chorales (MG_Z, MG_GENERATOR,
    MG_CRITIC, MG_BATCH, MG_CRITIC_STEPS, MG_LR)."""
    from gdl.data.music import jsb_chorales
    from gdl.models import musegan as mg

    z_dim = 32
    settings = {
        "generator": dict(z_dim=z_dim, **gdl.pick(
            full=dict(temporal_filters=1024, units=1024, time_filters=[512, 256, 256], pitch_filters=256),
            cpu=dict(temporal_filters=512, units=512, time_filters=[256, 128, 128], pitch_filters=128),
            smoke=dict(temporal_filters=32, units=32, time_filters=[16, 16, 16], pitch_filters=16))),
        "critic": dict(filters=list(gdl.pick(full=(128,) * 6 + (256, 512), cpu=(64,) * 6 + (128, 256),
                                             smoke=(8,) * 6 + (16, 32))),
                       units=gdl.pick(full=1024, cpu=512, smoke=32)),
    }
    batch, critic_steps, lr = gdl.pick(full=64, cpu=64, smoke=8), 5, 1e-3   # the curriculum's
    rolls = mg.pitches_to_rolls(mg.chorale_windows(jsb_chorales().train))
    keras.utils.set_random_seed(11)
    generator = mg.build_musegan_generator(**settings["generator"])
    critic = mg.build_musegan_critic(**settings["critic"])
    model = mg.MuseGAN(generator, critic, latent_dim=z_dim, critic_steps=critic_steps, gp_weight=10.0,
                       seed=11)
    adam = lambda: keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9)  # noqa: E731
    model.compile(discriminator_optimizer=adam(), generator_optimizer=adam())

    def evaluate(model) -> dict:
        """Dong et al.'s metrics of 512 samples, averaged over the tracks (TD: soprano-bass)."""
        fake = np.concatenate([keras.ops.convert_to_numpy(model.generate(128, seed=i)) for i in range(4)])
        return {"empty_bars": float(np.mean(mg.empty_bars(fake))),
                "used_pitch_classes": float(np.nanmean(mg.used_pitch_classes(fake))),
                "qualified_notes": float(np.nanmean(mg.qualified_notes(fake))),
                "tonal_distance_soprano_bass": mg.tonal_distance(fake, 0, 3)}

    n = batch * critic_steps
    return Recipe("gan", settings,
                  dict(batch_size=batch, critic_steps=critic_steps, gp_weight=10.0, optimizer="Adam",
                       learning_rate=lr, beta_1=0.5, beta_2=0.9, training_windows=len(rolls)),
                  model, lambda seed: batches(rolls, batch_size=n, seed=seed), n, "2-bar windows",
                  gdl.pick(full=20_000, cpu=6_000, smoke=4), evaluate)


# Chapter 12's rollouts for the long runs: tracks from WORLD_FIRST_TRACK on (the chapter's own
# short run uses tracks 0.., its evaluation tracks 1,000,000..); the last tenth of the episodes
# is held out.
WORLD_FIRST_TRACK = 10_000


def _world_rollouts():
    from gdl.data import car_racing

    return car_racing.collect_random(gdl.pick(full=400, cpu=160, smoke=4),
                                     gdl.pick(full=1000, cpu=400, smoke=40), seed=WORLD_FIRST_TRACK)


def _world_split(rollouts) -> tuple[np.ndarray, np.ndarray, int]:
    """Row masks of the training and held-out episodes, and how many episodes are held out."""
    n_held = max(1, len(rollouts.lengths) // 10)
    episode = np.repeat(np.arange(len(rollouts.lengths)), rollouts.lengths)
    held = episode >= len(rollouts.lengths) - n_held
    return ~held, held, n_held


def _frame_batches(frames: np.ndarray, batch: int, seed: int):
    """Shuffled uint8 frames as float batches in [0, 1] (the float copy of all frames would be 13x bigger)."""
    for (x,) in batches(frames, batch_size=batch, seed=seed):
        yield (x.astype("float32") / 255.0,)


def world_vae() -> Recipe:
    """Chapter 12 §12.4: V, the VAE on 64x64 CarRacing frames (Z_DIM, V_FILTERS), on random-policy
    rollouts."""
    from gdl.models.vae import VAE, build_decoder, build_encoder

    z_dim, filters = 32, list(gdl.pick(full=(32, 64, 128, 256), cpu=(32, 64, 128, 256), smoke=(8, 8, 8, 8)))
    shape = [64, 64, 3]
    settings = {"encoder": dict(input_shape=shape, latent_dim=z_dim, filters=filters),
                "decoder": dict(latent_dim=z_dim, output_shape=shape, filters=filters[::-1])}
    rollouts = _world_rollouts()
    train_rows, held_rows, _ = _world_split(rollouts)
    frames, held = rollouts.frames[train_rows], rollouts.frames[held_rows][:1000]
    batch, lr = 64, 1e-3
    keras.utils.set_random_seed(12)
    model = VAE(build_encoder(**settings["encoder"], name="world_encoder"),
                build_decoder(**settings["decoder"], name="world_decoder"), beta=1.0, seed=12)
    model.compile(optimizer=keras.optimizers.Adam(lr))
    model(frames[:2].astype("float32") / 255.0)   # built, so a checkpoint loads before the first step

    def evaluate(model) -> dict:
        logs = model.evaluate(held.astype("float32") / 255.0, batch_size=100, verbose=0, return_dict=True)
        return {f"validation_{k}": float(v) for k, v in logs.items()}

    return Recipe("vae", settings,
                  dict(batch_size=batch, optimizer="Adam", learning_rate=lr, beta=1.0,
                       training_frames=len(frames), episodes=len(rollouts.lengths),
                       first_track=WORLD_FIRST_TRACK, policy="gdl.data.car_racing.random_actions"),
                  model, lambda seed: _frame_batches(frames, batch, seed), batch, "frames",
                  gdl.pick(full=20_000, cpu=5_000, smoke=4), evaluate)


def world_mdn_rnn() -> Recipe:
    """Chapter 12 §12.5: M, the MDN-RNN (UNITS, MIXTURES), on the random rollouts encoded by the
    published world_vae weights."""
    from gdl.models import world
    from gdl.models.vae import VAE, build_decoder, build_encoder

    vae_name = gdl.weights.for_profile("world_vae")
    vae_rec = gdl.weights.record(vae_name)
    vae = VAE(build_encoder(**vae_rec["settings"]["encoder"]), build_decoder(**vae_rec["settings"]["decoder"]))
    vae(np.zeros((1, 64, 64, 3), "float32"))
    gdl.weights.load(vae_name, vae)
    z_dim = vae_rec["settings"]["encoder"]["latent_dim"]
    settings = {"z_dim": z_dim, "action_dim": 3, "units": gdl.pick(full=256, cpu=256, smoke=16),
                "mixtures": 5, "vae_sha256": vae_rec["sha256"]}
    rollouts = _world_rollouts()
    z_mean, z_log_var = (np.asarray(a) for a in vae.encoder.predict(
        rollouts.frames.astype("float32") / 255.0, batch_size=256, verbose=0))
    train_rows, held_rows, n_held = _world_split(rollouts)
    lengths = rollouts.lengths
    arrays = (z_mean, z_log_var, rollouts.actions, rollouts.rewards, rollouts.dones)
    train = [a[train_rows] for a in arrays] + [lengths[:-n_held]]
    held = [a[held_rows] for a in arrays] + [lengths[-n_held:]]
    batch, seq_len, lr = gdl.pick(full=100, cpu=32, smoke=4), gdl.pick(full=500, cpu=64, smoke=16), 1e-3
    keras.utils.set_random_seed(12)
    model = world.build_mdn_rnn(**{k: settings[k] for k in ("z_dim", "action_dim", "units", "mixtures")})
    model.compile(optimizer=keras.optimizers.Adam(lr, clipnorm=1.0),
                  loss=world.MDNRNNLoss(z_dim, settings["mixtures"]))
    model(np.zeros((1, 2, z_dim + 3), "float32"))

    def evaluate(model) -> dict:
        x, y = next(world.training_windows(*held, seq_len=seq_len, batch_size=64, seed=1, sample_z=False))
        pred = model.predict(x, verbose=0)
        log_pi, mu, log_sigma, reward, done_logit = world.split_mdn(pred, z_dim, settings["mixtures"])
        nll = -keras.ops.mean(world.mixture_log_prob(y[..., :z_dim], log_pi, mu, log_sigma))
        return {"validation_nll_per_dim": float(nll),
                "validation_reward_mse": float(np.mean((np.asarray(reward) - y[..., z_dim]) ** 2)),
                "validation_loss": float(model.evaluate(x, y, verbose=0))}

    return Recipe("world_model", settings,
                  dict(batch_size=batch, seq_len=seq_len, optimizer="Adam", learning_rate=lr, clipnorm=1.0,
                       episodes=len(lengths) - n_held, vae=vae_name, z="drawn from V's posterior"),
                  model, lambda seed: world.training_windows(*train, seq_len=seq_len, batch_size=batch,
                                                             seed=seed),
                  batch * seq_len, "sequence steps", gdl.pick(full=20_000, cpu=6_000, smoke=4), evaluate)


def _captioned(size: int):
    """Chapter 13 §13.1: faces in [0, 1], their attributes as 0/1, and the split (train, test, unseen)
    that keeps one pair of attributes out of training (`gdl.data.captions.split`)."""
    from gdl.data import captions

    celeba = gdl.data.celeba(limit=gdl.pick(full=None, cpu=10_000, smoke=320))
    faces = celeba.load(image_size=size)
    attrs = (celeba.attributes.to_numpy() > 0).astype("float32")
    return faces, attrs, captions.split(attrs)


def _flipped(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each image mirrored left-right with probability 1/2, and which ones were."""
    flip = rng.random(len(x)) < 0.5
    return np.where(flip[:, None, None, None], x[:, :, ::-1], x), flip


def _clip_settings() -> dict:
    """Chapter 13 §13.2's CLIP_IMAGE and CLIP_TEXT."""
    from gdl.data.captions import CaptionTokenizer

    return {"image": dict(image_size=32, widths=list(gdl.pick(full=(32, 64, 128), cpu=(32, 64, 128),
                                                                smoke=(8, 16, 32))),
                          embed_dim=gdl.pick(full=64, cpu=64, smoke=16)),
            "text": dict(vocab_size=CaptionTokenizer().vocab_size, max_len=64,
                         width=gdl.pick(full=64, cpu=64, smoke=16), num_heads=4,
                         num_blocks=gdl.pick(full=2, cpu=2, smoke=1),
                         embed_dim=gdl.pick(full=64, cpu=64, smoke=16))}


def _build_clip(settings: dict):
    from gdl.models import multimodal as mm

    return mm.CLIP(mm.build_image_encoder(**settings["image"]), mm.TextEncoder(**settings["text"]))


def _load_clip():
    """The published clip_faces weights in a built CLIP, and their record."""
    name = gdl.weights.for_profile("clip_faces")
    rec = gdl.weights.record(name)
    model = _build_clip(rec["settings"])
    model([np.zeros((1, 32, 32, 3), "float32"), np.ones((1, 4), "int32")])
    gdl.weights.load(name, model)
    return model, rec


def clip_faces() -> Recipe:
    """Chapter 13 §13.2: the CLIP on captioned CelebA faces (CLIP_IMAGE, CLIP_TEXT, CLIP_BATCH, MENTION)."""
    from gdl.data import captions
    from gdl.models import multimodal as mm

    settings = _clip_settings()
    faces, attrs, (train, test, _) = _captioned(32)
    tok = captions.CaptionTokenizer(settings["text"]["max_len"])
    variants, mention = 8, 0.6
    ids = captions.caption_ids(attrs[train], tok, variants, mention, seed=13)
    x, batch, lr = faces[train], gdl.pick(full=256, cpu=128, smoke=16), 5e-4
    keras.utils.set_random_seed(13)
    model = _build_clip(settings)
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=0.05))
    model([x[:2], ids[0, :2]])

    def stream(seed):
        rng = np.random.default_rng(seed)
        for (idx,) in batches(np.arange(len(x)), batch_size=batch, seed=seed):
            images, _ = _flipped(x[idx], rng)
            yield ((images, ids[rng.integers(variants, size=len(idx)), idx]),)

    def evaluate(model) -> dict:
        """Text -> image retrieval among the test faces, from one complete caption each."""
        img = mm.embed_in_batches(model.encode_images, faces[test])
        txt = mm.embed_in_batches(model.encode_text, captions.caption_ids(attrs[test], tok, 1, 1.0, 7)[0])
        rank = (txt @ img.T > np.sum(txt * img, 1, keepdims=True)).sum(1)   # images above the match
        return {"test_recall_at_1": float(np.mean(rank < 1)), "test_recall_at_5": float(np.mean(rank < 5)),
                "test_faces": int(len(test))}

    return Recipe("clip", settings,
                  dict(batch_size=batch, optimizer="AdamW", learning_rate=lr, weight_decay=0.05,
                       caption_variants=variants, mention=mention, horizontal_flips=True,
                       training_pairs=len(x), held_out_combination=list(captions.HELD_OUT_COMBINATION)),
                  model, stream, batch, "image-caption pairs", gdl.pick(full=20_000, cpu=6_000, smoke=4),
                  evaluate)


def _clip_conditions(clip, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CLIP image embeddings of x and of x mirrored (the conditions of the flipped batches)."""
    from gdl.models import multimodal as mm

    return (mm.embed_in_batches(clip.encode_images, x), mm.embed_in_batches(clip.encode_images, x[:, :, ::-1]))


def _conditioned_stream(x, x_flipped, emb, emb_flipped, batch):
    def stream(seed):
        rng = np.random.default_rng(seed)
        for (idx,) in batches(np.arange(len(x)), batch_size=batch, seed=seed):
            flip = (rng.random(len(idx)) < 0.5)[:, None]
            images = np.where(flip[:, :, None, None], x_flipped[idx], x[idx])
            yield ((images, np.where(flip, emb_flipped[idx], emb[idx])),)
    return stream


def unclip_faces() -> Recipe:
    """Chapter 13 §13.3-13.4: the decoder, chapter 8's U-Net conditioned on CLIP image embeddings and
    trained with dropped conditions (DEC_UNET, DEC_BATCH, DROP_RATE), on the published clip_faces."""
    from gdl.models import multimodal as mm

    clip, clip_rec = _load_clip()
    faces, _, (train, _, _) = _captioned(32)
    x = faces[train]
    emb, emb_flipped = _clip_conditions(clip, x)
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    settings = {"network": dict(image_size=32, widths=list(gdl.pick(full=(32, 64, 96, 128), cpu=(32, 64, 96, 128),
                                                                     smoke=(16, 32))),
                                block_depth=1, embedding_dims=32, condition_dims=int(emb.shape[1])),
                "mean": mean.tolist(), "std": std.tolist(), "drop_rate": 0.1, "clip_sha256": clip_rec["sha256"]}
    batch, lr, ema = gdl.pick(full=64, cpu=32, smoke=16), 1e-3, gdl.pick(full=0.999, cpu=0.999, smoke=0.9)
    keras.utils.set_random_seed(14)
    model = mm.GuidedDiffusion(mm.build_conditional_unet(**settings["network"]), mean, std,
                               drop_rate=settings["drop_rate"], ema=ema, seed=14)
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=1e-4))
    return Recipe("diffusion", settings,
                  dict(batch_size=batch, optimizer="AdamW", learning_rate=lr, weight_decay=1e-4, ema=ema,
                       horizontal_flips=True, training_images=len(x), clip="clip_faces"),
                  model, _conditioned_stream(x, x[:, :, ::-1], emb, emb_flipped, batch), batch, "images",
                  gdl.pick(full=40_000, cpu=12_000, smoke=4))


def unclip_prior() -> Recipe:
    """Chapter 13 §13.3: the regression prior (text embedding -> image embedding) of the published
    clip_faces, on the training faces' partial captions (CAPTION_VARIANTS, MENTION), cosine loss."""
    from gdl.data import captions
    from gdl.models import multimodal as mm
    from gdl.models.prior import build_prior

    clip, clip_rec = _load_clip()
    faces, attrs, (train, test, _) = _captioned(32)
    tok = captions.CaptionTokenizer(clip_rec["settings"]["text"]["max_len"])
    variants, mention = 8, 0.6
    ids = captions.caption_ids(attrs[train], tok, variants, mention, seed=13)   # (V, N, T)
    text = np.stack([mm.embed_in_batches(clip.encode_text, v) for v in ids])       # (V, N, D)
    image = mm.embed_in_batches(clip.encode_images, faces[train])                  # (N, D)
    # the caption length is the text tower's: a page that runs both pads prompts to it
    settings = {"embed_dim": int(image.shape[1]), "width": 256, "max_len": tok.max_len,
                "clip_sha256": clip_rec["sha256"]}
    batch, lr = gdl.pick(full=256, cpu=256, smoke=16), 1e-3
    keras.utils.set_random_seed(16)
    model = build_prior(settings["embed_dim"], settings["width"])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.CosineSimilarity())

    def stream(seed):
        rng = np.random.default_rng(seed)
        for (idx,) in batches(np.arange(len(image)), batch_size=batch, seed=seed):
            yield text[rng.integers(variants, size=len(idx)), idx], image[idx]

    test_text = mm.embed_in_batches(clip.encode_text, captions.caption_ids(attrs[test], tok, 1, 1.0, 7)[0])
    test_image = mm.embed_in_batches(clip.encode_images, faces[test])

    def evaluate(model) -> dict:
        """The chapter's table: cosine with the true image embedding, and whether the guess finds
        its face among the top 10 test faces, from each test face's complete caption."""
        guess = model.predict(test_text, verbose=0)
        own = np.sum(guess * test_image, 1)
        rank = (guess @ test_image.T > own[:, None]).sum(1)
        return {"test_cosine": float(own.mean()), "test_top10": float(np.mean(rank < 10)),
                "test_faces": int(len(test))}

    return Recipe("prior", settings,
                  dict(batch_size=batch, optimizer="Adam", learning_rate=lr, loss="cosine",
                       caption_variants=variants, mention=mention, training_pairs=len(image),
                       clip="clip_faces"),
                  model, stream, batch, "caption embeddings", gdl.pick(full=20_000, cpu=6_000, smoke=4),
                  evaluate)


def latent_faces() -> Recipe:
    """Chapter 13 §13.5: latent diffusion in the published face VAE's latent space (chapter 3), conditioned
    on CLIP image embeddings (LATENT_DENOISER, LATENT_BATCH)."""
    from gdl.models import multimodal as mm
    from gdl.models.vae import VAE, build_decoder, build_encoder

    clip, clip_rec = _load_clip()
    # chapter 3's 32x32 face VAE in every profile (its `full` weights are 64x64)
    vae_name = gdl.pick(full="vae_faces", cpu="vae_faces", smoke="vae_faces.smoke")
    vae_rec = gdl.weights.record(vae_name)
    vae = VAE(build_encoder(**vae_rec["settings"]["encoder"], name="face_encoder"),
              build_decoder(**vae_rec["settings"]["decoder"], name="face_decoder"))
    vae(np.zeros((1, 32, 32, 3), "float32"))
    gdl.weights.load(vae_name, vae)
    faces, _, (train, _, _) = _captioned(32)
    x = faces[train]
    emb, emb_flipped = _clip_conditions(clip, x)
    latents = mm.embed_in_batches(lambda b: vae.encoder(b, training=False)[0], x)[:, None, None]
    latents_flipped = mm.embed_in_batches(lambda b: vae.encoder(b, training=False)[0], x[:, :, ::-1])[:, None, None]
    mean, std = latents.mean(axis=(0, 1, 2)), latents.std(axis=(0, 1, 2))
    latent_dim = int(latents.shape[-1])
    settings = {"network": dict(latent_dim=latent_dim, width=gdl.pick(full=512, cpu=256, smoke=32),
                                depth=gdl.pick(full=4, cpu=3, smoke=1), embedding_dims=32,
                                condition_dims=int(emb.shape[1])),
                "mean": mean.tolist(), "std": std.tolist(), "drop_rate": 0.1,
                "clip_sha256": clip_rec["sha256"], "vae_sha256": vae_rec["sha256"]}
    batch, lr, ema = gdl.pick(full=256, cpu=128, smoke=16), 1e-3, gdl.pick(full=0.999, cpu=0.999, smoke=0.9)
    keras.utils.set_random_seed(15)
    model = mm.GuidedDiffusion(mm.build_latent_denoiser(**settings["network"]), mean, std,
                               drop_rate=settings["drop_rate"], value_range=None, ema=ema, seed=15)
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=1e-4))
    return Recipe("diffusion", settings,
                  dict(batch_size=batch, optimizer="AdamW", learning_rate=lr, weight_decay=1e-4, ema=ema,
                       horizontal_flips=True, training_images=len(x), clip="clip_faces", vae="vae_faces"),
                  model, _conditioned_stream(latents, latents_flipped, emb, emb_flipped, batch), batch,
                  "latents", gdl.pick(full=40_000, cpu=20_000, smoke=4))


def _caption_lm_settings() -> dict:
    """Chapter 13 §13.6's LM (a chapter 9 GPT over caption words)."""
    from gdl.data.captions import CaptionTokenizer

    tok = CaptionTokenizer()
    return dict(vocab_size=tok.vocab_size, max_len=tok.max_len - 1,
                embed_dim=gdl.pick(full=64, cpu=64, smoke=16), num_heads=4,
                num_blocks=gdl.pick(full=2, cpu=2, smoke=1), positions="learned",
                start_id=tok.start_id, exclude_ids=[tok.pad_id, tok.start_id])


def _lm_pairs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Caption ids (..., T) -> (inputs, targets): every id but the last, and every id but the first."""
    return ids[..., :-1], ids[..., 1:]


def caption_gpt() -> Recipe:
    """Chapter 13 §13.6: the frozen language model, a chapter 9 GPT trained on complete captions alone."""
    from gdl.data import captions
    from gdl.models import transformer as tr

    network = _caption_lm_settings()
    _, attrs, (train, test, _) = _captioned(32)
    tok = captions.CaptionTokenizer()
    variants = 8
    inputs, targets = _lm_pairs(captions.caption_ids(attrs[train], tok, variants, 1.0, seed=16))
    inputs, targets = inputs.reshape(-1, inputs.shape[-1]), targets.reshape(-1, targets.shape[-1])
    x_val, y_val = _lm_pairs(captions.caption_ids(attrs[test], tok, 1, 1.0, seed=17)[0])
    keras.utils.set_random_seed(16)
    model = tr.GPT(**network, dropout=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))

    def evaluate(model) -> dict:
        logs = model.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)
        return {"test_nll_per_word": float(logs["loss"])}

    return Recipe("transformer", {"network": network},
                  dict(batch_size=64, optimizer="Adam", learning_rate=1e-3, dropout=0.1,
                       caption_variants=variants, training_captions=len(inputs)),
                  model, lambda seed: batches(inputs, targets, batch_size=64, seed=seed), 64, "captions",
                  gdl.pick(full=10_000, cpu=3_000, smoke=4), evaluate)


def flamingo_faces() -> Recipe:
    """Chapter 13 §13.6: the captioner, a Perceiver resampler and gated cross-attention around the frozen
    caption_gpt, looking at the frozen clip_faces image encoder's grid (RESAMPLER_LATENTS)."""
    from gdl.data import captions
    from gdl.models import multimodal as mm
    from gdl.models import transformer as tr

    clip, clip_rec = _load_clip()
    lm_name = gdl.weights.for_profile("caption_gpt")
    lm_rec = gdl.weights.record(lm_name)
    lm = tr.GPT(**lm_rec["settings"]["network"])
    lm(np.ones((1, 4), "int32"))
    gdl.weights.load(lm_name, lm)
    faces, attrs, (train, test, _) = _captioned(32)
    tok = captions.CaptionTokenizer()
    variants = 4
    inputs, targets = _lm_pairs(captions.caption_ids(attrs[train], tok, variants, 1.0, seed=18))
    x = faces[train]
    settings = {"num_latents": 8, "num_heads": 4, "clip_sha256": clip_rec["sha256"],
                "lm_sha256": lm_rec["sha256"]}
    keras.utils.set_random_seed(18)
    model = mm.Captioner(clip.image_encoder, lm, settings["num_latents"], settings["num_heads"])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=tok.pad_id)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    batch = gdl.pick(full=64, cpu=64, smoke=16)

    def stream(seed):
        rng = np.random.default_rng(seed)
        for (idx,) in batches(np.arange(len(x)), batch_size=batch, seed=seed):
            v = rng.integers(variants, size=len(idx))
            yield (_flipped(x[idx], rng)[0], inputs[v, idx]), targets[v, idx]

    def evaluate(model) -> dict:
        said = np.stack([captions.parse(c) for c in tok.decode(
            model.caption(faces[test][:500], banned=(tok.pad_id, tok.start_id), end_id=tok.end_id))])
        return {"test_attribute_accuracy": float(np.mean(said == attrs[test][:500]))}

    return Recipe("captioner", settings,
                  dict(batch_size=batch, optimizer="Adam", learning_rate=1e-3, caption_variants=variants,
                       horizontal_flips=True, training_pairs=len(x), vision="clip_faces", language="caption_gpt"),
                  model, stream, batch, "image-caption pairs", gdl.pick(full=10_000, cpu=3_000, smoke=4),
                  evaluate)


# In priority order (the order to run them in when time is short).
RECIPES: dict[str, Callable[[], Recipe]] = {
    f.__name__: f for f in (dcgan_bricks, diffusion_flowers, wgan_faces, cgan_blond, vae_fashion, vae_faces,
                            ebm_digits, pixelcnn_levels, pixelcnn_mixture, lstm_wine, gpt_wine,
                            stylegan_faces, musegan_chorales, world_vae, world_mdn_rnn, clip_faces,
                            caption_gpt, unclip_faces, latent_faces, flamingo_faces, unclip_prior)}


# --------------------------------------------------------------------------- chapter 14's capstone
# Eight families on one dataset and one wall-clock budget each (gdl.capstone). A budgeted run is
# a few minutes, so it has no checkpoints: a stopped run starts that family again.
CAPSTONE = {f"capstone_{family}": family for family in ("vae", "dcgan", "pixelcnn", "flow", "ebm",
                                                        "diffusion", "vq_gpt", "latent_diffusion")}


NOTE_CAPSTONE = ("the budget's report; parameters counts every weight, an EBM's replay buffer and a "
                 "diffusion model's averaged copy included; the chapter measures the samples")


def capstone_minutes() -> float:
    """Each family's budget: 10 minutes of two CPU cores in `cpu`, 60 in `full`."""
    return gdl.pick(full=60.0, cpu=10.0, smoke=0.05)


def capstone(name: str, minutes: float, argv: list[str], info: str) -> dict:
    """Train one capstone family for `minutes` of wall-clock time on all 60,000 training images
    and publish its weights, with the budget's report in the record."""
    from gdl import capstone as cap

    family = CAPSTONE[name]
    levels = cap.fashion_levels("train", gdl.pick(full=None, cpu=None, smoke=512))
    model, settings = cap.build(family)
    print(f"[{published_name(name)}] {model.count_params():,} parameters, {minutes:g} min budget",
          flush=True)
    load_before = os.getloadavg()[0]
    model, report = cap.train(family, levels, minutes * 60, model=model, settings=settings)
    report["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    steps = sum(report["steps"].values())
    print(f"[{published_name(name)}] {report}", flush=True)
    cap.drop_nested_optimizers(model)
    record = gdl.weights.save(published_name(name), model, {
        "family": family, "recipe": name, "profile": gdl.profile(), "settings": settings,
        "training": {"budget_minutes": minutes, "training_images": len(levels),
                     "steps_by_stage": report["steps"]},
        "steps": steps, "examples_seen": report["examples_seen"], "unit": "images",
        "wall_seconds": report["seconds"], "run_info": info, "command": command_line(argv),
        "load_average": report["load_average"],   # the machine's 1-min load, before and after
        "metrics": {"overrun_seconds": report["overrun_seconds"],
                    "parameters": int(model.count_params())},
        "metrics_note": NOTE_CAPSTONE,
    })
    print(gdl.weights.describe(record), flush=True)
    return record


# --------------------------------------------------------------------------- checkpoints
def published_name(name: str) -> str:
    """NAME in the `cpu` profile, NAME.PROFILE in the others (so `full` weights never replace `cpu` ones)."""
    return gdl.weights.for_profile(name)


def checkpoint_dir(name: str) -> Path:
    return cache_dir() / "pretrain" / published_name(name)


def _optimizers(model) -> dict:
    found = dict(getattr(model, "optimizers", None) or {})
    return found or {"optimizer": model.optimizer}


def _seed_variables(model) -> list:
    """The seed generators' states, which `save_weights` leaves out; restored so a resumed run
    draws fresh noise rather than the noise of its first steps again."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def latest_checkpoint(folder: Path) -> Path | None:
    done = [p for p in folder.glob("step-*") if CHECKPOINT.match(p.name) and (p / "state.json").is_file()]
    return max(done, key=lambda p: p.name) if done else None


def save_checkpoint(folder: Path, model, state: dict) -> Path:
    """Write weights + optimizer state + state.json into a fresh folder, then rename it into place."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{state['steps']:09d}"
    if not final.exists():
        state["seed_states"] = [keras.ops.convert_to_numpy(v.value).tolist()
                                for v in _seed_variables(model)]
        state["optimizer_iterations"] = {k: int(keras.ops.convert_to_numpy(o.iterations))
                                         for k, o in _optimizers(model).items()}
        work = Path(tempfile.mkdtemp(prefix=".step-", dir=folder))
        try:
            model.save_weights(work / "model.weights.h5")   # Keras includes every optimizer's variables
            (work / "state.json").write_text(json.dumps(state, indent=1, ensure_ascii=False))
            os.replace(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    for old in folder.iterdir():   # earlier checkpoints, and any a killed run left half-written
        if old != final and old.is_dir() and (CHECKPOINT.match(old.name) or old.name.startswith(".step-")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def restore(folder: Path, recipe: Recipe) -> dict | None:
    """Load the latest checkpoint into the recipe's model; return its state (None: no checkpoint)."""
    latest = latest_checkpoint(folder)
    if latest is None:
        return None
    state = json.loads((latest / "state.json").read_text())
    settings = _plain(recipe.settings)
    problems = gdl.weights.settings_differences(settings, state["settings"])
    if problems or set(settings) != set(state["settings"]):
        raise SystemExit(f"The checkpoint in {folder} was made with other settings "
                         f"({'; '.join(problems) or 'other entries'}). Delete that folder to start "
                         "over with the recipe as it is now.")
    model = recipe.model
    optimizers = _optimizers(model)
    for opt in optimizers.values():
        if not opt.built:   # Keras builds a one-network model's optimizer at its first step
            opt.build(model.trainable_variables)
    model.load_weights(latest / "model.weights.h5")
    for var, value in zip(_seed_variables(model), state.get("seed_states", [])):
        var.assign(np.asarray(value, dtype=var.dtype))
    got = {k: int(keras.ops.convert_to_numpy(o.iterations)) for k, o in optimizers.items()}
    if got != state["optimizer_iterations"]:   # Keras only warns when it skips an optimizer
        raise SystemExit(f"Restoring {latest} left the optimizers at {got} iterations, not "
                         f"{state['optimizer_iterations']}; delete {folder} to start over.")
    return state


def warm_start(name: str, recipe: Recipe) -> dict | None:
    """With no checkpoint here (a new machine), go on from the published weights, if their settings
    match: the steps, time and history carry over; the optimizer starts afresh at the published
    step count (so a learning-rate schedule goes on where it was), and the record says so."""
    # only the store this command publishes to: its weights are the run's own earlier output
    rec = gdl.weights.read_manifest(gdl.weights.weights_dir()).get(published_name(name))
    if rec is None or gdl.weights.settings_differences(_plain(recipe.settings), rec["settings"]):
        return None
    model = recipe.model
    for opt in _optimizers(model).values():
        if not opt.built:
            opt.build(model.trainable_variables)
        opt.iterations.assign(int(rec["steps"]))
    gdl.weights.load(published_name(name), model)
    print(f"no checkpoint of {published_name(name)} here: going on from its published weights "
          f"(step {rec['steps']:,}; the optimizer's moments start afresh)", flush=True)
    history = [{"step": rec["steps"], "wall_seconds": rec["wall_seconds"], **{
        k: v for k, v in rec.get("metrics", {}).items() if not k.startswith("validation")}}]
    return {"name": name, "profile": rec["profile"], "settings": _plain(recipe.settings),
            "steps": rec["steps"], "examples_seen": rec["examples_seen"],
            "wall_seconds": rec["wall_seconds"], "history": history,
            "sessions": list(rec.get("sessions", [])),
            "optimizer_restarts": [*rec.get("optimizer_restarts", []), rec["steps"]]}


# --------------------------------------------------------------------------- the run
def command_line(argv: list[str]) -> str:
    """The command as a reader would type it: the environment that matters, then the arguments."""
    env = []
    if gdl.profile() != "cpu":
        env.append(f"GDL_PROFILE={gdl.profile()}")
    if keras.backend.backend() != "tensorflow":
        env.append(f"KERAS_BACKEND={keras.backend.backend()}")
    return " ".join([*env, "python scripts/pretrain.py", shlex.join(argv)])


def _fmt(logs: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in logs.items())


def train(name: str, recipe: Recipe, state: dict, folder: Path, target: int, minutes: float,
          checkpoint_minutes: float) -> dict:
    """Train in chunks until `target` steps or `minutes` of training; checkpoint every few minutes."""
    session = state["sessions"][-1]
    last_save = last_print = time.time()
    rate = None   # steps per second of the last chunk (the first also compiles: an underestimate)
    while True:
        steps_left = target - state["steps"]
        seconds_left = minutes * 60 - state["wall_seconds"]
        if steps_left <= 0 or seconds_left <= 0:
            break
        # about a minute of work per chunk, less if checkpoints are due more often (a few steps
        # for the first chunk, which also compiles)
        span = min(60.0, checkpoint_minutes * 60, seconds_left)
        chunk = min(steps_left, 5 if rate is None else max(1, int(rate * span)))
        start = time.time()
        # a fresh stream per chunk, seeded by the steps done: a resumed run goes on where it was
        history = recipe.model.fit(recipe.stream(state["steps"]), steps_per_epoch=chunk, epochs=1,
                                   verbose=0, callbacks=[NaNGuard()])
        seconds = time.time() - start
        rate = chunk / seconds
        losses = {k: float(v[-1]) for k, v in history.history.items()}
        state["steps"] += chunk
        state["examples_seen"] += chunk * recipe.examples_per_step
        state["wall_seconds"] += seconds
        session["steps"] += chunk
        session["wall_seconds"] += seconds
        state["history"].append({"step": state["steps"], "wall_seconds": round(state["wall_seconds"], 1),
                                 **losses})
        now = time.time()
        done = state["steps"] >= target or state["wall_seconds"] >= minutes * 60
        if now - last_print >= 60 or done or len(state["history"]) == 1:
            print(f"[{published_name(name)}] step {state['steps']:,}/{target:,} · {_fmt(losses)} · "
                  f"{chunk / seconds:.2f} steps/s · {state['wall_seconds'] / 60:.1f} min trained",
                  flush=True)
            last_print = now
        if now - last_save >= checkpoint_minutes * 60:
            save_checkpoint(folder, recipe.model, state)
            last_save = now
    save_checkpoint(folder, recipe.model, state)
    return state


def publish(name: str, recipe: Recipe, state: dict) -> dict:
    """Write the weights and their manifest record from the model as the checkpoint left it."""
    sessions = [{**s, "wall_seconds": round(s["wall_seconds"], 1)} for s in state["sessions"]]
    # the machine that did most of the training (the latest, on a tie); the command last typed
    main = max(reversed(sessions), key=lambda s: s["steps"]) if sessions else {}
    last = sessions[-1] if sessions else {}
    metrics = {k: v for k, v in (state["history"][-1] if state["history"] else {}).items()
               if k not in ("step", "wall_seconds")}
    note = "mean losses over the final training chunk"
    if recipe.evaluate is not None:
        metrics.update(recipe.evaluate(recipe.model))
        note += "; validation_*: the held-out split the chapter uses, at the end"
    record = gdl.weights.save(published_name(name), recipe.model, {
        "family": recipe.family, "recipe": name, "profile": state["profile"],
        "settings": recipe.settings, **(recipe.extra or {}), "training": recipe.training,
        "steps": state["steps"], "examples_seen": state["examples_seen"], "unit": recipe.unit,
        "wall_seconds": round(state["wall_seconds"], 1),
        "run_info": main.get("run_info", ""), "command": last.get("command", ""),
        "metrics": {k: round(v, 5) for k, v in metrics.items()},
        "metrics_note": note,
        "optimizer_restarts": state.get("optimizer_restarts", []),
        "sessions": sessions,
    })
    print(gdl.weights.describe(record))
    print(f"wrote {gdl.weights.weights_dir() / record['file']} ({record['bytes'] / 1e6:.1f} MB) "
          f"and its record in {gdl.weights.MANIFEST}")
    return record


def main(argv: list[str] | None = None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", choices=sorted([*RECIPES, *CAPSTONE]), metavar="NAME",
                        help="one of: " + ", ".join([*RECIPES, *CAPSTONE]))
    parser.add_argument("--steps", type=int, help="total training steps to reach (default: the recipe's)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop once this much training time is spent, summed over resumes (default 120; "
                             "a capstone family's budget: 10 in cpu, 60 in full)")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0,
                        help="minutes between checkpoints (default 5)")
    parser.add_argument("--publish", action="store_true",
                        help="publish the latest checkpoint's weights without training")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)
    if args.list or args.name is None:
        for recipe in RECIPES.values():
            print(f"{recipe.__name__:18s} {recipe.__doc__.splitlines()[0]}")
        for name, family in CAPSTONE.items():
            print(f"{name:18s} Chapter 14's capstone: {family} for a wall-clock budget")
        return None

    name = args.name
    # A run limited to fewer threads than the machine has (to share it) says so in its record.
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS")
    info = gdl.run_info(display=False, note=f"threads={threads}" if threads else None)
    print(info, flush=True)
    if name in CAPSTONE:
        return capstone(name, args.minutes or capstone_minutes(), argv, info)
    if args.minutes is None:
        args.minutes = 120.0
    recipe = RECIPES[name]()
    folder = checkpoint_dir(name)
    state = restore(folder, recipe)
    if args.publish:
        if state is None:
            raise SystemExit(f"No checkpoint of {published_name(name)} in {folder}: train first "
                             f"({gdl.weights.pretrain_command(published_name(name))}).")
        return publish(name, recipe, state)
    if state is None and not args.publish:
        state = warm_start(name, recipe)
    if state is None:
        state = {"name": name, "profile": gdl.profile(), "settings": _plain(recipe.settings),
                 "steps": 0, "examples_seen": 0, "wall_seconds": 0.0, "history": [], "sessions": []}
    else:
        print(f"resuming {published_name(name)} from step {state['steps']:,} "
              f"({state['wall_seconds'] / 60:.1f} min trained so far)", flush=True)
        keras.utils.set_random_seed(state["steps"] % (2**31))   # fresh draws for the rest of the run
    target = args.steps if args.steps is not None else recipe.steps
    state["sessions"].append({"run_info": info, "command": command_line(argv), "steps": 0,
                              "wall_seconds": 0.0})
    try:
        state = train(name, recipe, state, folder, target, args.minutes, args.checkpoint_minutes)
    except (FloatingPointError, KeyboardInterrupt) as exc:
        kept = latest_checkpoint(folder)
        raise SystemExit(f"stopped ({exc or 'interrupted'}); the checkpoint {kept} is intact: the same "
                         "command resumes from it.") from exc
    if state["sessions"][-1]["steps"] == 0:
        state["sessions"].pop()   # this session trained nothing; keep the record's history honest
    return publish(name, recipe, state)


if __name__ == "__main__":
    main()
