import re
from pathlib import Path

import numpy as np
import pytest

from gdl import metrics


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 8))
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 3))
    # b is an exact affine image of a: means shift by m, standard deviations scale by s
    m, s = np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, 1.0])
    b = (a - a.mean(0)) * s + a.mean(0) + m
    var_a = np.var(a, axis=0, ddof=1)  # a's sample covariance is not exactly diagonal; use the full one
    cov_a = np.cov(a, rowvar=False)
    cov_b = np.diag(s) @ cov_a @ np.diag(s)
    from scipy import linalg
    expected = (m ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    # and for (nearly) independent dimensions it is the textbook diagonal formula
    diagonal = (m ** 2).sum() + (var_a * (1 - s) ** 2).sum()
    assert metrics.frechet_distance(a, b) == pytest.approx(diagonal, rel=0.05)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same D"):
        metrics.frechet_distance(np.zeros((10, 3)), np.zeros((10, 4)))


def test_inception_offline_without_weights_names_the_download(monkeypatch, tmp_path):
    monkeypatch.setenv("GDL_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(metrics, "_INCEPTION", {})
    with pytest.raises(metrics.DataError) as err:
        metrics.inception()
    assert metrics.INCEPTION_URL in str(err.value)
    assert "$KERAS_HOME/models/" + metrics.INCEPTION_WEIGHTS in str(err.value)
    assert str(tmp_path) not in str(err.value)


def test_inception_features_checks_image_shape():
    with pytest.raises(ValueError, match="N, H, W"):
        metrics.inception_features(np.zeros((2, 8, 8)), model=None)


@pytest.fixture(scope="module")
def random_inception():
    import keras
    # random weights: enough to check the plumbing (resize, grey to RGB, 2048-d pooled output)
    return keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                          input_shape=(299, 299, 3))


def test_inception_features_resize_small_grayscale_images(random_inception):
    feats = metrics.inception_features(np.random.default_rng(0).random((3, 32, 32, 1)),
                                       random_inception, batch_size=2)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all()


# ----------------------------------------------------------------------------- the ridge
def test_ridge_removes_the_singular_covariance_warning():
    import warnings

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(300, 6))
    a[:, :2] = b[:, :2] = 0.0  # dead units: both covariances are singular
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = metrics.frechet_distance(a, b)
        zero = metrics.frechet_distance(np.zeros((10, 4)), np.zeros((10, 4)))
    assert np.isfinite(d) and d >= 0 and zero == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_shifted_gaussians_matches_the_closed_form():
    # N(m, diag(s^2)) vs N(0, I): d^2 = |m|^2 + sum (s - 1)^2, up to sampling error
    rng = np.random.default_rng(3)
    m, s = np.array([0.5, -1.0, 2.0, 0.0]), np.array([1.0, 2.0, 0.5, 1.5])
    a = rng.normal(size=(200_000, 4))
    b = rng.normal(size=(200_000, 4)) * s + m
    expected = (m ** 2).sum() + ((s - 1) ** 2).sum()
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_scales_with_the_features_squared():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(300, 5)), rng.normal(1.0, 2.0, size=(300, 5))
    assert metrics.frechet_distance(10 * a, 10 * b) == pytest.approx(
        100 * metrics.frechet_distance(a, b), rel=1e-9)


# ----------------------------------------------------------------------------- the blur
def test_blur_matches_a_3x3_box_filter_averaged_inside_the_image():
    x = np.random.default_rng(5).random((2, 6, 7, 3)).astype("float32")
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    counts = np.pad(np.ones((6, 7)), 1)
    sums = sum(padded[:, i:i + 6, j:j + 7] for i in range(3) for j in range(3))
    n = sum(counts[i:i + 6, j:j + 7] for i in range(3) for j in range(3))[None, :, :, None]
    np.testing.assert_allclose(metrics.blur(x, passes=1), sums / n, rtol=1e-5, atol=1e-6)
    assert metrics.blur(x).shape == x.shape


# ----------------------------------------------------------------------------- the yardstick
@pytest.fixture(scope="module")
def digits(shared_data):
    from gdl.data import mnist

    split = mnist()
    x = split.x_train[:800, ..., None].astype("float32") / 255.0   # (800, 28, 28, 1) in [0, 1]
    return x, split.y_train[:800].astype("int32")


@pytest.fixture(scope="module")
def yardstick(digits):
    x, y = digits
    return metrics.train_yardstick(x[:600], y[:600], validation=(x[600:], y[600:]), width=16,
                                   epochs=6, batch_size=32, seed=1, name="digits")


def test_yardstick_trains_and_documents_its_features(yardstick, digits):
    x, _ = digits
    loss = yardstick.history["loss"]
    assert loss[-1] < 0.8 * loss[0]                           # the loss falls
    assert yardstick.accuracy > 0.3                            # well above chance (0.1)
    assert yardstick.feature_dim == 128
    feats = yardstick.features(x[:5])
    assert feats.shape == (5, 128) and np.isfinite(feats).all()
    probs = yardstick.probabilities(x[:5])
    assert probs.shape == (5, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert "digits" in repr(yardstick)


def test_yardstick_report_ranks_real_below_blur_and_noise(yardstick, digits):
    x, _ = digits
    report = yardstick.report({"real again": x[400:600]}, x[600:800], x[200:400])
    assert report.floor < report.blur and report.floor < report.noise
    assert report.generated["real again"] < report.noise
    assert list(report.rows())[:3] == ["real (floor)", "blurred real", "uniform noise"]
    table = str(report)
    assert "not an FID" in table and "uniform noise" in table and "real again" in table
    more = report.with_rows({"model": 1.5})
    assert more.rows()["model"] == 1.5 and "model" not in report.rows()
    distance = yardstick.distance_to(x[600:800])
    assert distance(x[200:400]) == pytest.approx(report.floor, rel=1e-6)


def test_yardstick_is_deterministic_and_cached(digits, tmp_path):
    x, y = digits
    kwargs = dict(width=4, blocks=2, convs_per_block=1, feature_dim=16, epochs=1,
                  batch_size=64, seed=3, name="tiny")
    a = metrics.train_yardstick(x[:256], y[:256], **kwargs)
    b = metrics.train_yardstick(x[:256], y[:256], cache=tmp_path / "tiny", **kwargs)
    np.testing.assert_allclose(a.features(x[:8]), b.features(x[:8]), rtol=1e-5, atol=1e-6)
    assert (tmp_path / "tiny.keras").exists() and (tmp_path / "tiny.json").exists()
    c = metrics.train_yardstick(x[:256], y[:256], cache=tmp_path / "tiny", **kwargs)
    assert c.history == b.history and c.accuracy == b.accuracy
    np.testing.assert_allclose(c.features(x[:8]), b.features(x[:8]), rtol=1e-6, atol=1e-6)
    d = metrics.train_yardstick(x[:256], y[:256], cache=tmp_path / "tiny",
                                **{**kwargs, "seed": 4})      # other settings: retrained
    assert not np.allclose(d.features(x[:8]), b.features(x[:8]))


def test_yardstick_multi_label_attributes(digits):
    x, y = digits
    attrs = np.stack([y % 2, y >= 5, y == 0], axis=1).astype("float32")   # (N, 3) multi-hot
    stick = metrics.train_yardstick(x[:400], attrs[:400], width=4, blocks=2, feature_dim=32,
                                    epochs=2, batch_size=32, seed=2)
    assert stick.multi_label and stick.feature_dim == 32
    probs = stick.probabilities(x[:4])
    assert probs.shape == (4, 3) and ((probs > 0) & (probs < 1)).all()
    assert 0.5 < stick.accuracy <= 1.0    # per-attribute accuracy on the last 10%


def test_yardstick_classifier_shapes():
    pooled = metrics.build_yardstick_classifier((32, 32, 3), 7, width=4, blocks=3,
                                                convs_per_block=1, feature_dim=16, flip=True)
    flat = metrics.build_yardstick_classifier((32, 32, 1), 10, width=4, blocks=2,
                                              convs_per_block=1, flatten=True)
    assert pooled.output.shape[-1] == 7 and pooled.get_layer("features").output.shape[-1] == 16
    assert flat.get_layer("features").input.shape[-1] == 8 * 8 * 8   # 8x8 map, 2 * width channels
    assert flat.get_layer("features").output.shape[-1] == 128


# ----------------------------------------------------------------------------- standard FID
def test_standard_fid_offline_gives_a_reason_without_paths_or_output(monkeypatch, tmp_path,
                                                                     capsys):
    monkeypatch.setenv("GDL_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(metrics, "_INCEPTION", {})
    images = np.random.default_rng(0).random((4, 8, 8, 3))
    value, reason = metrics.standard_fid(images, images)
    assert value is None and reason == metrics.standard_fid_unavailable()
    assert metrics.INCEPTION_URL in reason and "GDL_OFFLINE" in reason
    assert "\n" not in reason
    assert str(tmp_path) not in reason and str(Path.home()) not in reason
    assert not re.search(r"(^|\s)/\w", reason)             # no absolute path
    assert capsys.readouterr().out == ""


def test_standard_fid_download_failure_is_summarised_quietly(monkeypatch, tmp_path, capsys):
    import keras

    def failing_get_file(fname, origin, **kwargs):
        print(f"Downloading data from {origin}")          # what keras prints
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service "
                        f"not known ({tmp_path}/models/{fname})")

    monkeypatch.delenv("GDL_OFFLINE", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(metrics, "_INCEPTION", {})
    monkeypatch.setattr(keras.utils, "get_file", failing_get_file)
    value, reason = metrics.standard_fid(np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8, 1)))
    assert value is None and "could not be downloaded" in reason
    assert "(no network)" in reason and str(tmp_path) not in reason
    assert "Errno" not in reason                            # OS error numbers say nothing
    assert reason.count("https://") == 1                    # only the URL to download
    assert capsys.readouterr().out == ""


def test_standard_fid_with_a_given_network(random_inception):
    rng = np.random.default_rng(6)
    value, reason = metrics.standard_fid(rng.random((4, 16, 16, 3)), rng.random((4, 16, 16, 3)),
                                         model=random_inception)
    assert reason is None and np.isfinite(value) and value >= 0
