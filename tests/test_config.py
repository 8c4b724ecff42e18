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
    import importlib

    import keras

    backend = keras.backend.backend()
    framework = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}[backend]
    version = importlib.import_module(backend).__version__
    monkeypatch.setenv("GDL_PROFILE", "smoke")
    line = gdl.run_info(seed=3, note="8,000 training images")
    printed = capsys.readouterr().out.strip()
    assert printed == line and "\n" not in line
    for part in ["profile=smoke", f"backend={backend}", f"Keras {keras.__version__}", f"{framework} {version}",
                 f"gdl {gdl.__version__}", "seed=3", "8,000 training images", "CPU"]:
        assert part in line, part


def test_source_hash_follows_the_package_source(tmp_path, monkeypatch):
    import shutil

    tree = tmp_path / "gdl"
    shutil.copytree(config.PACKAGE_DIR, tree, ignore=shutil.ignore_patterns("__pycache__"))
    before = config.source_hash(tree)
    assert len(before) == 10 and int(before, 16) >= 0
    assert before == config.source_hash() == config.source_hash(str(tree))  # same files, same hash
    monkeypatch.chdir(tmp_path)
    (tree / "__pycache__").mkdir(exist_ok=True)
    (tree / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")  # not source
    assert config.source_hash(tree) == before
    with open(tree / "train.py", "a") as f:
        f.write("\n# an edit\n")
    edited = config.source_hash(tree)
    assert edited != before
    (tree / "train.py").rename(tree / "training.py")  # a renamed module is a change too
    assert config.source_hash(tree) not in (before, edited)


def test_run_info_names_the_gdl_source(monkeypatch):
    monkeypatch.setenv("GDL_PROFILE", "smoke")
    line = gdl.run_info(display=False)
    assert f"gdl {gdl.__version__} (src {config.source_hash()})" in line


def test_ground_floor_imports():
    """gdl.paths and gdl.config import nothing from gdl; gdl.train does not pull in gdl.viz."""
    import ast

    def gdl_imports(module):
        tree = ast.parse((config.PACKAGE_DIR / module).read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        return {n for n in names if n == "gdl" or n.startswith("gdl.")}

    assert gdl_imports("paths.py") == set()
    assert gdl_imports("config.py") == set()
    assert not {n for n in gdl_imports("train.py") if n.startswith("gdl.viz")}
