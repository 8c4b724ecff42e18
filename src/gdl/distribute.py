"""Data parallelism for the `full` profile, through Keras' own distribution API.

On JAX with several accelerators visible, `data_parallel()` sets a
`keras.distribution.DataParallel` over all of them: every variable is replicated, each device
takes an equal slice of every batch, and the gradients are averaged across devices, so one step
on N devices equals one step on one device with the same global batch (tests/test_distribute.py
checks that). Call it once, before the models are built, and keep batch sizes divisible by the
number of devices.

TensorFlow is not wired (its equivalent, `tf.distribute.MirroredStrategy`, needs the models
built and compiled inside its scope, which the chapters do not do): there training uses one
device, and the returned note says so when several GPUs are visible.
"""
from __future__ import annotations

import keras

from gdl.config import profile

__all__ = ["data_parallel"]


def _devices(device_type=None) -> list[str]:
    try:
        return list(keras.distribution.list_devices(device_type))
    except Exception:  # a device query must never stop a chapter
        return []


def data_parallel(devices: list[str] | None = None) -> str:
    """Make `fit` data-parallel over the visible accelerators (JAX, `full` profile).

    `devices` defaults to Keras' list for the backend (its GPUs or TPUs, else its CPUs). Does
    nothing in other profiles, on one device, or on other backends. Returns a short note for
    the run-info line (`gdl.run_info(note=...)`): "data-parallel over 4 gpu devices (Keras
    DataParallel)", or "" when nothing was done and there is nothing to say.
    """
    if profile() != "full":
        return ""
    backend = keras.backend.backend()
    if backend != "jax":
        gpus = _devices("gpu") if backend == "tensorflow" else []
        if len(gpus) > 1:
            return f"1 of {len(gpus)} GPUs used (data parallelism is wired on JAX only)"
        return ""
    devices = list(devices) if devices is not None else _devices()
    if len(devices) < 2:
        return ""
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    kinds = sorted({str(d).split(":")[0] for d in devices})
    return f"data-parallel over {len(devices)} {'/'.join(kinds)} devices (Keras DataParallel)"
