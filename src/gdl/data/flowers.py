"""Oxford 102 Category Flowers (Nilsback & Zisserman), in either of its two layouts.

* the official download, ``oxford-102-flowers/``: ``jpg/image_NNNNN.jpg`` (8,189
  images, from ``102flowers.tgz``) with ``imagelabels.mat`` and ``setid.mat``;
* the Kaggle/Udacity copy, ``pytorch-challange-flower-dataset/``:
  ``dataset/{train,valid}/<class 1..102>/image_NNNNN.jpg``.

:func:`flowers` decodes the photos, crops their central square, resizes them and
returns uint8 arrays. The decoded arrays are cached in :func:`gdl.data.cache_dir`
(written atomically), never in ``GDL_DATA_DIR``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdl.data.fetch import (DataError, File, Source, cache_dir, data_dir,
                            download, downloads_allowed, fetch, missing_message, verify)

_OXFORD_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
# md5 digests of the official files (as listed by torchvision).
FLOWERS_OFFICIAL = Source(
    name="Oxford 102 Flowers",
    folder="oxford-102-flowers",
    origin=_OXFORD_URL + " (102flowers.tgz unpacked to jpg/, imagelabels.mat, setid.mat)",
    files=(
        File("imagelabels.mat", _OXFORD_URL + "imagelabels.mat",
             {"md5:e0620be6f572b9609742df49c70aed4d": "official"}),
        File("setid.mat", _OXFORD_URL + "setid.mat",
             {"md5:a5357ecc9cb78c4bef273ce3793fc85c": "official"}),
    ),
)
FLOWERS_ARCHIVE = File("102flowers.tgz", _OXFORD_URL + "102flowers.tgz",
                       {"md5:52808999861908f626f3c1f4e79d11fa": "official"})
OFFICIAL_COUNT = 8189

FLOWERS_KAGGLE = Source(
    name="Oxford 102 Flowers (Kaggle/Udacity layout)",
    folder="pytorch-challange-flower-dataset",
    origin="https://www.kaggle.com/datasets/nunenuh/pytorch-challange-flower-dataset",
    how=("This copy has no direct download. With a Kaggle account: `kaggle datasets "
         "download -d nunenuh/pytorch-challange-flower-dataset`, then unzip it into the "
         "folder below (it holds dataset/train/<class>/image_NNNNN.jpg). Or use the "
         f"official layout instead: {_OXFORD_URL}102flowers.tgz unpacked to "
         "oxford-102-flowers/jpg/ next to imagelabels.mat."),
)
KAGGLE_SPLITS = ("train", "valid")
LAYOUTS = ("auto", "official", "kaggle")


@dataclass
class Flowers:
    """Square flower photos as uint8 (N, S, S, 3), their classes (1..102) and files."""

    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    layout: str
    note: str = ""

    def __len__(self) -> int:
        return len(self.images)


# --------------------------------------------------------------------------- file lists
def _official_files() -> tuple[list[Path], np.ndarray] | None:
    """The official jpgs and their labels, or None when jpg/ is absent."""
    root = data_dir() / FLOWERS_OFFICIAL.folder
    if not (root / "jpg").is_dir() or not any((root / "jpg").glob("image_*.jpg")):
        return None
    labels = _read_labels()
    files = sorted((root / "jpg").glob("image_*.jpg"))
    index = np.array([int(f.stem.split("_")[1]) for f in files])
    if index.min() < 1 or index.max() > len(labels):
        raise DataError(f"{root / 'jpg'} holds files not numbered 1..{len(labels)}.")
    return files, labels[index - 1]


def _read_labels() -> np.ndarray:
    from scipy.io import loadmat

    path = fetch(FLOWERS_OFFICIAL, "imagelabels.mat")   # verified against the md5
    labels = np.asarray(loadmat(path)["labels"]).ravel().astype(np.int64)
    if len(labels) != OFFICIAL_COUNT:
        raise DataError(f"{path} has {len(labels)} labels, expected {OFFICIAL_COUNT}.")
    return labels


def _download_official_jpgs() -> None:
    """Fetch 102flowers.tgz and move its jpg/ into place (atomically, file by file)."""
    root = data_dir() / FLOWERS_OFFICIAL.folder
    target = root / "jpg"
    if not downloads_allowed():
        raise DataError(missing_message(FLOWERS_OFFICIAL, "jpg/image_00001.jpg",
                                        "downloads are off: GDL_OFFLINE is set"))
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".flowers.", dir=root))
    try:
        tgz = work / FLOWERS_ARCHIVE.path
        try:
            download(FLOWERS_ARCHIVE.url, tgz, desc="102flowers.tgz")
        except Exception as exc:  # network errors of every kind
            raise DataError(missing_message(
                FLOWERS_OFFICIAL, "jpg/image_00001.jpg",
                f"download from {FLOWERS_ARCHIVE.url} failed: {exc}")) from exc
        verify(tgz, FLOWERS_ARCHIVE)
        with tarfile.open(tgz) as tar:
            tar.extractall(work / "x", filter="data")
        target.mkdir(exist_ok=True)
        for item in sorted((work / "x" / "jpg").glob("*.jpg")):
            if not (target / item.name).exists():
                os.replace(item, target / item.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kaggle_files() -> tuple[list[Path], np.ndarray] | None:
    """The Udacity-layout jpgs (train and valid folders) and their class folders."""
    root = data_dir() / FLOWERS_KAGGLE.folder / "dataset"
    files, labels = [], []
    for split in KAGGLE_SPLITS:
        for f in sorted((root / split).glob("*/image_*.jpg")):
            if f.parent.name.isdigit():
                files.append(f)
                labels.append(int(f.parent.name))
    if not files:
        return None
    return files, np.asarray(labels, np.int64)


# --------------------------------------------------------------------------- decoding
def decode_square(path: Path, size: int) -> np.ndarray:
    """Decode one photo, crop its central square, resize to size×size (uint8 RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.draft("RGB", (2 * size, 2 * size))   # let libjpeg skip what we drop
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            box = ((w - side) // 2, (h - side) // 2,
                   (w - side) // 2 + side, (h - side) // 2 + side)
            im = im.resize((size, size), Image.Resampling.BICUBIC, box=box,
                           reducing_gap=2.0)
            return np.asarray(im, np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path} is not a readable JPEG ({exc}); delete it and download "
                        "the dataset again.") from exc


def _cache_path(layout: str, files: list[Path], size: int) -> Path:
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return cache_dir() / f"flowers_{layout}_{size}px_{h.hexdigest()[:16]}.npz"


def _load(files: list[Path], size: int, layout: str) -> np.ndarray:
    path = _cache_path(layout, files, size)
    if path.exists():
        try:
            with np.load(path) as z:
                images = z["images"]
            if images.shape == (len(files), size, size, 3):
                return images
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    images = np.stack([decode_square(f, size) for f in files])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, images=images)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return images


def flowers(image_size: int = 64, layout: str = "auto", limit: int | None = None) -> Flowers:
    """Oxford 102 flowers as square uint8 images of `image_size` pixels.

    layout: "official" (``oxford-102-flowers/jpg`` + ``imagelabels.mat``; downloads
    ``102flowers.tgz`` when allowed), "kaggle" (``pytorch-challange-flower-dataset``)
    or "auto" (the official one if its jpgs are there, else the Kaggle one).
    `limit` keeps the first `limit` files (in layout order) for quick runs.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    found = None
    if layout in ("auto", "official"):
        found = _official_files()
        if found is None and layout == "official":
            _download_official_jpgs()
            found = _official_files()
        used = "official"
    if found is None and layout in ("auto", "kaggle"):
        found = _kaggle_files()
        used = "kaggle"
    if found is None:
        message = missing_message(FLOWERS_KAGGLE, "dataset/train/1/image_06734.jpg",
                                  "no flower photos found")
        if layout == "auto":
            message += ("\nor, in the official layout: "
                        + missing_message(FLOWERS_OFFICIAL, "jpg/image_00001.jpg"))
        raise DataError(message)
    files, labels = found
    if limit is not None:
        files, labels = files[:limit], labels[:limit]
    images = _load(files, image_size, used)
    n_classes = len(np.unique(labels))
    note = ""
    if used == "official" and len(files) < OFFICIAL_COUNT and limit is None:
        note = f"{len(files):,} of the official {OFFICIAL_COUNT:,} images"
    elif used == "kaggle":
        note = (f"{len(files):,} images of {n_classes} classes from the Kaggle/Udacity "
                f"copy (the official set has {OFFICIAL_COUNT:,} of 102 classes)")
    return Flowers(images, labels, [str(f) for f in files], used, note)
