"""Tests of chapter 12's world model (gdl.models.world): the MDN-RNN's loss and sampling, its
NumPy mirror used for acting, the dream, the controller and the CMA-ES wiring."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops
from scipy import stats

from gdl.models import world

Z, K, H = 4, 3, 8


def small_m(seed=0):
    keras.utils.set_random_seed(seed)
    return world.build_mdn_rnn(z_dim=Z, action_dim=3, units=H, mixtures=K)


def test_mixture_log_prob_matches_the_closed_form():
    rng = np.random.default_rng(0)
    logits, mu = rng.normal(size=(K, Z)), rng.normal(size=(K, Z))
    log_sigma, z = rng.normal(scale=0.3, size=(K, Z)), rng.normal(size=Z)
    pi = np.exp(logits) / np.exp(logits).sum(0)
    expected = np.log((pi * stats.norm.pdf(z, mu, np.exp(log_sigma))).sum(0))     # (Z,)
    log_pi = np.log(pi)
    got = ops.convert_to_numpy(world.mixture_log_prob(z.astype("float32"), log_pi.astype("float32"),
                                                      mu.astype("float32"), log_sigma.astype("float32")))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_loss_is_nll_plus_reward_and_done_terms():
    rng = np.random.default_rng(1)
    params = rng.normal(size=(2, 5, 3 * K * Z + 2)).astype("float32")
    z_next = rng.normal(size=(2, 5, Z)).astype("float32")
    r, d = rng.normal(size=(2, 5, 1)), (rng.uniform(size=(2, 5, 1)) < 0.3)
    y = np.concatenate([z_next, r, d], -1).astype("float32")
    loss = float(world.mdn_rnn_loss(y, params, z_dim=Z, mixtures=K))
    # by hand: split, normalise the logits, closed-form densities
    mix = params[..., : 3 * K * Z].reshape(2, 5, 3, K, Z).astype("float64")
    logits, mu, log_sigma = mix[:, :, 0], mix[:, :, 1], np.clip(mix[:, :, 2], -7, 5)
    pi = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    dens = (pi * stats.norm.pdf(z_next[:, :, None], mu, np.exp(log_sigma))).sum(2)
    nll = -np.log(dens).mean(-1)
    p = 1 / (1 + np.exp(-params[..., -1]))
    xent = -(d[..., 0] * np.log(p) + (1 - d[..., 0]) * np.log(1 - p))
    expected = np.mean(nll + (params[..., -2] - r[..., 0]) ** 2 + xent)
    assert loss == pytest.approx(expected, rel=1e-4)


def test_sampling_at_low_temperature_returns_the_likeliest_mean():
    rng = np.random.default_rng(2)
    log_pi = np.log(np.array([[0.2] * Z, [0.5] * Z, [0.3] * Z]))      # (K, Z): component 1 wins
    mu = rng.normal(size=(K, Z))
    log_sigma = np.zeros((K, Z))
    cold = world.sample_mixture(log_pi, mu, log_sigma, 1e-6, rng)
    np.testing.assert_allclose(cold, mu[1], atol=1e-2)
    # at temperature 1, the mixture's own moments
    draws = world.sample_mixture(np.broadcast_to(log_pi, (20000, K, Z)),
                                 np.broadcast_to(mu, (20000, K, Z)),
                                 np.broadcast_to(log_sigma, (20000, K, Z)), 1.0, rng)
    pi = np.exp(log_pi)
    np.testing.assert_allclose(draws.mean(0), (pi * mu).sum(0), atol=0.05)
    with pytest.raises(ValueError, match="temperature"):
        world.sample_mixture(log_pi, mu, log_sigma, 0.0, rng)


def test_numpy_world_model_matches_keras():
    m = small_m()
    x = np.random.default_rng(3).normal(size=(2, 7, Z + 3)).astype("float32")
    expected = ops.convert_to_numpy(m(x))
    wm = world.WorldModel.from_keras(m, Z, K)
    state, got = wm.initial_state(2), []
    for t in range(7):
        state = wm.step(x[:, t, :Z], x[:, t, Z:], state)
        got.append(state[0] @ wm.head_kernel + wm.head_bias)
    np.testing.assert_allclose(np.stack(got, 1), expected, atol=1e-5)
    log_pi, mu, log_sigma, reward, p_done = wm.predict(state[0])
    assert log_pi.shape == mu.shape == log_sigma.shape == (2, K, Z)
    np.testing.assert_allclose(np.exp(log_pi).sum(1), 1, atol=1e-5)
    assert reward.shape == p_done.shape == (2,) and np.all((p_done > 0) & (p_done < 1))


def test_training_windows_line_up_inputs_and_targets():
    rng = np.random.default_rng(4)
    lengths = np.array([10, 30])
    n = lengths.sum()
    z = np.arange(n, dtype="float32")[:, None].repeat(Z, 1)
    actions, rewards = rng.normal(size=(n, 3)).astype("float32"), np.arange(n, dtype="float32")
    dones = np.zeros(n, bool)
    dones[-1] = True
    x, y = next(world.training_windows(z, np.full_like(z, -30.0), actions, rewards, dones, lengths,
                                       seq_len=12, batch_size=16, sample_z=False))
    assert x.shape == (16, 12, Z + 3) and y.shape == (16, 12, Z + 2)
    np.testing.assert_array_equal(y[:, :, 0], x[:, :, 0] + 1)          # z_{t+1} follows z_t
    np.testing.assert_array_equal(y[:, :, Z], x[:, :, 0])              # r_t belongs to step t
    assert x[:, :, 0].min() >= 10, "a window crossed into the 10-step episode, which is too short"
    with pytest.raises(ValueError, match="longer than seq_len"):
        next(world.training_windows(z, z, actions, rewards, dones, lengths, seq_len=40, batch_size=2))


def test_m_loss_falls_on_a_fixed_batch():
    m = small_m(1)
    m.compile(optimizer=keras.optimizers.Adam(1e-2), loss=world.MDNRNNLoss(Z, K))
    rng = np.random.default_rng(5)
    z = np.cumsum(rng.normal(scale=0.1, size=(400, Z)), 0).astype("float32")
    x, y = next(world.training_windows(z, np.full_like(z, -8.0), rng.normal(size=(400, 3)).astype("float32"),
                                       np.zeros(400, "float32"), np.zeros(400, bool), np.array([400]),
                                       seq_len=20, batch_size=8, sample_z=False))
    first = float(m.evaluate(x, y, verbose=0))
    m.fit(x, y, epochs=30, batch_size=8, verbose=0)
    assert float(m.evaluate(x, y, verbose=0)) < first - 1.0


def test_controller_size_and_actions():
    assert world.controller_size(32, 256) == 867          # the paper's CarRacing controller
    n = world.controller_size(Z, H)
    rng = np.random.default_rng(6)
    params = rng.normal(size=(5, n))
    actions = world.controller_actions(params, rng.normal(size=(5, Z)), rng.normal(size=(5, H)))
    assert actions.shape == (5, 3)
    assert np.all(np.abs(actions[:, 0]) <= 1) and np.all((actions[:, 1:] >= 0) & (actions[:, 1:] <= 1))
    # a controller is linear before the squashing: all-zero weights and bias b give tanh(b)
    bias_only = np.zeros((1, n))
    bias_only[0, -3:] = [0.5, 0.0, -2.0]
    a = world.controller_actions(bias_only, rng.normal(size=(1, Z)), rng.normal(size=(1, H)))
    np.testing.assert_allclose(a[0], [math.tanh(0.5), 0.5, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="parameters"):
        world.controller_actions(params[:, :-1], rng.normal(size=(5, Z)), rng.normal(size=(5, H)))


def test_dream_shapes_and_done_flag():
    wm = world.WorldModel.from_keras(small_m(2), Z, K)
    params = np.zeros((6, world.controller_size(Z, H)))
    z0 = np.random.default_rng(7).normal(size=(6, Z))
    wm.head_bias = wm.head_bias.copy()
    wm.head_bias[-1] = -50.0                  # the episode never ends: every dream runs all steps
    returns, codes = world.dream(wm, params, z0, steps=9, temperature=1.0, record=True)
    assert returns.shape == (6,) and codes.shape == (10, 6, Z)
    np.testing.assert_array_equal(codes[0], z0.astype("float32"))
    # a certain end: with a huge done bias, every dream stops after its first step's reward
    wm.head_bias[-1] = 50.0
    ended, codes = world.dream(wm, params, z0, steps=9, temperature=1.0, record=True)
    assert len(codes) == 2
    first_reward = wm.predict(wm.step(z0.astype("float32"), world.controller_actions(
        params, z0, np.zeros((6, H), "float32")), wm.initial_state(6))[0])[3]
    np.testing.assert_allclose(ended, first_reward, rtol=1e-5)


def test_cma_es_improves_a_quadratic():
    target = np.linspace(-1, 1, 10)
    history = []
    es = world.cma_es(lambda pop: -np.sum((pop - target) ** 2, axis=1), 10, generations=60, popsize=12,
                      sigma0=0.5, seed=3, callback=lambda g, f, es: history.append(f.max()))
    assert len(history) == 60
    assert np.sum((es.result.xbest - target) ** 2) < 1e-2 < np.sum(target ** 2)
