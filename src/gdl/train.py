"""Callbacks and helpers that several chapters share."""
from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np


class SampleGrid(keras.callbacks.Callback):
    """Every `every` epochs, call `make_images(model)` and keep the images, to show progress."""

    def __init__(self, make_images, every: int = 1, show: bool = False, ncols: int = 8):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.make_images, self.every, self.show, self.ncols = make_images, every, show, ncols
        self.grids: dict[int, np.ndarray] = {}

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        images = np.asarray(keras.ops.convert_to_numpy(self.make_images(self.model)))
        self.grids[epoch + 1] = images
        if self.show:
            import matplotlib.pyplot as plt

            from gdl.viz import image_grid

            image_grid(images, ncols=self.ncols, suptitle=f"after epoch {epoch + 1}")
            plt.show()


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


def checkpoint(path, monitor: str = "loss", **kwargs) -> keras.callbacks.ModelCheckpoint:
    """Save the best weights so far to a `.weights.h5` file (Keras 3's required suffix)."""
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"weights files must end in '.weights.h5' (Keras 3); got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return keras.callbacks.ModelCheckpoint(str(path), monitor=monitor, save_weights_only=True,
                                           save_best_only=True, **kwargs)
