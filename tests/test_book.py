"""The book's structure: every listed page exists, twins match, configuration invariants."""
import json

import yaml

import book
from conftest import ROOT


def test_every_toc_page_exists():
    missing = [str(p.relative_to(ROOT)) for p in book.toc_files() if not p.exists()]
    assert not missing, f"listed in _toc.yml but missing: {missing}"


def test_chapters_are_notebooks_in_book_order():
    names = [p.stem for p in book.chapters()]
    assert names[:2] == ["ch01_generative_modeling", "ch02_deep_learning"]
    assert names == sorted(names)


def test_ipynb_twins_match_their_markdown():
    stale = book.twins(check=True)
    assert not stale, f"out-of-date .ipynb twins (run `make notebooks`): {[p.name for p in stale]}"


def test_twin_opens_with_a_hidden_colab_install_cell():
    for chapter in book.chapters():
        nb = json.loads(chapter.with_suffix(".ipynb").read_text())
        first = nb["cells"][0]
        source = "".join(first["source"])
        assert first["cell_type"] == "code" and "remove-cell" in first["metadata"]["tags"]
        assert 'if "google.colab" in sys.modules' in source
        assert yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"] in source
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_every_chapter_starts_with_a_run_info_cell():
    for chapter in book.chapters():
        nb = book.read_notebook(chapter)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "gdl.run_info(" in first_code.source, chapter.name
        assert "remove-input" in first_code.metadata.get("tags", []), chapter.name


def test_build_configuration_invariants():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert "book/*.ipynb" in config["exclude_patterns"]
    assert {"dollarmath", "amsmath"} <= set(config["parse"]["myst_enable_extensions"])
    assert config["launch_buttons"]["colab_url"] and config["launch_buttons"]["binderhub_url"]
