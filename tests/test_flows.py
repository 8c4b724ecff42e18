"""gdl.models.flows: invertibility, log-determinants and likelihoods that could be wrong."""
import math

import keras
import numpy as np
import pytest

from gdl import backend
from gdl.models import flows


def _coupling(mask, seed):
    keras.utils.set_random_seed(seed)
    layer = flows.AffineCoupling(mask, units=32, depth=2)
    layer.build((None, len(mask)))
    # Random init leaves s and t small; scale the output layers up so that
    # the layer is far from the identity and the tests have teeth.
    for net in (layer.scale_net, layer.shift_net):
        w, b = net.layers[-1].get_weights()
        net.layers[-1].set_weights([w * 20.0, b + 0.3])
    return layer


MASKS = [[0, 1], [1, 0], [1, 0, 0, 1, 1], [0, 1, 0, 1, 0, 1]]


@pytest.mark.parametrize("mask", MASKS, ids=str)
def test_coupling_is_invertible(mask):
    layer = _coupling(mask, seed=len(mask))
    x = np.random.default_rng(0).normal(size=(256, len(mask))).astype("float32")
    z, log_det = layer(x)
    x_back, log_det_inv = layer.inverse(z)
    z, log_det, x_back, log_det_inv = map(np.asarray, (z, log_det, x_back, log_det_inv))
    assert np.abs(z - x).max() > 0.1              # it really changed x
    np.testing.assert_allclose(x_back, x, atol=1e-5)
    np.testing.assert_allclose(log_det_inv, -log_det, atol=1e-5)
    keep = np.asarray(mask, bool)
    np.testing.assert_array_equal(z[:, keep], x[:, keep])   # kept part untouched


def _autodiff_log_det(fn, x):
    """log|det| of each example's (D, D) Jacobian of fn(x)[0], by automatic differentiation."""
    jac = np.asarray(backend.jacobian(lambda x: fn(x)[0], x), "float64")   # (N, D, N, D)
    rows = np.arange(len(x))
    per_example = jac[rows, :, rows, :]                                    # (N, D, D)
    # Examples are independent: every cross-example block is exactly zero.
    assert np.abs(jac).sum() == pytest.approx(np.abs(per_example).sum())
    return np.linalg.slogdet(per_example)[1]


@pytest.mark.parametrize("mask", MASKS, ids=str)
def test_coupling_log_det_matches_full_jacobian(mask):
    layer = _coupling(mask, seed=10 + len(mask))
    x = np.random.default_rng(1).normal(size=(64, len(mask))).astype("float32")
    reported = np.asarray(layer(x)[1])
    assert np.abs(reported).max() > 0.1                    # not trivially zero
    np.testing.assert_allclose(reported, _autodiff_log_det(layer, x), atol=1e-4)
    z = np.asarray(layer(x)[0])
    np.testing.assert_allclose(np.asarray(layer.inverse(z)[1]),
                               _autodiff_log_det(layer.inverse, z), atol=1e-4)


def test_realnvp_log_det_matches_full_jacobian_and_inverts():
    keras.utils.set_random_seed(3)
    model = flows.RealNVP(dim=4, n_couplings=4, units=32, depth=2)
    model.build((None, 4))
    for layer in model.couplings:
        w, b = layer.scale_net.layers[-1].get_weights()
        layer.scale_net.layers[-1].set_weights([w * 10.0, b])
    x = np.random.default_rng(2).normal(size=(32, 4)).astype("float32")
    z, log_det = model(x)
    np.testing.assert_allclose(np.asarray(log_det), _autodiff_log_det(model, x), atol=1e-4)
    np.testing.assert_allclose(np.asarray(model.inverse(z)[0]), x, atol=1e-5)


def test_identity_flow_gives_the_analytic_gaussian_nll():
    keras.utils.set_random_seed(4)
    dim = 3
    model = flows.RealNVP(dim=dim, n_couplings=2, units=16, depth=1)
    model.build((None, dim))
    for layer in model.couplings:          # zero output layers: s = t = 0
        for net in (layer.scale_net, layer.shift_net):
            net.layers[-1].set_weights([np.zeros_like(w) for w in net.layers[-1].get_weights()])
    x = np.random.default_rng(5).normal(size=(200_000, dim)).astype("float32")
    log_p = np.asarray(model.log_prob(x), dtype="float64")
    exact = -0.5 * (x.astype("float64") ** 2).sum(1) - 0.5 * dim * math.log(2 * math.pi)
    np.testing.assert_allclose(log_p, exact, rtol=1e-5, atol=1e-5)
    # The expected NLL of N(0, I) under itself is its entropy, D/2 log(2 pi e).
    entropy = 0.5 * dim * math.log(2 * math.pi * math.e)
    assert -log_p.mean() == pytest.approx(entropy, abs=0.01)


def test_standard_normal_log_prob_value():
    z = np.array([[0.0, 0.0], [1.0, -2.0]], "float32")
    expected = [-math.log(2 * math.pi), -math.log(2 * math.pi) - 2.5]
    np.testing.assert_allclose(np.asarray(flows.standard_normal_log_prob(z)), expected, rtol=1e-6)


def test_masks_alternate_and_cover_every_coordinate():
    masks = flows.alternating_masks(4, 5)
    assert masks.shape == (4, 5)
    np.testing.assert_array_equal(masks[0] + masks[1], np.ones(5))
    np.testing.assert_array_equal(masks[0], masks[2])
    with pytest.raises(ValueError):
        flows.alternating_masks(2, 1)


def test_training_lowers_the_nll_of_a_skewed_distribution():
    keras.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    a = rng.normal(size=(2048, 1))
    x = np.hstack([a, 0.3 * rng.normal(size=(2048, 1)) + 0.5 * a ** 2]).astype("float32")
    model = flows.RealNVP(dim=2, n_couplings=4, units=32, depth=2)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = -float(np.mean(model.log_prob(x)))
    model.fit(x, batch_size=256, epochs=15, verbose=0)
    after = -float(np.mean(model.log_prob(x)))
    assert after < before - 0.3
    samples = np.asarray(model.sample(4000, seed=0))
    # The banana's curvature: E[x2] rises with x1^2 in the samples too.
    assert np.corrcoef(samples[:, 0] ** 2, samples[:, 1])[0, 1] > 0.3


def test_coupling_round_trips_through_config():
    layer = _coupling([1, 0, 1], seed=7)
    clone = flows.AffineCoupling.from_config(layer.get_config())
    clone.build((None, 3))
    clone.set_weights(layer.get_weights())
    x = np.random.default_rng(8).normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(clone(x)[0]), np.asarray(layer(x)[0]), atol=1e-6)


def test_point_cloud_slider_frames_follow_the_points():
    import gdl.viz

    frames = [np.zeros((5, 2)), np.ones((5, 2)), 2 * np.ones((5, 2))]
    fig = gdl.viz.point_cloud_slider(frames, ["0", "1", "2"], color=np.arange(5))
    assert [f.name for f in fig.frames] == ["0", "1", "2"]
    np.testing.assert_allclose(np.asarray(fig.frames[2].data[0].x), 2.0)
    assert fig.layout.xaxis.range == (-2.1, 2.1)      # wide enough for every frame
    assert len(fig.layout.sliders[0].steps) == 3
    with pytest.raises(ValueError, match="same N"):
        gdl.viz.point_cloud_slider([np.zeros((5, 2)), np.zeros((4, 2))], ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        gdl.viz.point_cloud_slider(frames, ["0", "0", "1"])
