"""The data mechanism and the loaders, on the real datasets and on deliberately broken copies."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import gdl.data
from gdl.data import DataError
from gdl.data import fetch as F
from gdl.data import images as I


# --------------------------------------------------------------------------- real data
def test_mnist_official_files(shared_data):
    (x_train, y_train), (x_test, y_test) = gdl.data.mnist()
    assert x_train.shape == (60_000, 28, 28) and x_test.shape == (10_000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    # Published facts of the official training set (shared/data/MANIFEST.md).
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert x_train.mean() == pytest.approx(33.318, abs=1e-3)
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]


def test_fashion_mnist(shared_data):
    split = gdl.data.fashion_mnist()
    assert split.x_train.shape == (60_000, 28, 28)
    assert np.bincount(split.y_test).tolist() == [1000] * 10
    assert split.x_train.mean() == pytest.approx(72.940, abs=1e-3)
    assert split.class_names[9] == "Ankle boot"


def test_cifar10_offline_copy_needs_permission_to_use_the_test_batch(shared_data, monkeypatch):
    monkeypatch.setenv("GDL_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        gdl.data.cifar10()
    message = str(err.value)
    assert "cs.toronto.edu" in message and "data_batch_1" in message
    assert str(shared_data / "cifar-10-batches-py") in message


def test_cifar10_test_only_split(shared_data):
    split = gdl.data.cifar10(allow_test_only=True)
    assert split.x_train.shape == (8000, 32, 32, 3) and split.x_test.shape == (2000, 32, 32, 3)
    assert split.x_train.dtype == np.uint8
    assert "8,000" in split.note and "2,000" in split.note
    assert np.bincount(split.y_train).tolist() == [800] * 10  # the offline copy is class-interleaved
    # The rebuilt test set's channel means match the official ones (MANIFEST.md).
    all_x = np.concatenate([split.x_train, split.x_test]) / 255.0
    np.testing.assert_allclose(all_x.mean(axis=(0, 1, 2)), [0.4942, 0.4851, 0.4504], atol=2e-4)
    assert split.class_names[split.y_train[3]] == "cat"


def test_celeba_subset_and_attributes(shared_data):
    faces = gdl.data.celeba()
    assert len(faces) == 10_000 and faces.attributes.shape == (10_000, 40)
    assert faces.files[0].name == "000001.jpg" and faces.attributes.index[0] == "000001.jpg"
    assert (faces.attributes["Smiling"] == 1).sum() == 4822
    assert (faces.attributes["Blond_Hair"] == 1).sum() == 1452
    batch = faces.load(image_size=32, limit=16)
    assert batch.shape == (16, 32, 32, 3) and batch.dtype == np.float32
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0 and batch.std() > 0.1


def test_celeba_tf_data_path_matches_the_numpy_path(shared_data):
    """`dataset()` (tf.data, TensorFlow's JPEG decoder and resize) and `read_face` (Pillow, used by
    `load()` on other backends) give the same faces to within the decoders' rounding."""
    pytest.importorskip("tensorflow")
    from gdl.data.images import read_face

    faces = gdl.data.celeba(limit=16)
    batch = np.asarray(next(iter(faces.dataset(image_size=32, batch_size=16, shuffle=False))))
    assert batch.shape == (16, 32, 32, 3)
    pillow = np.stack([read_face(path, 32) for path in faces.files])
    assert np.abs(batch - pillow).mean() < 0.01 and np.abs(batch - pillow).max() < 0.05
    other = np.stack([read_face(path, 32) for path in gdl.data.celeba(limit=32).files[16:]])
    assert np.abs(batch - other).mean() > 0.1            # different faces do differ


def test_celeba_loader_reads_official_size_images(shared_data, empty_data_dir):
    """The official aligned images are 178×218; the offline copy is 89×109. Both must load alike."""
    from PIL import Image

    src = shared_data / "celeba-dataset"
    dst = empty_data_dir / "celeba-dataset" / "img_align_celeba" / "img_align_celeba"
    dst.mkdir(parents=True)
    for name in ["000001.jpg", "000002.jpg"]:
        Image.open(src / "img_align_celeba" / "img_align_celeba" / name).resize((178, 218)).save(dst / name, quality=95)
    attrs = (src / "list_attr_celeba.csv").read_text().splitlines()
    (empty_data_dir / "celeba-dataset" / "list_attr_celeba.csv").write_text("\n".join(attrs[:3]) + "\n")

    big = gdl.data.celeba().load(image_size=32)
    os.environ["GDL_DATA_DIR"] = str(shared_data)
    small = gdl.data.celeba(limit=2).load(image_size=32)
    assert big.shape == small.shape == (2, 32, 32, 3)
    # Same faces, same framing: the two resized versions agree to within JPEG noise.
    assert np.abs(big - small).mean() < 0.04


# --------------------------------------------------------------------------- missing and corrupt data
def test_missing_dataset_says_what_to_download_and_where(empty_data_dir, monkeypatch):
    monkeypatch.setenv("GDL_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        gdl.data.fashion_mnist()
    message = str(err.value)
    assert "zalandoresearch/fashion-mnist" in message
    assert str(empty_data_dir / "fashion-mnist" / "train-images-idx3-ubyte.gz") in message
    assert "GDL_DATA_DIR" in message
    assert list(empty_data_dir.rglob("*")) == []  # nothing half-written


def test_missing_celeba_names_kaggle(empty_data_dir):
    with pytest.raises(DataError) as err:
        gdl.data.celeba()
    assert "kaggle datasets download -d jessicali9530/celeba-dataset" in str(err.value)
    assert str(empty_data_dir / "celeba-dataset") in str(err.value)


def test_corrupt_file_is_rejected(shared_data, empty_data_dir):
    folder = empty_data_dir / "mnist"
    shutil.copytree(shared_data / "mnist", folder)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        gdl.data.mnist()
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value) and "corrupt" in str(err.value)


def test_truncated_file_is_rejected(shared_data, empty_data_dir):
    folder = empty_data_dir / "fashion-mnist"
    shutil.copytree(shared_data / "fashion-mnist", folder)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: 1000])
    with pytest.raises(DataError, match="corrupt"):
        gdl.data.fashion_mnist()


def test_checksum_is_checked_before_unpickling(empty_data_dir):
    """A file that is not the verified CIFAR batch must never reach pickle.load."""
    folder = empty_data_dir / "cifar-10-batches-py"
    folder.mkdir()
    canary = empty_data_dir / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (canary,))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Payload()}))
    with pytest.raises(DataError, match="corrupt"):
        gdl.data.cifar10(allow_test_only=True)
    assert not canary.exists()


def test_read_idx_rejects_a_non_idx_file(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"not an idx file at all")
    with pytest.raises(DataError, match="magic"):
        I.read_idx(path)


# --------------------------------------------------------------------------- downloads (local server)
@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www; yields (base_url, folder)."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/truncated.bin":  # promises 1,000 bytes, sends 10, hangs up
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"0123456789")
                self.wfile.flush()
                self.close_connection = True
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", www
    httpd.shutdown()


def _source(url: str, digest: str) -> F.Source:
    return F.Source(name="Demo", folder="demo", origin="https://example.org/demo",
                    files=(F.File("blob.bin", url, {f"sha256:{digest}": "official"}),))


def test_download_verifies_and_writes_atomically(server, empty_data_dir):
    base, www = server
    payload = os.urandom(200_000)
    (www / "blob.bin").write_bytes(payload)
    path = F.fetch(_source(f"{base}/blob.bin", hashlib.sha256(payload).hexdigest()), "blob.bin")
    assert path == empty_data_dir / "demo" / "blob.bin"
    assert path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == ["blob.bin"]  # no temporary files left


def test_download_with_wrong_checksum_leaves_nothing(server, empty_data_dir):
    base, www = server
    (www / "blob.bin").write_bytes(b"tampered")
    with pytest.raises(DataError, match="failed verification"):
        F.fetch(_source(f"{base}/blob.bin", "0" * 64), "blob.bin")
    assert list((empty_data_dir / "demo").iterdir()) == []


def test_truncated_download_leaves_nothing(server, empty_data_dir):
    base, _ = server
    with pytest.raises(DataError) as err:
        F.fetch(_source(f"{base}/truncated.bin", "0" * 64), "blob.bin")
    assert "https://example.org/demo" in str(err.value)
    assert list((empty_data_dir / "demo").iterdir()) == []


def test_no_network_names_the_fix(empty_data_dir):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as err:
        F.fetch(_source(f"http://127.0.0.1:{port}/blob.bin", "0" * 64), "blob.bin")
    message = str(err.value)
    assert "download from" in message and "https://example.org/demo" in message
    assert str(empty_data_dir / "demo" / "blob.bin") in message


def test_archive_download_keeps_files_already_there(server, empty_data_dir):
    """CIFAR-10 style: an archive unpacked file by file next to a partial copy."""
    import tarfile

    base, www = server
    src = www / "pack" / "demo"
    src.mkdir(parents=True)
    (src / "a.txt").write_text("from archive")
    (src / "b.txt").write_text("from archive")
    with tarfile.open(www / "demo.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="demo")
    digest = hashlib.sha256((www / "demo.tar.gz").read_bytes()).hexdigest()
    (empty_data_dir / "demo").mkdir()
    (empty_data_dir / "demo" / "a.txt").write_text("already here")

    source = F.Source(name="Demo", folder="demo", origin="https://example.org/demo")
    archive = F.File("demo.tar.gz", f"{base}/demo.tar.gz", {f"sha256:{digest}": "official"})
    folder = F.fetch_archive(source, archive, "demo/b.txt")
    assert (folder / "a.txt").read_text() == "already here"
    assert (folder / "b.txt").read_text() == "from archive"
    assert sorted(p.name for p in empty_data_dir.iterdir()) == ["demo"]  # work folder removed


def test_paths_live_in_one_place(monkeypatch, tmp_path):
    import gdl.data
    import gdl.paths

    assert gdl.data.DataError is F.DataError is gdl.paths.DataError
    assert gdl.data.data_dir is F.data_dir is gdl.paths.data_dir
    monkeypatch.setenv("GDL_DATA_DIR", str(tmp_path))
    assert gdl.data.data_dir() == tmp_path
    monkeypatch.delenv("GDL_DATA_DIR")
    assert gdl.data.data_dir() == gdl.paths.DEFAULT_DATA_DIR


# --------------------------------------------------------------------------- Kaggle datasets via kagglehub
def _fake_kagglehub(monkeypatch, folder: Path | None, calls: list):
    """A stand-in for kagglehub whose dataset_download returns `folder` (None: it fails)."""
    import types

    def dataset_download(slug):
        calls.append(slug)
        if folder is None:
            raise ConnectionError("no network")
        return str(folder)

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=dataset_download))


def test_kaggle_fetch_links_kagglehubs_copy_where_the_loader_reads(empty_data_dir, tmp_path, monkeypatch):
    from gdl.data import kaggle

    copy = tmp_path / "kagglehub" / "wine"
    copy.mkdir(parents=True)
    (copy / "winemag-data-130k-v2.json").write_text("[]")
    calls = []
    _fake_kagglehub(monkeypatch, copy, calls)
    target = kaggle.fetch("wine-reviews")
    assert target == empty_data_dir / "wine-reviews" and target.is_symlink()
    assert (target / "winemag-data-130k-v2.json").read_text() == "[]"
    assert calls == ["zynicide/wine-reviews"]
    assert kaggle.fetch("wine-reviews") == target and calls == ["zynicide/wine-reviews"]   # there already
    assert not [p for p in empty_data_dir.iterdir() if p.name.startswith(".")]   # no temporary link left


def test_kaggle_fetch_rejects_a_copy_in_another_layout_and_leaves_nothing(empty_data_dir, tmp_path,
                                                                         monkeypatch):
    from gdl.data import kaggle

    copy = tmp_path / "kagglehub" / "celeba"
    (copy / "other").mkdir(parents=True)
    _fake_kagglehub(monkeypatch, copy, [])
    with pytest.raises(DataError, match="list_attr_celeba.csv"):
        kaggle.fetch("celeba-dataset")
    assert not (empty_data_dir / "celeba-dataset").exists()


def test_kaggle_fetch_errors_name_the_manual_way(empty_data_dir, monkeypatch):
    from gdl.data import kaggle

    calls = []
    _fake_kagglehub(monkeypatch, None, calls)
    with pytest.raises(DataError, match="KAGGLE_USERNAME.*\n?.*kaggle datasets download"):
        kaggle.fetch("lego-brick-images")
    monkeypatch.setenv("GDL_OFFLINE", "1")
    with pytest.raises(DataError, match="downloads are off"):
        kaggle.fetch("lego-brick-images")
    assert calls == ["joosthazelzet/lego-brick-images"]   # offline: kagglehub is not asked
    monkeypatch.delenv("GDL_OFFLINE")
    monkeypatch.setitem(sys.modules, "kagglehub", None)   # not installed
    with pytest.raises(DataError, match="pip install kagglehub"):
        kaggle.fetch("lego-brick-images")
    with pytest.raises(DataError, match="not one of the book's Kaggle datasets"):
        kaggle.fetch("mnist")


def test_kaggle_fetch_keeps_a_folder_it_did_not_make(empty_data_dir, tmp_path, monkeypatch):
    from gdl.data import kaggle

    mine = empty_data_dir / "wine-reviews"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "winemag-data-130k-v2.json").write_text("[]")
    _fake_kagglehub(monkeypatch, copy, [])
    with pytest.raises(DataError, match="not the expected layout"):
        kaggle.fetch("wine-reviews")
    assert (mine / "notes.txt").read_text() == "mine"
