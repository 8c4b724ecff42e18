"""Tests of gdl.models.stylegan (chapter 10): ProGAN's and StyleGAN's layers, growing with
fade-in, style mixing, truncation and the path length penalty."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from gdl import backend
from gdl.models.stylegan import (AdaIN, EqualizedConv2D, EqualizedDense, MinibatchStdDev,
                                 ModulatedConv2D, NoiseInput, PixelNorm, ProgressiveBlocks,
                                 StyleGenerator, broadcast_w, build_mapping_network,
                                 build_style_generator, fade_in, mix_styles,
                                 path_length_penalty, truncate)


def t(x):
    return ops.convert_to_tensor(np.asarray(x, "float32"))


def n(x):
    if isinstance(x, keras.Variable):
        x = x.value
    return np.asarray(ops.convert_to_numpy(x))


def normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def upsample(x):   # nearest neighbour, x2, on (N, H, W, C) arrays
    return x.repeat(2, axis=1).repeat(2, axis=2)


def avgpool(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


# ------------------------------------------------------------------ progressive growing
@pytest.fixture(scope="module")
def progression():
    keras.utils.set_random_seed(0)
    # one width throughout: fewer distinct shapes, fewer XLA compilations on JAX
    return ProgressiveBlocks(latent_dim=8, filters=(8, 8, 8), channels=3, group_size=2)


def test_fade_in_is_the_linear_mix():
    low, high = normal(2, 4, 4, 3, seed=1), normal(2, 4, 4, 3, seed=2)
    np.testing.assert_allclose(n(fade_in(0.0, t(low), t(high))), low)
    np.testing.assert_allclose(n(fade_in(1.0, t(low), t(high))), high)
    np.testing.assert_allclose(n(fade_in(0.25, t(low), t(high))), 0.75 * low + 0.25 * high,
                               rtol=1e-6, atol=1e-6)


def test_progressive_generator_fades_the_new_block_in(progression):
    z = t(np.tile(normal(4, 8, seed=3), (4, 1)))
    alphas = np.repeat([0.0, 0.3, 1.0, -1.0], 4)[:, None]
    alphas[-4:, 0] = [0.0, 1.0, 0.0, 1.0]                    # alpha is per example
    out = n(progression.generator(16)([z, t(alphas)])).reshape(4, 4, 16, 16, 3)
    zero, mix, one, per_example = out
    # alpha = 0: the previous stage's finished output, upsampled
    previous = n(progression.generator(8)([z[:4], ops.ones((4, 1))]))
    np.testing.assert_allclose(zero, upsample(previous), rtol=1e-5, atol=1e-5)
    # alpha = 1: the new block and its to-RGB layer alone
    h8 = progression.g_blocks[8](progression.g_blocks[4](z[:4]))
    new = n(progression.to_rgb[16](progression.g_blocks[16](h8)))
    np.testing.assert_allclose(one, new, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mix, 0.7 * zero + 0.3 * one, rtol=1e-4, atol=1e-5)
    assert np.abs(one - zero).mean() > 1e-3                   # the two paths really differ
    np.testing.assert_allclose(per_example[1::2], one[1::2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(per_example[::2], zero[::2], rtol=1e-5, atol=1e-5)


def test_progressive_discriminator_fades_the_new_block_in(progression):
    x = normal(4, 16, 16, 3, seed=4)
    alphas = np.repeat([0.0, 1.0], 4)[:, None]
    zero, one = n(progression.discriminator(16)([t(np.tile(x, (2, 1, 1, 1))), t(alphas)])
                  ).reshape(2, 4)
    # alpha = 0: the previous stage, at alpha = 1, on the downsampled image
    previous = n(progression.discriminator(8)([t(avgpool(x)), ops.ones((4, 1))]))
    np.testing.assert_allclose(zero, previous, rtol=1e-4, atol=1e-5)
    assert np.abs(one - zero).max() > 1e-4


def test_stages_share_their_blocks(progression):
    def ids(*models):
        return {id(v) for m in models for v in m.weights}

    g8, g16 = progression.generator(8), progression.generator(16)
    assert progression.generator(8) is g8
    blocks = ids(progression.g_blocks[4], progression.g_blocks[8])
    assert blocks <= ids(g8) and blocks <= ids(g16)
    assert ids(progression.to_rgb[4]) <= ids(g8)             # the faded-out path
    assert not ids(progression.to_rgb[4]) & ids(g16)
    d8, d16 = progression.discriminator(8), progression.discriminator(16)
    blocks = ids(progression.d_blocks[4], progression.d_blocks[8])
    assert blocks <= ids(d8) and blocks <= ids(d16)
    assert progression.sizes == [4, 8, 16]
    with pytest.raises(ValueError, match="size"):
        progression.generator(32)


def test_progressive_stage_round_trips_through_a_keras_file(progression, tmp_path):
    z, a = t(normal(2, 8, seed=5)), ops.full((2, 1), 0.4)
    x = t(normal(2, 16, 16, 3, seed=6))
    for model, inputs in ((progression.generator(16), [z, a]),
                          (progression.discriminator(16), [x, a])):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(n(loaded(inputs)), n(model(inputs)), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ equalised learning rate
@pytest.mark.parametrize("fan_in", [16, 1024])
def test_equalized_dense_is_he_initialised_at_run_time(fan_in):
    keras.utils.set_random_seed(1)
    layer = EqualizedDense(64 if fan_in > 100 else 256)
    x = normal(2048, fan_in, seed=7)
    y = n(layer(t(x)))
    kernel = n(layer.kernel)
    tol = 4.0 / math.sqrt(kernel.size)                 # four standard errors
    assert abs(kernel.mean()) < tol and abs(kernel.std() - 1.0) < tol   # stored N(0, 1)
    np.testing.assert_allclose(y, x @ (kernel * math.sqrt(2.0 / fan_in)), rtol=1e-4, atol=1e-4)
    assert abs(y.var() - 2.0) < 0.2          # He: Var = 2 for unit-variance inputs
    layer.kernel.assign(2.0 * layer.kernel)  # the scale is applied at run time, not stored
    np.testing.assert_allclose(n(layer(t(x))), 2.0 * y, rtol=1e-4, atol=1e-4)


def test_lr_multiplier_scales_the_stored_weights_not_the_function():
    keras.utils.set_random_seed(2)
    layer = EqualizedDense(256, lr_multiplier=0.01, bias_init=0.5)
    x = normal(2048, 64, seed=8)
    y = n(layer(t(x)))
    assert abs(n(layer.kernel).std() - 100.0) < 3.0     # stored N(0, 1 / 0.01²)
    np.testing.assert_allclose(n(layer.bias), 50.0)
    np.testing.assert_allclose(n(layer(ops.zeros((1, 64)))), 0.5, rtol=1e-5)
    assert abs((y - 0.5).var() - 2.0) < 0.2             # the same He variance


def test_equalized_conv_is_he_initialised_at_run_time():
    keras.utils.set_random_seed(3)
    layer = EqualizedConv2D(64, 3)
    x = normal(8, 12, 12, 32, seed=9)
    y = n(layer(t(x)))[:, 1:-1, 1:-1]                   # away from the zero padding
    assert y.shape == (8, 10, 10, 64)
    assert abs(n(layer.kernel).std() - 1.0) < 0.02
    assert abs(y.var() - 2.0) < 0.2
    centre = x[:, 5:8, 5:8, :].reshape(8, -1) @ (
        n(layer.kernel).reshape(-1, 64) * math.sqrt(2.0 / (9 * 32)))
    np.testing.assert_allclose(y[:, 5, 5], centre, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ normalisation layers
def test_pixel_norm_gives_each_pixel_unit_mean_square():
    x = normal(3, 5, 5, 7, seed=10) * np.arange(1, 8, dtype="float32")
    y = n(PixelNorm()(t(x)))
    np.testing.assert_allclose((y ** 2).mean(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y, n(PixelNorm()(t(5.0 * x))), rtol=1e-5, atol=1e-6)


def test_minibatch_stddev_appends_the_group_statistic():
    x = normal(8, 3, 3, 2, seed=11)
    x[4:] *= 3.0                                        # the second group varies more
    y = n(MinibatchStdDev(group_size=4)(t(x)))
    assert y.shape == (8, 3, 3, 3)
    np.testing.assert_array_equal(y[..., :2], x)
    for k in range(2):
        group = x[4 * k:4 * k + 4]
        stat = np.sqrt(group.var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(y[4 * k:4 * k + 4, ..., 2], stat, rtol=1e-5)
    assert y[4, 0, 0, 2] > 2 * y[0, 0, 0, 2]
    small = n(MinibatchStdDev(group_size=4)(t(x[:2])))   # a batch below the group size
    np.testing.assert_allclose(small[..., 2], np.sqrt(x[:2].var(axis=0) + 1e-8).mean(),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        MinibatchStdDev(group_size=4)(t(x[:6]))


def test_adain_gives_each_channel_the_styles_mean_and_std():
    keras.utils.set_random_seed(4)
    x = normal(4, 8, 8, 6, seed=12) * 3.0 + np.arange(6, dtype="float32")
    w = t(normal(4, 16, seed=13))
    layer = AdaIN()
    y = n(layer(t(x), w))
    scale, bias = (n(s) for s in layer.styles(w))
    assert scale.shape == bias.shape == (4, 6)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), bias, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), np.abs(scale), rtol=1e-4, atol=1e-5)
    assert scale.std() > 0.1                            # the style varies; not a trivial pass


# ------------------------------------------------------------------ modulation
def test_demodulated_conv_has_unit_variance_whatever_the_style():
    keras.utils.set_random_seed(5)
    layer = ModulatedConv2D(8, 3)
    x = t(normal(16, 12, 12, 32, seed=14))
    base = np.random.default_rng(15).uniform(0.5, 2.0, (16, 32)).astype("float32")
    for size in (0.1, 10.0):
        y = n(layer(x, t(size * base)))[:, 1:-1, 1:-1]
        np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1.0, atol=0.2)


def test_without_demodulation_the_variance_follows_the_style():
    keras.utils.set_random_seed(6)
    layer = ModulatedConv2D(8, 3, demodulate=False)
    x = t(normal(16, 12, 12, 32, seed=16))
    base = np.random.default_rng(17).uniform(0.5, 2.0, (16, 32)).astype("float32")
    for size in (0.1, 10.0):
        style = size * base
        y = n(layer(x, t(style)))[:, 1:-1, 1:-1]
        kernel = n(layer.kernel) / math.sqrt(9 * 32)
        # Var y_o for image b = sum over taps and inputs of (kernel * s_b)²
        expected = np.mean([((kernel * s[None, None, :, None]) ** 2).sum(axis=(0, 1, 2))
                            for s in style], axis=0)
        np.testing.assert_allclose((y ** 2).mean(axis=(0, 1, 2)), expected, rtol=0.2)
        assert abs(np.log10(expected.mean()) - 2 * np.log10(size)) < 1.0


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_one_kernel_per_image(demodulate):
    keras.utils.set_random_seed(7)
    layer = ModulatedConv2D(5, 3, demodulate=demodulate)
    x = normal(3, 6, 6, 4, seed=18)
    style = np.random.default_rng(19).uniform(0.2, 3.0, (3, 4)).astype("float32")
    layer(t(x), t(style))                                           # build
    layer.bias.assign(np.arange(5, dtype="float32"))
    y = n(layer(t(x), t(style)))
    kernel = n(layer.kernel) / math.sqrt(9 * 4)
    for b in range(3):
        k = kernel * style[b][None, None, :, None]                  # this image's kernel
        if demodulate:
            k = k / np.sqrt((k ** 2).sum(axis=(0, 1, 2)) + 1e-8)
        expected = n(ops.conv(t(x[b:b + 1]), t(k), padding="same"))[0] + np.arange(5)
        np.testing.assert_allclose(y[b], expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ noise
def test_noise_input_with_explicit_noise_is_deterministic():
    x = t(normal(2, 4, 4, 3, seed=20))
    noise = normal(2, 4, 4, 1, seed=21)
    layer = NoiseInput(seed=1)
    np.testing.assert_array_equal(n(layer(x)), n(x))       # weight 0 at first: identity
    layer.noise_weight.assign([0.5, -1.0, 2.0])
    a, b = n(layer(x, t(noise))), n(layer(x, t(noise)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a - n(x), noise * np.array([0.5, -1.0, 2.0]), atol=1e-6)
    assert np.abs(n(layer(x)) - n(layer(x))).max() > 1e-3   # fresh noise each call
    layer.noise_weight.assign([0.0, 0.0, 0.0])
    np.testing.assert_array_equal(n(layer(x)), n(x))


# ------------------------------------------------------------------ styles
def test_truncate_goes_from_the_average_to_w():
    w, w_avg = normal(3, 5, 4, seed=22), normal(4, seed=23)
    np.testing.assert_allclose(n(truncate(t(w), t(w_avg), 0.0)), np.broadcast_to(w_avg, w.shape))
    np.testing.assert_allclose(n(truncate(t(w), t(w_avg), 1.0)), w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(n(truncate(t(w), t(w_avg), 0.5)), (w + w_avg) / 2, atol=1e-6)


def test_mix_styles_switches_at_the_crossover():
    w_a, w_b = normal(2, 7, 4, seed=24), normal(2, 7, 4, seed=25)
    for k in (0, 3, 7):
        mixed = n(mix_styles(t(w_a), t(w_b), k))
        np.testing.assert_array_equal(mixed[:, :k], w_a[:, :k])
        np.testing.assert_array_equal(mixed[:, k:], w_b[:, k:])
    per_image = n(mix_styles(t(w_a), t(w_b), np.array([2, 5])))
    np.testing.assert_array_equal(per_image[0, :2], w_a[0, :2])
    np.testing.assert_array_equal(per_image[0, 2:], w_b[0, 2:])
    np.testing.assert_array_equal(per_image[1, :5], w_a[1, :5])
    np.testing.assert_array_equal(per_image[1, 5:], w_b[1, 5:])
    np.testing.assert_array_equal(n(broadcast_w(t(w_a[:, 0]), 7))[:, 6], w_a[:, 0])


def test_mapping_network_maps_z_to_w_after_pixel_norm():
    keras.utils.set_random_seed(8)
    mapping = build_mapping_network(latent_dim=8, w_dim=6, depth=3)
    z = normal(4, 8, seed=26)
    w = n(mapping(t(z)))
    assert w.shape == (4, 6)
    np.testing.assert_allclose(n(mapping(t(3.0 * z))), w, rtol=1e-4, atol=1e-5)
    dense = [layer for layer in mapping.layers if isinstance(layer, EqualizedDense)]
    assert len(dense) == 3 and all(d.lr_multiplier == 0.01 for d in dense)


@pytest.fixture(scope="module")
def style_generator():
    keras.utils.set_random_seed(9)
    g = build_style_generator(w_dim=6, filters=(8, 8, 8), channels=3, seed=3)
    for i, layer in enumerate(g.noises):   # give the noise a visible effect
        layer.noise_weight.assign(np.full(layer.noise_weight.shape, 0.1 * (i + 1), "float32"))
    return g


def test_style_generator_reads_one_w_per_layer(style_generator):
    g = style_generator
    assert g.num_layers == 5 and g.image_size == 16
    assert g.noise_shapes(2) == [(2, 4, 4, 1), (2, 8, 8, 1), (2, 8, 8, 1),
                                 (2, 16, 16, 1), (2, 16, 16, 1)]
    w = normal(2, 5, 6, seed=27)
    noise = g.sample_noise(2, seed=0)
    image = n(g(t(w), noise=noise))
    assert image.shape == (2, 16, 16, 3)
    for layer in range(5):                  # every layer's own w changes the image
        moved = w.copy()
        moved[:, layer] += 1.0
        assert np.abs(n(g(t(moved), noise=noise)) - image).mean() > 1e-4, layer


def test_style_generator_mixes_styles(style_generator):
    g = style_generator
    w_a, w_b = t(normal(2, 5, 6, seed=28)), t(normal(2, 5, 6, seed=29))
    noise = g.sample_noise(2, seed=1)
    image_a, image_b = n(g(w_a, noise=noise)), n(g(w_b, noise=noise))
    np.testing.assert_allclose(n(g(mix_styles(w_a, w_b, 5), noise=noise)), image_a, atol=1e-6)
    np.testing.assert_allclose(n(g(mix_styles(w_a, w_b, 0), noise=noise)), image_b, atol=1e-6)
    coarse_a = n(g(mix_styles(w_a, w_b, 2), noise=noise))    # 4x4 and the first 8x8 from a
    assert np.abs(coarse_a - image_a).mean() > 1e-4
    assert np.abs(coarse_a - image_b).mean() > 1e-4


def test_style_generator_noise_same_or_fresh(style_generator):
    g = style_generator
    w = t(normal(2, 5, 6, seed=30))
    noise = g.sample_noise(2, seed=2)
    np.testing.assert_array_equal(n(g(w, noise=noise)), n(g(w, noise=noise)))
    with pytest.raises(ValueError, match="5 layers"):
        g(w, noise=noise[:4])
    assert np.abs(n(g(w)) - n(g(w))).mean() > 1e-4           # same w, different noise
    only_fine = list(noise[:3]) + [None, None]                # fresh noise at 16x16 only
    a, b = n(g(w, noise=only_fine)), n(g(w, noise=only_fine))
    assert np.abs(a - b).mean() > 1e-5


def test_layers_round_trip_in_a_functional_model(tmp_path):
    keras.utils.set_random_seed(11)
    x, w = keras.Input((8, 8, 4)), keras.Input((6,))
    h = AdaIN()(x, w)
    h = NoiseInput(seed=2)(h)                      # weight 0: deterministic here
    h = ModulatedConv2D(4)(h, EqualizedDense(4, bias_init=1.0)(w))
    h = MinibatchStdDev(2)(h)
    out = EqualizedConv2D(3, 1, gain=1.0)(PixelNorm()(h))
    model = keras.Model([x, w], out)
    inputs = [t(normal(4, 8, 8, 4, seed=38)), t(normal(4, 6, seed=39))]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(n(loaded(inputs)), n(model(inputs)))


def test_style_generator_round_trips_through_a_keras_file(style_generator, tmp_path):
    g = style_generator
    w = t(normal(2, 5, 6, seed=31))
    noise = g.sample_noise(2, seed=3)
    g.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras")
    assert isinstance(loaded, StyleGenerator)
    assert loaded.get_config()["filters"] == [8, 8, 8]
    np.testing.assert_array_equal(n(loaded(w, noise=noise)), n(g(w, noise=noise)))


# ------------------------------------------------------------------ path length penalty
def _linear_synthesis(a):
    return lambda w: ops.reshape(ops.matmul(ops.reshape(w, (-1, 8)), a), (-1, 4, 4, 2))


def test_path_length_penalty_matches_the_closed_form_for_a_linear_map():
    a = normal(8, 32, seed=32)
    w = normal(3, 2, 4, seed=33)
    y = normal(3, 4, 4, 2, seed=34)
    penalty, new_mean = path_length_penalty(_linear_synthesis(t(a)), t(w), 0.5, decay=0.1,
                                            y=t(y))
    jt_y = (y.reshape(3, 32) @ a.T).reshape(3, 2, 4)          # J^T y of a linear map is A y
    lengths = np.sqrt((jt_y ** 2).sum(-1).mean(-1) + 1e-8)
    mean = 0.5 + 0.1 * (lengths.mean() - 0.5)
    np.testing.assert_allclose(float(new_mean), mean, rtol=1e-5)
    np.testing.assert_allclose(float(penalty), ((lengths - mean) ** 2).mean(), rtol=1e-4)
    # random directions: y ~ N(0, I / (H W)), so E a² = trace(A^T A) / (H W L); with
    # decay 1 the mean is this batch's mean of a and the penalty its variance
    many = t(np.repeat(w[:1], 512, axis=0))
    var, mean = path_length_penalty(_linear_synthesis(t(a)), many, 0.0, decay=1.0, seed=4)
    mean_square = float(mean) ** 2 + float(var)
    assert abs(mean_square / ((a ** 2).sum() / 16 / 2) - 1.0) < 0.15


def test_path_length_penalty_is_safe_where_the_gradient_is_zero():
    kernel = keras.Variable(np.zeros((8, 32), "float32"))
    w, y = t(normal(3, 2, 4, seed=35)), t(normal(3, 4, 4, 2, seed=36))

    def synthesis(w_):
        return ops.reshape(ops.matmul(ops.reshape(w_, (-1, 8)), kernel), (-1, 4, 4, 2))

    penalty, grads = backend.value_and_grad(
        lambda: path_length_penalty(synthesis, w, 0.0, y=y)[0], [kernel])
    assert np.isfinite(float(penalty)) and float(penalty) < 1e-6
    assert np.isfinite(n(grads[0])).all()


def test_path_length_penalty_trains_the_style_generator_in_compiled_code(style_generator):
    g = style_generator
    w = t(normal(2, 5, 6, seed=37))
    noise = g.sample_noise(2, seed=4)
    seeds = keras.random.SeedGenerator(5)

    def step(w):   # as a training step would use it: second order, compiled, seeded
        (penalty, new_mean), grads = backend.value_and_grad(
            lambda: path_length_penalty(lambda w_: g(w_, noise=noise), w, 0.0, seed=seeds),
            g.trainable_variables, has_aux=True)
        # TensorFlow gives None for weights the lengths do not depend on (the output bias)
        grads = [grad for grad in grads if grad is not None]
        finite = ops.all(ops.stack([ops.all(ops.isfinite(grad)) for grad in grads]))
        return penalty, new_mean, sum(ops.sum(ops.abs(grad)) for grad in grads), finite

    compiled = backend.compile(step, [g, seeds])
    penalty, new_mean, size, finite = (n(v) for v in compiled(w))
    assert penalty.shape == () and np.isfinite(penalty)
    assert new_mean > 0.0 and bool(finite)
    assert size > 0.0                                          # second order reaches the weights
    again = n(compiled(w)[0])
    assert abs(again - penalty) > 1e-6                         # fresh directions y each step


def test_at_full_alpha_computes_the_stage_model_at_alpha_one():
    from gdl.models.stylegan import ProgressiveBlocks, at_full_alpha

    blocks = ProgressiveBlocks(latent_dim=8, filters=(8, 8, 4), channels=3)
    critic = blocks.discriminator(16)
    fixed = at_full_alpha(critic, name="critic")
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    want = ops.convert_to_numpy(critic([x, np.ones((4, 1), "float32")]))
    half = ops.convert_to_numpy(critic([x, np.full((4, 1), 0.5, "float32")]))
    got = ops.convert_to_numpy(fixed(x))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, half, atol=1e-4)     # alpha really reaches the fade
    assert fixed.name == "critic" and len(fixed.inputs) == 1


def test_style_wgan_trains_and_exposes_its_halves():
    from gdl.models.stylegan import build_style_wgan

    keras.utils.set_random_seed(0)
    gan = build_style_wgan(latent_dim=8, w_dim=8, mapping_depth=2, filters=(8, 8, 4),
                           seed=0)
    gan.compile(generator_optimizer=keras.optimizers.Adam(1e-3, 0.0, 0.99),
                discriminator_optimizer=keras.optimizers.Adam(1e-3, 0.0, 0.99))
    mapping = gan.generator.get_layer("mapping")
    synthesis = gan.generator.get_layer("style_generator")
    assert synthesis.num_layers == 5 and mapping.output.shape == (None, 8)
    before = [ops.convert_to_numpy(v).copy() for v in gan.generator.trainable_variables]
    x = np.random.default_rng(1).uniform(-1, 1, (8, 16, 16, 3)).astype("float32")
    logs = gan.fit(x, batch_size=4, epochs=1, verbose=0).history
    assert set(logs) >= {"w_distance", "gp", "g_loss"}
    after = [ops.convert_to_numpy(v) for v in gan.generator.trainable_variables]
    assert any(not np.allclose(a, b) for a, b in zip(after, before))
    images = ops.convert_to_numpy(gan.generate(3, seed=2))
    assert images.shape == (3, 16, 16, 3) and np.isfinite(images).all()
