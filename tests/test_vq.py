"""gdl.models.vq (chapter 10): the quantiser against a NumPy brute force, the straight-through
gradient, the VQ loss and its stop-gradients by hand, perplexity, dead-code restarts (also from
a callback inside fit), encoder/decoder shapes, the .keras round trip, and a VQ-VAE's loss
falling on real Fashion-MNIST images."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from gdl import backend
from gdl.models import vq


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def quantizer(codebook, beta=0.25, **kwargs):
    codebook = np.asarray(codebook, "float32")
    layer = vq.VectorQuantizer(*codebook.shape, beta=beta, **kwargs)
    layer.codebook.assign(codebook)
    return layer


def small_vqvae(shape=(28, 28, 1), num_codes=16, code_dim=4, seed=0):
    keras.utils.set_random_seed(seed)
    encoder = vq.build_vq_encoder(shape, code_dim, filters=(8, 16))
    decoder = vq.build_vq_decoder(shape, code_dim, filters=(16, 8))
    return vq.VQVAE(encoder, vq.VectorQuantizer(num_codes, code_dim), decoder)


@pytest.fixture(scope="module")
def fashion(shared_data):
    """64 real Fashion-MNIST test images (64, 28, 28, 1) in [0, 1]."""
    import gdl.data

    return (gdl.data.fashion_mnist().x_test[:64].astype("float32") / 255.0)[..., None]


# --------------------------------------------------------------------------- the quantiser
def test_outputs_are_the_nearest_codebook_entries():
    rng = np.random.default_rng(0)
    codebook = rng.normal(size=(7, 3)).astype("float32")
    layer = quantizer(codebook)
    z = rng.normal(size=(2, 5, 4, 3)).astype("float32")
    codes = numpy(layer.codes(z))
    assert codes.shape == (2, 5, 4) and codes.dtype == np.int32

    brute = np.sum((z[..., None, :] - codebook) ** 2, axis=-1)      # (2, 5, 4, 7)
    np.testing.assert_allclose(numpy(layer.distances(z)), brute, rtol=1e-5, atol=1e-5)
    chosen = np.take_along_axis(brute, codes[..., None], -1)[..., 0]
    np.testing.assert_allclose(chosen, brute.min(-1), rtol=1e-6, atol=1e-6)
    ordered = np.sort(brute, axis=-1)
    clear = ordered[..., 1] - ordered[..., 0] > 1e-4                  # not a near tie
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(codes[clear], brute.argmin(-1)[clear])

    q = numpy(layer(z))
    np.testing.assert_array_equal(q, codebook[codes])                # exactly the entries
    np.testing.assert_array_equal(numpy(layer.lookup(codes)), codebook[codes])


def test_the_straight_through_gradient_is_the_identity():
    rng = np.random.default_rng(1)
    layer = quantizer(rng.normal(size=(5, 4)))
    z = rng.normal(size=(3, 2, 2, 4)).astype("float32")
    w = rng.normal(size=z.shape).astype("float32")
    grad = numpy(backend.input_grad(lambda z_: layer(z_) * w, z))
    np.testing.assert_allclose(grad, w, rtol=1e-6)    # argmin has no gradient: without
    #                                                   the estimator this would be 0
    # The reconstruction path gives the codebook nothing; only the VQ loss moves it.
    _, (g,) = backend.value_and_grad(lambda: ops.sum(layer(z) * w), [layer.codebook])
    assert g is None or not np.any(numpy(g))          # TensorFlow says None: not connected


def test_the_vq_loss_by_hand():
    # Two codes, two inputs: z0 = (0.2, -0.1) is nearest e0 = (0, 0), z1 = (0.7, 1.4) is
    # nearest e1 = (1, 1). Squared errors 0.05 and 0.25, so each term's mean over the four
    # elements is 0.3 / 4 = 0.075, and the loss is 0.075 + beta * 0.075.
    beta = 0.5
    layer = quantizer([[0.0, 0.0], [1.0, 1.0]], beta=beta)
    z = np.array([[0.2, -0.1], [0.7, 1.4]], "float32")
    np.testing.assert_array_equal(numpy(layer.codes(z)), [0, 1])
    layer(z)
    assert len(layer.losses) == 1
    assert float(numpy(layer.losses[0])) == pytest.approx(0.075 * (1 + beta), rel=1e-6)

    # Where the stop-gradients sit: the encoder feels only the commitment term,
    # beta * 2 (z - e) / 4, the codebook only the codebook term, 2 (e - z) / 4.
    q = numpy(layer.lookup(layer.codes(z)))
    grad_z = numpy(backend.input_grad(lambda z_: vq.vq_loss(z_, q, beta), z))
    np.testing.assert_allclose(grad_z, [[0.05, -0.025], [-0.075, 0.1]], rtol=1e-5)
    _, (grad_e,) = backend.value_and_grad(
        lambda: vq.vq_loss(z, layer.lookup(layer.codes(z)), beta), [layer.codebook])
    np.testing.assert_allclose(numpy(grad_e), [[-0.1, 0.05], [0.15, -0.2]], rtol=1e-5)


def test_usage_and_perplexity():
    layer = vq.VectorQuantizer(8, 2)
    uniform = np.tile(np.arange(8), (3, 1))                          # each code 3 times
    np.testing.assert_array_equal(numpy(layer.usage(uniform)), np.full(8, 3.0))
    assert float(numpy(layer.perplexity(uniform))) == pytest.approx(8.0, rel=1e-5)
    one = np.full((4, 5), 6)
    assert float(numpy(layer.perplexity(one))) == pytest.approx(1.0, abs=1e-6)
    # Usage (2, 1, 1) of 8 codes: entropy 1.5 ln 2, perplexity 2 ** 1.5.
    skewed = np.array([0, 0, 3, 5])
    np.testing.assert_array_equal(numpy(layer.usage(skewed)), [2, 0, 0, 1, 0, 1, 0, 0])
    assert float(numpy(layer.perplexity(skewed))) == pytest.approx(2 ** 1.5, rel=1e-5)


def test_dead_codes_restart_on_encoder_outputs_and_used_codes_stay():
    rng = np.random.default_rng(2)
    near = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    far = np.full((3, 2), 50.0)                     # no encoder output is nearest to these
    layer = quantizer(np.concatenate([near, far]), dead_code_threshold=1)
    z = (near[rng.integers(0, 3, size=(4, 5))] + 0.1 * rng.normal(size=(4, 5, 2))).astype(
        "float32")                                                   # (4, 5, 2)
    counts = numpy(layer.usage(layer.codes(z)))
    assert np.all(counts[:3] > 0) and np.all(counts[3:] == 0)
    before = numpy(layer.codebook)

    restarted = layer.restart_dead_codes(z, counts, seed=0)
    after = numpy(layer.codebook)
    np.testing.assert_array_equal(restarted, [3, 4, 5])
    np.testing.assert_array_equal(after[:3], before[:3])             # used codes untouched
    outputs = z.reshape(-1, 2)
    for row in after[3:]:                                            # each on an encoder output
        assert np.any(np.all(outputs == row, axis=1))
    assert len(np.unique(after[3:], axis=0)) == 3                    # on different ones
    assert np.all(numpy(layer.usage(layer.codes(z))) > 0)           # now every code is used

    # Nothing below the threshold: nothing moves. A higher threshold restarts rarer codes.
    counts = numpy(layer.usage(layer.codes(z)))
    assert layer.restart_dead_codes(z, counts, seed=1).size == 0
    np.testing.assert_array_equal(numpy(layer.codebook), after)
    rare = np.flatnonzero(counts < counts.max())
    np.testing.assert_array_equal(layer.restart_dead_codes(z, counts, counts.max(), seed=1),
                                  rare)


def test_quantizer_config_round_trip():
    layer = vq.VectorQuantizer(12, 3, beta=0.4, dead_code_threshold=2, name="vq")
    copy = vq.VectorQuantizer.from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()
    assert tuple(copy.codebook.shape) == (12, 3)


# --------------------------------------------------------------------------- the networks
@pytest.mark.parametrize("shape, filters, grid", [((28, 28, 1), (8, 16), (7, 7)),
                                                  ((32, 32, 3), (8, 8, 16), (4, 4))])
def test_encoder_and_decoder_shapes(shape, filters, grid):
    encoder = vq.build_vq_encoder(shape, 5, filters=filters, residual_blocks=2)
    decoder = vq.build_vq_decoder(shape, 5, filters=filters[::-1], residual_blocks=2)
    x = np.random.default_rng(3).random((2, *shape)).astype("float32")
    z = encoder(x)
    assert tuple(z.shape) == (2, *grid, 5)
    x_hat = numpy(decoder(z))
    assert x_hat.shape == (2, *shape)
    assert x_hat.min() >= 0 and x_hat.max() <= 1                     # sigmoid pixels
    with pytest.raises(ValueError, match="divisible by 8"):
        vq.build_vq_decoder((28, 28, 1), 5, filters=(8, 8, 8))


def test_vqvae_encode_decode_and_call_agree(fashion):
    model = small_vqvae()
    x = fashion[:5]
    indices = model.encode(x)
    assert tuple(indices.shape) == (5, 7, 7)
    np.testing.assert_array_equal(numpy(model.decode(indices)), numpy(model(x)))


def test_vqvae_keras_round_trip(fashion, tmp_path):
    model = small_vqvae()
    rng = np.random.default_rng(4)                # a codebook no initialiser would give
    model.quantizer.codebook.assign(rng.normal(size=(16, 4)).astype("float32"))
    path = tmp_path / "vqvae.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is vq.VQVAE and type(loaded.quantizer) is vq.VectorQuantizer
    assert loaded.quantizer.get_config() == model.quantizer.get_config()
    np.testing.assert_array_equal(numpy(loaded.quantizer.codebook),
                                  numpy(model.quantizer.codebook))
    np.testing.assert_array_equal(numpy(loaded(fashion)), numpy(model(fashion)))
    np.testing.assert_array_equal(numpy(loaded.encode(fashion)), numpy(model.encode(fashion)))


# --------------------------------------------------------------------------- training
def test_vqvae_loss_falls_on_real_images(fashion):
    # The recipe the chapter uses: codes restarted on encoder outputs before training (a
    # data-dependent start) and after every epoch.
    class Restart(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.restart_dead_codes(fashion, seed=epoch)

    model = small_vqvae()
    assert model.restart_dead_codes(fashion, seed=0).size > 0
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    start_mse = float(np.mean((numpy(model(fashion)) - fashion) ** 2))
    history = model.fit(fashion, fashion, batch_size=32, epochs=15, verbose=0,
                        callbacks=[Restart()]).history                    # 30 steps
    loss, reconstruction, vq_loss = (np.array(history[k])
                                     for k in ("loss", "reconstruction", "vq_loss"))
    np.testing.assert_allclose(reconstruction + vq_loss, loss, rtol=1e-4)
    assert loss[-1] < 0.8 * loss[0]
    end_mse = float(np.mean((numpy(model(fashion)) - fashion) ** 2))
    assert end_mse < 0.8 * start_mse
    assert float(numpy(model.quantizer.perplexity(model.encode(fashion)))) > 2.0


def test_restarting_dead_codes_from_a_callback_inside_fit(fashion):
    """With a learning rate of 0 the codebook after fit is exactly what the callback left,
    if its restart reached the trainer (on JAX the trainer holds the weights during fit)."""
    model = small_vqvae(num_codes=32)
    codebook = numpy(model.quantizer.codebook)
    codebook[16:] = 100.0                                            # half the codes dead
    model.quantizer.codebook.assign(codebook)

    class Restart(keras.callbacks.Callback):
        # `model`, not `self.model`: Keras' `Callback.model` would sync the JAX state itself.
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.restarted = model.restart_dead_codes(fashion, seed=0)
                self.codebook = numpy(model.quantizer.codebook)

    restart = Restart()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(fashion, fashion, batch_size=32, epochs=1, verbose=0, callbacks=[restart])
    assert set(range(16, 32)) <= set(restart.restarted.tolist())
    assert np.all(restart.codebook[16:] != 100.0)
    np.testing.assert_array_equal(numpy(model.quantizer.codebook), restart.codebook)
