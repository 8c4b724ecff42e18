"""Shared fixtures: the repo root, the shared data folder, and an isolated data folder."""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import sys
import threading
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


# Test modules whose code never reaches Keras (the music loaders and synthesiser, Plotly
# views): the README's second test command runs the suite again under JAX to test what the
# backend changes, so these run once, in the TensorFlow pass, and are deselected under JAX.
# (test_data and test_wine stay in both: the CelebA loader and the wine vectorizer take
# another path on JAX.)
BACKEND_FREE = {"test_music_data.py", "test_viz.py", "test_attention_map.py", "test_car_racing.py"}


def pytest_collection_modifyitems(config, items):
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return
    free = [item for item in items if item.path.name in BACKEND_FREE]
    config.hook.pytest_deselected(items=free)
    items[:] = [item for item in items if item not in free]


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


# --------------------------------------------------------------------------- browser tests
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def serve(folder):
    """Serve `folder` over HTTP on a free local port; yield its address."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium not found: install Debian's `chromium` package (.ci/run does)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def offline_tab(browser, site: str):
    """A new tab that refuses, and records, any request outside the local server `site`, and
    records console errors; returns (context, tab, outside, errors)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside, errors = [], []

    def route(r):
        if r.request.url.startswith((site, "data:", "blob:")):
            return r.continue_()
        outside.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    tab = context.new_page()
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    return context, tab, outside, errors


def live_site(site: Path, name: str, weights: str, widget_html: str) -> dict:
    """site/page.html holding a live widget's HTML, laid out as the built book is: live.js and
    gdl.css in _static, `name` exported there from the weights `weights`, ONNX Runtime Web
    (skips the test where it cannot be had). Returns the export's description."""
    import gdl.live

    try:
        runtime = gdl.live.runtime()
    except gdl.live.LiveError as exc:
        pytest.skip(f"ONNX Runtime Web unavailable: {exc}")
    static = site / "_static"
    meta = gdl.live.export_live(name, static / "live", weights_name=weights)
    shutil.copytree(runtime, static / "ort", dirs_exist_ok=True)
    gdl.live.write_index(static / "live", runtime=True)
    for file in ("live.js", "gdl.css"):
        shutil.copy(ROOT / "book" / "_static" / file, static / file)
    (site / "page.html").write_text(
        "<!doctype html><html><head><link rel='icon' href='data:,'>"
        "<link rel='stylesheet' href='_static/gdl.css'>"
        f"<script src='_static/live.js' defer></script></head><body>{widget_html}</body></html>")
    return meta
