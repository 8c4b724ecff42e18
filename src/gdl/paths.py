"""Where the book's files live, and the error raised when data is not there.

The ground floor of `gdl`: it imports nothing from the package, so every module
(loaders, metrics, weights) can use it without pulling in the others.
"""
from __future__ import annotations

import os
from pathlib import Path

# Where the datasets are when GDL_DATA_DIR is not set.
DEFAULT_DATA_DIR = Path.home() / "gdl-data"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "gdl"
# The project's own copy of the datasets, next to the repository (../shared/data):
# tests, CI and benchmarks point GDL_DATA_DIR at it. Only a checkout has it.
SHARED_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


class DataError(RuntimeError):
    """Data is missing, cannot be downloaded, or fails verification; the message says the fix."""


def data_dir() -> Path:
    """Root of the datasets: ``GDL_DATA_DIR``, else ``~/gdl-data``."""
    return Path(os.environ.get("GDL_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()


def cache_dir() -> Path:
    """Writable folder for derived data (resized arrays, tokenised text): ``GDL_CACHE_DIR``."""
    path = Path(os.environ.get("GDL_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def downloads_allowed() -> bool:
    """Downloads are on unless ``GDL_OFFLINE=1``."""
    return os.environ.get("GDL_OFFLINE", "").strip().lower() not in ("1", "true", "yes")
