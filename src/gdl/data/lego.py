"""LEGO brick renders (Kaggle `joosthazelzet/lego-brick-images`).

The official download unpacks to ``lego-brick-images/dataset/*.png``: computer
renders of 50 kinds of brick, each file named after its brick, e.g.
``3001 brick 2x4 000L.png`` (part number and name, view number, L/R camera).
The brick in the name is a real class label. The Kaggle renders are 400x400;
this project's offline copy holds 10,000 of the 40,000 at 40x40 grayscale
(see shared/data/MANIFEST.md). Images are read as 8-bit grayscale.

Decoded arrays are cached (per file list and image size) under
``gdl.data.cache_dir()``, written atomically; the data folder is only read.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdl.data.fetch import DataError, Source, cache_dir, data_dir, missing_message

LEGO = Source(
    name="LEGO brick images",
    folder="lego-brick-images",
    origin="https://www.kaggle.com/datasets/joosthazelzet/lego-brick-images",
    how=("The renders have no direct download. With a Kaggle account: "
         "`kaggle datasets download -d joosthazelzet/lego-brick-images`, then "
         "unzip it into the folder below (it holds dataset/*.png)."),
)
LEGO_IMAGES = "dataset"
_NAME = re.compile(r"^(?P<brick>.+) (?P<view>\d+)(?P<camera>[LR])\.png$")


@dataclass
class LegoBricks:
    """Grayscale brick renders as uint8 (N, S, S), with the brick as label."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    files: list[Path]

    def __len__(self) -> int:
        return len(self.images)


def brick_of(path: Path | str) -> str:
    """The brick a render shows, from its file name ('3001 brick 2x4')."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise DataError(f"{path}: not a LEGO render file name "
                        "('<part> <name> <view><L|R>.png')")
    return match["brick"]


def _decode(path: Path, image_size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("L")
            if image_size is not None and im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), Image.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path} is not a readable PNG ({exc}); the file is "
                        "corrupt: delete it and download the dataset again."
                        ) from exc


def _cache_key(files: list[Path], image_size: int | None) -> str:
    h = hashlib.sha256(str(image_size).encode())
    for f in files:
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
    return h.hexdigest()[:20]


def lego_bricks(image_size: int | None = None, limit: int | None = None,
                use_cache: bool = True) -> LegoBricks:
    """The LEGO renders in file-name order, as uint8 grayscale images.

    image_size: resize every render to image_size x image_size (Lanczos);
    None keeps the stored size (all files must then share it).
    limit: keep only the first `limit` files (in name order).
    """
    folder = data_dir() / LEGO.folder / LEGO_IMAGES
    if not folder.is_dir():
        raise DataError(missing_message(LEGO, LEGO_IMAGES + "/",
                                        "it has no direct download"))
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DataError(missing_message(
            LEGO, LEGO_IMAGES + "/3001 brick 2x4 000L.png",
            "the image folder is empty"))
    if limit is not None:
        files = files[:limit]
    bricks = [brick_of(f) for f in files]
    class_names = tuple(sorted(set(bricks)))
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[b] for b in bricks], dtype=np.int64)

    cached = cache_dir() / f"lego-{_cache_key(files, image_size)}.npy"
    if use_cache and cached.exists():
        images = np.load(cached)
        if images.shape[0] == len(files):
            return LegoBricks(images, labels, class_names, files)
    decoded = [_decode(f, image_size) for f in files]
    shapes = {d.shape for d in decoded}
    if len(shapes) != 1:
        raise DataError(f"LEGO renders in {folder} have different sizes "
                        f"{sorted(shapes)[:3]}; pass image_size= to resize")
    images = np.stack(decoded)
    if use_cache:
        fd, tmp = tempfile.mkstemp(prefix=".lego-", suffix=".npy",
                                   dir=cached.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                np.save(out, images)
            os.replace(tmp, cached)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return LegoBricks(images, labels, class_names, files)
