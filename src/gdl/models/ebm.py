"""Energy-based models (chapter 7): an energy network, Langevin dynamics, and
contrastive-divergence training with a replay buffer, compiled as graph code.

The energy E(x) is low where the model believes data lives; the model density
is p(x) = exp(-E(x)) / Z. Sampling follows the gradient -dE/dx downhill with
added noise (Langevin dynamics). That needs gradients with respect to the
*input*, which `gdl.backend.input_grad` gives on every backend. The model
meets the book's contract (`gdl.models.base`): `generate` returns images in
[0, 1] (the chains themselves run in [-1, 1]).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gdl import backend
from gdl.models.base import GenerativeModel, from_nested_config


def build_energy_net(image_size: int = 32, channels: int = 1,
                     filters=(16, 32, 64, 64), dense: int = 64,
                     name: str = "energy") -> keras.Model:
    """A small conv net mapping images in [-1, 1] to one energy each.

    Four stride-2 convolutions (the first 5x5, the rest 3x3) and a dense
    layer, with swish activations: smooth, so that dE/dx is smooth too.
    """
    inputs = keras.Input((image_size, image_size, channels))
    x = inputs
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 5 if i == 0 else 3, strides=2, padding="same",
                          activation="swish")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense, activation="swish")(x)
    energy = layers.Dense(1)(x)[:, 0]                     # (N,)
    return keras.Model(inputs, energy, name=name)


def energy_gradient(energy_fn, x):
    """dE/dx for a batch x: the gradient of sum_i E(x_i) (examples are
    independent, so row i is the gradient of E(x_i))."""
    return backend.input_grad(energy_fn, x)


def langevin_step(energy_fn, x, step_size, noise=None, grad_clip=None,
                  bounds=None, seed=None, eps=None):
    """One step of Langevin dynamics on the energy:

        x <- x - step_size * dE/dx + noise * eps,   eps ~ N(0, I)

    With `noise=None` the noise scale is sqrt(2 * step_size), the exact
    Langevin discretisation, whose samples approach p(x) ~ exp(-E(x)) as the
    step shrinks. A separate `noise` (smaller in practice) gives the
    "tempered" sampler used to train image EBMs. `grad_clip` clips each
    gradient entry to [-grad_clip, grad_clip]; `bounds` = (lo, hi) clips x.
    `eps` is drawn with `seed` unless given (a compiled loop passes it in).
    """
    if noise is None:
        noise = ops.sqrt(2.0 * ops.convert_to_tensor(step_size, "float32"))
    if eps is None:
        eps = keras.random.normal(ops.shape(x), seed=seed)
    grad = energy_gradient(energy_fn, x)
    if grad_clip is not None:
        grad = ops.clip(grad, -grad_clip, grad_clip)
    x = x - step_size * grad
    x = x + noise * eps
    if bounds is not None:
        x = ops.clip(x, bounds[0], bounds[1])
    return ops.stop_gradient(x)


def langevin_chain(energy_fn, x, steps: int, step_size, noise=None,
                   grad_clip=None, bounds=None, seed=None, eps=None):
    """`steps` Langevin steps from x, as a loop the graph compiler keeps
    rolled (`ops.fori_loop`), so 60 steps trace as fast as one. The noise for
    every step, shape (steps, *x.shape), is drawn before the loop (a seed
    generator cannot advance inside a compiled loop on every backend), or
    given as `eps`."""
    if eps is None:
        eps = keras.random.normal((steps, *ops.shape(x)), seed=seed)

    def body(i, state):
        return langevin_step(energy_fn, state, step_size, noise, grad_clip,
                             bounds, eps=eps[i])

    return ops.fori_loop(0, steps, body, x)


@keras.saving.register_keras_serializable(package="gdl")
class EBM(GenerativeModel):
    """Trains an energy network by contrastive divergence.

    Each step: real images get a little noise; "fake" images are drawn from
    a replay buffer of earlier chains (a fraction `fresh` restarted from
    uniform noise), improved by `steps` Langevin steps, and written back.
    The loss pushes real energies down and fake energies up:

        loss = mean E(real) - mean E(fake) + alpha * mean(E(real)^2 + E(fake)^2)

    The alpha term keeps energies near zero (without it both can drift off
    together). The step is written once (`stateful_train_step`) and runs
    compiled on every backend.
    """

    def __init__(self, energy_net, buffer_size: int = 8192, steps: int = 60,
                 step_size: float = 10.0, noise: float = 0.005,
                 grad_clip: float = 0.03, alpha: float = 0.1,
                 fresh: float = 0.05, real_noise: float = 0.005,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.energy = energy_net
        self.buffer_size, self.seed = buffer_size, seed
        self.image_shape = tuple(energy_net.input_shape[1:])
        self.steps, self.step_size, self.noise = steps, step_size, noise
        self.grad_clip, self.alpha, self.fresh = grad_clip, alpha, fresh
        self.real_noise = real_noise
        self.seeds = keras.random.SeedGenerator(seed)
        self.buffer = self.add_weight(
            shape=(buffer_size, *self.image_shape), trainable=False,
            initializer=keras.initializers.RandomUniform(-1.0, 1.0),
            name="replay_buffer")
        self.trackers = {k: keras.metrics.Mean(name=k) for k in
                         ("loss", "cd", "reg", "e_real", "e_fake")}
        self._sampler = None
        self.built = True   # the energy network is a built functional model

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x):
        return self.energy(x)

    def noise_images(self, n):
        """Uniform noise in [-1, 1]: where every chain can start."""
        return keras.random.uniform((n, *self.image_shape), -1.0, 1.0,
                                    seed=self.seeds)

    def sample(self, start, steps=None, seed=None):
        """Run Langevin chains from `start` (images in [-1, 1]) with the
        training settings; compiled when called from eager code. The noise
        follows the contract's seeding rule (`GenerativeModel.normal`)."""
        steps = steps or self.steps
        start = ops.convert_to_tensor(start, "float32")
        eps = self.normal((steps, *ops.shape(start)), seed)

        def chains(start, eps):
            return langevin_chain(self.energy, start, steps, self.step_size,
                                  self.noise, self.grad_clip, (-1.0, 1.0),
                                  eps=eps)

        if backend.in_compiled_code():
            return chains(start, eps)
        cache = self.__dict__.setdefault("_gdl_samplers", {})
        if steps not in cache:
            cache[steps] = backend.compile(chains, variables=[self.energy])
        return cache[steps](start, eps)

    def generate(self, n=None, *, seed=None, steps=None, start=None):
        """n images in [0, 1]: Langevin chains of `steps` steps (default: the
        training setting) from uniform noise (or from `start`, in [-1, 1])."""
        if start is None:
            start = self.uniform((n, *self.image_shape), -1.0, 1.0, seed)
        return (self.sample(start, steps, seed) + 1.0) / 2.0

    def negatives(self, n):
        """n fake images: buffer chains (some restarted), advanced and
        written back to the buffer."""
        size = ops.shape(self.buffer)[0]
        idx = keras.random.randint((n,), 0, size, seed=self.seeds)
        start = ops.take(self.buffer, idx, axis=0)
        restart = keras.random.uniform((n, 1, 1, 1), seed=self.seeds)
        start = ops.where(restart < self.fresh, self.noise_images(n), start)
        fake = self.sample(start)
        self.buffer.assign(ops.scatter_update(self.buffer, idx[:, None], fake))
        return fake

    def stateful_train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        n = ops.shape(real)[0]
        real = real + self.real_noise * keras.random.normal(
            ops.shape(real), seed=self.seeds)
        real = ops.clip(real, -1.0, 1.0)
        fake = self.negatives(n)

        def loss_fn():
            energies = self.energy(ops.concatenate([real, fake], 0),
                                   training=True)
            e_real, e_fake = energies[:n], energies[n:]
            cd = ops.mean(e_real) - ops.mean(e_fake)
            reg = self.alpha * ops.mean(e_real**2 + e_fake**2)
            return cd + reg, (cd, reg, e_real, e_fake)

        weights = self.energy.trainable_variables
        (loss, (cd, reg, e_real, e_fake)), grads = backend.value_and_grad(
            loss_fn, weights, has_aux=True)
        self.optimizers["optimizer"].apply(grads, weights)
        for key, value in zip(self.trackers, (loss, cd, reg, ops.mean(e_real),
                                              ops.mean(e_fake))):
            self.trackers[key].update_state(value)
        return {k: m.result() for k, m in self.trackers.items()}

    def stateful_test_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        e_real = self.energy(real)
        e_noise = self.energy(self.noise_images(ops.shape(real)[0]))
        self.trackers["e_real"].update_state(ops.mean(e_real))
        self.trackers["e_fake"].update_state(ops.mean(e_noise))
        return {k: self.trackers[k].result() for k in ("e_real", "e_fake")}

    def get_config(self):
        return {**super().get_config(),
                "energy_net": keras.saving.serialize_keras_object(self.energy),
                "buffer_size": self.buffer_size, "steps": self.steps,
                "step_size": self.step_size, "noise": self.noise,
                "grad_clip": self.grad_clip, "alpha": self.alpha,
                "fresh": self.fresh, "real_noise": self.real_noise,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "energy_net")
