"""gdl.models.vae (chapter 3) and the latent-space explorer of gdl.viz.latent."""
import keras
import numpy as np
import pytest

import gdl.data
import gdl.viz
from gdl import backend
from gdl.models import vae as V
from gdl.viz import latent as L

LATENT = 4


def fashion_batch(n=64):
    """n real Fashion-MNIST test images, padded to 32x32, in [0, 1]."""
    split = gdl.data.fashion_mnist()
    x = split.x_test[:n].astype("float32") / 255.0
    return np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None]


def small_vae(beta=1.0, seed=0, shape=(32, 32, 1), latent=LATENT, **kw):
    keras.utils.set_random_seed(seed)
    encoder = V.build_encoder(shape, latent, filters=(8, 16), **kw)
    decoder = V.build_decoder(latent, shape, filters=(16, 8), **kw)
    return V.VAE(encoder, decoder, beta=beta, seed=seed)


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("shape,filters", [((32, 32, 1), (32, 64, 128)),
                                           ((32, 32, 3), (16, 32, 64, 64)),
                                           ((64, 64, 3), (8, 8, 8, 8, 8))])
def test_encoder_decoder_shapes(shape, filters):
    enc = V.build_encoder(shape, 7, filters=filters, batch_norm=True,
                          activation="leaky_relu")
    dec = V.build_decoder(7, shape, filters=filters[::-1], batch_norm=True,
                          activation="leaky_relu")
    x = np.random.rand(3, *shape).astype("float32")
    z_mean, z_log_var = enc(x)
    assert z_mean.shape == (3, 7) and z_log_var.shape == (3, 7)
    x_hat = dec(z_mean)
    assert x_hat.shape == (3, *shape)
    x_hat = np.asarray(x_hat)
    assert x_hat.min() >= 0 and x_hat.max() <= 1      # sigmoid probabilities
    ae_enc = V.build_encoder(shape, 2, filters=filters, variational=False)
    assert ae_enc(x).shape == (3, 2)


def test_vae_call_returns_reconstruction_and_posterior():
    vae = small_vae()
    x = fashion_batch(5)
    reconstruction, z_mean, z_log_var = vae(x)
    assert reconstruction.shape == x.shape
    assert z_mean.shape == z_log_var.shape == (5, LATENT)
    assert vae.generate(6, seed=1).shape == (6, 32, 32, 1)
    assert vae.reconstruct(x).shape == x.shape


def test_decoder_rejects_sizes_the_upsampling_cannot_reach():
    with pytest.raises(ValueError, match="divisible by 8"):
        V.build_decoder(2, (28, 28, 1), filters=(4, 4, 4))


# ------------------------------------------------------------------ the loss
def test_closed_form_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu = rng.normal(0, 1.5, size=(3, 5)).astype("float32")
    log_var = rng.normal(0, 1.0, size=(3, 5)).astype("float32")
    closed = np.asarray(V.kl_divergence(mu, log_var))
    n = 200_000
    sigma = np.exp(0.5 * log_var)
    for i in range(3):
        z = mu[i] + sigma[i] * rng.standard_normal((n, 5))
        # log q(z) - log p(z), summed over dimensions (the 2*pi terms cancel)
        log_q = -0.5 * (((z - mu[i]) / sigma[i]) ** 2 + log_var[i])
        log_p = -0.5 * z ** 2
        diff = (log_q - log_p).sum(axis=1)
        estimate, stderr = diff.mean(), diff.std() / np.sqrt(n)
        assert abs(estimate - closed[i]) < 5 * stderr + 1e-3, (i, estimate,
                                                                closed[i])
    # and KL is zero exactly at the prior, positive elsewhere
    assert np.allclose(V.kl_divergence(np.zeros((1, 4)), np.zeros((1, 4))), 0)
    assert (closed > 0).all()


def test_reconstruction_loss_is_summed_bce_in_nats():
    x = np.array([[[[0.0], [1.0]], [[0.25], [0.5]]]], "float32")  # (1,2,2,1)
    p = np.array([[[[0.1], [0.8]], [[0.5], [0.5]]]], "float32")
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum()
    got = float(np.asarray(V.reconstruction_loss(x, p))[0])
    assert got == pytest.approx(expected, rel=1e-4)


# ------------------------------------------------------------------ sampling
def test_sampling_has_the_requested_moments():
    layer = V.Sampling(seed=3)
    mu = np.full((20_000, 2), [1.0, -2.0], "float32")
    log_var = np.full((20_000, 2), [0.0, np.log(0.25)], "float32")
    z = np.asarray(layer([mu, log_var]))
    assert z.mean(0) == pytest.approx([1.0, -2.0], abs=0.03)
    assert z.std(0) == pytest.approx([1.0, 0.5], abs=0.03)


def test_gradients_flow_through_the_sampling_step():
    layer = V.Sampling(seed=0)
    mu = keras.Variable(np.zeros((8, 3), "float32"))
    log_var = keras.Variable(np.zeros((8, 3), "float32"))

    def loss_and_z():
        z = layer([mu.value, log_var.value])
        return keras.ops.sum(z ** 2), z

    (_, z), (g_mu, g_lv) = backend.value_and_grad(loss_and_z, [mu, log_var], has_aux=True)
    eps = np.asarray(z)                  # at mu = 0, sigma = 1: z = epsilon
    np.testing.assert_allclose(np.asarray(g_mu), 2 * eps, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g_lv), eps ** 2, rtol=1e-4, atol=1e-6)

    vae = small_vae()
    x = fashion_batch(16)
    _, grads = backend.value_and_grad(
        lambda: vae.compute_loss(x=x, y_pred=vae(x, training=True)), vae.encoder.trainable_variables)
    assert len(grads) == len(vae.encoder.trainable_variables) > 0
    assert all(g is not None for g in grads)
    assert all(float(np.abs(np.asarray(g)).sum()) > 0 for g in grads)


# ------------------------------------------------------------------ saving
def test_keras_save_load_round_trip(tmp_path):
    vae = small_vae(beta=2.5, batch_norm=True, activation="leaky_relu")
    x = fashion_batch(32)
    vae.compile(optimizer="adam")
    vae.fit(x, batch_size=16, epochs=1, verbose=0)   # non-trivial weights
    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, V.VAE) and loaded.beta == 2.5
    assert loaded.encoder is not vae.encoder
    for a, b in zip(vae.encoder(x), loaded.encoder(x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(vae.reconstruct(x)),
                                  np.asarray(loaded.reconstruct(x)))
    z = np.random.default_rng(0).normal(size=(5, LATENT)).astype("float32")
    np.testing.assert_array_equal(np.asarray(vae.decoder(z)),
                                  np.asarray(loaded.decoder(z)))


def test_each_vae_uses_its_own_encoder_and_decoder():
    """The published notebooks' call() used global encoder/decoder objects;
    here two models side by side must each use their own."""
    a, b = small_vae(seed=1), small_vae(seed=2)
    x = fashion_batch(4)
    np.testing.assert_array_equal(np.asarray(a.reconstruct(x)),
                                  np.asarray(a.decoder(a.encoder(x)[0])))
    assert not np.allclose(np.asarray(a.reconstruct(x)),
                           np.asarray(b.reconstruct(x)))
    _, mu_a, _ = a(x)
    np.testing.assert_array_equal(np.asarray(mu_a),
                                  np.asarray(a.encoder(x)[0]))


# ------------------------------------------------------------------ training
def fixed_noise_loss(vae, x, eps):
    """The VAE loss with the sampling noise held fixed (no randomness)."""
    z_mean, z_log_var = vae.encoder(x, training=False)
    z = z_mean + np.exp(0.5 * np.asarray(z_log_var)) * eps
    rec = np.asarray(V.reconstruction_loss(x, vae.decoder(z))).mean()
    kl = np.asarray(V.kl_divergence(z_mean, z_log_var)).mean()
    return rec + vae.beta * kl


def test_one_training_step_lowers_the_loss_on_a_real_batch():
    vae = small_vae(seed=4)
    x = fashion_batch(64)
    eps = np.random.default_rng(0).standard_normal((64, LATENT))
    before = fixed_noise_loss(vae, x, eps.astype("float32"))
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    logs = vae.train_on_batch(x, return_dict=True)
    after = fixed_noise_loss(vae, x, eps.astype("float32"))
    assert set(logs) >= {"loss", "reconstruction", "kl"}
    assert logs["loss"] == pytest.approx(logs["reconstruction"] + logs["kl"],
                                         rel=1e-4)
    # Adam's first step moves every weight by ~1e-3 downhill: 0.84-1.54 nats per image over
    # seeds 4-9 on TensorFlow and JAX (their initial weights differ); no step, no change.
    assert after < before - 0.5, (before, after)


def test_beta_weights_the_kl_term():
    x = fashion_batch(16)
    for beta in (0.0, 4.0):
        vae = small_vae(beta=beta, seed=5)
        vae.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
        logs = vae.evaluate(x, batch_size=16, verbose=0, return_dict=True)
        assert logs["loss"] == pytest.approx(
            logs["reconstruction"] + beta * logs["kl"], rel=1e-4)


# ------------------------------------------------------------------ explorer
def test_plane_grid_is_row_major_from_the_top():
    grid = L.plane_grid(((0, 4), (0, 2)), 2)
    np.testing.assert_allclose(grid, [[1, 1.5], [3, 1.5], [1, 0.5], [3, 0.5]])
    with pytest.raises(ValueError, match="x0 < x1"):
        L.plane_grid(((1, 0), (0, 1)), 3)


def test_decode_plane_tiles_what_decode_returns():
    def decode(points):                  # brightness = x coordinate
        return np.stack([np.full((4, 4), p[0]) for p in points])

    tiled = L.decode_plane(decode, ((0, 1), (0, 1)), n=5)
    assert tiled.shape == (20, 20)
    assert tiled[0, 0] == pytest.approx(0.1) and tiled[0, -1] == pytest.approx(0.9)


def test_latent_explorer_draws_classes_over_a_decoded_mosaic():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 2))
    labels = rng.integers(0, 3, 500)
    calls = []

    def decode(points):
        calls.append(len(points))
        return np.zeros((len(points), 8, 8))

    fig = gdl.viz.latent_explorer(pts, labels, decode, n_grid=6,
                                  class_names=["a", "b", "c"], max_points=200)
    assert calls == [36]
    assert sorted(t.name for t in fig.data) == ["a", "b", "c"]
    assert sum(len(t.x) for t in fig.data) == 200
    assert len(fig.layout.images) == 1
    assert fig.layout.images[0].source.startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="labels"):
        gdl.viz.latent_explorer(pts, labels[:5], decode)


def test_default_extent_is_a_square_around_the_bulk():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(2000, 2)) * [1.0, 4.0] + [10.0, -3.0]
    (x0, x1), (y0, y1) = L.default_extent(pts)
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert (x0 + x1) / 2 == pytest.approx(10.0, abs=0.5)
    inside = ((pts[:, 0] > x0) & (pts[:, 0] < x1)
              & (pts[:, 1] > y0) & (pts[:, 1] < y1))
    assert inside.mean() > 0.98
