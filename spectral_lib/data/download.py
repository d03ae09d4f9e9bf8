"""Downloads that resume and verify, and archive extraction that cannot write outside its folder.

Used on Colab for the real data (LJSpeech-1.1, FFHQ thumbnails); offline runs use :mod:`spectral_lib.data.standin`.

* :func:`download` streams ``url`` into ``<dest>.part`` (resuming a previous ``.part`` with an HTTP ``Range``
  request when the server supports it), checks the size and, when given, the SHA-256, and only then moves the file
  into place with ``os.replace``. ``dest`` therefore either does not exist or is complete: an interrupted
  download leaves only the ``.part``, which the next call resumes; a checksum mismatch removes it.
* :func:`extract_archive` unpacks ``.tar.bz2`` / ``.tar.gz`` / ``.tar`` / ``.zip`` after checking every member:
  no absolute path, no ``..`` component, no link pointing outside the target, no device file. Members are
  unpacked into a temporary folder beside the target and moved in, so a failed extraction leaves no half tree.
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
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tqdm.auto import tqdm

__all__ = [
    "UnsafeArchiveError",
    "ChecksumError",
    "sha256sum",
    "download",
    "extract_archive",
    "DatasetSource",
    "DATASETS",
    "download_dataset",
]

_CHUNK = 1 << 20
_USER_AGENT = "spectral_lib-downloader"


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder (or is a device file); the message names it."""


class ChecksumError(ValueError):
    """The downloaded file's SHA-256 differs from the expected one (the file has been removed)."""


def sha256sum(path: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def _target(url: str, dest: str | os.PathLike) -> Path:
    dest = Path(dest)
    if dest.is_dir():
        name = Path(urlparse(url).path).name
        if not name:
            raise ValueError(f"dest {str(dest)!r} is a folder and the url {url!r} names no file; give a file path")
        dest = dest / name
    return dest


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    *,
    resume: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` (a file path, or a folder to put the URL's file name in) and return the path.

    Args:
        url: ``http(s)://`` (or ``file://``) address.
        dest: target file, or an existing folder.
        sha256: expected hex digest; ``None`` skips the check (say so where you call it).
        resume: continue an existing ``<dest>.part`` with a ``Range: bytes=N-`` request; a server that answers
            200 instead of 206 sends the whole file again, which is handled.
        progress: tqdm bar.
        timeout: seconds to wait on the connection.

    An existing ``dest`` is returned as is when it matches ``sha256`` (or no digest is given); with a different
    digest it is downloaded again.

    Raises:
        ChecksumError: the digest differs (the ``.part`` is removed, ``dest`` is not written).
        OSError: the server is unreachable, answers with an error, or the transfer ends early (the ``.part`` is
            kept for the next call to resume).
    """
    dest = _target(url, dest)
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        if expected is None or sha256sum(dest) == expected:
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if (resume and part.exists()) else 0
    if not resume and part.exists():
        part.unlink()

    headers = {"User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # range not satisfiable: the .part already holds the whole file
            response = None
        else:
            raise OSError(f"downloading {url!r} failed: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise OSError(f"downloading {url!r} failed: {err.reason}") from err

    if response is not None:
        with response:
            status = getattr(response, "status", 200)
            if have and status != 206:
                have = 0  # the server ignored the Range header and sends everything
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            mode = "ab" if have else "wb"
            with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                             desc=dest.name, disable=not progress) as bar:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as err:  # e.g. IncompleteRead, reset connection
                        raise OSError(f"downloading {url!r} was interrupted after {f.tell()} bytes ({err}); "
                                      f"call again to resume from {part.name}") from err
                    if not block:
                        break
                    f.write(block)
                    bar.update(len(block))
            size = part.stat().st_size
            if total is not None and size != total:
                raise OSError(f"downloading {url!r} ended early: got {size} of {total} bytes; call again to "
                              f"resume from {str(part)!r}")
    if expected is not None:
        got = sha256sum(part)
        if got != expected:
            part.unlink()
            raise ChecksumError(f"SHA-256 mismatch for {url!r}: expected {expected}, got {got}; the download was "
                                f"removed")
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------------- extraction


def _check_name(name: str, archive: Path) -> PurePosixPath:
    """Reject absolute paths, drive letters and ``..`` components; return the normalised relative path."""
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if p.is_absolute() or (len(norm) > 1 and norm[1] == ":") or norm.startswith("//"):
        raise UnsafeArchiveError(f"archive {str(archive)!r} has a member with an absolute path: {name!r}")
    if ".." in p.parts:
        raise UnsafeArchiveError(f"archive {str(archive)!r} has a member that escapes the target folder: {name!r}")
    return p


def _inside(base: Path, candidate: Path) -> bool:
    base = os.path.realpath(base)
    cand = os.path.realpath(candidate)
    return cand == base or cand.startswith(base + os.sep)


def _check_tar(tar: tarfile.TarFile, archive: Path, target: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        rel = _check_name(m.name, archive)
        if m.isdev() or m.isfifo():
            raise UnsafeArchiveError(f"archive {str(archive)!r} has a device or FIFO member: {m.name!r}")
        if m.issym():
            link = PurePosixPath(m.linkname.replace("\\", "/"))
            where = target / rel.parent / link if not link.is_absolute() else Path(str(link))
            if link.is_absolute() or not _inside(target, where):
                raise UnsafeArchiveError(f"archive {str(archive)!r} has a symlink pointing outside the target "
                                         f"folder: {m.name!r} -> {m.linkname!r}")
        if m.islnk():
            _check_name(m.linkname, archive)
            if not _inside(target, target / m.linkname):
                raise UnsafeArchiveError(f"archive {str(archive)!r} has a hard link pointing outside the target "
                                         f"folder: {m.name!r} -> {m.linkname!r}")
    return members


def _archive_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tar.bz2", ".tbz2", ".tar.gz", ".tgz", ".tar.xz", ".tar")):
        return "tar"
    if name.endswith(".zip"):
        return "zip"
    raise ValueError(f"unsupported archive {str(path)!r}; expected .tar.bz2, .tar.gz, .tar.xz, .tar or .zip")


def extract_archive(path: str | os.PathLike, dest: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Safely unpack ``path`` into the folder ``dest`` and return the top-level entries it created.

    Every member is checked before anything is written (see the module docstring); the archive is unpacked into a
    temporary folder inside ``dest`` and its top-level entries are moved into place with ``os.replace``.

    Raises:
        UnsafeArchiveError: a member would escape ``dest``; the message names it. Nothing is extracted.
        FileExistsError: a top-level entry already exists in ``dest`` and ``overwrite`` is False.
    """
    path, dest = Path(path), Path(dest)
    if not path.is_file():
        raise FileNotFoundError(f"archive {str(path)!r} does not exist")
    kind = _archive_kind(path)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extracting-", dir=dest))
    try:
        if kind == "tar":
            with tarfile.open(path, "r:*") as tar:
                members = _check_tar(tar, path, staging)
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: a second, standard line of defence
                    tar.extractall(staging, members=members, filter="data")
                else:  # pragma: no cover - older Pythons; our own checks above still apply
                    tar.extractall(staging, members=members)
        else:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    _check_name(info.filename, path)
                zf.extractall(staging)
        created = []
        for entry in sorted(staging.iterdir()):
            final = dest / entry.name
            if final.exists():
                if not overwrite:
                    raise FileExistsError(f"{str(final)!r} already exists; pass overwrite=True to replace it")
                shutil.rmtree(final) if final.is_dir() and not final.is_symlink() else final.unlink()
            os.replace(entry, final)
            created.append(final)
        return created
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set comes from and what its archive unpacks to."""

    name: str
    url: str | None
    sha256: str | None
    folder: str
    notes: str


DATASETS: dict[str, DatasetSource] = {
    "ljspeech": DatasetSource(
        name="LJSpeech-1.1",
        url="https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2",
        # The digest torchaudio's LJSPEECH dataset verifies (pytorch/audio, torchaudio/datasets/ljspeech.py).
        sha256="be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5",
        folder="LJSpeech-1.1",
        notes="13 100 clips, 24 h, 22 050 Hz mono 16-bit; about 2.6 GB as .tar.bz2; public domain.",
    ),
    "ffhq-thumbnails128": DatasetSource(
        name="FFHQ thumbnails128x128",
        url=None,  # no stable direct URL: see notes
        sha256=None,
        folder="thumbnails128x128",
        notes=(
            "FFHQ (Karras et al. 2019, CC BY-NC-SA 4.0) is distributed by NVIDIA through Google Drive with the "
            "official script (github.com/NVlabs/ffhq-dataset: `python download_ffhq.py --thumbs`, 70 000 PNGs, "
            "about 2 GB); Drive's quotas often stop automated downloads. Use that script, or a mirror you trust "
            "(Kaggle, Hugging Face) and pass its archive URL: download_dataset('ffhq-thumbnails128', dest, url=...). "
            "An EDM/StyleGAN dataset zip (dataset_tool.py output) can be read directly without extracting."
        ),
    ),
}


def download_dataset(
    name: str,
    dest: str | os.PathLike,
    *,
    url: str | None = None,
    sha256: str | None = None,
    extract: bool = True,
    progress: bool = True,
) -> Path:
    """Download (and unpack) a registered data set into ``dest``; return the folder to give the loader.

    ``url``/``sha256`` override the registry (for a mirror). When the data set's folder already exists in
    ``dest`` nothing is downloaded. With ``extract=False`` (e.g. an EDM ``.zip`` the image loader reads directly)
    the downloaded file's path is returned.

    Raises:
        ValueError: unknown ``name``, or no URL known for it (the message says how to get the data).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(repr(k) for k in DATASETS)}")
    src = DATASETS[name]
    dest = Path(dest)
    folder = dest / src.folder
    if extract and folder.is_dir() and any(folder.iterdir()):
        return folder
    url = url or src.url
    if url is None:
        raise ValueError(f"no download URL is known for {src.name}: {src.notes}")
    digest = sha256 if sha256 is not None else (src.sha256 if url == src.url else None)
    dest.mkdir(parents=True, exist_ok=True)
    archive = download(url, dest, digest, progress=progress)
    if not extract:
        return archive
    created = extract_archive(archive, dest)
    if folder.is_dir():
        return folder
    return created[0] if len(created) == 1 and created[0].is_dir() else dest
