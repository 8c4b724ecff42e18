"""The contract every generative family in the book meets.

A `GenerativeModel` is a `keras.Model` with

- `generate(n, *, seed=None, ...)`: n samples in the family's documented `output_range`
  ((0, 1) for images, so every family's samples can go straight into the same figures and
  metrics); `seed=None` draws from the model's own seed generator (a new batch each call), an
  integer gives the same batch every time, on every backend;
- `compile(...)` with the same optimizer keywords across families: `optimizer` for one network,
  `generator_optimizer` and `discriminator_optimizer` for adversarial pairs (a WGAN's critic is
  its discriminator);
- `get_config`/`from_config`, so that `model.save("x.keras")` and `keras.models.load_model`
  round-trip exactly, under TensorFlow, JAX or PyTorch, whichever saved it;
- training through `fit` on every backend: a family writes its step once, as ordinary stateful
  code in `stateful_train_step(data)`, and `gdl.backend.StatefulTraining` runs it.

A loaded model is not compiled (the optimizers' state is not part of the contract): call
`compile` again to go on training.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from gdl.backend import StatefulTraining, collect_variables


class GenerativeModel(StatefulTraining, keras.Model):
    """Base class of the book's generative models (see the module docstring)."""

    #: the range of `generate`'s output, documented per family
    output_range: tuple[float, float] = (0.0, 1.0)
    #: the optimizer keywords `compile` takes, and which sub-network each one trains
    optimizer_names: tuple[str, ...] = ("optimizer",)

    def optimizer_targets(self) -> dict[str, list]:
        """The variables each named optimizer updates."""
        return {"optimizer": self.trainable_variables}

    def compile(self, *, run_eagerly=False, **kwargs):
        optimizers = {}
        for key in self.optimizer_names:
            if key not in kwargs:
                raise TypeError(f"{type(self).__name__}.compile needs {key}=<optimizer>; "
                                f"it takes {', '.join(self.optimizer_names)}")
            optimizers[key] = keras.optimizers.get(kwargs.pop(key))
        if kwargs:
            raise TypeError(f"{type(self).__name__}.compile got unexpected arguments "
                            f"{sorted(kwargs)}; it takes {', '.join(self.optimizer_names)}")
        targets = self.optimizer_targets()
        for key, opt in optimizers.items():
            if not opt.built:   # build now: JAX cannot create variables inside a compiled step
                opt.build(targets[key])
        self.optimizers = optimizers
        first = optimizers[self.optimizer_names[0]]
        super().compile(optimizer=first, run_eagerly=run_eagerly)

    def extra_state(self):
        return collect_variables(list(getattr(self, "optimizers", {}).values()), self.metrics)

    def get_compile_config(self):
        return None   # optimizers are not saved; compile a loaded model again to train it

    def generate(self, n: int, *, seed=None):
        raise NotImplementedError

    def normal(self, shape, seed=None):
        """N(0, I) noise of `shape`: from the model's seed generator when `seed` is None (a new
        draw each call, inside compiled code too), else from NumPy's generator seeded with
        `seed`, so that the same integer gives the same samples on every backend (Keras' own
        random streams differ between TensorFlow, JAX and PyTorch)."""
        if seed is None:
            return keras.random.normal(shape, seed=self.seeds)
        return ops.convert_to_tensor(np.random.default_rng(seed).standard_normal(shape), "float32")

    def uniform(self, shape, low=0.0, high=1.0, seed=None):
        """U(low, high) noise of `shape`, with `normal`'s seeding rule."""
        if seed is None:
            return keras.random.uniform(shape, low, high, seed=self.seeds)
        return ops.convert_to_tensor(np.random.default_rng(seed).uniform(low, high, shape),
                                     "float32")


def from_nested_config(cls, config: dict, *keys: str):
    """`cls(**config)` with the sub-models stored under `keys` deserialised first."""
    config = dict(config)
    for key in keys:
        config[key] = keras.saving.deserialize_keras_object(config[key])
    return cls(**config)
