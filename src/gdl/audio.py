"""A tiny NumPy synthesiser, so generated music can be heard in the page without a soundfont.

Notes are rendered by additive synthesis: a few harmonics with falling amplitudes (a soft,
bowed-string colour), shaped by an envelope that rises from zero at each note's start and
falls back to zero at its end, so consecutive notes join without clicks. The result is mono
float32 audio in [-1, 1]; :func:`to_wav_bytes` packs it as a 16-bit PCM WAV and
:func:`audio_html` embeds that WAV in an ``<audio controls>`` element (a base64 data URI),
so the built page plays it offline.

Pitches are MIDI note numbers (C4 = 60, A4 = 69 = 440 Hz) or note names in the spelling of
:mod:`gdl.data.music` ("G2", "F#4", "B-3" with ``-`` for a flat; "Bb3" also works).
Used in chapter 11 (music generation).
"""
from __future__ import annotations

import base64
import io
import re
import wave
from fractions import Fraction

import numpy as np

# Relative amplitudes of the harmonics 1, 2, 3, ...: a falling series like a bowed string's.
HARMONICS = (1.0, 0.5, 0.33, 0.2, 0.14, 0.1)
_NAME = re.compile(r"^([A-Ga-g])(#{1,2}|-{1,2}|b{1,2})?(\d+)$")
_STEP = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ALTER = {"#": 1, "-": -1, "b": -1}


def midi_to_hz(pitch):
    """Frequency in Hz of a MIDI note number (equal temperament, A4 = 69 = 440 Hz); arrays work."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def note_to_midi(name: str) -> int:
    """MIDI number of a note name with octave: "C4" → 60, "F#2" → 42, "B-3" (or "Bb3") → 58.

    Octaves follow the usual (and music21's) convention: C4 is middle C. Negative octaves
    are not supported ("C-1" reads as C-flat 1, as music21 reads it).
    """
    match = _NAME.match(name.strip())
    if match is None:
        raise ValueError(f"not a note name with an octave: {name!r} (expected e.g. 'G2', 'F#4', 'B-3')")
    letter, accidental, octave = match.groups()
    alter = sum(_ALTER[c] for c in accidental or "")
    number = 12 * (int(octave) + 1) + _STEP[letter.upper()] + alter
    if not 0 <= number <= 127:
        raise ValueError(f"{name!r} is MIDI note {number}, outside 0..127")
    return number


def event_pitches(pitch) -> tuple[int, ...]:
    """The MIDI numbers sounding in one event: () for a rest ("rest", None or a negative
    number), one for a note (a number or a name), several for a chord ("D3.A3.F#4" or a list)."""
    if pitch is None:
        return ()
    if isinstance(pitch, str):
        if pitch.strip().lower() in ("rest", "r", ""):
            return ()
        return tuple(note_to_midi(p) for p in pitch.split("."))
    if isinstance(pitch, (list, tuple, np.ndarray)):
        return tuple(p for q in pitch for p in event_pitches(q))
    number = int(pitch)
    return () if number < 0 else (number,)


def quarter_length(duration) -> Fraction:
    """A duration in quarter notes, exact: a number, or a token such as "1/3" or "0.25"."""
    if isinstance(duration, str):
        return Fraction(duration.strip())
    if isinstance(duration, float):
        return Fraction(duration).limit_denominator(1 << 16)
    return Fraction(duration)


def roll_to_events(roll: np.ndarray, steps_per_quarter: int = 4) -> list[tuple[int, Fraction, Fraction]]:
    """Notes of a (128 pitches, T steps) piano roll as (pitch, start, duration) in quarter notes.

    A run of consecutive active steps of one pitch is one note (a piano roll cannot tell a
    held note from repeated ones).
    """
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[0] != 128:
        raise ValueError(f"a piano roll is (128 pitches, T steps); got shape {roll.shape}")
    notes = []
    padded = np.pad(roll > 0, ((0, 0), (1, 1))).astype(np.int8)
    for pitch, row in enumerate(padded):
        edges = np.diff(row)
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            notes.append((pitch, Fraction(int(start), steps_per_quarter),
                          Fraction(int(stop - start), steps_per_quarter)))
    return sorted(notes, key=lambda n: (n[1], n[0]))


def _timed_notes(music, steps_per_quarter: int):
    """(pitch, start, duration) in quarter notes, and the total length, from events or a roll."""
    if isinstance(music, np.ndarray) and music.ndim == 2 and music.shape[0] == 128:
        return roll_to_events(music, steps_per_quarter), Fraction(music.shape[1], steps_per_quarter)
    notes, now = [], Fraction(0)
    for event in music:
        try:
            pitch, duration = event
        except (TypeError, ValueError):
            raise ValueError(f"events are (pitch, duration) pairs; got {event!r}") from None
        length = quarter_length(duration)
        if length < 0:
            raise ValueError(f"negative duration {duration!r}")
        notes.extend((p, now, length) for p in event_pitches(pitch))
        now += length
    return notes, now


def _envelope(n: int, sample_rate: int, attack: float, release: float) -> np.ndarray:
    """Rise from 0 over `attack` s, a gentle decay, and a fall back to exactly 0 over `release` s."""
    a = max(1, min(int(round(attack * sample_rate)), n // 4))
    r = max(1, min(int(round(release * sample_rate)), n // 2))
    t = np.arange(n) / sample_rate
    env = 0.75 + 0.25 * np.exp(-t / 0.12)                # a bowed note settles after its start
    env[:a] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)           # raised-cosine attack from 0
    env[n - r:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, r + 1) / r)  # release, ending at 0
    return env


def synthesize(music, sample_rate: int = 22050, tempo: float = 100.0, steps_per_quarter: int = 4,
               attack: float = 0.01, release: float = 0.04, harmonics=HARMONICS,
               peak: float = 0.8) -> np.ndarray:
    """Render music as mono float32 audio in [-1, 1].

    music: a sequence of (pitch, duration) events, or a piano roll (128, T) of 0/1.
      A pitch is a MIDI number, a note name ("G2"), a chord ("D3.A3.F#4" or a list of
      either), or a rest ("rest", None or a negative number). A duration is in quarter
      notes: a number or a token such as "1/3".
    tempo: quarter notes per minute. steps_per_quarter: the time grid of a piano roll.
    attack, release: seconds of the rise at a note's start and of the fall to silence at its
      end (shortened for very short notes); the release lies inside the note, so the audio
      lasts exactly the music's length: round(quarter notes × 60 / tempo × sample_rate) samples.
    peak: the loudest sample's magnitude after normalisation (silence stays silent).
    """
    if sample_rate <= 0 or tempo <= 0:
        raise ValueError("sample_rate and tempo must be positive")
    notes, total = _timed_notes(music, steps_per_quarter)
    seconds_per_quarter = 60.0 / tempo
    audio = np.zeros(int(round(float(total) * seconds_per_quarter * sample_rate)), np.float64)
    amplitudes = np.asarray(harmonics, np.float64)
    for pitch, start, duration in notes:
        # Sample positions come from exact start and end times, so notes tile without gaps.
        i = int(round(float(start) * seconds_per_quarter * sample_rate))
        j = int(round(float(start + duration) * seconds_per_quarter * sample_rate))
        n = min(j, len(audio)) - i
        if n <= 1:
            continue
        f0 = float(midi_to_hz(pitch))
        k = np.arange(1, len(amplitudes) + 1)
        keep = k * f0 < sample_rate / 2                       # no harmonic above Nyquist (aliasing)
        t = np.arange(n) / sample_rate
        tone = amplitudes[keep] @ np.sin(2 * np.pi * f0 * np.outer(k[keep], t))  # (n,)
        audio[i:i + n] += tone * _envelope(n, sample_rate, attack, release)
    loudest = np.abs(audio).max(initial=0.0)
    if loudest > 0:
        audio *= peak / loudest
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def to_wav_bytes(audio: np.ndarray, sample_rate: int = 22050) -> bytes:
    """Mono audio in [-1, 1] (values beyond are clipped) as a 16-bit PCM WAV file's bytes."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (one dimension); got shape {audio.shape}")
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


class HTMLFragment(str):
    """An HTML string that a notebook displays as HTML (it has `_repr_html_`)."""

    def _repr_html_(self) -> str:
        return str(self)


def audio_html(audio: np.ndarray, sample_rate: int = 22050, max_seconds: float = 120.0) -> HTMLFragment:
    """An ``<audio controls>`` element holding the audio as an embedded WAV (base64 data URI).

    It plays offline, with no kernel. The WAV is stored in the page: a minute of audio at
    22,050 Hz adds about 3.5 MB, so keep excerpts short. Anything longer than
    `max_seconds` is refused.
    """
    seconds = len(audio) / sample_rate
    if seconds > max_seconds:
        raise ValueError(f"{seconds:.0f} s of audio would add {seconds * sample_rate * 2 * 4 / 3 / 1e6:.1f} MB "
                         f"to the page; keep excerpts under max_seconds={max_seconds:g}")
    data = base64.b64encode(to_wav_bytes(audio, sample_rate)).decode("ascii")
    return HTMLFragment(f'<audio controls preload="metadata" src="data:audio/wav;base64,{data}">'
                "Your browser cannot play this WAV audio.</audio>")
