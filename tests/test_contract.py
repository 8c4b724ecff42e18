"""The contract every generative family meets (gdl.models.base), checked on a tiny model of
each family: `generate(n, seed=...)` in the documented range, the same integer seed giving the
same samples (also after a .keras round trip, and from a file saved under the other backend),
and the same optimizer keywords."""
from __future__ import annotations

import functools
import inspect
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from gdl.models import autoregressive as ar
from gdl.models import diffusion, ebm, flows, gan, vae

N = 4
CROSS_SEED = 7


# ------------------------------------------------------------------------------ tiny models
def _vae():
    return vae.VAE(vae.build_encoder((8, 8, 1), 2, filters=(4,)),
                   vae.build_decoder(2, (8, 8, 1), filters=(4,)), seed=1)


def _dcgan():
    return gan.DCGAN(gan.build_generator(4, 8, 1, filters=(8,)),
                     gan.build_discriminator(8, 1, filters=(4, 8)), latent_dim=4, seed=1)


def _wgan():
    return gan.WGANGP(gan.build_generator(4, 8, 1, filters=(8,)),
                      gan.build_discriminator(8, 1, filters=(4, 8), norm=None),
                      latent_dim=4, critic_steps=2, seed=1)


def _cwgan():
    return gan.WGANGP(gan.build_generator(4, 8, 1, filters=(8,), n_classes=2),
                      gan.build_discriminator(8, 1, filters=(4, 8), n_classes=2, norm=None),
                      latent_dim=4, critic_steps=2, n_classes=2, seed=1)


def _ebm():
    return ebm.EBM(ebm.build_energy_net(8, 1, filters=(4, 4), dense=8), buffer_size=4,
                   steps=3, step_size=1.0, noise=0.05, grad_clip=0.1, seed=1)


def _diffusion():
    net = diffusion.build_unet(8, (4, 8), 1, embedding_dims=4, channels=1)
    last = net.get_layer("predicted_noise")      # zero-initialised: give it something to say
    rng = np.random.default_rng(0)
    last.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3
                      for w in last.get_weights()])
    return diffusion.DiffusionModel(net, [0.5], [0.25], seed=1)


def _realnvp():
    model = flows.RealNVP(dim=2, n_couplings=2, units=8, depth=1)
    model.build((None, 2))
    return model


def _pixelcnn():
    return ar.PixelCNN(ar.build_pixelcnn(8, 4, filters=4, blocks=1), 4, seed=1)


def _pixelcnn_mixture():
    return ar.PixelCNN(ar.build_pixelcnn(8, 3 * 2, filters=4, blocks=1), 16, head="mixture",
                       seed=1)


BUILDERS = {"vae": _vae, "dcgan": _dcgan, "wgan": _wgan, "conditional_wgan": _cwgan,
            "ebm": _ebm, "diffusion": _diffusion, "realnvp": _realnvp,
            "pixelcnn": _pixelcnn, "pixelcnn_mixture": _pixelcnn_mixture}
FAMILIES = list(BUILDERS)
#: sample shape and output range of each family
SHAPES = {name: (8, 8, 1) for name in FAMILIES} | {"realnvp": (2,)}
RANGES = {name: (0.0, 1.0) for name in FAMILIES} | {"realnvp": (-np.inf, np.inf)}
ADVERSARIAL = {"dcgan", "wgan", "conditional_wgan"}


def build(name):
    keras.utils.set_random_seed(3)
    return BUILDERS[name]()


def extra(name, n):
    """What a family's generate needs besides n and seed (a conditional model's labels)."""
    if name == "conditional_wgan":
        return {"labels": np.eye(2, dtype="float32")[np.arange(n) % 2]}
    return {}


def samples(model, name, n=N, **kwargs):
    return np.asarray(ops.convert_to_numpy(model.generate(n, **extra(name, n), **kwargs)))


def save_all(folder):
    """Save every tiny model and its samples for seed CROSS_SEED to `folder` (run by the
    other backend's subprocess)."""
    folder = Path(folder)
    for name in FAMILIES:
        model = build(name)
        model.save(folder / f"{name}.keras")
        np.save(folder / f"{name}.npy", samples(model, name, seed=CROSS_SEED))


@functools.lru_cache(maxsize=None)
def tiny(name):
    return build(name)


# ------------------------------------------------------------------------------ (a) range
@pytest.mark.parametrize("name", FAMILIES)
def test_generate_gives_n_samples_in_the_documented_range(name):
    model = tiny(name)
    assert tuple(model.output_range) == RANGES[name]
    seed = inspect.signature(model.generate).parameters["seed"]
    assert seed.kind is inspect.Parameter.KEYWORD_ONLY and seed.default is None
    x = samples(model, name, seed=3)
    assert x.shape == (N, *SHAPES[name])
    assert np.all(np.isfinite(x))
    lo, hi = model.output_range
    assert x.min() >= lo and x.max() <= hi
    assert x.std() > 1e-4                       # not a constant


# ------------------------------------------------------------------------------ (b) seeds
@pytest.mark.parametrize("name", FAMILIES)
def test_the_same_integer_seed_gives_the_same_samples(name):
    model = tiny(name)
    a = samples(model, name, seed=11)
    samples(model, name)                        # drawing in between changes nothing
    np.testing.assert_array_equal(samples(model, name, seed=11), a)
    assert np.abs(samples(model, name, seed=12) - a).max() > 1e-4
    # seed=None: a new batch each call
    assert np.abs(samples(model, name) - samples(model, name)).max() > 1e-4


# ------------------------------------------------------------------------------ (c) saving
@pytest.mark.parametrize("name", FAMILIES)
def test_a_keras_round_trip_gives_the_same_samples(name, tmp_path):
    model = tiny(name)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(samples(loaded, name, seed=5), samples(model, name, seed=5))


# ------------------------------------------------------------------------------ (d) backends
OTHER = {"tensorflow": "jax", "jax": "tensorflow"}.get(keras.backend.backend())
#: DDIM divides by the signal rate (0.02 at t=1) at every step: the backends' round-off in the
#: noise predictor (~1e-7 here) grows to ~5e-5 over 20 steps (~1e-6 after one step)
CROSS_TOLERANCE = {"diffusion": 2e-4}


@pytest.fixture(scope="module")
def saved_by_the_other_backend(tmp_path_factory):
    """One subprocess under the other backend saves every family's tiny model and samples."""
    if OTHER is None:
        pytest.skip(f"cross-backend loading is checked between tensorflow and jax, "
                    f"not {keras.backend.backend()}")
    folder = tmp_path_factory.mktemp(f"saved_by_{OTHER}")
    env = {**os.environ, "KERAS_BACKEND": OTHER, "TF_CPP_MIN_LOG_LEVEL": "3",
           "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_contract as c; c.save_all({str(folder)!r})")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"saving under {OTHER} failed:\n{done.stderr[-4000:]}"
    return folder


@pytest.mark.parametrize("name", FAMILIES)
def test_a_file_saved_under_the_other_backend_gives_the_same_samples(
        name, saved_by_the_other_backend):
    loaded = keras.models.load_model(saved_by_the_other_backend / f"{name}.keras")
    expected = np.load(saved_by_the_other_backend / f"{name}.npy")
    got = samples(loaded, name, seed=CROSS_SEED)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=CROSS_TOLERANCE.get(name, 1e-5))



# ------------------------------------------------------------------------------ (e) compile
def _slot_shapes(optimizer):
    """Shapes of Adam's first-moment slots, one per variable it was built for."""
    return [tuple(v.shape) for v in optimizer.variables if v.path.endswith("_momentum")]


def _trained(model, name):
    return {"ebm": lambda: model.energy.trainable_variables,
            "diffusion": lambda: model.network.trainable_variables,
            "pixelcnn": lambda: model.network.trainable_variables,
            "pixelcnn_mixture": lambda: model.network.trainable_variables}.get(
        name, lambda: model.trainable_variables)()


@pytest.mark.parametrize("name", FAMILIES)
def test_the_optimizer_keywords(name):
    model = build(name)
    if name in ADVERSARIAL:
        g, d = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(2e-4)
        model.compile(generator_optimizer=g, discriminator_optimizer=d)
        assert model.optimizers == {"generator_optimizer": g, "discriminator_optimizer": d}
        # each optimizer is built for its own network: one slot per weight of that network
        for opt, net in ((g, model.generator), (d, model.discriminator)):
            assert opt.built
            assert _slot_shapes(opt) == [tuple(w.shape) for w in net.trainable_variables]
        if name != "dcgan":
            assert model.critic is model.discriminator
        with pytest.raises(TypeError):
            build(name).compile(optimizer=keras.optimizers.Adam())
    else:
        opt = keras.optimizers.Adam(1e-4)
        model.compile(optimizer=opt)
        assert model.optimizer is opt
        if opt.built:   # GenerativeModel.compile builds it for the trained network
            assert _slot_shapes(opt) == [tuple(w.shape) for w in _trained(model, name)]
        with pytest.raises(TypeError):
            build(name).compile(generator_optimizer=keras.optimizers.Adam(),
                                discriminator_optimizer=keras.optimizers.Adam())


# ------------------------------------------------------------------------------ PixelCNN
@pytest.mark.parametrize("name", ["pixelcnn", "pixelcnn_mixture"])
def test_pixelcnn_trains_through_fit_on_integer_images(name):
    """fit lowers the likelihood loss of a fixed batch, and the samples use the levels."""
    model = build(name)
    levels = np.random.default_rng(0).integers(0, model.num_levels, (16, 8, 8, 1))
    levels[:, :, :4] = 0                                  # a structure to learn
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = float(model.nll(levels))
    model.fit(levels, batch_size=16, epochs=30, verbose=0)
    assert float(model.nll(levels)) < before - 0.05
    x = samples(model, name, seed=2) * (model.num_levels - 1)
    np.testing.assert_allclose(x, np.round(x), atol=1e-5)   # exactly the levels


def test_pixelcnn_rejects_a_network_that_does_not_match_its_head():
    with pytest.raises(ValueError, match="one logit per level"):
        ar.PixelCNN(ar.build_pixelcnn(8, 5, filters=4, blocks=1), 4)
    with pytest.raises(ValueError, match="3K outputs"):
        ar.PixelCNN(ar.build_pixelcnn(8, 4, filters=4, blocks=1), 16, head="mixture")
