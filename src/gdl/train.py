"""Callbacks and helpers that several chapters share."""
from __future__ import annotations

import math

import keras
import numpy as np


class Snapshots(keras.callbacks.Callback):
    """Every `every` epochs, call `make_outputs(model)` and keep what it returns, to show progress.

    The outputs (a batch of images, a point cloud, ...) are kept as NumPy arrays in
    `by_epoch`, keyed by the number of epochs done.
    """

    def __init__(self, make_outputs, every: int = 1):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.make_outputs, self.every = make_outputs, every
        self.by_epoch: dict[int, np.ndarray] = {}

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        self.by_epoch[epoch + 1] = np.asarray(keras.ops.convert_to_numpy(self.make_outputs(self.model)))


class NaNGuard(keras.callbacks.Callback):
    """Stop training at the first non-finite loss and say where it happened."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.failed_at: tuple[int, int] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        bad = [k for k, v in logs.items() if np.ndim(v) == 0 and not math.isfinite(float(v))]
        if bad:
            self.failed_at = (self.epoch + 1, batch)
            self.model.stop_training = True
            raise FloatingPointError(
                f"non-finite {', '.join(sorted(bad))} at epoch {self.epoch + 1}, batch {batch}: "
                "lower the learning rate or check the data's scaling")


def batches(*arrays, batch_size: int, seed: int = 0):
    """An endless stream of shuffled full batches of `arrays` (the same rows from each), as
    tuples, for `fit(..., steps_per_epoch=...)`; plain NumPy, so it feeds every Keras backend
    alike."""
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays must have the same length, got {[len(a) for a in arrays]}")
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} examples")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            rows = order[start:start + batch_size]
            yield tuple(a[rows] for a in arrays)
