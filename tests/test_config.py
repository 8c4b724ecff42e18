import numpy as np
import pytest

import gdl
from gdl import config


@pytest.mark.parametrize("name", ["smoke", "cpu", "full"])
def test_pick_follows_profile(monkeypatch, name):
    monkeypatch.setenv("GDL_PROFILE", name)
    assert gdl.profile() == name
    assert gdl.pick(full="F", cpu="C", smoke="S") == name[0].upper()


def test_default_profile_is_cpu(monkeypatch):
    monkeypatch.delenv("GDL_PROFILE", raising=False)
    assert gdl.pick(full=3, cpu=2, smoke=1) == 2


def test_unknown_profile_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv("GDL_PROFILE", "bogus")
    with pytest.raises(ValueError) as err:
        gdl.pick(full=1, cpu=1, smoke=1)
    for valid in config.PROFILES:
        assert valid in str(err.value)
    assert "bogus" in str(err.value)


def test_pick_requires_every_profile():
    with pytest.raises(TypeError):
        gdl.pick(full=1, cpu=1)  # a chapter must say what smoke does


def test_seed_everything_makes_runs_repeatable():
    import keras

    gdl.seed_everything(7)
    a = (np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,))))
    gdl.seed_everything(7)
    b = (np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,))))
    gdl.seed_everything(8)
    c = np.random.rand(3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c)


def test_run_info_line(monkeypatch, capsys):
    import keras
    import tensorflow as tf

    monkeypatch.setenv("GDL_PROFILE", "smoke")
    line = gdl.run_info(seed=3, note="8,000 training images")
    printed = capsys.readouterr().out.strip()
    assert printed == line and "\n" not in line
    for part in ["profile=smoke", f"Keras {keras.__version__}", f"TensorFlow {tf.__version__}",
                 f"gdl {gdl.__version__}", "seed=3", "8,000 training images", "CPU"]:
        assert part in line, part
