"""MuseGAN (Dong et al. 2018) for four-part chorales (chapter 11): a WGAN-GP whose
generator writes `n_bars` bars of `n_tracks` piano rolls from four kinds of noise.

Each sample is a tensor (n_bars, n_steps, n_pitches, n_tracks) in [-1, 1]: per bar, per
16th-note step, per pitch, per track (soprano, alto, tenor, bass), 1 where the track
plays that pitch, -1 elsewhere. The generator's four latent inputs, each z_dim wide:

- chords (B, z): shared by all tracks, changing from bar to bar (a temporal network
  turns it into one vector per bar);
- style (B, z): shared by all tracks and all bars;
- melody (B, n_tracks, z): one per track, changing from bar to bar (a temporal network
  per track);
- groove (B, n_tracks, z): one per track, the same in every bar.

Bar b of track k is written by track k's bar generator from
[chords_b, style, melody_{k,b}, groove_k] (4 z_dim numbers): so melody k and groove k
reach track k only, while chords and style reach every track.

Every upsampling in the bar generator is a transposed convolution whose kernel equals
its stride, computed as a dense layer and a reshape (`upsample_blocks`: the same
weights act the same way, ~30x faster than TensorFlow's CPU kernel for those shapes;
only the bias differs, one per position in the block instead of one per channel).

The critic sees a whole sample through 3-D convolutions (bars x steps x pitches, tracks
as channels), with no batch normalisation (the gradient penalty is per example).
`MuseGAN` trains the pair with `gdl.models.gan.WGANGP`'s step (`critic_steps` critic
updates, each on its own slice of the batch, then one generator update); what it
changes is the latent noise (four inputs) and the penalty, whose gradient norm must run
over all four non-batch axes (`gradient_penalty`).

Compared with the curriculum's published notebook: training uses every 2-bar window of
every training chorale (not only each chorale's first two bars), the interpolation
weights are U(0, 1) per sample, the penalty's norm covers all non-batch axes, and each
critic update sees its own real samples.

The module also turns `gdl.data.music.jsb_chorales()` into training windows and back
(`chorale_windows`, `pitches_to_rolls`, `rolls_to_pitches`), and computes the MuseGAN
paper's evaluation metrics in NumPy (`empty_bars`, `used_pitch_classes`,
`qualified_notes`, `tonal_distance`).

Taught in chapter 11 (§11.3 MuseGAN).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from gdl.backend import BatchNormalization
from gdl.models import gan
from gdl.models.gan import WGANGP

#: One-hot pitch axis: index i is MIDI pitch LOWEST_PITCH + i, so 84 pitches cover C1 (24)
#: to B7 (107), whole octaves from C (the critic's 12-wide pitch convolutions then read
#: octaves). The JSB chorales use MIDI 36..81.
LOWEST_PITCH = 24
N_PITCHES = 84


def _init():
    return keras.initializers.RandomNormal(stddev=0.02)


def _norm_relu(x):
    return layers.ReLU()(BatchNormalization(momentum=0.9)(x))


# --------------------------------------------------------------------- generator
def build_temporal_network(z_dim: int = 32, n_bars: int = 2, filters: int = 1024,
                           name: str = "temporal") -> keras.Model:
    """z (B, z_dim) -> one vector per bar (B, n_bars, z_dim).

    Two transposed convolutions along a time axis of bars: (2, 1) makes 2 bars of
    `filters` channels, (n_bars - 1, 1) makes n_bars of z_dim channels (batch norm and
    ReLU after each).
    """
    if n_bars < 2:
        raise ValueError(f"the temporal network makes at least 2 bars, not {n_bars}")
    z = keras.Input((z_dim,), name="z")
    x = layers.Reshape((1, 1, z_dim))(z)
    x = _norm_relu(layers.Conv2DTranspose(filters, (2, 1), padding="valid",
                                          kernel_initializer=_init())(x))      # (2, 1, f)
    x = _norm_relu(layers.Conv2DTranspose(z_dim, (n_bars - 1, 1), padding="valid",
                                          kernel_initializer=_init())(x))      # (bars, 1, z)
    return keras.Model(z, layers.Reshape((n_bars, z_dim))(x), name=name)


def upsample_blocks(x, factor: int, filters: int, activation=None):
    """A transposed convolution whose kernel equals its stride, along the second-last axis:
    (B, ..., L, C) -> (B, ..., factor * L, filters).

    With kernel = stride the output is made of non-overlapping blocks, block i written
    from input position i alone: a dense layer at each position (C -> factor x filters)
    followed by a reshape that lays the factor outputs side by side. MuseGAN's bar
    generator only has such convolutions, and TensorFlow's CPU kernel for
    `Conv2DTranspose` runs them about 30x slower than the matmul. The only difference is
    the bias: one per block position and channel here, one per channel there (a little
    more freedom, which the batch norm after it does not remove); the tests check that
    the kernels act the same.
    """
    shape = tuple(x.shape[1:-2]) + (x.shape[-2] * factor, filters)
    x = layers.Dense(factor * filters, activation=activation, kernel_initializer=_init())(x)
    return layers.Reshape(shape)(x)                                    # (B, ..., fL, f)


def build_bar_generator(z_dim: int = 32, n_steps: int = 16, n_pitches: int = N_PITCHES,
                        units: int = 1024, time_filters=(512, 256, 256),
                        pitch_filters: int = 256, name: str = "bar_generator"
                        ) -> keras.Model:
    """One bar of one track: [chords, style, melody, groove] concatenated (B, 4 z_dim)
    -> (B, 1, n_steps, n_pitches, 1) in [-1, 1].

    A dense layer makes 2 steps of units / 2 channels; each of `time_filters` doubles
    the steps (so n_steps = 2 * 2 ** len(time_filters)); then the pitch axis grows
    1 -> 7 -> 84, the last step with tanh, so n_pitches must be 84. Every growth is a
    transposed convolution with kernel = stride ((2, 1), then (1, 7) and (1, 12) on
    (steps, pitches), as in the paper), computed by `upsample_blocks`; batch norm and
    ReLU after each but the last.
    """
    if n_steps != 2 * 2 ** len(time_filters):
        raise ValueError(f"{len(time_filters)} time filters make {2 * 2 ** len(time_filters)} "
                         f"steps, not {n_steps}")
    if n_pitches != 7 * 12:
        raise ValueError(f"the pitch axis grows 1 -> 7 -> 84: n_pitches must be 84, "
                         f"not {n_pitches}")
    z = keras.Input((4 * z_dim,), name="bar_latent")
    x = _norm_relu(layers.Dense(units, kernel_initializer=_init())(z))
    x = layers.Reshape((2, units // 2))(x)                             # (2 steps, u/2)
    for f in time_filters:
        x = _norm_relu(upsample_blocks(x, 2, f))                       # steps x 2
    x = layers.Reshape((n_steps, 1, x.shape[-1]))(x)                   # (S, 1 pitch, C)
    x = _norm_relu(upsample_blocks(x, 7, pitch_filters))               # (S, 7, f)
    x = upsample_blocks(x, 12, 1, activation="tanh")                   # (S, 84, 1)
    return keras.Model(z, layers.Reshape((1, n_steps, n_pitches, 1))(x), name=name)


def build_musegan_generator(n_tracks: int = 4, n_bars: int = 2, n_steps: int = 16,
                            n_pitches: int = N_PITCHES, z_dim: int = 32,
                            temporal_filters: int = 1024, units: int = 1024,
                            time_filters=(512, 256, 256), pitch_filters: int = 256,
                            name: str = "musegan_generator") -> keras.Model:
    """[chords (B, z), style (B, z), melody (B, n_tracks, z), groove (B, n_tracks, z)]
    -> (B, n_bars, n_steps, n_pitches, n_tracks) in [-1, 1] (see the module doc).

    One temporal network for the chords, one per track for the melodies, one bar
    generator per track (shared by that track's bars).
    """
    chords = keras.Input((z_dim,), name="chords")
    style = keras.Input((z_dim,), name="style")
    melody = keras.Input((n_tracks, z_dim), name="melody")
    groove = keras.Input((n_tracks, z_dim), name="groove")

    chords_over_time = build_temporal_network(
        z_dim, n_bars, temporal_filters, name="temporal_chords")(chords)   # (B, bars, z)
    melody_over_time = [build_temporal_network(z_dim, n_bars, temporal_filters,
                                               name=f"temporal_melody_{k}")(melody[:, k])
                        for k in range(n_tracks)]                          # (B, bars, z) each
    bar_generators = [build_bar_generator(z_dim, n_steps, n_pitches, units, time_filters,
                                          pitch_filters, name=f"bar_generator_{k}")
                      for k in range(n_tracks)]
    bars = []
    for b in range(n_bars):
        tracks = [bar_generators[k](layers.Concatenate()([
                      chords_over_time[:, b], style, melody_over_time[k][:, b],
                      groove[:, k]]))                                     # (B, 1, S, P, 1)
                  for k in range(n_tracks)]
        bars.append(layers.Concatenate(axis=-1)(tracks))                   # (B, 1, S, P, K)
    music = layers.Concatenate(axis=1)(bars) if n_bars > 1 else bars[0]    # (B, bars, S, P, K)
    return keras.Model([chords, style, melody, groove], music, name=name)


# --------------------------------------------------------------------- critic
def build_musegan_critic(n_tracks: int = 4, n_bars: int = 2, n_steps: int = 16,
                         n_pitches: int = N_PITCHES, filters=(128, 128, 128, 128, 128, 128,
                                                               256, 512),
                         units: int = 1024, name: str = "musegan_critic") -> keras.Model:
    """(B, n_bars, n_steps, n_pitches, n_tracks) -> one score per sample (B,).

    Eight 3-D convolutions (leaky ReLU 0.2, no normalisation), the tracks as channels:
    the bar axis n_bars -> n_bars - 1 -> 1 (kernels 2, then n_bars - 1), the pitch axis
    84 -> 7 -> 1 (kernels and strides 12, then 7), the step axis 16 -> 8 -> 4 -> 2 -> 1
    (strides 2); then a dense layer of `units` and one linear output.
    """
    if n_steps != 16 or n_pitches != 84 or n_bars < 2:
        raise ValueError("the critic's strides fit 16 steps, 84 pitches and >= 2 bars; got "
                         f"{n_steps} steps, {n_pitches} pitches, {n_bars} bars")
    # (kernel, strides, padding) per convolution, on (bars, steps, pitches)
    plan = [((2, 1, 1), (1, 1, 1), "valid"), ((n_bars - 1, 1, 1), (1, 1, 1), "valid"),
            ((1, 1, 12), (1, 1, 12), "same"), ((1, 1, 7), (1, 1, 7), "same"),
            ((1, 2, 1), (1, 2, 1), "same"), ((1, 2, 1), (1, 2, 1), "same"),
            ((1, 4, 1), (1, 2, 1), "same"), ((1, 3, 1), (1, 2, 1), "same")]
    if len(filters) != len(plan):
        raise ValueError(f"the critic has {len(plan)} convolutions: give {len(plan)} filters")
    x = music = keras.Input((n_bars, n_steps, n_pitches, n_tracks), name="music")
    for f, (kernel, strides, padding) in zip(filters, plan):
        x = layers.Conv3D(f, kernel, strides=strides, padding=padding,
                          kernel_initializer=_init())(x)
        x = layers.LeakyReLU(0.2)(x)                                       # -> (1, 1, 1, f)
    x = layers.LeakyReLU(0.2)(layers.Dense(units, kernel_initializer=_init())(
        layers.Flatten()(x)))
    score = layers.Dense(1, kernel_initializer=_init())(x)[:, 0]           # (B,)
    return keras.Model(music, score, name=name)


# --------------------------------------------------------------------- training
def gradient_penalty(critic, real, fake, seed=None):
    """`gdl.models.gan.gradient_penalty` for samples of any rank, with the gradient's
    norm taken over *all* non-batch axes.

    That function sums the squared gradient over axes (1, 2, 3): right for images, but
    on MuseGAN's 5-D samples it would give one norm per track (the published notebook's
    defect), and its (n, 1, 1, 1) interpolation weights would not broadcast. So the
    samples are flattened to (B, D, 1, 1), where axes (1, 2, 3) are everything, and the
    critic sees them reshaped back; the weights are U(0, 1), one per sample.
    """
    shape = tuple(real.shape[1:])
    flat = (-1, int(np.prod(shape)), 1, 1)

    def flat_critic(x, training=True):
        return critic(ops.reshape(x, (-1,) + shape), training=training)

    return gan.gradient_penalty(flat_critic, ops.reshape(real, flat),
                                ops.reshape(fake, flat), seed=seed)


@keras.saving.register_keras_serializable(package="gdl")
class MuseGAN(WGANGP):
    """`WGANGP` with MuseGAN's four latent inputs and the all-axes gradient penalty.

    `fit` feeds batches of `critic_steps * batch` real samples (N, n_bars, n_steps,
    n_pitches, n_tracks) in [-1, 1] (`pitches_to_rolls`): each train step makes
    `critic_steps` critic updates, each on its own slice with fresh noise and U(0, 1)
    interpolation weights, then one generator update. Optimizers:
    `generator_optimizer`, `discriminator_optimizer` (the critic). The curriculum's
    settings: z_dim 32, batch 64, 5 critic steps, penalty weight 10, Adam(1e-3, 0.5, 0.9).

    `generate(n, seed=...)` returns samples in `output_range` = (-1, 1), the data's own
    scale, so generated and real windows go through the same `rolls_to_pitches`.
    """

    output_range = (-1.0, 1.0)

    def __init__(self, generator, discriminator, latent_dim: int = 32,
                 critic_steps: int = 5, gp_weight: float = 10.0, n_classes: int = 0,
                 seed: int = 0, **kwargs):
        if n_classes:
            raise ValueError("MuseGAN is not conditional (n_classes must be 0)")
        super().__init__(generator, discriminator, latent_dim, critic_steps, gp_weight,
                         0, seed, **kwargs)
        self.n_tracks = generator.inputs[2].shape[1]

    def latent(self, n, seed=None):
        """[chords (n, z), style (n, z), melody (n, tracks, z), groove (n, tracks, z)],
        independent N(0, 1) (one draw, split, so one integer seed gives all four)."""
        z, k = self.latent_dim, self.n_tracks
        noise = self.normal((n, (2 + 2 * k) * z), seed)
        return [noise[:, :z], noise[:, z:2 * z],
                ops.reshape(noise[:, 2 * z:(2 + k) * z], (-1, k, z)),
                ops.reshape(noise[:, (2 + k) * z:], (-1, k, z))]

    def generate(self, n=None, *, seed=None, z=None, labels=None):
        """n samples (n, n_bars, n_steps, n_pitches, n_tracks) in [-1, 1]; or from the
        given z = [chords, style, melody, groove]."""
        z = self.latent(n, seed) if z is None else [ops.convert_to_tensor(v, "float32")
                                                    for v in z]
        return self.generator(z, training=False)

    def critic_loss(self, real, fake, labels=None):
        """(loss, Wasserstein estimate, penalty), the penalty over all non-batch axes."""
        w_distance = ops.mean(self._c(real, None)) - ops.mean(self._c(fake, None))
        gp = gradient_penalty(self.critic, real, fake, seed=self.seeds)
        return -w_distance + self.gp_weight * gp, w_distance, gp


# --------------------------------------------------------------------- data
def chorale_windows(chorales, n_bars: int = 2, n_steps: int = 16,
                    stride: int = 16) -> np.ndarray:
    """Every window of n_bars * n_steps 16th-note rows of every chorale, one starting
    each `stride` steps (default: one bar, so consecutive windows share a bar).

    chorales: a list of (T, n_tracks) pitch arrays (`jsb_chorales().train`). A chorale
    gives max(0, (T - n_bars * n_steps) // stride + 1) windows. Returns
    (N, n_bars * n_steps, n_tracks) int64 pitches, rests as in the input.
    """
    length = n_bars * n_steps
    out = [np.asarray(c)[s:s + length] for c in chorales
           for s in range(0, len(c) - length + 1, stride)]
    if not out:
        raise ValueError(f"no chorale is {length} steps long")
    return np.stack(out)


def pitches_to_rolls(windows, n_bars: int = 2, n_steps: int = 16,
                     n_pitches: int = N_PITCHES, lowest_pitch: int = LOWEST_PITCH
                     ) -> np.ndarray:
    """Pitch windows (N, n_bars * n_steps, n_tracks) -> piano rolls
    (N, n_bars, n_steps, n_pitches, n_tracks), float32: 1 at the pitch each track
    plays (index = MIDI - lowest_pitch), -1 elsewhere; a rest (a negative pitch) is a
    step of all -1. A pitch outside the range is an error."""
    windows = np.asarray(windows)
    n, length, tracks = windows.shape
    if length != n_bars * n_steps:
        raise ValueError(f"windows of {length} steps are not {n_bars} bars of {n_steps}")
    sounding = windows >= 0
    index = windows - lowest_pitch
    if (sounding & ((index < 0) | (index >= n_pitches))).any():
        raise ValueError(f"pitches {windows[sounding].min()}..{windows[sounding].max()} fall "
                         f"outside MIDI {lowest_pitch}..{lowest_pitch + n_pitches - 1}")
    rolls = np.zeros((n, length, n_pitches, tracks), "float32")
    i, t, k = np.nonzero(sounding)
    rolls[i, t, index[i, t, k], k] = 1.0
    return (2.0 * rolls - 1.0).reshape(n, n_bars, n_steps, n_pitches, tracks)


def rolls_to_pitches(rolls, threshold: float = 0.0, lowest_pitch: int = LOWEST_PITCH,
                     rest: int = -1) -> np.ndarray:
    """Piano rolls (N, n_bars, n_steps, n_pitches, n_tracks) in [-1, 1] -> pitches
    (N, n_bars * n_steps, n_tracks): per step and track the loudest pitch (argmax), or
    `rest` where no value exceeds `threshold` (silence). One note per track and step, as
    in the chorales; the result feeds `chorale_piano_roll` and `gdl.audio.synthesize`."""
    rolls = np.asarray(rolls)
    n, bars, steps, pitches, tracks = rolls.shape
    flat = rolls.reshape(n, bars * steps, pitches, tracks)
    top = flat.argmax(axis=2) + lowest_pitch
    return np.where(flat.max(axis=2) > threshold, top, rest).astype("int64")


# --------------------------------------------------------------------- metrics
# The objective metrics of Dong et al., "MuseGAN: Multi-track sequential generative
# adversarial networks for symbolic music generation and accompaniment", AAAI 2018, §5.
# Each takes piano rolls (N, n_bars, n_steps, n_pitches, n_tracks): booleans, or values
# in [-1, 1] read as "on" above `threshold`, and returns one number per track (or pair).


def _on(rolls, threshold):
    rolls = np.asarray(rolls)
    return rolls if rolls.dtype == bool else rolls > threshold


def empty_bars(rolls, threshold: float = 0.0) -> np.ndarray:
    """EB: the fraction of bars in which a track plays nothing, per track (n_tracks,)."""
    on = _on(rolls, threshold)
    return (~on.any(axis=(2, 3))).mean(axis=(0, 1))


def used_pitch_classes(rolls, threshold: float = 0.0,
                       lowest_pitch: int = LOWEST_PITCH) -> np.ndarray:
    """UPC: the number of pitch classes (0..12) a track uses in a bar, averaged over the
    bars where it plays (empty bars are EB's business), per track (n_tracks,); NaN for
    a track that never plays. Pitch class = (lowest_pitch + index) mod 12, C = 0."""
    on = _on(rolls, threshold).any(axis=2)                        # (N, bars, P, K)
    n, bars, pitches, tracks = on.shape
    classes = np.zeros((n, bars, 12, tracks), bool)
    for p in range(pitches):
        classes[:, :, (lowest_pitch + p) % 12] |= on[:, :, p]
    used = classes.sum(axis=2).astype("float64")                  # (N, bars, K)
    playing = used > 0
    with np.errstate(invalid="ignore"):
        return (used * playing).sum(axis=(0, 1)) / playing.sum(axis=(0, 1))


def note_lengths(rolls, threshold: float = 0.0) -> list[np.ndarray]:
    """Per track, the lengths in steps of all its notes. A note is a run of consecutive
    "on" steps of one pitch; the bars of a sample are joined, so a note held over a bar
    line is one note (and, as in any piano roll, a repeated note is one long note)."""
    on = _on(rolls, threshold)
    n, bars, steps, pitches, tracks = on.shape
    on = on.reshape(n, bars * steps, pitches, tracks)
    edge = np.zeros((n, 1, pitches, tracks), bool)
    padded = np.concatenate([edge, on, edge], axis=1).astype("int8")
    change = np.diff(padded, axis=1)                              # +1 at starts, -1 after ends
    out = []
    for k in range(tracks):
        c = np.moveaxis(change[..., k], 1, -1).reshape(-1, bars * steps + 1)
        starts, ends = np.nonzero(c == 1)[1], np.nonzero(c == -1)[1]
        out.append(ends - starts)     # row-major order pairs each start with its end
    return out


def qualified_notes(rolls, threshold: float = 0.0, min_length: int = 3) -> np.ndarray:
    """QN: the fraction of notes at least `min_length` steps long, per track (n_tracks,);
    NaN for a track without notes.

    Dong et al. call a note "qualified" when it lasts at least 3 time steps, at their 24
    steps per beat a 32nd note: the metric counts fragmented, flickering notes. Here a
    step is a 16th, and `min_length=3` (the default, the paper's count of steps) asks
    for a dotted eighth; `min_length=2` asks for an eighth note.
    """
    fractions = []
    for lengths in note_lengths(rolls, threshold):
        fractions.append((lengths >= min_length).mean() if len(lengths) else np.nan)
    return np.asarray(fractions)


def tonal_centroid(chroma) -> np.ndarray:
    """Harte, Sandler and Gasser's (2006) 6-D tonal centroid of chroma vectors (..., 12):
    the chroma, normalised to sum 1, projected on three circles, the circle of fifths
    (radius 1), of minor thirds (1) and of major thirds (0.5):

        zeta(d) = sum_l Phi(d, l) c(l) / sum_l c(l),
        Phi(., l) = [sin(l 7pi/6), cos(l 7pi/6), sin(l 3pi/2), cos(l 3pi/2),
                     0.5 sin(l 2pi/3), 0.5 cos(l 2pi/3)].

    A zero chroma gives NaN."""
    l = np.arange(12)
    phi = np.stack([np.sin(l * 7 * np.pi / 6), np.cos(l * 7 * np.pi / 6),
                    np.sin(l * 3 * np.pi / 2), np.cos(l * 3 * np.pi / 2),
                    0.5 * np.sin(l * 2 * np.pi / 3), 0.5 * np.cos(l * 2 * np.pi / 3)])
    chroma = np.asarray(chroma, "float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return chroma @ phi.T / chroma.sum(axis=-1, keepdims=True)


def bar_chroma(rolls, threshold: float = 0.0, lowest_pitch: int = LOWEST_PITCH) -> np.ndarray:
    """(N, n_bars, 12, n_tracks): per bar and track, how many steps each pitch class sounds."""
    on = _on(rolls, threshold).sum(axis=2)                        # (N, bars, P, K)
    chroma = np.zeros(on.shape[:2] + (12,) + on.shape[3:])
    for p in range(on.shape[2]):
        chroma[:, :, (lowest_pitch + p) % 12] += on[:, :, p]
    return chroma


def tonal_distance(rolls, track_a: int, track_b: int, threshold: float = 0.0,
                   lowest_pitch: int = LOWEST_PITCH) -> float:
    """TD: the Euclidean distance between two tracks' tonal centroids (`tonal_centroid`
    of each bar's chroma, weighted by how long each pitch class sounds), averaged over
    the bars where both tracks play; NaN if there is none. Small: the tracks agree
    harmonically (Dong et al. use it between pairs of tracks)."""
    chroma = bar_chroma(rolls, threshold, lowest_pitch)
    a = tonal_centroid(chroma[..., track_a])                      # (N, bars, 6)
    b = tonal_centroid(chroma[..., track_b])
    both = (chroma[..., track_a].sum(-1) > 0) & (chroma[..., track_b].sum(-1) > 0)
    if not both.any():
        return float("nan")
    return float(np.linalg.norm(a - b, axis=-1)[both].mean())
