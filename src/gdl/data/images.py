"""Image datasets: MNIST, Fashion-MNIST, CIFAR-10 and CelebA, in their official layouts."""
from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdl.data.fetch import DataError, File, Source, data_dir, fetch, fetch_archive, missing_message, verify


@dataclass
class Split:
    """A labelled train/test split as uint8 images (N, H, W[, C]) and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    note: str = ""  # how this split differs from the official one, if it does

    def __iter__(self):  # allows `(x_train, y_train), (x_test, y_test) = split`
        yield self.x_train, self.y_train
        yield self.x_test, self.y_test


# --------------------------------------------------------------------------- IDX (MNIST family)
_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _idx_source(name: str, folder: str, origin: str, base_url: str, sha256: tuple[str, ...]) -> Source:
    """An MNIST-format dataset: the four official IDX files, each with its official sha256."""
    return Source(name=name, folder=folder, origin=origin, files=tuple(
        File(f, base_url + f, {f"sha256:{digest}": "official"}) for f, digest in zip(_IDX_FILES, sha256)))


MNIST = _idx_source(
    "MNIST", "mnist",
    "http://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)

FASHION_MNIST = _idx_source(
    "Fashion-MNIST", "fashion-mnist",
    "https://github.com/zalandoresearch/fashion-mnist (files at http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/)",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
     "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
     "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
)

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST format) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number); delete it and download it again.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {data.size} values, its header says {shape}; delete it and download it again.")
    return data.reshape(shape)


def _idx_split(source: Source, class_names) -> Split:
    arrays = [read_idx(fetch(source, f.path)) for f in source.files]
    return Split(*arrays, class_names=tuple(class_names))


def mnist() -> Split:
    """MNIST digits: 60,000 train and 10,000 test 28×28 uint8 images."""
    return _idx_split(MNIST, [str(d) for d in range(10)])


def fashion_mnist() -> Split:
    """Fashion-MNIST: 60,000 train and 10,000 test 28×28 uint8 images of 10 clothing classes."""
    return _idx_split(FASHION_MNIST, FASHION_CLASSES)


# --------------------------------------------------------------------------- CIFAR-10
# md5 digests of the official files (as listed by torchvision); the test batch in this
# project's offline copy is a documented JPEG-decoded rebuild (shared/data/MANIFEST.md).
_CIFAR_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
_CIFAR_OFFLINE_TEST = "md5:575761ef7ae87b5a46d6936a34009546"

CIFAR10 = Source(
    name="CIFAR-10",
    folder="cifar-10-batches-py",
    origin="https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz, unpacked)",
    files=tuple(
        File(name, None, {f"md5:{digest}": "official",
                          **({_CIFAR_OFFLINE_TEST: "offline rebuild from JPEG copies"} if name == "test_batch" else {})})
        for name, digest in _CIFAR_MD5.items()
    ),
)
CIFAR10_ARCHIVE = File(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    {"md5:c58f30108f718f92721af3b95e74349a": "official"},
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


def _read_cifar_batch(path: Path, spec: File) -> tuple[np.ndarray, np.ndarray]:
    verify(path, spec)  # before unpickling: never unpickle an unverified file
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(batch[b"labels"], dtype=np.int64)


def cifar10(allow_test_only: bool = False, test_only_train_size: int = 8000) -> Split:
    """CIFAR-10 32×32 colour images: the official 50,000/10,000 split.

    With `allow_test_only=True` and only the official test batch on disk (as in this
    project's offline copy), split those 10,000 images into `test_only_train_size` for
    training and the rest for testing instead; `Split.note` then says so.
    """
    folder = data_dir() / CIFAR10.folder
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    have_train = all((folder / n).exists() for n in train_names)
    have_test = (folder / "test_batch").exists()
    if not have_train and not (allow_test_only and have_test):
        try:
            fetch_archive(CIFAR10, CIFAR10_ARCHIVE, f"{CIFAR10.folder}/data_batch_1")
        except DataError as exc:
            raise DataError(
                f"{exc}\n(CIFAR-10 needs data_batch_1 … data_batch_5, test_batch and batches.meta in {folder}.)"
            ) from None
        have_train = True
    x_test, y_test = _read_cifar_batch(folder / "test_batch", CIFAR10.file("test_batch"))
    if have_train:
        parts = [_read_cifar_batch(folder / n, CIFAR10.file(n)) for n in train_names]
        x_train = np.concatenate([p[0] for p in parts])
        y_train = np.concatenate([p[1] for p in parts])
        return Split(x_train, y_train, x_test, y_test, CIFAR10_CLASSES)
    n = test_only_train_size
    if not 0 < n < len(x_test):
        raise ValueError(f"test_only_train_size must be between 1 and {len(x_test) - 1}, got {n}")
    return Split(
        x_test[:n], y_test[:n], x_test[n:], y_test[n:], CIFAR10_CLASSES,
        note=(f"CIFAR-10 training batches not found: trained on {n:,} and tested on "
              f"{len(x_test) - n:,} images of the official test batch"),
    )


# --------------------------------------------------------------------------- CelebA
CELEBA = Source(
    name="CelebA",
    folder="celeba-dataset",
    origin="https://www.kaggle.com/datasets/jessicali9530/celeba-dataset",
    how=("CelebA has no direct download. With a Kaggle account: "
         "`kaggle datasets download -d jessicali9530/celeba-dataset`, then unzip it into "
         "the folder below (it holds img_align_celeba/img_align_celeba/*.jpg and list_attr_celeba.csv)."),
)
CELEBA_IMAGES = "img_align_celeba/img_align_celeba"
CELEBA_ATTRIBUTES = "list_attr_celeba.csv"


@dataclass
class CelebA:
    """The aligned CelebA faces on disk: image paths and their 40 binary attributes."""

    files: list[Path]
    attributes: "pandas.DataFrame"  # noqa: F821 - indexed by image_id, values -1/1, same order as files

    def __len__(self) -> int:
        return len(self.files)

    def dataset(self, image_size: int = 64, batch_size: int = 128, shuffle: bool = True,
                seed: int | None = None):
        """A `tf.data.Dataset` of float32 faces in [0, 1], centre-cropped square and resized."""
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices(tf.constant([str(p) for p in self.files]))
        if shuffle:
            ds = ds.shuffle(min(len(self.files), 20_000), seed=seed, reshuffle_each_iteration=True)

        def load(path):
            return decode_face(tf.io.read_file(path), image_size)

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def load(self, image_size: int = 64, limit: int | None = None) -> np.ndarray:
        """All (or the first `limit`) faces as one float32 array (N, size, size, 3) in [0, 1].

        On TensorFlow through `dataset()` (parallel decoding); on other backends with Pillow,
        so that TensorFlow is not needed (the two agree to within JPEG decoders' noise).
        """
        files = self.files[:limit]
        if not files:
            return np.zeros((0, image_size, image_size, 3), np.float32)
        if _keras_backend() != "tensorflow":
            return np.stack([read_face(path, image_size) for path in files])
        subset = CelebA(files, self.attributes.iloc[:limit])
        return np.concatenate([b.numpy() for b in subset.dataset(image_size, batch_size=512, shuffle=False)])


def _keras_backend() -> str:
    import keras

    return keras.backend.backend()


def read_face(path, image_size: int) -> np.ndarray:
    """`decode_face` with Pillow and NumPy: one face as float32 (size, size, 3) in [0, 1]."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        rgb = np.asarray(image.crop((left, top, left + side, top + side)), np.float32)
    # Resized in float per channel (mode "F"), as tf.image.resize does, not rounded to uint8;
    # Pillow's bilinear filter widens when it shrinks, like TensorFlow's antialias=True.
    channels = [Image.fromarray(rgb[..., c], mode="F").resize((image_size, image_size), Image.BILINEAR)
                for c in range(3)]
    return np.clip(np.stack([np.asarray(c) for c in channels], -1) / 255.0, 0.0, 1.0)


def decode_face(jpeg_bytes, image_size: int):
    """Decode an aligned CelebA JPEG, crop the central square of the face, resize, scale to [0, 1].

    Works for the official 178×218 images and for smaller copies of the same framing.
    """
    import tensorflow as tf

    image = tf.io.decode_jpeg(jpeg_bytes, channels=3)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top: top + side, left: left + side]
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def celeba(limit: int | None = None) -> CelebA:
    """The aligned CelebA faces (Kaggle layout) and their attributes, in file-name order."""
    import pandas as pd

    root = data_dir() / CELEBA.folder
    image_dir = root / CELEBA_IMAGES
    attr_path = root / CELEBA_ATTRIBUTES
    if not image_dir.is_dir():
        raise DataError(missing_message(CELEBA, CELEBA_IMAGES + "/", "it has no direct download"))
    if not attr_path.exists():
        raise DataError(missing_message(CELEBA, CELEBA_ATTRIBUTES, "it has no direct download"))
    try:
        attrs = pd.read_csv(attr_path, index_col="image_id")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{attr_path} is not the Kaggle CelebA attribute table ({exc}); download it again.") from exc
    if attrs.shape[1] != 40 or not attrs.isin([-1, 1]).all().all():
        raise DataError(f"{attr_path} should hold 40 attribute columns of -1/1 values; download it again.")
    files = sorted(image_dir.glob("*.jpg"))
    if not files:
        raise DataError(missing_message(CELEBA, CELEBA_IMAGES + "/000001.jpg", "the image folder is empty"))
    names = [f.name for f in files]
    missing = [n for n in names if n not in attrs.index]
    if missing:
        raise DataError(f"{len(missing)} CelebA images have no row in {attr_path} (e.g. {missing[0]}).")
    if limit is not None:
        files, names = files[:limit], names[:limit]
    return CelebA(files, attrs.loc[names])
