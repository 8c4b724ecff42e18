"""gdl.models.autoregressive and gdl.data.text: causality of the masks, the
discretized logistic mixture, the samplers and the text generator, and the
text loaders on real and broken files."""
import json
import math

import keras
import numpy as np
import pytest

import gdl.data
from gdl import backend
from gdl.data import DataError
from gdl.models import autoregressive as ar


# --------------------------------------------------------------------------- masks
def input_gradient(model_or_layer, x, row, col, channel=0):
    """|d out[0, row, col, channel] / d input| as an (H, W) array."""
    grad = backend.input_grad(lambda x: model_or_layer(x)[0, row, col, channel], x)
    return np.abs(np.asarray(grad)[0].sum(-1))


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_sees_only_the_past(mask_type):
    keras.utils.set_random_seed(0)
    layer = ar.MaskedConv2D(mask_type, 4, 5)
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 2)).astype("float32")
    layer(x)
    # Random weights everywhere, so a zero gradient can only come from the mask.
    layer.kernel.assign(np.random.default_rng(1).normal(size=layer.kernel.shape))
    for row, col in [(0, 0), (3, 4), (7, 7), (4, 0)]:
        grad = input_gradient(layer, x, row, col).ravel()
        i = row * 8 + col
        first_hidden = i if mask_type == "A" else i + 1
        assert np.all(grad[first_hidden:] == 0.0), (row, col)
        if mask_type == "B":
            assert grad[i] > 0                      # B sees the pixel itself
        if i > 0:
            assert grad[:i].max() > 0               # and does see some of the past


def test_whole_pixelcnn_is_causal_and_sees_far():
    keras.utils.set_random_seed(1)
    model = ar.build_pixelcnn(12, 4, filters=16, blocks=3)
    x = np.random.default_rng(2).uniform(size=(1, 12, 12, 1)).astype("float32")
    for row, col in [(0, 0), (5, 6), (11, 11), (6, 0)]:
        for channel in (0, 3):
            grad = input_gradient(model, x, row, col, channel).ravel()
            i = row * 12 + col
            assert np.all(grad[i:] == 0.0)           # not itself, nothing after it
    # The pixel at (6, 6) depends on pixels several rows up (stacked receptive field).
    grad = input_gradient(model, x, 6, 6).reshape(12, 12)
    assert grad[:3].max() > 0 and grad[6, :6].max() > 0


def test_causal_mask_layout():
    a, b = ar.causal_mask(3, "A"), ar.causal_mask(3, "B")
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError):
        ar.causal_mask(3, "C")


# --------------------------------------------------------------------------- logistic mixture
def random_params(rng, shape, k, log_scale_range=(-4.0, 0.5)):
    logits = rng.normal(size=shape + (k,))
    means = rng.uniform(-1.2, 1.2, size=shape + (k,))
    log_scales = rng.uniform(*log_scale_range, size=shape + (k,))
    return np.concatenate([logits, means, log_scales], -1).astype("float32")


@pytest.mark.parametrize("num_levels", [256, 4])
def test_mixture_probabilities_sum_to_one(num_levels):
    rng = np.random.default_rng(3)
    params = random_params(rng, (20,), 5)                          # 20 mixtures
    levels = np.arange(num_levels)
    grid = np.repeat(params[:, None], num_levels, axis=1)           # (20, L, 15)
    values = np.broadcast_to(levels, (20, num_levels))
    log_p = np.asarray(ar.logistic_mixture_log_prob(values, grid, num_levels))
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, atol=2e-3)
    assert np.all(log_p <= 1e-6)


def test_sharp_mixture_puts_its_mass_on_the_nearest_value():
    # One component centred on value 100 with the smallest scale (log-scale -7).
    x100 = 2 * 100 / 255 - 1
    params = np.array([[0.0, x100, -7.0]], "float32")
    log_p = np.asarray(ar.logistic_mixture_log_prob(np.array([100, 101, 0]),
                                                    np.repeat(params, 3, 0)))
    z = (1 / 255) / math.exp(-7.0)             # half a bin, in units of the scale
    sig = lambda t: 1 / (1 + math.exp(-t))
    np.testing.assert_allclose(np.exp(log_p[:2]), [2 * sig(z) - 1, sig(3 * z) - sig(z)],
                               rtol=1e-3)
    assert np.exp(log_p[0]) > 0.97 and np.exp(log_p[2]) < 1e-30


def test_mixture_log_prob_matches_a_direct_computation():
    rng = np.random.default_rng(4)
    params = random_params(rng, (6,), 3, (-2.0, 0.0)).astype("float64")
    values = rng.integers(0, 256, size=6)
    got = np.asarray(ar.logistic_mixture_log_prob(values, params.astype("float32")))
    sig = lambda t: 1 / (1 + np.exp(-t))
    w = np.exp(params[:, :3]) / np.exp(params[:, :3]).sum(1, keepdims=True)
    mu, s = params[:, 3:6], np.exp(params[:, 6:])
    x = (2 * values / 255 - 1)[:, None]
    upper = np.where(values[:, None] == 255, 1.0, sig((x + 1 / 255 - mu) / s))
    lower = np.where(values[:, None] == 0, 0.0, sig((x - 1 / 255 - mu) / s))
    np.testing.assert_allclose(got, np.log((w * (upper - lower)).sum(1)), atol=1e-4)


def test_mixture_sampler_follows_the_mixture():
    rng = np.random.default_rng(5)
    params = random_params(rng, (), 4, (-3.0, -1.0))
    n = 100_000
    u_comp = rng.uniform(size=(n, 4)).astype("float32")
    u_val = rng.uniform(size=n).astype("float32")
    draws = np.asarray(ar.sample_logistic_mixture(np.repeat(params[None], n, 0), u_comp, u_val))
    assert draws.min() >= 0 and draws.max() <= 255
    p = np.exp(np.asarray(ar.logistic_mixture_log_prob(np.arange(256), np.repeat(params[None], 256, 0))))
    freq = np.bincount(draws, minlength=256) / n
    assert 0.5 * np.abs(freq - p).sum() < 0.02                  # total variation


def test_mixture_nll_is_the_mean_negative_log_prob():
    rng = np.random.default_rng(6)
    params = random_params(rng, (2, 3, 3), 5)
    y = rng.integers(0, 256, size=(2, 3, 3, 1))
    loss = float(ar.mixture_nll(y, params))
    direct = -np.asarray(ar.logistic_mixture_log_prob(y[..., 0], params)).mean()
    assert loss == pytest.approx(direct, rel=1e-5)


def test_gumbel_max_sampling_matches_softmax():
    rng = np.random.default_rng(7)
    logits = np.array([1.0, -0.5, 2.0, 0.0], "float32")
    u = rng.uniform(size=(50_000, 4)).astype("float32")
    draws = np.asarray(ar.sample_categorical(np.repeat(logits[None], 50_000, 0), u))
    p = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 50_000, p, atol=0.01)


# --------------------------------------------------------------------------- sampling loops
def test_compiled_sampler_equals_step_by_step_sampling():
    """The compiled loop must fill each pixel from the model's prediction given
    the pixels before it: redo it pixel by pixel in Python with the same noise."""
    keras.utils.set_random_seed(8)
    model = ar.build_pixelcnn(5, 3, filters=8, blocks=1)
    noise = np.random.default_rng(9).uniform(size=(25, 4, 3)).astype("float32")
    fast = np.asarray(ar.categorical_sampler(model, 3)(noise))
    assert fast.shape == (4, 5, 5, 1) and fast.min() >= 0 and fast.max() <= 2
    slow = np.zeros((4, 5, 5, 1), "float32")
    for i in range(25):
        r, c = divmod(i, 5)
        logits = np.asarray(model(slow / 2))[:, r, c]
        slow[:, r, c, 0] = np.asarray(ar.sample_categorical(logits, noise[i]))
    np.testing.assert_array_equal(fast, slow)


def test_compiled_calls_follow_the_current_weights():
    """Compiled once, then trained: the sampler and the text generator must use the new
    weights (a JAX jit that captured the weights as constants would not)."""
    keras.utils.set_random_seed(14)
    model = ar.build_pixelcnn(4, 3, filters=8, blocks=1)
    noise = np.random.default_rng(15).uniform(size=(16, 8, 3)).astype("float32")
    sampler = ar.categorical_sampler(model, 3)
    before = np.asarray(sampler(noise))
    rng = np.random.default_rng(16)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    after = np.asarray(sampler(noise))
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, np.asarray(ar.categorical_sampler(model, 3)(noise)))

    gen = small_generator()
    before = gen.next_logits([2, 3])
    gen.model.set_weights([2.0 * w for w in gen.model.get_weights()])
    x = np.array([[2, 3, 0, 0, 0, 0]], "int32")
    expected = np.asarray(gen.model(x))[0, 1]
    after = gen.next_logits([2, 3])
    assert not np.allclose(after[2:], before[2:], atol=1e-3)
    np.testing.assert_allclose(after[2:], expected[2:], atol=1e-5)


def test_mixture_sampler_shapes_and_range():
    keras.utils.set_random_seed(10)
    model = ar.build_pixelcnn(4, 9, filters=8, blocks=1)           # K = 3
    noise = np.random.default_rng(11).uniform(size=(16, 2, 4)).astype("float32")
    out = np.asarray(ar.mixture_sampler(model)(noise))
    assert out.shape == (2, 4, 4, 1) and out.min() >= 0 and out.max() <= 255


def test_naive_sampler_gives_valid_levels():
    keras.utils.set_random_seed(12)
    model = ar.build_pixelcnn(3, 4, filters=8, blocks=1)
    out = ar.sample_naive(model, 4, n=3, seed=0)
    assert out.shape == (3, 3, 3, 1) and set(np.unique(out)) <= {0, 1, 2, 3}


# --------------------------------------------------------------------------- text
VOCAB = ["", "[UNK]", "the", "wine", "is", "red", "<end>", "dry", "fruit"]


def test_temperature_zero_is_the_argmax_and_low_temperature_converges():
    logits = np.array([[0.1, 2.0, 1.9, -1.0], [3.0, 0.0, 2.5, 2.9]])
    np.testing.assert_array_equal(ar.apply_temperature(logits, 0), [[0, 1, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_allclose(ar.apply_temperature(logits, 1e-3), [[0, 1, 0, 0], [1, 0, 0, 0]],
                               atol=1e-12)
    p1 = ar.apply_temperature(logits, 1.0)
    np.testing.assert_allclose(p1, np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    hot = ar.apply_temperature(logits, 100.0)
    assert np.all(hot.max(1) - hot.min(1) < 0.05)           # nearly uniform
    with pytest.raises(ValueError):
        ar.apply_temperature(logits, -1.0)


def small_generator(kind="lstm"):
    keras.utils.set_random_seed(13)
    model = ar.build_text_model(len(VOCAB), kind, embed_dim=8, units=8)
    return ar.TextGenerator(model, VOCAB, window=6)


def test_generated_text_stays_in_the_vocabulary():
    gen = small_generator()
    for seed in range(5):
        text = gen.generate("the wine", max_tokens=12, temperature=1.5, seed=seed)
        words = text.split()
        assert words[:2] == ["the", "wine"] and 2 < len(words) <= 14
        assert all(w in VOCAB[2:] for w in words)             # no padding, no [UNK]


def test_greedy_generation_follows_the_argmax_and_stops():
    gen = small_generator()
    ids = gen.encode("the wine")
    text = gen.generate("the wine", max_tokens=8, temperature=0)
    for word in text.split()[2:]:
        logits = gen.next_logits(ids)
        assert VOCAB[int(np.argmax(logits))] == word
        ids.append(VOCAB.index(word))
    # Generation stops right after the stop token, wherever it appears.
    stop = gen.generate("the", max_tokens=30, temperature=1.0, stop="red", seed=1)
    words = stop.split()
    assert "red" not in words[1:-1] and (words[-1] == "red" or len(words) == 31)


def test_next_token_prediction_only_uses_the_past():
    gen = small_generator()
    model = gen.model
    x = np.array([[2, 3, 4, 5, 7, 8]], "int32")
    y = x.copy()
    y[0, 3:] = [8, 8, 2]                       # change the future of position 2
    np.testing.assert_allclose(np.asarray(model(x))[0, :3], np.asarray(model(y))[0, :3], atol=1e-6)
    bi = small_generator("bidirectional").model
    assert not np.allclose(np.asarray(bi(x))[0, :3], np.asarray(bi(y))[0, :3])


def test_text_model_kinds():
    for kind in ("lstm", "stacked", "gru", "bidirectional"):
        m = ar.build_text_model(50, kind, embed_dim=4, units=6)
        assert tuple(m(np.ones((2, 7), "int32")).shape) == (2, 7, 50)
    with pytest.raises(ValueError):
        ar.build_text_model(50, "transformer")


# --------------------------------------------------------------------------- loaders
def test_wine_reviews_real_copy(shared_data):
    records = gdl.data.wine_reviews()
    assert len(records) == 15_734            # 15,739 minus 5 incomplete (MANIFEST.md)
    assert len(gdl.data.wine_reviews(complete=False)) == 15_739
    first = records[0]
    assert first["country"] == "Italy" and first["description"].startswith("Aromas include")
    assert set(first) >= {"points", "variety", "province", "winery"}


def test_wine_reviews_missing_and_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as err:
        gdl.data.wine_reviews()
    assert "zynicide/wine-reviews" in str(err.value)
    assert str(tmp_path / "wine-reviews" / "winemag-data-130k-v2.json") in str(err.value)
    folder = tmp_path / "wine-reviews"
    folder.mkdir()
    (folder / "winemag-data-130k-v2.json").write_text('[{"points": "87", "descr')
    with pytest.raises(DataError, match="not valid JSON"):
        gdl.data.wine_reviews()
    (folder / "winemag-data-130k-v2.json").write_text('[{"title": "no description"}]')
    with pytest.raises(DataError, match="does not hold wine reviews"):
        gdl.data.wine_reviews()


def recipe(title, ingredients, directions):
    """One record in the shape of Kaggle's full_format_recipes.json."""
    return {"directions": directions, "fat": 7.0, "date": "2006-09-01T04:00:00.000Z",
            "categories": ["Sandwich", "Bean"], "calories": 426.0,
            "desc": None, "protein": 30.0, "rating": 2.5, "title": title,
            "ingredients": ingredients, "sodium": 559.0}


def test_epirecipes_official_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_DATA_DIR", str(tmp_path))
    folder = tmp_path / "epirecipes"
    folder.mkdir()
    records = [recipe("Lentil Soup ", ["1 cup lentils", "4 cups water"],
                      ["Rinse the lentils.", "Simmer 30 minutes."]),
               {},                                              # the official file has empty records
               recipe("Toast", ["1 slice bread"], [])]
    (folder / "full_format_recipes.json").write_text(json.dumps(records))
    loaded = gdl.data.epirecipes()
    assert [r["title"] for r in loaded] == ["Lentil Soup "]
    assert loaded[0]["directions"][1] == "Simmer 30 minutes."
    assert len(gdl.data.epirecipes(complete=False)) == 3


def test_epirecipes_missing_names_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as err:
        gdl.data.epirecipes()
    message = str(err.value)
    assert "hugodarwood/epirecipes" in message
    assert str(tmp_path / "epirecipes" / "full_format_recipes.json") in message


def test_epirecipes_corrupt_or_wrong_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_DATA_DIR", str(tmp_path))
    folder = tmp_path / "epirecipes"
    folder.mkdir()
    path = folder / "full_format_recipes.json"
    path.write_text(json.dumps([recipe("Soup", ["x"], ["y"])])[:-30])
    with pytest.raises(DataError, match="not valid JSON"):
        gdl.data.epirecipes()
    path.write_text(json.dumps({"title": "not a list"}))
    with pytest.raises(DataError, match="list of records"):
        gdl.data.epirecipes()
    path.write_text(json.dumps([{"points": "87", "description": "a wine"}]))
    with pytest.raises(DataError, match="does not hold Epicurious"):
        gdl.data.epirecipes()
