"""The attention-map viewer of chapter 10 (gdl.viz.attention_map)."""
import base64
import json
import re

import numpy as np
import pytest

pytest.importorskip("plotly")

from gdl.viz.attention_map import attention_map_viewer  # noqa: E402


def softmax_rows(n, seed=0):
    logits = np.random.default_rng(seed).normal(size=(n, n)) * 3
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def embedded(html):
    """The attention rows and their maxima as the page's script carries them."""
    data = re.search(r"atob\('([A-Za-z0-9+/=]+)'\)", html).group(1)
    top = np.array(eval(re.search(r"top = (\[[^\]]*\])", html).group(1)))
    q = np.frombuffer(base64.b64decode(data), dtype=np.uint8)
    return q, top


def test_embeds_one_row_per_query_and_decodes_to_the_weights():
    grid = (4, 6)
    w = softmax_rows(24)
    html = attention_map_viewer(np.full((8, 12, 3), 0.5), w, grid, display=False)
    q, top = embedded(html)
    assert q.size == 24 * 24 and top.shape == (24,)
    decoded = q.reshape(24, 24) * top[:, None] / 255
    # byte quantisation: within half a step of each row's maximum
    assert np.abs(decoded - w).max() <= top.max() / 255 / 2 + 1e-6
    np.testing.assert_allclose(decoded.sum(1), 1.0, atol=24 / 255)
    assert "plotly_hover" in html and "plotly_click" in html
    assert "{plot_id}" not in html                     # plotly filled in the element id
    assert "cdn.plot.ly" not in html                   # no network needed


def test_first_map_is_the_query_row():
    w = softmax_rows(16, seed=1)
    html = attention_map_viewer(np.zeros((4, 4)), w, 4, query=(1, 2), display=False)
    # the right-hand heatmap starts with row 1 * 4 + 2, reshaped to the grid
    heatmaps = [json.loads(z) for z in
                re.findall(r'"z":(\[\[[-0-9.e, \[\]]+\]\])', html)]
    np.testing.assert_allclose(heatmaps[1], w[6].reshape(4, 4), atol=1e-6)


@pytest.mark.parametrize("weights, grid, message", [
    (softmax_rows(16), 5, r"needs weights shaped \(25, 25\)"),
    (softmax_rows(16)[:, :8], 4, r"needs weights shaped \(16, 16\)"),
    (softmax_rows(16) * 2, 4, "summing to 1"),
    (softmax_rows(16), (4, 0), "positive int"),
])
def test_shape_and_softmax_errors_are_clear(weights, grid, message):
    with pytest.raises(ValueError, match=message):
        attention_map_viewer(np.zeros((8, 8, 3)), weights, grid, display=False)


def test_image_errors_are_clear():
    w = softmax_rows(16)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        attention_map_viewer(np.zeros((8, 8, 4)), w, 4, display=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attention_map_viewer(np.full((8, 8, 3), -1.0), w, 4, display=False)
    with pytest.raises(ValueError, match="outside"):
        attention_map_viewer(np.zeros((8, 8)), w, 4, query=(4, 0), display=False)
