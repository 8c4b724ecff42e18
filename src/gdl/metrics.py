"""Sample-quality metrics shared by the chapters: the Fréchet distance, an in-book yardstick
network to compute it in, and the standard FID where its weights can be had.

Taught in chapter 4, §4.3 (the Fréchet distance and the yardstick); used again in chapters 5,
7 and 8.

- :func:`frechet_distance` fits a Gaussian to each of two feature sets and returns the
  Fréchet (2-Wasserstein) distance between them.
- :func:`train_yardstick` trains a small CNN classifier on a chapter's data; the returned
  :class:`Yardstick` embeds images with its penultimate layer, and :meth:`Yardstick.report`
  puts a generated set's distance next to reference points (real vs real, blurred real,
  noise). These numbers are **not** FIDs and are comparable only within one yardstick.
- :func:`standard_fid` computes the FID with Keras' InceptionV3 ImageNet weights, or says in
  one line why it cannot (offline, download failed) and what to download where.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from gdl.paths import DataError, downloads_allowed  # not gdl.data: no loaders imported here

__all__ = ["DataError", "FrechetReport", "INCEPTION_URL", "INCEPTION_WEIGHTS", "Yardstick",
           "blur", "build_yardstick_classifier", "fid", "frechet_distance", "inception",
           "inception_features", "standard_fid", "standard_fid_unavailable", "train_yardstick"]

INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                 "inception_v3/" + INCEPTION_WEIGHTS)
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # as keras.applications checks it

# Relative size of the ridge added to both covariances (see frechet_distance).
RIDGE = 1e-6


# ----------------------------------------------------------------------------- the distance
def frechet_distance(features_a, features_b, ridge: float = RIDGE) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets of shape (N, D).

    d² = ‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½).

    A ridge ε·I is added to both covariances, with ε = ``ridge`` × the mean feature variance
    of the two sets (``ridge`` itself when every variance is zero). Without it, a singular
    covariance — a dead ReLU unit, or fewer samples than features — makes ``scipy.linalg.sqrtm``
    warn (``LinAlgWarning``) and its result inaccurate. The ridge is relative, so scaling the
    features by s scales d² by exactly s²; for well-conditioned covariances it changes d² by
    about 1e-6 relative, and for identical sets the two ridges cancel exactly.

    Taught in chapter 4, §4.3.
    """
    from scipy import linalg

    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) feature arrays with the same D, "
                         f"got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("need at least two samples per set to estimate a covariance")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    scale = (np.trace(cov_a) + np.trace(cov_b)) / (2 * a.shape[1])
    eps = ridge * scale if scale > 0 else ridge
    eye = np.eye(a.shape[1])
    cov_a, cov_b = cov_a + eps * eye, cov_b + eps * eye
    root = np.real(linalg.sqrtm(cov_a @ cov_b))  # PSD product: imaginary part is round-off
    mean_gap = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    return max(0.0, mean_gap + float(np.trace(cov_a + cov_b - 2 * root)))


def blur(images, passes: int = 2) -> np.ndarray:
    """Images blurred by `passes` 3×3 box filters (average pooling, stride 1, 'same' padding,
    borders averaged over the pixels inside the image): a bad generator that keeps the colours
    and the layout of real images and softens their edges. Shape and range are kept."""
    import keras

    x = keras.ops.convert_to_tensor(np.asarray(images, np.float32))
    for _ in range(passes):
        x = keras.ops.average_pool(x, pool_size=3, strides=1, padding="same")
    return keras.ops.convert_to_numpy(x)


# ----------------------------------------------------------------------------- the yardstick
def build_yardstick_classifier(input_shape, n_outputs: int, *, width: int = 16, blocks: int = 3,
                               convs_per_block: int = 2, feature_dim: int = 128,
                               dropout: float = 0.3, flip: bool = False,
                               flatten: bool = False, name: str = "yardstick"):
    """A small CNN classifier whose penultimate layer, named "features", is the yardstick.

    `blocks` resolution blocks of `convs_per_block` 3×3 ReLU convolutions (width, 2·width,
    4·width, … channels) each followed by 2×2 max pooling; global average pooling (or, with
    `flatten`, the whole last feature map, which keeps where things are — useful for centred
    digits); a `feature_dim`-unit ReLU layer (the features); dropout; one logit per class or
    attribute. `flip` adds a random horizontal flip of the inputs during training.

    Taught in chapter 4, §4.3.
    """
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    x = layers.RandomFlip("horizontal")(inputs) if flip else inputs
    for block in range(blocks):
        for _ in range(convs_per_block):
            x = layers.Conv2D(width * 2 ** block, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x) if flatten else layers.GlobalAveragePooling2D()(x)
    features = layers.Dense(feature_dim, activation="relu", name="features")(x)  # (N, D)
    logits = layers.Dense(n_outputs, name="logits")(layers.Dropout(dropout)(features))
    return keras.Model(inputs, logits, name=name)


@dataclass(frozen=True)
class FrechetReport:
    """Fréchet distances to one reference set, with the three reference points that make them
    readable: ``floor`` (a second real set: what a perfect generator would score with this many
    images), ``blur`` (that real set blurred) and ``noise`` (uniform noise). ``print`` it for a
    table; ``rows()`` gives every row as a dict."""

    floor: float
    blur: float
    noise: float
    generated: dict[str, float] = field(default_factory=dict)
    n_images: int = 0           # images in the real set the floor is computed from
    n_reference: int = 0        # images in the reference set
    network: str = ""           # the yardstick's name, for the title

    def rows(self) -> dict[str, float]:
        return {"real (floor)": self.floor, "blurred real": self.blur,
                "uniform noise": self.noise, **self.generated}

    def with_rows(self, rows: Mapping[str, float]) -> FrechetReport:
        """A copy with more rows (e.g. a model's distance computed later)."""
        return replace(self, generated={**self.generated, **{k: float(v) for k, v in rows.items()}})

    def __str__(self) -> str:
        rows = self.rows()
        width = max(24, *(len(name) for name in rows))
        title = (f"Fréchet distance in the features of {self.network or 'the yardstick'} "
                 f"(not an FID): {self.n_images:,} images per set vs "
                 f"{self.n_reference:,} reference images")
        return "\n".join([title] + [f"  {name:{width}s} {value:10.2f}"
                                    for name, value in rows.items()])


class Yardstick:
    """A trained feature classifier: held-out accuracy, features, Fréchet distances in them.

    Made by :func:`train_yardstick`. Images are (N, H, W, C) in ``value_range`` (what the
    classifier was trained on). Taught in chapter 4, §4.3.
    """

    def __init__(self, classifier, accuracy: float, *, multi_label: bool,
                 value_range=(0.0, 1.0), history: Mapping[str, list] | None = None):
        import keras

        self.classifier = classifier          # image -> logits
        self.accuracy = float(accuracy)       # held-out (mean over attributes when multi-label)
        self.multi_label = bool(multi_label)  # sigmoid attributes, not one softmax class
        self.value_range = tuple(float(v) for v in value_range)
        self.history = dict(history or {})    # the training loss per epoch ({} when loaded)
        self._embed = keras.Model(classifier.inputs, classifier.get_layer("features").output)

    @property
    def feature_dim(self) -> int:
        return int(self._embed.output.shape[-1])

    def __repr__(self) -> str:
        kind = "attributes" if self.multi_label else "classes"
        return (f"Yardstick({self.classifier.name}: {self.classifier.output.shape[-1]} {kind}, "
                f"held-out accuracy {self.accuracy:.3f}, {self.feature_dim} features)")

    def logits(self, images, batch_size: int = 256) -> np.ndarray:
        """(N, classes or attributes) logits."""
        return self.classifier.predict(np.asarray(images, np.float32), batch_size=batch_size,
                                       verbose=0)

    def probabilities(self, images, batch_size: int = 256) -> np.ndarray:
        """Softmax over the classes, or a sigmoid per attribute when multi-label."""
        import keras

        logits = self.logits(images, batch_size)
        probs = (keras.ops.sigmoid(logits) if self.multi_label
                 else keras.ops.softmax(logits, axis=-1))
        return keras.ops.convert_to_numpy(probs)

    def features(self, images, batch_size: int = 256) -> np.ndarray:
        """(N, feature_dim) activations of the penultimate ("features") layer."""
        return self._embed.predict(np.asarray(images, np.float32), batch_size=batch_size,
                                   verbose=0)

    def distance(self, images, reference) -> float:
        """Fréchet distance between two image sets in this yardstick's features (not an FID)."""
        return frechet_distance(self.features(images), self.features(reference))

    def distance_to(self, reference) -> Callable[[np.ndarray], float]:
        """A function images -> Fréchet distance to `reference` (its features computed once)."""
        ref = self.features(reference)

        def distance(images) -> float:
            return frechet_distance(self.features(images), ref)

        return distance

    def report(self, generated, real_a, real_b, *, blur_passes: int = 2,
               seed: int = 0) -> FrechetReport:
        """Distances to `real_a` (the reference set) of each generated set and of three
        reference points: `real_b` (a second real set, disjoint from `real_a`: the floor),
        `real_b` blurred (:func:`blur`, `blur_passes` passes), and uniform noise over
        `value_range` with `real_b`'s shape (seeded by `seed`).

        generated: None, an image array (reported as "generated"), or a dict name -> images;
        any set can be added there (e.g. a differently made real set or another bad generator).
        """
        if generated is None:
            generated = {}
        elif not isinstance(generated, Mapping):
            generated = {"generated": generated}
        real_b = np.asarray(real_b, np.float32)
        distance = self.distance_to(real_a)
        low, high = self.value_range
        noise = np.random.default_rng(seed).uniform(low, high, real_b.shape).astype(np.float32)
        return FrechetReport(floor=distance(real_b), blur=distance(blur(real_b, blur_passes)),
                             noise=distance(noise),
                             generated={name: distance(x) for name, x in generated.items()},
                             n_images=len(real_b), n_reference=len(real_a),
                             network=self.classifier.name)


def _held_out_accuracy(logits, labels, multi_label: bool) -> float:
    labels = np.asarray(labels)
    if multi_label:
        return float(((logits > 0) == (labels > 0.5)).mean())
    return float((logits.argmax(-1) == labels.reshape(-1)).mean())


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def train_yardstick(images, labels, *, validation=None, n_outputs: int | None = None,
                    width: int = 16, blocks: int = 3, convs_per_block: int = 2,
                    feature_dim: int = 128, dropout: float = 0.3, flip: bool = False,
                    flatten: bool = False, epochs: int = 5, batch_size: int = 64,
                    learning_rate: float = 1e-3,
                    value_range=(0.0, 1.0), seed: int = 0, cache: str | Path | None = None,
                    name: str = "yardstick", verbose: int = 0) -> Yardstick:
    """Train the yardstick classifier (:func:`build_yardstick_classifier`) on a chapter's data.

    images: (N, H, W, C) floats in `value_range` ([0, 1] by default; the classifier sees them
    as they are). labels: (N,) integer classes (softmax cross-entropy), or (N, K) multi-hot
    attributes such as CelebA's 40 (a sigmoid cross-entropy per attribute).
    validation: (images, labels) for the held-out accuracy; None holds out the last 10%.
    n_outputs: the number of classes (default: the largest label + 1; attributes: K).
    Architecture (width, blocks, convs_per_block, feature_dim, dropout, flip, flatten) and training
    (epochs, batch_size, Adam's learning_rate) are the chapters' knobs.
    seed: seeds Python, NumPy and the backend (``keras.utils.set_random_seed``) before building
    and training, so the same data and settings give the same yardstick (this reseeds the
    caller's global random state too, as a chapter's own ``set_random_seed`` would).
    cache: a path for the trained classifier (``.keras``, with a ``.json`` beside it). When it
    holds a yardstick trained with the same data and settings, that one is returned untrained;
    otherwise the new one is written there.

    Taught in chapter 4, §4.3.
    """
    import keras

    x = np.asarray(images, np.float32)
    y = np.asarray(labels)
    if x.ndim != 4:
        raise ValueError(f"need images of shape (N, H, W, C), got {x.shape}")
    if len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    multi_label = y.ndim == 2
    y = y.astype(np.float32) if multi_label else y.reshape(-1).astype(np.int32)
    if validation is None:
        n_val = max(1, len(x) // 10)
        x, x_val, y, y_val = x[:-n_val], x[-n_val:], y[:-n_val], y[-n_val:]
    else:
        x_val, y_val = np.asarray(validation[0], np.float32), np.asarray(validation[1])
    if n_outputs is None:
        n_outputs = y.shape[1] if multi_label else int(max(y.max(), np.max(y_val))) + 1
    settings = dict(n_outputs=n_outputs, width=width, blocks=blocks,
                    convs_per_block=convs_per_block, feature_dim=feature_dim, dropout=dropout,
                    flip=flip, flatten=flatten, epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate,
                    seed=seed, name=name, backend=keras.backend.backend())

    key = None
    if cache is not None:
        cache = Path(cache).with_suffix(".keras")
        key = _digest(x, y, x_val, y_val) + json.dumps(settings, sort_keys=True)
        meta_path = cache.with_suffix(".json")
        if cache.exists() and meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta.get("key") == key:
                return Yardstick(keras.saving.load_model(cache), meta["accuracy"],
                                 multi_label=multi_label, value_range=value_range,
                                 history=meta.get("history"))

    keras.utils.set_random_seed(seed)
    classifier = build_yardstick_classifier(x.shape[1:], n_outputs, width=width, blocks=blocks,
                                            convs_per_block=convs_per_block,
                                            feature_dim=feature_dim, dropout=dropout, flip=flip,
                                            flatten=flatten, name=name)
    loss = (keras.losses.BinaryCrossentropy(from_logits=True) if multi_label
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    classifier.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    history = classifier.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose)
    logits = classifier.predict(x_val, batch_size=256, verbose=0)
    yardstick = Yardstick(classifier, _held_out_accuracy(logits, y_val, multi_label),
                          multi_label=multi_label, value_range=value_range,
                          history={k: [float(v) for v in vs] for k, vs in history.history.items()})
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        classifier.save(cache)
        cache.with_suffix(".json").write_text(json.dumps(
            {"key": key, "accuracy": yardstick.accuracy, "history": yardstick.history}))
    return yardstick


# ----------------------------------------------------------------------------- standard FID
def _keras_home() -> str:
    """Where Keras keeps downloads, as a reader would write it (never an absolute path)."""
    return "$KERAS_HOME" if os.environ.get("KERAS_HOME") else "~/.keras"


def _weights_path() -> Path:
    home = os.environ.get("KERAS_HOME") or "~/.keras"
    return Path(home).expanduser() / "models" / INCEPTION_WEIGHTS


def _how_to_get() -> str:
    return f"download {INCEPTION_URL} to {_keras_home()}/models/{INCEPTION_WEIGHTS}"


def _short(err: BaseException) -> str:
    """The gist of a download error, without URLs or local paths."""
    text = str(err).split(" -- ")[-1].strip() or type(err).__name__
    text = re.sub(r"https?://\S+", "<url>", text)
    text = re.sub(r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:'\"]+){2,}", "<path>", text)
    text = re.sub(r"\[Errno -?\d+\]\s*", "", text)   # OS error numbers mean nothing to a reader
    if re.search(r"Name or service not known|getaddrinfo|Temporary failure in name", text):
        text = "no network"
    return text.splitlines()[0][:120]


_INCEPTION: dict = {}  # the loaded network, or the reason a download failed (not retried)


def _inception_or_reason():
    """(model, None) or (None, one-line reason). Nothing is printed: Keras' download messages
    and progress bar are captured."""
    if "model" in _INCEPTION:
        return _INCEPTION["model"], None
    if "reason" in _INCEPTION:
        return None, _INCEPTION["reason"]
    import keras

    path = _weights_path()
    if not path.exists():
        if not downloads_allowed():
            return None, ("InceptionV3 ImageNet weights are not here and downloads are off "
                          f"(GDL_OFFLINE=1): {_how_to_get()}")
        try:
            quiet = io.StringIO()  # Keras prints "Downloading data from ..." and a progress bar
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                path = Path(keras.utils.get_file(INCEPTION_WEIGHTS, INCEPTION_URL,
                                                 cache_dir=str(path.parent.parent),
                                                 cache_subdir="models", file_hash=INCEPTION_MD5))
        except Exception as err:  # no network: keras raises a plain Exception
            _INCEPTION["reason"] = (f"InceptionV3 ImageNet weights could not be downloaded "
                                    f"({_short(err)}): {_how_to_get()}")
            return None, _INCEPTION["reason"]
    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                           input_shape=(299, 299, 3))
    try:
        model.load_weights(str(path))
    except Exception as err:
        return None, (f"InceptionV3 ImageNet weights could not be read ({_short(err)}): "
                      f"{_how_to_get()}")
    _INCEPTION["model"] = model
    return model, None


def inception():
    """InceptionV3 (ImageNet weights, global-average-pooled 2048 features), or a DataError that
    says what to download where. Prints nothing (Keras' download messages are captured)."""
    model, reason = _inception_or_reason()
    if model is None:
        raise DataError(reason + " to compute the standard FID.")
    return model


def standard_fid_unavailable() -> str | None:
    """None when the standard FID can be computed here; else one line saying why not and what
    to download where (relative to KERAS_HOME, never an absolute path). Tries the download
    once per session when downloads are allowed, printing nothing."""
    return _inception_or_reason()[1]


def standard_fid(real_images, fake_images, *, model=None) -> tuple[float | None, str | None]:
    """(FID, None) with Keras' InceptionV3 ImageNet weights, or (None, reason) when the weights
    cannot be had (see :func:`standard_fid_unavailable`). Images in [0, 1], (N, H, W, 1 or 3).
    Close to, not identical with, the TF-slim FID of the papers (other weights and resizing)."""
    if model is None:
        model, reason = _inception_or_reason()
        if model is None:
            return None, reason
    return fid(real_images, fake_images, model), None


def inception_features(images, model, batch_size: int = 50) -> np.ndarray:
    """2048-d InceptionV3 features of images in [0, 1], shape (N, H, W, 1 or 3), resized
    bilinearly to 299×299 (keras.ops, so any backend)."""
    import keras

    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"need images of shape (N, H, W, 1 or 3) in [0, 1], got {images.shape}")
    out = []
    for start in range(0, len(images), batch_size):
        batch = keras.ops.image.resize(images[start:start + batch_size], (299, 299),
                                       interpolation="bilinear")
        if batch.shape[-1] == 1:
            batch = keras.ops.repeat(batch, 3, axis=-1)  # grey to RGB
        out.append(keras.ops.convert_to_numpy(model(batch * 2.0 - 1.0, training=False)))  # [-1, 1]
    return np.concatenate(out)


def fid(real_images, fake_images, model=None) -> float:
    """FID with Keras' InceptionV3 ImageNet weights (close to, not identical with, the TF-slim
    FID); raises DataError when the weights cannot be had (:func:`standard_fid` does not)."""
    model = model or inception()
    return frechet_distance(inception_features(real_images, model),
                            inception_features(fake_images, model))
