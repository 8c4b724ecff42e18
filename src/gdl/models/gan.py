"""Generative adversarial networks (chapter 4): DCGAN, WGAN-GP and a
conditional WGAN-GP, as Keras models whose `train_step` is the adversarial
game written out.

Images live in [-1, 1] (the generator ends in tanh). Discriminators and
critics return one raw score per image (a logit for the DCGAN, an unbounded
critic value for the WGAN). A conditional model takes one-hot labels: the
generator reads them next to z, the critic as extra constant image channels.

The gradient penalty needs gradients with respect to the critic's *input*;
Keras 3 has no backend-neutral API for that, so `gradient_penalty` (and the
train steps) use the TensorFlow backend, the one this book runs on.
"""
from __future__ import annotations

import keras
from keras import layers, ops


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
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.LeakyReLU(0.2)(x)
    for f in filters[1:]:
        x = layers.Conv2DTranspose(f, 4, strides=2, padding="same",
                                   use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
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
            x = layers.BatchNormalization(momentum=0.9)(x)
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


def _input_gradient(critic, x, labels=None):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = critic([x, labels] if labels is not None else x,
                        training=True)
        total = ops.sum(scores)      # examples are independent: row i of
    return tape.gradient(total, x)   # the gradient is d critic(x_i) / d x_i


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
    grad = _input_gradient(critic, x_hat, labels)
    norm = ops.sqrt(ops.sum(ops.square(grad), axis=(1, 2, 3)) + 1e-12)
    return ops.mean(ops.square(norm - 1.0))


def bce_with_logits(targets, logits):
    """Binary cross-entropy of logits against targets in [0, 1], averaged."""
    return ops.mean(ops.binary_crossentropy(targets, logits, from_logits=True))


# --------------------------------------------------------------------- DCGAN
@keras.saving.register_keras_serializable(package="gdl")
class DCGAN(keras.Model):
    """A GAN trained with the (non-saturating) cross-entropy losses.

    Each `train_step` takes one batch of real images and makes one update
    of each network: first the discriminator (real -> target ~1, fake ->
    target ~0, targets smoothed by `label_smoothing` and kept in [0, 1]),
    then the generator (its fakes -> target 1, i.e. it maximises
    log D(G(z)) rather than minimising log(1 - D(G(z)))).
    """

    def __init__(self, generator, discriminator, latent_dim: int = 100,
                 label_smoothing: float = 0.1, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.label_smoothing = latent_dim, label_smoothing
        self.seeds = keras.random.SeedGenerator(seed)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in
                         ("d_loss", "g_loss", "d_real_acc", "d_fake_acc")}

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, z):
        return self.generator(z)

    def latent(self, n):
        return keras.random.normal((n, self.latent_dim), seed=self.seeds)

    def generate(self, n=None, seed=None, z=None):
        """n images in [-1, 1] from fresh (or given) latent vectors."""
        if z is None:
            z = keras.random.normal((n, self.latent_dim),
                                    seed=self.seeds if seed is None else seed)
        return self.generator(ops.convert_to_tensor(z, "float32"),
                              training=False)

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
        import tensorflow as tf

        fake = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            loss, real_logits, fake_logits = self.d_loss(real, fake)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(loss, weights), weights)
        return loss, real_logits, fake_logits

    def generator_step(self, z):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = self.g_loss(z)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        n = ops.shape(real)[0]
        d_loss, real_logits, fake_logits = self.discriminator_step(
            real, self.latent(n))
        g_loss = self.generator_step(self.latent(n))
        values = (d_loss, g_loss,
                  ops.mean(ops.cast(real_logits > 0, "float32")),
                  ops.mean(ops.cast(fake_logits < 0, "float32")))
        for tracker, value in zip(self.trackers.values(), values):
            tracker.update_state(value)
        return {k: m.result() for k, m in self.trackers.items()}


# --------------------------------------------------------------------- WGAN-GP
@keras.saving.register_keras_serializable(package="gdl")
class WGANGP(keras.Model):
    """A Wasserstein GAN with gradient penalty, optionally conditional.

    `fit` must feed batches of `critic_steps * batch` real images (and, for
    a conditional model, their one-hot labels as a second element). Each
    `train_step` splits its batch into `critic_steps` parts, makes one
    critic update on each (fresh z and interpolation weights every time),
    then one generator update: so one `train_step` is one generator step.

        critic loss    = mean c(fake) - mean c(real) + gp_weight * penalty
        generator loss = -mean c(fake)
    """

    def __init__(self, generator, critic, latent_dim: int = 128,
                 critic_steps: int = 5, gp_weight: float = 10.0,
                 n_classes: int = 0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.critic = generator, critic
        self.latent_dim, self.critic_steps = latent_dim, critic_steps
        self.gp_weight, self.n_classes = gp_weight, n_classes
        self.seeds = keras.random.SeedGenerator(seed)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in
                         ("c_loss", "w_distance", "gp", "g_loss")}

    def compile(self, c_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.c_optimizer, self.g_optimizer = c_optimizer, g_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _g(self, z, labels, training):
        x = [z, labels] if self.n_classes else z
        return self.generator(x, training=training)

    def _c(self, x, labels, training=True):
        return self.critic([x, labels] if self.n_classes else x,
                           training=training)

    def generate(self, n=None, seed=None, z=None, labels=None):
        """Images in [-1, 1]; a conditional model needs one-hot `labels`."""
        if z is None:
            z = keras.random.normal((n, self.latent_dim),
                                    seed=self.seeds if seed is None else seed)
        if labels is not None:
            labels = ops.convert_to_tensor(labels, "float32")
        return self._g(ops.convert_to_tensor(z, "float32"), labels, False)

    def critic_loss(self, real, fake, labels=None):
        """(loss, Wasserstein estimate, penalty) for one critic update."""
        w_distance = (ops.mean(self._c(real, labels))
                      - ops.mean(self._c(fake, labels)))
        gp = gradient_penalty(self.critic, real, fake, labels,
                              seed=self.seeds)
        return -w_distance + self.gp_weight * gp, w_distance, gp

    def critic_step(self, real, labels=None):
        import tensorflow as tf

        n = ops.shape(real)[0]
        z = keras.random.normal((n, self.latent_dim), seed=self.seeds)
        fake = self._g(z, labels, True)
        with tf.GradientTape() as tape:
            loss, w_distance, gp = self.critic_loss(real, fake, labels)
        weights = self.critic.trainable_weights
        self.c_optimizer.apply(tape.gradient(loss, weights), weights)
        return loss, w_distance, gp

    def generator_step(self, n, labels=None):
        import tensorflow as tf

        z = keras.random.normal((n, self.latent_dim), seed=self.seeds)
        with tf.GradientTape() as tape:
            loss = -ops.mean(self._c(self._g(z, labels, True), labels))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    def train_step(self, data):
        if self.n_classes:
            real, labels = data
        else:
            real = data[0] if isinstance(data, (tuple, list)) else data
            labels = None
        if real.shape[0] is None:
            raise ValueError("WGANGP needs a static batch size: batch the "
                             "data with drop_remainder=True")
        b = real.shape[0] // self.critic_steps        # static batch size
        for i in range(self.critic_steps):
            part = slice(i * b, (i + 1) * b)
            c_loss, w_distance, gp = self.critic_step(
                real[part], None if labels is None else labels[part])
        g_loss = self.generator_step(
            b, None if labels is None else labels[:b])
        for tracker, value in zip(self.trackers.values(),
                                  (c_loss, w_distance, gp, g_loss)):
            tracker.update_state(value)
        return {k: m.result() for k, m in self.trackers.items()}
