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
from conftest import live_site, offline_tab, serve

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


def test_halved_weights_change_no_output(tmp_path):
    """Weights that float16 holds exactly are stored as float16 and cast back: half the bytes,
    the same numbers; a weight float16 cannot hold stays float32."""
    import onnx
    import onnxruntime as ort

    model = _tiny_generator()
    dense, conv = model.layers[0], model.layers[2]
    dense.kernel.assign(np.asarray(dense.kernel).astype("float16").astype("float32"))
    conv.kernel.assign(np.asarray(conv.kernel) + 1e-4)      # not float16 numbers
    z = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    gdl.live.export_onnx(model, tmp_path / "half.onnx", z)         # (also calls the model)
    model.export(str(tmp_path / "full.onnx"), format="onnx", verbose=False)
    halved = onnx.load(str(tmp_path / "half.onnx")).graph.initializer
    kinds = {i.name: i.data_type for i in halved}
    assert sum(t == onnx.TensorProto.FLOAT16 for t in kinds.values()) == 1      # the dense kernel
    assert (tmp_path / "half.onnx").stat().st_size < (tmp_path / "full.onnx").stat().st_size
    z2 = np.random.default_rng(3).normal(size=(5, 8)).astype("float32")
    run = {name: ort.InferenceSession(str(tmp_path / name)) for name in ("full.onnx", "half.onnx")}
    outs = [r.run(None, {r.get_inputs()[0].name: z2})[0] for r in run.values()]
    np.testing.assert_array_equal(outs[0], outs[1])


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


@pytest.mark.parametrize("name", ["wgan_faces", "cgan_blond"])
def test_export_live_face_generators(tmp_path, name):
    """Chapter 4's face generators; the conditional one takes its label as a second input,
    which the page mixes between the two classes."""
    import onnxruntime as ort

    weights = f"{name}.smoke"
    meta = gdl.live.export_live(name, tmp_path, weights_name=weights)
    record = gdl.weights.record(weights)
    assert meta["parity_max_abs"] < 1e-4 and meta["output_shape"][-1] == 3
    model, generator = gdl.live.LIVE_MODELS[name].build(record["settings"])
    gdl.weights.load(weights, model, record["settings"])
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"))
    z = np.random.default_rng(4).normal(size=(3, meta["input_size"])).astype("float32")
    if name == "cgan_blond":
        assert meta["label"] == "Blond_Hair" and meta["label_size"] == 2
        labels = np.array([[1, 0], [0.5, 0.5], [0, 1]], "float32")
        got = session.run(None, dict(zip([i.name for i in session.get_inputs()], [z, labels])))
        want = generator([z, labels])
    else:
        assert "label" not in meta
        got, want = session.run(None, {session.get_inputs()[0].name: z}), generator(z)
    np.testing.assert_allclose(got[0], np.asarray(want), atol=1e-4)


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


def test_live_widget_settings():
    from gdl.viz.live import live_diffusion

    with pytest.raises(ValueError, match="1 to 20"):
        live_diffusion("diffusion_flowers", np.zeros((8, 32, 32, 3)), steps=25)
    with pytest.raises(ValueError, match="multiple of ncols"):
        live_diffusion("diffusion_flowers", np.zeros((6, 32, 32, 3)), ncols=4)
    with pytest.raises(ValueError, match="not a live model's name"):
        live_diffusion("diffusion flowers", np.zeros((8, 32, 32, 3)))
    html = live_diffusion("diffusion_flowers", np.zeros((8, 32, 32, 3)), ncols=4, steps=5).data
    assert "&quot;steps&quot;: 5" in html and "&quot;ncols&quot;: 4" in html
    assert "&quot;kind&quot;: &quot;ddim&quot;" in html


def test_the_build_checks_each_live_view_against_the_models():
    from gdl.viz.live import live_diffusion, live_generator, live_writer

    images = np.zeros((8, 32, 32, 3))
    page = (live_generator("dcgan_bricks", images).data
            + live_diffusion("diffusion_flowers", images).data
            + live_writer("gpt_wine", PROMPTS, sample_text="").data)
    assert gdl.live.check_views(page) == []
    wrong = (live_generator("diffusion_flowers", images).data
             + live_writer("dcgan_bricks", PROMPTS, sample_text="").data
             + live_generator("no_such_model", images).data)
    problems = gdl.live.check_views(wrong)
    assert len(problems) == 3
    assert "'diffusion_flowers' asks for kind 'latent-grid'" in problems[0]
    assert "live_diffusion" in problems[0] and "live_generator" in problems[1]
    assert "no such model" in problems[2] and "gpt_wine" in problems[2]


def test_runtime_integrity_check():
    published = "sha512-" + base64.b64encode(hashlib.sha512(b"package").digest()).decode()
    assert gdl.live._integrity_ok(b"package", published)
    assert not gdl.live._integrity_ok(b"packagf", published)


def test_missing_runtime_offline_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    with pytest.raises(gdl.live.LiveError, match="registry.npmjs.org.*package/dist"):
        gdl.live.runtime(fetch=False)


def make_site(site, name, weights, widget):
    return live_site(site, name, weights, widget.data)


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
    context, tab, outside, errors = offline_tab(browser, url)
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


VAE_SMOKE = "vae_fashion.smoke"    # committed, tiny: chapter 3's 2-D VAE after 4 steps
CLASSES = ["a", "b", "c"]


def _plane(**kw):
    from gdl.viz.live_plane import live_plane

    rng = np.random.default_rng(0)
    return live_plane("vae_fashion", np.zeros((16, 32, 32, 1)), rng.normal(size=(300, 2)),
                      rng.integers(0, 3, 300), CLASSES, **kw)


def test_live_plane_settings():
    from gdl.viz.live_plane import live_plane

    html = _plane(extent=(-2, 2), start=(0.5, -1.0)).data
    assert "&quot;kind&quot;: &quot;latent-plane&quot;" in html
    assert "&quot;start&quot;: [0.5, -1.0]" in html and "--swatch: #1f77b4" in html
    with pytest.raises(ValueError, match="square grid"):
        live_plane("vae_fashion", np.zeros((15, 32, 32, 1)), np.zeros((3, 2)), [0, 1, 2], CLASSES)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        live_plane("vae_fashion", np.zeros((16, 32, 32, 1)), np.zeros((3, 3)), [0, 1, 2], CLASSES)
    with pytest.raises(ValueError, match="holding start"):
        _plane(extent=(-2, 2), start=(3.0, 0.0))
    with pytest.raises(ValueError, match="class names"):
        live_plane("vae_fashion", np.zeros((16, 32, 32, 1)), np.zeros((3, 2)), [0, 1, 5], CLASSES)


def test_scatter_raster_puts_points_where_the_plane_says():
    from gdl.viz.live_plane import _scatter_raster

    colours = [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    raster = _scatter_raster(np.array([[-1.5, 1.5], [1.5, -1.5]]), np.array([0, 1]), colours,
                             (-2.0, 2.0), 40)
    # (-1.5, 1.5): the upper left, red; (1.5, -1.5): the lower right, blue
    assert raster[5, 5, 0] > 0.9 and raster[5, 5, 2] < 0.5
    assert raster[35, 35, 2] > 0.9 and raster[35, 35, 0] < 0.5
    assert raster[19, 30].min() < 1.0 and raster[30, 2].min() == 1.0   # the line z[1] = 0; empty


@pytest.fixture(scope="module")
def plane_page(tmp_path_factory):
    """A page with chapter 3's latent plane on the smoke VAE."""
    site = tmp_path_factory.mktemp("site")
    return site, make_site(site, "vae_fashion", VAE_SMOKE, _plane(caption="test"))


def test_plane_widget_decodes_where_the_reader_points(plane_page, browser):
    site, meta = plane_page
    assert meta["kind"] == "latent-plane" and meta["input_size"] == 2
    record = gdl.weights.record(VAE_SMOKE)
    model, decoder = gdl.live.LIVE_MODELS["vae_fashion"].build(record["settings"])
    gdl.weights.load(VAE_SMOKE, model, record["settings"])
    widget = "window.gdlLive.widgets['vae_fashion']"
    with serve(site) as url:
        context, tab, outside, errors = open_page(browser, url)
        z = np.array([[1.2, -0.7], [-2.0, 2.5]], "float32")
        got = tab.evaluate(f"async z => Array.from(await {widget}.run(new Float32Array(z), 2))",
                           z.ravel().tolist())
        np.testing.assert_allclose(np.array(got).reshape(2, 32, 32, 1), np.asarray(decoder(z)),
                                   atol=1e-5)
        # a drag over the plane moves the point and repaints the decoded image
        pixels = f"() => {widget}.canvas.toDataURL()"
        before = tab.evaluate(pixels)
        box = tab.locator("canvas.gdl-live-plane").bounding_box()
        tab.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])
        tab.mouse.down()
        tab.mouse.move(box["x"] + 0.9 * box["width"], box["y"] + 0.1 * box["height"], steps=5)
        tab.mouse.up()
        tab.wait_for_function(f"() => ({pixels})() !== {json.dumps(before)}", timeout=10_000)
        where = tab.locator(".gdl-live-side .gdl-live-status").inner_text()
        assert where == "z = (2.80, 2.80)", where       # 0.9 of the way across (-3.5, 3.5)
        assert tab.locator(".gdl-live-legend span").count() == 3
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


# --------------------------------------------------------------------------- the writer (GPT)
GPT_SMOKE = "gpt_wine.smoke"     # committed, tiny: chapter 9's GPT after 20 steps (max_len 25)
PROMPTS = ["pinot noir from oregon , us :", "malbec from mendoza , argentina :", ""]
# Browser vs Keras logits: float32 through two blocks, seen about 1e-6 (smoke) and 5e-6 (cpu).
LOGITS_TOLERANCE = 1e-4


def _gpt(weights=GPT_SMOKE):
    record = gdl.weights.record(weights)
    gpt, part = gdl.live.LIVE_MODELS["gpt_wine"].build(record["settings"])
    gdl.weights.load(weights, gpt, record["settings"])
    return record, gpt, part


def _encode(meta, prompt):
    """Chapter 9's encode, with the exported vocabulary."""
    index = {word: i for i, word in enumerate(meta["vocabulary"])}
    return [meta["start_id"]] + [index.get(word, 1) for word in prompt.split()]


@pytest.fixture(scope="module")
def writer_page(tmp_path_factory, shared_data):
    """A page with a writer widget on chapter 9's smoke GPT, laid out as the built book is."""
    from gdl.viz.live import live_writer

    site = tmp_path_factory.mktemp("site")
    widget = live_writer("gpt_wine", PROMPTS, sample_text="pinot noir from oregon, us: "
                         "written when the page ran. <end>", temperature=0.8, top_k=20)
    return site, make_site(site, "gpt_wine", GPT_SMOKE, widget)


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")   # one position
def test_export_live_gpt_next_token_logits(writer_page):
    """The GPT's forward pass, last position only, any length up to the context; and what the
    page's writer needs: the vocabulary the weights were trained with, and its special ids."""
    import onnxruntime as ort

    site, meta = writer_page
    record, gpt, part = _gpt()
    net = record["settings"]["network"]
    assert meta["kind"] == "text" and meta["parity_max_abs"] < LOGITS_TOLERANCE
    assert meta["output_shape"] == [net["vocab_size"]] and meta["max_len"] == net["max_len"]
    vocab = meta["vocabulary"]
    assert len(vocab) == net["vocab_size"] and vocab[:2] == ["", "[UNK]"]
    assert hashlib.sha256("\n".join(vocab).encode()).hexdigest() == \
        record["settings"]["vocabulary_sha256"]
    assert vocab[meta["start_id"]] == "<start>" and vocab[meta["end_id"]] == "<end>"
    assert meta["exclude_ids"] == [0, 1, meta["start_id"]] == net["exclude_ids"]
    session = ort.InferenceSession(str(site / "_static" / "live" / "gpt_wine.onnx"))
    assert [i.name for i in session.get_inputs()] == [meta["input"]]
    rng = np.random.default_rng(7)
    for batch, length in [(1, 1), (3, 5), (2, net["max_len"])]:   # dynamic batch and length
        ids = rng.integers(0, net["vocab_size"], size=(batch, length)).astype("int32")
        got = session.run(None, {meta["input"]: ids})[0]
        expected = np.asarray(gpt(ids))[:, -1, :]                  # the chapter's model
        assert got.shape == (batch, net["vocab_size"])
        np.testing.assert_allclose(got, expected, atol=LOGITS_TOLERANCE)


def test_export_live_gpt_reads_its_vocabulary_from_the_record(tmp_path, monkeypatch,
                                                               empty_data_dir):
    """No dataset needed (the site's build has none); a record whose vocabulary is missing or
    is not the one the weights were trained with is refused, and nothing is written."""
    out = tmp_path / "live"
    published = gdl.weights.record(GPT_SMOKE)
    for change, error in [(lambda r: r.pop("vocabulary"), "holds no vocabulary.*--publish"),
                          (lambda r: r.update(vocabulary=r["vocabulary"].replace("wine", "vin")),
                           "vocabulary.*SHA-256")]:
        record = json.loads(json.dumps(published))
        change(record)
        monkeypatch.setattr(gdl.weights, "record", lambda name, r=record: r)
        with pytest.raises(gdl.live.LiveError, match=error):
            gdl.live.export_live("gpt_wine", out, weights_name=GPT_SMOKE)
        assert not out.exists() or list(out.iterdir()) == []
    monkeypatch.setattr(gdl.weights, "record", lambda name: published)
    meta = gdl.live.export_live("gpt_wine", out, weights_name=GPT_SMOKE)
    assert meta["vocabulary"] == published["vocabulary"].split("\n")


def test_live_writer_settings():
    from gdl.viz.live import live_writer

    with pytest.raises(ValueError, match="0.1 to 1.5"):
        live_writer("gpt_wine", PROMPTS, sample_text="", temperature=2.0)
    with pytest.raises(ValueError, match="1 to 50"):
        live_writer("gpt_wine", PROMPTS, sample_text="", top_k=0)
    html = live_writer("gpt_wine", PROMPTS, sample_text="dry & crisp <end>", top_k=None).data
    assert "dry &amp; crisp</p>" in html and "&lt;end&gt;" not in html
    assert "&quot;top_k&quot;: null" in html and "malbec from mendoza , argentina :" in html


def test_writer_widget_writes_as_keras_does(writer_page, browser):
    site, meta = writer_page
    record, gpt, part = _gpt()
    widget = "window.gdlLive.widgets['gpt_wine']"
    status = "() => document.querySelector('.gdl-live-status').innerText"
    text = "() => document.querySelector('.gdl-live-text').innerText"
    done = f"() => ({status})().includes('ms in this browser')"
    with serve(site) as url:
        context, tab, outside, errors = open_page(browser, url)
        assert "ms in this browser" in tab.evaluate(status)
        first = tab.evaluate(text)
        assert first.startswith("pinot noir from oregon, us:") and len(first.split()) > 7
        # the controls: another review on a click, another header with another prompt
        tab.locator(".gdl-live-controls button").click()
        tab.wait_for_function(f"() => !({done})()", timeout=10_000)
        tab.wait_for_function(done, timeout=30_000)
        second = tab.evaluate(text)
        assert second != first and second.startswith("pinot noir from oregon, us:")
        tab.locator(".gdl-live-controls select").select_option("1")
        tab.wait_for_function(f"() => !({done})()", timeout=10_000)
        tab.wait_for_function(done, timeout=30_000)
        assert tab.evaluate(text).startswith("malbec from mendoza, argentina:")
        # the page's encoding of a prompt is chapter 9's
        prompt = _encode(meta, PROMPTS[1])
        assert tab.evaluate(f"p => {widget}.encode(p)", PROMPTS[1]) == prompt
        # the page's logits for fixed ids are Keras' (the last position's)
        ids = np.array([prompt + [5, 17, 3, 42]], "int32")
        got = np.array(tab.evaluate(f"ids => {widget}.logits(ids)", ids[0].tolist()), "float32")
        expected = np.asarray(gpt(ids))[0, -1]
        diff = float(np.abs(got - expected).max())
        print(f"GPT logits, {ids.shape[1]} tokens: max |browser - Keras| = {diff:.2e}")
        assert diff < LOGITS_TOLERANCE, diff
        # the page's draw is next_token's: the same uniform number gives the same word
        draws = [(0.5, None), (1.0, 20), (1.3, 5)]
        us = np.random.default_rng(8).uniform(0.01, 0.99, size=(len(draws), 6))
        chosen = tab.evaluate(f"([l, draws, us]) => draws.map(([t, k], i) => us[i].map("
                              f"u => {widget}.choose(l, t, k, u)))",
                              [got.tolist(), draws, us.tolist()])
        # greedy decoding in the page writes Keras' words (GPT.generate at temperature 0)
        n = meta["max_len"] - len(prompt)
        page = tab.evaluate(f"([p, n]) => {widget}.greedy(p, n, false)", [prompt, n])
        context.close()
    from gdl.models.transformer import next_token

    biased = (expected + gpt._exclude_bias)[None]           # what GPT._choose draws from
    for (t, k), row, drawn in zip(draws, us, chosen):
        assert drawn == [int(np.asarray(next_token(biased, np.array([u], "float32"), t, k))[0])
                         for u in row], (t, k)
    keras_ids = np.asarray(gpt.generate(1, prompt=prompt, max_tokens=n, temperature=0))[0]
    assert page == keras_ids.tolist(), (page, keras_ids.tolist())
    assert not set(page[len(prompt):]) & set(meta["exclude_ids"])
    assert not errors, errors
    assert not outside, outside


# --------------------------------------------------------------------------- text to image (ch13)
UNCLIP_SMOKE = "unclip_faces.smoke"     # committed, tiny: chapter 13's guided U-Net, 4 steps
PRIOR_SMOKE = "unclip_prior.smoke"      # committed, tiny: its prior, on the same smoke CLIP
T2I_PROMPTS = ["a smiling woman with blond hair", "a man with a beard , eyeglasses"]


def _unclip_keras():
    """The smoke decoder and prompt encoder as Keras runs them (the chapter's text_to_image)."""
    models = {}
    for name, weights in (("unclip_faces", UNCLIP_SMOKE), ("unclip_prompt", PRIOR_SMOKE)):
        record = gdl.weights.record(weights)
        model, part = gdl.live.LIVE_MODELS[name].build(record["settings"])
        gdl.weights.load(weights, model, record["settings"])
        models[name] = (model, part)
    return models["unclip_faces"][0], models["unclip_prompt"][1]


def test_export_live_prompt_encoder_and_guided_unet(tmp_path):
    import onnxruntime as ort

    from gdl.data.captions import CaptionTokenizer

    prompt = gdl.live.export_live("unclip_prompt", tmp_path, weights_name=PRIOR_SMOKE)
    unet = gdl.live.export_live("unclip_faces", tmp_path, weights_name=UNCLIP_SMOKE)
    assert prompt["kind"] == "prompt-encoder" and unet["kind"] == "guided-ddim"
    assert prompt["parity_max_abs"] < 1e-4 and unet["parity_max_abs"] < 1e-4
    # the page can only pair the two if they were trained on one CLIP, and it checks
    assert unet["prompt_model"] == "unclip_prompt"
    assert prompt["clip_sha256"] == unet["clip_sha256"]
    assert unet["inputs"] == ["noisy_images", "noise_variance", "condition"]
    tok = CaptionTokenizer(prompt["max_len"])
    assert prompt["vocabulary"] == tok.words and prompt["end_id"] == tok.end_id
    # the ONNX prompt encoder gives the condition Keras' prior gives, for padded captions
    _, part = _unclip_keras()
    ids = tok.encode(T2I_PROMPTS)
    session = ort.InferenceSession(str(tmp_path / "unclip_prompt.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: ids})[0]
    np.testing.assert_allclose(got, np.asarray(part(ids)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)   # unit length


def test_published_prior_and_decoder_share_their_clip():
    prior, decoder = gdl.weights.record("unclip_prior"), gdl.weights.record("unclip_faces")
    assert prior["settings"]["clip_sha256"] == decoder["settings"]["clip_sha256"]
    assert prior["settings"]["clip_sha256"] == gdl.weights.record("clip_faces")["sha256"]


def test_live_text_to_image_settings():
    from gdl.viz.live_prompt import live_text_to_image

    images = np.zeros((6, 32, 32, 3))
    with pytest.raises(ValueError, match="0 to 8 in steps of 0.5"):
        live_text_to_image("unclip_faces", images, T2I_PROMPTS, guidance=2.25)
    with pytest.raises(ValueError, match="1 to 20"):
        live_text_to_image("unclip_faces", images, T2I_PROMPTS, steps=0)
    with pytest.raises(ValueError, match="none of them empty"):
        live_text_to_image("unclip_faces", images, ["a man", " "])
    html = live_text_to_image("unclip_faces", images, T2I_PROMPTS, guidance=3).data
    assert "&quot;kind&quot;: &quot;guided-ddim&quot;" in html
    assert not gdl.live.check_views(html)
    problems = gdl.live.check_views(live_text_to_image("unclip_prompt", images, "a man").data)
    assert "no view shows it alone" in problems[0]


@pytest.fixture(scope="module")
def t2i_page(tmp_path_factory):
    """A page with chapter 13's text-to-image view on the smoke models (4 faces, 3 steps)."""
    from gdl.viz.live_prompt import live_text_to_image

    site = tmp_path_factory.mktemp("site")
    widget = live_text_to_image("unclip_faces", np.zeros((4, 32, 32, 3)), T2I_PROMPTS,
                                guidance=3, steps=3, ncols=4, caption="test")
    gdl.live.export_live("unclip_prompt", site / "_static" / "live", weights_name=PRIOR_SMOKE)
    return site, make_site(site, "unclip_faces", UNCLIP_SMOKE, widget)


def test_text_to_image_widget_paints_as_keras_does(t2i_page, browser):
    site, meta = t2i_page
    with serve(site) as url:
        context, tab, outside, errors = open_page(browser, url)
        status = tab.locator(".gdl-live-status").inner_text()
        assert "4 faces for \u201ca smiling woman with blond hair\u201d at guidance w = 3" in status
        assert "in 3 DDIM steps" in status and "ms in this browser" in status
        pixels = "() => window.gdlLive.widgets['unclip_faces'].canvas.toDataURL()"
        before = tab.evaluate(pixels)
        # another prompt repaints the faces (from the same noise), and so does the guidance
        tab.locator(".gdl-live-controls select").select_option(T2I_PROMPTS[1])
        tab.wait_for_function("() => document.querySelector('.gdl-live-status').innerText"
                              ".includes('eyeglasses')", timeout=30_000)
        other_prompt = tab.evaluate(pixels)
        assert other_prompt != before
        tab.locator(".gdl-live-controls input[type=range]").first.fill("0")
        tab.wait_for_function("() => document.querySelector('.gdl-live-status').innerText"
                              ".includes('at guidance w = 0 ')", timeout=30_000)
        assert tab.evaluate(pixels) != other_prompt
        # a word the captions never use is reported, not guessed
        tab.locator(".gdl-live-prompt input").fill("a man with a monocle")
        tab.locator(".gdl-live-prompt input").press("Enter")
        tab.wait_for_function("() => document.querySelector('.gdl-live-status').innerText"
                              ".includes('\u201cmonocle\u201d is not a word')", timeout=10_000)
        # the page's condition and faces for fixed noise are Keras'
        noise = np.random.default_rng(7).normal(size=(2, 32, 32, 3)).astype("float32")
        got = tab.evaluate("async x => Array.from(await window.gdlLive.widgets['unclip_faces']"
                           f".sample(new Float32Array(x), 2, 3, {json.dumps(T2I_PROMPTS[0])}, 2.5))",
                           noise.ravel().tolist())
        condition = tab.evaluate("p => window.gdlLive.widgets['unclip_faces'].condition(p)",
                                 T2I_PROMPTS[0])
        context.close()
    from gdl.data.captions import CaptionTokenizer

    decoder, prompt = _unclip_keras()
    cond = np.asarray(prompt(CaptionTokenizer().encode(T2I_PROMPTS[:1])))
    np.testing.assert_allclose(np.array(condition), cond[0], atol=1e-5)
    expected = np.asarray(decoder.generate(condition=np.repeat(cond, 2, axis=0), guidance=2.5,
                                           initial_noise=noise, steps=3))
    got = np.array(got, "float32").reshape(expected.shape)
    diff = np.abs(got - expected).max()
    print(f"guided DDIM, 2 faces x 3 steps at w = 2.5: max |browser - Keras| = {diff:.2e}")
    assert diff < DDIM_TOLERANCE, diff
    assert got.std() > 1e-2
    assert not errors, errors
    assert not outside, outside


# --------------------------------------------------------------------------- attribute edits (ch03)
FACE_VAE_SMOKE = "vae_faces.smoke"      # committed, tiny: chapter 3's face VAE after 4 steps


def test_live_attributes_settings():
    from gdl.viz.live_edit import live_attributes

    images, z = np.zeros((6, 32, 32, 3)), np.zeros((6, 200))
    with pytest.raises(ValueError, match=r"latents must be \(6, D\)"):
        live_attributes("vae_faces", images, z[:4], {"Smiling": np.ones(200)})
    with pytest.raises(ValueError, match="direction 'Smiling' has shape"):
        live_attributes("vae_faces", images, z, {"Smiling": np.ones(100)})
    with pytest.raises(ValueError, match="from below 0 to above 0"):
        live_attributes("vae_faces", images, z, {"Smiling": np.ones(200)}, strengths=(0, 3))
    html = live_attributes("vae_faces", images, z, {"Smiling": np.ones(200)}).data
    assert "&quot;named_directions&quot;" in html and not gdl.live.check_views(html)


@pytest.fixture(scope="module")
def edit_page(tmp_path_factory):
    """A page with chapter 3's attribute sliders on the smoke face VAE: four codes, two
    directions."""
    from gdl.viz.live_edit import live_attributes

    rng = np.random.default_rng(3)
    codes = rng.normal(size=(4, 200)).astype("float32")
    directions = {"Smiling": rng.normal(size=200), "Blond_Hair": rng.normal(size=200)}
    widget = live_attributes("vae_faces", np.zeros((4, 32, 32, 3)), codes, directions,
                             ncols=4, given="held-out faces", caption="test")
    site = tmp_path_factory.mktemp("site")
    return site, make_site(site, "vae_faces", FACE_VAE_SMOKE, widget)


def test_attribute_sliders_edit_the_given_faces(edit_page, browser):
    site, meta = edit_page
    with serve(site) as url:
        context, tab, outside, errors = open_page(browser, url)
        assert "4 held-out faces in" in tab.locator(".gdl-live-status").inner_text()
        labels = tab.locator(".gdl-live-controls label").all_inner_texts()
        assert [t.split()[0] for t in labels] == ["Smiling", "Blond_Hair"]
        pixels = "() => window.gdlLive.widgets['vae_faces'].canvas.toDataURL()"
        start = tab.evaluate(pixels)
        tab.locator(".gdl-live-controls input[type=range]").first.fill("2")
        tab.wait_for_function(f"() => ({pixels})() !== {json.dumps(start)}", timeout=10_000)
        assert tab.locator(".gdl-live-controls output").first.inner_text() == "+2.0"
        edited = tab.evaluate(pixels)
        tab.get_by_role("button", name="new samples").click()
        tab.wait_for_function(f"() => ({pixels})() !== {json.dumps(edited)}", timeout=10_000)
        assert "4 samples in" in tab.locator(".gdl-live-status").inner_text()
        tab.get_by_role("button", name="held-out faces").click()     # the same codes again
        tab.wait_for_function(f"() => ({pixels})() === {json.dumps(edited)}", timeout=10_000)
        z = np.random.default_rng(4).normal(size=(2, 200)).astype("float32")
        got = tab.evaluate("async z => Array.from(await window.gdlLive.widgets['vae_faces']"
                           ".run(new Float32Array(z), 2))", z.ravel().tolist())
        context.close()
    record = gdl.weights.record(FACE_VAE_SMOKE)
    model, decoder = gdl.live.LIVE_MODELS["vae_faces"].build(record["settings"])
    gdl.weights.load(FACE_VAE_SMOKE, model, record["settings"])
    np.testing.assert_allclose(np.array(got).reshape(2, 32, 32, 3), np.asarray(decoder(z)),
                               atol=1e-4)
    assert not errors, errors
    assert not outside, outside
