"""Tests of chapter 11's models: the two-headed music transformer (gdl.models.music) and
MuseGAN with its data windows and metrics (gdl.models.musegan). Tiny shapes throughout;
the real-data tests read GDL_DATA_DIR and skip without it."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import gdl.data
from gdl.models import gan
from gdl.models import music
from gdl.models import musegan as mg

CELLO_DIR = gdl.data.data_dir() / "bach-cello"
JSB_FILE = gdl.data.data_dir() / "jsb-chorales" / "Jsb16thSeparated.npz"
needs_cello = pytest.mark.skipif(not CELLO_DIR.is_dir(),
                                 reason=f"Bach cello-suite MIDI files not in {CELLO_DIR}")
needs_jsb = pytest.mark.skipif(not JSB_FILE.is_file(),
                               reason=f"JSB chorales not at {JSB_FILE}")


def numpy(x):
    return ops.convert_to_numpy(x)


# =========================================================================== transformer
NOTES, DURATIONS, LEN = 12, 7, 16


def small_transformer(**kwargs):
    settings = dict(max_len=LEN, embed_dim=16, heads=2, key_dim=8, ff_dim=16, blocks=2,
                    dropout=0.0, seed=0)
    return music.build_music_transformer(NOTES, DURATIONS, **{**settings, **kwargs})


def token_batch(rng, n=3, length=LEN):
    return (rng.integers(2, NOTES, (n, length)).astype("int32"),
            rng.integers(2, DURATIONS, (n, length)).astype("int32"))


def test_transformer_shapes_and_heads():
    model = small_transformer()
    notes, durations = token_batch(np.random.default_rng(0))
    out = model([notes, durations])
    assert set(out) == {"note", "duration"}
    assert tuple(out["note"].shape) == (3, LEN, NOTES)
    assert tuple(out["duration"].shape) == (3, LEN, DURATIONS)
    for head in out.values():                       # softmax heads: distributions
        np.testing.assert_allclose(numpy(head).sum(-1), 1.0, atol=1e-5)
    short = model([notes[:, :5], durations[:, :5]])  # any length up to max_len
    assert tuple(short["note"].shape) == (3, 5, NOTES)
    # the embeddings are concatenated, half the width each
    assert model.get_layer("note_embedding").output_dim == 8
    assert model.get_layer("duration_embedding").output_dim == 8


@pytest.mark.parametrize("changed", ["note", "duration"])
def test_transformer_is_causal_for_both_heads(changed):
    model = small_transformer()
    rng = np.random.default_rng(1)
    notes, durations = token_batch(rng)
    j = 9
    notes2, durations2 = notes.copy(), durations.copy()
    if changed == "note":
        notes2[:, j] = (notes2[:, j] - 2 + 1) % (NOTES - 2) + 2
    else:
        durations2[:, j] = (durations2[:, j] - 2 + 1) % (DURATIONS - 2) + 2
    a, b = model([notes, durations]), model([notes2, durations2])
    for head in ("note", "duration"):
        before, after = numpy(a[head]), numpy(b[head])
        np.testing.assert_allclose(before[:, :j], after[:, :j], atol=1e-6)
        assert np.abs(before[:, j:] - after[:, j:]).max() > 1e-4   # later ones do see it


def test_position_codes_are_chapter_9s():
    from gdl.models.transformer import sinusoidal_positions

    layer = music.SinePositions(LEN)
    x = np.zeros((2, 5, 16), "float32")
    np.testing.assert_allclose(numpy(layer(x))[1], sinusoidal_positions(LEN, 16)[:5])


def favour(model, head, ids, amount=30.0):
    """Make the head's output put almost all its mass on `ids`."""
    dense = model.get_layer(head)
    kernel, bias = dense.get_weights()
    bias[list(ids)] += amount
    dense.set_weights([kernel, bias])


def test_generate_respects_the_vocabulary_and_never_draws_excluded_ids():
    model = small_transformer()
    favour(model, "note", [0, 1, 2])              # padding, unknown and id 2 dominate
    favour(model, "duration", [0, 1])
    notes, durations = music.generate(model, [3, 4], [2, 2], steps=20,
                                      note_temperature=1.0, duration_temperature=1.0,
                                      seed=0, exclude_ids=(0, 1, 2))
    assert notes.shape == durations.shape == (22,)
    assert notes.dtype == durations.dtype == np.int32
    np.testing.assert_array_equal(notes[:2], [3, 4])
    new_n, new_d = notes[2:], durations[2:]
    assert new_n.min() >= 3 and new_n.max() < NOTES
    assert new_d.min() >= 2 and new_d.max() < DURATIONS
    # default exclusions: padding and unknown only; 2 is now by far the likeliest note
    notes, durations = music.generate(model, [3], [2], steps=10, seed=0)
    assert (notes[1:] == 2).all() and durations[1:].min() >= 2


def test_generate_batches_seeds_temperatures_and_a_sliding_context():
    model = small_transformer()
    rng = np.random.default_rng(2)
    prompt_n, prompt_d = token_batch(rng, n=2, length=4)
    steps = LEN + 4                                     # longer than the context
    a = music.generate(model, prompt_n, prompt_d, steps, 1.0, 1.0, seed=5)
    b = music.generate(model, prompt_n, prompt_d, steps, 1.0, 1.0, seed=5)
    c = music.generate(model, prompt_n, prompt_d, steps, 1.0, 1.0, seed=6)
    assert a[0].shape == a[1].shape == (2, 4 + steps)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert (a[0] != c[0]).any() or (a[1] != c[1]).any()
    # temperature 0 is the argmax of the allowed ids, the same for any seed
    g0 = music.generate(model, prompt_n, prompt_d, 3, 0.0, 0.0, seed=1)
    g1 = music.generate(model, prompt_n, prompt_d, 3, 0.0, 0.0, seed=2)
    np.testing.assert_array_equal(g0[0], g1[0])
    out = model([prompt_n, prompt_d])
    probs = numpy(out["note"])[:, -1]
    probs[:, :2] = 0
    np.testing.assert_array_equal(g0[0][:, 4], probs.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        music.generate(model, [3], [2], 1, note_temperature=-1)


def test_token_windows_and_pairs():
    notes = [np.arange(2, 12), np.arange(2, 5)]           # 10 and 3 tokens
    durations = [np.full(10, 3), np.full(3, 4)]
    n, d = music.token_windows(notes, durations, length=4, stride=3)
    # piece 1: starts 0, 3, 6 (< 10 - 1); piece 2: start 0, padded
    assert n.shape == d.shape == (4, 5)
    np.testing.assert_array_equal(n[0], [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(n[2], [8, 9, 10, 11, 0])
    np.testing.assert_array_equal(n[3], [2, 3, 4, 0, 0])
    np.testing.assert_array_equal(d[3], [4, 4, 4, 0, 0])
    x, y = music.training_pairs(n, d)
    np.testing.assert_array_equal(x[0], n[:, :-1])
    np.testing.assert_array_equal(y["note"], n[:, 1:])
    np.testing.assert_array_equal(y["duration"], d[:, 1:])


def test_the_loss_masks_padding_and_sums_the_heads():
    model = music.compile_music_transformer(small_transformer())
    rng = np.random.default_rng(3)
    notes, durations = token_batch(rng, n=4, length=LEN + 1)
    notes[:, -5:] = durations[:, -5:] = music.PAD_ID          # padded ends
    x, y = music.training_pairs(notes, durations)
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    out = model(x)
    for head in ("note", "duration"):
        p = numpy(out[head])
        target = y[head]
        nll = -np.log(np.take_along_axis(p, target[..., None], -1)[..., 0])
        real = target != music.PAD_ID
        expected = nll[real].mean()
        assert logs[f"{head}_loss"] == pytest.approx(expected, rel=1e-4)
        assert expected != pytest.approx(nll.mean(), rel=1e-3)   # masking matters here
    assert logs["loss"] == pytest.approx(logs["note_loss"] + logs["duration_loss"], rel=1e-4)


def test_one_transformer_training_step_is_finite():
    model = music.compile_music_transformer(small_transformer(dropout=0.1))
    model.run_eagerly = keras.backend.backend() == "tensorflow"   # one step: skip tracing
    notes, durations = token_batch(np.random.default_rng(4), n=8, length=LEN + 1)
    history = model.fit(*music.training_pairs(notes, durations), batch_size=8, epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_transformer_keras_round_trip(tmp_path):
    model = small_transformer()
    x = token_batch(np.random.default_rng(5))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for head in ("note", "duration"):
        np.testing.assert_allclose(numpy(loaded(list(x))[head]), numpy(model(list(x))[head]),
                                   atol=1e-6)


@needs_cello
def test_the_loss_falls_on_real_cello_tokens():
    from gdl.data.music import bach_cello

    tokens = bach_cello()
    note_vocab, duration_vocab = tokens.note_vocabulary(), tokens.duration_vocabulary()
    notes, durations = music.token_windows(
        [note_vocab.encode(n) for n in tokens.notes],
        [duration_vocab.encode(d) for d in tokens.durations], length=32)
    x, y = music.training_pairs(notes[:64], durations[:64])        # 64 real windows
    model = music.build_music_transformer(len(note_vocab), len(duration_vocab), max_len=32,
                                          embed_dim=32, heads=2, key_dim=16, ff_dim=32,
                                          blocks=1, dropout=0.0, seed=0)
    music.compile_music_transformer(model, learning_rate=3e-3)
    first = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    for _ in range(30):
        model.train_on_batch(x, y)
    last = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert first["note_loss"] == pytest.approx(np.log(len(note_vocab)), rel=0.15)
    assert last["note_loss"] < first["note_loss"] - 0.5
    assert last["duration_loss"] < first["duration_loss"] - 0.5


# =========================================================================== MuseGAN
Z, TRACKS, BARS, STEPS, PITCHES = 4, 4, 2, 16, 84


def small_generator(tracks=TRACKS):
    keras.utils.set_random_seed(0)
    return mg.build_musegan_generator(tracks, BARS, STEPS, PITCHES, Z, temporal_filters=8,
                                      units=16, time_filters=(8, 8, 8), pitch_filters=8)


def small_critic(tracks=TRACKS):
    keras.utils.set_random_seed(1)
    return mg.build_musegan_critic(tracks, BARS, STEPS, PITCHES, filters=(4,) * 8, units=8)


def latents(rng, n=4):   # one batch size: JAX compiles each eager op once per shape
    return [rng.normal(size=(n, Z)).astype("float32"), rng.normal(size=(n, Z)).astype("float32"),
            rng.normal(size=(n, TRACKS, Z)).astype("float32"),
            rng.normal(size=(n, TRACKS, Z)).astype("float32")]


def test_musegan_shapes():
    generator, critic = small_generator(), small_critic()
    assert [tuple(i.shape[1:]) for i in generator.inputs] == [(Z,), (Z,), (TRACKS, Z),
                                                              (TRACKS, Z)]
    music_ = numpy(generator(latents(np.random.default_rng(0)), training=False))
    assert music_.shape == (4, BARS, STEPS, PITCHES, TRACKS)
    for k in range(TRACKS):                                   # one (bars, steps, pitches) per track
        assert music_[..., k].shape == (4, BARS, STEPS, PITCHES)
    assert np.abs(music_).max() <= 1.0                        # tanh
    assert tuple(critic(music_).shape) == (4,)
    assert not any("normalization" in type(layer).__name__.lower() for layer in critic.layers)
    temporal = mg.build_temporal_network(Z, 3, filters=8)
    assert tuple(temporal(np.zeros((2, Z), "float32")).shape) == (2, 3, Z)
    bar = mg.build_bar_generator(Z, STEPS, PITCHES, 16, (8, 8, 8), 8)
    assert tuple(bar(np.zeros((2, 4 * Z), "float32")).shape) == (2, 1, STEPS, PITCHES, 1)


@pytest.mark.parametrize("kernel", [(2, 1), (1, 12)])
def test_upsample_blocks_is_a_transposed_convolution_with_kernel_equal_to_stride(kernel):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 1, 6)).astype("float32")              # (B, steps, pitches, C)
    conv = keras.layers.Conv2DTranspose(5, kernel, strides=kernel, padding="same")
    expected = numpy(conv(x))
    k, b = conv.get_weights()                                         # (kh, kw, out, in)
    factor = max(kernel)
    taps = k[:, 0] if kernel[1] == 1 else k[0]                        # (factor, out, in)
    inputs = keras.Input(x.shape[1:] if kernel[1] > 1 else (4, 6))
    model = keras.Model(inputs, mg.upsample_blocks(inputs, factor, 5))
    model.layers[1].set_weights([np.transpose(taps, (2, 0, 1)).reshape(6, factor * 5),
                                 np.tile(b, factor)])
    got = numpy(model(x if kernel[1] > 1 else x[:, :, 0]))
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_melody_and_groove_reach_only_their_track_chords_and_style_reach_all(training):
    generator = small_generator()
    rng = np.random.default_rng(1)
    z = latents(rng)
    base = numpy(generator(z, training=training))
    for which in (2, 3):                       # melody, groove: per track
        for k in range(TRACKS):
            changed = [v.copy() for v in z]
            changed[which][:, k] += 1.0
            out = numpy(generator(changed, training=training))
            others = [j for j in range(TRACKS) if j != k]
            np.testing.assert_array_equal(out[..., others], base[..., others])
            assert np.abs(out[..., k] - base[..., k]).max() > 0
    for which in (0, 1):                       # chords, style: shared
        changed = [v.copy() for v in z]
        changed[which] += 1.0
        out = numpy(generator(changed, training=training))
        for k in range(TRACKS):
            assert np.abs(out[..., k] - base[..., k]).max() > 0


def linear_critic(w, b=0.2):
    """critic(x) = <w, x> + b over a 5-D sample: its input gradient is w everywhere."""
    x = inputs = keras.Input(w.shape)
    dense = keras.layers.Dense(1)
    score = dense(keras.layers.Flatten()(x))[:, 0]
    dense.set_weights([w.reshape(-1, 1), np.array([b], "float32")])
    return keras.Model(inputs, score)


def test_the_gradient_penalty_norm_runs_over_all_non_batch_axes():
    rng = np.random.default_rng(2)
    shape = (2, 4, 6, 3)                              # (bars, steps, pitches, tracks)
    w = (rng.normal(size=shape) * 0.1).astype("float32")
    w[..., 0] *= 5.0                                  # tracks of very different norms
    critic = linear_critic(w)
    real = ops.convert_to_tensor(rng.uniform(-1, 1, (8,) + shape).astype("float32"))
    fake = ops.convert_to_tensor(rng.uniform(-1, 1, (8,) + shape).astype("float32"))
    gp = float(mg.gradient_penalty(critic, real, fake, seed=3))
    whole = (np.linalg.norm(w) - 1.0) ** 2            # the norm over all four axes
    assert gp == pytest.approx(whole, rel=1e-4)
    # gdl.models.gan.gradient_penalty as it stands sums axes (1, 2, 3) only: on 5-D
    # samples that is one norm per track, a different number (the notebook's defect)
    per_track = np.mean([(np.linalg.norm(w[..., k]) - 1.0) ** 2 for k in range(3)])
    weights = gan.interpolation_weights(8, seed=3)[..., None]      # (8, 1, 1, 1, 1)
    partial = float(gan.gradient_penalty(critic, real, fake, weights=weights))
    assert partial == pytest.approx(per_track, rel=1e-4)
    assert abs(partial - whole) > 0.1


def test_the_penalty_interpolates_with_one_uniform_weight_per_sample():
    """A critic c(x) = sum(x**2) / 2 has gradient x, so the penalty depends on where on
    the line real-fake each sample is taken: with real = 1 and fake = -1 everywhere,
    x_hat = 2w - 1 and the gradient norm is |2w - 1| sqrt(D)."""
    shape = (2, 1, 2, 2)
    d = int(np.prod(shape))
    inputs = keras.Input(shape)
    critic = keras.Model(inputs, ops.sum(ops.square(inputs), axis=(1, 2, 3, 4)) / 2)
    n = 4000
    gp = float(mg.gradient_penalty(critic, ops.ones((n,) + shape), -ops.ones((n,) + shape),
                                   seed=7))
    # E[(|2w - 1| sqrt(d) - 1)^2] for w ~ U(0, 1): |2w - 1| ~ U(0, 1), so d/3 - sqrt(d) + 1
    assert gp == pytest.approx(d / 3 - np.sqrt(d) + 1, rel=0.05)


def test_musegan_latents_generate_and_one_training_step():
    # two tracks: half the graph to compile (JAX compiles the whole step)
    model = mg.MuseGAN(small_generator(2), small_critic(2), latent_dim=Z, critic_steps=2)
    assert model.n_tracks == 2
    z = model.latent(4, seed=1)
    assert [tuple(v.shape) for v in z] == [(4, Z), (4, Z), (4, 2, Z), (4, 2, Z)]
    assert not np.allclose(numpy(z[0]), numpy(z[1]))       # chords and style differ
    a, b = model.generate(4, seed=4), model.generate(4, seed=4)
    assert tuple(a.shape) == (4, BARS, STEPS, PITCHES, 2)
    np.testing.assert_array_equal(numpy(a), numpy(b))
    # eager on TensorFlow: tracing this graph costs more than one step
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-3, 0.5, 0.9),
                  discriminator_optimizer=keras.optimizers.Adam(1e-3, 0.5, 0.9),
                  run_eagerly=keras.backend.backend() == "tensorflow")
    rng = np.random.default_rng(3)
    windows = rng.integers(40, 80, (8, BARS * STEPS, 2))
    real = mg.pitches_to_rolls(windows)
    before = [w.copy() for w in model.generator.get_weights()]
    history = model.fit(real, batch_size=8, epochs=1, verbose=0)     # 2 critic steps of 4
    for key in ("c_loss", "w_distance", "gp", "g_loss"):
        assert np.isfinite(history.history[key][0]), key
    after = model.generator.get_weights()
    assert any(not np.array_equal(x, y) for x, y in zip(before, after))


def test_musegan_keras_round_trip(tmp_path):
    model = mg.MuseGAN(small_generator(), small_critic(), latent_dim=Z, critic_steps=3)
    model.save(tmp_path / "musegan.keras")
    loaded = keras.models.load_model(tmp_path / "musegan.keras")
    assert isinstance(loaded, mg.MuseGAN) and loaded.critic_steps == 3
    np.testing.assert_allclose(numpy(loaded.generate(4, seed=1)),
                               numpy(model.generate(4, seed=1)), atol=1e-6)


# --------------------------------------------------------------------- data
def test_windows_count_and_content():
    chorales = [np.arange(40 * 4).reshape(40, 4), np.zeros((20, 4), int),
                np.ones((64, 4), int), np.full((32, 4), 7)]
    for stride in (1, 4, 16, 32):
        windows = mg.chorale_windows(chorales, stride=stride)
        expected = sum(max(0, (len(c) - 32) // stride + 1) for c in chorales)
        assert windows.shape == (expected, 32, 4)
    windows = mg.chorale_windows(chorales[:1], stride=4)
    np.testing.assert_array_equal(windows[1], chorales[0][4:36])   # not only the first bars


@needs_jsb
def test_all_windows_of_the_real_training_chorales():
    from gdl.data.music import jsb_chorales

    train = jsb_chorales().train
    windows = mg.chorale_windows(train)                 # stride 16: one bar
    assert len(windows) == sum((len(c) - 32) // 16 + 1 for c in train)
    assert len(windows) > 10 * len(train)               # far more than one per chorale
    rolls = mg.pitches_to_rolls(windows)
    assert rolls.shape == (len(windows), 2, 16, 84, 4) and rolls.dtype == np.float32
    assert set(np.unique(rolls)) == {-1.0, 1.0}
    np.testing.assert_array_equal(mg.rolls_to_pitches(rolls), windows)


def test_one_hot_round_trip_with_rests():
    rng = np.random.default_rng(4)
    windows = rng.integers(mg.LOWEST_PITCH, mg.LOWEST_PITCH + 84, (6, 32, 4))
    windows[rng.random(windows.shape) < 0.2] = -1                  # rests
    rolls = mg.pitches_to_rolls(windows)
    assert rolls.shape == (6, 2, 16, 84, 4)
    assert ((rolls == 1).sum(axis=3) == (windows >= 0).reshape(6, 2, 16, 4)).all()
    rest = windows.reshape(6, 2, 16, 4) < 0
    assert (rolls.max(axis=3)[rest] == -1).all()                   # a rest: all -1
    np.testing.assert_array_equal(mg.rolls_to_pitches(rolls), windows)
    # generated values: the loudest pitch wins, silence below the threshold
    soft = rolls * 0.3 - 0.1                                       # on 0.2, off -0.4
    np.testing.assert_array_equal(mg.rolls_to_pitches(soft, threshold=0.0), windows)
    assert (mg.rolls_to_pitches(soft, threshold=0.25) == -1).all()
    with pytest.raises(ValueError, match="outside"):
        mg.pitches_to_rolls(np.full((1, 32, 4), 12))


# --------------------------------------------------------------------- metrics
C4, D4, E4, G4, G3, C3, C2 = 60, 62, 64, 67, 55, 48, 36


def hand_made_roll():
    """One sample, 2 bars of 16 steps, 4 tracks:
    track 0: a C-major triad for all of bar 0; in bar 1 C4 for 2 steps (2-3), D4 for 4 (4-7)
    track 1: silent;  track 2: G3 through bar 0, silent in bar 1;
    track 3: C3 and C4 for 8 steps in bar 0, C2 through bar 1."""
    roll = np.zeros((1, 2, 16, 84, 4), bool)

    def play(track, bar, steps, *pitches):
        for p in pitches:
            roll[0, bar, steps, p - mg.LOWEST_PITCH, track] = True

    play(0, 0, slice(0, 16), C4, E4, G4)
    play(0, 1, slice(2, 4), C4)
    play(0, 1, slice(4, 8), D4)
    play(2, 0, slice(0, 16), G3)
    play(3, 0, slice(0, 8), C3, C4)
    play(3, 1, slice(0, 16), C2)
    return roll


def test_metrics_on_a_hand_made_roll():
    roll = hand_made_roll()
    np.testing.assert_array_equal(mg.empty_bars(roll), [0.0, 1.0, 0.5, 0.0])
    np.testing.assert_array_equal(mg.used_pitch_classes(roll), [2.5, np.nan, 1.0, 1.0])
    lengths = mg.note_lengths(roll)
    assert sorted(lengths[0]) == [2, 4, 16, 16, 16] and sorted(lengths[3]) == [8, 8, 16]
    np.testing.assert_array_equal(mg.qualified_notes(roll), [0.8, np.nan, 1.0, 1.0])
    np.testing.assert_array_equal(mg.qualified_notes(roll, min_length=2), [1, np.nan, 1, 1])
    # the same roll in [-1, 1], as the generator writes it, gives the same numbers
    scaled = np.where(roll, 0.7, -0.9)
    np.testing.assert_array_equal(mg.empty_bars(scaled), mg.empty_bars(roll))
    np.testing.assert_array_equal(mg.qualified_notes(scaled), mg.qualified_notes(roll))


def test_a_note_held_over_the_bar_line_is_one_note():
    roll = np.zeros((1, 2, 16, 84, 1), bool)
    roll[0, 0, 14:, 30, 0] = roll[0, 1, :1, 30, 0] = True          # 2 + 1 steps
    assert list(mg.note_lengths(roll)[0]) == [3]
    assert mg.qualified_notes(roll)[0] == 1.0


def centroid_by_hand(weights):
    """Harte et al.'s centroid as three complex numbers: radius * mean of e^(i l angle)."""
    l, w = np.arange(12), np.asarray(weights, float) / np.sum(weights)
    return np.array([r * np.sum(w * np.exp(1j * l * a))
                     for r, a in ((1, 7 * np.pi / 6), (1, 3 * np.pi / 2), (0.5, 2 * np.pi / 3))])


def test_tonal_centroid_and_distance():
    one = np.eye(12)
    np.testing.assert_allclose(np.linalg.norm(mg.tonal_centroid(one), axis=-1), 1.5)
    roll = hand_made_roll()
    assert mg.tonal_distance(roll, 0, 0) == 0.0
    # tracks 0 and 2 both play only in bar 0: the C-major triad against G
    triad = np.zeros(12)
    triad[[0, 4, 7]] = 1
    expected = np.linalg.norm(centroid_by_hand(triad) - centroid_by_hand(one[7]))
    assert mg.tonal_distance(roll, 0, 2) == pytest.approx(expected, rel=1e-9)
    assert np.isnan(mg.tonal_distance(roll, 0, 1))                # track 1 never plays
    # a fifth is closer than a tritone
    assert (np.linalg.norm(mg.tonal_centroid(one[0]) - mg.tonal_centroid(one[7]))
            < np.linalg.norm(mg.tonal_centroid(one[0]) - mg.tonal_centroid(one[6])))
