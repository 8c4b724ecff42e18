"""The mechanism every loader uses: download, verify, write atomically.

Where data lives (``GDL_DATA_DIR``) and the error every loader raises are in
:mod:`gdl.paths`; they are re-exported here. A dataset is described once, by a
:class:`Source` next to its loader: its official origin, its on-disk folder under ``GDL_DATA_DIR`` (the layout of the official
download, so a reader who fetches it by hand can point ``GDL_DATA_DIR`` at it), and
the digests of its files where they are known.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from gdl.paths import DataError, cache_dir, data_dir, downloads_allowed  # noqa: F401 - re-exported

# What a failed download can raise: network errors, a cut connection, a short body.
_DOWNLOAD_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError, DataError)


@dataclass(frozen=True)
class File:
    """One file of a dataset: its path inside the dataset folder and how to check it."""

    path: str
    url: str | None = None
    # Accepted digests as "algo:hex" -> what that copy is ("official", or a named rebuild).
    digests: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and how it lies on disk."""

    name: str
    folder: str
    origin: str  # the official page, URL or Kaggle slug, for the error message
    files: tuple[File, ...] = ()
    how: str = ""  # manual steps when there is no direct download (e.g. Kaggle)

    def file(self, path: str) -> File:
        for f in self.files:
            if f.path == path:
                return f
        return File(path)


def missing_message(source: Source, what: str, reason: str = "") -> str:
    target = data_dir() / source.folder
    lines = [f"{source.name}: {what} not found" + (f" ({reason})" if reason else "") + "."]
    if source.how:
        lines.append(source.how.strip())
    lines.append(f"Get it from {source.origin}")
    lines.append(f"and put it so that this path exists: {target / what}")
    lines.append(f"(set GDL_DATA_DIR to use another data folder; now {data_dir()}).")
    return "\n".join(lines)


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, spec: File) -> str | None:
    """Check a file against its accepted digests; return what copy it is (None if unknown).

    Raises :class:`DataError` when the file matches none of them.
    """
    if not spec.digests:
        return None
    seen = {}
    for key, label in spec.digests.items():
        algo, expected = key.split(":", 1)
        if algo not in seen:
            seen[algo] = file_digest(path, algo)
        if seen[algo] == expected.lower():
            return label
    got = ", ".join(f"{a}:{d}" for a, d in seen.items())
    raise DataError(
        f"{path} is corrupt or not the expected file (size {path.stat().st_size} bytes, {got}; "
        f"expected one of {', '.join(spec.digests)}). Delete it and download it again."
    )


def download(url: str, dest: Path, desc: str) -> None:
    """Stream `url` to `dest` through a temporary file in the same folder (atomic rename)."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
            if total is not None and out.tell() != total:
                raise DataError(f"download of {url} was cut short ({out.tell()} of {total} bytes)")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(source: Source, path: str) -> Path:
    """Return the verified local path of one file of `source`, downloading it if allowed."""
    spec = source.file(path)
    dest = data_dir() / source.folder / spec.path
    if dest.exists():
        verify(dest, spec)
        return dest
    if spec.url is None:
        raise DataError(missing_message(source, spec.path, "it has no direct download"))
    if not downloads_allowed():
        raise DataError(missing_message(source, spec.path, "downloads are off: GDL_OFFLINE is set"))
    try:
        download(spec.url, dest, desc=f"{source.name}/{spec.path}")
    except _DOWNLOAD_ERRORS as exc:
        raise DataError(missing_message(source, spec.path, f"download from {spec.url} failed: {exc}")) from exc
    try:
        verify(dest, spec)
    except DataError as exc:
        dest.unlink(missing_ok=True)  # never leave a bad download where a loader would find it
        raise DataError(f"Downloaded {spec.url}, but it failed verification and was removed. {exc}") from exc
    return dest


def fetch_archive(source: Source, archive: File, marker: str) -> Path:
    """Make sure an archive's contents lie under the dataset folder; return that folder.

    `marker` is a path (relative to the dataset folder's parent) that exists once the
    archive is unpacked. Unpacking goes to a temporary folder that is renamed into place.
    """
    root = data_dir()
    if (root / marker).exists():
        return root / source.folder
    if archive.url is None or not downloads_allowed():
        reason = "downloads are off: GDL_OFFLINE is set" if archive.url else "it has no direct download"
        raise DataError(missing_message(source, Path(marker).name, reason))
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{source.folder}.", dir=root))
    try:
        tar_path = work / Path(archive.path).name
        try:
            download(archive.url, tar_path, desc=source.name)
        except _DOWNLOAD_ERRORS as exc:
            raise DataError(missing_message(source, Path(marker).name,
                                            f"download from {archive.url} failed: {exc}")) from exc
        verify(tar_path, archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(work / "x", filter="data")
        # Move file by file, so files already in place (a partial copy) are kept as they are.
        unpacked = work / "x" / source.folder
        for item in sorted(unpacked.rglob("*")):
            target = root / source.folder / item.relative_to(unpacked)
            if item.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root / source.folder
