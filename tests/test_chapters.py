"""Every chapter in _toc.yml executes end to end in the smoke profile.

Chapters are converted with jupytext and run with nbclient in a temporary folder; the
committed execution cache is never touched.
"""
import time

import jupytext
import nbclient
import pytest

import book

SMOKE_BUDGET_S = 90  # DESIGN.md: a chapter's smoke run; reported, not asserted (timing is noisy)


@pytest.mark.chapter
@pytest.mark.parametrize("chapter", book.chapters(), ids=lambda p: p.stem)
def test_chapter_executes_in_smoke_profile(chapter, tmp_path, monkeypatch, record_property):
    monkeypatch.setenv("GDL_PROFILE", "smoke")
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path / "cache"))
    nb = jupytext.read(chapter)
    start = time.time()
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{chapter.name} failed in the smoke profile:\n{err}", pytrace=False)
    seconds = time.time() - start
    record_property("smoke_seconds", round(seconds, 1))
    print(f"{chapter.name}: {seconds:.0f} s (budget {SMOKE_BUDGET_S} s)")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
