"""The book's structure: every listed page exists, twins match, configuration invariants."""
import json
import re

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


def test_colab_cell_fetches_the_kaggle_datasets_a_chapter_reads():
    fetched = {}
    for chapter in book.chapters():
        first = "".join(json.loads(chapter.with_suffix(".ipynb").read_text())["cells"][0]["source"])
        line = [ln for ln in first.splitlines() if "gdl.data.kaggle" in ln]
        fetched[chapter.name[:4]] = line[0].split("gdl.data.kaggle")[1].split("#")[0].split() if line else []
        if line:   # inside the Colab branch, after the install
            assert line[0].startswith("    !python -m gdl.data.kaggle ")
    assert fetched["ch04"] == ["celeba-dataset", "lego-brick-images"]
    assert fetched["ch09"] == ["wine-reviews"] and fetched["ch03"] == ["celeba-dataset"]
    assert fetched["ch01"] == [] and fetched["ch08"] == []     # no Kaggle data (flowers: direct)


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


def _executed(*outputs):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"),
                nbformat.v4.new_code_cell("gdl.run_info();", outputs=list(outputs)),
                nbformat.v4.new_code_cell("print('gdl 0.1.0 (src ffffffffff)')")]
    return nb


def test_stale_check_reads_the_source_hash_of_the_run_info_line():
    import nbformat

    line = ("profile=cpu · backend=tensorflow · CPU: x (2 cores) · Keras 3.15.1 · "
            "gdl 0.1.0 (src 1a2b3c4d5e) · seed=42 · date=2026-12-01\n")
    stderr = nbformat.v4.new_output("stream", name="stderr", text="WARNING: All log messages ...\n")
    nb = _executed(stderr, nbformat.v4.new_output("stream", name="stdout", text=line))
    assert book.recorded_source_hash(nb) == "1a2b3c4d5e"
    # a line written before the hash was recorded, or no run-info output at all: unknown
    old = line.replace(" (src 1a2b3c4d5e)", "")
    assert book.recorded_source_hash(_executed(nbformat.v4.new_output("stream", name="stdout", text=old))) is None
    assert book.recorded_source_hash(_executed()) is None


def test_run_info_line_and_stale_check_agree_on_the_format(monkeypatch):
    import nbformat

    from gdl import config

    monkeypatch.setenv("GDL_PROFILE", "smoke")
    line = config.run_info(display=False)
    nb = _executed(nbformat.v4.new_output("stream", name="stdout", text=line + "\n"))
    assert book.recorded_source_hash(nb) == config.source_hash()


def test_a_cached_chapter_that_ran_with_other_gdl_source_is_stale(monkeypatch):
    import nbformat

    class Cache:  # the jupyter cache, reduced to what the stale check asks of it
        def match_cache_notebook(self, nb):
            return "record"

    def ran_with(src):
        text = f"profile=cpu · gdl 0.1.0 (src {src}) · seed=42\n"
        nb = _executed(nbformat.v4.new_output("stream", name="stdout", text=text))
        monkeypatch.setattr(book, "cached_notebook", lambda record, cache=None: nb)

    chapter = book.chapters()[0]
    ran_with("1a2b3c4d5e")
    assert book.stale_reason(chapter, Cache(), current="1a2b3c4d5e") is None
    why = book.stale_reason(chapter, Cache(), current="99999aaaaa")
    assert "1a2b3c4d5e" in why and "99999aaaaa" in why


def _notebook(*sources):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    return nb


def test_a_chapter_depends_on_the_gdl_modules_it_imports_and_theirs():
    nb = _notebook("%matplotlib inline\nimport gdl", "from gdl.models import gan\nimport numpy")
    used = book.gdl_sources(nb)
    # gan imports base, which imports backend; importing gdl.models runs its __init__
    assert {"gdl/__init__.py", "gdl/config.py", "gdl/models/__init__.py", "gdl/models/gan.py",
            "gdl/models/base.py", "gdl/backend.py"} <= set(used)
    assert "gdl/models/diffusion.py" not in used and "gdl/metrics.py" not in used
    assert all(len(h) == 10 for h in used.values())
    assert book.gdl_sources(_notebook("import numpy")) == {}


def test_a_change_in_a_module_the_chapter_uses_makes_it_stale_and_others_do_not():
    class Record:
        def __init__(self, sources):
            self.data = {"gdl_sources": sources}

    class Cache:  # the jupyter cache, reduced to what the stale check asks of it
        def __init__(self, sources):
            self.record = Record(sources)

        def match_cache_notebook(self, nb):
            return self.record

    chapter = next(p for p in book.chapters() if p.stem.startswith("ch04"))
    now = book.gdl_sources(book.read_notebook(chapter))
    assert book.stale_reason(chapter, Cache(dict(now))) is None
    edited = dict(now, **{"gdl/models/gan.py": "0000000000"})
    assert "gdl/models/gan.py" in book.stale_reason(chapter, Cache(edited))
    # a module it did not use when it ran (say it imported one more): stale too
    assert "gdl/weights.py" in book.stale_reason(chapter, Cache(dict(now, **{"gdl/weights.py": "1"})))


def test_twins_carry_the_included_code():
    """Jupyter and Colab do not know {literalinclude}: the twin shows the code itself."""
    for chapter in book.chapters():
        text = chapter.read_text()
        twin = "".join("".join(c["source"]) for c in
                       json.loads(chapter.with_suffix(".ipynb").read_text())["cells"])
        assert "{literalinclude}" not in twin, chapter.name
        for match in book._LITERALINCLUDE.finditer(text):
            options = dict(re.findall(r"^:([\w-]+):[ \t]*(.*)$", match["options"], re.M))
            code = book.included_source(chapter, match["file"], options)
            assert code and code in twin, f"{chapter.name}: {match['file']} {options}"


def test_github_workflows_are_valid():
    """The Pages and full-execution workflows validate against GitHub's workflow schema
    (check-jsonschema's vendored copy: no network), and Pages refuses to execute."""
    import shutil
    import subprocess

    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {p.name for p in workflows} >= {"pages.yml", "execute-full.yml"}
    tool = shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is missing: pip install -r requirements.txt"
    proc = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", *map(str, workflows)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    steps = " ".join(str(step.get("run", "")) for step in pages["jobs"]["build"]["steps"])
    assert "scripts/book.py stale" in steps and "Executing notebook" in steps


def test_binder_environment_is_a_subset_of_the_book_requirements():
    """Binder builds from binder/: Python 3.11 and packages the root requirements also pin."""
    def lines(path):
        return [ln.split("#")[0].strip() for ln in path.read_text().splitlines()
                if ln.split("#")[0].strip()]

    def names(path):
        return {re.split(r"[<>=\[ ;]", ln)[0].lower() for ln in lines(path) if ln[0] != "-"}

    binder = ROOT / "binder" / "requirements.txt"
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    assert "-e ." in lines(binder), "Binder must install the book's package (gdl)"
    assert names(binder) <= names(ROOT / "requirements.txt")


def test_every_reference_has_exactly_one_link():
    """arXiv papers by their eprint, the others by DOI or URL: never two links, never none."""
    import pybtex.database

    entries = pybtex.database.parse_file(ROOT / "book" / "references.bib").entries
    links = {key: [f for f in ("eprint", "doi", "url") if f in e.fields]
             for key, e in entries.items()}
    assert {k: v for k, v in links.items() if len(v) != 1} == {}
    for key, e in entries.items():
        if "eprint" in e.fields:
            assert e.fields.get("archivePrefix") == "arXiv", key
            assert re.fullmatch(r"\d{4}\.\d{4,5}", e.fields["eprint"]), key
