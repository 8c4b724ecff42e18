"""Fetch the book's Kaggle datasets with `kagglehub`, into ``GDL_DATA_DIR`` as the loaders read them.

CelebA, the LEGO renders and the wine reviews have no direct download. Where `kagglehub` is
installed (Colab has it) and the network is there, this puts each into the folder its loader
reads, as a link to kagglehub's own copy, so nothing is copied twice::

    python -m gdl.data.kaggle celeba-dataset wine-reviews     # by folder
    python -m gdl.data.kaggle --loaders celeba lego_bricks    # by the loaders a page calls

The manual way (download from Kaggle, unzip into ``GDL_DATA_DIR/<folder>``) still works and is
what each loader's error message describes. The loaders check the files as they read them.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gdl.data.fetch import DataError, Source, data_dir, downloads_allowed
from gdl.data.images import CELEBA, CELEBA_ATTRIBUTES
from gdl.data.lego import LEGO, LEGO_IMAGES
from gdl.data.text import EPIRECIPES, EPIRECIPES_JSON, WINE_REVIEWS, WINE_REVIEWS_JSON

# folder -> (the dataset, a path inside it that shows the layout is the expected one)
DATASETS: dict[str, tuple[Source, str]] = {
    CELEBA.folder: (CELEBA, CELEBA_ATTRIBUTES),
    LEGO.folder: (LEGO, LEGO_IMAGES),
    WINE_REVIEWS.folder: (WINE_REVIEWS, WINE_REVIEWS_JSON),
    EPIRECIPES.folder: (EPIRECIPES, EPIRECIPES_JSON),
}
# the gdl loaders (and helpers) that read them: a page calling one needs that folder
LOADERS: dict[str, str] = {
    "celeba": CELEBA.folder,
    "lego_bricks": LEGO.folder,
    "wine_reviews": WINE_REVIEWS.folder,
    "wine_corpus": WINE_REVIEWS.folder,
    "epirecipes": EPIRECIPES.folder,
}


def slug(source: Source) -> str:
    """'owner/dataset' from the dataset's Kaggle page."""
    return source.origin.rstrip("/").split("/datasets/", 1)[1]


def _kagglehub():
    try:
        import kagglehub
    except ImportError:
        return None
    return kagglehub


def fetch(folder: str) -> Path:
    """``GDL_DATA_DIR/folder``, fetched with kagglehub unless it is already there; the path."""
    if folder not in DATASETS:
        raise DataError(f"{folder!r} is not one of the book's Kaggle datasets: {', '.join(DATASETS)}.")
    source, marker = DATASETS[folder]
    target = data_dir() / folder
    if (target / marker).exists():
        return target
    manual = (f"{source.how}\nThe folder: {target}" if source.how else f"Put it in {target}.")
    if not downloads_allowed():
        raise DataError(f"{source.name}: not fetched, downloads are off (GDL_OFFLINE is set). {manual}")
    hub = _kagglehub()
    if hub is None:
        raise DataError(f"{source.name}: fetching it needs kagglehub (`pip install kagglehub`). {manual}")
    try:
        got = Path(hub.dataset_download(slug(source)))
    except Exception as exc:   # kagglehub raises its own errors for the network and for credentials
        raise DataError(
            f"{source.name}: kagglehub could not fetch {slug(source)} ({type(exc).__name__}: {exc}). "
            "If it asks for credentials, set KAGGLE_USERNAME and KAGGLE_KEY (kaggle.com, Settings, "
            f"API) and run this again. {manual}") from exc
    if not (got / marker).exists():
        raise DataError(f"{source.name}: kagglehub's copy in {got} has no {marker}, so its layout is "
                        f"not the one the loader reads. {manual}")
    _place(got, target)
    return target


def _place(got: Path, target: Path) -> None:
    """Make `target` a link to `got`, atomically (a link to a temporary name, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():          # left by an earlier fetch, its copy since removed
        target.unlink()
    elif target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    elif target.exists():
        raise DataError(f"{target} exists but is not the expected layout; move it away and run this "
                        "again, or complete it by hand.")
    temp = target.with_name(f".{target.name}.{os.getpid()}.link")
    temp.unlink(missing_ok=True)
    temp.symlink_to(got.resolve(), target_is_directory=True)
    os.replace(temp, target)


def folders_for(loaders) -> list[str]:
    """The Kaggle folders the named loaders read, in the order of DATASETS."""
    wanted = {LOADERS[name] for name in loaders if name in LOADERS}
    return [folder for folder in DATASETS if folder in wanted]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", help=f"dataset folders: {', '.join(DATASETS)}")
    parser.add_argument("--loaders", nargs="*", default=[],
                        help=f"or the loaders a page calls: {', '.join(LOADERS)}")
    args = parser.parse_args(argv)
    folders = list(dict.fromkeys([*args.folders, *folders_for(args.loaders)]))
    if not folders:
        parser.error("name at least one dataset folder or loader")
    failed = 0
    for folder in folders:
        try:
            print(f"{folder}: {fetch(folder)}")
        except DataError as exc:
            failed += 1
            print(f"{folder}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
