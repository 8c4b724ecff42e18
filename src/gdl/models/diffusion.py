"""Denoising diffusion (chapter 8): noise schedules, the sinusoidal noise
embedding, a U-Net that predicts noise, the diffusion model with an EMA copy
of its weights, and deterministic (DDIM) sampling.

Times run from t = 0 (clean image) to t = 1 (pure noise). A schedule maps t to
the pair (signal rate, noise rate) with signal² + noise² = 1, so that

    x_t = signal(t) * x_0 + noise(t) * eps,   eps ~ N(0, I).

Everything is written with ``keras.ops``; the training step's gradients and the compiled
noise predictor go through ``gdl.backend``, so it trains and samples on TensorFlow, JAX and
PyTorch. The model meets the book's contract (``gdl.models.base``): ``generate`` returns
images in [0, 1].
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

from gdl import backend
from gdl.backend import BatchNormalization
from gdl.models.base import GenerativeModel, from_nested_config


# --------------------------------------------------------------------------- schedules
def linear_schedule(t, beta_min=1e-4, beta_max=0.02, steps=1000):
    """DDPM's linear betas, in continuous time: (signal rate, noise rate) at t.

    With beta rising linearly from beta_min to beta_max over `steps` steps,
    log alpha_bar(t) = -steps * (beta_min * t + (beta_max - beta_min) * t² / 2).
    """
    t = ops.convert_to_tensor(t, "float32")
    log_alpha_bar = -steps * (beta_min * t + 0.5 * (beta_max - beta_min) * t**2)
    alpha_bar = ops.exp(log_alpha_bar)
    return ops.sqrt(alpha_bar), ops.sqrt(1.0 - alpha_bar)


def cosine_schedule(t):
    """Cosine schedule: alpha_bar(t) = cos²(pi t / 2); signal 1 at t=0, 0 at t=1."""
    angle = ops.convert_to_tensor(t, "float32") * (math.pi / 2)
    return ops.cos(angle), ops.sin(angle)


def offset_cosine_schedule(t, max_signal=0.95, min_signal=0.02):
    """Cosine schedule squeezed so that the signal rate runs from `max_signal`
    (t=0) to `min_signal` (t=1): no step is entirely clean or entirely noise."""
    start, end = math.acos(max_signal), math.acos(min_signal)
    angle = start + ops.convert_to_tensor(t, "float32") * (end - start)
    return ops.cos(angle), ops.sin(angle)


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule,
             "offset cosine": offset_cosine_schedule}


def add_noise(images, noise, t, schedule=offset_cosine_schedule):
    """Jump straight to step t: signal(t) * images + noise(t) * noise.

    `t` is one time per image, shape (N,) or (N, 1, 1, 1).
    """
    t = ops.reshape(ops.convert_to_tensor(t, "float32"), (-1, 1, 1, 1))
    signal, noise_rate = schedule(t)
    return signal * images + noise_rate * noise


# --------------------------------------------------------------------------- U-Net
def sinusoidal_embedding(x, dims=32, min_freq=1.0, max_freq=1000.0):
    """Embed a scalar per image, shape (N, 1, 1, 1), as `dims` sines and cosines
    of geometrically spaced frequencies: (N, 1, 1, dims)."""
    freqs = ops.exp(ops.linspace(math.log(min_freq), math.log(max_freq),
                                 dims // 2))
    angles = 2.0 * math.pi * ops.cast(x, "float32") * freqs
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


@keras.saving.register_keras_serializable(package="gdl")
class NoiseEmbedding(layers.Layer):
    """The sinusoidal embedding as a layer (no weights)."""

    def __init__(self, dims=32, max_freq=1000.0, **kwargs):
        super().__init__(**kwargs)
        self.dims, self.max_freq = dims, max_freq

    def call(self, x):
        return sinusoidal_embedding(x, self.dims, max_freq=self.max_freq)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims,
                "max_freq": self.max_freq}


def residual_block(x, emb, width):
    """Two 3×3 convolutions with a shortcut; the noise embedding enters as a
    per-channel shift between them."""
    shortcut = x if x.shape[-1] == width else layers.Conv2D(width, 1)(x)
    h = BatchNormalization(center=False, scale=False)(x)
    h = layers.Conv2D(width, 3, padding="same", activation="swish")(h)
    h = h + layers.Dense(width)(emb)              # (N, 1, 1, width) broadcast
    h = layers.Conv2D(width, 3, padding="same")(h)
    return h + shortcut


def build_unet(image_size=32, widths=(32, 64, 96), block_depth=2,
               embedding_dims=32, channels=3):
    """A U-Net from (noisy images, noise variances) to predicted noise.

    Each entry of `widths` is one resolution; every level but the last halves
    the size on the way down and doubles it on the way up, and each block's
    output on the way down is concatenated back in on the way up.
    """
    noisy = keras.Input((image_size, image_size, channels), name="noisy_images")
    variance = keras.Input((1, 1, 1), name="noise_variance")
    emb = NoiseEmbedding(embedding_dims)(variance)                # (N,1,1,E)
    emb = layers.Dense(4 * embedding_dims, activation="swish")(emb)

    x = layers.Conv2D(widths[0], 1)(noisy)                        # (N,S,S,w0)
    skips = []
    for width in widths[:-1]:                                    # down
        for _ in range(block_depth):
            x = residual_block(x, emb, width)
            skips.append(x)
        x = layers.AveragePooling2D(2)(x)                         # size / 2
    for _ in range(block_depth):                                 # bottom
        x = residual_block(x, emb, widths[-1])
    for width in reversed(widths[:-1]):                          # up
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)   # size * 2
        for _ in range(block_depth):
            x = layers.Concatenate()([x, skips.pop()])
            x = residual_block(x, emb, width)
    x = BatchNormalization(center=False, scale=False)(x)
    out = layers.Conv2D(channels, 1, kernel_initializer="zeros",
                        name="predicted_noise")(x)
    return keras.Model([noisy, variance], out, name="unet")


# --------------------------------------------------------------------------- sampling
def ddim_sample(predict_noise, initial_noise, steps, schedule=offset_cosine_schedule,
                trajectory=False, clip=None):
    """Deterministic DDIM sampling from t=1 to t=0 in `steps` equal steps.

    predict_noise(x_t, signal_rate, noise_rate) -> predicted eps. At each step
    the current images are split into an estimate of the clean image and of
    the noise, and both are recombined at the next, lower noise level. Returns
    the last clean-image estimate; with trajectory=True also the images x_t
    (the initial noise, then after every step) and the clean-image estimate
    made at every step. The schedule's signal rate must be above zero at
    t=1 (linear, offset cosine): at zero signal the clean estimate is 0/0.
    clip=(lo, hi) keeps each clean estimate in the range of real data (and
    re-derives the noise estimate from it), as DDPM's sampler does.
    """
    x = initial_noise
    n = ops.shape(x)[0]
    path, estimates = [x], []
    for i in range(steps):
        t = ops.full((n, 1, 1, 1), 1.0 - i / steps)
        signal, noise_rate = schedule(t)
        eps = predict_noise(x, signal, noise_rate)
        x0 = (x - noise_rate * eps) / signal                  # clean estimate
        if clip is not None:
            x0 = ops.clip(x0, clip[0], clip[1])
            eps = (x - signal * x0) / noise_rate
        next_signal, next_noise = schedule(t - 1.0 / steps)
        x = next_signal * x0 + next_noise * eps               # one step less noisy
        if trajectory:
            path.append(x)
            estimates.append(x0)
    return (x0, path, estimates) if trajectory else x0


def slerp(a, b, weights):
    """Spherical linear interpolation (Shoemake) from a to b, one result per weight.

    Each example is treated as one vector: with omega the angle between a_i and b_i,
    slerp = sin((1 - w) omega) / sin(omega) a + sin(w omega) / sin(omega) b, which moves along
    the great circle between them. Two draws of high-dimensional unit-variance noise are nearly
    orthogonal and of nearly equal norm, so every point keeps the norm of real noise, where a
    straight line would shrink it towards the middle.
    """
    a = ops.convert_to_tensor(a, "float32")
    b = ops.convert_to_tensor(b, "float32")
    shape = ops.shape(a)
    fa, fb = ops.reshape(a, (shape[0], -1)), ops.reshape(b, (shape[0], -1))
    cos = ops.sum(fa * fb, axis=1) / (ops.norm(fa, axis=1) * ops.norm(fb, axis=1))
    omega = ops.arccos(ops.clip(cos, -1.0 + 1e-7, 1.0 - 1e-7))[:, None]   # (N, 1)
    out = []
    for w in weights:
        mixed = (ops.sin((1.0 - w) * omega) * fa + ops.sin(w * omega) * fb) / ops.sin(omega)
        out.append(ops.reshape(mixed, shape))
    return ops.stack(out)


# --------------------------------------------------------------------------- the model
@keras.saving.register_keras_serializable(package="gdl")
class DiffusionModel(GenerativeModel):
    """Trains `network` to predict the noise added to images; samples with DDIM
    using an exponential moving average (EMA) of its weights.

    Images go in scaled to [0, 1]; internally they are standardised with the
    per-channel `mean` and `std` of the training set. With `ema_warmup` the
    EMA decay after n updates is min(ema, (1 + n) / (10 + n)), so that early
    in training the average does not cling to the untrained weights.
    """

    def __init__(self, network, mean, std, schedule=offset_cosine_schedule,
                 ema=0.999, ema_warmup=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(schedule, str):
            schedule = SCHEDULES[schedule]
        if schedule not in SCHEDULES.values():
            raise ValueError(f"schedule must be one of gdl.models.diffusion.SCHEDULES "
                             f"({', '.join(SCHEDULES)}), so that the model can be saved")
        self.network = network
        self.seed = seed
        self.ema_network = keras.models.clone_model(network)
        self.ema_network.set_weights(network.get_weights())
        self.ema_network.trainable = False   # moved by averaging, never by gradients
        self.mean = ops.reshape(ops.convert_to_tensor(mean, "float32"), (1, 1, 1, -1))
        self.std = ops.reshape(ops.convert_to_tensor(std, "float32"), (1, 1, 1, -1))
        self.schedule, self.ema, self.ema_warmup = schedule, ema, ema_warmup
        self.seeds = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._predictors = {}
        self.built = True   # the networks are built functional models

    @property
    def metrics(self):
        return [self.loss_tracker]

    def normalize(self, images):
        return (images - self.mean) / self.std

    def denormalize(self, x):
        return ops.clip(x * self.std + self.mean, 0.0, 1.0)

    def noise_loss(self, images, network, training):
        """Noise images at random times; mean squared error of the predicted noise."""
        if isinstance(images, (tuple, list)):     # (x,) or (x, None, None)
            images = images[0]
        x0 = self.normalize(images)
        n = ops.shape(x0)[0]
        eps = keras.random.normal(ops.shape(x0), seed=self.seeds)
        t = keras.random.uniform((n, 1, 1, 1), seed=self.seeds)
        signal, noise_rate = self.schedule(t)
        noisy = signal * x0 + noise_rate * eps
        predicted = network([noisy, noise_rate**2], training=training)
        return ops.mean((eps - predicted) ** 2)

    def stateful_train_step(self, images):
        weights = self.network.trainable_variables
        loss, grads = backend.value_and_grad(
            lambda: self.noise_loss(images, self.network, training=True), weights)
        optimizer = self.optimizers["optimizer"]
        optimizer.apply(grads, weights)
        decay = self.ema
        if self.ema_warmup:   # average over at most the steps taken so far
            n = ops.cast(optimizer.iterations, "float32")
            decay = ops.minimum(decay, (1.0 + n) / (10.0 + n))
        for w, ema_w in zip(self.network.weights, self.ema_network.weights):
            ema_w.assign(decay * ema_w + (1.0 - decay) * w)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def stateful_test_step(self, images):
        """Validation: the same noise-prediction loss, with the EMA weights."""
        loss = self.noise_loss(images, self.ema_network, training=False)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def predict_noise(self, x, signal, noise_rate, ema=True):
        """The (EMA) network's noise estimate, run as a compiled function."""
        key = "ema" if ema else "raw"
        if key not in self._predictors:
            net = self.ema_network if ema else self.network
            self._predictors[key] = backend.compile(
                lambda x, v: net([x, v], training=False), variables=[net])
        return self._predictors[key](x, noise_rate**2)

    def _start(self, n, initial_noise, seed):
        if initial_noise is None:
            return self.normal((n, *self.network.input_shape[0][1:]), seed)
        return ops.convert_to_tensor(initial_noise, "float32")

    def generate(self, n=None, *, seed=None, steps=20, initial_noise=None, ema=True,
                 clip=True):
        """n images in [0, 1] from `steps` DDIM steps, from fresh (or the given) noise;
        clip=True keeps every clean-image estimate in the pixel range."""
        return self.reverse_process(n, seed=seed, steps=steps, initial_noise=initial_noise,
                                    ema=ema, clip=clip)[0]

    def reverse_process(self, n=None, *, seed=None, steps=20, initial_noise=None, ema=True,
                        clip=True):
        """`generate`, keeping the way there: (images, [x_t after each step, from the
        noise on], [clean-image estimate at each step]), all in [0, 1]."""
        bounds = (self.normalize(0.0), self.normalize(1.0))    # pixel range
        x0, path, estimates = ddim_sample(
            lambda x, s, r: self.predict_noise(x, s, r, ema=ema),
            self._start(n, initial_noise, seed), steps, self.schedule, trajectory=True,
            clip=bounds if clip else None)
        return (self.denormalize(x0), [self.denormalize(x) for x in path],
                [self.denormalize(e) for e in estimates])

    def get_config(self):
        name = next(k for k, v in SCHEDULES.items() if v is self.schedule)
        return {**super().get_config(),
                "network": keras.saving.serialize_keras_object(self.network),
                "mean": [float(v) for v in ops.convert_to_numpy(self.mean).ravel()],
                "std": [float(v) for v in ops.convert_to_numpy(self.std).ravel()],
                "schedule": name, "ema": self.ema, "ema_warmup": self.ema_warmup,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "network")
