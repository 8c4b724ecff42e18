import keras
import numpy as np
import pytest

from gdl import train


def _model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_sample_grid_keeps_images_every_n_epochs():
    grid = train.SampleGrid(lambda m: m.predict(np.ones((4, 3)), verbose=0).reshape(4, 1, 1), every=2)
    _model().fit(np.ones((8, 3)), np.ones((8, 1)), epochs=5, verbose=0, callbacks=[grid])
    assert sorted(grid.grids) == [2, 4]
    assert grid.grids[2].shape == (4, 1, 1)
    with pytest.raises(ValueError):
        train.SampleGrid(lambda m: None, every=0)


def test_nan_guard_stops_at_the_first_non_finite_loss():
    x = np.ones((16, 3), np.float32)
    y = np.ones((16, 1), np.float32)
    y[9] = np.nan  # the second batch of 8 poisons the loss
    guard = train.NaNGuard()
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        _model().fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[guard], shuffle=False)
    assert guard.failed_at == (1, 1)


def test_checkpoint_writes_weights_h5(tmp_path):
    with pytest.raises(ValueError, match=".weights.h5"):
        train.checkpoint(tmp_path / "model.h5")
    path = tmp_path / "ckpt" / "best.weights.h5"
    model = _model()
    model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=2, verbose=0, callbacks=[train.checkpoint(path)])
    clone = _model()
    clone.load_weights(path)
    np.testing.assert_allclose(clone.predict(np.ones((1, 3)), verbose=0), model.predict(np.ones((1, 3)), verbose=0))
