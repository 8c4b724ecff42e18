import numpy as np
import pytest

from gdl import metrics
from gdl.data import DataError


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
    with pytest.raises(DataError) as err:
        metrics.inception()
    assert metrics.INCEPTION_URL in str(err.value)
    assert str(tmp_path / "models" / metrics.INCEPTION_WEIGHTS) in str(err.value)


def test_inception_features_checks_image_shape():
    with pytest.raises(ValueError, match="N, H, W"):
        metrics.inception_features(np.zeros((2, 8, 8)), model=None)


def test_inception_features_resize_small_grayscale_images():
    import keras
    # random weights: this checks the plumbing (resize, grey to RGB, 2048-d pooled output)
    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                           input_shape=(299, 299, 3))
    feats = metrics.inception_features(np.random.default_rng(0).random((3, 32, 32, 1)), model,
                                       batch_size=2)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all()
