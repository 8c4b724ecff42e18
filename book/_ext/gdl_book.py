"""Sphinx glue for the book: pin the execution cache to the repo, ship plotly.js offline, and
export the live generators with the browser runtime that runs them (gdl.live)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sphinx.util import logging

log = logging.getLogger(__name__)


def _configure(app, config):
    root = Path(app.confdir)
    # The committed execution cache lives at the repo root, whatever the build's working folder;
    # GDL_BOOK_CACHE points a build elsewhere (the tests build from a copy, never the original).
    if os.environ.get("GDL_BOOK_CACHE"):
        config.nb_execution_cache_path = os.environ["GDL_BOOK_CACHE"]
    elif not config.nb_execution_cache_path:
        config.nb_execution_cache_path = str(root / ".jupyter_cache")
    elif not Path(config.nb_execution_cache_path).is_absolute():
        config.nb_execution_cache_path = str(root / config.nb_execution_cache_path)

    # plotly.js from the installed plotly package, so it always matches the figures' version.
    import plotly

    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    static = Path(app.outdir).parent / "_gdl_static"
    static.mkdir(parents=True, exist_ok=True)
    if not (static / "plotly.min.js").exists() or (static / "plotly.min.js").stat().st_size != src.stat().st_size:
        shutil.copyfile(src, static / "plotly.min.js")
    config.html_static_path = list(config.html_static_path) + [str(static)]
    scripts = [js if isinstance(js, str) else js[0] for js in config.html_js_files]
    if "plotly.min.js" not in scripts:
        config.html_js_files = list(config.html_js_files) + [("plotly.min.js", {})]
    if "live.js" not in scripts:
        config.html_js_files = list(config.html_js_files) + [("live.js", {"defer": "defer"})]
    _live_files(static / "live", static / "ort")


def _live_files(live: Path, ort: Path) -> None:
    """Export every live generator whose weights are published, and copy in the runtime.

    Neither is required: without them the pages keep the pictures made when they were executed,
    and say why there is no live view (book/_static/live.js). live/index.json tells the pages
    which models and whether the runtime are here, so they never ask for a missing file.
    """
    try:
        import gdl.live
        import gdl.weights
    except ImportError as exc:     # a build without the book's package: no live views
        log.info(f"live views: gdl not importable ({exc}); pages keep their pictures")
        live.mkdir(parents=True, exist_ok=True)
        (live / "index.json").write_text(json.dumps({"models": [], "runtime": False}))
        return
    for name, model in gdl.live.LIVE_MODELS.items():
        try:
            gdl.weights.record(model.weights)
        except gdl.weights.WeightsError:
            log.info(f"live views: no published weights {model.weights!r}; {name} stays a picture")
            continue
        try:
            meta = gdl.live.export_live(name, live)
        except gdl.live.LiveError:
            raise               # an export that differs from Keras must never be published
        log.info(f"live views: {name}.onnx ({meta['onnx_bytes'] / 1e6:.1f} MB, "
                 f"max |ONNX - Keras| {meta['parity_max_abs']:.1e})")
    try:
        folder = gdl.live.runtime()
    except gdl.live.LiveError as exc:
        log.info(f"live views: {exc}")
        folder = None
    else:
        ort.mkdir(parents=True, exist_ok=True)
        for file in gdl.live.ORT_FILES:
            if not (ort / file).exists() or (ort / file).stat().st_size != (folder / file).stat().st_size:
                shutil.copyfile(folder / file, ort / file)
    gdl.live.write_index(live, runtime=folder is not None)


# --------------------------------------------------------------------------- bibliography
def _surname(person) -> str:
    from pybtex.richtext import Text

    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def _first_author(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    return _surname(people[0]) if people else entry.fields.get("organization", entry.key)


def _author_year(entry) -> str:
    """The text the prose cites: "Foster 2023", "Ho et al. 2020", "Kingma and Welling 2014"."""
    people = entry.persons.get("author") or []
    first = _first_author(entry)
    if len(people) == 2:
        first = f"{first} and {_surname(people[1])}"
    elif len(people) > 2:
        first += " et al."
    return f"{first} {entry.fields.get('year', '')}".strip()


def _bibliography(app, config):
    """Cite by author and year in the reference list too, and tell apart two works of the same
    first author and year (2016a, 2016b) in both the list and the text.

    The suffixes go into a copy of the .bib files in the build folder; the sources stay clean.
    """
    import re

    from pybtex.database import parse_file
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.sorting.author_year_title import SortingStyle as AuthorYearTitle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            for entry in sorted_entries:
                yield _author_year(entry)

    class AuthorYearStyle(UnsrtStyle):
        default_sorting_style = "author_year_title"
        default_label_style = AuthorYearLabels

    register_plugin("pybtex.style.formatting", "gdl_author_year", AuthorYearStyle, force=True)
    config.bibtex_default_style = "gdl_author_year"

    root = Path(app.confdir)
    out = Path(app.outdir).parent / "_gdl_bib"
    out.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in config.bibtex_bibfiles:
        source = root / name
        text = source.read_text(encoding="utf-8")
        groups: dict[tuple[str, str], list] = {}
        for entry in parse_file(str(source)).entries.values():
            groups.setdefault((_first_author(entry), entry.fields.get("year", "")), []).append(entry)
        for (_, year), entries in groups.items():
            if len(entries) < 2 or not year:
                continue
            # letters in the order the reference list shows them
            for letter, entry in zip("abcdefghij", AuthorYearTitle().sort(entries)):
                # the year field of this one entry: `year = {2016}` or `year = 2016`
                pattern = re.compile(r"(@\w+\{" + re.escape(entry.key) + r",.*?\byear\s*=\s*[{\"]?)"
                                     + re.escape(year), re.S)
                text, n = pattern.subn(lambda m: m.group(1) + year + letter, text, count=1)
                if n != 1:
                    raise ValueError(f"could not find the year of {entry.key} in {source}")
        copy = out / Path(name).name
        if not copy.exists() or copy.read_text(encoding="utf-8") != text:
            copy.write_text(text, encoding="utf-8")
        copies.append(str(copy))
    config.bibtex_bibfiles = copies


# Scripts a page loads only when its body uses them: plotly.js is 4.8 MB.
_ONLY_WHERE_USED = {"plotly.min.js": "plotly-graph-div", "live.js": "gdl-live"}


def _live_views(app, pagename, templatename, context, doctree):
    """Warn (an error under -W) of a live view whose model the book does not have, or has as
    another kind: the notebooks do not check, so that no chapter depends on gdl.live."""
    body = context.get("body", "")
    if "gdl-live" not in body:
        return
    try:
        import gdl.live
    except ImportError:            # no live views at all in such a build (see _live_files)
        return
    for problem in gdl.live.check_views(body):
        log.warning(problem, location=pagename)


def _page_scripts(app, pagename, templatename, context, doctree):
    # sphinx-thebe's inline config script gets registered twice under Jupyter Book 1.x,
    # which is a "redeclared const" error in the browser console; keep the first copy.
    body = context.get("body", "")
    seen, unique = set(), []
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", str(script)) or ""
        marker = _ONLY_WHERE_USED.get(Path(filename).name)
        if marker and marker not in body:
            continue
        attrs = getattr(script, "attributes", {}) or {}
        key = (filename, tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("config-inited", _configure, priority=900)
    app.connect("config-inited", _bibliography, priority=901)
    app.connect("html-page-context", _live_views)
    app.connect("html-page-context", _page_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
