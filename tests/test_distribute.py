"""gdl.distribute: one data-parallel step on two devices equals one step on one device."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from gdl import distribute

# Runs in a fresh process: the device count is fixed when JAX starts, and the distribution is
# global state that must not leak into the other tests.
CHILD = r"""
import json
import jax
import keras
import numpy as np
from gdl import distribute
from gdl.models import gan

assert len(jax.devices()) == 2, jax.devices()
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 6, 6, 1)).astype("float32")
y = rng.normal(size=(8, 1)).astype("float32")
images = rng.uniform(-1, 1, size=(8, 16, 16, 1)).astype("float32")

def conv_net():     # plain Keras fit
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 3, activation="tanh"),
                              keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    return model

def dcgan():        # a GenerativeModel: two optimizers, batch norm, z drawn inside the step
    model = gan.DCGAN(gan.build_generator(8, 16, 1, filters=(16, 8)),
                      gan.build_discriminator(16, 1, filters=(8, 16)), latent_dim=8, seed=0)
    model.compile(generator_optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  discriminator_optimizer=keras.optimizers.SGD(learning_rate=0.1))
    return model

def one_step(build, start, *data):
    model = build()
    if start is not None:
        model.set_weights(start)
    start = model.get_weights()
    model.fit(*data, batch_size=8, epochs=1, shuffle=False, verbose=0)   # one step
    return model, start

keras.utils.set_random_seed(0)
single = {"conv": one_step(conv_net, None, x, y), "dcgan": one_step(dcgan, None, images)}
note = distribute.data_parallel()
out = {"note": note, "distribution": type(keras.distribution.distribution()).__name__}
for name, build, data in [("conv", conv_net, (x, y)), ("dcgan", dcgan, (images,))]:
    model, start = single[name]
    parallel, _ = one_step(build, start, *data)  # built under the distribution: 2 x 4 examples
    out[name] = {
        "replicas": [len(w.value.sharding.device_set) for w in parallel.weights],
        "start": [w.tolist() for w in start],
        "single": [w.tolist() for w in model.get_weights()],
        "parallel": [w.tolist() for w in parallel.get_weights()],
    }
print(json.dumps(out))
"""


def test_two_device_step_equals_one_device_step():
    """A plain Keras model and a DCGAN (the book's stateful training step): same weights."""
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "GDL_PROFILE": "full",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["note"].startswith("data-parallel over 2 cpu devices"), out["note"]
    assert out["distribution"] == "DataParallel"
    for name in ("conv", "dcgan"):
        model = out[name]
        assert model["replicas"] == [2] * len(model["start"]), name   # every variable on both
        moved = 0
        for start, single, parallel in zip(model["start"], model["single"], model["parallel"]):
            start, single, parallel = map(np.asarray, (start, single, parallel))
            moved += np.abs(single - start).max() > 1e-3
            np.testing.assert_allclose(parallel, single, atol=1e-5, err_msg=name)
        assert moved >= len(model["start"]) // 2, name        # the step really changed weights


def test_does_nothing_outside_full_or_on_one_device(monkeypatch):
    monkeypatch.setenv("GDL_PROFILE", "cpu")
    assert distribute.data_parallel(devices=["cpu:0", "cpu:1"]) == ""
    assert keras.distribution.distribution() is None
    monkeypatch.setenv("GDL_PROFILE", "full")
    assert distribute.data_parallel(devices=["cpu:0"]) == ""
    assert keras.distribution.distribution() is None
