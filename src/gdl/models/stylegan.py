"""Progressive growing and style-based generators (chapter 10): the layers of ProGAN, StyleGAN
and StyleGAN2, small builders that put them together, and StyleGAN's helpers.

- ProGAN (Karras et al. 2018, arXiv:1710.10196): equalised learning rate (`EqualizedDense`,
  `EqualizedConv2D`), `PixelNorm`, `MinibatchStdDev`, and growing 4 -> 8 -> 16 -> 32 with a
  new block faded in (`fade_in`, `FadeIn`, `ProgressiveBlocks`).
- StyleGAN (Karras et al. 2019, arXiv:1812.04948): the mapping network z -> w
  (`build_mapping_network`), `AdaIN`, per-pixel `NoiseInput`, the truncation trick (`truncate`)
  and style mixing (`mix_styles`).
- StyleGAN2 (Karras et al. 2020, arXiv:1912.04958): weight (de)modulation (`ModulatedConv2D`),
  the synthesis network `StyleGenerator` (a learned 4x4 constant, one w per layer, skip to-RGB
  outputs) and the path length regulariser (`path_length_penalty`).

Images are channels-last and, as in chapter 4, roughly in [-1, 1]; the generators end without
tanh, as the papers' do. Everything is `keras.ops`; the path length penalty's Jacobian-vector
product goes through `gdl.backend.input_grad`, so this runs on TensorFlow, JAX and PyTorch.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from gdl import backend

# --------------------------------------------------------------------------- equalised lr
@keras.saving.register_keras_serializable(package="gdl")
class EqualizedDense(layers.Layer):
    """A dense layer with ProGAN's equalised learning rate. Taught in chapter 10.

    The kernel is stored as N(0, 1 / lr_multiplier²) and multiplied at run time by
    gain / sqrt(fan_in) * lr_multiplier, so every layer starts He-initialised and, because
    Adam's steps do not depend on a weight's scale, every layer learns at the same relative
    speed. `lr_multiplier` < 1 slows a layer down (StyleGAN's mapping network uses 0.01).
    The bias starts at `bias_init` and is scaled by `lr_multiplier` the same way.
    """

    def __init__(self, units: int, gain: float = math.sqrt(2.0), lr_multiplier: float = 1.0,
                 use_bias: bool = True, bias_init: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.gain, self.lr_multiplier = int(units), float(gain), float(lr_multiplier)
        self.use_bias, self.bias_init = bool(use_bias), float(bias_init)

    def build(self, input_shape):
        fan_in = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(fan_in, self.units), name="kernel",
            initializer=keras.initializers.RandomNormal(0.0, 1.0 / self.lr_multiplier))
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,), name="bias",
                initializer=keras.initializers.Constant(self.bias_init / self.lr_multiplier))
        self.scale = self.gain / math.sqrt(fan_in) * self.lr_multiplier

    def call(self, x):
        y = ops.matmul(x, self.kernel * self.scale)
        return y + self.bias * self.lr_multiplier if self.use_bias else y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "gain": self.gain,
                "lr_multiplier": self.lr_multiplier, "use_bias": self.use_bias,
                "bias_init": self.bias_init}


@keras.saving.register_keras_serializable(package="gdl")
class EqualizedConv2D(layers.Layer):
    """A stride-1 convolution with the equalised learning rate (see `EqualizedDense`); its
    fan-in is kernel_size² * input channels. Taught in chapter 10."""

    def __init__(self, filters: int, kernel_size: int = 3, gain: float = math.sqrt(2.0),
                 lr_multiplier: float = 1.0, use_bias: bool = True, padding: str = "same",
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.gain, self.lr_multiplier = float(gain), float(lr_multiplier)
        self.use_bias, self.padding = bool(use_bias), padding

    def build(self, input_shape):
        k, fan_in = self.kernel_size, self.kernel_size ** 2 * input_shape[-1]
        self.kernel = self.add_weight(
            shape=(k, k, input_shape[-1], self.filters), name="kernel",
            initializer=keras.initializers.RandomNormal(0.0, 1.0 / self.lr_multiplier))
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")
        self.scale = self.gain / math.sqrt(fan_in) * self.lr_multiplier

    def call(self, x):
        y = ops.conv(x, self.kernel * self.scale, padding=self.padding)
        return y + self.bias * self.lr_multiplier if self.use_bias else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "gain": self.gain,
                "lr_multiplier": self.lr_multiplier, "use_bias": self.use_bias,
                "padding": self.padding}


# --------------------------------------------------------------------------- ProGAN pieces
@keras.saving.register_keras_serializable(package="gdl")
class PixelNorm(layers.Layer):
    """Scales each pixel's feature vector to unit mean square. Taught in chapter 10."""

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gdl")
class MinibatchStdDev(layers.Layer):
    """Appends one channel: the standard deviation of each feature across a group of the batch,
    averaged over features and pixels. Taught in chapter 10.

    Consecutive runs of `group_size` examples form the groups (one group when the batch is
    smaller), so the batch must be a multiple of the group size. A generator that collapses to a
    few images makes this statistic small, and the discriminator can see it.
    """

    def __init__(self, group_size: int = 4, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.group_size, self.epsilon = int(group_size), float(epsilon)

    def call(self, x):
        n, h, w, c = ops.shape(x)
        g = min(self.group_size, n) if isinstance(n, int) else self.group_size
        if isinstance(n, int) and n % g:
            raise ValueError(f"MinibatchStdDev needs a batch that is a multiple of its group "
                             f"size {g}, got {n}")
        groups = ops.reshape(x, (-1, g, h, w, c))                        # (N/G, G, H, W, C)
        std = ops.sqrt(ops.var(groups, axis=1) + self.epsilon)           # (N/G, H, W, C)
        stat = ops.repeat(ops.mean(std, axis=(1, 2, 3)), g, axis=0)      # (N,)
        channel = ops.ones_like(x[..., :1]) * stat[:, None, None, None]  # (N, H, W, 1)
        return ops.concatenate([x, channel], axis=-1)                    # (N, H, W, C + 1)

    def compute_output_shape(self, input_shape):   # JAX cannot trace the reshape symbolically
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size,
                "epsilon": self.epsilon}


def fade_in(alpha, low_res_upsampled, high_res):
    """(1 - alpha) * the old path + alpha * the new block's path. Taught in chapter 10."""
    return (1.0 - alpha) * low_res_upsampled + alpha * high_res


@keras.saving.register_keras_serializable(package="gdl")
class FadeIn(layers.Layer):
    """`fade_in` as a layer: [alpha (N, 1), old path, new path] -> the mix, per example."""

    def call(self, inputs):
        alpha, low, high = inputs
        alpha = ops.reshape(alpha, (-1,) + (1,) * (len(high.shape) - 1))  # (N, 1, 1, 1)
        return fade_in(alpha, low, high)

    def compute_output_shape(self, input_shapes):
        return input_shapes[2]


class ProgressiveBlocks:
    """The blocks of a small progressive GAN, shared by the models of every stage.
    Taught in chapter 10.

    `filters[i]` is the width at size 4 * 2**i, so (64, 64, 32, 16) grows 4 -> 8 -> 16 -> 32.
    `generator(size)` and `discriminator(size)` are Keras models that share these blocks'
    weights, so training one stage trains the blocks the next stage starts from. Above 4x4 a
    stage takes a second input, alpha (N, 1), and fades its new block in:

        generator:     fade_in(alpha, upsample(to_rgb[size/2](h)), to_rgb[size](block(h)))
        discriminator: fade_in(alpha, from_rgb[size/2](downsample(x)), block(from_rgb[size](x)))

    so at alpha = 0 a stage computes exactly what the previous stage did at alpha = 1.
    """

    def __init__(self, latent_dim: int = 64, filters=(64, 64, 32, 16), channels: int = 3,
                 group_size: int = 4):
        self.latent_dim, self.filters, self.channels = latent_dim, tuple(filters), channels
        self.sizes = [4 * 2 ** i for i in range(len(filters))]
        width = dict(zip(self.sizes, self.filters))

        def lrelu():
            return layers.LeakyReLU(0.2)

        f0 = self.filters[0]
        self.g_blocks = {4: keras.Sequential([
            PixelNorm(), EqualizedDense(4 * 4 * f0),
            layers.Reshape((4, 4, f0)), lrelu(), PixelNorm(),
            EqualizedConv2D(f0), lrelu(), PixelNorm()], name="g_block_4")}
        # to RGB is linear with gain 1: it only mixes channels into colours
        self.to_rgb = {s: EqualizedConv2D(channels, 1, gain=1.0, name=f"to_rgb_{s}")
                       for s in self.sizes}
        self.from_rgb = {s: keras.Sequential([EqualizedConv2D(width[s], 1), lrelu()],
                                             name=f"from_rgb_{s}") for s in self.sizes}
        self.d_blocks = {4: keras.Sequential([
            MinibatchStdDev(group_size), EqualizedConv2D(f0), lrelu(), layers.Flatten(),
            EqualizedDense(f0), lrelu(), EqualizedDense(1, gain=1.0)], name="d_block_4")}
        for s in self.sizes[1:]:
            self.g_blocks[s] = keras.Sequential([
                layers.UpSampling2D(2),                      # (N, s, s, width[s/2])
                EqualizedConv2D(width[s]), lrelu(), PixelNorm(),
                EqualizedConv2D(width[s]), lrelu(), PixelNorm()], name=f"g_block_{s}")
            self.d_blocks[s] = keras.Sequential([
                EqualizedConv2D(width[s]), lrelu(),
                EqualizedConv2D(width[s // 2]), lrelu(),
                layers.AveragePooling2D(2)], name=f"d_block_{s}")   # (N, s/2, s/2, width[s/2])
        self._models = {}

    def _check(self, size):
        if size not in self.sizes:
            raise ValueError(f"size must be one of {self.sizes}, got {size}")

    def generator(self, size: int) -> keras.Model:
        """z (and alpha above 4x4) -> a size x size image; the same model on every call."""
        self._check(size)
        if ("g", size) not in self._models:
            z = keras.Input((self.latent_dim,), name="z")
            h = self.g_blocks[4](z)                                  # (N, 4, 4, f0)
            for s in self.sizes[1:self.sizes.index(size)]:
                h = self.g_blocks[s](h)                              # (N, s, s, width[s])
            if size == 4:
                self._models["g", 4] = keras.Model(z, self.to_rgb[4](h), name="generator_4")
            else:
                alpha = keras.Input((1,), name="alpha")
                old = layers.UpSampling2D(2)(self.to_rgb[size // 2](h))   # (N, size, size, C)
                new = self.to_rgb[size](self.g_blocks[size](h))          # (N, size, size, C)
                image = FadeIn()([alpha, old, new])
                self._models["g", size] = keras.Model([z, alpha], image,
                                                      name=f"generator_{size}")
        return self._models["g", size]

    def discriminator(self, size: int) -> keras.Model:
        """A size x size image (and alpha above 4x4) -> one raw score per image."""
        self._check(size)
        if ("d", size) not in self._models:
            image = keras.Input((size, size, self.channels), name="image")
            if size == 4:
                inputs, h = image, self.from_rgb[4](image)
            else:
                alpha = keras.Input((1,), name="alpha")
                inputs = [image, alpha]
                new = self.d_blocks[size](self.from_rgb[size](image))   # (N, size/2, size/2, .)
                old = self.from_rgb[size // 2](layers.AveragePooling2D(2)(image))
                h = FadeIn()([alpha, old, new])
            for s in reversed(self.sizes[1:self.sizes.index(size)]):
                h = self.d_blocks[s](h)                              # (N, s/2, s/2, .)
            score = self.d_blocks[4](h)[:, 0]                        # (N,)
            self._models["d", size] = keras.Model(inputs, score, name=f"discriminator_{size}")
        return self._models["d", size]


# --------------------------------------------------------------------------- StyleGAN pieces
def build_mapping_network(latent_dim: int = 64, w_dim: int = 64, depth: int = 8,
                          lr_multiplier: float = 0.01, name: str = "mapping") -> keras.Model:
    """z (N, latent_dim) -> w (N, w_dim): PixelNorm, then `depth` equalised dense layers with
    leaky ReLU, learning 100x slower than the synthesis network. Taught in chapter 10."""
    z = keras.Input((latent_dim,), name="z")
    x = PixelNorm()(z)
    for _ in range(depth):
        x = EqualizedDense(w_dim, lr_multiplier=lr_multiplier)(x)
        x = layers.LeakyReLU(0.2)(x)
    return keras.Model(z, x, name=name)


@keras.saving.register_keras_serializable(package="gdl")
class AdaIN(layers.Layer):
    """Adaptive instance normalisation: normalise each channel of each image over its pixels,
    then scale and shift it by a style computed from w. Taught in chapter 10.

    Called as `AdaIN()(x, w)` with x (N, H, W, C) and w (N, w_dim); `styles(w)` gives the
    (scale, bias) pair, each (N, C), that the affine maps produce (scale starts at 1).
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, x_shape, w_shape):
        channels = x_shape[-1]
        self.to_scale = EqualizedDense(channels, gain=1.0, bias_init=1.0, name="to_scale")
        self.to_bias = EqualizedDense(channels, gain=1.0, name="to_bias")
        self.to_scale.build(w_shape)
        self.to_bias.build(w_shape)

    def styles(self, w):
        """(scale, bias), each (N, C): the per-channel statistics the output will have."""
        return self.to_scale(w), self.to_bias(w)

    def call(self, x, w):
        mean, var = ops.moments(x, axes=(1, 2), keepdims=True)          # (N, 1, 1, C)
        normalised = (x - mean) * ops.rsqrt(var + self.epsilon)
        scale, bias = self.styles(w)                                    # (N, C) each
        return scale[:, None, None, :] * normalised + bias[:, None, None, :]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gdl")
class NoiseInput(layers.Layer):
    """Adds per-pixel Gaussian noise, one map per image scaled by a learned weight per channel
    (zero at first). Taught in chapter 10.

    `layer(x)` draws fresh noise (N, H, W, 1) from the layer's seed generator; `layer(x, noise)`
    uses the given map, so the same w can be rendered with the same or different noise.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, x_shape, noise_shape=None):
        self.noise_weight = self.add_weight(shape=(x_shape[-1],), name="noise_weight",
                                            initializer="zeros")

    def call(self, x, noise=None):
        if noise is None:
            noise = keras.random.normal(tuple(ops.shape(x)[:-1]) + (1,), dtype=x.dtype,
                                        seed=self.seed_generator)       # (N, H, W, 1)
        return x + self.noise_weight * noise

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="gdl")
class ModulatedConv2D(layers.Layer):
    """StyleGAN2's modulated convolution: each image gets its own kernel, the shared one with
    input channel i scaled by its style s_i, then (with `demodulate`) each output channel's
    kernel rescaled to unit norm, so unit-variance inputs give unit-variance outputs whatever
    the style's size. Taught in chapter 10.

    Called as `ModulatedConv2D(f)(x, s)`, x (N, H, W, C_in), s (N, C_in). Instead of a grouped
    convolution with N kernels it scales the input channels by s before one shared convolution
    and the output channels by the demodulation factors after it: the same numbers, since the
    convolution is linear in each input channel.
    """

    def __init__(self, filters: int, kernel_size: int = 3, demodulate: bool = True,
                 use_bias: bool = True, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.demodulate, self.use_bias = bool(demodulate), bool(use_bias)
        self.epsilon = float(epsilon)

    def build(self, x_shape, style_shape):
        k, c_in = self.kernel_size, x_shape[-1]
        self.kernel = self.add_weight(shape=(k, k, c_in, self.filters), name="kernel",
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")
        self.scale = 1.0 / math.sqrt(k * k * c_in)    # equalised lr, as in EqualizedConv2D

    def call(self, x, style):
        kernel = self.kernel * self.scale                                # (k, k, C_in, C_out)
        y = ops.conv(x * style[:, None, None, :], kernel, padding="same")  # (N, H, W, C_out)
        if self.demodulate:
            # per image, output channel o's modulated kernel has squared norm
            # sum_i s_i² * sum_(k, k) kernel[., ., i, o]²
            norms = ops.matmul(ops.square(style),
                               ops.sum(ops.square(kernel), axis=(0, 1)))  # (N, C_out)
            y = y * ops.rsqrt(norms + self.epsilon)[:, None, None, :]
        return y + self.bias if self.use_bias else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "demodulate": self.demodulate,
                "use_bias": self.use_bias, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gdl")
class StyleGenerator(keras.Model):
    """StyleGAN2's synthesis network: per-layer styles w (N, num_layers, w_dim) -> an image
    (N, S, S, channels). Taught in chapter 10.

    A learned 4x4 constant goes through one modulated 3x3 convolution at 4x4 and two at each
    larger size (the first after a bilinear upsampling); each convolution reads its own w
    through a learned affine map, adds noise and a leaky ReLU. Every size has a to-RGB layer
    (modulated, not demodulated) whose output is added to the upsampled image so far. So
    num_layers = 2 * len(filters) - 1, S = 4 * 2**(len(filters) - 1), and a different w per
    layer is style mixing. `noise`, when given, is one (N, s, s, 1) map (or None: fresh noise)
    per layer; `noise_shapes` says which.
    """

    def __init__(self, w_dim: int = 64, filters=(64, 64, 32, 16), channels: int = 3,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.w_dim, self.filters, self.channels, self.seed = w_dim, tuple(filters), channels, seed
        self.num_layers = 2 * len(self.filters) - 1
        self.image_size = 4 * 2 ** (len(self.filters) - 1)
        self.const = self.add_weight(shape=(4, 4, self.filters[0]), name="const",
                                     initializer=keras.initializers.RandomNormal(0.0, 1.0))
        widths = [self.filters[(i + 1) // 2] for i in range(self.num_layers)]  # layer outputs
        inputs = [self.filters[0]] + widths[:-1]
        self.affines = [EqualizedDense(c, gain=1.0, bias_init=1.0, name=f"affine_{i}")
                        for i, c in enumerate(inputs)]
        self.convs = [ModulatedConv2D(c, 3, name=f"conv_{i}") for i, c in enumerate(widths)]
        self.noises = [NoiseInput(None if seed is None else seed + i, name=f"noise_{i}")
                       for i in range(self.num_layers)]
        self.rgb_affines = [EqualizedDense(f, gain=1.0, bias_init=1.0, name=f"rgb_affine_{j}")
                            for j, f in enumerate(self.filters)]
        self.to_rgb = [ModulatedConv2D(channels, 1, demodulate=False, name=f"to_rgb_{j}")
                       for j in range(len(self.filters))]
        self.upsample = layers.UpSampling2D(2, interpolation="bilinear")

    def layer_sizes(self) -> list[int]:
        """The resolution each synthesis layer works at."""
        return [4 * 2 ** ((i + 1) // 2) for i in range(self.num_layers)]

    def noise_shapes(self, n: int) -> list[tuple[int, ...]]:
        """The shape of each layer's noise map for a batch of n."""
        return [(n, s, s, 1) for s in self.layer_sizes()]

    def sample_noise(self, n: int, seed: int):
        """Noise maps for every layer from NumPy's generator: the same on every backend."""
        rng = np.random.default_rng(seed)
        return [ops.convert_to_tensor(rng.standard_normal(s), "float32")
                for s in self.noise_shapes(n)]

    def call(self, w, noise=None):
        noise = [None] * self.num_layers if noise is None else list(noise)
        if len(noise) != self.num_layers:
            raise ValueError(f"noise needs one map (or None) for each of the {self.num_layers} "
                             f"layers, got {len(noise)}")
        x = ops.ones_like(w[:, 0, :1])[:, :, None, None] * self.const   # (N, 4, 4, f0)
        image = None
        for i in range(self.num_layers):
            if i % 2 == 1:
                x = self.upsample(x)                                     # (N, 2s, 2s, .)
            x = self.convs[i](x, self.affines[i](w[:, i]))
            x = self.noises[i](x, noise[i])
            # sqrt(2) restores the variance the ReLU halves: demodulation normalises weights,
            # not activations, so nothing else would
            x = ops.leaky_relu(x, 0.2) * math.sqrt(2.0)
            if i % 2 == 0:       # the last layer at this size: add its colours
                j = i // 2
                rgb = self.to_rgb[j](x, self.rgb_affines[j](w[:, i]))    # (N, s, s, C)
                image = rgb if image is None else self.upsample(image) + rgb
        return image

    def get_config(self):
        return {**super().get_config(), "w_dim": self.w_dim, "filters": list(self.filters),
                "channels": self.channels, "seed": self.seed}


def build_style_generator(w_dim: int = 64, filters=(64, 64, 32, 16), channels: int = 3,
                          seed=None, name: str = "style_generator") -> StyleGenerator:
    """A built `StyleGenerator` (see there). Taught in chapter 10."""
    model = StyleGenerator(w_dim, filters, channels, seed=seed, name=name)
    model(keras.Input((model.num_layers, w_dim)))     # a symbolic call builds every layer
    return model


# --------------------------------------------------------------------------- style helpers
def broadcast_w(w, num_layers: int):
    """One w per image (N, w_dim) -> the same w for every layer (N, num_layers, w_dim)."""
    return ops.repeat(w[:, None, :], num_layers, axis=1)


def truncate(w, w_avg, psi: float):
    """The truncation trick: w_avg + psi * (w - w_avg); psi < 1 trades variety for quality.
    Taught in chapter 10."""
    return w_avg + psi * (w - w_avg)


def mix_styles(w_a, w_b, crossover):
    """Style mixing: layers < crossover take w_a's styles, the rest w_b's. Both are
    (N, num_layers, w_dim); `crossover` is one int or one per image. Taught in chapter 10."""
    layer = ops.arange(ops.shape(w_a)[1])                                 # (L,)
    crossover = ops.reshape(ops.convert_to_tensor(crossover, "int32"), (-1, 1))
    use_a = ops.expand_dims(layer[None, :] < crossover, -1)               # (N or 1, L, 1)
    return ops.where(use_a, w_a, w_b)


def path_length_penalty(synthesis, w, mean_length, decay: float = 0.01, y=None, seed=None):
    """StyleGAN2's path length regulariser: returns (penalty, new running mean length).
    Taught in chapter 10.

    For random image-space directions y ~ N(0, I / (H * W)) (or the given `y`), the length
    a = ||J_w^T y|| (root mean over layers of the squared norms when w is (N, L, w_dim)) is how
    far the image moves per unit step in w. The penalty is the mean of (a - mean)², with the
    running mean first moved `decay` of the way towards this batch's lengths: it asks every
    step in w to change the image by the same amount. `synthesis` maps w to images (pass a
    lambda that fixes the noise or `training`); under compiled JAX code `seed` must be a
    `keras.random.SeedGenerator`. The caller stores the new mean.
    """
    def projected(w_):
        images = synthesis(w_)                                           # (N, H, W, C)
        directions = y
        if directions is None:
            h, wd = ops.shape(images)[1], ops.shape(images)[2]
            directions = keras.random.normal(ops.shape(images), seed=seed) / math.sqrt(h * wd)
        return ops.sum(images * directions, axis=(1, 2, 3))             # (N,)

    # examples are independent, so row i of this gradient is J_(w_i)^T y_i
    jt_y = backend.input_grad(projected, w)                              # w's shape
    squares = ops.sum(ops.square(jt_y), axis=-1)                         # (N,) or (N, L)
    if len(squares.shape) == 2:
        squares = ops.mean(squares, axis=1)
    # the epsilon keeps the penalty's gradient finite where J^T y = 0 (sqrt'(0) is infinite)
    lengths = ops.sqrt(squares + 1e-8)                                   # (N,)
    new_mean = ops.stop_gradient(
        mean_length + decay * (ops.mean(lengths) - mean_length))
    return ops.mean(ops.square(lengths - new_mean)), new_mean


# --------------------------------------------------------------------------- a trainable model
def at_full_alpha(model: keras.Model, name: str | None = None) -> keras.Model:
    """A `ProgressiveBlocks` stage model ([x, alpha] -> y) with its fade fixed at alpha = 1."""
    x = keras.Input(model.inputs[0].shape[1:])
    alpha = ops.ones_like(x[:, 0, 0, :1])                               # (N, 1)
    return keras.Model(x, model([x, alpha]), name=name or f"{model.name}_full")


def build_style_wgan(latent_dim: int = 64, w_dim: int = 64, mapping_depth: int = 8,
                     filters=(64, 64, 32, 16), channels: int = 3, gp_weight: float = 10.0,
                     seed: int = 0):
    """A style-based generator (mapping network -> one w broadcast to every layer ->
    `StyleGenerator`) against ProGAN's discriminator at full size, trained as chapter 4's
    WGAN-GP with one critic step per generator step. Taught in chapter 10.

    The generator's layers "mapping" and "style_generator" are the two halves, for style
    mixing, noise and truncation.
    """
    from gdl.models.gan import WGANGP

    mapping = build_mapping_network(latent_dim, w_dim, mapping_depth)
    synthesis = build_style_generator(w_dim, filters, channels, seed=seed)
    z = keras.Input((latent_dim,), name="z")
    w_stack = broadcast_w(mapping(z), synthesis.num_layers)             # (N, L, w_dim)
    generator = keras.Model(z, synthesis(w_stack), name="style_gan_generator")
    size = synthesis.image_size
    critic = at_full_alpha(ProgressiveBlocks(latent_dim, filters, channels).discriminator(size),
                           name="critic")
    return WGANGP(generator, critic, latent_dim, critic_steps=1, gp_weight=gp_weight,
                  seed=seed)
