"""Table 1's image data sets, prepared as NVIDIA's EDM prepares them, so that its FID reference statistics apply.

EDM (NVlabs/edm, README "Preparing datasets") turns each data set into an *EDM zip* with its ``dataset_tool.py``:
an uncompressed zip (``ZIP_STORED``) of uncompressed PNGs (``compress_level=0``) named ``00000/img00000000.png``,
``00000/img00000001.png`` ... (the first five of the eight index digits name the folder, so 1000 images per
folder), and a ``dataset.json`` holding ``{"labels": [[name, class], ...]}`` or ``{"labels": null}``. NVIDIA's
published FID statistics (``fid-refs/cifar10-32x32.npz``, ``ffhq-64x64.npz``, ``afhqv2-64x64.npz``) were computed
on exactly those zips. This module writes the same zips with its own code (EDM's is not ours to copy), following
that recipe step for step:

* **CIFAR-10** (:func:`convert_cifar10`): the "python version" tarball ``cifar-10-python.tar.gz``; the five
  training batches ``cifar-10-batches-py/data_batch_1`` ... ``_5`` in that order (pickles, ``latin1``), each
  ``data`` row reshaped to ``(3, 32, 32)`` and transposed to ``(32, 32, 3)``, with its ``labels`` entry as the class:
  50 000 images, 10 classes, no resizing. Labels are written (the CIFAR-10 networks are class-conditional).
* **AFHQv2** and **FFHQ** (:func:`convert_image_folder`): every image file of a folder or zip, sorted by path as
  ``sorted(Path(source).rglob("*"))`` sorts (part by part), decoded with ``np.array(PIL.Image.open(f))`` and, when
  its size differs, resized to ``resolution x resolution`` with ``PIL.Image.resize(..., LANCZOS)`` and nothing else
  (EDM's ``--resolution=64x64`` without ``--transform``: no crop, no ``reducing_gap``; our image loader's own resize
  is not the same and is never used on these zips, which are already at the network's resolution). All images must
  come out square with equal size and channel count, as ``dataset_tool.py`` demands.

  One deviation: ``dataset_tool.py`` labels images by their top-level folder when there is no ``dataset.json``;
  for AFHQv2 those folders are the splits ``train``/``test``, not classes, and the unconditional networks never read
  labels, so we write ``{"labels": null}``. The images, their order and their names are EDM's.

Sources and checksums (:data:`IMAGE_DATA`):

* CIFAR-10: ``https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz``. Its page publishes an MD5
  (``c58f30108f718f92721af3b95e74349a``); the SHA-256 we verify, ``6d958be0...c001ce``, is the one torchvision's
  and Keras' loaders verify for the same file.
* AFHQv2: the archive the StarGAN v2 authors publish (``clovaai/stargan-v2``, ``download.sh afhq-v2-dataset``: a
  Dropbox link to ``afhq_v2.zip``, 512x512 PNGs in ``train|test/cat|dog|wild/``). **No checksum is published**: the
  first download records the SHA-256 it got (:func:`record_digest`, in ``<root>/recorded_digests.json``) and says
  so; later downloads are checked against it. Put the digest into :data:`IMAGE_DATA` once known.
* FFHQ: no stable one-click source (NVIDIA distributes it through Google Drive with ``download_ffhq.py``, whose
  quotas stop automated downloads). Give :func:`prepare_dataset` the folder of ``images1024x1024`` (as EDM does) or an
  EDM zip you made; a folder of the 128x128 thumbnails also works, but its images were resized by another filter, so
  FID against NVIDIA's statistics is then slightly off.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

__all__ = [
    "ImageDataSpec",
    "IMAGE_DATA",
    "edm_image_name",
    "write_edm_zip",
    "convert_cifar10",
    "convert_image_folder",
    "check_edm_zip",
    "record_digest",
    "default_data_root",
    "prepare_dataset",
]


@dataclass(frozen=True)
class ImageDataSpec:
    """One of Table 1's data sets: where it comes from and what its EDM zip holds.

    Attributes:
        name: our key (``cifar10``, ``afhqv2``, ``ffhq``); the zip is ``<zip_name>``.
        resolution: side of the images in the zip (the networks' ``img_resolution``).
        label_dim: classes (10 for CIFAR-10, 0 for the unconditional sets).
        n_images: images in EDM's zip (CIFAR-10: 50 000; AFHQv2: 15 803; FFHQ: 70 000).
        url, sha256: the archive and its SHA-256 (``None`` where none is published or recorded yet).
        checksum_source: where ``sha256`` comes from, or why there is none.
    """

    name: str
    zip_name: str
    resolution: int
    label_dim: int
    n_images: int
    url: str | None
    archive: str | None
    sha256: str | None
    checksum_source: str


IMAGE_DATA: dict[str, ImageDataSpec] = {
    "cifar10": ImageDataSpec(
        "cifar10", "cifar10-32x32.zip", 32, 10, 50_000,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        "SHA-256 verified by torchvision's and Keras' CIFAR-10 loaders (the data page publishes only the MD5 "
        "c58f30108f718f92721af3b95e74349a)",
    ),
    "afhqv2": ImageDataSpec(
        "afhqv2", "afhqv2-64x64.zip", 64, 0, 15_803,
        "https://www.dropbox.com/s/vkzjokiwof5h8w6/afhq_v2.zip?dl=1", "afhq_v2.zip", None,
        "none published (clovaai/stargan-v2 download.sh gives only the link); recorded on first download",
    ),
    "ffhq": ImageDataSpec(
        "ffhq", "ffhq-64x64.zip", 64, 0, 70_000, None, None, None,
        "no one-click source: a folder (images1024x1024) or an EDM zip you name",
    ),
}
"""Table 1's data sets (the order of the paper's table)."""

_DIGESTS_FILE = "recorded_digests.json"


def edm_image_name(index: int) -> str:
    """EDM's name of image ``index`` in a dataset zip: ``f"{i:08d}"[:5] + "/img" + f"{i:08d}" + ".png"``."""
    digits = f"{int(index):08d}"
    return f"{digits[:5]}/img{digits}.png"


def _png_bytes(img: np.ndarray) -> bytes:
    """An uncompressed PNG (``compress_level=0``, as ``dataset_tool.py``), ``L`` for one channel, else ``RGB``."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(img, "L" if img.ndim == 2 else "RGB").save(buf, format="png", compress_level=0, optimize=False)
    return buf.getvalue()


def write_edm_zip(dest: str | os.PathLike, items: Iterable[tuple[np.ndarray, int | None]], *, total: int | None = None,
                  progress: bool = True) -> Path:
    """Write ``(image uint8 (H, W, C) or (H, W), label or None)`` pairs as an EDM dataset zip, atomically.

    Images are checked as ``dataset_tool.py`` checks them: square, a power-of-two side, 1 or 3 channels, all alike.
    ``dataset.json`` holds every label, or ``null`` when any is ``None``. The zip is written to ``<dest>.tmp`` and
    moved into place, so an interrupted conversion never leaves a zip that looks complete.

    Raises:
        ValueError: an image differs from the first in size or channels, or is not square (the message names it).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    labels: list[list | None] = []
    first: tuple[int, int, int] | None = None
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for i, (img, label) in enumerate(tqdm(items, total=total, desc=f"writing {dest.name}", unit="img",
                                                  disable=not progress)):
                name = edm_image_name(i)
                attrs = (img.shape[1], img.shape[0], img.shape[2] if img.ndim == 3 else 1)
                if first is None:
                    first = attrs
                    side = attrs[0]
                    if attrs[0] != attrs[1] or side & (side - 1) or attrs[2] not in (1, 3):
                        raise ValueError(f"image {name} is {attrs[0]}x{attrs[1]} with {attrs[2]} channels: EDM's "
                                         "datasets need square, power-of-two, grayscale or RGB images")
                elif attrs != first:
                    raise ValueError(f"image {name} is {attrs[0]}x{attrs[1]}x{attrs[2]}, the first image "
                                     f"{first[0]}x{first[1]}x{first[2]}: all images must be alike")
                zf.writestr(name, _png_bytes(img))
                labels.append([name, int(label)] if label is not None else None)
            if first is None:
                raise ValueError(f"no images to write into {str(dest)!r}")
            meta = {"labels": labels if all(x is not None for x in labels) else None}
            zf.writestr("dataset.json", json.dumps(meta))
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


# --------------------------------------------------------------------------------------------------- CIFAR-10


def convert_cifar10(tarball: str | os.PathLike, dest: str | os.PathLike, *, max_images: int | None = None,
                    progress: bool = True) -> Path:
    """CIFAR-10's python tarball -> EDM zip (see the module docstring): 50 000 labelled 32x32 images.

    Raises:
        ValueError: a training batch is missing or not of the published form (names the member).
    """
    images, labels = [], []
    with tarfile.open(tarball, "r:gz") as tar:
        for batch in range(1, 6):
            member = f"cifar-10-batches-py/data_batch_{batch}"
            try:
                with tar.extractfile(tar.getmember(member)) as f:  # type: ignore[union-attr]
                    data = pickle.load(f, encoding="latin1")  # noqa: S301 - the checksummed official archive
            except KeyError as err:
                raise ValueError(f"{str(tarball)!r} has no member {member!r}: not CIFAR-10's python tarball") from err
            array = np.asarray(data["data"], dtype=np.uint8)
            if array.ndim != 2 or array.shape[1] != 3 * 32 * 32 or len(data["labels"]) != len(array):
                raise ValueError(f"{member!r} in {str(tarball)!r} is not of CIFAR-10's form: data {array.shape}, "
                                 f"{len(data['labels'])} labels")
            images.append(array.reshape(-1, 3, 32, 32))
            labels.append(np.asarray(data["labels"], dtype=np.int64))
    pixels = np.concatenate(images).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    classes = np.concatenate(labels)
    if classes.min() < 0 or classes.max() > 9:
        raise ValueError(f"CIFAR-10 labels must lie in 0..9, got {classes.min()}..{classes.max()}")
    n = len(pixels) if max_images is None else min(len(pixels), int(max_images))
    items = ((pixels[i], int(classes[i])) for i in range(n))
    return write_edm_zip(dest, items, total=n, progress=progress)


# --------------------------------------------------------------------------------------------------- folders


def _image_members(source: Path) -> list[str]:
    """Image files of a folder or zip, sorted part by part as ``sorted(Path(...).rglob("*"))``."""
    Image.init()
    if source.is_file():
        with zipfile.ZipFile(source) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
    else:
        names = [p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()]
    found = [n for n in names if "." + n.rsplit(".", 1)[-1].lower() in Image.EXTENSION]
    return sorted(found, key=lambda n: PurePosixPath(n).parts)


def _read_images(source: Path, names: list[str], resolution: int | None) -> Iterator[tuple[np.ndarray, None]]:
    zf = zipfile.ZipFile(source) if source.is_file() else None
    try:
        for name in names:
            with (zf.open(name) if zf is not None else open(source / name, "rb")) as f:
                img = np.array(Image.open(f))
            if resolution is not None and img.shape[:2] != (resolution, resolution):
                img = np.array(Image.fromarray(img).resize((resolution, resolution), Image.Resampling.LANCZOS))
            yield img, None
    finally:
        if zf is not None:
            zf.close()


def convert_image_folder(source: str | os.PathLike, dest: str | os.PathLike, resolution: int | None = 64, *,
                         max_images: int | None = None, progress: bool = True) -> Path:
    """A folder or zip of images (AFHQv2's ``afhq_v2.zip``, FFHQ's ``images1024x1024/``) -> EDM zip, resized to
    ``resolution`` with PIL's Lanczos filter as ``dataset_tool.py --resolution`` does (``None`` keeps the size).

    Raises:
        FileNotFoundError: ``source`` does not exist or holds no image.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"image source {str(source)!r} does not exist")
    names = _image_members(source)
    if not names:
        raise FileNotFoundError(f"no image files in {str(source)!r}")
    if max_images is not None:
        names = names[: int(max_images)]
    return write_edm_zip(dest, _read_images(source, names, resolution), total=len(names), progress=progress)


def check_edm_zip(path: str | os.PathLike, resolution: int, label_dim: int) -> dict[str, int]:
    """Check that an EDM zip has ``resolution``-pixel images and ``label_dim`` classes (0: labels not needed).

    Returns:
        ``{"images": N, "resolution": R, "label_dim": L}`` of the zip.

    Raises:
        ValueError: another resolution, no labels for a conditional data set, or another class count; the message
            says what the zip holds and what was expected.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".png"))
        if not names:
            raise ValueError(f"{str(path)!r} holds no PNG images: not an EDM dataset zip")
        with zf.open(names[0]) as f:
            size = Image.open(f).size
        meta = json.loads(zf.read("dataset.json")) if "dataset.json" in zf.namelist() else {"labels": None}
    if size != (resolution, resolution):
        raise ValueError(f"{str(path)!r} holds {size[0]}x{size[1]} images, the data set needs "
                         f"{resolution}x{resolution}; convert it with convert_image_folder(..., resolution="
                         f"{resolution})")
    labels = meta.get("labels")
    found = 0 if not labels else int(max(int(v) for _, v in labels)) + 1
    if label_dim and found != label_dim:
        raise ValueError(f"{str(path)!r} has {found or 'no'} class labels, the data set needs {label_dim}")
    return {"images": len(names), "resolution": resolution, "label_dim": found}


# --------------------------------------------------------------------------------------------------- one click


def default_data_root() -> Path:
    """``$SPECTRAL_DATA_DIR/datasets`` if set, else ``spectral_lib.data.images.default_cache_dir() / "datasets"``."""
    env = os.environ.get("SPECTRAL_DATA_DIR")
    if env:
        return Path(env) / "datasets"
    from spectral_lib.data.images import default_cache_dir

    return default_cache_dir() / "datasets"


def record_digest(root: str | os.PathLike, name: str, url: str, path: str | os.PathLike) -> str:
    """SHA-256 of a download that has no published checksum: the first call records it in
    ``<root>/recorded_digests.json`` (with the URL, size and date); later calls compare with it.

    Raises:
        ValueError: the file's digest differs from the one recorded earlier (the archive changed upstream, or the
            file is corrupt): the message gives both.
    """
    from spectral_lib.data.download import sha256sum

    record_path = Path(root) / _DIGESTS_FILE
    records = json.loads(record_path.read_text()) if record_path.is_file() else {}
    digest = sha256sum(path)
    known = records.get(name)
    if known is not None and known["sha256"] != digest:
        raise ValueError(f"{str(path)!r} has SHA-256 {digest}, but {known['sha256']} was recorded for {name} on "
                         f"{known['date']} ({record_path}); delete the file to download it again, or the record if "
                         "the archive changed upstream")
    if known is None:
        records[name] = {"url": url, "sha256": digest, "bytes": Path(path).stat().st_size,
                         "date": time.strftime("%Y-%m-%d")}
        tmp = record_path.with_name(record_path.name + ".tmp")
        tmp.write_text(json.dumps(records, indent=2) + "\n")
        os.replace(tmp, record_path)
        print(f"{name}: no published checksum; recorded SHA-256 {digest} of {Path(path).name} in {record_path}")
    return digest


def _fetch_archive(spec: ImageDataSpec, root: Path, progress: bool) -> Path:
    from spectral_lib.data.download import download

    assert spec.url is not None and spec.archive is not None
    archive = download(spec.url, root / "downloads" / spec.archive, spec.sha256, progress=progress)
    if spec.sha256 is None:
        record_digest(root, spec.name, spec.url, archive)
    return archive


def prepare_dataset(name: str, root: str | os.PathLike | None = None, *, source: str | os.PathLike | None = None,
                    max_images: int | None = None, progress: bool = True) -> Path:
    """The EDM zip of data set ``name`` (``cifar10``, ``afhqv2``, ``ffhq``), made once, then reused.

    Args:
        name: a key of :data:`IMAGE_DATA`.
        root: where downloads and zips live (default :func:`default_data_root`).
        source: an archive or folder you already have (``cifar-10-python.tar.gz``; ``afhq_v2.zip`` or its unpacked
            folder; FFHQ's ``images1024x1024/``), or an EDM zip at the right resolution, used as it is. Required for
            ``ffhq``; without it ``cifar10`` and ``afhqv2`` are downloaded (and checksummed, see the module
            docstring).
        max_images: convert only the first images (tests, quick looks).

    Returns:
        The path of the EDM zip (``<root>/<zip_name>``, or ``source`` when it already is one).

    Raises:
        ValueError: unknown ``name``; ``ffhq`` without ``source`` (the message says how to make one); a zip of the
            wrong resolution or label count.
    """
    if name not in IMAGE_DATA:
        raise ValueError(f"unknown image data set {name!r}; valid: {', '.join(repr(k) for k in IMAGE_DATA)}")
    spec = IMAGE_DATA[name]
    root = Path(root) if root is not None else default_data_root()
    if source is not None and Path(source).is_file() and _is_edm_zip(Path(source)):
        check_edm_zip(source, spec.resolution, spec.label_dim)
        return Path(source)
    dest = root / spec.zip_name if max_images is None else root / f"{Path(spec.zip_name).stem}-first{max_images}.zip"
    if dest.is_file():
        return dest
    if source is None:
        if spec.url is None:
            raise ValueError(
                f"{name} has no one-click download: {spec.checksum_source}. Download FFHQ with NVIDIA's script "
                "(github.com/NVlabs/ffhq-dataset: python download_ffhq.py --images) and pass source='.../"
                "images1024x1024', or pass an EDM zip made with NVlabs/edm's dataset_tool.py --resolution=64x64"
            )
        source = _fetch_archive(spec, root, progress)
    if name == "cifar10":
        return convert_cifar10(source, dest, max_images=max_images, progress=progress)
    return convert_image_folder(source, dest, spec.resolution, max_images=max_images, progress=progress)


def _is_edm_zip(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return "dataset.json" in zf.namelist()
