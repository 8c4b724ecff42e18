import json

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

import gdl.viz


def test_image_grid_accepts_common_layouts():
    for images in [np.zeros((6, 8, 8), np.uint8), np.ones((6, 8, 8, 1)), np.random.rand(6, 8, 8, 3)]:
        fig = gdl.viz.image_grid(images, ncols=4, titles=list("abcdef"))
        assert len(fig.axes) == 8  # 2 rows of 4; the last two are blank
        assert sum(bool(ax.images) for ax in fig.axes) == 6


def test_image_grid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="expected images shaped"):
        gdl.viz.image_grid(np.zeros((4, 8, 8, 2)))


def test_mosaic_places_images_row_major():
    images = np.stack([np.full((2, 3), i / 5) for i in range(6)])
    tiled = gdl.viz.mosaic(images, nrows=2, ncols=3)
    assert tiled.shape == (4, 9)
    assert tiled[0, 3] == pytest.approx(0.2) and tiled[2, 0] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="need 4 images"):
        gdl.viz.mosaic(images, nrows=2, ncols=2)


def test_plot_history_pairs_train_and_validation():
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.3, 0.6], "val_accuracy": [0.2, 0.5]}
    fig = gdl.viz.plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    with pytest.raises(KeyError, match="kl"):
        gdl.viz.plot_history(history, metrics=["kl"])


def test_latent_scatter_with_background_and_thumbnails():
    pts = np.random.randn(50, 2)
    fig = gdl.viz.latent_scatter(pts, color=np.arange(50) % 3, hover=[f"#{i}" for i in range(50)],
                                 background=(np.random.rand(16, 16), (-3, 3), (-3, 3)),
                                 thumbnails=(pts[:5], np.random.rand(5, 8, 8)))
    assert len(fig.data) == 3  # one trace per class, for a clickable legend
    assert len(fig.layout.images) == 6
    assert all(img.source.startswith("data:image/png;base64,") for img in fig.layout.images)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        gdl.viz.latent_scatter(np.zeros((5, 3)))


def test_show_emits_html_without_plotly_js(monkeypatch):
    import plotly.graph_objects as go

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))
    gdl.viz.show(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])))
    (bundle, raw), = shown
    assert raw
    html = bundle["text/html"]
    assert "Plotly.newPlot" in html
    assert "<script src" not in html and "cdn.plot.ly" not in html  # the book ships plotly.js itself
    assert json.dumps(bundle["application/vnd.plotly.v1+json"])  # serialisable for Jupyter front ends


def test_show_does_not_autoplay_slider_figures(monkeypatch):
    import plotly.graph_objects as go

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    frames = [go.Frame(data=[go.Scatter(x=[0, 1], y=[k, k])], name=str(k)) for k in range(3)]
    gdl.viz.show(go.Figure(data=frames[0].data, frames=frames))
    html = shown[0]["text/html"]
    assert "Plotly.addFrames" in html        # the frames are there for the slider
    assert "Plotly.animate" not in html      # but nothing plays on page load


def test_prompt_explorer_labels_rows_and_opens_on_the_chosen_scale():
    from gdl.viz.prompts import prompt_explorer

    rng = np.random.default_rng(0)
    images = rng.random((3, 2, 4, 8, 8, 3))
    fig = prompt_explorer(images, ["a man", "a woman"], [0, 1, 3], active=2)
    assert [f.name for f in fig.frames] == ["0", "1", "3"]
    assert fig.layout.sliders[0].active == 2
    assert fig.data[0].source == fig.frames[2].data[0].source != fig.frames[0].data[0].source
    assert list(fig.layout.yaxis.ticktext) == ["a man", "a woman"]
    assert list(fig.layout.yaxis.tickvals) == [4.0, 14.0]          # row centres, 2 px apart
    with pytest.raises(ValueError, match="3 scales × 2 prompts"):
        prompt_explorer(images, ["a man"], [0, 1, 3])
    with pytest.raises(ValueError, match="active"):
        prompt_explorer(images, ["a man", "a woman"], [0, 1, 3], active=3)


def test_timeline_links_every_entry_and_keeps_close_labels_apart():
    from gdl.viz.timeline import label_levels, timeline

    entries = [dict(date=2022.0 + 0.1 * i, name=f"model {i}", lane="a", link=f"ch{i}.html")
               for i in range(4)] + [dict(date=2015.0, name="old", lane="b")]
    fig = timeline(entries, [(2014.0, 2018.0, "early")], ["a", "b"])
    texts = [a.text for a in fig.layout.annotations]
    assert all(f'<a href="ch{i}.html">model {i}</a>' in texts for i in range(4))
    assert "old" in texts and "<i>early</i>" in texts
    levels = label_levels(entries[:4], label_years=0.1)
    assert len(set(levels)) == 4          # four labels 0.1 years apart: four different levels
    assert label_levels([entries[0], entries[4]], label_years=0.1) == [1, 1]   # far apart
    with pytest.raises(ValueError, match="lanes"):
        timeline(entries, lanes=["a"])


def test_match_classes_orders_and_colours_traces_as_matplotlib_does():
    import matplotlib as mpl
    from matplotlib.colors import to_hex

    from gdl.viz.palette import match_classes

    names = ["zero", "one", "two"]
    rng = np.random.default_rng(0)
    labels = np.array([2, 0, 1] * 10)      # the explorer sorts its traces by name length
    fig = gdl.viz.latent_explorer(rng.normal(size=(30, 2)), labels,
                                  lambda p: np.zeros((len(p), 4, 4)), class_names=names, n_grid=3)
    assert [t.name for t in fig.data] != names
    match_classes(fig, names)
    cycle = [to_hex(c["color"]) for c in mpl.rcParams["axes.prop_cycle"]]
    assert [t.name for t in fig.data] == names
    assert [t.marker.color for t in fig.data] == cycle[:3]
    # each trace keeps its own points
    assert len(fig.data[0].x) == int((labels == 0).sum())
    with pytest.raises(ValueError, match="not among the classes"):
        match_classes(fig, ["zero", "one"])
