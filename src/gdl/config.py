"""Run profiles, seeding and the run-info line every chapter prints."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import random

PROFILES = ("smoke", "cpu", "full")
DEFAULT_PROFILE = "cpu"
DEFAULT_SEED = 42


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


def run_info(seed: int = DEFAULT_SEED, note: str | None = None, display: bool = True) -> str:
    """Seed everything and return (and print) one line saying what produced the outputs."""
    import keras

    import gdl

    seed_everything(seed)
    parts = [
        f"profile={profile()}",
        f"backend={keras.backend.backend()}",
        device(),
    ]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        parts.append(f"TensorFlow {tf.__version__}")
    parts += [f"Keras {keras.__version__}", f"gdl {gdl.__version__}", f"seed={seed}",
              f"date={_dt.date.today().isoformat()}"]
    if note:
        parts.append(note)
    line = " · ".join(parts)
    if display:
        print(line)
    return line
