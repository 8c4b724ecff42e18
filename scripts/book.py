"""Book maintenance: which chapters are stale, execute chapters into the committed cache,
write and check the `.ipynb` twins that Colab opens.

    python scripts/book.py stale                   # list chapters whose cached outputs are stale
    python scripts/book.py execute [ch02 ...]      # execute (stale or named) chapters into the cache
    python scripts/book.py twins [chNN] [--check]  # write (or check) book/*.ipynb from book/*.md

The cache is the one `jupyter-book build` reads (.jupyter_cache at the repo root), and a
chapter is read exactly as myst-nb reads it, so "cached here" means "the build will not execute it".
A cached chapter is still stale when a gdl module it uses changed since it ran: `execute`
records, with the cached outputs, a hash of each gdl module the chapter imports (directly or
through other gdl modules), and `stale` compares those with the modules as they are now. So a new
module for chapter 9 does not make chapter 3's outputs stale, while an edit of gdl.models.base
does. (The run-info line's "src" hash covers the whole package; it tells a reader which source
made the outputs, and is the check for chapters executed before the per-module record existed.)
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import re
import sys
import time
from pathlib import Path

import yaml

from gdl.config import profile, source_hash

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
CACHE = ROOT / ".jupyter_cache"
COLAB_MARKER = "# Colab only"
# How the run-info line names the gdl source it ran with: "gdl 0.1.0 (src 1a2b3c4d5e)".
SOURCE_HASH = re.compile(r"\bgdl \S+ \(src ([0-9a-f]+)\)")


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files() -> list[Path]:
    """Every page listed in _toc.yml, in book order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return [ROOT / (f if f.endswith(".md") else f + ".md") for f in found]


def chapters() -> list[Path]:
    """The pages that are notebooks (MyST markdown with a kernelspec), in book order."""
    from myst_nb.core.read import is_myst_markdown_notebook

    return [p for p in toc_files() if p.exists() and is_myst_markdown_notebook(p.read_text())]


def resolve(names: list[str]) -> list[Path]:
    all_chapters = chapters()
    out = []
    for name in names:
        matches = [p for p in all_chapters if p.stem == name or p.stem.startswith(name + "_") or p.name == name]
        if len(matches) != 1:
            raise SystemExit(f"no single chapter matches {name!r}; chapters: {', '.join(p.stem for p in all_chapters)}")
        out.append(matches[0])
    return out


def read_notebook(path: Path):
    """The notebook myst-nb builds from a MyST markdown chapter (what the cache is keyed on)."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    md_config = MdParserConfig(enable_extensions=set(config()["parse"]["myst_enable_extensions"]))
    return read_myst_markdown_notebook(path.read_text(), md_config, add_source_map=True, path=str(path))


def get_cache():
    from jupyter_cache import get_cache as _get

    return _get(str(CACHE))


def cached_notebook(record, cache=None):
    """The executed notebook of a cache record, read without touching the cache's database
    (`get_cache_bundle` would write an access time into the committed global.db)."""
    import nbformat

    cache = cache or get_cache()
    path = cache._get_notebook_path_cache(record.hashkey, raise_on_missing=True)
    return nbformat.reads(path.read_text(encoding="utf8"), nbformat.NO_CONVERT)


def recorded_source_hash(nb) -> str | None:
    """The gdl source hash in an executed chapter's run-info line (its first code cell's output)."""
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    for output in first.get("outputs", []) if first is not None else []:
        text = output.get("text") or output.get("data", {}).get("text/plain", "")
        found = SOURCE_HASH.search("".join(text))
        if found:
            return found.group(1)
    return None


# --------------------------------------------------------------------------- gdl modules used
def _module_file(name: str) -> Path | None:
    """src/gdl/a/b.py or src/gdl/a/b/__init__.py for "gdl.a.b"; None for anything else."""
    if name.split(".")[0] != "gdl":
        return None
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(code: str, package: str = "") -> set[str]:
    """Names of the modules `code` imports, as written (`from gdl.models import gan` gives
    gdl.models and gdl.models.gan), relative imports resolved against `package`. Imports inside
    functions count: a lazy import is a dependency too."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(parent + ([module] if module else []))
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def _code_cells(nb) -> str:
    """The Python of a notebook's code cells, IPython magics and shell lines left out."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        cells.append("\n".join(lines))
    return "\n".join(cells)


def gdl_sources(nb) -> dict[str, str]:
    """{path under src/: 10 hex digits of SHA-256} of every gdl module the notebook's code
    imports, with the modules those import and the packages (__init__.py) above them."""
    todo, files = list(_imported(_code_cells(nb))), {}
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):   # importing gdl.a.b runs gdl/__init__ and gdl/a/__init__
            path = _module_file(".".join(parts[:i]))
            if path is None or path in files.values():
                continue
            key = path.relative_to(SRC).as_posix()
            files[key] = path
            package = ".".join(parts[:i]) if path.name == "__init__.py" else ".".join(parts[:i - 1])
            todo.extend(_imported(path.read_text(), package))
    return {key: hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            for key, path in sorted(files.items())}


# Whether a change of the gdl modules a chapter uses makes it stale for the build test (and for
# `book.py stale`, which reports it either way).
ENFORCE_SOURCE_HASH = True


def stale_reason(path: Path, cache=None, current: str | None = None,
                 source: bool = True) -> str | None:
    """Why the build (or the book's test) would not accept a chapter's cached outputs, or None.
    With `source=False` only a change of the chapter's own code counts."""
    cache = cache or get_cache()
    nb = read_notebook(path)
    try:
        record = cache.match_cache_notebook(nb)
    except KeyError:
        return "its code changed since it was executed"
    if not source:
        return None
    recorded = (getattr(record, "data", None) or {}).get("gdl_sources")
    if recorded is None:   # executed before the per-module record: the package-wide hash
        current = current or source_hash()
        ran = recorded_source_hash(cached_notebook(record, cache))
        if ran != current:
            return f"it ran with gdl source {ran or '(not recorded)'}, the source is now {current}"
        return None
    now = gdl_sources(nb)
    changed = sorted(k for k in set(now) | set(recorded) if now.get(k) != recorded.get(k))
    if changed:
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        return f"gdl modules it uses changed since it ran: {shown}"
    return None


def stale_reasons(paths=None, source: bool = True) -> dict[Path, str]:
    """The stale chapters and why: code changed, or (with `source`) the gdl source changed
    since they ran."""
    cache, current = get_cache(), source_hash()
    reasons = {p: stale_reason(p, cache, current, source) for p in (paths or chapters())}
    return {p: why for p, why in reasons.items() if why}


def stale(paths=None) -> list[Path]:
    return list(stale_reasons(paths))


def execute(paths: list[Path], timeout: int | None = None) -> None:
    """Execute chapters as the build does and store the outputs in the committed cache."""
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    cache = get_cache()
    timeout = timeout or int(config()["execute"].get("timeout", 1800))
    for path in paths:
        print(f"executing {path.relative_to(ROOT)} (GDL_PROFILE={profile()}) ...", flush=True)
        nb = read_notebook(path)
        sources = gdl_sources(nb)   # the modules as they are when it runs
        record = cache.add_nb_to_project(str(path), read_data={"name": "myst_nb_md", "type": "plugin"})
        start = time.time()
        result = single_nb_execution(nb, cwd=str(path.parent), timeout=timeout, allow_errors=False,
                                     meta_override=True)
        if result.err is not None:
            print(result.exc_string, file=sys.stderr)
            raise SystemExit(f"{path.name} failed after {time.time() - start:.0f} s; the cache was not changed")
        data = {"execution_seconds": result.time, "gdl_sources": sources}
        cache.cache_notebook_bundle(CacheBundleIn(nb, record.uri, data=data),
                                    check_validity=False, overwrite=True)
        print(f"  done in {result.time:.0f} s", flush=True)
    prune()


def prune() -> None:
    """Drop cached notebooks that no current chapter matches, so the committed cache stays small."""
    cache = get_cache()
    keep = set()
    for path in chapters():
        try:
            keep.add(cache.match_cache_notebook(read_notebook(path)).pk)
        except KeyError:
            pass
    for record in cache.list_cache_records():
        if record.pk not in keep:
            cache.remove_cache(record.pk)
    listed = {str(p) for p in chapters()}
    for record in cache.list_project_records():
        if record.uri not in listed:
            cache.remove_nb_from_project(record.pk)


def cached_metrics(stem: str, keys, title: str, command: str) -> str:
    """A markdown report of the stdout lines containing any of `keys` in a chapter's cached run."""
    path = resolve([stem])[0]
    cache = get_cache()
    record = cache.match_cache_notebook(read_notebook(path))
    texts = [o["text"] for c in cached_notebook(record, cache).cells for o in c.get("outputs", [])
             if o.get("output_type") == "stream" and o.get("name") == "stdout"]
    keep = [t.rstrip("\n") for t in texts if any(k in t for k in keys)]
    seconds = record.data.get("execution_seconds") or 0
    return "\n".join([
        f"# {title}", "",
        f"Copied by `{command}` from the outputs of the committed execution cache "
        f"(what the book shows); the whole chapter ran in {seconds:.0f} s.", "",
        "```text", *keep, "```", ""])


def cached_glue(stem: str) -> dict[str, str]:
    """The values a chapter's cached run handed to its prose with myst-nb's ``glue``, as text."""
    path = resolve([stem])[0]
    cache = get_cache()
    record = cache.match_cache_notebook(read_notebook(path))
    values = {}
    for cell in cached_notebook(record, cache).cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = out.get("data", {})
                text = data.get("application/papermill.record/text/plain",
                                data.get("text/plain", ""))
                values[name] = str(text).strip("'\"")
    return values


# --------------------------------------------------------------------------- .ipynb twins
def kaggle_folders(nb) -> list[str]:
    """The Kaggle dataset folders a chapter notebook's code reads (the gdl loaders it calls)."""
    from gdl.data.kaggle import LOADERS, folders_for

    code = _code_cells(nb)
    return folders_for(name for name in LOADERS if re.search(rf"\b{name}\(", code))


def colab_cell_source(folders=()) -> str:
    """The twin's first cell: in Colab, install gdl, and fetch the chapter's Kaggle `folders`."""
    url = config()["repository"]["url"].rstrip("/")
    fetch = (f"\n    !python -m gdl.data.kaggle {' '.join(folders)}   # kagglehub, into GDL_DATA_DIR"
             if folders else "")
    return (
        f"{COLAB_MARKER}: install this book's package (gdl) and what the chapters need.\n"
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "gdl[colab] @ git+{url}.git"' + fetch
    )


_LITERALINCLUDE = re.compile(r"```\{literalinclude\}[ \t]+(?P<file>\S+)[ \t]*\n(?P<options>(?::[\w-]+:.*\n)*)```")


def included_source(chapter: Path, file: str, options: dict[str, str]) -> str:
    """The lines a ``{literalinclude}`` shows: a whole file, or its ``:pyobject:`` (found as Sphinx
    finds it), cut at ``:end-before:`` or after ``:start-after:``."""
    from sphinx.pycode import ModuleAnalyzer

    source = (chapter.parent / file).resolve()
    lines = source.read_text().splitlines()
    if "pyobject" in options:
        tags = ModuleAnalyzer.for_file(str(source), "").find_tags()
        if options["pyobject"] not in tags:
            raise ValueError(f"{chapter.name}: {file} has no {options['pyobject']}")
        _, start, end = tags[options["pyobject"]]
        lines = lines[start - 1:end - 1]
    if "start-after" in options:
        at = next(i for i, line in enumerate(lines) if options["start-after"] in line)
        lines = lines[at + 1:]
    if "end-before" in options:
        lines = lines[:next(i for i, line in enumerate(lines) if options["end-before"] in line)]
    unknown = set(options) - {"pyobject", "start-after", "end-before", "language", "caption"}
    if unknown:
        raise ValueError(f"{chapter.name}: literalinclude options not handled in twins: {unknown}")
    return "\n".join(lines).rstrip()


def _inline_includes(chapter: Path, markdown: str) -> str:
    """Markdown with each ``{literalinclude}`` replaced by the code it shows, as a Python block:
    Jupyter and Colab do not know the directive and would show it as text."""
    def replace(match):
        options = dict(re.findall(r"^:([\w-]+):[ \t]*(.*)$", match["options"], re.M))
        path = (chapter.parent / match["file"]).resolve().relative_to(ROOT).as_posix()
        name = f" ({options['pyobject']})" if "pyobject" in options else ""
        return (f"```python\n# {path}{name}\n"
                f"{included_source(chapter, match['file'], options)}\n```")

    return _LITERALINCLUDE.sub(replace, markdown)


def twin_text(path: Path) -> str:
    """The .ipynb twin of a chapter: its cells (no outputs), after a hidden Colab set-up cell;
    included package code appears as code blocks."""
    import jupytext
    import nbformat

    nb = jupytext.reads(path.read_text(), fmt="md:myst")
    for c in nb.cells:
        if c.cell_type == "markdown" and "{literalinclude}" in c.source:
            c.source = _inline_includes(path, c.source)
    cell = nbformat.v4.new_code_cell(colab_cell_source(kaggle_folders(nb)),
                                  metadata={"tags": ["remove-cell"]})
    nb.cells.insert(0, cell)
    for i, c in enumerate(nb.cells):  # stable ids, so the twin only changes when the chapter does
        c["id"] = f"cell-{i}"
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata.pop("jupytext", None)
    nb.metadata.setdefault("colab", {"provenance": []})
    return jupytext.writes(nb, fmt="ipynb")


def twins(check: bool = False, paths: list[Path] | None = None) -> list[Path]:
    """Write the twins of `paths` (default: every chapter), or with check return those that differ."""
    bad = []
    for path in chapters() if paths is None else paths:
        twin = path.with_suffix(".ipynb")
        text = twin_text(path)
        if check:
            if not twin.exists() or twin.read_text() != text:
                bad.append(twin)
        elif not twin.exists() or twin.read_text() != text:
            twin.write_text(text)
            print(f"wrote {twin.relative_to(ROOT)}")
    return bad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("stale")
    ex = sub.add_parser("execute")
    ex.add_argument("chapters", nargs="*", help="chapter stems or prefixes (ch02); default: the stale ones")
    ex.add_argument("--all", action="store_true", help="execute every chapter, stale or not")
    tw = sub.add_parser("twins")
    tw.add_argument("chapters", nargs="*", help="chapter stems or prefixes (ch02); default: all")
    tw.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    if args.cmd == "stale":
        reasons = stale_reasons()
        for p, why in reasons.items():
            print(f"{p.relative_to(ROOT)}: {why}")
        return 1 if reasons else 0
    if args.cmd == "execute":
        paths = resolve(args.chapters) if args.chapters else (chapters() if args.all else stale())
        if not paths:
            print("every chapter's cached outputs are up to date")
        execute(paths)
        return 0
    if args.cmd == "twins":
        bad = twins(check=args.check, paths=resolve(args.chapters) if args.chapters else None)
        for p in bad:
            print(f"out of date: {p.relative_to(ROOT)} (run `make notebooks`)")
        return 1 if bad else 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
