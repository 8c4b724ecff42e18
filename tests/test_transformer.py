"""gdl.models.transformer (chapter 9): attention against keras.layers.MultiHeadAttention,
causality by gradient, position codes, the key/value-cache sampler against the naive one,
temperature 0 as the argmax, shapes and seeds, the .keras round trip (also across backends),
one training step on real wine reviews, and the attention viewer."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from gdl import backend
from gdl.models import transformer as tr

VOCAB, CONTEXT = 40, 12


def small_gpt(positions="learned", seed=0, **kwargs):
    keras.utils.set_random_seed(3)
    settings = dict(embed_dim=16, num_heads=2, num_blocks=2, dropout=0.0,
                    exclude_ids=(0, 1), start_id=VOCAB - 1, seed=seed)
    return tr.GPT(VOCAB, CONTEXT, positions=positions, **{**settings, **kwargs})


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def token_batch(rng, batch=2, length=CONTEXT):
    return rng.integers(2, VOCAB, size=(batch, length)).astype("int32")


# --------------------------------------------------------------------------- attention
def test_attention_by_hand():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(3, 4)).astype("float32") for _ in range(3))
    out, weights = (numpy(a) for a in tr.attention(q, k, v))
    scores = q @ k.T / 2.0                                   # sqrt(d_k) = 2
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    np.testing.assert_allclose(out, expected @ v, rtol=1e-5, atol=1e-6)
    _, masked = tr.attention(q, k, v, tr.causal_mask(3))
    masked = numpy(masked)
    np.testing.assert_array_equal(masked[np.triu_indices(3, 1)], 0.0)   # exactly zero
    np.testing.assert_allclose(masked.sum(-1), 1.0, rtol=1e-6)
    assert masked[0, 0] == pytest.approx(1.0)                # the first token sees itself


@pytest.mark.parametrize("causal", [True, False])
def test_attention_layer_equals_keras_multi_head_attention(causal):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 12)).astype("float32")
    reference = keras.layers.MultiHeadAttention(num_heads=3, key_dim=5)
    reference(x, x, use_causal_mask=causal)
    # Non-zero biases, so that they are checked too.
    reference.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3
                           for w in reference.get_weights()])
    expected, expected_weights = reference(x, x, use_causal_mask=causal,
                                           return_attention_scores=True)
    layer = tr.CausalSelfAttention(3, 5, causal=causal)
    layer.build(x.shape)
    assert [w.shape for w in layer.get_weights()] == \
        [w.shape for w in reference.get_weights()]
    layer.set_weights(reference.get_weights())
    out, weights = layer(x, return_weights=True)
    np.testing.assert_allclose(numpy(out), numpy(expected), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(numpy(weights), numpy(expected_weights), atol=1e-6)


def test_the_cached_step_equals_the_full_pass():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    layer = tr.CausalSelfAttention(2, 4)
    full = numpy(layer(x))
    cache = ops.zeros((2, 2, 6, 4))
    cache_k = cache_v = cache
    for t in range(6):
        out, cache_k, cache_v = layer.step(x[:, t:t + 1], cache_k, cache_v, t)
        np.testing.assert_allclose(numpy(out)[:, 0], full[:, t], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- causality
@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "none"])
def test_output_at_i_does_not_depend_on_later_inputs(positions):
    model = small_gpt(positions)
    tokens = token_batch(np.random.default_rng(3), batch=1)
    embedded = numpy(model.embed(tokens))                        # (1, T, d)
    for i in (0, 4, CONTEXT - 1):
        grad = backend.input_grad(lambda e: model.head(model.transform(e))[:, i], embedded)
        per_position = np.abs(numpy(grad))[0].sum(-1)           # (T,)
        assert np.all(per_position[i + 1:] == 0.0), (positions, i)
        assert np.all(per_position[:i + 1] > 0.0), (positions, i)   # and it sees the past


def test_attention_weights_are_causal_distributions():
    model = small_gpt()
    tokens = token_batch(np.random.default_rng(4), batch=3)
    maps = model.attention_weights(tokens)
    assert len(maps) == 2
    for w in maps:
        assert w.shape == (3, 2, CONTEXT, CONTEXT)
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
        assert np.all(w[..., np.triu_indices(CONTEXT, 1)[0], np.triu_indices(CONTEXT, 1)[1]]
                      == 0.0)


# --------------------------------------------------------------------------- positions
def test_sinusoidal_positions():
    table = tr.sinusoidal_positions(50, 8)
    assert table.shape == (50, 8)
    np.testing.assert_allclose(table[0], [0, 1] * 4, atol=1e-7)
    p, i = 7, 1                                       # pair i = 1: 10000 ** (2 / 8)
    np.testing.assert_allclose(table[p, 2 * i], np.sin(p / 10_000 ** (2 * i / 8)), rtol=1e-6)
    np.testing.assert_allclose(table[p, 2 * i + 1], np.cos(p / 10_000 ** (2 * i / 8)),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="even"):
        tr.sinusoidal_positions(5, 7)


def test_without_positions_one_block_cannot_see_the_order_of_the_past():
    rng = np.random.default_rng(5)
    tokens = token_batch(rng, batch=1)
    shuffled = tokens.copy()
    shuffled[0, :-1] = rng.permutation(tokens[0, :-1])

    def last_changes(model):
        for v in model.trainable_variables:    # larger than the initial 0.02 scale
            v.assign(rng.normal(size=v.shape).astype("float32") * 0.3)
        last, last_shuffled = (numpy(model(t))[0, -1] for t in (tokens, shuffled))
        return not np.allclose(last, last_shuffled, rtol=1e-4, atol=1e-5)

    # One block without positions sees the past as a set (attention is a weighted sum).
    assert not last_changes(small_gpt("none", num_blocks=1))
    assert last_changes(small_gpt("learned", num_blocks=1))
    assert last_changes(small_gpt("sinusoidal", num_blocks=1))
    # From the second block on, the causal mask leaks order: an earlier position's
    # output depends on which tokens came before it.
    assert last_changes(small_gpt("none", num_blocks=2))


def test_unknown_positions_is_an_error():
    with pytest.raises(ValueError, match="positions"):
        tr.GPT(VOCAB, CONTEXT, positions="rotary")


# --------------------------------------------------------------------------- sampling
def test_next_token_follows_the_distribution():
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]], "float32"))
    n = 20_000
    u = (np.arange(n, dtype="float32") + 0.5) / n                # evenly spread noise
    drawn = numpy(tr.next_token(np.repeat(logits, n, 0), u))
    np.testing.assert_allclose(np.bincount(drawn, minlength=4) / n, [0.1, 0.2, 0.3, 0.4],
                               atol=1e-3)
    top2 = numpy(tr.next_token(np.repeat(logits, n, 0), u, top_k=2))
    np.testing.assert_allclose(np.bincount(top2, minlength=4) / n, [0, 0, 3 / 7, 4 / 7],
                               atol=1e-3)
    hot = numpy(tr.next_token(np.repeat(logits, n, 0), u, temperature=0.25))
    assert np.mean(hot == 3) > 0.6                           # 0.4^4 / sum(p^4) = 0.71


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.7, 5), (1.3, None)])
@pytest.mark.parametrize("prompt", [None, [5, 6, 7]])
def test_the_kv_cache_sampler_equals_the_naive_sampler(temperature, top_k, prompt):
    model = small_gpt()
    kwargs = dict(seed=8, prompt=prompt, temperature=temperature, top_k=top_k)
    cached = numpy(model.generate(5, **kwargs))
    naive = numpy(model.generate(5, kv_cache=False, **kwargs))
    np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(cached[:, -1])) > 1                 # really sampled


@pytest.mark.parametrize("kv_cache", [True, False])
def test_temperature_zero_gives_the_argmax(kv_cache):
    model = small_gpt("sinusoidal")
    prompt = [4, 9]
    tokens = list(prompt)
    for _ in range(CONTEXT - len(prompt)):
        logits = numpy(model(np.asarray([tokens], "int32")))[0, -1]
        logits[list(model.exclude_ids)] = -np.inf
        tokens.append(int(np.argmax(logits)))
    out = numpy(model.generate(3, seed=1, prompt=prompt, temperature=0, kv_cache=kv_cache))
    for row in out:
        assert row.tolist() == tokens


def test_generate_shapes_range_and_seeds():
    model = small_gpt()
    out = numpy(model.generate(4, seed=2, prompt=[3, 4, 5], max_tokens=6))
    assert out.shape == (4, 9) and out.dtype.kind == "i"
    assert np.all(out[:, :3] == [3, 4, 5])
    assert tuple(model.output_range) == (0, VOCAB - 1)
    assert out.min() >= 0 and out.max() <= VOCAB - 1
    assert not np.isin(out[:, 3:], model.exclude_ids).any()
    full = numpy(model.generate(2, seed=2))                  # from [start_id], fills context
    assert full.shape == (2, CONTEXT) and np.all(full[:, 0] == model.start_id)
    np.testing.assert_array_equal(numpy(model.generate(4, seed=2, prompt=[3, 4, 5],
                                                       max_tokens=6)), out)
    assert not np.array_equal(numpy(model.generate(4, seed=3, prompt=[3, 4, 5],
                                                   max_tokens=6)), out)
    a, b = (numpy(model.generate(4, prompt=[3], max_tokens=8)) for _ in range(2))
    assert not np.array_equal(a, b)                          # seed=None: a new draw
    with pytest.raises(ValueError, match="context"):
        model.generate(1, prompt=[3] * 10, max_tokens=5)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(1, prompt=[3], max_tokens=2, temperature=-1)


def test_logits_shape():
    model = small_gpt()
    assert tuple(model(token_batch(np.random.default_rng(6), batch=3, length=7)).shape) \
        == (3, 7, VOCAB)


# --------------------------------------------------------------------------- saving
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_keras_round_trip(positions, tmp_path):
    model = small_gpt(positions)
    path = tmp_path / "gpt.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is tr.GPT and loaded.get_config() == model.get_config()
    tokens = token_batch(np.random.default_rng(7))
    np.testing.assert_array_equal(numpy(loaded(tokens)), numpy(model(tokens)))
    np.testing.assert_array_equal(numpy(loaded.generate(3, seed=4, prompt=[5])),
                                  numpy(model.generate(3, seed=4, prompt=[5])))


OTHER = {"tensorflow": "jax", "jax": "tensorflow"}.get(keras.backend.backend())


def save_for_the_other_backend(folder):
    """Run under the other backend's subprocess: a tiny GPT, its logits and its samples."""
    folder = Path(folder)
    model = small_gpt()
    model.save(folder / "gpt.keras")
    np.save(folder / "logits.npy", numpy(model(token_batch(np.random.default_rng(7)))))
    np.save(folder / "tokens.npy", numpy(model.generate(3, seed=4, prompt=[5])))


def test_a_file_saved_under_the_other_backend(tmp_path):
    if OTHER is None:
        pytest.skip("cross-backend loading is checked between tensorflow and jax")
    env = {**os.environ, "KERAS_BACKEND": OTHER, "TF_CPP_MIN_LOG_LEVEL": "3",
           "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_transformer as t; t.save_for_the_other_backend({str(tmp_path)!r})")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    loaded = keras.models.load_model(tmp_path / "gpt.keras")
    logits = numpy(loaded(token_batch(np.random.default_rng(7))))
    np.testing.assert_allclose(logits, np.load(tmp_path / "logits.npy"), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_array_equal(numpy(loaded.generate(3, seed=4, prompt=[5])),
                                  np.load(tmp_path / "tokens.npy"))


# --------------------------------------------------------------------------- training
def test_one_training_step_lowers_the_loss_on_real_reviews(shared_data):
    import gdl.data

    reviews = [r["description"].lower() for r in gdl.data.wine_reviews()[:64]]
    vectorize = keras.layers.TextVectorization(max_tokens=500, output_sequence_length=33)
    vectorize.adapt(reviews)
    ids = np.asarray(vectorize(reviews), "int32")                # (64, 33)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    keras.utils.set_random_seed(0)
    model = tr.GPT(500, 32, embed_dim=32, num_heads=2, num_blocks=1, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = float(numpy(model.token_nll(inputs, targets)))
    assert before == pytest.approx(np.log(500), rel=0.05)     # untrained: about uniform
    history = model.fit(inputs, targets, batch_size=64, epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(before, rel=1e-4)
    after = float(numpy(model.token_nll(inputs, targets)))
    assert after < before - 0.01


def test_compile_takes_one_optimizer():
    model = small_gpt()
    with pytest.raises(TypeError, match="optimizer"):
        model.compile(generator_optimizer="adam")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))


# --------------------------------------------------------------------------- the viewer
def test_attention_viewer():
    from gdl.viz.attention import attention_viewer

    model = small_gpt()
    tokens = token_batch(np.random.default_rng(9), batch=1, length=6)
    weights = np.stack([w[0] for w in model.attention_weights(tokens)])   # (2, 2, 6, 6)
    words = ["a", "b", "a", "c", "a", "d"]                   # repeated tokens stay apart
    fig = attention_viewer(weights, words, title="test")
    assert len(fig.data) == 2 * (2 + 1)                      # heads plus a mean per layer
    assert [t.visible for t in fig.data] == [True] + [False] * 5
    assert len(set(fig.data[0].x)) == 6
    assert fig.data[0].z[0][1] is None                       # the future is blank
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == 6 and buttons[4].args[0]["visible"][4]
    with pytest.raises(ValueError):
        attention_viewer(weights, words[:5])
