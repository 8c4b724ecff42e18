"""Sample-quality metrics shared by the chapters: the Fréchet distance and the standard FID.

The standard FID needs ImageNet weights for InceptionV3. Where they cannot be had (offline,
``GDL_OFFLINE=1``), :func:`inception` raises :class:`gdl.data.DataError`; chapters then
report a Fréchet distance in the features of a network trained in the book, labelled as such.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gdl.paths import DataError, downloads_allowed

INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                 "inception_v3/" + INCEPTION_WEIGHTS)


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets of shape (N, D)."""
    from scipy import linalg

    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) feature arrays with the same D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("need at least two samples per set to estimate a covariance")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b)
    root = np.real(root)  # sqrtm of a product of PSD matrices: imaginary part is round-off
    mean_gap = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    return max(0.0, mean_gap + float(np.trace(cov_a + cov_b - 2 * root)))


def inception():
    """InceptionV3 (ImageNet weights, global-average-pooled 2048 features), or a DataError."""
    import keras

    cached = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models" / INCEPTION_WEIGHTS
    if not cached.exists() and not downloads_allowed():
        raise DataError(f"InceptionV3 ImageNet weights are not available offline (GDL_OFFLINE=1). "
                        f"Download {INCEPTION_URL} to {cached} to compute the standard FID.")
    try:
        return keras.applications.InceptionV3(include_top=False, weights="imagenet",
                                              pooling="avg", input_shape=(299, 299, 3))
    except Exception as err:  # no network: keras raises a plain Exception
        raise DataError(f"InceptionV3 ImageNet weights could not be loaded ({err}). "
                        f"Download {INCEPTION_URL} to {cached} to compute the standard FID.") from err


def inception_features(images, model, batch_size: int = 50) -> np.ndarray:
    """2048-d InceptionV3 features of images in [0, 1], shape (N, H, W, 1 or 3)."""
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"need images of shape (N, H, W, 1 or 3) in [0, 1], got {images.shape}")
    out = []
    for start in range(0, len(images), batch_size):
        batch = tf.image.resize(images[start:start + batch_size], (299, 299), "bilinear")
        if batch.shape[-1] == 1:
            batch = tf.image.grayscale_to_rgb(batch)
        out.append(model(batch * 2.0 - 1.0, training=False).numpy())  # Inception expects [-1, 1]
    return np.concatenate(out)


def fid(real_images, fake_images, model=None) -> float:
    """FID with Keras' InceptionV3 ImageNet weights (close to, not identical with, the TF-slim FID)."""
    model = model or inception()
    return frechet_distance(inception_features(real_images, model),
                            inception_features(fake_images, model))
