"""Chapter 14's capstone (gdl.capstone): the budget stops and reports, the yardsticks give
the same numbers for the same samples and separate quality from coverage, every family
trains and samples, and the two new model wrappers (an image flow, a VQ-VAE with a prior)
compute what they claim."""
from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from gdl import capstone as cap
from gdl.metrics import Yardstick, build_yardstick_classifier


class FakeClock:
    """Each reading is `tick` seconds after the previous one: every step 'costs' time."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture(scope="module")
def levels(shared_data):
    return cap.fashion_levels("train", 256)


@pytest.fixture(scope="module")
def yardstick():
    keras.utils.set_random_seed(0)
    net = build_yardstick_classifier(cap.IMAGE_SHAPE, 10, width=4, blocks=2, feature_dim=16)
    return Yardstick(net, 0.0, multi_label=False)


@pytest.fixture
def smoke(monkeypatch):
    monkeypatch.setenv("GDL_PROFILE", "smoke")


# ------------------------------------------------------------------------------ the budget
def test_the_budget_stops_training_and_reports_the_overrun(levels, smoke):
    # every clock reading costs 1 s: a 5 s budget ends after a handful of steps, never 50
    model, report = cap.train("vae", levels, 5.0, clock=FakeClock(1.0))
    assert report["stopped_by_budget"]
    assert 1 <= report["steps"]["train"] <= 5
    assert report["seconds"] >= 5.0 and report["overrun_seconds"] == report["seconds"] - 5.0
    assert report["examples_seen"] == report["steps"]["train"] * cap.FAMILIES["vae"].settings()["batch"]


def test_a_step_longer_than_the_budget_is_stopped_after_it_and_reported(levels, smoke):
    readings = itertools.chain([0.0, 0.0], itertools.repeat(3.0))   # the first step takes 3 s
    model, report = cap.train("dcgan", levels, 0.5, clock=lambda: next(readings))
    assert report["steps"] == {"train": 1}
    assert report["overrun_seconds"] > 0        # not silently given more time: reported


def test_two_stages_share_one_budget(levels, smoke):
    model, report = cap.train("vq_gpt", levels, 20.0, clock=FakeClock(1.0))
    assert set(report["steps"]) == {"vqvae", "prior"}
    assert report["steps"]["vqvae"] >= 1 and report["steps"]["prior"] >= 1
    assert report["seconds"] - report["overrun_seconds"] <= 20.0


def test_a_budget_needs_positive_seconds_and_a_known_family(levels):
    with pytest.raises(ValueError, match="positive"):
        cap.Budget(0)
    with pytest.raises(ValueError, match="unknown family 'gan'"):
        cap.train("gan", levels, 1.0)
    with pytest.raises(ValueError, match="uint8 levels"):
        cap.train("vae", levels / 255.0, 1.0)


# ------------------------------------------------------------------------------ yardsticks
def test_the_same_samples_give_the_same_scores(levels, yardstick):
    real = levels[:64] / 255.0
    fake = np.random.default_rng(0).uniform(size=(64, *cap.IMAGE_SHAPE)).astype("float32")
    first = cap.score(fake, real, yardstick)
    again = cap.score(fake.copy(), real.copy(), yardstick)
    assert first == pytest.approx(again, rel=1e-6)
    same = cap.score(real, real, yardstick)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    assert same["frechet"] < first["frechet"]
    # precision/recall compare equal-sized sets: the first 32 real images for 32 samples
    half = cap.score(real[:32], real, yardstick)
    assert half["precision"] == 1.0 and half["recall"] == 1.0
    with pytest.raises(ValueError, match="as many real images"):
        cap.score(fake, real[:32], yardstick)


def test_precision_and_recall_separate_quality_from_coverage():
    rng = np.random.default_rng(1)
    real = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
    one_mode = rng.normal(5, 0.5, (200, 2))       # good samples of half the data
    far = rng.normal(50, 1, (200, 2))             # nothing like the data
    precision, recall = cap.precision_recall(real, one_mode)
    assert precision > 0.95 and recall < 0.6
    assert cap.precision_recall(real, far) == (0.0, 0.0)
    with pytest.raises(ValueError, match="feature arrays"):
        cap.precision_recall(real, far[:, :1])


def test_generate_times_every_batch_but_the_first():
    calls = []

    class Model:
        def generate(self, n, seed=None):
            calls.append(seed)
            return np.full((n, 2), 0.5, "float32")

    x, seconds = cap.generate(Model(), 6, batch=3, seed=10)
    assert x.shape == (6, 2) and seconds >= 0 and calls == [10_010, 10, 11]
    with pytest.raises(ValueError, match="multiple"):
        cap.generate(Model(), 5, batch=3)


# ------------------------------------------------------------------------------ families
@pytest.mark.parametrize("family", list(cap.FAMILIES))
def test_every_family_trains_and_samples_images_in_range(family, levels, smoke):
    model, report = cap.train(family, levels, 4.0, clock=FakeClock(1.0))
    assert sum(report["steps"].values()) >= 1
    s = cap.FAMILIES[family].settings()
    x = np.asarray(ops.convert_to_numpy(
        model.generate(3, seed=5, **cap.sample_kwargs(family, s))))
    assert x.shape == (3, *cap.IMAGE_SHAPE)
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
    bits = cap.FAMILIES[family].bits_per_dim
    if bits is not None:
        assert 0.0 < bits(model, levels[:16]) < 20.0


def test_the_image_flow_accounts_for_its_logit_step(levels, smoke):
    """bits = (D log 256 - log p(x)) / (D log 2), with log p(x) = log p_flow(y) + log|dy/dx|,
    the second term checked against a numerical derivative of the logit map."""
    model, _ = cap.build("flow")
    x_levels = levels[:2]
    noise = np.random.default_rng(0).uniform(size=(2, model.dim)).astype("float32")
    x = (x_levels.reshape(2, -1) + noise) / 256.0
    a, h = model.alpha, 1e-4

    def logit(v):
        s = a + (1 - 2 * a) * v
        return np.log(s) - np.log(1 - s)

    y = logit(x.astype("float64"))
    slope = (logit(x + h) - logit(x - h)) / (2 * h)
    log_p = ops.convert_to_numpy(model.flow.log_prob(ops.convert_to_tensor(y, "float32")))
    expected = (model.dim * np.log(256.0) - (log_p + np.log(slope).sum(1))) / (model.dim * np.log(2))
    got = ops.convert_to_numpy(model.bits(x_levels, noise))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_the_vq_prior_reads_the_vqvae_codes(levels, smoke):
    from gdl.models.vq_prior import CODE_OFFSET

    model, _ = cap.build("vq_gpt")
    x = levels[:4] / 255.0
    inputs, targets = model.tokens(x)
    codes = ops.convert_to_numpy(model.vqvae.encode(x)).reshape(4, -1)
    np.testing.assert_array_equal(targets - CODE_OFFSET, codes)
    assert (inputs[:, 0] == model.prior.start_id).all()
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])


@pytest.mark.parametrize("family", ["flow", "vq_gpt"])
def test_the_new_wrappers_round_trip_through_keras_files(family, tmp_path, smoke):
    model, s = cap.build(family)
    before = ops.convert_to_numpy(model.generate(2, seed=3))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.generate(2, seed=3)), before,
                               atol=1e-5)


def test_pretrain_publishes_a_capstone_family_with_its_budget(shared_data, tmp_path, monkeypatch):
    import pretrain

    monkeypatch.setenv("GDL_PROFILE", "smoke")
    monkeypatch.setenv("GDL_WEIGHTS_DIR", str(tmp_path / "weights"))
    rec = pretrain.main(["capstone_vae", "--minutes", "0.02"])
    assert rec["name"] == "capstone_vae.smoke" and rec["training"]["budget_minutes"] == 0.02
    assert rec["steps"] == sum(rec["training"]["steps_by_stage"].values()) >= 1
    model, _ = cap.build("vae", rec["settings"])
    import gdl.weights as W
    W.load("capstone_vae.smoke", model, settings=rec["settings"])


@pytest.mark.parametrize("family", ["vq_gpt", "latent_diffusion"])
def test_the_store_restores_every_weight_of_a_two_stage_family(family, levels, tmp_path,
                                                               monkeypatch, smoke):
    import gdl.weights as W

    trained, report = cap.train(family, levels, 6.0, clock=FakeClock(1.0))
    settings = cap.FAMILIES[family].settings()
    W.save("two_stage", trained, {"family": family, "settings": settings, "steps": 1,
                                   "examples_seen": 1, "wall_seconds": 1.0, "run_info": "test",
                                   "metrics": {}, "command": "test"}, folder=tmp_path)
    fresh, _ = cap.build(family, settings)
    before = [w.copy() for w in fresh.get_weights()]
    monkeypatch.setenv("GDL_WEIGHTS_DIR", str(tmp_path))
    W.load("two_stage", fresh, settings)
    changed = 0
    for got, want, was in zip(fresh.get_weights(), trained.get_weights(), before):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)   # float16 storage
        changed += not np.array_equal(got, was)
    assert changed > len(before) // 2     # the weights came from the file, not the builder
