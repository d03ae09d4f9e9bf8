"""Table 1's data sets prepared as NVlabs/edm's dataset_tool.py prepares them, on stand-in archives built here in
the real formats: CIFAR-10's python tarball (pickled batches), AFHQv2's zip of PNG folders, EDM's dataset zip."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from spectral_lib.data import edm_datasets as ed
from spectral_lib.data.download import ChecksumError, sha256sum
from spectral_lib.data.images import ImageFolderDataset, read_labels
from spectral_lib.experiments.sources import split_batch

PER_BATCH = 4  # images per stand-in CIFAR batch (the real ones hold 10 000)


def write_cifar_tarball(path, seed=0):
    """``cifar-10-python.tar.gz`` in the published layout: five ``data_batch_k`` pickles of ``{"data": uint8
    (N, 3072) in channel-major order, "labels": [int]}`` (plus the test batch, which EDM does not use)."""
    rng = np.random.default_rng(seed)
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, PER_BATCH)]
            blob = pickle.dumps({"batch_label": name, "data": data, "labels": labels,
                                 "filenames": [f"{name}_{i}.png" for i in range(PER_BATCH)]}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            batches[name] = (data, labels)
    return batches


def write_afhq_zip(path, size=16):
    """``afhq_v2.zip`` in the published layout: ``train|test/cat|dog|wild/*.png`` RGB squares."""
    rng = np.random.default_rng(1)
    images = {}
    with zipfile.ZipFile(path, "w") as zf:
        for split in ("train", "test"):
            for animal in ("wild", "cat", "dog"):
                for i in (2, 1):
                    name = f"{split}/{animal}/flickr_{animal}_{i:06d}.png"
                    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="png")
                    zf.writestr(name, buf.getvalue())
                    images[name] = img
        zf.writestr("train/readme.txt", "not an image")
    return images


def _png(zf, name):
    with zf.open(name) as f:
        return np.array(Image.open(f))


def test_cifar10_tarball_becomes_edm_zip_with_labels(tmp_path):
    batches = write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    out = ed.convert_cifar10(tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar10-32x32.zip", progress=False)
    with zipfile.ZipFile(out) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        assert names[:2] == ["00000/img00000000.png", "00000/img00000001.png"] and len(names) == 5 * PER_BATCH
        labels = json.loads(zf.read("dataset.json"))["labels"]
        # image 5 is the second image of data_batch_2; its row is channel-major: R plane, G plane, B plane
        data, classes = batches["data_batch_2"]
        img = _png(zf, "00000/img00000005.png")
        assert img.shape == (32, 32, 3)
        assert img[0, 1, 0] == data[1, 1] and img[0, 1, 1] == data[1, 1024 + 1] and img[2, 3, 2] == data[1, 2048 + 67]
        assert labels[5] == ["00000/img00000005.png", classes[1]]
        assert [lab for _, lab in labels] == [c for k in range(1, 6) for c in batches[f"data_batch_{k}"][1]]
    assert ed.edm_image_name(12345) == "00012/img00012345.png"


def test_labels_flow_from_the_zip_into_conditioning(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAL_LIB_CACHE", str(tmp_path / "cache"))
    batches = write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    out = ed.convert_cifar10(tmp_path / "cifar-10-python.tar.gz", tmp_path / "c.zip", progress=False)
    dataset = ImageFolderDataset(out, 32, use_labels=True, progress=False)
    expected = [c for k in range(1, 6) for c in batches[f"data_batch_{k}"][1]]
    assert dataset.labels.tolist() == expected and dataset.label_dim == max(expected) + 1
    batch = dataset.sample(6, torch.Generator().manual_seed(0))
    x0, cond = split_batch(batch)
    assert x0.shape == (6, 3, 32, 32) and cond["class_labels"].shape == (6, dataset.label_dim)
    assert torch.equal(cond["class_labels"].sum(1), torch.ones(6))
    idx = torch.randint(len(dataset), (6,), generator=torch.Generator().manual_seed(0))
    assert cond["class_labels"].argmax(1).tolist() == [expected[i] for i in idx]
    assert torch.equal(dataset[3]["class_labels"].argmax(), torch.tensor(expected[3]))
    plain = ImageFolderDataset(out, 32, progress=False).sample(2, torch.Generator())
    assert isinstance(plain, torch.Tensor) and plain.shape == (2, 3, 32, 32)  # without use_labels: as before
    unlabelled = ed.write_edm_zip(tmp_path / "u.zip", [(np.zeros((8, 8, 3), np.uint8), None)] * 2, progress=False)
    with pytest.raises(ValueError, match="use_labels=True but .*u.zip' has no class labels"):
        ImageFolderDataset(unlabelled, 8, use_labels=True, progress=False)
    assert read_labels(unlabelled, ["00000/img00000000.png"]) is None


def test_afhq_zip_is_resized_with_plain_lanczos_in_edm_order(tmp_path):
    images = write_afhq_zip(tmp_path / "afhq_v2.zip")
    out = ed.convert_image_folder(tmp_path / "afhq_v2.zip", tmp_path / "afhqv2-8x8.zip", 8, progress=False)
    order = sorted(images, key=lambda n: n.split("/"))  # as sorted(Path.rglob): test/ before train/, cat/dog/wild
    assert order[0] == "test/cat/flickr_cat_000001.png"
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("dataset.json")) == {"labels": None}
        assert len([n for n in zf.namelist() if n.endswith(".png")]) == len(images)
        for i in (0, 7, 11):
            got = _png(zf, ed.edm_image_name(i))
            src = Image.fromarray(images[order[i]])
            assert np.array_equal(got, np.array(src.resize((8, 8), Image.Resampling.LANCZOS)))
            other = np.array(src.resize((8, 8), Image.Resampling.LANCZOS, reducing_gap=3.0))
            assert got.shape == other.shape  # (our loader's recipe differs; only the plain one matches NVIDIA's)
    folder = tmp_path / "afhq"
    with zipfile.ZipFile(tmp_path / "afhq_v2.zip") as zf:
        zf.extractall(folder)
    again = ed.convert_image_folder(folder, tmp_path / "from-folder.zip", 8, progress=False)
    with zipfile.ZipFile(out) as a, zipfile.ZipFile(again) as b:
        assert all(a.read(n) == b.read(n) for n in a.namelist())


def test_edm_zip_checks_and_refusals(tmp_path):
    with pytest.raises(ValueError, match=r"image 00000/img00000001.png is 8x8x3, the first image 4x4x3"):
        ed.write_edm_zip(tmp_path / "x.zip", [(np.zeros((4, 4, 3), np.uint8), None),
                                              (np.zeros((8, 8, 3), np.uint8), None)], progress=False)
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.tmp").exists()
    with pytest.raises(ValueError, match="is 6x6 with 3 channels: EDM's datasets need square, power-of-two"):
        ed.write_edm_zip(tmp_path / "y.zip", [(np.zeros((6, 6, 3), np.uint8), None)], progress=False)
    write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    zip32 = ed.convert_cifar10(tmp_path / "cifar-10-python.tar.gz", tmp_path / "c.zip", progress=False)
    assert ed.check_edm_zip(zip32, 32, 10)["images"] == 5 * PER_BATCH
    with pytest.raises(ValueError, match=r"holds 32x32 images, the data set needs 64x64"):
        ed.check_edm_zip(zip32, 64, 0)
    with pytest.raises(ValueError, match="unknown image data set 'mnist'"):
        ed.prepare_dataset("mnist", tmp_path)
    with pytest.raises(ValueError, match="ffhq has no one-click download.*download_ffhq.py"):
        ed.prepare_dataset("ffhq", tmp_path)
    with pytest.raises(ValueError, match="has no member 'cifar-10-batches-py/data_batch_1'"):
        bad = tmp_path / "bad.tar.gz"
        with tarfile.open(bad, "w:gz"):
            pass
        ed.convert_cifar10(bad, tmp_path / "bad.zip", progress=False)


def test_one_click_downloads_check_or_record_digests(tmp_path, monkeypatch):
    """Downloads go through download() (file:// URLs here); a published digest is verified, a missing one is
    recorded on the first download and checked on later ones."""
    write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    spec = ed.IMAGE_DATA["cifar10"]
    url = (tmp_path / "cifar-10-python.tar.gz").as_uri()
    monkeypatch.setitem(ed.IMAGE_DATA, "cifar10", dataclasses.replace(spec, url=url, sha256="0" * 64))
    with pytest.raises(ChecksumError):
        ed.prepare_dataset("cifar10", tmp_path / "root", progress=False)
    digest = sha256sum(tmp_path / "cifar-10-python.tar.gz")
    monkeypatch.setitem(ed.IMAGE_DATA, "cifar10", dataclasses.replace(spec, url=url, sha256=digest))
    made = ed.prepare_dataset("cifar10", tmp_path / "root", progress=False)
    assert made == tmp_path / "root" / "cifar10-32x32.zip" and ed.check_edm_zip(made, 32, 10)["label_dim"] == 10
    assert ed.prepare_dataset("cifar10", tmp_path / "root") == made  # made once

    write_afhq_zip(tmp_path / "afhq_v2.zip")
    afhq = dataclasses.replace(ed.IMAGE_DATA["afhqv2"], url=(tmp_path / "afhq_v2.zip").as_uri(), resolution=8)
    monkeypatch.setitem(ed.IMAGE_DATA, "afhqv2", afhq)
    out = ed.prepare_dataset("afhqv2", tmp_path / "root", progress=False)
    records = json.loads((tmp_path / "root" / "recorded_digests.json").read_text())
    assert records["afhqv2"]["sha256"] == sha256sum(tmp_path / "afhq_v2.zip") and ed.check_edm_zip(out, 8, 0)
    (tmp_path / "root" / "downloads" / "afhq_v2.zip").write_bytes(b"changed upstream")
    with pytest.raises(ValueError, match="was recorded for afhqv2"):
        ed.record_digest(tmp_path / "root", "afhqv2", afhq.url, tmp_path / "root" / "downloads" / "afhq_v2.zip")
    # an EDM zip the user names is used as it is (FFHQ's path), after its resolution is checked
    assert ed.prepare_dataset("afhqv2", source=out) == out
    assert ed.IMAGE_DATA["afhqv2"].sha256 is None and "none published" in ed.IMAGE_DATA["afhqv2"].checksum_source
