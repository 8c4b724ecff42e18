"""World models (Ha & Schmidhuber, 2018): V encodes a frame, M predicts the next code, C acts on both.

- V is chapter 3's convolutional VAE on 64x64 frames (`gdl.models.vae`).
- M, the MDN-RNN: an LSTM reads [z_t, a_t] and, from its state, a mixture density network gives
  a mixture of `mixtures` Gaussians for each dimension of z_{t+1}; two more outputs give the
  reward the action earns and the logit that the episode ends. The paper's CarRacing M had no
  reward or done output (its controller was trained in the real environment); dreaming needs
  both, as in the paper's VizDoom experiment (done) and later world models (reward).
- C, the controller: one linear layer on [z_t, h_t] with a tanh, (z_dim + units) * 3 + 3
  numbers, trained by CMA-ES (the `cma` package).

The Keras model is for training M. Acting and dreaming step a whole population at once in
NumPy, with M's weights copied out (`WorldModel`): one step of a batch of a few hundred costs a
fraction of a millisecond, far less than a Keras call, and the result matches the Keras LSTM
(tested).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from gdl.models.vae import PACKAGE

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# --------------------------------------------------------------------------- M: the MDN-RNN
def build_mdn_rnn(z_dim: int = 32, action_dim: int = 3, units: int = 256, mixtures: int = 5,
                  name: str = "mdn_rnn") -> keras.Model:
    """[z_t, a_t] sequences (B, T, z_dim + action_dim) -> (B, T, 3 * mixtures * z_dim + 2).

    Per step the output holds the mixture's logits, means and log standard deviations, each
    (mixtures, z_dim) flattened, then the reward and the done logit (see `split_mdn`).
    """
    inputs = keras.Input(shape=(None, z_dim + action_dim), name="z_and_action")
    h = layers.LSTM(units, return_sequences=True, name="lstm")(inputs)      # (B, T, units)
    out = layers.Dense(3 * mixtures * z_dim + 2, name="mdn")(h)             # (B, T, 3KZ + 2)
    return keras.Model(inputs, out, name=name)


def split_mdn(params, z_dim: int, mixtures: int):
    """(..., 3KZ + 2) -> log_pi, mu, log_sigma each (..., K, Z), reward (...), done_logit (...)."""
    k, z = mixtures, z_dim
    lead = tuple(ops.shape(params)[:-1])
    mix = ops.reshape(params[..., : 3 * k * z], (*lead, 3, k, z))
    logits, mu, log_sigma = mix[..., 0, :, :], mix[..., 1, :, :], mix[..., 2, :, :]
    log_sigma = ops.clip(log_sigma, -7.0, 5.0)   # keeps exp() finite early in training
    log_pi = logits - ops.logsumexp(logits, axis=-2, keepdims=True)   # normalised over K
    return log_pi, mu, log_sigma, params[..., -2], params[..., -1]


def mixture_log_prob(z, log_pi, mu, log_sigma):
    """log sum_k pi_k N(z; mu_k, sigma_k^2) per dimension.

    z is (..., Z); log_pi, mu and log_sigma are (..., K, Z); the result is (..., Z).
    """
    z = ops.expand_dims(z, -2)                                   # (..., 1, Z)
    scaled = (z - mu) / ops.exp(log_sigma)
    log_normal = -0.5 * ops.square(scaled) - log_sigma - LOG_SQRT_2PI    # (..., K, Z)
    return ops.logsumexp(log_pi + log_normal, axis=-2)


def mdn_rnn_loss(y_true, y_pred, *, z_dim: int, mixtures: int,
                 reward_weight: float = 1.0, done_weight: float = 1.0):
    """Mean over steps of: NLL of z_{t+1} (nats per latent dimension)
    + squared reward error + done cross-entropy.

    y_true is [z_{t+1}, r_t, d_t] packed, (B, T, Z + 2).
    """
    log_pi, mu, log_sigma, reward, done_logit = split_mdn(y_pred, z_dim, mixtures)
    z_next, r, d = y_true[..., :z_dim], y_true[..., z_dim], y_true[..., z_dim + 1]
    nll = -ops.mean(mixture_log_prob(z_next, log_pi, mu, log_sigma), axis=-1)   # (B, T)
    reward_error = ops.square(reward - r)
    done_xent = ops.binary_crossentropy(d, done_logit, from_logits=True)
    return ops.mean(nll + reward_weight * reward_error + done_weight * done_xent)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MDNRNNLoss(keras.losses.Loss):
    """`mdn_rnn_loss` as a Keras loss (serialisable, so a compiled M saves and loads)."""

    def __init__(self, z_dim: int, mixtures: int, reward_weight: float = 1.0, done_weight: float = 1.0,
                 name: str = "mdn_rnn_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.z_dim, self.mixtures = z_dim, mixtures
        self.reward_weight, self.done_weight = reward_weight, done_weight

    def call(self, y_true, y_pred):
        return mdn_rnn_loss(y_true, y_pred, z_dim=self.z_dim, mixtures=self.mixtures,
                            reward_weight=self.reward_weight, done_weight=self.done_weight)

    def get_config(self):
        return {**super().get_config(), "z_dim": self.z_dim, "mixtures": self.mixtures,
                "reward_weight": self.reward_weight, "done_weight": self.done_weight}


def sample_mixture(log_pi, mu, log_sigma, temperature: float,
                   rng: np.random.Generator) -> np.ndarray:
    """One draw per dimension from the mixture at temperature tau (NumPy).

    log_pi, mu, log_sigma: (..., K, Z) -> a draw (..., Z). As in the paper, tau
    divides the log-weights (renormalised) and multiplies sigma by sqrt(tau):
    tau -> 0 returns the mean of the likeliest component; tau > 1 is wilder.
    """
    log_pi, mu, log_sigma = (np.asarray(a, np.float64) for a in (log_pi, mu, log_sigma))
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = log_pi / temperature
    probs = np.exp(logits - logits.max(axis=-2, keepdims=True))
    probs /= probs.sum(axis=-2, keepdims=True)                   # (..., K, Z)
    cdf = np.cumsum(probs, axis=-2)
    u = rng.uniform(size=probs.shape[:-2] + (1,) + probs.shape[-1:])
    k = (u > cdf).sum(axis=-2, keepdims=True)                    # (..., 1, Z)
    k = np.minimum(k, probs.shape[-2] - 1)                       # rounding at the top
    mean = np.take_along_axis(mu, k, axis=-2)[..., 0, :]
    sigma = np.exp(np.take_along_axis(log_sigma, k, axis=-2)[..., 0, :])
    sigma = sigma * math.sqrt(temperature)
    return (mean + sigma * rng.standard_normal(mean.shape)).astype(np.float32)


def training_windows(z_mean, z_log_var, actions, rewards, dones, lengths, seq_len: int, batch_size: int,
                     seed: int = 0, sample_z: bool = True):
    """Endless (inputs, targets) batches for M from encoded episodes laid end to end.

    inputs (B, T, Z + A) = [z_t, a_t]; targets (B, T, Z + 2) = [z_{t+1}, r_t, d_t]. Each window
    lies inside one episode. With `sample_z`, z is drawn from V's posterior N(mean, var) afresh
    each time (as in the paper), which keeps M from relying on V's exact means.
    """
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    usable = lengths - 1 >= seq_len         # a window needs seq_len steps and one more z
    if not usable.any():
        raise ValueError(f"no episode is longer than seq_len={seq_len} + 1 frames")
    ep_starts, ep_lengths = starts[usable], lengths[usable]
    weights = (ep_lengths - seq_len) / (ep_lengths - seq_len).sum()
    sigma = np.exp(0.5 * np.asarray(z_log_var, np.float32))
    while True:
        ep = rng.choice(len(ep_starts), size=batch_size, p=weights)
        offset = ep_starts[ep] + (rng.uniform(size=batch_size) * (ep_lengths[ep] - seq_len)).astype(int)
        rows = offset[:, None] + np.arange(seq_len + 1)[None]                  # (B, T + 1)
        z = z_mean[rows]
        if sample_z:
            z = z + sigma[rows] * rng.standard_normal(z.shape).astype(np.float32)
        inputs = np.concatenate([z[:, :-1], actions[rows[:, :-1]]], axis=-1)
        targets = np.concatenate([z[:, 1:], rewards[rows[:, :-1], None],
                                  dones[rows[:, :-1], None].astype(np.float32)], axis=-1)
        yield inputs.astype(np.float32), targets.astype(np.float32)


# --------------------------------------------------------------------------- C: the controller
def controller_size(z_dim: int, units: int, action_dim: int = 3) -> int:
    """The paper's count: a weight for every (input, action) pair plus a bias per action."""
    return (z_dim + units) * action_dim + action_dim


def controller_actions(params, z, h) -> np.ndarray:
    """Actions of a population: params (P, n), z (P, Z), h (P, H) -> (P, 3).

    a = tanh(W [z, h] + b); steering keeps [-1, 1], gas maps to [0, 1],
    brake to max(a, 0).
    """
    params = np.asarray(params, np.float32)
    x = np.concatenate([z, h], axis=-1)                      # (P, Z + H)
    n_in = x.shape[-1]
    if params.shape[-1] != n_in * 3 + 3:
        raise ValueError(f"a controller on {n_in} inputs has {n_in * 3 + 3} "
                         f"parameters, got {params.shape[-1]}")
    w = params[:, : n_in * 3].reshape(-1, 3, n_in)           # (P, 3, Z + H)
    raw = np.tanh(np.einsum("pan,pn->pa", w, x) + params[:, n_in * 3:])
    return np.stack([raw[:, 0], (raw[:, 1] + 1) / 2, np.maximum(raw[:, 2], 0)], axis=-1)


# --------------------------------------------------------------------------- M in NumPy, for acting
def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1)


@dataclass
class WorldModel:
    """M's weights as NumPy arrays, stepping a batch of LSTM states one frame at a time."""

    kernel: np.ndarray        # (Z + A, 4H): Keras' gate order i, f, c, o
    recurrent: np.ndarray     # (H, 4H)
    bias: np.ndarray          # (4H,)
    head_kernel: np.ndarray   # (H, 3KZ + 2)
    head_bias: np.ndarray
    z_dim: int
    mixtures: int

    @classmethod
    def from_keras(cls, mdn_rnn: keras.Model, z_dim: int, mixtures: int) -> "WorldModel":
        lstm, head = mdn_rnn.get_layer("lstm"), mdn_rnn.get_layer("mdn")
        kernel, recurrent, bias = (keras.ops.convert_to_numpy(w) for w in lstm.cell.weights)
        head_kernel, head_bias = (keras.ops.convert_to_numpy(w) for w in head.weights)
        return cls(kernel, recurrent, bias, head_kernel, head_bias, z_dim, mixtures)

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def initial_state(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((n, self.units), np.float32), np.zeros((n, self.units), np.float32)

    def step(self, z, action, state):
        """Read [z_t, a_t] into the LSTM: (h, c) -> (h', c'), each (B, H)."""
        h, c = state
        gates = np.concatenate([z, action], axis=-1) @ self.kernel + h @ self.recurrent + self.bias
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        return h.astype(np.float32), c.astype(np.float32)

    def predict(self, h):
        """From the state after reading (z_t, a_t): log_pi, mu, log_sigma (B, K, Z), reward, p(done)."""
        params = h @ self.head_kernel + self.head_bias
        log_pi, mu, log_sigma, reward, done_logit = _split_numpy(params, self.z_dim, self.mixtures)
        return log_pi, mu, log_sigma, reward, _sigmoid(done_logit)


def _split_numpy(params, z_dim, mixtures):
    """`split_mdn` in NumPy (no backend round trip on the acting path)."""
    k, z = mixtures, z_dim
    mix = params[..., : 3 * k * z].reshape(*params.shape[:-1], 3, k, z)
    logits, mu, log_sigma = mix[..., 0, :, :], mix[..., 1, :, :], np.clip(mix[..., 2, :, :], -7.0, 5.0)
    m = logits.max(axis=-2, keepdims=True)
    log_pi = logits - (m + np.log(np.exp(logits - m).sum(axis=-2, keepdims=True)))
    return log_pi, mu, log_sigma, params[..., -2], params[..., -1]


def dream(world: WorldModel, params, z0, steps: int, temperature: float, seed: int = 0,
          record: bool = False):
    """Drive every controller in `params` (P, n) inside M from the codes `z0` (P, Z).

    Each step: a = C([z, h]); M reads (z, a); the reward is M's predicted
    reward; the episode ends when a draw from M's done probability says so;
    z' is drawn from the mixture at `temperature`. Returns the dreamed
    returns (P,) and, with `record`, the codes (steps + 1, P, Z).
    """
    rng = np.random.default_rng(seed)
    z = np.asarray(z0, np.float32)
    state = world.initial_state(len(z))
    returns = np.zeros(len(z))
    alive = np.ones(len(z), bool)
    codes = [z] if record else None
    for _ in range(steps):
        action = controller_actions(params, z, state[0])
        state = world.step(z, action, state)
        log_pi, mu, log_sigma, reward, p_done = world.predict(state[0])
        returns += np.where(alive, reward, 0.0)
        alive &= rng.uniform(size=len(z)) >= p_done
        z = sample_mixture(log_pi, mu, log_sigma, temperature, rng)
        if record:
            codes.append(z)
        if not alive.any():
            break
    return (returns, np.stack(codes)) if record else returns


# --------------------------------------------------------------------------- the real environment
class RealTracks:
    """CarRacing tracks in worker processes, driven by controllers that see through V and M.

    `n_envs` environments step in parallel (gymnasium's AsyncVectorEnv, spawned processes); V
    and M run batched in this process. Use as a context manager, or call `close`.
    """

    def __init__(self, n_envs: int, max_steps: int = 1000):
        import functools

        import gymnasium as gym

        from gdl.data import car_racing

        car_racing._gym()
        self.n_envs, self.max_steps = n_envs, max_steps
        fns = [functools.partial(car_racing.make_env, max_steps) for _ in range(n_envs)]
        self.envs = gym.vector.AsyncVectorEnv(fns, context="spawn")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.envs.close()

    def drive(self, encode, world: WorldModel, params, seeds, frames: bool = False):
        """Run controller params[i] (P, n) on the track seeds[i], up to n_envs at a time.

        `encode` maps uint8 frames (B, 64, 64, 3) to codes (B, Z). Returns the returns (P,)
        and, with `frames`, each episode's 64x64 frames (a list of (T, 64, 64, 3) arrays).
        """
        params, seeds = np.asarray(params, np.float32), np.asarray(seeds)
        if len(params) != len(seeds):
            raise ValueError(f"one seed per controller: {len(params)} controllers, {len(seeds)} seeds")
        returns, movies = np.zeros(len(params)), []
        for lo in range(0, len(params), self.n_envs):
            part = slice(lo, min(lo + self.n_envs, len(params)))
            got, seen = self._wave(encode, world, params[part], seeds[part], frames)
            returns[part] = got
            movies.extend(seen)
        return (returns, movies) if frames else returns

    def _wave(self, encode, world, params, seeds, keep):
        n = len(params)
        # idle environments (a last, smaller wave) drive a copy of the first controller
        params = np.concatenate([params, np.repeat(params[:1], self.n_envs - n, axis=0)])
        seeds = [int(s) for s in seeds] + [int(seeds[0])] * (self.n_envs - n)
        obs, _ = self.envs.reset(seed=seeds)
        state = world.initial_state(self.n_envs)
        returns = np.zeros(self.n_envs)
        alive = np.ones(self.n_envs, bool)
        movies = [[] for _ in range(n)] if keep else []
        for _ in range(self.max_steps):
            if keep:
                for i in np.flatnonzero(alive[:n]):
                    movies[i].append(obs[i])
            z = encode(obs)
            action = controller_actions(params, z, state[0])
            state = world.step(z, action, state)
            obs, reward, terminated, truncated, _ = self.envs.step(action)
            returns += np.where(alive, reward, 0.0)
            alive &= ~(terminated | truncated)
            if not alive[:n].any():
                break
        # the next reset must not be taken as an autoreset step of the finished episodes
        return returns[:n], [np.stack(m) for m in movies]


def cma_es(fitness, n_params: int, generations: int, popsize: int, sigma0: float = 0.1, seed: int = 0,
           x0=None, callback=None):
    """Maximise `fitness(population (P, n)) -> (P,)` with `cma`'s CMA-ES; returns the strategy.

    `cma` minimises, so it is told the negated fitness. `callback(generation, fitness, es)` is
    called after every generation (the curves of a chapter).
    """
    import cma

    x0 = np.zeros(n_params) if x0 is None else np.asarray(x0, np.float64)
    es = cma.CMAEvolutionStrategy(x0, sigma0, {"popsize": popsize, "seed": seed + 1, "verbose": -9})
    for generation in range(generations):
        population = np.asarray(es.ask())
        scores = np.asarray(fitness(population), np.float64)
        es.tell(list(population), list(-scores))
        if callback is not None:
            callback(generation, scores, es)
    return es
