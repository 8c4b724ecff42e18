"""gdl.backend, the seam between gdl and the Keras backend: every function checked against a
closed form, under whichever backend KERAS_BACKEND selects (CI runs tensorflow and jax)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from gdl import backend

pytestmark = pytest.mark.skipif(
    keras.backend.backend() not in ("tensorflow", "jax"),
    reason=f"gdl.backend's tests run under tensorflow and jax, not {keras.backend.backend()}")

RNG = np.random.default_rng(0)


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), "float64")


# ------------------------------------------------------------------------------ gradients
def test_name_is_the_keras_backend():
    assert backend.name() == keras.backend.backend()


def test_value_and_grad_of_a_quadratic_in_a_keras_variable():
    """L(v) = sum a (v - c)^2: dL/dv = 2 a (v - c)."""
    a = np.array([1.0, 2.0, 0.5], "float32")
    c = np.array([0.3, -1.0, 2.0], "float32")
    v0 = np.array([1.0, 2.0, -3.0], "float32")
    v = keras.Variable(v0)
    w = keras.Variable(np.float32(4.0))       # a second variable the loss reads only as w^2
    loss, (gv, gw) = backend.value_and_grad(
        lambda: ops.sum(a * (v - c) ** 2) + w ** 2, [v, w])
    assert float(loss) == pytest.approx(float(np.sum(a * (v0 - c) ** 2) + 16.0), rel=1e-6)
    np.testing.assert_allclose(np_(gv), 2 * a * (v0 - c), rtol=1e-6)
    assert float(gw) == pytest.approx(8.0)
    np.testing.assert_array_equal(np_(v), v0)                    # nothing was changed


def test_value_and_grad_returns_extras_and_applies_updates():
    v = keras.Variable(np.float32(3.0))
    counter = keras.Variable(np.float32(0.0), trainable=False)

    def fn():
        counter.assign(counter + 1.0)                            # a stateful side effect
        return v ** 3, v * 2.0

    (loss, aux), (g,) = backend.value_and_grad(fn, [v], has_aux=True)
    assert float(loss) == pytest.approx(27.0)
    assert float(aux) == pytest.approx(6.0)
    assert float(g) == pytest.approx(27.0)                       # 3 v^2
    backend.value_and_grad(fn, [v], has_aux=True)
    assert float(counter) == 2.0                                 # both updates took effect


def test_input_grad_of_a_sum_of_cubes():
    x = RNG.normal(size=(4, 5)).astype("float32")
    grad = backend.input_grad(lambda t: ops.sum(t ** 3, axis=1), ops.convert_to_tensor(x))
    np.testing.assert_allclose(np_(grad), 3 * x.astype("float64") ** 2, rtol=1e-5)
    grad, aux = backend.input_grad(lambda t: (t ** 3, ops.max(t)), x, has_aux=True)
    np.testing.assert_allclose(np_(grad), 3 * x.astype("float64") ** 2, rtol=1e-5)
    assert float(aux) == pytest.approx(float(x.max()))


def test_the_gradient_penalty_double_derivative():
    """f_w(x) = sum_j w_j x_j^2 per example: df/dx_j = 2 w_j x_j, so
    P(w) = sum_i ||df/dx(x_i)||^2 = 4 sum_ij w_j^2 x_ij^2 and dP/dw_j = 8 w_j sum_i x_ij^2."""
    x = ops.convert_to_tensor(RNG.normal(size=(6, 4)).astype("float32"))
    w0 = np.array([0.5, -1.0, 2.0, 0.1], "float32")
    w = keras.Variable(w0)

    def penalty():
        grad = backend.input_grad(lambda t: ops.sum(w * t ** 2, axis=1), x)
        return ops.sum(ops.square(grad))

    p, (g,) = backend.value_and_grad(penalty, [w])
    xs = np_(x)
    assert float(p) == pytest.approx(4 * np.sum(w0.astype("float64") ** 2 * xs ** 2), rel=1e-5)
    np.testing.assert_allclose(np_(g), 8 * w0 * np.sum(xs ** 2, axis=0), rtol=1e-5)


def test_jacobian_of_an_elementwise_map_is_diagonal():
    x = RNG.normal(size=(2, 3)).astype("float32")
    jac = np_(backend.jacobian(ops.sin, ops.convert_to_tensor(x)))
    assert jac.shape == (2, 3, 2, 3)
    expected = np.zeros((2, 3, 2, 3))
    for i in range(2):
        for j in range(3):
            expected[i, j, i, j] = np.cos(x[i, j])
    np.testing.assert_allclose(jac, expected, atol=1e-6)


def test_jacobian_of_a_linear_map_is_its_matrix():
    m = RNG.normal(size=(3, 5)).astype("float32")
    x = RNG.normal(size=(3,)).astype("float32")
    jac = np_(backend.jacobian(lambda t: ops.matmul(t, m), x))   # y_k = sum_j x_j m_jk
    np.testing.assert_allclose(jac, m.T, rtol=1e-6)
    xb = RNG.normal(size=(2, 3)).astype("float32")
    jac = np_(backend.jacobian(lambda t: ops.matmul(t, m), xb))
    assert jac.shape == (2, 5, 2, 3)
    np.testing.assert_allclose(jac[0, :, 0], m.T, rtol=1e-6)
    np.testing.assert_allclose(jac[1, :, 1], m.T, rtol=1e-6)
    np.testing.assert_array_equal(jac[0, :, 1], 0)
    np.testing.assert_array_equal(jac[1, :, 0], 0)


# ------------------------------------------------------------------------------ compiling
def test_compile_updates_variables_and_advances_seed_generators():
    total = keras.Variable(np.zeros(3, "float32"), trainable=False)
    seeds = keras.random.SeedGenerator(1)

    def step(x):
        total.assign(total + x)
        return keras.random.normal((8,), seed=seeds)

    compiled = backend.compile(step, variables=[total, seeds])
    x = np.array([1.0, 2.0, 3.0], "float32")
    first, second = np_(compiled(x)), np_(compiled(x))
    assert np.abs(first - second).max() > 1e-3                   # fresh draws each call
    np.testing.assert_allclose(np_(total), 2 * x)                # and the variable accumulates
    compiled(x)
    np.testing.assert_allclose(np_(total), 3 * x)


def test_compile_refuses_an_update_of_a_variable_it_was_not_given():
    named = keras.Variable(np.float32(0.0), trainable=False)
    stray = keras.Variable(np.float32(0.0), trainable=False)

    def step(x):
        named.assign(named + x)
        stray.assign(stray + x)
        return x

    compiled = backend.compile(step, variables=[named])
    if backend.name() == "jax":          # a pure function would silently drop the update
        with pytest.raises(ValueError, match="not in `variables=`"):
            compiled(np.float32(1.0))
    else:                                # tf.function updates any variable
        compiled(np.float32(1.0))
        assert float(named) == 1.0 and float(stray) == 1.0


def test_in_compiled_code_is_false_eagerly_and_true_when_compiled():
    assert backend.in_compiled_code() is False
    flags = []

    def fn(x):
        flags.append(backend.in_compiled_code())
        return x * 2.0

    out = backend.compile(fn)(np.float32(1.5))
    assert float(out) == 3.0
    assert flags and all(flags)
    assert backend.in_compiled_code() is False


def test_collect_variables_finds_each_variable_once():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    seeds = keras.random.SeedGenerator(0)
    v = keras.Variable(1.0)
    found = backend.collect_variables(layer, [seeds, v], v, None, layer)
    assert [id(x) for x in found] == [id(layer.kernel), id(layer.bias), id(seeds.state), id(v)]
    with pytest.raises(TypeError):
        backend.collect_variables(object())


# ------------------------------------------------------------------------------ batch norm
def _pair(center, scale, channels=5):
    ours = backend.BatchNormalization(center=center, scale=scale, momentum=0.9)
    ref = keras.layers.BatchNormalization(center=center, scale=scale, momentum=0.9)
    shape = (None, 6, 7, channels)
    ours.build(shape)
    ref.build(shape)
    rng = np.random.default_rng(int(center) * 2 + int(scale))
    values = {"gamma": rng.uniform(0.5, 2.0, channels), "beta": rng.normal(size=channels),
              "moving_mean": rng.normal(size=channels),
              "moving_variance": rng.uniform(0.5, 3.0, channels)}
    for layer in (ours, ref):
        for name, value in values.items():
            if getattr(layer, name, None) is not None:
                getattr(layer, name).assign(value.astype("float32"))
    return ours, ref


def _close(a, b, rel=1e-5):
    a, b = np_(a), np_(b)
    np.testing.assert_allclose(a, b, rtol=rel, atol=rel * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("center,scale", [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_matches_keras(center, scale, training):
    x = ops.convert_to_tensor((RNG.normal(size=(8, 6, 7, 5)) * 3 + 1.5).astype("float32"))
    r = ops.convert_to_tensor(RNG.normal(size=(8, 6, 7, 5)).astype("float32"))
    ours, ref = _pair(center, scale)
    _close(ours(x, training=training), ref(x, training=training))
    # moving statistics after one call (updated in training, untouched in inference)
    _close(ours.moving_mean, ref.moving_mean)
    _close(ours.moving_variance, ref.moving_variance)
    if not training:
        assert np.abs(np_(ours.moving_mean) - np_(ref.moving_mean)).max() == 0

    assert len(ours.trainable_variables) == len(ref.trainable_variables) == center + scale

    def grads(layer):
        loss = lambda: ops.sum(layer(x, training=training) * r)  # noqa: E731
        _, g = backend.value_and_grad(loss, layer.trainable_variables)
        gx = backend.input_grad(lambda t: ops.sum(layer(t, training=training) * r), x)
        return list(g), gx

    (g_ours, gx_ours), (g_ref, gx_ref) = grads(ours), grads(ref)
    for a, b in zip(g_ours, g_ref):
        _close(a, b)
    _close(gx_ours, gx_ref)


def test_batch_normalization_moving_statistics_follow_the_batch():
    """After one training call: moving = m * old + (1 - m) * batch statistic, with the
    biased (1/n) batch variance, as Keras defines it."""
    x = (RNG.normal(size=(4, 3, 3, 2)) * 2 + 1).astype("float32")
    layer = backend.BatchNormalization(momentum=0.9)
    layer.build(x.shape)
    layer(ops.convert_to_tensor(x), training=True)
    xs = x.astype("float64").reshape(-1, 2)
    np.testing.assert_allclose(np_(layer.moving_mean), 0.1 * xs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(np_(layer.moving_variance), 0.9 + 0.1 * xs.var(0), rtol=1e-5)
