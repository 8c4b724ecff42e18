"""Music datasets: Bach's cello suites as MIDI files, and the JSB chorales at 16th-note steps.

**Cello suites** (``bach-cello/*.mid``, the 36 movements of BWV 1007–1012 from jsbach.net).
Each file is parsed with music21 into a sequence of events, each a pair of tokens:

- a pitch token: a note name with octave, "G2", "F#3", "B-2" (music21's spelling: ``-`` is
  a flat; the name is derived from the MIDI number, so one pitch has one spelling), or
  "rest";
- a duration token: its length in quarter notes as an exact fraction, "1/4", "1/3", "3/2", "2".

How the MIDI becomes events:

- *Quantisation.* Onsets and note lengths are rounded to a lattice of 1/`divisions` quarter
  notes (default 24: it holds 16ths, 32nds and triplets exactly). A lattice, rather than
  music21's default union of the 16th and triplet grids, keeps every sum of durations on the
  grid, so writing the tokens back to MIDI and reading them again gives the same tokens.
- *Several tracks, double stops.* The jsbach.net files spread double stops and held bass
  notes over two to four tracks. All tracks are merged and the timeline is cut at every note
  start and end; each piece between two cuts is one event holding the notes that sound in
  it (music21's `chordify` does the same, but also cuts at bar lines: here the pieces that
  music21 ties across a bar line count as one note). A note held while another starts is
  therefore split into two events.
- *Chords.* With ``chords="join"`` (default) an event with several pitches is one token of
  its names from low to high joined by dots, "D3.A3.F#4", which keeps the music whole but
  makes the note vocabulary larger; with ``chords="top"`` only the highest note is kept
  (the melody line; the vocabulary is then single notes).
- *Rests.* A silence between notes is a "rest" event; silence before the first note (how
  these files encode an upbeat) is kept as a leading rest. Nothing follows the last note's
  end: music21 pads the last bar with a rest, which carries no information and which MIDI
  cannot store, so it is not an event. Notes that round to zero length are left out.

Parsed tokens are cached as JSON under ``GDL_CACHE_DIR`` (written atomically), keyed by a
hash of the MIDI files' bytes, the options, the parser version and music21's version; the
data folder is only read.

**JSB chorales** (``jsb-chorales/Jsb16thSeparated.npz``, Boulanger-Lewandowski et al. 2012
as re-cut by Huang et al. 2017): 382 four-part chorales as (T, 4) arrays of MIDI pitches,
soprano to bass, one row per 16th note, split 229/76/77 into train/valid/test.

Used in chapter 11 (music generation).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from gdl.audio import event_pitches, quarter_length
from gdl.data.fetch import DataError, File, Source, cache_dir, data_dir, fetch, missing_message

# Bump when the tokens a file parses to change, so old caches are not reused.
PARSER_VERSION = 1
REST = "rest"
# music21's default spelling of the twelve pitch classes when it reads MIDI.
PITCH_CLASS_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")

BACH_CELLO = Source(
    name="Bach cello suites (MIDI)",
    folder="bach-cello",
    origin="http://www.jsbach.net/midi/midi_solo_cello.html",
    how=("Download the 36 MIDI files of the six suites, cs1-1pre.mid … cs6-6gig.mid "
         "(http://www.jsbach.net/midi/cs1-1pre.mid and so on), into the folder below; "
         "any set of .mid files there is read."),
)
BACH_CELLO_EXAMPLE = "cs1-1pre.mid"

JSB_CHORALES = Source(
    name="JSB chorales",
    folder="jsb-chorales",
    origin="https://github.com/czhuang/JSB-Chorales-dataset",
    files=(File(
        "Jsb16thSeparated.npz",
        "https://raw.githubusercontent.com/czhuang/JSB-Chorales-dataset/"
        "9a7f733ddb4ed91f48da64ac7f0f621c34aadd4d/Jsb16thSeparated.npz",
        {"sha256:2adcdf0d57880c3763f104555072285fe7f9e3d6049fcc4b9830557b8d4a7820": "official"},
    ),),
)
JSB_CHORALES_FILE = "Jsb16thSeparated.npz"
JSB_SPLITS = ("train", "valid", "test")


# --------------------------------------------------------------------------- tokens
def pitch_name(number: int) -> str:
    """The name of a MIDI note number in music21's MIDI spelling: 43 → "G2", 70 → "B-4"."""
    return f"{PITCH_CLASS_NAMES[number % 12]}{number // 12 - 1}"


def duration_token(quarters) -> str:
    """A duration in quarter notes as an exact token: 0.25 → "1/4", 1.5 → "3/2", 2 → "2"."""
    return str(quarter_length(quarters))


@dataclass(frozen=True)
class Vocabulary:
    """Tokens and their indices; `reserved` tokens (padding, unknown) come first.

    The default reserved tokens, "" at 0 and "[UNK]" at 1, are Keras' `StringLookup`
    convention, so `tokens` can be passed to it as `vocabulary=` (minus those two).
    """

    tokens: tuple[str, ...]
    unknown: str | None = "[UNK]"

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, tokens) -> np.ndarray:
        """Indices of `tokens` (int32); tokens not in the vocabulary map to `unknown`."""
        index = self.index
        fallback = index.get(self.unknown) if self.unknown is not None else None
        out = []
        for t in tokens:
            i = index.get(t, fallback)
            if i is None:
                raise KeyError(f"token {t!r} is not in the vocabulary (and it has no unknown token)")
            out.append(i)
        return np.asarray(out, dtype=np.int32)

    def decode(self, ids) -> list[str]:
        """The tokens at indices `ids`."""
        return [self.tokens[int(i)] for i in np.asarray(ids).ravel()]


def build_vocabulary(sequences, reserved=("", "[UNK]"), min_count: int = 1) -> Vocabulary:
    """A vocabulary of the tokens in `sequences`, most frequent first (ties in string order),
    after the `reserved` tokens; tokens seen fewer than `min_count` times are left out."""
    counts = Counter(t for seq in sequences for t in seq)
    for r in reserved:
        counts.pop(r, None)
    ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    unknown = "[UNK]" if "[UNK]" in reserved else None
    return Vocabulary(tuple(reserved) + tuple(ranked), unknown=unknown)


@dataclass
class MusicTokens:
    """Parsed pieces: per file, parallel lists of pitch tokens and duration tokens."""

    files: list[str]                # file names, in name order
    notes: list[list[str]]          # per file: "G2", "D3.A3.F#4" (chords="join") or "rest"
    durations: list[list[str]]      # per file: quarter notes as exact fractions, "1/4", "3/2"
    chords: str = "join"
    divisions: int = 24

    def __len__(self) -> int:
        return len(self.files)

    @property
    def n_events(self) -> int:
        return sum(len(n) for n in self.notes)

    def events(self, i: int) -> list[tuple[str, str]]:
        """The (pitch, duration) events of the `i`-th file."""
        return list(zip(self.notes[i], self.durations[i]))

    def note_vocabulary(self, reserved=("", "[UNK]"), min_count: int = 1) -> Vocabulary:
        return build_vocabulary(self.notes, reserved, min_count)

    def duration_vocabulary(self, reserved=("", "[UNK]"), min_count: int = 1) -> Vocabulary:
        return build_vocabulary(self.durations, reserved, min_count)


def _on_lattice(x, divisions: int) -> Fraction:
    return Fraction(int(round(float(x) * divisions)), divisions)


def _score_to_tokens(score, chords: str, divisions: int) -> tuple[list[str], list[str]]:
    """Cut the merged timeline of all tracks at every note start and end (see the module doc)."""
    starts: dict[Fraction, list[int]] = {}
    ends: dict[Fraction, list[int]] = {}
    for element in score.flatten().notes:               # Note and Chord, from every track
        start = _on_lattice(element.offset, divisions)
        end = _on_lattice(element.offset + element.quarterLength, divisions)
        if end <= start:                                 # grace notes, and notes rounded away
            continue
        pieces = [element] if element.isNote else list(element.notes)
        for piece in pieces:
            if getattr(piece, "pitch", None) is None:    # unpitched (drum) notes have no name
                continue
            # music21 splits a note that crosses a bar line into tied pieces: one note here,
            # so a tie's inner edges are no cuts.
            tie = (piece.tie or element.tie)
            kind = tie.type if tie is not None else None
            if kind not in ("stop", "continue"):
                starts.setdefault(start, []).append(piece.pitch.midi)
            if kind not in ("start", "continue"):
                ends.setdefault(end, []).append(piece.pitch.midi)
    cuts = sorted(set(starts) | set(ends) | {Fraction(0)})
    sounding: Counter = Counter()
    notes, durations = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        sounding.subtract(ends.get(a, []))
        sounding.update(starts.get(a, []))
        pitches = sorted(p for p, n in sounding.items() if n > 0)
        if not pitches:
            token = REST
        elif chords == "top":
            token = pitch_name(pitches[-1])
        else:
            token = ".".join(pitch_name(p) for p in pitches)
        notes.append(token)
        durations.append(str(b - a))
    return notes, durations


def _check_options(chords: str, divisions: int) -> None:
    if chords not in ("join", "top"):
        raise ValueError(f"chords must be 'join' or 'top', not {chords!r}")
    if not isinstance(divisions, int) or divisions < 1:
        raise ValueError(f"divisions must be a positive integer, not {divisions!r}")


def _parse_midi_bytes(data: bytes, path: Path, chords: str, divisions: int) -> tuple[list[str], list[str]]:
    from music21 import midi
    from music21.midi import translate

    try:
        midi_file = midi.MidiFile()
        midi_file.readstr(data)
        score = translate.midiFileToStream(midi_file, quarterLengthDivisors=(divisions,))
    except Exception as exc:  # noqa: BLE001 - music21 raises many kinds of error on bad bytes
        raise DataError(f"{path} is not a readable MIDI file ({type(exc).__name__}: {exc}); "
                        f"the file is corrupt: delete it and download it again "
                        f"(from {BACH_CELLO.origin} for the cello suites).") from exc
    notes, durations = _score_to_tokens(score, chords, divisions)
    if not any(n != REST for n in notes):
        raise DataError(f"{path} holds no notes; it is not a music MIDI file (or it is truncated).")
    return notes, durations


def midi_to_tokens(path, chords: str = "join", divisions: int = 24) -> tuple[list[str], list[str]]:
    """Parse one MIDI file into (pitch tokens, duration tokens); see the module doc for how.

    A file that music21 cannot read raises :class:`DataError` naming it.
    """
    _check_options(chords, divisions)
    path = Path(path)
    return _parse_midi_bytes(path.read_bytes(), path, chords, divisions)


def to_stream(notes, durations, tempo: float | None = None, instrument: str = "Violoncello"):
    """A music21 `Part` playing the events: each pitch token (a name, a dot-joined chord or
    "rest", or a MIDI number) for its duration (quarter notes, a token or a number).

    tempo: quarter notes per minute (a metronome mark at the start), or None for none.
    instrument: a music21 instrument class name (the MIDI program), e.g. "Violoncello", "Piano".
    """
    from music21 import chord, instrument as instruments, note, stream, tempo as tempos

    if len(notes) != len(durations):
        raise ValueError(f"{len(notes)} pitch tokens but {len(durations)} durations")
    part = stream.Part()
    part.insert(0, getattr(instruments, instrument)())
    if tempo is not None:
        part.insert(0, tempos.MetronomeMark(number=tempo))
    for pitch, duration in zip(notes, durations):
        length = quarter_length(duration)
        if length <= 0:
            raise ValueError(f"durations must be positive; got {duration!r}")
        numbers = event_pitches(pitch)
        if not numbers:
            element = note.Rest()
        elif len(numbers) == 1:
            element = note.Note(midi=numbers[0])
        else:
            element = chord.Chord([note.Note(midi=m) for m in numbers])
        element.quarterLength = length
        part.append(element)
    return part


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tokens_to_midi(notes, durations, path, tempo: float | None = 100.0,
                   instrument: str = "Violoncello") -> Path:
    """Write the events as a MIDI file at `path` (atomically: a temporary file, then a rename).

    Reading the file back with :func:`midi_to_tokens` gives the same tokens, as long as the
    durations lie on its lattice (1/24 quarter note by default) and no rest comes last.
    """
    from music21.midi import translate

    path = Path(path)
    midi_file = translate.streamToMidiFile(to_stream(notes, durations, tempo, instrument))
    _write_atomic(path, midi_file.writestr())
    return path


# --------------------------------------------------------------------------- cello suites
def _midi_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(missing_message(BACH_CELLO, BACH_CELLO_EXAMPLE, "the folder does not exist"))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise DataError(missing_message(BACH_CELLO, BACH_CELLO_EXAMPLE, f"{folder} holds no .mid files"))
    return files


def _music21_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("music21")
    except PackageNotFoundError:
        raise ImportError("gdl.data.music needs music21: pip install music21") from None


def _read_cache(path: Path, names: list[str]) -> tuple[list, list] | None:
    """The cached tokens, or None when the file is missing, unreadable or does not fit."""
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        notes, durations = cached["notes"], cached["durations"]
        fits = (cached["files"] == names and len(notes) == len(durations) == len(names)
                and all(len(n) == len(d) for n, d in zip(notes, durations)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (notes, durations) if fits else None


def bach_cello(chords: str = "join", divisions: int = 24, use_cache: bool = True) -> MusicTokens:
    """The cello suites (every .mid file in ``GDL_DATA_DIR/bach-cello``) as token sequences.

    chords: "join" (a chord is one dot-joined token, low to high) or "top" (its highest note).
    divisions: the quantisation lattice, in steps per quarter note.
    The parsed tokens are cached under ``GDL_CACHE_DIR``; `use_cache=False` parses afresh
    (and writes nothing). Missing or corrupt files raise :class:`DataError`.
    """
    _check_options(chords, divisions)
    files = _midi_files(data_dir() / BACH_CELLO.folder)
    names = [f.name for f in files]
    blobs = [f.read_bytes() for f in files]
    key = hashlib.sha256(json.dumps(
        [PARSER_VERSION, _music21_version(), chords, divisions, names]).encode())
    for blob in blobs:
        key.update(hashlib.sha256(blob).digest())
    cached = cache_dir() / f"bach-cello-{key.hexdigest()[:20]}.json"
    if use_cache:
        hit = _read_cache(cached, names)
        if hit is not None:
            return MusicTokens(names, hit[0], hit[1], chords, divisions)
    parsed = [_parse_midi_bytes(blob, f, chords, divisions) for blob, f in zip(blobs, files)]
    notes, durations = [p[0] for p in parsed], [p[1] for p in parsed]
    if use_cache:
        record = {"parser": PARSER_VERSION, "chords": chords, "divisions": divisions,
                  "files": names, "notes": notes, "durations": durations}
        _write_atomic(cached, json.dumps(record, separators=(",", ":")).encode("utf-8"))
    return MusicTokens(names, notes, durations, chords, divisions)


# --------------------------------------------------------------------------- piano rolls
def piano_roll(pitches, durations, steps_per_quarter: int = 4) -> np.ndarray:
    """Events as a 0/1 piano roll, uint8 (128 pitches, T steps), T = total length × steps.

    pitches: per event a token ("G2", "D3.A3.F#4", "rest"), a MIDI number (negative for a
    rest) or a list of them; durations in quarter notes (tokens or numbers). A note covers
    the steps from round(start × steps) up to round(end × steps), at least one step, so a
    note shorter than a step still shows.
    """
    if len(pitches) != len(durations):
        raise ValueError(f"{len(pitches)} pitches but {len(durations)} durations")
    lengths = [quarter_length(d) for d in durations]
    total = int(round(sum(lengths, Fraction(0)) * steps_per_quarter))
    roll = np.zeros((128, total), np.uint8)
    now = Fraction(0)
    for pitch, length in zip(pitches, lengths):
        i = int(round(now * steps_per_quarter))
        now += length
        j = max(int(round(now * steps_per_quarter)), i + 1)
        for p in event_pitches(pitch):
            roll[p, i:min(j, total)] = 1
    return roll


def chorale_piano_roll(chorale: np.ndarray) -> np.ndarray:
    """A chorale (T, 4) of MIDI pitches (negative = rest) as one-hot tracks, uint8 (4, T, 128)."""
    chorale = np.asarray(chorale)
    if chorale.ndim != 2:
        raise ValueError(f"a chorale is (T steps, voices); got shape {chorale.shape}")
    steps, voices = chorale.shape
    roll = np.zeros((voices, steps, 128), np.uint8)
    v, t = np.nonzero(chorale.T >= 0)                    # (voice, step) of every sounding note
    roll[v, t, chorale.T[v, t]] = 1
    return roll


# --------------------------------------------------------------------------- JSB chorales
@dataclass
class Chorales:
    """The JSB chorales as published: lists of (T, 4) int64 MIDI pitches (soprano, alto,
    tenor, bass), one row per 16th note; rests are `rest` (-1 by default)."""

    train: list[np.ndarray]
    valid: list[np.ndarray]
    test: list[np.ndarray]
    rest: int = -1

    def __iter__(self):  # allows `train, valid, test = gdl.data.music.jsb_chorales()`
        yield self.train
        yield self.valid
        yield self.test


def _check_chorales(raw, path: Path, rest: int) -> Chorales:
    """Validate the published structure and convert it (float16 pitches, NaN for a rest)."""
    bad = f"{path} does not hold the JSB chorales as published"
    again = f"; download it again from {JSB_CHORALES.origin}."
    missing = [k for k in JSB_SPLITS if k not in raw]
    if missing:
        raise DataError(f"{bad}: no {', '.join(missing)} array{again}")
    splits = {}
    for key in JSB_SPLITS:
        pieces = raw[key]
        if not isinstance(pieces, (np.ndarray, list)) or len(pieces) == 0:
            raise DataError(f"{bad}: '{key}' should be a non-empty sequence of chorales{again}")
        out = []
        for i, piece in enumerate(pieces):
            piece = np.asarray(piece)
            if piece.ndim != 2 or piece.shape[1] != 4 or piece.shape[0] == 0 or piece.dtype.kind not in "fiu":
                raise DataError(f"{bad}: {key}[{i}] should be a (T, 4) array of pitches, "
                                f"not {piece.dtype} {piece.shape}{again}")
            values = piece.astype(np.float64)
            sounding = ~np.isnan(values)
            notes = values[sounding]
            if (notes != np.round(notes)).any() or (notes < 0).any() or (notes > 127).any():
                raise DataError(f"{bad}: {key}[{i}] holds values that are not MIDI pitches 0..127{again}")
            out.append(np.where(sounding, values, rest).astype(np.int64))
        splits[key] = out
    return Chorales(splits["train"], splits["valid"], splits["test"], rest)


def jsb_chorales(rest: int = -1) -> Chorales:
    """The JSB chorales (`Jsb16thSeparated.npz`): train/valid/test lists of (T, 4) int64
    arrays of MIDI pitches at 16th-note steps (229/76/77 chorales in the published file).

    The file is checked against its published sha256 before it is unpickled (it is a
    pickled object array); it is downloaded from a pinned commit when missing and allowed.
    A rest (NaN in the file) becomes `rest`.
    """
    # fetch() checks the sha256 of a file already there as well: never unpickle an unverified file.
    path = fetch(JSB_CHORALES, JSB_CHORALES_FILE)
    try:
        with np.load(path, allow_pickle=True, encoding="latin1") as npz:
            raw = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}); download it again "
                        f"from {JSB_CHORALES.origin}.") from exc
    return _check_chorales(raw, path, rest)
