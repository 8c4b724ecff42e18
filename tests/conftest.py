"""Shared fixtures: the repo root, the shared data folder, and an isolated data folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from gdl.paths import SHARED_DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

# Tests read the real datasets from GDL_DATA_DIR (CI: ../shared/data).
os.environ.setdefault("GDL_DATA_DIR", str(SHARED_DATA_DIR))
# Absolute, so notebook kernels started in temporary folders find the same data.
os.environ["GDL_DATA_DIR"] = str(Path(os.environ["GDL_DATA_DIR"]).resolve())
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ["GDL_DATA_DIR"])
    if not (path / "mnist").is_dir():
        pytest.fail(f"GDL_DATA_DIR={path} does not hold the book's datasets (see README: Data)")
    return path


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh, empty GDL_DATA_DIR (downloads allowed), for missing/corrupt/download tests."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("GDL_DATA_DIR", str(root))
    monkeypatch.delenv("GDL_OFFLINE", raising=False)
    return root
