"""Tests of gdl.data.music (cello-suite MIDI tokens, JSB chorales, piano rolls) and gdl.audio
(chapter 11): on the real files where GDL_DATA_DIR has them, and on broken copies."""
from __future__ import annotations

import base64
import io
import json
import shutil
import wave
from fractions import Fraction

import numpy as np
import pytest

import gdl.audio as A
from gdl.data import DataError, data_dir
from gdl.data import music as M

CELLO_DIR = data_dir() / "bach-cello"
CHORALES_FILE = data_dir() / "jsb-chorales" / "Jsb16thSeparated.npz"
needs_cello = pytest.mark.skipif(not CELLO_DIR.is_dir(),
                                 reason=f"the cello-suite MIDI files are not in GDL_DATA_DIR ({CELLO_DIR})")
needs_chorales = pytest.mark.skipif(not CHORALES_FILE.exists(),
                                    reason=f"the JSB chorales are not in GDL_DATA_DIR ({CHORALES_FILE})")


@pytest.fixture
def music_dirs(tmp_path, monkeypatch):
    """Empty GDL_DATA_DIR and GDL_CACHE_DIR in tmp_path, downloads off."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("GDL_DATA_DIR", str(data))
    monkeypatch.setenv("GDL_CACHE_DIR", str(cache))
    monkeypatch.setenv("GDL_OFFLINE", "1")
    return data, cache


def total(durations) -> Fraction:
    return sum((Fraction(d) for d in durations), Fraction(0))


# --------------------------------------------------------------------------- MIDI <-> tokens
@needs_cello
def test_prelude_opens_with_its_famous_arpeggio():
    notes, durations = M.midi_to_tokens(CELLO_DIR / "cs1-1pre.mid")
    assert notes[:8] == ["G2", "D3", "B3", "A3", "B3", "D3", "B3", "D3"]
    assert durations[:8] == ["1/4"] * 8
    assert total(durations) == 168          # quarter notes; shared/data/MANIFEST.md


@needs_cello
def test_round_trip_preserves_pitches_and_durations(tmp_path):
    """cs2-4sar has double and triple stops, a note tied over a bar line and 1/24 durations."""
    source = CELLO_DIR / "cs2-4sar.mid"
    notes, durations = M.midi_to_tokens(source)
    assert any("." in n for n in notes) and "1/24" in durations
    assert total(durations) == 168
    out = M.tokens_to_midi(notes, durations, tmp_path / "out" / "again.mid", tempo=60)
    assert out.exists() and not list(out.parent.glob(".*.part"))    # written atomically
    assert M.midi_to_tokens(out) == (notes, durations)
    # The pitches are those music21 itself reads from the source file.
    from music21 import converter

    heard = {p.midi for n in converter.parse(source).flatten().notes for p in n.pitches}
    assert {p for n in notes for p in A.event_pitches(n)} == heard


@needs_cello
def test_top_note_mode_keeps_one_pitch_per_event():
    joined, durations = M.midi_to_tokens(CELLO_DIR / "cs1-4sar.mid")
    top, top_durations = M.midi_to_tokens(CELLO_DIR / "cs1-4sar.mid", chords="top")
    assert top_durations == durations and not any("." in n for n in top)
    for j, t in zip(joined, top):
        assert t == j.split(".")[-1]         # chords are written low to high
    with pytest.raises(ValueError):
        M.midi_to_tokens(CELLO_DIR / "cs1-4sar.mid", chords="bottom")


def test_tokens_and_names_agree_with_music21():
    from music21 import pitch

    for number in range(21, 109):
        name = M.pitch_name(number)
        assert name == pitch.Pitch(midi=number).nameWithOctave
        assert A.note_to_midi(name) == number
    assert A.note_to_midi("Bb3") == A.note_to_midi("B-3") == 58
    assert A.event_pitches("D3.A3.F#4") == (50, 57, 66) and A.event_pitches("rest") == ()
    assert M.duration_token(0.25) == "1/4" and M.duration_token(1.5) == "3/2" and M.duration_token(2) == "2"
    with pytest.raises(ValueError):
        A.note_to_midi("H2")


# --------------------------------------------------------------------------- the loader
@needs_cello
def test_all_36_movements_parse():
    suites = M.bach_cello()
    assert len(suites) == 36 and suites.files[0] == "cs1-1pre.mid" and suites.files[-1] == "cs6-6gig.mid"
    assert all(len(n) == len(d) > 100 for n, d in zip(suites.notes, suites.durations))
    assert 25_000 < suites.n_events < 32_000
    notes, durations = suites.note_vocabulary(), suites.duration_vocabulary()
    assert notes.tokens[:2] == ("", "[UNK]") and "G2" in notes.tokens and "rest" in notes.tokens
    assert durations.tokens[2] == "1/4"     # sixteenths dominate the suites
    ids = notes.encode(suites.notes[0][:5])
    assert notes.decode(ids) == suites.notes[0][:5]
    assert notes.encode(["Z9"]).tolist() == [1]


def test_missing_folder_says_what_to_put_where(music_dirs):
    data, _ = music_dirs
    with pytest.raises(DataError) as err:
        M.bach_cello()
    message = str(err.value)
    assert str(data / "bach-cello") in message and "jsbach.net" in message and "cs1-1pre.mid" in message
    (data / "bach-cello").mkdir()
    (data / "bach-cello" / "notes.txt").write_text("not music")
    with pytest.raises(DataError, match="no .mid files"):
        M.bach_cello()


@needs_cello
def test_corrupt_midi_file_is_named(music_dirs):
    data, _ = music_dirs
    folder = data / "bach-cello"
    folder.mkdir()
    shutil.copy(CELLO_DIR / "cs1-4sar.mid", folder)
    real = (CELLO_DIR / "cs1-1pre.mid").read_bytes()
    (folder / "cs1-1pre.mid").write_bytes(real[: len(real) // 2])  # truncated
    with pytest.raises(DataError) as err:
        M.bach_cello()
    assert str(folder / "cs1-1pre.mid") in str(err.value) and "corrupt" in str(err.value)


@needs_cello
def test_tokens_are_cached_under_the_cache_dir_and_reused(music_dirs, monkeypatch):
    data, cache = music_dirs
    folder = data / "bach-cello"
    folder.mkdir()
    for name in ("cs1-4sar.mid", "cs5-4sar.mid"):
        shutil.copy(CELLO_DIR / name, folder)
    first = M.bach_cello()
    written = list(cache.glob("bach-cello-*.json"))
    assert len(written) == 1 and not list(cache.glob(".*.part"))
    assert sorted(p.name for p in folder.iterdir()) == ["cs1-4sar.mid", "cs5-4sar.mid"]  # data only read
    assert json.loads(written[0].read_text())["files"] == first.files

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(M, "_parse_midi_bytes", no_parsing)
    second = M.bach_cello()
    assert (second.notes, second.durations) == (first.notes, first.durations)
    # Other bytes, other key: the cache is not reused.
    shutil.copy(CELLO_DIR / "cs1-5men.mid", folder / "cs5-4sar.mid")
    with pytest.raises(AssertionError, match="parsed again"):
        M.bach_cello()


def test_vocabulary_order_and_unknowns():
    vocab = M.build_vocabulary([["b", "a", "b"], ["c", "b", "a"]])
    assert vocab.tokens == ("", "[UNK]", "b", "a", "c")
    assert vocab.encode(["c", "x"]).tolist() == [4, 1]
    strict = M.build_vocabulary([["a"]], reserved=())
    with pytest.raises(KeyError):
        strict.encode(["b"])


# --------------------------------------------------------------------------- piano rolls
def test_piano_roll_marks_each_note_for_its_duration():
    roll = M.piano_roll(["G2", "rest", "D3.B3", 57], ["1/2", "1/4", "1", 0.25], steps_per_quarter=4)
    assert roll.shape == (128, 8) and roll.dtype == np.uint8
    assert roll[43, :2].all() and roll[:, 2].sum() == 0
    assert roll[50, 3:7].all() and roll[59, 3:7].all() and roll[57, 7] == 1
    assert roll.sum() == 2 + 4 + 4 + 1
    # A note shorter than a step still shows for one step.
    assert M.piano_roll(["G2"], ["1/24"]).shape == (128, 0)
    assert M.piano_roll(["G2", "A2"], ["1/24", "1"])[43].sum() == 1


@needs_cello
def test_piano_roll_of_a_movement_has_its_length():
    suites_notes, durations = M.midi_to_tokens(CELLO_DIR / "cs1-1pre.mid")
    roll = M.piano_roll(suites_notes, durations, steps_per_quarter=4)
    assert roll.shape == (128, 168 * 4)
    assert roll[:, :4].argmax(0).tolist() == [43, 50, 59, 57]    # G2 D3 B3 A3


# --------------------------------------------------------------------------- JSB chorales
@needs_chorales
def test_jsb_chorales_as_published():
    chorales = M.jsb_chorales()
    train, valid, test = chorales
    assert (len(train), len(valid), len(test)) == (229, 76, 77)
    everything = train + valid + test
    assert all(c.ndim == 2 and c.shape[1] == 4 and c.dtype == np.int64 for c in everything)
    lengths = [len(c) for c in everything]
    assert min(lengths) == 100 and max(lengths) == 640
    assert train[0][0].tolist() == [74, 70, 65, 58]              # soprano, alto, tenor, bass
    notes = np.concatenate([c.ravel() for c in everything])
    assert notes[notes >= 0].min() >= 36 and notes.max() <= 81
    assert sum(int((c == -1).sum()) for c in train) == 411        # NaN rests in the file
    sounding = np.concatenate([c for c in everything if (c >= 0).all()])
    assert (sounding[:, 0] >= sounding[:, 3]).mean() > 0.99       # soprano above bass


@needs_chorales
def test_chorale_piano_roll_is_one_hot_per_voice():
    chorale = M.jsb_chorales().train[0]
    roll = M.chorale_piano_roll(chorale)
    assert roll.shape == (4, len(chorale), 128) and roll.dtype == np.uint8
    assert (roll.sum(-1) == (chorale.T >= 0)).all()
    assert (roll.argmax(-1) == np.where(chorale.T >= 0, chorale.T, 0)).all()


def test_jsb_chorales_missing_says_where(music_dirs):
    data, _ = music_dirs
    with pytest.raises(DataError) as err:
        M.jsb_chorales()
    message = str(err.value)
    assert str(data / "jsb-chorales" / "Jsb16thSeparated.npz") in message
    assert "czhuang/JSB-Chorales-dataset" in message


def test_jsb_chorales_malformed_file_is_refused(music_dirs, monkeypatch):
    data, _ = music_dirs
    path = data / "jsb-chorales" / "Jsb16thSeparated.npz"
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="corrupt or not the expected file"):   # sha256 first
        M.jsb_chorales()
    # A file with the right checksum but the wrong structure (a stand-in source accepts it).
    pieces = np.empty(2, dtype=object)
    pieces[0], pieces[1] = np.zeros((16, 3)), np.zeros((16, 3))
    np.savez(path, train=pieces, valid=pieces, test=pieces)
    from gdl.data.fetch import File, Source, file_digest

    stand_in = Source(M.JSB_CHORALES.name, M.JSB_CHORALES.folder, M.JSB_CHORALES.origin,
                      (File(M.JSB_CHORALES_FILE, None, {f"sha256:{file_digest(path, 'sha256')}": "test"}),))
    monkeypatch.setattr(M, "JSB_CHORALES", stand_in)
    with pytest.raises(DataError, match=r"train\[0\] should be a \(T, 4\) array"):
        M.jsb_chorales()


# --------------------------------------------------------------------------- the synthesiser
def fundamental(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sample_rate)[spectrum.argmax()])


def test_midi_to_hz():
    assert A.midi_to_hz(69) == pytest.approx(440.0)
    assert A.midi_to_hz(57) == pytest.approx(220.0)
    assert A.midi_to_hz(60) == pytest.approx(261.6256, abs=1e-3)
    np.testing.assert_allclose(A.midi_to_hz([57, 69, 81]), [220, 440, 880])


@pytest.mark.parametrize("pitch, hz", [(69, 440.0), (57, 220.0), ("G2", 97.999), ("A4", 440.0)])
def test_synthesised_note_has_its_pitch_and_length(pitch, hz):
    sr = 22050
    audio = A.synthesize([(pitch, 2)], sample_rate=sr, tempo=120)   # two quarters at 120 = 1 s
    assert audio.dtype == np.float32 and audio.shape == (sr,)
    assert np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0.5
    assert fundamental(audio, sr) == pytest.approx(hz, rel=0.01)


def test_synthesis_length_and_silent_note_edges():
    sr, tempo = 16000, 90
    events = [("G2", "1/4"), ("D3", "1/3"), ("rest", "1/2"), ("D3.A3.F#4", "3/2"), (45, 0.25)]
    audio = A.synthesize(events, sample_rate=sr, tempo=tempo)
    quarters = sum(A.quarter_length(d) for _, d in events)
    def sample(q):  # the sample at q quarter notes
        return round(float(q) * 60 / tempo * sr)

    assert len(audio) == sample(quarters)
    # Every note starts and ends at silence, so joins do not click.
    now = Fraction(0)
    for _, d in events:
        now += A.quarter_length(d)
        assert np.abs(audio[max(sample(now) - 2, 0):sample(now) + 2]).max() < 0.02
    assert np.abs(audio[sample(Fraction(7, 12)) + 1:sample(Fraction(13, 12)) - 1]).max() == 0.0   # the rest


def test_synthesis_from_a_piano_roll_matches_the_events():
    events = [("A3", 1), ("rest", "1/2"), ("E4", "1/2")]
    roll = M.piano_roll([e[0] for e in events], [e[1] for e in events], steps_per_quarter=4)
    from_roll = A.synthesize(roll, steps_per_quarter=4, tempo=120, sample_rate=8000)
    from_events = A.synthesize(events, tempo=120, sample_rate=8000)
    assert from_roll.shape == from_events.shape == (8000,)
    np.testing.assert_allclose(from_roll, from_events, atol=1e-6)
    assert A.synthesize([], sample_rate=8000).shape == (0,)


def test_wav_bytes_round_trip_through_wave():
    sr = 8000
    audio = A.synthesize([(60, 1), (64, 1)], sample_rate=sr, tempo=240)
    audio[10] = 1.5                                              # out of range: clipped
    data = A.to_wav_bytes(audio, sr)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, sr)
        assert wav.getnframes() == len(audio)
        back = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    expected = np.round(np.clip(audio.astype(np.float64), -1, 1) * 32767).astype(np.int16)
    assert (back == expected).all() and back[10] == 32767
    with pytest.raises(ValueError):
        A.to_wav_bytes(np.zeros((10, 2)), sr)


def test_audio_html_embeds_the_wav():
    audio = A.synthesize([("C4", 1)], sample_rate=8000, tempo=120)
    html = A.audio_html(audio, 8000)
    assert html.startswith("<audio controls") and html._repr_html_() == html
    encoded = html.split("data:audio/wav;base64,")[1].split('"')[0]
    assert base64.b64decode(encoded) == A.to_wav_bytes(audio, 8000)
    with pytest.raises(ValueError, match="max_seconds"):
        A.audio_html(np.zeros(8000 * 200, np.float32), 8000)


@needs_cello
def test_a_movement_can_be_heard():
    notes, durations = M.midi_to_tokens(CELLO_DIR / "cs1-1pre.mid")
    audio = A.synthesize(list(zip(notes[:32], durations[:32])), sample_rate=11025, tempo=80)
    assert len(audio) == round(8 * 60 / 80 * 11025)               # 32 sixteenths = 8 quarters
    assert 0.5 < np.abs(audio).max() <= 1.0
