"""Live models: the ONNX export matches Keras, the browser runtime is verified before it is kept,
and the widget runs the exported generator in headless Chromium with the same numbers as Keras."""
from __future__ import annotations

import base64
import hashlib
import json
import shutil

import keras
import numpy as np
import pytest

import gdl.live
import gdl.weights
from conftest import ROOT, serve

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the book exports ONNX with the TensorFlow backend (tf2onnx), the backend it builds with")

SMOKE_WEIGHTS = "dcgan_bricks.smoke"   # committed, tiny: the DCGAN of chapter 4's smoke run


def _tiny_generator():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4 * 4 * 2),
                             keras.layers.Reshape((4, 4, 2)),
                             keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same",
                                                          activation="tanh")])


def test_export_onnx_matches_keras(tmp_path):
    import onnxruntime as ort

    model = _tiny_generator()
    z = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    diff = gdl.live.export_onnx(model, tmp_path / "g.onnx", z)
    assert diff < 1e-5
    session = ort.InferenceSession(str(tmp_path / "g.onnx"))
    z2 = np.random.default_rng(2).normal(size=(5, 8)).astype("float32")   # another batch size
    got = session.run(None, {session.get_inputs()[0].name: z2})[0]
    np.testing.assert_allclose(got, np.asarray(model(z2)), atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]   # no temporary file left


def test_export_onnx_rejects_a_mismatch_and_leaves_nothing(tmp_path):
    model = _tiny_generator()
    z = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    with pytest.raises(gdl.live.LiveError, match="differs from Keras"):
        gdl.live.export_onnx(model, tmp_path / "g.onnx", z, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_export_live_from_the_weights_store(tmp_path):
    import onnxruntime as ort

    meta = gdl.live.export_live("dcgan_bricks", tmp_path, weights_name=SMOKE_WEIGHTS)
    record = gdl.weights.record(SMOKE_WEIGHTS)
    assert meta["weights_sha256"] == record["sha256"] and meta["parity_max_abs"] < 1e-4
    assert meta["output_shape"] == [record["settings"]["generator"]["image_size"]] * 2 + [1]
    assert json.loads((tmp_path / "dcgan_bricks.json").read_text()) == meta
    # the file is the store's generator: same images as Keras for the same latent vectors
    live = gdl.live.LIVE_MODELS["dcgan_bricks"]
    model, generator = live.build(record["settings"])
    gdl.weights.load(SMOKE_WEIGHTS, model, record["settings"])
    z = np.random.default_rng(3).normal(size=(2, meta["input_size"])).astype("float32")
    session = ort.InferenceSession(str(tmp_path / "dcgan_bricks.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: z})[0]
    np.testing.assert_allclose(got, np.asarray(generator(z)), atol=1e-4)
    # unchanged weights: not exported again
    stamp = (tmp_path / "dcgan_bricks.onnx").stat().st_mtime_ns
    gdl.live.export_live("dcgan_bricks", tmp_path, weights_name=SMOKE_WEIGHTS)
    assert (tmp_path / "dcgan_bricks.onnx").stat().st_mtime_ns == stamp


def test_runtime_integrity_check():
    published = "sha512-" + base64.b64encode(hashlib.sha512(b"package").digest()).decode()
    assert gdl.live._integrity_ok(b"package", published)
    assert not gdl.live._integrity_ok(b"packagf", published)


def test_missing_runtime_offline_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    with pytest.raises(gdl.live.LiveError, match="registry.npmjs.org.*package/dist"):
        gdl.live.runtime(fetch=False)


@pytest.fixture(scope="module")
def live_page(tmp_path_factory):
    """A page with chapter 4's widget on the smoke DCGAN, laid out as the built book is."""
    from gdl.viz.live import live_generator

    try:
        runtime = gdl.live.runtime()
    except gdl.live.LiveError as exc:
        pytest.skip(f"ONNX Runtime Web unavailable: {exc}")
    site = tmp_path_factory.mktemp("site")
    static = site / "_static"
    meta = gdl.live.export_live("dcgan_bricks", static / "live", weights_name=SMOKE_WEIGHTS)
    shutil.copytree(runtime, static / "ort")
    shutil.copy(ROOT / "book" / "_static" / "live.js", static / "live.js")
    n = 16
    widget = live_generator("dcgan_bricks", np.zeros((n, 32, 32, 1)), caption="test")
    (site / "page.html").write_text(
        "<!doctype html><html><head><link rel='icon' href='data:,'>"
        "<script src='_static/live.js' defer></script></head>"
        f"<body>{widget.data}</body></html>")
    return site, meta


def test_widget_runs_the_generator_in_the_browser(live_page, browser):
    site, meta = live_page
    with serve(site) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        outside, errors = [], []

        def route(r):
            if r.request.url.startswith((url, "data:", "blob:")):
                return r.continue_()
            outside.append(r.request.url)
            return r.abort()

        context.route("**/*", route)
        tab = context.new_page()
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(f"{url}/page.html")
        tab.wait_for_selector("div.gdl-live[data-state=live]", timeout=60_000)
        assert "ms in this browser" in tab.locator(".gdl-live-status").inner_text()
        pixels = "() => window.gdlLive.widgets['dcgan_bricks'].canvas.toDataURL()"
        before = tab.evaluate(pixels)
        tab.locator(".gdl-live-controls input[type=range]").first.fill("3")
        tab.wait_for_function(f"() => ({pixels})() !== {json.dumps(before)}", timeout=10_000)
        # the page's numbers for fixed latent vectors are Keras' numbers
        z = np.random.default_rng(5).normal(size=(2, meta["input_size"])).astype("float32")
        got = tab.evaluate("async z => Array.from(await window.gdlLive.widgets['dcgan_bricks']"
                           ".run(new Float32Array(z), 2))", z.ravel().tolist())
        record = gdl.weights.record(SMOKE_WEIGHTS)
        model, generator = gdl.live.LIVE_MODELS["dcgan_bricks"].build(record["settings"])
        gdl.weights.load(SMOKE_WEIGHTS, model, record["settings"])
        np.testing.assert_allclose(np.array(got).reshape(2, *meta["output_shape"]),
                                   np.asarray(generator(z)), atol=1e-4)
        context.close()
    assert not errors, errors
    assert not outside, outside
