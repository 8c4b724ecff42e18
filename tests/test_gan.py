"""Tests of gdl.models.gan (chapter 4) and of the LEGO loader gdl.data.lego."""
from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest
from keras import ops

import gdl.data
from gdl.data.lego import brick_of
from gdl.models.gan import (DCGAN, WGANGP, build_discriminator,
                            build_generator, gradient_penalty,
                            interpolation_weights, smooth_targets)

LEGO_DIR = gdl.data.data_dir() / "lego-brick-images" / "dataset"
needs_lego = pytest.mark.skipif(not LEGO_DIR.is_dir(),
                                reason="LEGO renders not in GDL_DATA_DIR")


# ------------------------------------------------------------------ pieces
def test_interpolation_weights_are_uniform_on_0_1():
    w = keras.ops.convert_to_numpy(interpolation_weights(20_000, seed=1))
    assert w.shape == (20_000, 1, 1, 1)
    assert w.min() >= 0.0 and w.max() <= 1.0
    # U(0, 1): mean 1/2, variance 1/12, a quarter of the mass per quarter
    assert abs(w.mean() - 0.5) < 0.01
    assert abs(w.var() - 1 / 12) < 0.003
    counts = np.histogram(w, bins=4, range=(0, 1))[0] / w.size
    assert np.allclose(counts, 0.25, atol=0.015)


@pytest.mark.parametrize("amount", [0.0, 0.1, 0.3, 1.0])
def test_smoothed_targets_stay_in_0_1(amount):
    real = keras.ops.convert_to_numpy(smooth_targets(5000, True, amount, 2))
    fake = keras.ops.convert_to_numpy(smooth_targets(5000, False, amount, 3))
    assert real.min() >= 1.0 - amount - 1e-6 and real.max() <= 1.0
    assert fake.min() >= 0.0 and fake.max() <= amount + 1e-6
    if amount > 0:  # the targets really are noisy
        assert real.std() > amount / 10 and fake.std() > amount / 10


def linear_critic(w, b=0.3):
    """critic(x) = <w, x> + b: its input gradient is w everywhere."""
    critic = build_discriminator(8, 1, filters=(), norm=None)
    dense = [layer for layer in critic.layers if layer.weights][-1]
    dense.set_weights([w.reshape(-1, 1), np.array([b], "float32")])
    return critic


@pytest.mark.parametrize("scale", [0.01, 0.5, 3.0])
def test_gradient_penalty_of_a_linear_critic_has_its_closed_form(scale):
    rng = np.random.default_rng(0)
    w = (rng.normal(size=(8, 8, 1)) * scale).astype("float32")
    critic = linear_critic(w)
    real = rng.uniform(-1, 1, (16, 8, 8, 1)).astype("float32")
    fake = rng.uniform(-1, 1, (16, 8, 8, 1)).astype("float32")
    gp = float(gradient_penalty(critic, ops.convert_to_tensor(real),
                                ops.convert_to_tensor(fake), seed=4))
    expected = (np.linalg.norm(w) - 1.0) ** 2
    assert gp == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_gradient_penalty_is_evaluated_between_real_and_fake():
    """A critic whose gradient depends on x: with w = 1 the penalty is
    measured at the real images, with w = 0 at the fake ones."""
    image = keras.Input((4, 4, 1))
    critic = keras.Model(image, keras.ops.sum(image ** 2, axis=(1, 2, 3)))
    real = ops.full((3, 4, 4, 1), 0.5)     # grad 2x: norm 2*0.5*4 = 4
    fake = ops.full((3, 4, 4, 1), 0.125)   # norm 1: penalty 0
    ones = ops.ones((3, 1, 1, 1))
    assert float(gradient_penalty(critic, real, fake,
                                  weights=ones)) == pytest.approx(9.0)
    assert float(gradient_penalty(critic, real, fake,
                                  weights=0 * ones)) == pytest.approx(0.0)


# ------------------------------------------------------------------ builders
@pytest.mark.parametrize("size,channels,filters", [
    (32, 1, (64, 32, 16)), (32, 3, (32, 16, 8)), (64, 3, (64, 32, 16, 8))])
def test_generator_and_critic_shapes(size, channels, filters):
    g = build_generator(16, size, channels, filters)
    d = build_discriminator(size, channels, filters[::-1])
    z = np.random.default_rng(0).normal(size=(5, 16)).astype("float32")
    x = keras.ops.convert_to_numpy(g(z))
    assert x.shape == (5, size, size, channels)
    assert x.min() >= -1.0 and x.max() <= 1.0         # tanh output
    assert tuple(d(x).shape) == (5,)


def test_generator_rejects_filters_that_miss_the_size():
    with pytest.raises(ValueError, match="32x32"):
        build_generator(16, 32, 1, (64, 32))


def test_conditional_inputs_change_the_outputs():
    keras.utils.set_random_seed(0)
    g = build_generator(16, 16, 3, (32, 16), n_classes=2)
    c = build_discriminator(16, 3, (16, 32), n_classes=2, norm=None)
    z = np.random.default_rng(1).normal(size=(4, 16)).astype("float32")
    a = np.tile([[1.0, 0.0]], (4, 1)).astype("float32")
    b = a[:, ::-1].copy()
    xa = keras.ops.convert_to_numpy(g([z, a], training=False))
    xb = keras.ops.convert_to_numpy(g([z, b], training=False))
    assert np.abs(xa - xb).mean() > 1e-3
    assert np.abs(keras.ops.convert_to_numpy(c([xa, a]) - c([xa, b]))
                  ).min() > 1e-5


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def brick_batch():
    if not LEGO_DIR.is_dir():
        pytest.skip("LEGO renders not in GDL_DATA_DIR")
    bricks = gdl.data.lego_bricks(image_size=16, limit=2000)
    x = bricks.images[::50][:32].astype("float32") / 127.5 - 1.0
    return ops.convert_to_tensor(x[..., None])


def _numpy(weights):
    return [ops.convert_to_numpy(w).copy() for w in weights]


def test_one_dcgan_step_moves_both_networks_the_right_way(brick_batch):
    keras.utils.set_random_seed(3)
    model = DCGAN(build_generator(8, 16, 1, (32, 16)),
                  build_discriminator(16, 1, (16, 32)), latent_dim=8,
                  label_smoothing=0.0)
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-4),
                  discriminator_optimizer=keras.optimizers.Adam(1e-4))
    z = ops.convert_to_tensor(
        np.random.default_rng(1).normal(size=(32, 8)).astype("float32"))
    fake = model.generator(z, training=True)
    d_before = _numpy(model.discriminator.weights)
    g_before = _numpy(model.generator.trainable_weights)

    loss0 = float(model.d_loss(brick_batch, fake)[0])
    model.discriminator_step(brick_batch, z)
    loss1 = float(model.d_loss(brick_batch, fake)[0])
    assert loss1 < loss0                      # the discriminator improved
    assert any(not np.allclose(a, b) for a, b in
               zip(d_before, _numpy(model.discriminator.weights)))
    assert all(np.allclose(a, b) for a, b in   # G untouched
               zip(g_before, _numpy(model.generator.trainable_weights)))

    g0 = float(model.g_loss(z))
    d_mid = _numpy(model.discriminator.trainable_weights)
    model.generator_step(z)
    assert float(model.g_loss(z)) < g0        # the generator fools D more
    assert all(np.allclose(a, b) for a, b in   # D untouched
               zip(d_mid, _numpy(model.discriminator.trainable_weights)))


def test_one_wgan_step_moves_both_networks_the_right_way(brick_batch):
    keras.utils.set_random_seed(4)
    model = WGANGP(build_generator(8, 16, 1, (32, 16)),
                   build_discriminator(16, 1, (16, 32), norm=None),
                   latent_dim=8, critic_steps=2)
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-4),
                  discriminator_optimizer=keras.optimizers.Adam(1e-4))
    assert model.critic is model.discriminator
    z = ops.convert_to_tensor(
        np.random.default_rng(2).normal(size=(32, 8)).astype("float32"))
    fake = model.generator(z, training=True)
    gap0 = float(ops.mean(model.critic(brick_batch))
                 - ops.mean(model.critic(fake)))
    g_before = _numpy(model.generator.trainable_weights)
    model.critic_step(brick_batch)
    gap1 = float(ops.mean(model.critic(brick_batch))
                 - ops.mean(model.critic(fake)))
    assert gap1 > gap0                 # the critic separates real from fake
    assert all(np.allclose(a, b) for a, b in   # G untouched by the critic step
               zip(g_before, _numpy(model.generator.trainable_weights)))

    score0 = float(ops.mean(model.critic(model.generator(z, training=True))))
    c_before = _numpy(model.critic.weights)
    model.optimizers["generator_optimizer"].learning_rate.assign(1e-3)
    for _ in range(3):
        model.generator_step(32)
    score1 = float(ops.mean(model.critic(model.generator(z, training=True))))
    assert score1 > score0             # the generator raised its score
    assert all(np.allclose(a, b) for a, b in   # the critic untouched
               zip(c_before, _numpy(model.critic.weights)))

    # one whole step, run eagerly (works on every backend)
    logs = model.stateful_train_step(ops.concatenate([brick_batch, brick_batch], 0))
    assert set(logs) == {"c_loss", "w_distance", "gp", "g_loss"}
    assert all(np.isfinite(float(v)) for v in logs.values())


def test_wgan_fit_makes_critic_steps_critic_updates_per_generator_update(brick_batch):
    """fit with batches of critic_steps * b images: per train step, critic_steps
    critic updates and one generator update."""
    keras.utils.set_random_seed(5)
    model = WGANGP(build_generator(8, 16, 1, (32, 16)),
                   build_discriminator(16, 1, (16, 32), norm=None),
                   latent_dim=8, critic_steps=2)
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-4),
                  discriminator_optimizer=keras.optimizers.Adam(1e-4))
    x = np.asarray(ops.convert_to_numpy(brick_batch))
    history = model.fit(x, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert set(history.history) == {"c_loss", "w_distance", "gp", "g_loss"}
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert int(model.optimizers["generator_optimizer"].iterations) == 2
    assert int(model.optimizers["discriminator_optimizer"].iterations) == 4


def test_wgan_names_the_fix_when_a_batch_is_smaller_than_its_critic_steps():
    model = WGANGP(build_generator(8, 16, 1, (32, 16)),
                   build_discriminator(16, 1, (16, 32), norm=None),
                   latent_dim=8, critic_steps=5)
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-4),
                  discriminator_optimizer=keras.optimizers.Adam(1e-4))
    x = np.zeros((2, 16, 16, 1), "float32")
    with pytest.raises(ValueError, match="critic_steps \\* batch"):
        model.fit(x, batch_size=2, epochs=1, verbose=0)


def test_conditional_wgan_trains_on_images_and_labels(brick_batch):
    keras.utils.set_random_seed(6)
    labels = np.eye(2, dtype="float32")[np.arange(32) % 2]
    model = WGANGP(build_generator(8, 16, 1, (32, 16), n_classes=2),
                   build_discriminator(16, 1, (16, 32), n_classes=2,
                                       norm=None),
                   latent_dim=8, critic_steps=2, n_classes=2)
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-4),
                  discriminator_optimizer=keras.optimizers.Adam(1e-4))
    x = np.asarray(ops.convert_to_numpy(brick_batch))
    history = model.fit(x, labels, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["c_loss"][-1])
    out = ops.convert_to_numpy(model.generate(z=np.zeros((2, 8), "float32"),
                                              labels=np.eye(2, dtype="float32")))
    assert out.shape == (2, 16, 16, 1)
    assert out.min() >= 0.0 and out.max() <= 1.0      # the contract's range
    with pytest.raises(ValueError, match="labels"):
        model.generate(2)


def test_generate_is_the_generator_mapped_to_0_1():
    keras.utils.set_random_seed(7)
    model = DCGAN(build_generator(8, 16, 1, (32, 16)),
                  build_discriminator(16, 1, (16, 32)), latent_dim=8)
    z = np.random.default_rng(3).normal(size=(4, 8)).astype("float32")
    raw = ops.convert_to_numpy(model.generator(z, training=False))
    out = ops.convert_to_numpy(model.generate(z=z))
    np.testing.assert_allclose(out, (raw + 1) / 2, atol=1e-6)
    same = ops.convert_to_numpy(model.generate(4, seed=11))
    np.testing.assert_array_equal(same, ops.convert_to_numpy(model.generate(4, seed=11)))
    assert np.abs(same - ops.convert_to_numpy(model.generate(4, seed=12))).max() > 1e-4


# ------------------------------------------------------------------ data
@needs_lego
def test_lego_loader_reads_the_real_renders():
    bricks = gdl.data.lego_bricks(image_size=32)
    assert bricks.images.shape[1:] == (32, 32) and len(bricks) >= 1000
    assert bricks.images.dtype == np.uint8
    assert len(bricks.class_names) == 50 and bricks.labels.max() == 49
    assert "3001 brick 2x4" in bricks.class_names
    i = bricks.class_names.index("3001 brick 2x4")
    assert all(brick_of(f) == "3001 brick 2x4"
               for f, y in zip(bricks.files, bricks.labels) if y == i)
    assert 5 < bricks.images.mean() < 250 and bricks.images.std() > 10


def test_lego_loader_names_the_missing_path(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_DATA_DIR", str(tmp_path))
    with pytest.raises(gdl.data.DataError) as err:
        gdl.data.lego_bricks()
    message = str(err.value)
    assert str(tmp_path / "lego-brick-images" / "dataset") in message
    assert "joosthazelzet/lego-brick-images" in message


@needs_lego
def test_lego_loader_rejects_a_corrupt_file(tmp_path, monkeypatch):
    target = tmp_path / "data" / "lego-brick-images" / "dataset"
    target.mkdir(parents=True)
    for f in sorted(LEGO_DIR.glob("*.png"))[:5]:
        shutil.copy(f, target / f.name)
    bad = sorted(target.glob("*.png"))[2]
    bad.write_bytes(bad.read_bytes()[:60])              # truncated PNG
    monkeypatch.setenv("GDL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(gdl.data.DataError, match="corrupt"):
        gdl.data.lego_bricks(image_size=16)


def test_brick_names_parse_and_bad_names_fail():
    assert brick_of("3001 brick 2x4 000L.png") == "3001 brick 2x4"
    assert brick_of("14719 flat tile corner 2x2 398R.png") == \
        "14719 flat tile corner 2x2"
    with pytest.raises(gdl.data.DataError):
        brick_of("holiday.png")
