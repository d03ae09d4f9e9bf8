"""Image folders and zips: decoding, anti-aliased resize, the .npy cache, batches, and bad data."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import spectral_lib.data.images as images_mod
from spectral_lib.data.images import (
    CorruptImageError,
    ImageFolderDataset,
    build_image_cache,
    decode_image,
    list_image_files,
)


def solid(colour, size=16, mode="RGB"):
    return Image.new(mode, (size, size), colour)


@pytest.fixture
def folder(tmp_path):
    """An FFHQ-like tree with PNG and JPEG, grayscale, RGBA and palette images."""
    root = tmp_path / "thumbnails16x16"
    (root / "00000").mkdir(parents=True)
    (root / "01000").mkdir()
    solid((255, 0, 0)).save(root / "00000" / "00000.png")
    solid(100, mode="L").save(root / "00000" / "00001.png")
    solid((0, 0, 255, 128), mode="RGBA").save(root / "00000" / "00002.png")
    solid((10, 200, 30)).convert("P").save(root / "00000" / "00003.png")
    solid((0, 255, 0)).save(root / "01000" / "01000.JPG", quality=95)
    (root / "00000" / "notes.txt").write_text("not an image")
    return root


def test_listing_sorted_recursive_with_sizes(folder):
    files, sizes = list_image_files(folder)
    assert files == ["00000/00000.png", "00000/00001.png", "00000/00002.png", "00000/00003.png", "01000/01000.JPG"]
    assert all(s > 0 for s in sizes)
    assert list_image_files(folder, max_images=2)[0] == files[:2]


def test_dataset_converts_every_mode_to_rgb_in_range(folder, tmp_path):
    ds = ImageFolderDataset(folder, resolution=8, cache_dir=tmp_path / "cache")
    assert len(ds) == 5 and ds.files[0] == "00000/00000.png"
    x = ds[0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    torch.testing.assert_close(ds[1], torch.full((3, 8, 8), 100 / 127.5 - 1))  # gray replicated
    torch.testing.assert_close(ds[2][:, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))  # alpha dropped
    torch.testing.assert_close(ds[3][:, 0, 0], torch.tensor([10, 200, 30]) / 127.5 - 1, atol=0.1, rtol=0)
    torch.testing.assert_close(ds[4][:, 4, 4], torch.tensor([-1.0, 1.0, -1.0]), atol=0.05, rtol=0)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    img = Image.fromarray(np.full((8, 8), 32896, np.uint16))  # 128 * 257: mid grey in 16 bits
    out = decode_image(_png_bytes(img), 8)
    assert out.shape == (8, 8, 3) and np.all(out == 128)


def test_resize_is_anti_aliased():
    # vertical stripes at the Nyquist frequency of a 64-pixel image: a 2x reduction must average them to grey
    stripes = np.zeros((64, 64), np.uint8)
    stripes[:, ::2] = 255
    out = decode_image(_png_bytes(Image.fromarray(stripes)), 32).astype(float)[:, 3:-3]  # Lanczos rings near borders
    assert abs(out.mean() - 127.5) < 2 and out.std() < 2
    naive = np.asarray(Image.fromarray(stripes).resize((32, 32), Image.Resampling.NEAREST), float)
    assert abs(naive.mean() - 127.5) > 100  # without anti-aliasing the stripes alias to one solid colour


def test_non_square_is_centre_cropped():
    img = np.zeros((10, 30, 3), np.uint8)
    img[:, 10:20] = 255  # the centre 10x10 square is white
    out = decode_image(_png_bytes(Image.fromarray(img)), 10)
    assert out.shape == (10, 10, 3) and out.min() == 255


def _png_bytes(img):
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_cache_is_reused_and_keyed_by_the_file_list(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ds = ImageFolderDataset(folder, resolution=8, cache_dir=cache)
    arr = np.load(ds.cache_path)
    assert arr.dtype == np.uint8 and arr.shape == (5, 8, 8, 3)
    assert isinstance(ds.images, np.memmap)

    def boom(*args, **kwargs):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(images_mod, "decode_image", boom)
    again = ImageFolderDataset(folder, resolution=8, cache_dir=cache)
    assert again.cache_path == ds.cache_path and torch.equal(again[3], ds[3])
    monkeypatch.undo()
    solid((1, 2, 3)).save(folder / "01000" / "01001.png")
    changed = ImageFolderDataset(folder, resolution=8, cache_dir=cache)
    assert changed.cache_path != ds.cache_path and len(changed) == 6
    assert ImageFolderDataset(folder, resolution=4, cache_dir=cache).cache_path not in (ds.cache_path,
                                                                                         changed.cache_path)
    assert not list(cache.glob("*.tmp*"))  # no temporary file left behind


def test_zip_reads_like_the_folder(folder, tmp_path):
    zpath = tmp_path / "ffhq-16x16.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for rel in list_image_files(folder)[0]:
            zf.write(folder / rel, rel)
        zf.writestr("dataset.json", json.dumps({"labels": None}))
    from_zip = ImageFolderDataset(zpath, resolution=8, cache_dir=tmp_path / "c")
    from_dir = ImageFolderDataset(folder, resolution=8, cache_dir=tmp_path / "c")
    assert from_zip.files == from_dir.files
    np.testing.assert_array_equal(np.asarray(from_zip.images), np.asarray(from_dir.images))


def test_sample_flip_and_iteration(folder, tmp_path):
    ds = ImageFolderDataset(folder, resolution=8, cache_dir=tmp_path / "c", hflip=True)
    a = ds.sample(6, torch.Generator().manual_seed(0))
    b = ds.sample(6, torch.Generator().manual_seed(0))
    assert a.shape == (6, 3, 8, 8) and torch.equal(a, b) and ds.shape == (3, 8, 8)
    x = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    ds.images = np.ascontiguousarray(((x[0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).numpy().astype(np.uint8))[None]
    flipped = ds.get_batch([0, 0], torch.tensor([True, False]))
    assert torch.equal(flipped[0], flipped[1].flip(-1))
    ds = ImageFolderDataset(folder, resolution=8, cache_dir=tmp_path / "c")
    batches = list(ds.iter_batches(2))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert torch.equal(torch.cat(batches), torch.stack([ds[i] for i in range(len(ds))]))


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder .*nope.* does not exist"):
        ImageFolderDataset(tmp_path / "nope", cache_dir=tmp_path / "c")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no images found in the folder .*empty.*\.png, \.jpg, \.jpeg"):
        ImageFolderDataset(empty, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="resolution must be a positive int"):
        ImageFolderDataset(empty, resolution=0)


def test_corrupt_image_named_or_skipped(folder, tmp_path):
    bad = folder / "00000" / "00004.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(CorruptImageError, match=r"00000/00004\.png.*skip_corrupt=True"):
        ImageFolderDataset(folder, resolution=8, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*.npy*"))  # neither a cache nor a temporary file is left
    with pytest.warns(UserWarning, match=r"skipping corrupt image .*00004\.png"):
        ds = ImageFolderDataset(folder, resolution=8, cache_dir=tmp_path / "c", skip_corrupt=True)
    assert len(ds) == 5 and "00000/00004.png" not in ds.files and ds.images.shape == (5, 8, 8, 3)
    # the cache remembers the skipped file: without skip_corrupt it is still an error
    with pytest.raises(CorruptImageError, match=r"00000/00004\.png"):
        ImageFolderDataset(folder, resolution=8, cache_dir=tmp_path / "c")


def test_truncated_png_is_corrupt(tmp_path):
    good = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)))
    (tmp_path / "t.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptImageError, match="t.png"):
        build_image_cache(tmp_path, 8, cache_dir=tmp_path / "c", progress=False)


# ------------------------------------------------------------------------------------------------ hostile data


def test_image_replaced_by_one_of_the_same_size_is_decoded_again(tmp_path):
    """Same name, same byte size, even the same modification time (``cp -p``, ``tar x``, ``rsync -t``): the cache
    must not serve the old pixels."""
    root = tmp_path / "imgs"
    root.mkdir()
    solid((255, 0, 0)).save(root / "a.bmp")  # BMP: the byte size depends only on the dimensions
    first = ImageFolderDataset(root, resolution=8, cache_dir=tmp_path / "c", progress=False)
    torch.testing.assert_close(first[0][:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    before = (root / "a.bmp").stat()
    time.sleep(0.05)  # file-system clocks can be coarse (a few ms)
    buf = io.BytesIO()
    solid((0, 0, 255)).save(buf, format="BMP")
    assert len(buf.getvalue()) == before.st_size
    (root / "a.bmp").write_bytes(buf.getvalue())
    os.utime(root / "a.bmp", ns=(before.st_atime_ns, before.st_mtime_ns))
    again = ImageFolderDataset(root, resolution=8, cache_dir=tmp_path / "c", progress=False)
    torch.testing.assert_close(again[0][:, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))


def test_zip_member_replaced_by_one_of_the_same_size_is_decoded_again(tmp_path):
    zpath = tmp_path / "imgs.zip"
    for colour, expected in (((255, 0, 0), [1.0, -1.0, -1.0]), ((0, 0, 255), [-1.0, -1.0, 1.0])):
        buf = io.BytesIO()
        solid(colour).save(buf, format="BMP")
        with zipfile.ZipFile(zpath, "w") as zf:
            zf.writestr(zipfile.ZipInfo("a.bmp", date_time=(2020, 1, 1, 0, 0, 0)), buf.getvalue())
        ds = ImageFolderDataset(zpath, resolution=8, cache_dir=tmp_path / "c", progress=False)
        torch.testing.assert_close(ds[0][:, 0, 0], torch.tensor(expected))


def test_symlinked_subfolders_are_read_once(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    solid((0, 255, 0)).save(elsewhere / "b.png")
    root = tmp_path / "imgs"
    root.mkdir()
    solid((255, 0, 0)).save(root / "a.png")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # a loop must neither hang nor repeat images
    with pytest.warns(UserWarning, match=r"'loop'.*already"):
        files, sizes = list_image_files(root)
    assert files == ["a.png", "linked/b.png"] and all(s > 0 for s in sizes)


def test_broken_symlink_is_a_named_corrupt_image(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    solid((255, 0, 0)).save(root / "a.png")
    (root / "b.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(CorruptImageError, match=r"b\.png"):
        build_image_cache(root, 8, cache_dir=tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match=r"b\.png"):
        path = build_image_cache(root, 8, cache_dir=tmp_path / "c", skip_corrupt=True, progress=False)
    assert np.load(path).shape == (1, 8, 8, 3)


def test_decompression_bomb_is_named_and_skippable(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses images of more than twice this many pixels
    root = tmp_path / "imgs"
    root.mkdir()
    solid((1, 2, 3), size=8).save(root / "small.png")  # 64 pixels
    solid((1, 2, 3), size=16).save(root / "bomb.png")  # 256 pixels
    with pytest.raises(CorruptImageError, match=r"bomb\.png.*decompression bomb.*skip_corrupt=True"):
        build_image_cache(root, 8, cache_dir=tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match=r"skipping corrupt image .*bomb\.png"):
        path = build_image_cache(root, 8, cache_dir=tmp_path / "c", skip_corrupt=True, progress=False)
    assert np.load(path).shape == (1, 8, 8, 3)


def test_zip_member_too_large_to_be_an_image_is_not_inflated(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    zpath = tmp_path / "imgs.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", _png_bytes(solid((1, 2, 3), size=8)))
        zf.writestr("bomb.png", b"\0" * (3 << 20))  # 3 MB that deflate to a few kB

    def no_inflating(*args, **kwargs):
        raise AssertionError("the oversized member was read")

    real_read = zipfile.ZipFile.read
    monkeypatch.setattr(zipfile.ZipFile, "read",
                        lambda self, name, *a: no_inflating() if name == "bomb.png" else real_read(self, name, *a))
    with pytest.raises(CorruptImageError, match=r"bomb\.png.*larger than"):
        build_image_cache(zpath, 8, cache_dir=tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match=r"bomb\.png"):
        path = build_image_cache(zpath, 8, cache_dir=tmp_path / "c", skip_corrupt=True, progress=False)
    assert np.load(path).shape == (1, 8, 8, 3)
