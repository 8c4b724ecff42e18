import keras
import numpy as np
import pytest

from gdl import train


def _model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_snapshots_keep_outputs_every_n_epochs():
    snaps = train.Snapshots(lambda m: m.predict(np.ones((4, 3)), verbose=0).reshape(4, 1, 1), every=2)
    _model().fit(np.ones((8, 3)), np.ones((8, 1)), epochs=5, verbose=0, callbacks=[snaps])
    assert sorted(snaps.by_epoch) == [2, 4]
    assert snaps.by_epoch[2].shape == (4, 1, 1)
    with pytest.raises(ValueError):
        train.Snapshots(lambda m: None, every=0)


def test_nan_guard_stops_at_the_first_non_finite_loss():
    x = np.ones((16, 3), np.float32)
    y = np.ones((16, 1), np.float32)
    y[9] = np.nan  # the second batch of 8 poisons the loss
    guard = train.NaNGuard()
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        _model().fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[guard], shuffle=False)
    assert guard.failed_at == (1, 1)



def test_batches_are_full_shuffled_aligned_and_endless():
    import itertools

    from gdl.train import batches

    x = np.arange(10)
    y = 100 + np.arange(10)
    stream = batches(x, y, batch_size=4, seed=0)
    first = list(itertools.islice(stream, 6))           # 3 passes of 2 full batches
    assert all(len(bx) == 4 and len(by) == 4 for bx, by in first)
    assert all((by == 100 + bx).all() for bx, by in first)   # rows stay aligned
    one_pass = np.concatenate([bx for bx, _ in first[:2]])
    assert len(set(one_pass)) == 8                      # no repeats within a pass
    assert not (one_pass == np.arange(8)).all()         # shuffled
    (single,) = next(batches(x, batch_size=3))          # one array -> a 1-tuple
    assert single.shape == (3,)
    with pytest.raises(ValueError, match="larger"):
        next(batches(x, batch_size=11))
