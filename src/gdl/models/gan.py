"""Generative adversarial networks (chapter 4): DCGAN, WGAN-GP and a
conditional WGAN-GP, as Keras models whose `train_step` is the adversarial
game written out.

Images live in [-1, 1] (the generator ends in tanh). Discriminators and
critics return one raw score per image (a logit for the DCGAN, an unbounded
critic value for the WGAN). A conditional model takes one-hot labels: the
generator reads them next to z, the critic as extra constant image channels.

Every model meets the book's contract (`gdl.models.base`): `generate` returns
images in [0, 1]; the optimizers are `generator_optimizer` and
`discriminator_optimizer` (the WGAN's critic is its discriminator). Gradients
with respect to weights and to the critic's input go through `gdl.backend`, so
the same code trains on TensorFlow, JAX and PyTorch.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gdl import backend
from gdl.backend import BatchNormalization
from gdl.models.base import GenerativeModel, from_nested_config


# --------------------------------------------------------------------- builders
def build_generator(latent_dim: int = 100, image_size: int = 32,
                    channels: int = 1, filters=(256, 128, 64),
                    n_classes: int = 0, name: str = "generator") -> keras.Model:
    """z (and a one-hot label) -> an image in [-1, 1].

    A dense layer makes a 4x4 block with filters[0] channels; each further
    entry of `filters` is a stride-2 transposed convolution that doubles the
    size (batch norm, leaky ReLU); a last stride-2 transposed convolution
    with tanh makes the image. So 4 * 2**len(filters) must equal image_size.
    """
    if 4 * 2 ** len(filters) != image_size:
        raise ValueError(f"{len(filters)} filter entries give "
                         f"{4 * 2 ** len(filters)}x{4 * 2 ** len(filters)} "
                         f"images, not {image_size}x{image_size}")
    z = keras.Input((latent_dim,), name="z")
    inputs, x = [z], z
    if n_classes:
        label = keras.Input((n_classes,), name="label")
        inputs.append(label)
        x = layers.Concatenate()([z, label])
    x = layers.Dense(4 * 4 * filters[0], use_bias=False)(x)
    x = layers.Reshape((4, 4, filters[0]))(x)
    x = BatchNormalization(momentum=0.9)(x)
    x = layers.LeakyReLU(0.2)(x)
    for f in filters[1:]:
        x = layers.Conv2DTranspose(f, 4, strides=2, padding="same",
                                   use_bias=False)(x)
        x = BatchNormalization(momentum=0.9)(x)
        x = layers.LeakyReLU(0.2)(x)
    image = layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                   activation="tanh")(x)
    return keras.Model(inputs if n_classes else z, image, name=name)


def build_discriminator(image_size: int = 32, channels: int = 1,
                        filters=(64, 128, 256), n_classes: int = 0,
                        norm: str | None = "batch", dropout: float = 0.0,
                        name: str = "discriminator") -> keras.Model:
    """An image (and a one-hot label) -> one raw score.

    Stride-2 4x4 convolutions with leaky ReLU halve the size once per entry
    of `filters`; then a flatten and a dense layer give one number. `norm`
    is "batch" (DCGAN), "layer" or None (a WGAN-GP critic must not use batch
    norm: the penalty is per example, and batch norm mixes the examples).
    The first convolution is never normalised. A label enters as n_classes
    constant channels appended to the image.
    """
    if norm not in ("batch", "layer", None):
        raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")
    image = keras.Input((image_size, image_size, channels), name="image")
    inputs, x = [image], image
    if n_classes:
        label = keras.Input((n_classes,), name="label")
        inputs.append(label)
        planes = layers.Reshape((1, 1, n_classes))(label)
        planes = layers.UpSampling2D(image_size)(planes)  # (N, S, S, K)
        x = layers.Concatenate()([image, planes])
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 4, strides=2, padding="same",
                          use_bias=(i == 0 or norm is None))(x)
        if i > 0 and norm == "batch":
            x = BatchNormalization(momentum=0.9)(x)
        elif i > 0 and norm == "layer":
            x = layers.LayerNormalization(axis=(1, 2, 3))(x)
        x = layers.LeakyReLU(0.2)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    score = layers.Dense(1)(x)[:, 0]                      # (N,)
    return keras.Model(inputs if n_classes else image, score, name=name)


# --------------------------------------------------------------------- pieces
def smooth_targets(n, real: bool, amount: float = 0.1, seed=None):
    """Noisy targets for the discriminator that stay in [0, 1]:
    real images get 1 - amount * u, fake ones amount * u, u ~ U(0, 1)."""
    u = keras.random.uniform((n,), 0.0, 1.0, seed=seed)
    return 1.0 - amount * u if real else amount * u


def interpolation_weights(n, seed=None):
    """One weight per example, drawn from U(0, 1) and shaped (n, 1, 1, 1)
    so that it broadcasts over an image."""
    return keras.random.uniform((n, 1, 1, 1), 0.0, 1.0, seed=seed)


def gradient_penalty(critic, real, fake, labels=None, weights=None,
                     seed=None):
    """Gulrajani et al.'s penalty: mean over examples of

        (|| d critic(x_hat) / d x_hat ||_2 - 1) ** 2,
        x_hat = w * real + (1 - w) * fake,   w ~ U(0, 1),

    which pushes the critic's gradient norm towards 1 on the lines between
    real and fake images (a soft form of the 1-Lipschitz constraint).
    """
    n = ops.shape(real)[0]
    if weights is None:
        weights = interpolation_weights(n, seed=seed)
    x_hat = weights * real + (1.0 - weights) * fake
    # examples are independent: row i of the gradient of the summed scores is
    # d critic(x_hat_i) / d x_hat_i
    grad = backend.input_grad(
        lambda x: critic([x, labels] if labels is not None else x, training=True), x_hat)
    norm = ops.sqrt(ops.sum(ops.square(grad), axis=(1, 2, 3)) + 1e-12)
    return ops.mean(ops.square(norm - 1.0))


def bce_with_logits(targets, logits):
    """Binary cross-entropy of logits against targets in [0, 1], averaged."""
    return ops.mean(ops.binary_crossentropy(targets, logits, from_logits=True))


# --------------------------------------------------------------------- shared
class _Adversarial(GenerativeModel):
    """What the two GANs share: a generator, a discriminator (or critic), their
    optimizers, the trackers, and `generate` in [0, 1]."""

    optimizer_names = ("generator_optimizer", "discriminator_optimizer")
    tracker_names: tuple[str, ...] = ()

    def __init__(self, generator, discriminator, latent_dim, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.seed = latent_dim, seed
        self.seeds = keras.random.SeedGenerator(seed)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in self.tracker_names}
        self.built = True   # both networks are built functional models

    def optimizer_targets(self):
        return {"generator_optimizer": self.generator.trainable_variables,
                "discriminator_optimizer": self.discriminator.trainable_variables}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def latent(self, n, seed=None):
        """n latent vectors z ~ N(0, I)."""
        return self.normal((n, self.latent_dim), seed)

    def update(self, optimizer, network, loss_fn):
        """One optimizer step on `network`'s weights; returns loss_fn()'s value(s)."""
        weights = network.trainable_variables
        out, grads = backend.value_and_grad(loss_fn, weights,
                                            has_aux=isinstance(loss_fn, _WithAux))
        self.optimizers[optimizer].apply(grads, weights)
        return out

    def track(self, *values):
        for tracker, value in zip(self.trackers.values(), values):
            tracker.update_state(value)
        return {k: m.result() for k, m in self.trackers.items()}

    def get_config(self):
        return {**super().get_config(),
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "latent_dim": self.latent_dim, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, "generator", "discriminator")


class _WithAux:
    """Marks a loss function that returns (loss, extras)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self):
        return self.fn()


# --------------------------------------------------------------------- DCGAN
@keras.saving.register_keras_serializable(package="gdl")
class DCGAN(_Adversarial):
    """A GAN trained with the (non-saturating) cross-entropy losses.

    Each `train_step` takes one batch of real images and makes one update
    of each network: first the discriminator (real -> target ~1, fake ->
    target ~0, targets smoothed by `label_smoothing` and kept in [0, 1]),
    then the generator on fresh z (its fakes -> target 1, i.e. it maximises
    log D(G(z)) rather than minimising log(1 - D(G(z)))). The generator's
    step runs both networks forward again: the alternating update, which
    costs one more forward pass than taking both gradients from one pass.
    """

    tracker_names = ("d_loss", "g_loss", "d_real_acc", "d_fake_acc")

    def __init__(self, generator, discriminator, latent_dim: int = 100,
                 label_smoothing: float = 0.1, seed: int = 0, **kwargs):
        super().__init__(generator, discriminator, latent_dim, seed, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, z):
        return self.generator(z)

    def generate(self, n=None, *, seed=None, z=None):
        """n images in [0, 1] from fresh (or the given) latent vectors."""
        if z is None:
            z = self.latent(n, seed)
        images = self.generator(ops.convert_to_tensor(z, "float32"), training=False)
        return (images + 1.0) / 2.0

    def d_loss(self, real, fake, training=True):
        n = ops.shape(real)[0]
        real_logits = self.discriminator(real, training=training)
        fake_logits = self.discriminator(fake, training=training)
        loss = (bce_with_logits(smooth_targets(n, True, self.label_smoothing,
                                               self.seeds), real_logits)
                + bce_with_logits(smooth_targets(n, False,
                                                 self.label_smoothing,
                                                 self.seeds), fake_logits))
        return loss, real_logits, fake_logits

    def g_loss(self, z, training=True):
        fake_logits = self.discriminator(self.generator(z, training=training),
                                         training=training)
        return bce_with_logits(ops.ones_like(fake_logits), fake_logits)

    def discriminator_step(self, real, z):
        fake = self.generator(z, training=True)
        loss, (real_logits, fake_logits) = self.update(
            "discriminator_optimizer", self.discriminator,
            _WithAux(lambda: _split(self.d_loss(real, fake))))
        return loss, real_logits, fake_logits

    def generator_step(self, z):
        return self.update("generator_optimizer", self.generator,
                           lambda: self.g_loss(z))

    def stateful_train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        n = ops.shape(real)[0]
        d_loss, real_logits, fake_logits = self.discriminator_step(
            real, self.latent(n))
        g_loss = self.generator_step(self.latent(n))
        return self.track(d_loss, g_loss,
                          ops.mean(ops.cast(real_logits > 0, "float32")),
                          ops.mean(ops.cast(fake_logits < 0, "float32")))

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _split(out):
    """(loss, a, b) -> (loss, (a, b)): the shape value_and_grad's has_aux expects."""
    return out[0], tuple(out[1:])


# --------------------------------------------------------------------- WGAN-GP
@keras.saving.register_keras_serializable(package="gdl")
class WGANGP(_Adversarial):
    """A Wasserstein GAN with gradient penalty, optionally conditional.

    `fit` must feed batches of `critic_steps * batch` real images (and, for
    a conditional model, their one-hot labels as a second element). Each
    `train_step` splits its batch into `critic_steps` parts, makes one
    critic update on each (fresh z and interpolation weights every time),
    then one generator update: so one `train_step` is one generator step.

        critic loss    = mean c(fake) - mean c(real) + gp_weight * penalty
        generator loss = -mean c(fake)
    """

    tracker_names = ("c_loss", "w_distance", "gp", "g_loss")

    def __init__(self, generator, discriminator, latent_dim: int = 128,
                 critic_steps: int = 5, gp_weight: float = 10.0,
                 n_classes: int = 0, seed: int = 0, **kwargs):
        super().__init__(generator, discriminator, latent_dim, seed, **kwargs)
        self.critic_steps, self.gp_weight = critic_steps, gp_weight
        self.n_classes = n_classes

    @property
    def critic(self):
        return self.discriminator

    def _g(self, z, labels, training):
        x = [z, labels] if self.n_classes else z
        return self.generator(x, training=training)

    def _c(self, x, labels, training=True):
        return self.critic([x, labels] if self.n_classes else x,
                           training=training)

    def generate(self, n=None, *, seed=None, z=None, labels=None):
        """Images in [0, 1]; a conditional model needs one-hot `labels`."""
        if z is None:
            z = self.latent(n, seed)
        if labels is not None:
            labels = ops.convert_to_tensor(labels, "float32")
        elif self.n_classes:
            raise ValueError("this WGANGP is conditional: pass one-hot labels=")
        images = self._g(ops.convert_to_tensor(z, "float32"), labels, False)
        return (images + 1.0) / 2.0

    def critic_loss(self, real, fake, labels=None):
        """(loss, Wasserstein estimate, penalty) for one critic update."""
        w_distance = (ops.mean(self._c(real, labels))
                      - ops.mean(self._c(fake, labels)))
        gp = gradient_penalty(self.critic, real, fake, labels,
                              seed=self.seeds)
        return -w_distance + self.gp_weight * gp, w_distance, gp

    def critic_step(self, real, labels=None):
        n = ops.shape(real)[0]
        fake = self._g(self.latent(n), labels, True)
        loss, (w_distance, gp) = self.update(
            "discriminator_optimizer", self.critic,
            _WithAux(lambda: _split(self.critic_loss(real, fake, labels))))
        return loss, w_distance, gp

    def generator_step(self, n, labels=None):
        z = self.latent(n)
        return self.update(
            "generator_optimizer", self.generator,
            lambda: -ops.mean(self._c(self._g(z, labels, True), labels)))

    def stateful_train_step(self, data):
        if self.n_classes:
            real, labels = data
        else:
            real = data[0] if isinstance(data, (tuple, list)) else data
            labels = None
        if real.shape[0] is not None and real.shape[0] < self.critic_steps:
            raise ValueError(f"WGANGP takes batches of critic_steps * batch images: this "
                             f"batch of {real.shape[0]} cannot be split into "
                             f"{self.critic_steps} critic steps; feed "
                             f"{self.critic_steps} x the per-step batch size")
        # the batch may be dynamic (a Python generator on TensorFlow)
        b = ops.shape(real)[0] // self.critic_steps
        for i in range(self.critic_steps):
            part = slice(i * b, (i + 1) * b)
            c_loss, w_distance, gp = self.critic_step(
                real[part], None if labels is None else labels[part])
        g_loss = self.generator_step(
            b, None if labels is None else labels[:b])
        return self.track(c_loss, w_distance, gp, g_loss)

    def get_config(self):
        return {**super().get_config(), "critic_steps": self.critic_steps,
                "gp_weight": self.gp_weight, "n_classes": self.n_classes}
