"""gdl.models.ebm: Langevin dynamics and contrastive-divergence training, checked
on energies whose answers are known."""
import keras
import numpy as np
import pytest
from keras import ops

import gdl.data
import gdl.viz
from gdl import backend
from gdl.models import ebm

MU = np.array([1.5, -2.0, 0.5], "float32")


def quadratic(x):
    """E(x) = |x - mu|^2 / 2: its Boltzmann distribution is N(mu, I)."""
    return 0.5 * keras.ops.sum((x - MU) ** 2, axis=-1)


def test_energy_gradient_of_a_quadratic_is_x_minus_mu():
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(ebm.energy_gradient(quadratic, ops.convert_to_tensor(x))),
                               x - MU, atol=1e-6)


def test_zero_step_size_is_the_identity():
    x0 = np.random.default_rng(1).uniform(-0.9, 0.9, (16, 3)).astype("float32")
    x = ops.convert_to_tensor(x0)
    same = ebm.langevin_step(quadratic, x, step_size=0.0, seed=1)  # noise sqrt(2*0)
    np.testing.assert_array_equal(np.asarray(same), x0)
    same = ebm.langevin_step(quadratic, x, 0.0, noise=0.0, grad_clip=0.03,
                             bounds=(-1.0, 1.0), seed=1)
    np.testing.assert_array_equal(np.asarray(same), x0)
    chain = ebm.langevin_chain(quadratic, x, steps=7, step_size=0.0, seed=2)
    np.testing.assert_array_equal(np.asarray(chain), x0)


def test_noiseless_steps_drift_to_the_minimum_at_the_predicted_rate():
    x0 = np.random.default_rng(2).normal(size=(32, 3)).astype("float32") * 4
    x = ops.convert_to_tensor(x0)
    for _ in range(10):
        x = ebm.langevin_step(quadratic, x, step_size=0.1, noise=0.0)
    # x - mu shrinks by exactly (1 - step) per step on a quadratic bowl.
    np.testing.assert_allclose(np.asarray(x) - MU, (x0 - MU) * 0.9 ** 10, rtol=1e-4, atol=1e-5)


def test_langevin_samples_the_boltzmann_distribution_of_a_quadratic():
    keras.utils.set_random_seed(3)
    start = ops.convert_to_tensor(np.full((4000, 3), 6.0, "float32"))      # far away
    step = 0.05
    x = np.asarray(ebm.langevin_chain(quadratic, start, steps=400, step_size=step,
                                      seed=keras.random.SeedGenerator(3)))
    np.testing.assert_allclose(x.mean(0), MU, atol=0.08)
    # Stationary variance of the discretised chain: 1 / (1 - step / 2).
    np.testing.assert_allclose(x.var(0), 1 / (1 - step / 2), rtol=0.08)


def test_gradient_clip_and_bounds_limit_each_move():
    x = ops.zeros((4, 3))
    moved = np.asarray(ebm.langevin_step(quadratic, x, 10.0, noise=0.0, grad_clip=0.03,
                                         bounds=(-0.25, 0.25)))
    # unclipped: x - 10 (x - mu) = 10 mu, far outside; clipped gradient: 0.3 per entry
    np.testing.assert_allclose(moved, np.clip(10 * 0.03 * np.sign(MU), -0.25, 0.25)[None].repeat(4, 0))


def test_energy_net_shape_and_parameter_count():
    net = ebm.build_energy_net()
    out = net(np.zeros((5, 32, 32, 1), "float32"))
    assert tuple(out.shape) == (5,)
    convs = (5 * 5 * 1 + 1) * 16 + (9 * 16 + 1) * 32 + (9 * 32 + 1) * 64 + (9 * 64 + 1) * 64
    dense = (2 * 2 * 64 + 1) * 64 + 65
    assert net.count_params() == convs + dense


class _RecordingEBM(ebm.EBM):
    """Records, each time the step runs (or is traced), whether it runs as compiled code."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.compiled_flags = []

    def stateful_train_step(self, data):
        self.compiled_flags.append(backend.in_compiled_code())
        return super().stateful_train_step(data)


def _mnist_batch(n):
    x = gdl.data.mnist().x_train[:n].astype("float32") / 127.5 - 1
    return np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)[..., None]


def test_training_runs_compiled_and_separates_real_from_noise(shared_data):
    keras.utils.set_random_seed(4)
    model = _RecordingEBM(ebm.build_energy_net(), buffer_size=256, steps=5, seed=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = np.asarray(model.buffer).copy()
    x = _mnist_batch(32 * 40)
    history = model.fit(x, batch_size=32, epochs=1, verbose=0)
    assert model.compiled_flags and all(model.compiled_flags)  # compiled, not eager
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    after = np.asarray(model.buffer)
    changed = np.any(after != before, axis=(1, 2, 3))
    assert changed.mean() > 0.9          # 1,280 chains written back into 256 slots
    assert after.min() >= -1.0 and after.max() <= 1.0
    e_real = np.asarray(model(x[:200]))
    e_noise = np.asarray(model(np.asarray(model.noise_images(200))))
    assert e_real.mean() < e_noise.mean()                      # data is low energy


def test_image_slider_makes_one_png_frame_per_batch():
    batches = [np.full((6, 8, 8), v, "float32") for v in (0.0, 0.5, 1.0)]
    fig = gdl.viz.image_slider(batches, ["a", "b", "c"], ncols=3)
    assert [f.name for f in fig.frames] == ["a", "b", "c"]
    assert all(f.data[0].source.startswith("data:image/png;base64,") for f in fig.frames)
    assert fig.frames[0].data[0].source != fig.frames[2].data[0].source
    assert len(fig.layout.sliders[0].steps) == 3
    with pytest.raises(ValueError, match="one label per frame"):
        gdl.viz.image_slider(batches, ["a"])


def test_image_slider_gaps_are_paper_coloured():
    import base64
    import io

    import matplotlib.image

    ink = np.ones((3, 4, 4), "float32")          # all-ink tiles under gray_r
    fig = gdl.viz.image_slider([ink], ["only"], ncols=2, pad=2)
    png = fig.frames[0].data[0].source.split(",", 1)[1]
    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(png)))[..., :3]
    assert pixels.shape[:2] == (10, 10)          # 2 x 2 cells of 4 with a gap of 2
    assert pixels[0, 0].max() < 0.1               # a tile: black ink
    assert pixels[0, 5].min() > 0.9               # the gap between tiles: white
    assert pixels[8, 8].min() > 0.9               # the empty fourth cell: white


def test_sample_runs_the_training_chain_with_numpy_noise_for_an_integer_seed():
    """EBM.sample(start, steps, seed=int) is langevin_chain with the training settings and
    the contract's noise: NumPy's N(0, I) draws of shape (steps, *start.shape)."""
    keras.utils.set_random_seed(5)
    net = ebm.build_energy_net(8, 1, filters=(4, 4), dense=8)
    model = ebm.EBM(net, buffer_size=16, steps=4, step_size=0.5, noise=0.05,
                    grad_clip=0.1, seed=5)
    start = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8, 1)).astype("float32")
    eps = np.random.default_rng(9).standard_normal((4, *start.shape)).astype("float32")
    expected = np.asarray(ebm.langevin_chain(net, ops.convert_to_tensor(start), 4, 0.5, 0.05,
                                             0.1, (-1.0, 1.0), eps=ops.convert_to_tensor(eps)))
    got = np.asarray(model.sample(start, seed=9))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - start).max() > 1e-3                       # it moved
    np.testing.assert_array_equal(np.asarray(model.sample(start, seed=9)), got)
    # two steps from the same noise agree with the first two of the four
    two = np.asarray(model.sample(start, steps=2, seed=9))
    expected2 = np.asarray(ebm.langevin_chain(net, ops.convert_to_tensor(start), 2, 0.5, 0.05,
                                              0.1, (-1.0, 1.0),
                                              eps=ops.convert_to_tensor(
                                                  np.random.default_rng(9).standard_normal(
                                                      (2, *start.shape)).astype("float32"))))
    np.testing.assert_allclose(two, expected2, atol=1e-5)
    # generate: the chain's end mapped from [-1, 1] to [0, 1]
    images = np.asarray(model.generate(3, seed=9, start=start))
    np.testing.assert_allclose(images, (got + 1) / 2, atol=1e-6)
    assert images.min() >= 0 and images.max() <= 1
