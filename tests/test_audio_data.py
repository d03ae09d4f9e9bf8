"""LJSpeech loader and DiffWave log-mel features, against an independent NumPy computation and on bad data."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from spectral_lib.data.audio import (
    DIFFWAVE_MEL,
    AudioFileError,
    LJSpeechDataset,
    MelConfig,
    load_wav,
    log_mel_spectrogram,
    mel_filterbank,
    read_metadata,
)

SR = 22050


def htk_filterbank(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangles on the HTK mel scale, written from the definition (torchaudio's melscale_fbanks formula)."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    f_pts = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, c, hi = f_pts[m], f_pts[m + 1], f_pts[m + 2]
        up = (freqs - lo) / (c - lo)
        down = (hi - freqs) / (hi - c)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb


def numpy_diffwave_mel(x: np.ndarray, cfg: MelConfig = DIFFWAVE_MEL) -> np.ndarray:
    """DiffWave's formula with NumPy only: reflect pad, frame, periodic Hann, rfft, |.|/||w||, mel, dB, [0, 1]."""
    n_fft, hop = cfg.n_fft, cfg.hop_length
    padded = np.pad(x.astype(np.float64), (n_fft // 2, n_fft // 2), mode="reflect")
    n_frames = 1 + (padded.size - n_fft) // hop
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[i * hop: i * hop + n_fft] * w for i in range(n_frames)], axis=1)
    mag = np.abs(np.fft.rfft(frames, axis=0)) / np.sqrt((w**2).sum())
    m = htk_filterbank(cfg.sample_rate, n_fft, cfg.n_mels, cfg.f_min, cfg.fmax) @ mag
    return np.clip((20 * np.log10(np.maximum(m, 1e-5)) - 20 + 100) / 100, 0, 1)


def test_filterbank_matches_definition():
    fb = mel_filterbank(DIFFWAVE_MEL, dtype=torch.float64).numpy()
    assert fb.shape == (80, 513)
    np.testing.assert_allclose(fb, htk_filterbank(SR, 1024, 80, 20.0, SR / 2), atol=1e-10)


def test_log_mel_matches_numpy_reference():
    rng = np.random.default_rng(0)
    t = np.arange(6000) / SR
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    got64 = log_mel_spectrogram(torch.from_numpy(x)).numpy()
    ref = numpy_diffwave_mel(x)
    assert got64.shape == ref.shape == (80, 1 + 6000 // 256)
    np.testing.assert_allclose(got64, ref, atol=1e-9)
    got32 = log_mel_spectrogram(torch.from_numpy(x).float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), ref, atol=2e-4)
    assert 0.0 <= ref.min() and ref.max() <= 1.0


def test_log_mel_batches_and_silence():
    x = torch.zeros(2, 3, 2048)
    mel = log_mel_spectrogram(x)
    assert mel.shape == (2, 3, 80, 9)
    assert torch.all(mel == 0.0)  # 20*log10(1e-5) - 20 = -120 dB -> clipped to 0
    with pytest.raises(ValueError, match="too short"):
        log_mel_spectrogram(torch.zeros(100))
    with pytest.raises(ValueError, match="floating"):
        log_mel_spectrogram(torch.zeros(4096, dtype=torch.int16))


# ------------------------------------------------------------------------------------------- a tiny LJSpeech


def write_lj(root, ids, seconds=0.6, sr=SR, lines=None, channels=1):
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for uid in ids:
        x = 0.3 * rng.standard_normal((int(seconds * sr), channels)).astype(np.float32)
        sf.write(root / "wavs" / f"{uid}.wav", x, sr, subtype="PCM_16")
    text = lines if lines is not None else [f'{uid}|Say "{uid}" aloud.|Say "{uid}" aloud.' for uid in ids]
    (root / "metadata.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    return root


IDS = ["LJ001-0001", "LJ002-0001", "LJ003-0001", "LJ003-0002", "LJ010-0005"]


def test_metadata_quotes_are_literal_and_two_field_lines(tmp_path):
    p = tmp_path / "metadata.csv"
    p.write_text('LJ001-0001|He said "yes|He said "yes\n\nLJ001-0002|Only two fields\n', encoding="utf-8")
    rows = read_metadata(p)
    assert [r.id for r in rows] == ["LJ001-0001", "LJ001-0002"]
    assert rows[0].transcription == 'He said "yes' and rows[0].normalized == 'He said "yes'
    assert rows[1].normalized == "Only two fields"


@pytest.mark.parametrize("content,match", [
    ("LJ001-0001|a|a\nLJ001-0002|a|b|c|d\n", r"line 2: expected 3 '\|'-separated fields"),
    ("LJ001-0001\n", "line 1: expected 3"),
    ("|text|text\n", "line 1: empty id"),
    ("LJ001-0001|a|a\nLJ001-0001|b|b\n", "line 2: id 'LJ001-0001' repeats line 1"),
])
def test_metadata_malformed_lines_name_the_line(tmp_path, content, match):
    p = tmp_path / "metadata.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        read_metadata(p)


def test_dataset_splits_and_items(tmp_path):
    root = write_lj(tmp_path / "LJSpeech-1.1", IDS)
    train = LJSpeechDataset(root, "train", crop_frames=8)
    ev = LJSpeechDataset(root, "eval", crop_frames=8)
    assert train.ids == ["LJ003-0001", "LJ003-0002", "LJ010-0005"]
    assert ev.ids == ["LJ001-0001", "LJ002-0001"]
    assert len(LJSpeechDataset(root, "all")) == 5
    item = train[0]
    assert item["audio"].shape == (1, 8 * 256) and item["mel"].shape == (80, 8) and item["id"] == "LJ003-0001"
    # the parent folder of an extracted archive works too
    assert LJSpeechDataset(tmp_path, "eval").ids == ev.ids


def test_crop_pairs_audio_with_its_own_mel_frames(tmp_path):
    root = write_lj(tmp_path, IDS, seconds=1.0)
    ds = LJSpeechDataset(root, "train", crop_frames=10)
    audio = ds.load_audio(0)
    full = log_mel_spectrogram(torch.from_numpy(audio))
    for start in (0, 7, full.shape[-1] - 10):
        wav, mel = ds.pair(audio, start, 10)
        torch.testing.assert_close(mel, full[:, start:start + 10], atol=1e-5, rtol=0)
        expected = np.pad(audio, (0, 10 * 256))[start * 256:(start + 10) * 256]  # zeros past the end
        np.testing.assert_array_equal(wav[0].numpy(), expected)


def test_sample_is_deterministic_and_whole_utterances(tmp_path):
    root = write_lj(tmp_path, IDS, seconds=0.5)
    ds = LJSpeechDataset(root, "all", crop_frames=4, preload=True)
    a = ds.sample(3, torch.Generator().manual_seed(5))
    b = ds.sample(3, torch.Generator().manual_seed(5))
    assert a["audio"].shape == (3, 1, 1024) and a["mel"].shape == (3, 80, 4) and ds.shape == (1, 1024)
    assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["mel"], b["mel"])
    whole = LJSpeechDataset(root, "eval", crop_frames=None)[0]
    n = int(0.5 * SR) // 256
    assert whole["audio"].shape == (1, n * 256) and whole["mel"].shape == (80, n)


def test_short_utterance_is_zero_padded_to_the_crop(tmp_path):
    root = write_lj(tmp_path, IDS, seconds=0.05)  # 1102 samples < 62 * 256
    item = LJSpeechDataset(root, "train")[0]
    assert item["audio"].shape == (1, 62 * 256) and item["mel"].shape == (80, 62)
    assert torch.all(item["audio"][0, 1102:] == 0)


def test_resampling_and_stereo_downmix(tmp_path):
    t = np.arange(16000) / 16000
    tone = 0.4 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "a.wav", np.stack([tone, 0.5 * tone], axis=1), 16000, subtype="PCM_16")
    y = load_wav(tmp_path / "a.wav", SR)
    assert y.dtype == np.float32 and y.shape == (SR,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)  # 1 s of audio: bin k is k Hz
    assert np.abs(y).max() == pytest.approx(0.75 * 0.4, rel=0.02)  # mean of the two channels
    assert load_wav(tmp_path / "a.wav", None).shape == (16000,)


def test_missing_folder_metadata_wavs(tmp_path):
    with pytest.raises(FileNotFoundError, match="LJSpeech folder .*nowhere.* does not exist"):
        LJSpeechDataset(tmp_path / "nowhere")
    (tmp_path / "wavs").mkdir()
    with pytest.raises(FileNotFoundError, match="no metadata.csv in"):
        LJSpeechDataset(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "metadata.csv").write_text("LJ003-0001|a|a\n")
    with pytest.raises(FileNotFoundError, match="no wavs/ folder"):
        LJSpeechDataset(other)


def test_ids_without_wav_are_named(tmp_path):
    ids = [f"LJ003-{k:04d}" for k in range(1, 9)]
    root = write_lj(tmp_path, ids[:1], lines=[f"{u}|t|t" for u in ids])
    with pytest.raises(FileNotFoundError, match=r"7 id\(s\) .* LJ003-0002, LJ003-0003, LJ003-0004, LJ003-0005, "
                                                r"LJ003-0006, \.\.\."):
        LJSpeechDataset(root)
    with pytest.warns(UserWarning, match="7 id"):
        ds = LJSpeechDataset(root, skip_missing=True)
    assert ds.ids == ["LJ003-0001"]


def test_unreadable_and_empty_wavs_are_named(tmp_path):
    root = write_lj(tmp_path, IDS)
    (root / "wavs" / "LJ003-0001.wav").write_bytes(b"not a wav file at all")
    sf.write(root / "wavs" / "LJ003-0002.wav", np.zeros((0, 1)), SR, subtype="PCM_16")
    ds = LJSpeechDataset(root, "train")
    with pytest.raises(AudioFileError, match="could not read audio file .*LJ003-0001.wav"):
        ds[0]
    with pytest.raises(AudioFileError, match="LJ003-0002.wav.* is empty"):
        ds[1]


def test_bad_arguments(tmp_path):
    root = write_lj(tmp_path, IDS)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        LJSpeechDataset(root, "test")
    with pytest.raises(ValueError, match="crop_frames"):
        LJSpeechDataset(root, crop_frames=0)
    with pytest.raises(ValueError, match="split 'eval' .* is empty"):
        LJSpeechDataset(root, "eval", eval_prefixes=("LJ050",))


# ------------------------------------------------------------------------------------------- hostile data


@pytest.mark.parametrize(("samples", "match"), [
    (np.full(4000, np.nan, dtype=np.float32), r"x\.wav.* 4000 NaN or infinite"),
    (np.r_[np.zeros(100), np.inf, np.zeros(100)].astype(np.float32), r"x\.wav.* 1 NaN or infinite"),
    (np.r_[np.zeros(100), 3.5, -0.5].astype(np.float32), r"x\.wav.*outside \[-1, 1\] \(peak 3\.5\)"),
])
def test_non_finite_or_out_of_range_float_wavs_are_refused_with_the_file_name(tmp_path, samples, match):
    sf.write(tmp_path / "x.wav", samples, SR, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=match):
        load_wav(tmp_path / "x.wav")


def test_nan_wav_in_a_dataset_is_named_before_training(tmp_path):
    root = write_lj(tmp_path, IDS)
    sf.write(root / "wavs" / "LJ003-0001.wav", np.full(6000, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    ds = LJSpeechDataset(root, "train")
    with pytest.raises(AudioFileError, match=r"LJ003-0001\.wav"):
        ds.sample(4, torch.Generator().manual_seed(0))


def test_implausible_sample_rate_is_refused_before_resampling(tmp_path):
    """A header claiming 1 Hz would make resampling to 22 050 Hz allocate 22 050 samples per stored one."""
    sf.write(tmp_path / "slow.wav", np.zeros(1000, dtype=np.float32), 1, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=r"slow\.wav.*1 Hz"):
        load_wav(tmp_path / "slow.wav")


def test_metadata_in_latin1_names_the_file_and_a_bom_is_not_part_of_the_first_id(tmp_path):
    p = tmp_path / "metadata.csv"
    p.write_bytes("LJ001-0001|Caf\u00e9 cr\u00e8me|Cafe creme\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"metadata\.csv.*line 1.*not UTF-8"):
        read_metadata(p)
    p.write_bytes("\ufeffLJ001-0001|a|a\nLJ001-0002|b|b\n".encode("utf-8"))
    assert [e.id for e in read_metadata(p)] == ["LJ001-0001", "LJ001-0002"]


def test_metadata_with_a_huge_field_names_the_file(tmp_path):
    p = tmp_path / "metadata.csv"
    p.write_text("LJ001-0001|" + "a" * 200_000 + "|a\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"metadata\.csv.*line 1"):
        read_metadata(p)


def test_latin1_metadata_error_gives_the_line_of_the_first_bad_byte(tmp_path):
    p = tmp_path / "metadata.csv"
    good = "".join(f"LJ001-{i:04d}|plain text|plain text\n" for i in range(1, 600))  # more than one read block
    p.write_bytes(good.encode() + "LJ002-0001|na\u00efve|naive\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"metadata\.csv, line 600: not UTF-8"):
        read_metadata(p)
