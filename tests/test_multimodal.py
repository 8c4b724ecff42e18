"""Tests of chapter 13's pieces: the caption template and tokenizer (gdl.data.captions) and the
multimodal models (gdl.models.multimodal): CLIP's loss and encoders, classifier-free guidance,
latent diffusion, and Flamingo's resampler and gated cross-attention."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from gdl.data import captions
from gdl.models import multimodal as mm
from gdl.models.transformer import GPT
from gdl.paths import DataError

TOK = captions.CaptionTokenizer()


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


# --------------------------------------------------------------------------- captions
def test_every_attribute_has_words_and_the_template_round_trips():
    phrased = set(captions.ADJECTIVES) | set(captions.FEATURES) | set(captions.ACCESSORIES)
    assert phrased | {"Male", "Blurry"} == set(captions.ATTRIBUTES)
    assert len(captions.ATTRIBUTES) == 40
    rng = np.random.default_rng(0)
    for i, name in enumerate(captions.ATTRIBUTES):        # each attribute on its own, both ways
        for value in (0.0, 1.0):
            a = np.zeros(40, "float32")
            a[i] = value
            text = captions.caption(a, rng)
            np.testing.assert_array_equal(captions.parse(text), a, err_msg=f"{name}: {text}")
    attrs = (rng.random((300, 40)) < 0.3).astype("float32")   # and in random combinations
    long = captions.CaptionTokenizer(max_len=128)     # random attributes are more than real faces have
    for a in attrs:
        text = captions.caption(a, rng)
        np.testing.assert_array_equal(captions.parse(text), a, err_msg=text)
        assert long.decode(long.encode([text]))[0] == text


def test_partial_captions_only_state_what_is_true():
    rng = np.random.default_rng(1)
    attrs = (rng.random((200, 40)) < 0.3).astype("float32")
    beard = captions.ATTRIBUTES.index("No_Beard")
    texts = [captions.caption(a, rng, mention=0.5) for a in attrs]
    said = np.stack([captions.parse(t) for t in texts])
    stated = np.delete(said, beard, 1) > 0
    assert not (stated & (np.delete(attrs, beard, 1) == 0)).any()   # never says what is not there
    assert (stated.sum(1) < np.delete(attrs, beard, 1).sum(1)).any()  # and leaves things out
    assert any(" person" in t for t in texts)


def test_tokenizer_rejects_unknown_words_and_long_captions():
    with pytest.raises(DataError, match="not a caption word"):
        TOK.encode(["a woman with purple hair"])
    with pytest.raises(ValueError, match="max_len"):
        captions.CaptionTokenizer(max_len=5).encode(["a smiling woman with blond hair"])
    ids = TOK.encode(["a woman"])
    assert ids[0, 0] == TOK.start_id and ids[0, 3] == TOK.end_id and (ids[0, 4:] == 0).all()


def test_split_keeps_the_combination_out_of_training():
    rng = np.random.default_rng(2)
    attrs = (rng.random((1000, 40)) < 0.4).astype("float32")
    train, test, unseen = captions.split(attrs)
    cols = [captions.ATTRIBUTES.index(c) for c in captions.HELD_OUT_COMBINATION]
    assert not (attrs[train][:, cols] > 0).all(1).any()
    assert (attrs[unseen][:, cols] > 0).all(1).all() and len(unseen) > 0
    np.testing.assert_array_equal(test, np.arange(900, 1000))
    assert sorted(np.concatenate([train, test, unseen]).tolist()) == list(range(1000))


# --------------------------------------------------------------------------- CLIP
def test_contrastive_loss_matches_a_hand_computed_3x3_case_and_is_symmetric():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3], [-0.5, 0.2, 1.5]], "float32")

    def ce(rows):   # mean over rows of -log softmax(row)[i]
        return np.mean([math.log(np.exp(r).sum()) - r[i] for i, r in enumerate(rows)])

    expected = 0.5 * (ce(logits) + ce(logits.T))
    assert float(np_(mm.contrastive_loss(logits))) == pytest.approx(expected, rel=1e-6)
    assert float(np_(mm.contrastive_loss(logits.T))) == pytest.approx(expected, rel=1e-6)
    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(4, 8)).astype("float32"), rng.normal(size=(4, 8)).astype("float32")
    a = mm.contrastive_loss(mm.contrastive_logits(img, txt, 10.0))
    b = mm.contrastive_loss(mm.contrastive_logits(txt, img, 10.0))
    assert float(np_(a)) == pytest.approx(float(np_(b)), rel=1e-6)
    # matched pairs (identical embeddings) score lower than shuffled ones
    aligned = mm.contrastive_loss(mm.contrastive_logits(img, img, 10.0))
    assert float(np_(aligned)) < float(np_(mm.contrastive_loss(mm.contrastive_logits(img, img[::-1], 10.0))))


def small_clip(seed=0):
    keras.utils.set_random_seed(seed)
    model = mm.CLIP(mm.build_image_encoder(16, (8, 16), 8),
                    mm.TextEncoder(TOK.vocab_size, TOK.max_len, 16, 2, 1, 8))
    model([np.zeros((1, 16, 16, 3), "float32"), TOK.encode(["a woman"])])
    return model


def test_text_embedding_ignores_the_padding_after_the_end_token():
    clip = small_clip()
    ids = TOK.encode(["a smiling man with eyeglasses", "a woman"])
    short = ids[:, :12]                       # the same captions with less padding
    np.testing.assert_allclose(np_(clip.encode_text(ids)), np_(clip.encode_text(short)), atol=1e-5)
    other = ids.copy()
    other[1, 4:] = 0
    other[1, 3] = TOK.end_id                  # "a woman" unchanged, the first caption changed
    emb, emb_other = np_(clip.encode_text(ids)), np_(clip.encode_text(other))
    np.testing.assert_allclose(emb[1], emb_other[1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_clip_temperature_is_learned_and_capped_and_the_model_round_trips(tmp_path):
    clip = small_clip()
    assert float(np_(clip.scale)) == pytest.approx(1 / 0.07, rel=1e-5)
    clip.log_scale.assign(10.0)
    assert float(np_(clip.scale)) == pytest.approx(100.0, rel=1e-5)
    rng = np.random.default_rng(4)
    x, ids = rng.random((4, 16, 16, 3)).astype("float32"), TOK.encode(["a woman"] * 2 + ["a man"] * 2)
    clip.save(tmp_path / "clip.keras")
    again = keras.models.load_model(tmp_path / "clip.keras")
    np.testing.assert_allclose(np_(again([x, ids])), np_(clip([x, ids])), atol=1e-5)


def test_clip_loss_falls_on_real_captioned_faces(shared_data):
    import gdl.data

    celeba = gdl.data.celeba(limit=64)
    x = celeba.load(image_size=16)
    attrs = (celeba.attributes.to_numpy() > 0).astype("float32")
    ids = captions.caption_ids(attrs, TOK, variants=1, mention=1.0)[0]
    clip = small_clip(5)
    clip.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = float(np_(clip.compute_loss(y_pred=clip([x, ids]))))
    clip.fit([x, ids], batch_size=64, epochs=15, verbose=0, shuffle=False)
    after = float(np_(clip.compute_loss(y_pred=clip([x, ids]))))
    assert after < before - 0.3, (before, after)


# --------------------------------------------------------------------------- guidance
def small_guided(seed=0, value_range=(0.0, 1.0)):
    keras.utils.set_random_seed(seed)
    net = mm.build_conditional_unet(8, (8, 16), 1, 8, condition_dims=4)
    # a network that is not all zeros at its output, so the test sees the condition's effect
    net.get_layer("predicted_noise").kernel.assign(
        np.random.default_rng(seed).normal(0, 0.3, net.get_layer("predicted_noise").kernel.shape))
    return mm.GuidedDiffusion(net, [0.5] * 3, [0.25] * 3, seed=seed, value_range=value_range)


def test_guidance_scale_0_and_1_give_the_unconditional_and_conditional_predictions():
    rng = np.random.default_rng(6)
    c, u = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    np.testing.assert_allclose(np_(mm.guided_noise(c, u, 0.0)), u)
    np.testing.assert_allclose(np_(mm.guided_noise(c, u, 1.0)), c)
    np.testing.assert_allclose(np_(mm.guided_noise(c, u, 3.0)), u + 3 * (c - u))
    model = small_guided()
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    cond = rng.normal(size=(3, 4)).astype("float32")
    signal, noise = (np.full((3, 1, 1, 1), v, "float32") for v in (0.6, 0.8))
    net = model.ema_network
    conditional = np_(net([x, noise**2, cond]))
    unconditional = np_(net([x, noise**2, np.zeros_like(cond)]))
    assert np.abs(conditional - unconditional).max() > 1e-3
    for scale, want in ((1.0, conditional), (0.0, unconditional)):
        got = np_(model.predict_noise(x, signal, noise, condition=cond, guidance=scale))
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_guided_diffusion_trains_samples_in_range_and_round_trips(tmp_path):
    model = small_guided(1)
    rng = np.random.default_rng(7)
    x = rng.random((16, 8, 8, 3)).astype("float32")
    cond = rng.normal(size=(16, 4)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit((x, cond), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    images = np_(model.generate(condition=cond[:2], guidance=2.0, seed=0, steps=3))
    assert images.shape == (2, 8, 8, 3) and images.min() >= 0 and images.max() <= 1
    with pytest.raises(ValueError, match="condition must be"):
        model.generate(3, condition=cond[:2])
    model.save(tmp_path / "g.keras")
    again = keras.models.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(np_(again.generate(condition=cond[:2], guidance=2.0, seed=0, steps=3)),
                               images, atol=1e-5)


def test_latent_diffusion_encodes_decodes_and_round_trips(tmp_path):
    from gdl.models.vae import build_decoder, build_encoder

    keras.utils.set_random_seed(8)
    encoder = build_encoder((16, 16, 3), 6, filters=(8, 16))
    decoder = build_decoder(6, (16, 16, 3), filters=(16, 8))
    net = mm.build_latent_denoiser(latent_dim=6, width=16, depth=1, embedding_dims=8, condition_dims=4)
    diffusion = mm.GuidedDiffusion(net, [0.0] * 6, [1.0] * 6, value_range=None, seed=8)
    model = mm.LatentDiffusion(encoder, decoder, diffusion)
    x = np.random.default_rng(8).random((5, 16, 16, 3)).astype("float32")
    latents = model.encode(x, batch_size=2)
    assert latents.shape == (5, 1, 1, 6)
    assert np_(model.decode(latents)).shape == (5, 16, 16, 3)
    cond = np.random.default_rng(9).normal(size=(3, 4)).astype("float32")
    sampled = np_(diffusion.generate(condition=cond, seed=1, steps=2))
    assert sampled.shape == (3, 1, 1, 6) and np.abs(sampled).max() > 0   # not clipped to [0, 1]
    images = np_(model.generate(condition=cond, seed=1, steps=2))
    assert images.shape == (3, 16, 16, 3) and images.min() >= 0 and images.max() <= 1
    model.save(tmp_path / "ld.keras")
    again = keras.models.load_model(tmp_path / "ld.keras")
    np.testing.assert_allclose(np_(again.generate(condition=cond, seed=1, steps=2)), images, atol=1e-5)


# --------------------------------------------------------------------------- Flamingo
def small_captioner(seed=0):
    clip = small_clip(seed)
    lm = GPT(TOK.vocab_size, TOK.max_len - 1, 16, 2, num_blocks=2, start_id=TOK.start_id,
             exclude_ids=[0, 1])
    lm(np.ones((1, 3), "int32"))
    return mm.Captioner(clip.image_encoder, lm, num_latents=4, num_heads=2), lm


def test_gated_cross_attention_is_the_identity_at_gate_zero():
    layer = mm.GatedCrossAttention(16, 2)
    layer.build((None, None, 16), (None, 4, 16))
    rng = np.random.default_rng(10)
    x, v = rng.normal(size=(2, 5, 16)).astype("float32"), rng.normal(size=(2, 4, 16)).astype("float32")
    np.testing.assert_array_equal(np_(layer(x, v)), x)
    layer.attention_gate.assign(0.5)
    assert np.abs(np_(layer(x, v)) - x).max() > 1e-3


def test_the_captioner_leaves_the_frozen_language_model_unchanged_at_initialisation(tmp_path):
    captioner, lm = small_captioner(11)
    rng = np.random.default_rng(11)
    x = rng.random((3, 16, 16, 3)).astype("float32")
    ids = TOK.encode(["a smiling woman", "a man with eyeglasses", "a person"])[:, :8]
    np.testing.assert_allclose(np_(captioner([x, ids])), np_(lm(ids)), atol=1e-6)
    trainable = {id(w) for w in captioner.trainable_weights}
    assert not any(id(w) in trainable for w in lm.weights + captioner.vision.weights)
    assert all(id(w) in trainable for g in captioner.gated for w in g.weights)
    resampled = np_(captioner.visual_tokens(x))
    assert resampled.shape == (3, 4, 16)
    captioner.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    lm_before = [np_(w) for w in lm.weights]
    captioner.fit([x, ids[:, :-1]], ids[:, 1:], batch_size=3, epochs=3, verbose=0)
    for w, before in zip(lm.weights, lm_before):
        np.testing.assert_array_equal(np_(w), before)
    out = captioner.caption(x, max_tokens=5, banned=(0, 1), end_id=TOK.end_id)
    assert out.shape == (3, 6) and (out[:, 0] == TOK.start_id).all()
    captioner.save(tmp_path / "cap.keras")
    again = keras.models.load_model(tmp_path / "cap.keras")
    np.testing.assert_allclose(np_(again([x, ids])), np_(captioner([x, ids])), atol=1e-5)
