"""The `full` profile's models, as the chapters define them, build and take one training step
on full-shape data (batches of 2 random examples), and generate at full size.

Nothing else runs them before a GPU does: a `full` run is hours away, so a shape error there
must show up here. The settings are read from the chapters' own
`NAME = gdl.pick(full=..., cpu=..., smoke=...)` lines, so this test follows the chapters.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from gdl.models import autoregressive as ar
from gdl.models import diffusion, ebm, gan, vae

BOOK = Path(__file__).resolve().parents[1] / "book"
RNG = np.random.default_rng(0)


def full(chapter: str, name: str):
    """The `full=` value of `NAME = gdl.pick(...)` in book/<chapter>*.md."""
    (path,) = BOOK.glob(f"{chapter}_*.md")
    text = path.read_text()
    match = re.search(rf"^{name} = (gdl\.pick\()", text, flags=re.M)
    assert match, f"{name} = gdl.pick(...) not found in {path.name}"
    start, depth = match.start(1), 0
    for end in range(match.end(1) - 1, len(text)):   # to the matching parenthesis
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            break
    call = ast.parse(text[start:end + 1], mode="eval").body
    (value,) = [kw.value for kw in call.keywords if kw.arg == "full"]
    return eval(compile(ast.Expression(value), path.name, "eval"), {})   # literals, + and *


def test_the_reader_of_full_settings_reads_them():
    assert full("ch04", "GEN_FILTERS") == (512, 256, 128, 64)
    assert full("ch08", "TRAIN_STEPS") == 50 * 127
    with pytest.raises(AssertionError, match="not found"):
        full("ch04", "NO_SUCH_SETTING")


def images(size, channels, n=2):
    return RNG.uniform(0, 1, (n, size, size, channels)).astype("float32")


def one_step(model, data, batch_size=2, **optimizers):
    model.compile(**optimizers)
    x, y = data if isinstance(data, tuple) else (data, None)   # (images, labels)
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())


def check_samples(x, shape):
    x = np.asarray(keras.ops.convert_to_numpy(x))
    assert x.shape == shape and np.all(np.isfinite(x))
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_face_vae_of_chapter_3():
    size, filters = full("ch03", "FACE_SIZE"), full("ch03", "FACE_FILTERS")
    shape, z_dim = (size, size, 3), 200
    model = vae.VAE(vae.build_encoder(shape, z_dim, filters, batch_norm=True,
                                      activation="leaky_relu"),
                    vae.build_decoder(z_dim, shape, filters[::-1], batch_norm=True,
                                      activation="leaky_relu"), seed=1)
    one_step(model, images(size, 3), optimizer=keras.optimizers.Adam())
    check_samples(model.generate(2, seed=1), (2, *shape))


@pytest.mark.parametrize("kind", ["dcgan", "wgan", "conditional"])
def test_gans_of_chapter_4(kind):
    if kind == "dcgan":
        size, channels, z_dim = full("ch04", "BRICK_SIZE"), 1, 100
        g_filters, d_filters = full("ch04", "GEN_FILTERS"), full("ch04", "DISC_FILTERS")
    else:
        size, channels, z_dim = full("ch04", "FACE_SIZE"), 3, 128
        g_filters, d_filters = full("ch04", "W_GEN_FILTERS"), full("ch04", "W_CRITIC_FILTERS")
    classes = 2 if kind == "conditional" else None
    batch = 2 if kind == "dcgan" else 2 * full("ch04", "CRITIC_STEPS")   # 2 per critic step
    generator = gan.build_generator(z_dim, size, channels, g_filters, n_classes=classes)
    if kind == "dcgan":
        model = gan.DCGAN(generator, gan.build_discriminator(size, channels, d_filters),
                          z_dim, seed=1)
        data, extra = images(size, channels), {}
    else:
        critic = gan.build_discriminator(size, channels, d_filters, norm=None,
                                         n_classes=classes)
        model = gan.WGANGP(generator, critic, z_dim, full("ch04", "CRITIC_STEPS"),
                           n_classes=classes, seed=1)
        data, extra = images(size, channels, batch), {}
        if classes:
            labels = np.eye(2, dtype="float32")[np.arange(batch) % 2]
            data, extra = (data, labels), {"labels": labels[:2]}
    one_step(model, data, batch, generator_optimizer=keras.optimizers.Adam(),
             discriminator_optimizer=keras.optimizers.Adam())
    check_samples(model.generate(2, seed=1, **extra), (2, size, size, channels))


def test_pixelcnn_and_text_model_of_chapter_5():
    levels = 4
    net = ar.build_pixelcnn(16, levels, full("ch05", "FILTERS"), full("ch05", "BLOCKS"))
    model = ar.PixelCNN(net, levels, seed=1)
    one_step(model, RNG.integers(0, levels, (2, 16, 16, 1)),
             optimizer=keras.optimizers.Adam())
    check_samples(model.generate(1, seed=1), (1, 16, 16, 1))

    vocab, seq = full("ch05", "VOCAB_SIZE"), full("ch05", "SEQ_LEN")
    lm = ar.build_text_model(vocab, "lstm", 100, 128)
    lm.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0))
    tokens = RNG.integers(1, vocab, (2, seq + 1))
    lm.fit(tokens[:, :-1], tokens[:, 1:], batch_size=2, epochs=1, verbose=0)
    assert lm(tokens[:, :-1]).shape == (2, seq, vocab)


def test_ebm_of_chapter_7():
    model = ebm.EBM(ebm.build_energy_net(), buffer_size=full("ch07", "BUFFER_SIZE"),
                    steps=full("ch07", "LANGEVIN_STEPS"), seed=1)
    one_step(model, images(32, 1), optimizer=keras.optimizers.Adam())
    check_samples(model.generate(2, seed=1, steps=3), (2, 32, 32, 1))


def test_diffusion_model_of_chapter_8():
    size = full("ch08", "IMAGE_SIZE")
    net = diffusion.build_unet(size, full("ch08", "WIDTHS"), full("ch08", "BLOCK_DEPTH"))
    model = diffusion.DiffusionModel(net, [0.5] * 3, [0.25] * 3, ema=full("ch08", "EMA"),
                                     seed=1)
    one_step(model, images(size, 3), optimizer=keras.optimizers.AdamW())
    check_samples(model.generate(2, seed=1, steps=2), (2, size, size, 3))
