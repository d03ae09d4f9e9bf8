"""FFHQ-style image folders (and EDM/StyleGAN zips), decoded once, resized with anti-aliasing, cached as ``.npy``.

What people have on disk, and what this module reads:

* a folder tree of PNG/JPEG files, e.g. FFHQ's official ``thumbnails128x128/00000/00000.png ...`` or
  ``images1024x1024/...`` (any nesting; files are sorted by their relative path);
* a ``.zip`` as written by EDM's / StyleGAN's ``dataset_tool.py`` (``00000/img00000000.png ...``; its optional
  ``dataset.json`` holds class labels, ``{"labels": [["00000/img00000000.png", 6], ...]}`` or ``null``, read with
  ``use_labels=True`` as EDM's ``training/dataset.py`` does: integer labels become one-hot vectors of
  ``max + 1`` classes; a folder holds the same file at its top).

Every image is decoded once: converted to RGB (grayscale is replicated, 16-bit grayscale scaled to 8 bits, palette
expanded, an alpha channel dropped), centre-cropped to a square when it is not one (as EDM's ``dataset_tool
--transform=center-crop``), resized to ``resolution`` with PIL's Lanczos filter (anti-aliased: its support widens
with the reduction factor; ``reducing_gap=3`` first reduces by an integer box filter, which PIL documents as
indistinguishable from exact resampling in most cases), and stored in a ``uint8`` ``(N, H, W, 3)`` array saved as
``.npy`` in a cache folder. Later runs memory-map that file (``np.load(..., mmap_mode="r")``), which is what makes
reads fast. The cache file's name holds a hash of the source's absolute path, the resolution and the list of files
with their sizes and modification and change times (for a zip: sizes and CRC-32s), so a changed folder builds a
new cache, even when a file is replaced by one of the same size and date; it is written to a temporary name and
moved into place with ``os.replace``, so an interrupted decode never leaves a cache that looks complete. Symlinked
sub-folders are followed (each real folder once).

Training tensors are ``(C, H, W)`` floats in ``[-1, 1]``: ``x = uint8 / 127.5 - 1``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

__all__ = [
    "IMAGE_EXTENSIONS",
    "CorruptImageError",
    "default_cache_dir",
    "list_image_files",
    "decode_image",
    "build_image_cache",
    "read_labels",
    "ImageFolderDataset",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_CACHE_VERSION = 1
_PROGRESS_MIN_FILES = 64  # our choice: no progress bar for a handful of files


class CorruptImageError(ValueError):
    """An image file that PIL cannot decode; the message names the file."""


def default_cache_dir() -> Path:
    """``$SPECTRAL_LIB_CACHE`` if set, else ``~/.cache/spectral_lib``: never inside the data folder, which may be
    read-only (a mounted Drive, a shared data set)."""
    env = os.environ.get("SPECTRAL_LIB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "spectral_lib"


def _check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ValueError(f"resolution must be a positive int (pixels per side), got {resolution!r}")
    return resolution


def list_image_files(root: str | os.PathLike, max_images: int | None = None) -> tuple[list[str], list[int]]:
    """Relative POSIX paths of the images under ``root`` (a folder or a ``.zip``), sorted, with their sizes.

    Raises:
        FileNotFoundError: ``root`` does not exist, or holds no file with one of :data:`IMAGE_EXTENSIONS`.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    entries: list[tuple[str, int]] = []
    if root.is_file():
        if not zipfile.is_zipfile(root):
            raise ValueError(f"root must be a folder of images or a .zip archive, got the file {str(root)!r}")
        with zipfile.ZipFile(root) as zf:
            for info in zf.infolist():
                if not info.is_dir() and info.filename.lower().endswith(IMAGE_EXTENSIONS):
                    entries.append((info.filename, info.file_size))
    else:
        entries = _walk_images(root)
    if not entries:
        what = "archive" if root.is_file() else "folder"
        raise FileNotFoundError(
            f"no images found in the {what} {str(root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)}, "
            f"case-insensitive, in all subfolders)"
        )
    entries.sort()
    if max_images is not None:
        if not isinstance(max_images, int) or max_images <= 0:
            raise ValueError(f"max_images must be a positive int or None, got {max_images!r}")
        entries = entries[:max_images]
    return [e[0] for e in entries], [e[1] for e in entries]


def _walk_images(root: Path) -> list[tuple[str, int]]:
    """Image files under ``root`` with their sizes, following symlinked folders (each real folder once: a link that
    leads back to a folder already read, e.g. a loop, is skipped with a warning). A file whose size cannot be read
    (a broken link) gets size ``-1`` and fails, named, when decoded."""
    entries: list[tuple[str, int]] = []
    seen = {os.path.realpath(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        kept = []
        for d in sorted(dirnames):
            if d.startswith("."):  # hidden folders (.ipynb_checkpoints)
                continue
            real = os.path.realpath(os.path.join(dirpath, d))
            if real in seen:
                rel = (Path(dirpath) / d).relative_to(root).as_posix()
                warnings.warn(f"skipping {rel!r} in {str(root)!r}: it leads to a folder already read ({real!r})",
                              stacklevel=3)
                continue
            seen.add(real)
            kept.append(d)
        dirnames[:] = kept
        for f in filenames:
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."):
                p = Path(dirpath) / f
                try:
                    size = p.stat().st_size
                except OSError:
                    size = -1
                entries.append((p.relative_to(root).as_posix(), size))
    return entries


def _max_file_bytes() -> int | None:
    """The largest zip member we inflate: an image that PIL would decode (at most twice ``Image.MAX_IMAGE_PIXELS``
    pixels; more is refused as a decompression bomb) takes at most 8 bytes a pixel uncompressed (16-bit RGBA), plus
    1 MiB for headers. ``None`` when the limit is switched off."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 16 * int(limit) + (1 << 20)


def decode_image(source: str | os.PathLike | bytes, resolution: int, *, name: str | None = None) -> np.ndarray:
    """Decode one image to ``uint8`` ``(resolution, resolution, 3)`` RGB.

    Steps: open and fully decode (JPEGs are first decoded at a reduced DCT scale no smaller than
    ``3 * resolution``, a fast and anti-aliased first reduction); convert to RGB; centre-crop to a square; resize
    with ``Image.LANCZOS`` and ``reducing_gap=3.0``.

    Raises:
        CorruptImageError: the data cannot be decoded; the message names ``name`` (or the path).
    """
    resolution = _check_resolution(resolution)
    label = name if name is not None else (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(fp) as img:
            if img.format == "JPEG":
                img.draft("RGB", (3 * resolution, 3 * resolution))
            img.load()
            if img.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grayscale: scale to 8 bits, don't clip
                img = Image.fromarray(np.clip(np.asarray(img, np.float64) / 257.0 + 0.5, 0, 255).astype(np.uint8))
            rgb = img.convert("RGB")
    except Image.DecompressionBombError as err:
        raise CorruptImageError(f"could not decode image {label!r}: {err} (refused as a decompression bomb: PIL's "
                                f"limit is Image.MAX_IMAGE_PIXELS)") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise CorruptImageError(f"could not decode image {label!r}: {err}") from err
    w, h = rgb.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        rgb = rgb.crop((left, top, left + s, top + s))
    if rgb.size != (resolution, resolution):
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.uint8)


def _fingerprints(root: Path, files: Sequence[str], sizes: Sequence[int]) -> list[str]:
    """What tells one version of each file from another without reading it: size, modification and change times
    for a folder (the change time moves whenever the file is written, even when a copy keeps size and mtime), size
    and CRC-32 from a zip's directory."""
    if root.is_file():
        with zipfile.ZipFile(root) as zf:
            return [f"{zf.getinfo(f).file_size}:{zf.getinfo(f).CRC:08x}" for f in files]
    out = []
    for f, s in zip(files, sizes):
        try:
            st = (root / f).stat()
            out.append(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
        except OSError:
            out.append(f"{s}:unreadable")
    return out


def _cache_key(root: Path, resolution: int, files: Sequence[str], sizes: Sequence[int]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": _CACHE_VERSION, "source": str(root.resolve()), "resolution": resolution}).encode())
    for f, stamp in zip(files, _fingerprints(root, files, sizes)):
        h.update(f"{f}\0{stamp}\n".encode())
    return h.hexdigest()[:16]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_member(zf: zipfile.ZipFile, name: str, label: str) -> bytes:
    """A zip member's bytes, refused (as corrupt) before inflating when its stated size is beyond any image PIL
    would decode (a zip bomb)."""
    limit = _max_file_bytes()
    size = zf.getinfo(name).file_size
    if limit is not None and size > limit:
        err = ValueError(f"{size} bytes uncompressed, larger than any image within PIL's decompression-bomb limit "
                         f"({limit} bytes)")
        raise CorruptImageError(f"could not decode image {label!r}: {err}") from err
    return zf.read(name)


def build_image_cache(
    root: str | os.PathLike,
    resolution: int = 64,
    *,
    cache_dir: str | os.PathLike | None = None,
    skip_corrupt: bool = False,
    max_images: int | None = None,
    progress: bool = True,
) -> Path:
    """Decode every image of ``root`` once into ``<cache_dir>/<name>-<res>px-<hash>.npy`` and return its path.

    The ``.npy`` holds ``uint8`` ``(N, resolution, resolution, 3)``; a ``.json`` beside it lists the files kept, in
    order, and those skipped as corrupt. An existing cache with the same key is reused without decoding.

    Raises:
        FileNotFoundError: missing folder, or no images found.
        CorruptImageError: an image cannot be decoded and ``skip_corrupt`` is False (with ``skip_corrupt=True``
            it is left out with a warning naming it).
    """
    resolution = _check_resolution(resolution)
    root = Path(root)
    files, sizes = list_image_files(root, max_images)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "images"
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{root.stem or 'images'}-{resolution}px-{_cache_key(root, resolution, files, sizes)}"
    npy_path, meta_path = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    if npy_path.exists() and meta_path.exists():
        return npy_path

    tmp_path = cache_dir / f"{stem}.npy.tmp{os.getpid()}"
    out = np.lib.format.open_memmap(tmp_path, mode="w+", dtype=np.uint8, shape=(len(files), resolution, resolution, 3))
    kept: list[str] = []
    skipped: list[dict[str, str]] = []
    zf = zipfile.ZipFile(root) if root.is_file() else None
    try:
        bar = tqdm(files, desc=f"decoding {root.name} at {resolution}px", unit="img",
                   disable=not progress or len(files) < _PROGRESS_MIN_FILES)
        for rel in bar:
            label = f"{root / rel}" if zf is None else f"{root}:{rel}"
            try:
                src = _read_member(zf, rel, label) if zf is not None else root / rel
                out[len(kept)] = decode_image(src, resolution, name=label)
            except CorruptImageError as err:
                if not skip_corrupt:
                    raise CorruptImageError(
                        f"{err}; pass skip_corrupt=True to leave unreadable files out with a warning"
                    ) from err.__cause__
                warnings.warn(f"skipping corrupt image {label!r}: {err.__cause__}", stacklevel=2)
                skipped.append({"file": rel, "error": str(err.__cause__)})
                continue
            kept.append(rel)
        if not kept:
            raise CorruptImageError(f"none of the {len(files)} images in {str(root)!r} could be decoded")
        out.flush()
        del out
        if skipped:  # shrink to the images kept (rare: only with corrupt files)
            full = np.load(tmp_path, mmap_mode="r")
            small_path = cache_dir / f"{stem}.npy.tmp{os.getpid()}s"
            small = np.lib.format.open_memmap(small_path, mode="w+", dtype=np.uint8,
                                              shape=(len(kept), resolution, resolution, 3))
            small[:] = full[: len(kept)]
            small.flush()
            del small, full
            os.replace(small_path, tmp_path)
        meta = {"version": _CACHE_VERSION, "source": str(root.resolve()), "resolution": resolution,
                "files": kept, "skipped": skipped}
        _atomic_write_text(meta_path, json.dumps(meta))
        os.replace(tmp_path, npy_path)  # the .npy appears last: its presence means the cache is complete
    finally:
        if zf is not None:
            zf.close()
        if tmp_path.exists():
            tmp_path.unlink()
    return npy_path


def read_labels(root: str | os.PathLike, files: Sequence[str]) -> np.ndarray | None:
    """The class labels of ``files`` (relative paths, in order) from ``root``'s ``dataset.json``, or ``None``.

    The file is EDM's / StyleGAN's: ``{"labels": [[relative path, label], ...]}`` (or ``"labels": null``), at the
    top of a zip or folder. Integer labels give ``int64 (N,)``, vectors ``float32 (N, D)``, as EDM's
    ``ImageFolderDataset._load_raw_labels``.

    Raises:
        ValueError: the file is not valid JSON of that form, or has no label for one of ``files`` (named).
    """
    root = Path(root)
    name = "dataset.json"
    if root.is_file():
        with zipfile.ZipFile(root) as zf:
            if name not in zf.namelist():
                return None
            text = zf.read(name)
    else:
        if not (root / name).is_file():
            return None
        text = (root / name).read_bytes()
    where = f"{root}:{name}" if root.is_file() else str(root / name)
    try:
        raw = json.loads(text)["labels"]
        table = {} if raw is None else {str(f).replace("\\", "/"): v for f, v in raw}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{where!r} must hold {{\"labels\": [[file, label], ...]}} or null ({err})") from err
    if raw is None:
        return None
    missing = [f for f in files if f not in table]
    if missing:
        raise ValueError(f"{where!r} has no label for {len(missing)} image(s), e.g. {missing[0]!r}")
    labels = np.array([table[f] for f in files])
    if labels.ndim == 1:
        labels = labels.astype(np.int64)
        if labels.size and labels.min() < 0:
            raise ValueError(f"{where!r} holds a negative class label ({labels.min()})")
        return labels
    return labels.astype(np.float32)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """``uint8 (..., H, W, 3)`` -> ``float32 (..., 3, H, W)`` in ``[-1, 1]``."""
    t = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))  # a memory map is read-only
    return t.movedim(-1, -3).float().div_(127.5).sub_(1.0)


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images of a folder tree or zip as ``(3, resolution, resolution)`` float tensors in ``[-1, 1]``.

    Args:
        root: a folder (any nesting) or an EDM/StyleGAN-style ``.zip``.
        resolution: side length after resizing; 64 as in the paper's FFHQ experiment.
        cache_dir: where the decoded ``.npy`` lives (default :func:`default_cache_dir` ``/ "images"``).
        skip_corrupt: leave undecodable files out with a warning instead of raising.
        max_images: use only the first ``max_images`` files (sorted by relative path).
        hflip: flip each item horizontally with probability 1/2 (as EDM's ``--xflip``; our default is off).
        progress: show a tqdm bar while decoding (only for 64 files or more).
        use_labels: read the class labels of ``dataset.json`` (:func:`read_labels`; as EDM's ``--cond=1``). Then
            items and batches are dicts ``{"image": (.., 3, H, W), "class_labels": (.., label_dim)}`` (one-hot
            float32), which the trainer passes to the network as ``class_labels``. A data set without labels is
            refused.

    Attributes:
        images: the ``uint8 (N, H, W, 3)`` memory map; ``files``: the relative paths, in order; ``cache_path``;
        ``labels``: ``int64 (N,)`` or ``float32 (N, D)`` with ``use_labels``, else ``None``; ``label_dim``: the
        number of classes (``max + 1`` of integer labels; 0 without labels).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int = 64,
        *,
        cache_dir: str | os.PathLike | None = None,
        skip_corrupt: bool = False,
        max_images: int | None = None,
        hflip: bool = False,
        progress: bool = True,
        use_labels: bool = False,
    ) -> None:
        self.root = Path(root)
        self.resolution = _check_resolution(resolution)
        self.hflip = bool(hflip)
        self.cache_path = build_image_cache(root, resolution, cache_dir=cache_dir, skip_corrupt=skip_corrupt,
                                            max_images=max_images, progress=progress)
        meta = json.loads(self.cache_path.with_suffix(".json").read_text())
        if meta["skipped"] and not skip_corrupt:
            names = ", ".join(repr(s["file"]) for s in meta["skipped"][:5])
            raise CorruptImageError(
                f"{len(meta['skipped'])} image(s) in {str(self.root)!r} cannot be decoded ({names}); the cache "
                f"{str(self.cache_path)!r} was built with skip_corrupt=True: pass skip_corrupt=True to use it"
            )
        self.files: list[str] = meta["files"]
        self.images: np.ndarray = np.load(self.cache_path, mmap_mode="r")
        self.labels: np.ndarray | None = None
        if use_labels:
            self.labels = read_labels(self.root, self.files)
            if self.labels is None:
                raise ValueError(
                    f"use_labels=True but {str(self.root)!r} has no class labels (no dataset.json, or its labels "
                    "are null); a class-conditional network needs a labelled data set (e.g. CIFAR-10 prepared by "
                    "spectral_lib.data.edm_datasets)"
                )

    @property
    def label_dim(self) -> int:
        """Number of classes (one-hot width) of the labels read; 0 without labels."""
        if self.labels is None:
            return 0
        return int(self.labels.max()) + 1 if self.labels.ndim == 1 else int(self.labels.shape[1])

    def _onehot(self, idx: np.ndarray) -> torch.Tensor:
        assert self.labels is not None
        raw = self.labels[idx]
        if raw.ndim == 1:
            out = torch.zeros(len(raw), self.label_dim)
            out[torch.arange(len(raw)), torch.from_numpy(raw)] = 1.0
            return out
        return torch.from_numpy(np.array(raw, dtype=np.float32))

    def _with_labels(self, x: torch.Tensor, idx: np.ndarray) -> torch.Tensor | dict[str, torch.Tensor]:
        if self.labels is None:
            return x
        return {"image": x, "class_labels": self._onehot(idx).to(x.device)}

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one item, ``(3, resolution, resolution)``."""
        return (3, self.resolution, self.resolution)

    def __getitem__(self, index: int) -> torch.Tensor | dict[str, torch.Tensor]:
        x = _to_tensor(self.images[index])
        if self.hflip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        if self.labels is None:
            return x
        return {"image": x, "class_labels": self._onehot(np.asarray([index]))[0]}

    def get_batch(self, indices: Sequence[int] | torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``indices`` as one ``(B, 3, H, W)`` tensor; ``flip`` a ``(B,)`` bool tensor of horizontal flips."""
        idx = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads are kinder to a memory map
        batch = np.empty((len(idx),) + self.images.shape[1:], dtype=np.uint8)
        batch[order] = self.images[idx[order]]
        x = _to_tensor(batch)
        if flip is not None:
            x = torch.where(flip.view(-1, 1, 1, 1).cpu(), x.flip(-1), x)
        return x

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """A training batch ``(batch_size, 3, H, W)`` (with ``use_labels``: a dict with its ``class_labels``):
        indices drawn uniformly with replacement, flips (when ``hflip``) drawn from the same ``generator``.
        Stateless apart from the generator, so a trainer that saves the generator's state resumes exactly."""
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5 if self.hflip else None
        x = self.get_batch(idx, flip)
        x = x if device is None else x.to(device)
        return self._with_labels(x, np.asarray(idx))

    def iter_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Every image once, in order, without flips, as batches ``(<=batch_size, 3, H, W)`` (for metrics)."""
        for start in range(0, len(self), batch_size):
            yield _to_tensor(self.images[start:start + batch_size])
