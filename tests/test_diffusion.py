"""gdl.models.diffusion (schedules, embedding, U-Net, DDIM, the model with EMA)
and gdl.data.flowers (both layouts, missing and corrupt data)."""
import shutil

import keras
import numpy as np
import pytest

import gdl.data
from gdl.models import diffusion as dm

T = np.linspace(0, 1, 101, dtype="float32")


# --------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("name", list(dm.SCHEDULES))
def test_signal_and_noise_rates_are_on_the_unit_circle(name):
    signal, noise = (np.asarray(r) for r in dm.SCHEDULES[name](T))
    np.testing.assert_allclose(signal**2 + noise**2, 1.0, atol=1e-6)
    assert np.all(np.diff(signal) < 0) and np.all(np.diff(noise) > 0)
    assert np.all(signal >= -1e-6) and np.all(noise >= 0)


def test_schedule_end_points():
    s, n = (np.asarray(r) for r in dm.linear_schedule(np.float32([0, 1])))
    assert s[0] == pytest.approx(1.0) and n[0] == pytest.approx(0.0, abs=1e-6)
    # DDPM: alpha_bar(T) = prod(1 - beta_t) ~ exp(-10.05) for 1e-4..0.02 over 1000.
    betas = np.linspace(1e-4, 0.02, 1000)
    # (the continuous form drops the beta²/2 terms of log(1 - beta): 1% in log)
    assert np.log(s[1] ** 2) == pytest.approx(np.log(np.prod(1 - betas)), rel=0.01)
    s, n = (np.asarray(r) for r in dm.offset_cosine_schedule(np.float32([0, 1])))
    np.testing.assert_allclose(s, [0.95, 0.02], atol=1e-6)


def _images(n=64, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, size, size, 3)).astype("float32")


def test_noising_at_t0_returns_the_image():
    x, eps = _images(), _images(seed=1)
    for schedule in (dm.linear_schedule, dm.cosine_schedule):
        out = np.asarray(dm.add_noise(x, eps, np.zeros(len(x)), schedule))
        np.testing.assert_allclose(out, x, atol=1e-5)


def test_noising_at_t1_is_pure_noise_in_distribution():
    x = np.ones((256, 16, 16, 3), "float32") * 3.0        # far from N(0, 1)
    x[:, :8] = -3.0
    eps = _images(256, seed=2)
    for schedule in (dm.linear_schedule, dm.cosine_schedule):
        out = np.asarray(dm.add_noise(x, eps, np.ones(len(x)), schedule))
        assert abs(out.mean()) < 0.03 and abs(out.std() - 1) < 0.03
        corr = np.corrcoef(out.ravel(), x.ravel())[0, 1]
        assert abs(corr) < 0.03


def test_noising_matches_the_stepwise_forward_process_in_distribution():
    """1,000 small DDPM steps give the same variance as the one-jump formula."""
    betas = np.linspace(1e-4, 0.02, 1000)
    rng = np.random.default_rng(3)
    x0 = np.full(20_000, 2.0)
    x = x0.copy()
    for b in betas[:300]:
        x = np.sqrt(1 - b) * x + np.sqrt(b) * rng.normal(size=x.shape)
    s, n = (float(r) for r in dm.linear_schedule(np.float32(0.3)))
    assert x.mean() == pytest.approx(s * 2.0, rel=0.02)
    assert x.std() == pytest.approx(n, rel=0.02)


# --------------------------------------------------------------------------- embedding, U-Net
def test_sinusoidal_embedding_shape_range_and_frequencies():
    v = np.linspace(0, 1, 50, dtype="float32").reshape(-1, 1, 1, 1)
    e = np.asarray(dm.sinusoidal_embedding(v, 32))
    assert e.shape == (50, 1, 1, 32)
    # sin² + cos² = 1 for every frequency
    np.testing.assert_allclose(e[..., :16] ** 2 + e[..., 16:] ** 2, 1, atol=1e-5)
    np.testing.assert_allclose(e[0, 0, 0, :16], 0, atol=1e-6)   # sin(0)
    # the lowest frequency is 1 cycle per unit: sin(2 pi * 0.25) = 1
    q = np.asarray(dm.sinusoidal_embedding(np.float32([[[[0.25]]]]), 32))
    assert q[0, 0, 0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("size,widths,depth", [(16, (8, 16), 1), (32, (8, 16, 24), 2),
                                               (64, (8, 16, 24, 32), 1)])
def test_unet_output_shape_equals_input_shape(size, widths, depth):
    net = dm.build_unet(size, widths, depth, embedding_dims=16)
    x = _images(2, size)
    out = net([x, np.full((2, 1, 1, 1), 0.5, "float32")])
    assert tuple(out.shape) == x.shape
    np.testing.assert_array_equal(np.asarray(out), 0)   # zero-initialised output


def test_unet_depends_on_the_noise_level():
    keras.utils.set_random_seed(0)
    net = dm.build_unet(16, (8, 16), 1, embedding_dims=16)
    last = net.get_layer("predicted_noise")
    last.set_weights([np.random.default_rng(0).normal(size=w.shape) * 0.1
                      for w in last.get_weights()])
    x = _images(2, 16)
    a = np.asarray(net([x, np.full((2, 1, 1, 1), 0.1, "float32")]))
    b = np.asarray(net([x, np.full((2, 1, 1, 1), 0.9, "float32")]))
    assert np.abs(a - b).mean() > 1e-4


# --------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("steps", [1, 3, 20])
@pytest.mark.parametrize("name", ["linear", "offset cosine"])   # signal > 0 at t=1
def test_ddim_with_an_oracle_recovers_the_clean_image(steps, name):
    schedule = dm.SCHEDULES[name]
    x0, eps = _images(8, seed=4), _images(8, seed=5)
    start = np.asarray(dm.add_noise(x0, eps, np.ones(8), schedule))

    def oracle(x, signal, noise_rate):   # knows the noise that was added
        return keras.ops.convert_to_tensor(eps)

    out, path, estimates = dm.ddim_sample(oracle, start, steps, schedule,
                                          trajectory=True)
    np.testing.assert_allclose(np.asarray(out), x0, atol=2e-3)
    assert len(path) == steps + 1 and len(estimates) == steps
    # every intermediate image lies on the forward path of the clean image
    for i, x in enumerate(path[1:], start=1):
        t = np.full(8, 1 - i / steps, "float32")
        expected = np.asarray(dm.add_noise(x0, eps, t, schedule))
        np.testing.assert_allclose(np.asarray(x), expected, atol=2e-3)


def test_ddim_clipping_keeps_estimates_in_range_and_exact_when_inside():
    x0 = np.random.default_rng(8).uniform(-1, 1, (8, 16, 16, 3)).astype("float32")
    eps = _images(8, seed=9)
    start = np.asarray(dm.add_noise(x0, eps, np.ones(8)))
    oracle = lambda x, s, n: keras.ops.convert_to_tensor(eps)  # noqa: E731
    out = dm.ddim_sample(oracle, start, 5, clip=(-1.0, 1.0))
    np.testing.assert_allclose(np.asarray(out), x0, atol=2e-3)
    wrong = lambda x, s, n: keras.ops.zeros_like(x)  # noqa: E731
    out, _, estimates = dm.ddim_sample(wrong, start * 5, 5, clip=(-1.0, 1.0),
                                       trajectory=True)
    for e in estimates:
        assert np.asarray(e).min() >= -1 and np.asarray(e).max() <= 1


def test_ddim_with_a_wrong_predictor_does_not_recover_the_image():
    x0, eps = _images(8, seed=4), _images(8, seed=5)
    start = np.asarray(dm.add_noise(x0, eps, np.ones(8)))
    out = dm.ddim_sample(lambda x, s, n: keras.ops.zeros_like(x), start, 10)
    assert np.abs(np.asarray(out) - x0).mean() > 0.5


def test_slerp_keeps_the_end_points_and_the_norm_of_noise():
    """Two independent high-dimensional noise draws: every point of the slerp path keeps the
    norm of the ends (within sampling error), where the straight line shrinks by ~1/sqrt(2)."""
    a, b = _images(2, 32, seed=6), _images(2, 32, seed=7)          # two examples each
    weights = np.linspace(0, 1, 9)
    path = np.asarray(dm.slerp(a, b, weights))
    assert path.shape == (9, *a.shape)
    np.testing.assert_allclose(path[0], a, atol=1e-5)
    np.testing.assert_allclose(path[-1], b, atol=1e-5)
    ends = np.linalg.norm(a.reshape(2, -1), axis=1)
    norms = np.linalg.norm(path.reshape(9, 2, -1), axis=2)         # (weights, examples)
    np.testing.assert_allclose(norms / ends, 1.0, atol=0.02)
    linear_mid = (a + b) / 2
    assert np.all(np.linalg.norm(linear_mid.reshape(2, -1), axis=1) / ends < 0.75)  # what slerp avoids


def test_slerp_moves_along_the_great_circle_per_example():
    """For unit vectors the path stays on the unit sphere, the angle from a grows linearly
    (w * omega), and each example uses its own angle."""
    rng = np.random.default_rng(10)
    a = rng.normal(size=(3, 4, 4, 1))
    b = rng.normal(size=(3, 4, 4, 1))
    b[2] = -0.3 * a[2] + 0.1 * b[2]                 # an obtuse angle for the third example
    unit = lambda v: v / np.linalg.norm(v.reshape(3, -1), axis=1)[:, None, None, None]  # noqa: E731
    a, b = unit(a).astype("float32"), unit(b).astype("float32")
    omega = np.arccos(np.sum(a * b, axis=(1, 2, 3)))
    assert omega.max() - omega.min() > 0.5          # really different angles
    weights = np.array([0.0, 0.1, 0.5, 0.8, 1.0])
    path = np.asarray(dm.slerp(a, b, weights), "float64").reshape(5, 3, -1)
    np.testing.assert_allclose(np.linalg.norm(path, axis=2), 1.0, atol=1e-5)
    angles = np.arccos(np.clip(np.sum(path * a.reshape(1, 3, -1), axis=2), -1, 1))
    np.testing.assert_allclose(angles, weights[:, None] * omega[None, :], atol=2e-3)
    # and it lies in the plane of a and b: the part of each point outside span(a, b) is zero
    for i in range(3):
        basis, _ = np.linalg.qr(np.stack([a[i].ravel(), b[i].ravel()], 1).astype("float64"))
        rest = path[:, i] - (path[:, i] @ basis) @ basis.T
        assert np.abs(rest).max() < 1e-5


# --------------------------------------------------------------------------- the model
def test_training_lowers_the_loss_and_ema_tracks_the_weights():
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(1).uniform(0.2, 0.8, (64, 16, 16, 3)).astype("float32")
    x[:, 4:12, 4:12] = 0.9                       # a shared structure to learn
    net = dm.build_unet(16, (8, 16), 1, embedding_dims=16)
    model = dm.DiffusionModel(net, x.mean((0, 1, 2)), x.std((0, 1, 2)), ema=0.5, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(x, batch_size=64, verbose=0)
    model.fit(x, batch_size=16, epochs=6, verbose=0)
    after = model.evaluate(x, batch_size=64, verbose=0)
    assert after < 0.8 * before
    raw, ema = net.get_weights(), model.ema_network.get_weights()
    assert any(not np.allclose(r, e) for r, e in zip(raw, ema))     # a copy...
    gap = max(np.abs(r - e).max() for r, e in zip(raw, ema))
    assert gap < 0.2                                                 # ...that follows
    images = np.asarray(model.generate(4, steps=3))
    assert images.shape == (4, 16, 16, 3)
    assert images.min() >= 0 and images.max() <= 1
    noise = _images(2, 16)
    first, path, estimates = model.reverse_process(steps=2, initial_noise=noise)
    assert len(path) == 3 and len(estimates) == 2
    np.testing.assert_allclose(np.asarray(first), np.asarray(estimates[-1]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(first),
                               np.asarray(model.generate(steps=2, initial_noise=noise)),
                               atol=1e-6)
    for x in [first, *path, *estimates]:
        assert np.asarray(x).min() >= 0 and np.asarray(x).max() <= 1


def test_ema_update_is_the_moving_average():
    keras.utils.set_random_seed(2)
    batch = np.random.default_rng(2).uniform(size=(8, 16, 16, 3)).astype("float32")
    for warmup, decays in [(False, [0.9, 0.9]), (True, [2 / 11, 3 / 12])]:
        net = dm.build_unet(16, (8, 16), 1, embedding_dims=16)
        model = dm.DiffusionModel(net, [0.5] * 3, [0.2] * 3, ema=0.9,
                                  ema_warmup=warmup, seed=2)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        for decay in decays:
            old = [w.copy() for w in model.ema_network.get_weights()]
            model.train_on_batch(batch)
            for o, r, e in zip(old, net.get_weights(), model.ema_network.get_weights()):
                np.testing.assert_allclose(e, decay * o + (1 - decay) * r,
                                           rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- flowers data
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_flowers_offline_copy(shared_data, cache):
    data = gdl.data.flowers(32)
    assert data.layout == "kaggle"
    assert data.images.shape == (2493, 32, 32, 3) and data.images.dtype == np.uint8
    counts = np.bincount(data.labels)[np.unique(data.labels)]
    assert len(counts) == 90 and counts.max() == 28 and counts.min() >= 1
    assert 40 < data.images.mean() < 200 and data.images.std() > 30   # real photos
    assert "2,493" in data.note
    assert list(cache.glob("flowers_kaggle_32px_*.npz"))              # cached
    again = gdl.data.flowers(32)
    np.testing.assert_array_equal(again.images, data.images)


def test_flowers_labels_agree_with_the_official_labels(shared_data, cache):
    from scipy.io import loadmat

    data = gdl.data.flowers(16, limit=200)
    official = loadmat(shared_data / "oxford-102-flowers" / "imagelabels.mat")["labels"].ravel()
    index = [int(f.rsplit("_", 1)[1][:5]) for f in data.files]
    np.testing.assert_array_equal(official[np.array(index) - 1], data.labels)


def test_flowers_official_layout(shared_data, empty_data_dir, cache):
    """jpg/ + imagelabels.mat is read with the official labels."""
    src = shared_data / "pytorch-challange-flower-dataset" / "dataset" / "train"
    root = empty_data_dir / "oxford-102-flowers"
    (root / "jpg").mkdir(parents=True)
    shutil.copy(shared_data / "oxford-102-flowers" / "imagelabels.mat", root)
    picked = sorted(src.glob("*/image_*.jpg"))[:12]
    for f in picked:
        shutil.copy(f, root / "jpg" / f.name)
    data = gdl.data.flowers(24, layout="official")
    assert data.layout == "official" and data.images.shape == (12, 24, 24, 3)
    by_name = {f.name: int(f.parent.name) for f in picked}
    assert [by_name[f.rsplit("/", 1)[1]] for f in data.files] == list(data.labels)
    assert "12 of the official 8,189" in data.note


def test_flowers_missing_names_what_and_where(empty_data_dir, cache, monkeypatch):
    monkeypatch.setenv("GDL_OFFLINE", "1")
    with pytest.raises(gdl.data.DataError) as err:
        gdl.data.flowers(32)
    msg = str(err.value)
    assert "nunenuh/pytorch-challange-flower-dataset" in msg
    assert str(empty_data_dir / "pytorch-challange-flower-dataset" / "dataset" / "train") in msg
    assert "102flowers.tgz" in msg
    with pytest.raises(gdl.data.DataError) as err:
        gdl.data.flowers(32, layout="official")
    assert str(empty_data_dir / "oxford-102-flowers") in str(err.value)


def test_flowers_corrupt_files_are_rejected(shared_data, empty_data_dir, cache):
    folder = empty_data_dir / "pytorch-challange-flower-dataset" / "dataset" / "train" / "5"
    folder.mkdir(parents=True)
    good = sorted((shared_data / "pytorch-challange-flower-dataset" / "dataset" /
                   "train" / "5").glob("*.jpg"))[0]
    shutil.copy(good, folder / good.name)
    (folder / "image_99999.jpg").write_bytes(good.read_bytes()[:300])   # truncated
    with pytest.raises(gdl.data.DataError, match="image_99999.jpg"):
        gdl.data.flowers(16, layout="kaggle")
    # a label file that is not the official one
    root = empty_data_dir / "oxford-102-flowers"
    (root / "jpg").mkdir(parents=True)
    shutil.copy(good, root / "jpg" / good.name)
    (root / "imagelabels.mat").write_bytes(b"MATLAB 5.0 MAT-file, but not really")
    with pytest.raises(gdl.data.DataError, match="corrupt"):
        gdl.data.flowers(16, layout="official")
