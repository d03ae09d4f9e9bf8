"""Stand-in data sets: real loaders read them, the images have a ~1/f^2 spectrum, the audio looks like speech."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from spectral_lib.data.audio import LJSpeechDataset, read_metadata
from spectral_lib.data.images import ImageFolderDataset
from spectral_lib.data.standin import (
    VOWEL_FORMANTS,
    dead_leaves,
    synthesize_speech,
    write_image_standin,
    write_ljspeech_standin,
)

SR = 22050


def radial_slope(images: np.ndarray, f_lo: int = 2, f_hi_frac: float = 0.25) -> float:
    """Least-squares slope of log radially averaged power vs log frequency (cycles per image), NumPy only."""
    x = images.astype(np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    n = x.shape[-1]
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(axis=0)
    f = np.fft.fftfreq(n) * n
    radius = np.rint(np.hypot(f[:, None], f[None, :])).astype(int)
    profile = np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())
    k = np.arange(profile.size)
    sel = (k >= f_lo) & (k <= f_hi_frac * n)
    return float(np.polyfit(np.log(k[sel]), np.log(profile[sel]), 1)[0])


def test_dead_leaves_spectrum_slope_is_about_minus_two():
    imgs = np.stack([dead_leaves(64, np.random.default_rng(i)).mean(axis=-1) for i in range(24)])
    slope = radial_slope(imgs)
    assert -2.5 < slope < -1.5, slope
    # white noise has slope ~0: the test can tell the difference
    assert abs(radial_slope(np.random.default_rng(0).random((8, 64, 64)))) < 0.3


def test_dead_leaves_has_sharp_edges_and_many_colours():
    img = dead_leaves(64, 3)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    steps = np.abs(np.diff(img.astype(int).mean(-1), axis=1))
    assert steps.max() > 60  # occlusion edges: big jumps between neighbours
    assert np.median(steps) < 10  # inside shapes: nearly flat


def test_image_standin_layout_determinism_and_loader(tmp_path):
    folder = write_image_standin(tmp_path / "a", n=5, resolution=32, seed=1)
    assert folder.name == "thumbnails32x32"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == [
        f"00000/0000{i}.png" for i in range(5)]
    again = write_image_standin(tmp_path / "b", n=3, resolution=32, seed=1)
    for i in range(3):  # same seed, same index -> same image, whatever n is
        assert np.array_equal(np.asarray(_open(folder / f"00000/0000{i}.png")),
                              np.asarray(_open(again / f"00000/0000{i}.png")))
    ds = ImageFolderDataset(tmp_path / "a", resolution=16, cache_dir=tmp_path / "cache", progress=False)
    assert len(ds) == 5 and ds[0].shape == (3, 16, 16)
    assert -1.0 <= float(ds[0].min()) and float(ds[0].max()) <= 1.0


def _open(path):
    from PIL import Image

    return Image.open(path)


def test_ljspeech_standin_reads_with_both_splits(tmp_path):
    root = write_ljspeech_standin(tmp_path, n_utterances=10, seconds=1.0, seed=0)
    entries = read_metadata(root / "metadata.csv")
    assert len(entries) == 10 and any('"' in e.transcription for e in entries)  # literal quotes survive
    ids = [e.id for e in entries]
    assert any(i.startswith("LJ001-") for i in ids) and any(i.startswith("LJ002-") for i in ids)
    info = sf.info(str(root / "wavs" / f"{ids[0]}.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    train, ev = LJSpeechDataset(root, "train", crop_frames=16), LJSpeechDataset(root, "eval", crop_frames=16)
    assert len(train) + len(ev) == 10 and len(ev) >= 2
    assert train[0]["mel"].shape == (80, 16)


def test_ljspeech_standin_is_deterministic(tmp_path):
    a = write_ljspeech_standin(tmp_path / "a", n_utterances=3, seconds=0.5, seed=4)
    b = write_ljspeech_standin(tmp_path / "b", n_utterances=3, seconds=0.5, seed=4)
    c = write_ljspeech_standin(tmp_path / "c", n_utterances=3, seconds=0.5, seed=5)
    assert (a / "metadata.csv").read_text() == (b / "metadata.csv").read_text()
    wav = "wavs/LJ001-0001.wav"
    assert np.array_equal(sf.read(a / wav)[0], sf.read(b / wav)[0])
    assert not np.array_equal(sf.read(a / wav)[0], sf.read(c / wav)[0])


def _frames(x, n=1024, hop=256):
    return np.stack([x[i:i + n] for i in range(0, len(x) - n, hop)])


def test_synthetic_speech_pitch_formants_and_pauses():
    x, text = synthesize_speech(3.0, SR, np.random.default_rng(7))
    assert x.shape == (3 * SR,) and x.dtype == np.float32 and 0.5 <= np.abs(x).max() <= 0.8
    assert text.endswith(".") and len(text.split()) >= 3

    frames = _frames(x.astype(np.float64))
    energy = (frames**2).mean(axis=1)
    loud = energy > 0.1 * energy.max()
    assert (energy < 1e-3 * energy.max()).mean() > 0.05  # pauses: near silent frames exist

    # pitch by autocorrelation on loud frames: the strongest peak between lags for 60 and 400 Hz
    lags = np.arange(SR // 400, SR // 60)
    f0 = []
    for fr in frames[loud]:
        fr = fr - fr.mean()
        ac = np.correlate(fr, fr, mode="full")[len(fr) - 1:]
        f0.append(SR / lags[np.argmax(ac[lags])])
    assert 85 < np.median(f0) < 280, np.median(f0)
    assert np.percentile(f0, 90) / np.percentile(f0, 10) > 1.05  # the pitch moves

    # energy sits in the formant region: most of the voiced power lies between 100 Hz and 4 kHz
    spec = (np.abs(np.fft.rfft(frames[loud] * np.hanning(1024), axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(1024, 1 / SR)
    band = spec[(freqs > 100) & (freqs < 4000)].sum() / spec.sum()
    assert band > 0.8, band
    # spectral envelope of voiced frames peaks below 1 kHz (F1 region of the vowels), not at the top
    f1s = [v[0] for v in VOWEL_FORMANTS.values()]
    assert min(f1s) * 0.5 < freqs[np.argmax(spec)] < max(f1s) * 1.3


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="n_utterances"):
        write_ljspeech_standin(tmp_path, n_utterances=1)
    with pytest.raises(ValueError, match="seconds"):
        synthesize_speech(0.0)
    with pytest.raises(ValueError, match="n must be"):
        write_image_standin(tmp_path, n=0)
    with pytest.raises(ValueError, match="r_min"):
        dead_leaves(32, 0, r_min=20.0, r_max=10.0)


# ------------------------------------------------------------------------------------------- never over real data


def _real_ljspeech(root):
    (root / "wavs").mkdir(parents=True)
    sf.write(root / "wavs" / "LJ001-0001.wav", np.full(2205, 0.25, dtype=np.float32), SR, subtype="PCM_16")
    (root / "metadata.csv").write_text("LJ001-0001|Printing, in the only sense|Printing, in the only sense\n")
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_ljspeech_standin_never_writes_over_a_real_dataset(tmp_path):
    before = _real_ljspeech(tmp_path / "LJSpeech-1.1")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=r"LJSpeech-1\.1.*metadata\.csv.*not a stand-in"):
            write_ljspeech_standin(tmp_path / "LJSpeech-1.1", n_utterances=3, seconds=0.3, overwrite=overwrite)
    assert {p: p.read_bytes() for p in (tmp_path / "LJSpeech-1.1").rglob("*") if p.is_file()} == before


def test_ljspeech_standin_is_replaced_only_when_asked(tmp_path):
    root = write_ljspeech_standin(tmp_path / "lj", n_utterances=4, seconds=0.3, seed=0)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_ljspeech_standin(root, n_utterances=3, seconds=0.3, seed=1)
    write_ljspeech_standin(root, n_utterances=3, seconds=0.3, seed=1, overwrite=True)
    assert len(read_metadata(root / "metadata.csv")) == 3
    assert len(list((root / "wavs").glob("*.wav"))) == 3  # the old stand-in's fourth wav is gone too


def test_image_standin_never_writes_over_real_images_and_replaces_its_own(tmp_path):
    real = tmp_path / "ffhq" / "thumbnails16x16" / "00000"
    real.mkdir(parents=True)
    (real / "00000.png").write_bytes(b"a real face")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=r"thumbnails16x16.*not a stand-in"):
            write_image_standin(tmp_path / "ffhq", n=2, resolution=16, overwrite=overwrite)
    assert (real / "00000.png").read_bytes() == b"a real face"

    folder = write_image_standin(tmp_path / "mine", n=5, resolution=16)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_image_standin(tmp_path / "mine", n=2, resolution=16)
    write_image_standin(tmp_path / "mine", n=2, resolution=16, overwrite=True)
    assert sorted(p.name for p in folder.rglob("*.png")) == ["00000.png", "00001.png"]  # no stale images mixed in


def test_standin_out_on_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"'.*f' is a file"):
        write_ljspeech_standin(tmp_path / "f", n_utterances=2, seconds=0.3)
    with pytest.raises(NotADirectoryError, match=r"'.*f' is a file"):
        write_image_standin(tmp_path / "f", n=1, resolution=16)
