"""Time the book on this machine and write benchmarks/results.md.

    python benchmarks/book_timings.py            # build from cache + every chapter's smoke run
    python benchmarks/book_timings.py --no-smoke # build only

Measured: the HTML build from the committed cache (from a copy of it, in a temporary
folder), each chapter's end-to-end smoke execution (jupytext + nbclient, as the tests do),
and each chapter's `cpu` execution time as recorded in the committed cache when it was executed.
Budgets (DESIGN.md §3): smoke <= 90 s per chapter, cpu <= 20 min for the heaviest chapters
(15 for the others), build from cache <= 3 min.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import book  # noqa: E402

BUDGET = {"smoke": 90, "cpu": 20 * 60, "build": 180}


def time_build() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / ".jupyter_cache", Path(tmp) / "cache")
        env = dict(os.environ, GDL_BOOK_CACHE=str(Path(tmp) / "cache"))
        start = time.time()
        subprocess.run([shutil.which("jupyter-book"), "build", str(ROOT), "--path-output", tmp],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        return time.time() - start


def time_smoke(chapter: Path) -> float:
    import jupytext
    import nbclient

    os.environ["GDL_PROFILE"] = "smoke"
    nb = jupytext.read(chapter)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": tmp}}).execute()
        return time.time() - start


def cached_cpu_seconds(chapter: Path) -> float | None:
    cache = book.get_cache()
    try:
        record = cache.match_cache_notebook(book.read_notebook(chapter))
    except KeyError:
        return None
    return record.data.get("execution_seconds")


def cpu_name() -> str:
    from gdl.config import _cpu_name

    return f"{_cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-smoke", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("GDL_DATA_DIR", str(ROOT.parent / "shared" / "data"))

    rows = []
    for chapter in book.chapters():
        smoke = None if args.no_smoke else time_smoke(chapter)
        rows.append((chapter.stem, smoke, cached_cpu_seconds(chapter)))
        print(rows[-1], flush=True)
    build = time_build()

    def fmt(value, budget):
        if value is None:
            return "–"
        return f"{value:.0f} s" + ("" if value <= budget else " **over budget**")

    lines = [
        "# Book timings",
        "",
        f"Machine: {cpu_name()}. Date: {dt.date.today().isoformat()}.",
        "Command: `python benchmarks/book_timings.py` (GDL_DATA_DIR: the shared data copy).",
        "",
        f"HTML build from the committed cache: **{build:.0f} s** (budget {BUDGET['build']} s).",
        "",
        f"| chapter | smoke run (budget {BUDGET['smoke']} s) | cpu run, as cached "
        f"(budget {BUDGET['cpu']} s) |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {fmt(s, BUDGET['smoke'])} | {fmt(c, BUDGET['cpu'])} |" for name, s, c in rows]
    lines += ["", "Smoke runs include kernel start-up and imports; timings on this 2-core machine vary by up to 2×."]
    (ROOT / "benchmarks" / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
