"""The weights store (gdl.weights) and the pretraining command (scripts/pretrain.py)."""
from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
import warnings
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import yaml

import gdl.weights as W
from gdl.models.gan import DCGAN, build_discriminator, build_generator

ROOT = Path(__file__).resolve().parents[1]
RUN_INFO = ("profile=cpu · backend=tensorflow · CPU: Intel(R) Xeon(R) CPU @ 2.20GHz (2 cores) · "
            "TensorFlow 2.21.0 · Keras 3.15.1 · gdl 0.1.0 (src 0123456789) · seed=42 · date=2026-12-01")
TINY = {"generator": dict(latent_dim=8, image_size=16, channels=1, filters=[16, 8]),
        "discriminator": dict(image_size=16, channels=1, filters=[8, 16])}


def tiny_gan(seed: int, steps: int = 0) -> DCGAN:
    """A 16x16 DCGAN; `steps` training steps move its weights and batch-norm statistics off their start."""
    keras.utils.set_random_seed(seed)
    model = DCGAN(build_generator(**TINY["generator"]), build_discriminator(**TINY["discriminator"]),
                  8, seed=seed)
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-2, beta_1=0.5),
                  discriminator_optimizer=keras.optimizers.Adam(1e-2, beta_1=0.5))
    if steps:
        x = np.random.default_rng(seed).uniform(-1, 1, (16 * steps, 16, 16, 1)).astype("float32")
        model.fit(x, batch_size=16, epochs=1, verbose=0)
    return model


def fields(**extra) -> dict:
    return {"family": "gan", "settings": TINY, "steps": 2, "examples_seen": 32, "unit": "images",
            "wall_seconds": 6840.0, "run_info": RUN_INFO, "metrics": {"d_loss": 1.0},
            "command": "python scripts/pretrain.py tiny", **extra}


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """An empty GDL_WEIGHTS_DIR and GDL_CACHE_DIR; downloads pointed at a port nothing listens on."""
    folder = tmp_path / "store"
    folder.mkdir()
    monkeypatch.setenv("GDL_WEIGHTS_DIR", str(folder))
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GDL_WEIGHTS_URL", "http://127.0.0.1:9/weights")
    monkeypatch.delenv("GDL_OFFLINE", raising=False)
    return folder


def weights_of(model) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]


# --------------------------------------------------------------------------- the published store
def test_repository_address_is_read_from_config_and_mirrored():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert W.checkout() == ROOT
    assert W.repository() == (repo["url"].rstrip("/"), repo["branch"])
    # an installed gdl without a checkout uses the constants: they must say the same
    assert (W.REPOSITORY_URL, W.REPOSITORY_BRANCH) == W.repository()


def test_manifest_checksums_match_the_files_in_weights():
    folder = ROOT / "weights"
    records = W.read_manifest(folder)
    files = sorted(p.name for p in folder.glob("*" + W.SUFFIX)) if folder.is_dir() else []
    assert sorted(r["file"] for r in records.values()) == files   # no file without a record, or the reverse
    budgets = {"chapters": 0, "smoke": 0, "capstone": 0}
    for name, rec in records.items():
        path = folder / rec["file"]
        assert rec["name"] == name and rec["file"] == name + W.SUFFIX
        assert path.stat().st_size == rec["bytes"], name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"], name
        assert all(k in rec for k in W.REQUIRED), name
        assert str(ROOT) not in W.describe(rec)
        part = ("capstone" if name.startswith("capstone_")
                else "smoke" if name.endswith(".smoke") else "chapters")
        budgets[part] += rec["bytes"]
    # 40 MB for the weights the chapters load (cpu, what a reader gets); 8 MB for their smoke
    # fixtures (a few training steps, loaded only by CI's smoke runs); 10 MB for chapter 14's
    # eight capstone families, fixtures included
    for part, limit in {"chapters": 40e6, "smoke": 8e6, "capstone": 10e6}.items():
        assert budgets[part] <= limit, (f"the {part} weights hold {budgets[part] / 1e6:.1f} MB; "
                                        f"their budget is {limit / 1e6:.0f}")


def test_gitignore_tracks_the_published_weights_only():
    import subprocess

    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert not ignored("weights/dcgan_bricks.weights.h5")
    assert not ignored("weights/manifest.json")
    assert ignored("some_model.weights.h5") and ignored("benchmarks/x.weights.h5")


# --------------------------------------------------------------------------- save and load
def test_save_then_load_gives_the_same_samples(store):
    saved = tiny_gan(1, steps=2)
    rec = W.save("tiny", saved, fields())
    path = store / "tiny.weights.h5"
    assert rec["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rec["bytes"] == path.stat().st_size and rec["dtype"] == "float16"
    assert W.read_manifest(store)["tiny"] == rec
    with h5py.File(path) as f:
        assert not {"optimizer", "optimizers"} & set(f)            # optimizer state is left out
        kernel = f["generator/layers/dense/vars/0"]
        moving_var = f["generator/layers/batch_normalization/vars/3"]
        assert kernel.dtype == np.float16 and moving_var.dtype == np.float32
        stored_var = moving_var[()]
    assert np.array_equal(stored_var, keras.ops.convert_to_numpy(saved.generator.layers[3].moving_variance))

    fresh = tiny_gan(2)                        # other initial weights, compiled
    before = np.asarray(fresh.generate(16, seed=3))
    expected = np.asarray(saved.generate(16, seed=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # e.g. Keras' "Skipping variable loading for optimizer"
        assert W.load("tiny", fresh, settings=TINY) == rec
    after = np.asarray(fresh.generate(16, seed=3))
    assert all(v.dtype == "float32" for v in fresh.weights)
    gap = np.abs(after - expected).max()
    assert gap < 5e-3, f"float16 storage moved the samples by {gap}"
    assert np.abs(before - expected).max() > 20 * max(gap, 1e-4)   # the load did something

    W.save("tiny32", saved, fields(), dtype="float32")
    exact = tiny_gan(3)
    W.load("tiny32", exact)
    np.testing.assert_array_equal(np.asarray(exact.generate(16, seed=3)), expected)


def test_settings_mismatch_is_an_error(store):
    W.save("tiny", tiny_gan(1), fields())
    model = tiny_gan(2)
    start = weights_of(model)
    W.load("tiny", model, settings={"generator": {"filters": (16, 8), "latent_dim": 8}})  # a subset, as tuples
    assert any(np.any(a != b) for a, b in zip(start, weights_of(model)))
    with pytest.raises(W.WeightsError) as err:
        W.load("tiny", tiny_gan(2), settings={"generator": {**TINY["generator"], "filters": [32, 16]}})
    assert "generator.filters" in str(err.value) and "[32, 16]" in str(err.value)
    assert "scripts/pretrain.py tiny" in str(err.value)
    with pytest.raises(W.WeightsError, match="critic: not in the record"):
        W.load("tiny", tiny_gan(2), settings={"critic": {}})
    # a model of another architecture is refused by the load itself, with the recorded settings
    keras.utils.set_random_seed(0)
    other = DCGAN(build_generator(8, 16, 1, [32, 8]), build_discriminator(16, 1, [8, 16]), 8)
    with pytest.raises(W.WeightsError, match="do not fit"):
        W.load("tiny", other)


def test_float_settings_compare_to_a_relative_1e_6(store):
    W.save("tiny", tiny_gan(1), fields(settings={**TINY, "mean": [0.4123456789, 0.5]}))
    W.load("tiny", tiny_gan(2), settings={"mean": np.float32([0.4123456789, 0.5])})
    with pytest.raises(W.WeightsError, match=r"mean: this model has \[0.4124, 0.5\]"):
        W.load("tiny", tiny_gan(2), settings={"mean": [0.4124, 0.5]})


# --------------------------------------------------------------------------- missing and corrupt files
def test_missing_file_offline_names_the_command(store, monkeypatch):
    monkeypatch.setenv("GDL_OFFLINE", "1")
    (store / W.MANIFEST).write_text(json.dumps({"dcgan_demo": {**fields(), "name": "dcgan_demo",
                                                               "file": "dcgan_demo.weights.h5",
                                                               "sha256": "0" * 64, "bytes": 10}}))
    with pytest.raises(W.WeightsNotFound) as err:
        W.locate("dcgan_demo")
    message = str(err.value)
    assert "python scripts/pretrain.py dcgan_demo" in message
    assert "GDL_OFFLINE" in message and str(store / "dcgan_demo.weights.h5") in message
    with pytest.raises(W.WeightsNotFound, match="python scripts/pretrain.py nothing_here"):
        W.locate("nothing_here")
    with pytest.raises(W.WeightsNotFound, match="GDL_PROFILE=full python scripts/pretrain.py dcgan_demo"):
        W.locate("dcgan_demo.full")
    assert isinstance(err.value, W.DataError)   # what the chapters already catch for missing data


def test_load_or_train_trains_only_when_weights_are_missing(store, monkeypatch, capsys):
    monkeypatch.setenv("GDL_OFFLINE", "1")
    calls = []
    assert W.load_or_train("tiny", tiny_gan(2), lambda: calls.append(1)) is None
    assert calls == [1] and "python scripts/pretrain.py tiny" in capsys.readouterr().out
    rec = W.save("tiny", tiny_gan(1), fields())
    assert W.load_or_train("tiny", tiny_gan(2), lambda: calls.append(2)) == rec
    assert calls == [1]
    (store / "tiny.weights.h5").write_bytes(b"not weights")
    with pytest.raises(W.WeightsError):        # corrupt is an error, never a reason to train
        W.load_or_train("tiny", tiny_gan(2), lambda: calls.append(3))
    assert calls == [1]


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_file_is_rejected_before_use(store, damage):
    W.save("tiny", tiny_gan(1, steps=1), fields())
    path = store / "tiny.weights.h5"
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    path.write_bytes(bytes(raw))
    model = tiny_gan(2)
    start = weights_of(model)
    with pytest.raises(W.WeightsError) as err:
        W.load("tiny", model)
    message = str(err.value)
    assert str(path) in message and "not loaded" in message
    assert "git checkout -- weights/tiny.weights.h5" in message and "python scripts/pretrain.py tiny" in message
    assert not isinstance(err.value, W.WeightsNotFound)
    assert all(np.array_equal(a, b) for a, b in zip(start, weights_of(model)))   # untouched


# --------------------------------------------------------------------------- downloads
@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server over tmp_path/www, as GDL_WEIGHTS_URL; yields (folder, requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *args):
            pass

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("GDL_WEIGHTS_URL", f"http://127.0.0.1:{httpd.server_port}/")
    yield www, requested
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_caches(store, server, tmp_path):
    www, requested = server
    saved = tiny_gan(1, steps=1)
    rec = W.save("tiny", saved, fields(), folder=www)       # the "repository" holds the file...
    (store / W.MANIFEST).write_text(json.dumps({"tiny": rec}))   # ...the local store only its record
    path = W.locate("tiny")
    assert path == tmp_path / "cache" / "weights" / "tiny.weights.h5"
    assert path.read_bytes() == (www / "tiny.weights.h5").read_bytes()
    assert requested == ["/tiny.weights.h5"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]   # no temporary left
    model = tiny_gan(2)
    W.load("tiny", model)
    np.testing.assert_allclose(np.asarray(model.generate(4, seed=1)),
                               np.asarray(saved.generate(4, seed=1)), atol=5e-3)
    assert requested == ["/tiny.weights.h5"]                  # the verified copy is reused


def test_wrong_download_is_removed(store, server, tmp_path):
    www, _ = server
    rec = W.save("tiny", tiny_gan(1), fields(), folder=www)
    (store / W.MANIFEST).write_text(json.dumps({"tiny": {**rec, "sha256": "f" * 64}}))
    with pytest.raises(W.WeightsError, match="failed verification and was removed"):
        W.locate("tiny")
    assert not (tmp_path / "cache" / "weights" / "tiny.weights.h5").exists()


def test_without_a_checkout_the_manifest_is_downloaded_too(store, server, monkeypatch, tmp_path):
    www, requested = server
    rec = W.save("tiny", tiny_gan(1), fields(), folder=www)
    monkeypatch.delenv("GDL_WEIGHTS_DIR")
    monkeypatch.setattr(W, "checkout", lambda: None)
    assert W.weights_dir() == tmp_path / "cache" / "weights"
    assert W.record("tiny") == rec
    W.load("tiny", tiny_gan(2))
    assert requested.count("/tiny.weights.h5") == 1 and "/manifest.json" in requested


def test_no_network_is_reported_as_missing(store):
    (store / W.MANIFEST).write_text(json.dumps({"tiny": {**fields(), "name": "tiny", "file": "tiny.weights.h5",
                                                         "sha256": "0" * 64, "bytes": 10}}))
    with pytest.raises(W.WeightsNotFound) as err:
        W.locate("tiny")
    assert "download from http://127.0.0.1:9/weights/tiny.weights.h5 failed" in str(err.value)
    assert "python scripts/pretrain.py tiny" in str(err.value)


# --------------------------------------------------------------------------- describing
def test_describe_says_how_the_weights_were_made():
    rec = {**fields(steps=12_000, examples_seen=768_000), "name": "dcgan_bricks",
           "command": "python scripts/pretrain.py dcgan_bricks"}
    assert W.describe(rec) == (
        "Weights: trained for 12,000 steps (768,000 images) in 1.9 h on Intel Xeon CPU (2 cores), "
        "Keras 3.15.1 / TensorFlow 2.21.0; command: python scripts/pretrain.py dcgan_bricks.")
    short = W.describe({**rec, "wall_seconds": 600, "sessions": [{}, {}],
                        "run_info": RUN_INFO.replace("CPU: Intel(R) Xeon(R) CPU @ 2.20GHz (2 cores)",
                                                     "GPU: NVIDIA H200").replace("TensorFlow 2.21.0", "JAX 0.10.2")})
    assert "in 10 min (2 sessions) on NVIDIA H200 GPU, Keras 3.15.1 / JAX 0.10.2;" in short


# --------------------------------------------------------------------------- the pretraining command
def test_pretrain_resumes_and_publishes(shared_data, tmp_path, monkeypatch):
    import pretrain

    monkeypatch.setenv("GDL_PROFILE", "smoke")
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GDL_WEIGHTS_DIR", str(tmp_path / "weights"))
    pretrain.main(["dcgan_bricks", "--steps", "2"])
    folder = tmp_path / "cache" / "pretrain" / "dcgan_bricks.smoke"
    assert [p.name for p in folder.iterdir()] == ["step-000000002"]
    rec = pretrain.main(["dcgan_bricks", "--steps", "4"])
    assert [p.name for p in folder.iterdir()] == ["step-000000004"]   # the older one is gone
    state = json.loads((folder / "step-000000004" / "state.json").read_text())
    assert state["steps"] == 4 and state["examples_seen"] == 4 * 32
    assert [s["steps"] for s in state["sessions"]] == [2, 2]
    # Keras' own record of the optimizers' steps: restored at 2 and counted on, not restarted
    with h5py.File(folder / "step-000000004" / "model.weights.h5") as f:
        iterations = [int(f[group]["vars/0"][()]) for group in ("optimizer", "optimizers/adam_1")]
    assert iterations == [4, 4]
    assert rec["steps"] == 4 and rec["command"].endswith("python scripts/pretrain.py dcgan_bricks --steps 4")
    assert rec["run_info"].startswith("profile=smoke") and set(rec["metrics"]) >= {"d_loss", "g_loss"}

    (tmp_path / "weights" / "dcgan_bricks.smoke.weights.h5").unlink()
    published = pretrain.main(["dcgan_bricks", "--publish"])
    path = tmp_path / "weights" / published["file"]
    assert published["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert published["bytes"] == path.stat().st_size and published["steps"] == 4
    assert W.read_manifest(tmp_path / "weights") == {"dcgan_bricks.smoke": published}
    model = DCGAN(build_generator(**published["settings"]["generator"]),
                  build_discriminator(**published["settings"]["discriminator"]), 100)
    W.load("dcgan_bricks.smoke", model, settings=published["settings"])


def test_every_recipe_is_registered_with_its_settings():
    import pretrain

    assert list(pretrain.RECIPES)[:2] == ["dcgan_bricks", "diffusion_flowers"]
    assert set(pretrain.RECIPES) == {"dcgan_bricks", "wgan_faces", "cgan_blond", "vae_fashion",
                                     "vae_faces",
                                     "ebm_digits", "diffusion_flowers", "pixelcnn_levels",
                                     "pixelcnn_mixture", "lstm_wine", "gpt_wine",
                                     "stylegan_faces", "musegan_chorales", "world_vae",
                                     "world_mdn_rnn", "clip_faces", "caption_gpt", "unclip_faces",
                                     "latent_faces", "flamingo_faces", "unclip_prior"}


def test_chapter_13_recipes_record_the_weights_they_build_on(shared_data, tmp_path, monkeypatch):
    """The decoder and the captioner are trained on published CLIP (and language model) weights,
    and their records name them by SHA-256, so a chapter cannot pair them with other ones."""
    import pretrain

    monkeypatch.setenv("GDL_PROFILE", "smoke")
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GDL_WEIGHTS_DIR", str(tmp_path / "weights"))
    clip = pretrain.main(["clip_faces", "--steps", "2"])
    assert 0 <= clip["metrics"]["test_recall_at_1"] <= clip["metrics"]["test_recall_at_5"] <= 1
    lm = pretrain.main(["caption_gpt", "--steps", "2"])
    decoder = pretrain.main(["unclip_faces", "--steps", "2"])
    prior = pretrain.main(["unclip_prior", "--steps", "2"])
    captioner = pretrain.main(["flamingo_faces", "--steps", "2"])
    assert decoder["settings"]["clip_sha256"] == clip["sha256"]
    assert prior["settings"]["clip_sha256"] == clip["sha256"]
    assert -1 <= prior["metrics"]["test_cosine"] <= 1 and 0 <= prior["metrics"]["test_top10"] <= 1
    assert captioner["settings"]["clip_sha256"] == clip["sha256"]
    assert captioner["settings"]["lm_sha256"] == lm["sha256"]
    assert 0 <= captioner["metrics"]["test_attribute_accuracy"] <= 1


def test_pretrain_goes_on_from_published_weights_on_a_new_machine(shared_data, tmp_path, monkeypatch):
    """No checkpoint (a fresh machine), published weights with the recipe's settings: train on from them."""
    import pretrain

    monkeypatch.setenv("GDL_PROFILE", "smoke")
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GDL_WEIGHTS_DIR", str(tmp_path / "weights"))
    first = pretrain.main(["gpt_wine", "--steps", "3"])
    assert first["metrics"]["validation_perplexity"] > 1 and not first["optimizer_restarts"]
    # the vocabulary the page's writer needs is published with the weights
    assert hashlib.sha256(first["vocabulary"].encode()).hexdigest() == \
        first["settings"]["vocabulary_sha256"]
    shutil.rmtree(tmp_path / "cache" / "pretrain")                 # a new machine
    recipe = pretrain.gpt_wine()
    assert pretrain.warm_start("gpt_wine", recipe)["steps"] == 3
    assert int(keras.ops.convert_to_numpy(recipe.model.optimizer.iterations)) == 3
    published = recipe.model.get_weights()
    fresh = pretrain.gpt_wine().model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(published, fresh))
    second = pretrain.main(["gpt_wine", "--steps", "5"])
    assert second["steps"] == 5 and second["optimizer_restarts"] == [3]
    assert [s["steps"] for s in second["sessions"]] == [3, 2]
    # a recipe whose settings changed starts over rather than loading weights that do not fit
    monkeypatch.setattr(pretrain, "_sha256_lines", lambda lines: "another vocabulary")
    shutil.rmtree(tmp_path / "cache" / "pretrain")
    assert pretrain.warm_start("gpt_wine", pretrain.gpt_wine()) is None
