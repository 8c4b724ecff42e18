"""What the benchmark scripts share: the machine line of each report, and the copy of a
chapter's cached numbers (what the book shows) into benchmarks/<family>_metrics.md."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def machine() -> str:
    """'AMD EPYC (2 cores), Python 3.11.7, Keras 3.15.1 (tensorflow)' or the GPU's name."""
    import keras

    from gdl.config import _cpu_name, device

    where = device()
    if where.startswith("CPU"):
        where = f"{_cpu_name()}, {os.cpu_count()} cores"
    return (f"{where}, Python {platform.python_version()}, Keras "
            f"{keras.__version__} ({keras.backend.backend()})")


def write_cached_metrics(chapter: str, keys, family: str, title: str) -> str:
    """Copy the stdout lines of `chapter`'s cached run that contain any of `keys`."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import book

    report = book.cached_metrics(chapter, keys, title,
                                 f"python benchmarks/{family}.py metrics")
    (HERE / f"{family}_metrics.md").write_text(report)
    print(report)
    return report


def write_cached_metrics_and_glue(chapter: str, keys, family: str, title: str) -> str:
    """`write_cached_metrics`, then the values the chapter's prose quotes (myst-nb glue)."""
    report = write_cached_metrics(chapter, keys, family, title)
    import book   # scripts/book.py, put on sys.path by write_cached_metrics

    rows = [f"| `{k}` | {v} |" for k, v in sorted(book.cached_glue(chapter).items())]
    report += "\nValues the prose quotes (myst-nb glue):\n\n| key | value |\n| --- | --- |\n"
    report += "\n".join(rows) + "\n"
    (HERE / f"{family}_metrics.md").write_text(report)
    print(report)
    return report
