"""Live models in the page: a generator from the weights store, exported to ONNX and run in the
reader's browser by ONNX Runtime Web (issue 20; DESIGN §4).

Three parts, used by the book's build (``book/_ext/gdl_book.py``) and by the chapters:

- `export_onnx` writes a Keras model's ONNX file atomically and checks it against Keras with
  ONNX Runtime on fixed inputs (the largest absolute difference is returned, and is an error
  above a tolerance);
- `LIVE_MODELS` names the generating part of each published model that a page runs live, and
  `export_live` exports it, from the published weights, with a small JSON description the
  page's script reads (input size, value range, file size, the parity measured);
- `runtime` fetches the pinned ``onnxruntime-web`` package from the npm registry once, checks it
  against the integrity hash the registry publishes, and keeps the three files a page needs.

``gdl.viz.live_generator`` emits the widget; ``book/_static/live.js`` runs it.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from gdl.paths import DataError, cache_dir

# The browser runtime: pinned, and checked against the registry's published integrity hash.
ORT_VERSION = "1.31.1"
ORT_INTEGRITY = ("sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7Nmu"
                 "ZPXrQ73k82URw==")
ORT_URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ORT_VERSION}.tgz"
# The single-threaded WebAssembly build: the script, its loader and the binary (14 MB).
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
# float32 round-off through a few convolutions; anything larger means the export is wrong.
TOLERANCE = 1e-4


class LiveError(DataError):
    """An export does not match Keras, or the browser runtime cannot be had; the message says why."""


# --------------------------------------------------------------------------- export
def export_onnx(model, path: str | os.PathLike, inputs: np.ndarray,
                tolerance: float = TOLERANCE) -> float:
    """Export `model` (one input) to ONNX at `path`; return max |ONNX - Keras| on `inputs`."""
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = np.asarray(inputs, dtype="float32")
    expected = np.asarray(model(inputs))          # also builds a model never called before
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():   # tf2onnx probes a NumPy alias NumPy has deprecated
            warnings.simplefilter("ignore", FutureWarning)
            model.export(tmp, format="onnx", verbose=False)
        session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: inputs})[0]
        if got.shape != expected.shape:
            raise LiveError(f"ONNX export of {model.name} gives shape {got.shape}, Keras "
                            f"{expected.shape}")
        diff = float(np.abs(got - expected).max())
        if not diff <= tolerance:
            raise LiveError(f"ONNX export of {model.name} differs from Keras by {diff:.2e} "
                            f"(tolerance {tolerance:.0e}); the page would show other images "
                            "than the book's model. Check the tf2onnx and Keras versions.")
        os.chmod(tmp, 0o644)          # served as is: readable by the web server
        os.replace(tmp, path)
        return diff
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@dataclass(frozen=True)
class LiveModel:
    """The generating part of a published model, as a page runs it."""

    weights: str                  # recipe name in the weights store (its cpu weights)
    build: Callable[[dict], object]   # manifest settings -> (full model, generating part)
    input_size: Callable[[dict], int]
    value_range: tuple[float, float]  # what the output spans, mapped to black..white
    what: str                         # for the widget's caption


def _dcgan(settings: dict):
    from gdl.models.gan import DCGAN, build_discriminator, build_generator

    g = settings["generator"]
    model = DCGAN(build_generator(**g), build_discriminator(**settings["discriminator"]),
                  g["latent_dim"], 0.1)
    return model, model.generator


LIVE_MODELS: dict[str, LiveModel] = {
    "dcgan_bricks": LiveModel("dcgan_bricks", _dcgan,
                              lambda s: s["generator"]["latent_dim"], (-1.0, 1.0),
                              "DCGAN generator, LEGO bricks (chapter 4)"),
}


def export_live(name: str, folder: str | os.PathLike, weights_name: str | None = None) -> dict:
    """Export `name`'s generator from the weights store to folder/NAME.onnx and NAME.json.

    Skipped (the existing description returned) when both files are there and were made from
    the same weights file (its SHA-256) with this gdl.
    """
    import gdl
    import gdl.weights

    live = LIVE_MODELS[name]
    weights_name = weights_name or live.weights
    record = gdl.weights.record(weights_name)
    folder = Path(folder)
    onnx_path, meta_path = folder / f"{name}.onnx", folder / f"{name}.json"
    if onnx_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if (meta.get("weights_sha256") == record["sha256"]
                and meta.get("gdl") == gdl.__version__
                and meta.get("onnx_bytes") == onnx_path.stat().st_size):
            return meta
    model, part = live.build(record["settings"])
    gdl.weights.load(weights_name, model, record["settings"])
    size = live.input_size(record["settings"])
    probe = np.random.default_rng(0).normal(size=(4, size)).astype("float32")
    diff = export_onnx(part, onnx_path, probe)
    meta = {"name": name, "weights": weights_name, "weights_sha256": record["sha256"],
            "steps": record["steps"], "what": live.what, "input_size": size,
            "output_shape": list(part.output_shape[1:]), "value_range": list(live.value_range),
            "onnx_bytes": onnx_path.stat().st_size, "parity_max_abs": diff,
            "gdl": gdl.__version__}
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".json", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, meta_path)
    return meta


# --------------------------------------------------------------------------- the browser runtime
def _integrity_ok(data: bytes, integrity: str) -> bool:
    algo, _, digest = integrity.partition("-")
    return base64.b64encode(hashlib.new(algo, data).digest()).decode() == digest


def runtime(fetch: bool = True) -> Path:
    """The folder holding ONNX Runtime Web's files (ORT_FILES), fetched from npm on first use."""
    folder = cache_dir() / f"onnxruntime-web-{ORT_VERSION}"
    if all((folder / f).exists() for f in ORT_FILES):
        return folder
    how = (f"download {ORT_URL} and put the files {', '.join(ORT_FILES)} from its package/dist/ "
           f"into {folder}")
    if not fetch:
        raise LiveError(f"ONNX Runtime Web {ORT_VERSION} is not here; {how}.")
    import urllib.request

    try:
        with urllib.request.urlopen(ORT_URL, timeout=60) as response:
            data = response.read()
    except OSError as exc:
        raise LiveError(f"Could not fetch ONNX Runtime Web from the npm registry ({exc}); "
                        f"{how}.") from exc
    if not _integrity_ok(data, ORT_INTEGRITY):
        raise LiveError(f"The downloaded {ORT_URL} does not match its published integrity hash; "
                        "nothing was kept. Try again, or " + how + ".")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for name in ORT_FILES:
                member = tar.getmember(f"package/dist/{name}")
                with tar.extractfile(member) as src, open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        for file in tmp.iterdir():
            file.chmod(0o644)
        tmp.chmod(0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder
