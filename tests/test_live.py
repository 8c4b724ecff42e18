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
DIFFUSION_SMOKE = "diffusion_flowers.smoke"   # committed, tiny: chapter 8's U-Net, 30 steps
# Browser vs Keras for DDIM samples: float32 through several U-Net calls, each step dividing by
# a signal rate down to 0.02 (seen: about 1e-5).
DDIM_TOLERANCE = 1e-3


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


def _diffusion_model(weights=DIFFUSION_SMOKE):
    record = gdl.weights.record(weights)
    model, unet = gdl.live.LIVE_MODELS["diffusion_flowers"].build(record["settings"])
    gdl.weights.load(weights, model, record["settings"])
    return record, model, unet


def test_export_live_diffusion_unet(tmp_path):
    """The EMA U-Net with its two inputs, and what the page's DDIM sampler needs besides."""
    import onnxruntime as ort

    from gdl.models.diffusion import offset_cosine_schedule

    meta = gdl.live.export_live("diffusion_flowers", tmp_path, weights_name=DIFFUSION_SMOKE)
    record, model, unet = _diffusion_model()
    assert meta["kind"] == "ddim" and meta["parity_max_abs"] < 1e-4
    assert meta["image_shape"] == meta["output_shape"] == [32, 32, 3]
    assert meta["input_size"] == 32 * 32 * 3
    assert meta["mean"] == record["settings"]["mean"] and meta["std"] == record["settings"]["std"]
    assert meta["schedule"] == {"name": "offset cosine", "max_signal": 0.95, "min_signal": 0.02}
    signal, _ = offset_cosine_schedule(np.array([0.0, 1.0], "float32"))   # the same schedule
    np.testing.assert_allclose(np.asarray(signal), [0.95, 0.02], rtol=1e-5)
    assert json.loads((tmp_path / "diffusion_flowers.json").read_text()) == meta
    # the file is the store's EMA network: same noise estimates as Keras, inputs by name
    session = ort.InferenceSession(str(tmp_path / "diffusion_flowers.onnx"))
    assert [i.name for i in session.get_inputs()] == meta["inputs"]
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 32, 32, 3)).astype("float32")
    variance = rng.uniform(0.1, 0.99, size=(3, 1, 1, 1)).astype("float32")
    got = session.run(None, dict(zip(meta["inputs"], [x, variance])))[0]
    expected = np.asarray(unet([x, variance], training=False))
    assert np.abs(expected).max() > 1e-2        # its last layer starts at zero: trained
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(got, np.asarray(model.predict_noise(x, None, np.sqrt(variance))),
                               atol=1e-4)      # the network generate() samples with


def test_live_widgets_check_the_kind():
    from gdl.viz.live import live_diffusion, live_generator

    with pytest.raises(ValueError, match="live_diffusion"):
        live_generator("diffusion_flowers", np.zeros((8, 32, 32, 3)))
    with pytest.raises(ValueError, match="live_generator"):
        live_diffusion("dcgan_bricks", np.zeros((8, 32, 32, 1)))
    with pytest.raises(ValueError, match="1 to 20"):
        live_diffusion("diffusion_flowers", np.zeros((8, 32, 32, 3)), steps=25)
    html = live_diffusion("diffusion_flowers", np.zeros((8, 32, 32, 3)), ncols=4, steps=5).data
    assert "&quot;steps&quot;: 5" in html and "&quot;ncols&quot;: 4" in html


def test_runtime_integrity_check():
    published = "sha512-" + base64.b64encode(hashlib.sha512(b"package").digest()).decode()
    assert gdl.live._integrity_ok(b"package", published)
    assert not gdl.live._integrity_ok(b"packagf", published)


def test_missing_runtime_offline_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    with pytest.raises(gdl.live.LiveError, match="registry.npmjs.org.*package/dist"):
        gdl.live.runtime(fetch=False)


def make_site(site, name, weights, widget):
    """A page holding `widget` (the cell's HTML object), laid out as the built book is, with
    `name` exported from `weights`; returns the export's description."""
    try:
        runtime = gdl.live.runtime()
    except gdl.live.LiveError as exc:
        pytest.skip(f"ONNX Runtime Web unavailable: {exc}")
    static = site / "_static"
    meta = gdl.live.export_live(name, static / "live", weights_name=weights)
    shutil.copytree(runtime, static / "ort", dirs_exist_ok=True)
    gdl.live.write_index(static / "live", runtime=True)
    shutil.copy(ROOT / "book" / "_static" / "live.js", static / "live.js")
    shutil.copy(ROOT / "book" / "_static" / "gdl.css", static / "gdl.css")
    (site / "page.html").write_text(
        "<!doctype html><html><head><link rel='icon' href='data:,'>"
        "<link rel='stylesheet' href='_static/gdl.css'>"
        "<script src='_static/live.js' defer></script></head>"
        f"<body>{widget.data}</body></html>")
    return meta


@pytest.fixture(scope="module")
def live_page(tmp_path_factory):
    """A page with chapter 4's widget on the smoke DCGAN, laid out as the built book is."""
    from gdl.viz.live import live_generator

    site = tmp_path_factory.mktemp("site")
    n = 16
    widget = live_generator("dcgan_bricks", np.zeros((n, 32, 32, 1)), caption="test")
    return site, make_site(site, "dcgan_bricks", SMOKE_WEIGHTS, widget)


def open_page(browser, url):
    """A tab on url/page.html that refuses (and lists) requests outside the local server, and
    lists console errors; returns (context, tab, outside, errors)."""
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
    return context, tab, outside, errors


def test_widget_runs_the_generator_in_the_browser(live_page, browser):
    site, meta = live_page
    with serve(site) as url:
        context, tab, outside, errors = open_page(browser, url)
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


@pytest.fixture(scope="module")
def diffusion_page(tmp_path_factory):
    """A page with a DDIM widget on chapter 8's smoke U-Net (8 samples, 4 steps at first)."""
    from gdl.viz.live import live_diffusion

    site = tmp_path_factory.mktemp("site")
    widget = live_diffusion("diffusion_flowers", np.zeros((8, 32, 32, 3)), ncols=8, steps=4,
                            caption="test")
    return site, make_site(site, "diffusion_flowers", DIFFUSION_SMOKE, widget)


def test_ddim_widget_samples_as_keras_does(diffusion_page, browser):
    site, meta = diffusion_page
    with serve(site) as url:
        context, tab, outside, errors = open_page(browser, url)
        status = tab.locator(".gdl-live-status").inner_text()
        assert "8 samples in 4 DDIM steps" in status and "ms in this browser" in status
        pixels = "() => window.gdlLive.widgets['diffusion_flowers'].canvas.toDataURL()"
        strip = "() => window.gdlLive.widgets['diffusion_flowers'].trajectory.toDataURL()"
        before, strip_before = tab.evaluate(pixels), tab.evaluate(strip)
        tab.locator(".gdl-live-controls input[type=range]").fill("3")
        tab.wait_for_function(f"() => ({pixels})() !== {json.dumps(before)}", timeout=30_000)
        tab.wait_for_function("() => document.querySelector('.gdl-live-status').innerText"
                              ".includes('in 3 DDIM steps')", timeout=30_000)
        assert tab.locator(".gdl-live-controls output").inner_text() == "3"
        assert tab.evaluate(strip) != strip_before     # the step-by-step strip redrawn
        # the page's DDIM from fixed noise gives Keras' images (DiffusionModel.generate)
        noise = np.random.default_rng(6).normal(size=(2, 32, 32, 3)).astype("float32")
        got = tab.evaluate("async x => Array.from(await window.gdlLive.widgets"
                           "['diffusion_flowers'].sample(new Float32Array(x), 2, 3))",
                           noise.ravel().tolist())
        context.close()
    _, model, _ = _diffusion_model()
    expected = np.asarray(model.generate(initial_noise=noise, steps=3))
    got = np.array(got, "float32").reshape(expected.shape)
    diff = np.abs(got - expected).max()
    print(f"DDIM, 2 samples x 3 steps: max |browser - Keras| = {diff:.2e}")
    assert diff < DDIM_TOLERANCE, diff
    assert 0.0 <= got.min() and got.max() <= 1.0 and got.std() > 1e-2   # images, not a constant
    assert not errors, errors
    assert not outside, outside
