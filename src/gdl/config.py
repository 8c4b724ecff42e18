"""Run profiles, seeding and the run-info line every chapter prints.

It imports nothing from `gdl`, so the package, the book's scripts and the tests can
read the defaults, the version and the source hash from here.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import os
import platform
import random
from pathlib import Path

__version__ = "0.1.0"
PROFILES = ("smoke", "cpu", "full")
DEFAULT_PROFILE = "cpu"
DEFAULT_SEED = 42
PACKAGE_DIR = Path(__file__).resolve().parent


def profile() -> str:
    """The active run profile, from `GDL_PROFILE` (default `cpu`)."""
    name = os.environ.get("GDL_PROFILE", DEFAULT_PROFILE).strip().lower() or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(
            f"Unknown GDL_PROFILE={name!r}. Valid profiles: {', '.join(PROFILES)} "
            f"(smoke = CI check, cpu = laptop, full = original scale on a GPU)."
        )
    return name


def pick(*, full, cpu, smoke):
    """Return the value for the active profile, e.g. `EPOCHS = pick(full=50, cpu=4, smoke=1)`."""
    return {"full": full, "cpu": cpu, "smoke": smoke}[profile()]


def seed_everything(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy and Keras (and through it TensorFlow) for repeatable runs."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import keras

        keras.utils.set_random_seed(seed)
    except ImportError:  # gdl.data works without keras
        pass
    return seed


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device() -> str:
    """A short description of what computes: the GPU name(s) if Keras sees any, else the CPU."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    gpus: list[str] = []
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            for dev in tf.config.list_physical_devices("GPU"):
                details = tf.config.experimental.get_device_details(dev)
                gpus.append(details.get("device_name", dev.name))
        elif backend == "jax":
            import jax

            gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a device query must never stop a chapter
        pass
    if gpus:
        return "GPU: " + ", ".join(gpus)
    return f"CPU: {_cpu_name()} ({os.cpu_count()} cores)"


def source_hash(root: str | os.PathLike | None = None) -> str:
    """A short, stable fingerprint of the gdl source: 10 hex digits of SHA-256.

    It covers every ``*.py`` file under `root` (default: the installed `gdl` package),
    by relative path and content, so it changes with any edit of the package and not
    with file times or the working directory. The run-info line records it, and
    `scripts/book.py stale` compares it with the one in a chapter's cached outputs.
    """
    root = Path(root) if root is not None else PACKAGE_DIR
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        name = path.relative_to(root).as_posix().encode()
        content = path.read_bytes()
        digest.update(b"%d:%s%d:" % (len(name), name, len(content)))
        digest.update(content)
    return digest.hexdigest()[:10]


_FRAMEWORKS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def run_info(seed: int = DEFAULT_SEED, note: str | None = None, display: bool = True) -> str:
    """Seed everything and return (and print) one line saying what produced the outputs."""
    import keras

    seed_everything(seed)
    parts = [
        f"profile={profile()}",
        f"backend={keras.backend.backend()}",
        device(),
    ]
    framework = _FRAMEWORKS.get(keras.backend.backend())
    if framework:  # the version of the library that computes, e.g. "JAX 0.10.0"
        parts.append(f"{framework} {importlib.import_module(keras.backend.backend()).__version__}")
    parts += [f"Keras {keras.__version__}", f"gdl {__version__} (src {source_hash()})", f"seed={seed}",
              f"date={_dt.date.today().isoformat()}"]
    if note:
        parts.append(note)
    line = " · ".join(parts)
    if display:
        print(line)
    return line
