"""The weights store: long-trained weights, found by name, verified, and loaded into a chapter's model.

Taught in DESIGN §4 ("galleries a reader believes"): a chapter trains briefly so the reader sees
the loop, then loads weights made by a long, resumable run (``python scripts/pretrain.py NAME``)
and says, with `describe`, how they were made.

A weights file ``NAME.weights.h5`` is Keras' own weights format (large float32 arrays stored as
float16, optimizer state left out). The ``manifest.json`` next to it holds one record per file:
name, family, file, settings (the builder arguments), training, steps, examples_seen, unit,
wall_seconds, run_info, metrics, command, sha256, bytes, created. A name is a recipe of
``scripts/pretrain.py`` for the ``cpu`` profile (``dcgan_bricks``), with the profile appended
for the others (``dcgan_bricks.full``).

`locate` looks in ``$GDL_WEIGHTS_DIR``, then the repository's ``weights/`` folder (in a
checkout), then downloads from the repository's own address into ``cache_dir()/weights``;
every file is checked against its record's SHA-256 before Keras reads it.
"""
from __future__ import annotations

import datetime as _dt
import http.client
import json
import math
import os
import tempfile
from pathlib import Path

from gdl.config import profile
from gdl.data.fetch import download, file_digest
from gdl.paths import DataError, cache_dir, downloads_allowed

# What a failed download raises: network errors and timeouts (OSError: URLError is one), a broken
# HTTP exchange, a body cut short (DataError, from `download`).
DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, DataError)

# Mirrors `repository.url` and `.branch` of _config.yml (the one place they are written), for an
# installed gdl without a checkout (Colab); tests/test_weights.py keeps the two equal.
REPOSITORY_URL = "https://github.com/gdl-executable/gdl-executable"
REPOSITORY_BRANCH = "main"
SUFFIX = ".weights.h5"
MANIFEST = "manifest.json"
# What `save` needs from its caller; it adds name, file, dtype, sha256, bytes and created.
REQUIRED = ("family", "settings", "steps", "examples_seen", "wall_seconds", "run_info", "metrics",
            "command")
# Top-level groups of a Keras weights file that hold optimizer state: needed to resume a run
# (the checkpoints keep them), not to use the weights.
_OPTIMIZER_GROUPS = ("optimizer", "optimizers")
# Arrays smaller than this (biases, batch-norm statistics, scalars) stay float32: they are a tiny
# share of the bytes, and the batch-norm moving statistics are the most rounding-sensitive.
_HALF_MIN_SIZE = 1024
_HALF_MAX = 65504.0   # the largest finite float16


class WeightsError(DataError):
    """A weights file is corrupt, does not fit the model, or its record is unusable; the message says the fix."""


class WeightsNotFound(WeightsError):
    """No weights file for a name here, and none could be downloaded; the message names the command that makes it."""


# --------------------------------------------------------------------------- where
def checkout() -> Path | None:
    """The repository root when gdl runs from a checkout (it holds _config.yml), else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "_config.yml").is_file() else None


def repository() -> tuple[str, str]:
    """The repository's address and branch: read from _config.yml in a checkout, else the mirroring constants."""
    root = checkout()
    if root is None:
        return REPOSITORY_URL, REPOSITORY_BRANCH
    import yaml   # a checkout has the book's requirements, which bring PyYAML

    repo = (yaml.safe_load((root / "_config.yml").read_text()) or {}).get("repository") or {}
    return str(repo.get("url") or REPOSITORY_URL).rstrip("/"), str(repo.get("branch") or REPOSITORY_BRANCH)


def base_url() -> str:
    """Where published weights are downloaded from: ``$GDL_WEIGHTS_URL``, else the repository's weights/ folder."""
    url, branch = repository()
    return (os.environ.get("GDL_WEIGHTS_URL") or f"{url}/raw/{branch}/weights").rstrip("/")


def weights_dir() -> Path:
    """Where `save` writes: ``$GDL_WEIGHTS_DIR``, else the checkout's weights/ folder, else the cache."""
    if os.environ.get("GDL_WEIGHTS_DIR"):
        return Path(os.environ["GDL_WEIGHTS_DIR"]).expanduser()
    root = checkout()
    return root / "weights" if root is not None else cache_dir() / "weights"


def _stores() -> list[tuple[str, Path]]:
    """The local folders `locate` searches, in order, with how to name them in a message."""
    stores = []
    if os.environ.get("GDL_WEIGHTS_DIR"):
        stores.append(("GDL_WEIGHTS_DIR", Path(os.environ["GDL_WEIGHTS_DIR"]).expanduser()))
    root = checkout()
    if root is not None:
        stores.append(("the repository's weights/ folder", root / "weights"))
    return stores


def for_profile(name: str) -> str:
    """The published name of recipe `name`'s weights in this run's profile: NAME in `cpu`, else NAME.PROFILE."""
    return name if profile() == "cpu" else f"{name}.{profile()}"


def pretrain_command(name: str) -> str:
    """The command that makes the weights `name`, e.g. ``GDL_PROFILE=full python scripts/pretrain.py dcgan_bricks``."""
    recipe, _, profile = name.partition(".")
    return (f"GDL_PROFILE={profile} " if profile else "") + f"python scripts/pretrain.py {recipe}"


# --------------------------------------------------------------------------- the manifest
def read_manifest(folder: str | os.PathLike) -> dict[str, dict]:
    """The records of the manifest.json in `folder`, by name ({} when there is none)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc}); restore it "
                           f"(in a checkout: git checkout -- weights/{MANIFEST}).") from exc
    if not isinstance(records, dict):
        raise WeightsError(f"{path} should map names to records; restore it.")
    return records


def _write_manifest(folder: Path, records: dict[str, dict]) -> None:
    text = json.dumps(dict(sorted(records.items())), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _published_manifest() -> dict[str, dict]:
    """Without a checkout: the repository's manifest, downloaded into the cache (the cached copy offline)."""
    folder = cache_dir() / "weights"
    if downloads_allowed():
        try:
            download(f"{base_url()}/{MANIFEST}", folder / MANIFEST, desc=f"weights/{MANIFEST}")
        except DOWNLOAD_ERRORS:
            pass   # a copy fetched earlier, if any, still serves; else the name is reported missing
    return read_manifest(folder)


def manifest() -> dict[str, dict]:
    """Every known record by name; ``$GDL_WEIGHTS_DIR``'s records win over the repository's."""
    stores = _stores()
    records = {} if checkout() is not None else _published_manifest()
    for _, folder in reversed(stores):
        records.update(read_manifest(folder))
    return records


def record(name: str) -> dict:
    """The manifest record of the weights `name`."""
    found = manifest().get(name)
    if found is None:
        raise WeightsNotFound(_missing(name, None, [], "no manifest record has that name"))
    return found


# --------------------------------------------------------------------------- finding a file
def _missing(name: str, rec: dict | None, looked: list[str], reason: str) -> str:
    lines = [f"No weights file for {name!r} ({reason})."]
    if looked:
        lines.append("Looked in: " + "; ".join(looked) + ".")
    lines.append(f"Make it with:  {pretrain_command(name)}")
    lines.append("(a long run on a CPU; it checkpoints and resumes), or put "
                 f"{(rec or {}).get('file', name + SUFFIX)} with its {MANIFEST} in a folder and set "
                 "GDL_WEIGHTS_DIR to that folder.")
    return "\n".join(lines)


def _verify(path: Path, rec: dict, name: str) -> None:
    """Raise WeightsError unless `path` is exactly the file `rec` describes (size, then SHA-256)."""
    size = path.stat().st_size
    digest = file_digest(path, "sha256") if size == rec.get("bytes") else None
    if digest is not None and digest == rec.get("sha256"):
        return
    got = f"{size:,} bytes" + (f", sha256 {digest[:12]}…" if digest else "")
    raise WeightsError(
        f"{path} is not the file the manifest describes ({got}; the record says "
        f"{rec.get('bytes', 0):,} bytes, sha256 {str(rec.get('sha256'))[:12]}…), so it was not loaded. "
        f"Fix: restore it (in a checkout: git checkout -- weights/{rec.get('file')}), or delete it "
        f"to download it again, or make it again with:  {pretrain_command(name)}")


def _find(name: str) -> tuple[Path, dict]:
    """The verified file of `name` and the record it was verified against."""
    looked = []
    for label, folder in _stores():
        rec = read_manifest(folder).get(name)
        if rec is None:
            looked.append(f"{label} {folder} (no record)")
            continue
        path = folder / rec["file"]
        if path.is_file():
            _verify(path, rec, name)
            return path, rec
        looked.append(f"{path} (not there)")
    rec = manifest().get(name)
    if rec is None:
        raise WeightsNotFound(_missing(name, None, looked, "no manifest record has that name"))
    cached = cache_dir() / "weights" / rec["file"]
    if cached.is_file():
        try:
            _verify(cached, rec, name)
            return cached, rec
        except WeightsError:
            cached.unlink()   # our own download, stale or damaged: fetch it again
    looked.append(f"{cached} (not there)")
    if not downloads_allowed():
        raise WeightsNotFound(_missing(name, rec, looked, "downloads are off: GDL_OFFLINE is set"))
    url = f"{base_url()}/{rec['file']}"
    try:
        download(url, cached, desc=f"weights/{rec['file']}")
    except DOWNLOAD_ERRORS as exc:
        raise WeightsNotFound(_missing(name, rec, looked, f"download from {url} failed: {exc}")) from exc
    try:
        _verify(cached, rec, name)
    except WeightsError as exc:
        cached.unlink(missing_ok=True)   # never leave a wrong download where the next call would find it
        raise WeightsError(f"Downloaded {url}, but it failed verification and was removed. {exc}") from exc
    return cached, rec


def locate(name: str) -> Path:
    """The local path of the verified weights file `name`, downloading it if needed and allowed."""
    return _find(name)[0]


# --------------------------------------------------------------------------- loading
def _plain(value):
    """`value` as JSON would give it back (tuples -> lists, NumPy scalars and arrays -> numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _same(given, recorded) -> bool:
    if isinstance(given, list) and isinstance(recorded, list):
        return len(given) == len(recorded) and all(map(_same, given, recorded))
    numbers = (int, float)
    if (isinstance(given, numbers) and isinstance(recorded, numbers) and not isinstance(given, bool)
            and not isinstance(recorded, bool) and float in (type(given), type(recorded))):
        return math.isclose(given, recorded, rel_tol=1e-6, abs_tol=1e-9)
    return given == recorded


def _differences(given, recorded, where=""):
    if isinstance(given, dict) and isinstance(recorded, dict):
        for key, value in given.items():
            if key not in recorded:
                yield f"{where}{key}: not in the record"
            else:
                yield from _differences(value, recorded[key], f"{where}{key}.")
    elif not _same(given, recorded):
        yield f"{where.rstrip('.')}: this model has {given!r}, the weights {recorded!r}"


def settings_differences(given: dict, recorded: dict) -> list[str]:
    """How `given` differs from `recorded`: each entry given must be recorded and equal (floats to 1e-6)."""
    # entries recorded but not given are not compared, so a chapter may check only what it shows
    return list(_differences(_plain(given), recorded))


def check_settings(name: str, rec: dict, settings: dict) -> None:
    """Raise WeightsError unless every entry of `settings` equals the record's (floats to 1e-6)."""
    problems = settings_differences(settings, rec.get("settings", {}))
    if problems:
        raise WeightsError(
            f"The weights {name!r} were trained with other settings than this model's: "
            + "; ".join(problems) + ". Build the model with the recorded settings "
            f"(gdl.weights.record({name!r})['settings']), or make weights for these settings "
            f"(change the recipe in scripts/pretrain.py, then:  {pretrain_command(name)}).")


def _optimizers(model) -> list:
    """The model's optimizers (a GenerativeModel's dict of them, or Keras' one)."""
    found = list((getattr(model, "optimizers", None) or {}).values())
    first = getattr(model, "optimizer", None)
    if first is not None and all(first is not o for o in found):
        found.append(first)
    return found


def load(name: str, model, settings: dict | None = None) -> dict:
    """Load the weights `name` into the built `model` (checking `settings` first, if given); return their record."""
    path, rec = _find(name)
    if settings is not None:
        check_settings(name, rec, settings)
    if not model.built:
        raise WeightsError(f"{type(model).__name__} is not built yet; build it first (call it once "
                           f"on a batch), then load the weights {name!r} into it.")
    skip = _optimizers(model)
    try:
        model.load_weights(path, **({"objects_to_skip": skip} if skip else {}))
    except ValueError as exc:
        raise WeightsError(
            f"The weights {name!r} do not fit this {type(model).__name__} "
            f"({str(exc).strip().splitlines()[0][:300]}). They were trained with the settings "
            f"{json.dumps(rec.get('settings'))}; build the model with those, or make new weights "
            f"with:  {pretrain_command(name)}") from exc
    return rec


def load_or_train(name: str, model, train, settings: dict | None = None) -> dict | None:
    """`load`, or, when there are no such weights here or to download, say so, call ``train()`` and return None."""
    # a corrupt file or a settings mismatch stays an error: training would hide it
    try:
        return load(name, model, settings)
    except WeightsNotFound as exc:
        print(f"No pretrained weights {name!r} here ({str(exc).splitlines()[0]}); training instead. "
              f"To make them:  {pretrain_command(name)}")
        train()
        return None


# --------------------------------------------------------------------------- describing
def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _machine(device: str) -> str:
    """'CPU: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz (2 cores)' -> 'Intel Xeon Platinum 8375C CPU (2 cores)'."""
    kind, _, what = device.partition(": ")
    for noise in ("(R)", "(TM)", "(tm)"):
        what = what.replace(noise, "")
    what = " ".join(w for w in what.split() if not w.endswith("GHz") and w != "@")
    if not what:
        return device
    return f"{what} GPU" if kind == "GPU" and "GPU" not in what else what


def describe(rec: dict) -> str:
    """One sentence a chapter prints: how these weights were made (human units, no local paths)."""
    parts = [p.strip() for p in str(rec.get("run_info", "")).split("·")]
    device = next((p for p in parts if p.startswith(("CPU:", "GPU:"))), "")
    keras_v = next((p for p in parts if p.startswith("Keras ")), "")
    framework = next((p for p in parts if p.split(" ")[0] in ("TensorFlow", "JAX", "PyTorch")), "")
    steps, seen = int(rec.get("steps", 0)), int(rec.get("examples_seen", 0))
    text = (f"Weights: trained for {steps:,} steps ({seen:,} {rec.get('unit', 'examples')}) "
            f"in {_duration(float(rec.get('wall_seconds', 0)))}")
    if len(rec.get("sessions") or []) > 1:
        text += f" ({len(rec['sessions'])} sessions)"
    if device:
        text += f" on {_machine(device)}"
    versions = " / ".join(v for v in (keras_v, framework) if v)
    if versions:
        text += f", {versions}"
    return text + f"; command: {rec.get('command', pretrain_command(rec.get('name', '?')))}."


# --------------------------------------------------------------------------- saving
def _halve(array) -> bool:
    import numpy as np

    return (array.dtype == np.float32 and array.size >= _HALF_MIN_SIZE
            and bool(np.all(np.isfinite(array))) and float(np.abs(array).max()) <= _HALF_MAX)


def _compact(src: Path, dst: Path, dtype: str) -> None:
    """Copy Keras' weights file without optimizer state, large float32 arrays as float16 if asked."""
    # Keras' load_weights casts float16 arrays into the float32 variables, on every backend (tested)
    import h5py
    import numpy as np

    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        fout.attrs.update(fin.attrs)

        def copy(path, obj):
            if path.split("/")[0] in _OPTIMIZER_GROUPS:
                return
            if isinstance(obj, h5py.Group):
                fout.require_group(path).attrs.update(obj.attrs)
                return
            data = obj[()]
            if dtype == "float16" and _halve(data):
                data = data.astype(np.float16)
            big = getattr(data, "ndim", 0) and data.size >= _HALF_MIN_SIZE
            out = fout.create_dataset(path, data=data,
                                      **({"compression": "gzip", "shuffle": True} if big else {}))
            out.attrs.update(obj.attrs)

        fin.visititems(copy)


def save(name: str, model, record_fields: dict, dtype: str = "float16",
         folder: str | os.PathLike | None = None) -> dict:
    """Write ``NAME.weights.h5`` and its manifest record into `folder` (default `weights_dir()`); return the record."""
    # each file goes through a temporary one and a rename: a reader never sees half a file
    missing = [k for k in REQUIRED if k not in record_fields]
    if missing:
        raise ValueError(f"save({name!r}) needs the record fields {', '.join(missing)}")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    if "/" in name or name.startswith(".") or not name:
        raise ValueError(f"{name!r} is not a usable weights name")
    folder = Path(folder) if folder is not None else weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    file = name + SUFFIX
    # Keras insists on the .weights.h5 ending; the leading dot keeps the temporary files hidden.
    temps = [Path(tempfile.mkstemp(prefix=f".{name}.{kind}.", suffix=SUFFIX, dir=folder)[1])
             for kind in ("raw", "out")]
    raw, out = temps
    try:
        model.save_weights(raw)
        _compact(raw, out, dtype)
        rec = {"name": name, "family": record_fields["family"], "file": file,
               **{k: v for k, v in record_fields.items() if k not in ("name", "file")},
               "dtype": dtype, "sha256": file_digest(out, "sha256"), "bytes": out.stat().st_size,
               "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        rec = _plain(rec)
        os.replace(out, folder / file)
    finally:
        for path in temps:
            path.unlink(missing_ok=True)
    _write_manifest(folder, {**read_manifest(folder), name: rec})
    return rec
