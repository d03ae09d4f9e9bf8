"""Downloads that resume and verify, and archive extraction that cannot write outside its folder.

Used on Colab for the real data (LJSpeech-1.1, FFHQ thumbnails); offline runs use :mod:`spectral_lib.data.standin`.

* :func:`download` streams ``url`` into ``<dest>.part`` (resuming a previous ``.part`` with an HTTP ``Range``
  request when the server supports it), checks the size and, when given, the SHA-256, and only then moves the file
  into place with ``os.replace``. ``dest`` therefore either does not exist or is complete: an interrupted
  download leaves only the ``.part``, which the next call resumes; a checksum mismatch removes it.
* :func:`extract_archive` unpacks ``.tar.bz2`` / ``.tar.gz`` / ``.tar`` / ``.zip`` after checking every member:
  no absolute path, no ``..`` component, no link of any kind (symbolic or hard, even one pointing inside: a chain
  of links that each look harmless can lead outside, CVE-2025-4517 and its kin), no device file. Members are
  unpacked into a temporary folder inside the target and moved in, so a failed extraction leaves no half tree.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
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
    """An archive member would land outside the target folder, or is a link or a device file; the message names it."""


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


def _record_path(part: Path) -> Path:
    """``<dest>.part.json``: the URL a ``.part`` came from and the server's validator (``ETag``/``Last-Modified``)."""
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    for p in (part, _record_path(part)):
        if p.exists():
            p.unlink()


def _resumable(part: Path, url: str, checked: bool) -> tuple[int, str | None]:
    """``(bytes of the .part to keep, If-Range validator)``. A ``.part`` is resumed only when it can be vouched for:
    it was written by us from this very URL and the server gave a validator (sent as ``If-Range``, so that a file
    changed since then is sent whole), or a checksum will verify the result anyway. Anything else is discarded."""
    if not part.is_file():
        _discard(part)
        return 0, None
    try:
        record = json.loads(_record_path(part).read_text())
    except (OSError, ValueError):
        record = None
    if isinstance(record, dict) and record.get("url") == url:
        validator = record.get("etag") or record.get("last_modified")
        if validator or checked:
            return part.stat().st_size, validator
    elif record is None and checked:  # a .part without our record: the checksum decides
        return part.stat().st_size, None
    _discard(part)
    return 0, None


def _open(url: str, have: int, validator: str | None, timeout: float) -> tuple[Any, int | None]:
    """``(response, None)``, or ``(None, total)`` when the server answers 416 to ``Range: bytes=have-`` (``total``:
    the size it states in ``Content-Range: bytes */total``, ``-1`` if it states none)."""
    headers = {"User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator:
            headers["If-Range"] = validator
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout), None
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", err.headers.get("Content-Range", "") or "")
            return None, int(match.group(1)) if match else -1
        raise OSError(f"downloading {url!r} failed: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise OSError(f"downloading {url!r} failed: {err.reason}") from err


def _expected_total(response: Any, have: int, validator: str | None) -> tuple[int, int | None] | None:
    """``(bytes to keep, total size or None)`` from the answer's status and headers, or ``None`` when a 206 does not
    continue the ``.part`` (another start in ``Content-Range``, or another ``ETag`` than the one resumed from)."""
    status = getattr(response, "status", None) or 200
    length = response.headers.get("Content-Length")
    if not (have and status == 206):
        return 0, int(length) if length is not None else None  # the whole file
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", response.headers.get("Content-Range", "") or "")
    etag = response.headers.get("ETag")
    if not match or int(match.group(1)) != have or (validator and etag and validator.startswith('"')
                                                     and etag != validator):
        return None
    return have, int(match.group(2)) if match.group(2) != "*" else None


def _receive(response: Any, part: Path, url: str, have: int, validator: str | None, progress: bool) -> bool:
    """Write the answer's body into ``part`` (after ``have`` bytes) and record its origin beside it; ``False`` when
    the answer does not continue the ``.part`` (nothing written)."""
    expected = _expected_total(response, have, validator)
    if expected is None:
        return False
    have, total = expected
    headers = response.headers
    record = {"url": url, "etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    _record_path(part).write_text(json.dumps(record))
    with open(part, "r+b" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                        desc=part.name[:-5], disable=not progress) as bar:
        f.seek(have)
        f.truncate()
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
    return True


def _fetch(url: str, part: Path, have: int, validator: str | None, *, progress: bool, timeout: float) -> None:
    """Bring ``part`` to the whole file: continue it from ``have`` bytes, or start again (once) when the server's
    answer shows that it cannot be continued (416 with another size, a 206 that does not fit)."""
    for _ in range(2):
        response, total = _open(url, have, validator, timeout)
        if response is None:
            if total == have:  # 416 and the server states exactly the .part's size: it is complete
                return
        else:
            with response:
                if _receive(response, part, url, have, validator, progress):
                    return
        _discard(part)
        have, validator = 0, None
    raise OSError(f"downloading {url!r} failed: the server's answers to a fresh request did not fit")  # unreachable


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
        resume: continue an existing ``<dest>.part`` with a ``Range: bytes=N-`` request. Only a ``.part`` that can
            be vouched for is continued: one this function wrote from the same URL, sent with ``If-Range`` and
            the server's ``ETag`` or ``Last-Modified`` (a file changed since then comes whole), or any ``.part``
            when ``sha256`` will check the result. A server that answers 200 instead of 206 sends the whole file
            again, which is handled; a 416 (the ``.part`` is as long as the file, or longer) is accepted only when
            the size the server states equals the ``.part``'s, else the file is fetched again.
        progress: tqdm bar.
        timeout: seconds to wait on the connection.

    An existing ``dest`` is returned as is when it matches ``sha256`` (or no digest is given); with a different
    digest it is downloaded again.

    Raises:
        ChecksumError: the digest differs (the ``.part`` is removed, ``dest`` is not written).
        OSError: the server is unreachable, answers with an error, or the transfer ends early (the ``.part`` and
            its record ``<dest>.part.json`` are kept for the next call to resume).
    """
    dest = _target(url, dest)
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        if expected is None or sha256sum(dest) == expected:
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if not resume:
        _discard(part)
    have, validator = _resumable(part, url, expected is not None)
    _fetch(url, part, have, validator, progress=progress, timeout=timeout)
    if expected is not None:
        got = sha256sum(part)
        if got != expected:
            _discard(part)
            raise ChecksumError(f"SHA-256 mismatch for {url!r}: expected {expected}, got {got}; the download was "
                                f"removed")
    os.replace(part, dest)
    _discard(part)
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


def _refuse_link(archive: Path, name: str, target: str) -> None:
    raise UnsafeArchiveError(
        f"archive {str(archive)!r} has a link member {name!r} -> {target!r}; links are refused (the data sets we "
        "download hold none, and a chain of links that each look harmless can point outside the target folder)"
    )


def _check_tar(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Every member must be a regular file or a folder with a safe relative name: no link of any kind (symbolic or
    hard, wherever it points), no device, no FIFO."""
    members = tar.getmembers()
    for m in members:
        _check_name(m.name, archive)
        if m.issym() or m.islnk():
            _refuse_link(archive, m.name, m.linkname)
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"archive {str(archive)!r} has a member that is neither a file nor a folder "
                                     f"(device, FIFO or unknown type): {m.name!r}")
    return members


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    """Safe names, and no member whose Unix mode says symbolic link (``unzip`` would create the link)."""
    for info in zf.infolist():
        _check_name(info.filename, archive)
        if stat.S_ISLNK(info.external_attr >> 16):
            _refuse_link(archive, info.filename, zf.read(info)[:200].decode("utf-8", "replace"))


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
                members = _check_tar(tar, path)
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: a second, standard line of defence
                    tar.extractall(staging, members=members, filter="data")
                else:  # older Pythons: our own checks above (no links at all) are the defence
                    tar.extractall(staging, members=members)
        else:
            with zipfile.ZipFile(path) as zf:
                _check_zip(zf, path)
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
