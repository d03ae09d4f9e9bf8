"""LJSpeech-1.1 as distributed, and log-mel features exactly as DiffWave computes them.

On disk (the official archive extracts to ``LJSpeech-1.1/``):

* ``metadata.csv``: one line per utterance, ``id|transcription|normalized transcription``, UTF-8, no header,
  ``|``-separated; quotes are literal characters (read with ``csv.QUOTE_NONE``, as torchaudio does);
* ``wavs/<id>.wav``: 22 050 Hz, mono, 16-bit PCM.

The paper holds out chapters ``LJ001`` and ``LJ002`` for evaluation (``split="eval"``) and trains on the rest
(``split="train"``). Audio is read with ``soundfile`` as floats in ``[-1, 1]``; a file at another rate is resampled
with ``librosa.resample`` (soxr, high quality), and a file with several channels is down-mixed to mono by
averaging them (our choice; LJSpeech itself is mono).

Log-mel features follow DiffWave's ``preprocess.py`` (lmnt-com/diffwave, the code behind the pretrained LJSpeech
checkpoint), which uses ``torchaudio.transforms.MelSpectrogram`` with ``n_fft = 1024``, ``win_length = 4 * hop =
1024`` (periodic Hann window), ``hop_length = 256``, ``n_mels = 80``, ``f_min = 20`` Hz, ``f_max = sr / 2``,
``power = 1``, ``normalized = True``, centred frames with reflect padding, HTK mel scale without area
normalisation:

    M(f, t)   = sum_k fb[f, k] * |STFT(x)[k, t]| / sqrt(sum_n w[n]^2)          (magnitude, window-normalised)
    dB(f, t)  = 20 * log10(max(M(f, t), 1e-5)) - 20
    mel(f, t) = clip((dB(f, t) + 100) / 100, 0, 1)

Note: ``f_max`` is ``sr / 2 = 11 025`` Hz in DiffWave's code, not the 8 000 Hz of some other vocoders' recipes; it is
a field of :class:`MelConfig`. Training crops are 62 mel frames and the ``62 * 256`` samples they start at, as in
DiffWave's collator (``crop_mel_frames = 62``).
"""

from __future__ import annotations

import csv
import functools
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "MelConfig",
    "DIFFWAVE_MEL",
    "EVAL_PREFIXES",
    "AudioFileError",
    "MetadataEntry",
    "mel_filterbank",
    "log_mel_spectrogram",
    "read_metadata",
    "load_wav",
    "LJSpeechDataset",
]

#: Chapters held out for evaluation in the paper (as in DiffWave's LJSpeech experiments).
EVAL_PREFIXES: tuple[str, ...] = ("LJ001", "LJ002")


@dataclass(frozen=True)
class MelConfig:
    """Log-mel settings; the defaults are DiffWave's (``params.py`` + ``preprocess.py``) for LJSpeech."""

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024  # DiffWave: hop_samples * 4
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float | None = None  # None -> sample_rate / 2, as DiffWave's preprocess.py
    normalized: bool = True  # torchaudio's normalized=True: divide the STFT by the window's L2 norm
    crop_frames: int = 62  # DiffWave's crop_mel_frames

    @property
    def fmax(self) -> float:
        return self.sample_rate / 2.0 if self.f_max is None else float(self.f_max)


DIFFWAVE_MEL = MelConfig()


class AudioFileError(ValueError):
    """An audio file that cannot be read or holds no samples; the message names the file."""


@dataclass(frozen=True)
class MetadataEntry:
    """One line of ``metadata.csv``."""

    id: str
    transcription: str
    normalized: str


# --------------------------------------------------------------------------------------------------- features


@functools.lru_cache(maxsize=8)
def _filterbank_np(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=True,
                               norm=None, dtype=np.float64)


def mel_filterbank(config: MelConfig = DIFFWAVE_MEL, *, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Triangular HTK-mel filterbank without area normalisation, ``(n_mels, n_fft // 2 + 1)`` (torchaudio's
    ``melscale_fbanks(..., norm=None, mel_scale="htk")``, built here with ``librosa.filters.mel(htk=True,
    norm=None)``, which is the same matrix)."""
    fb = _filterbank_np(config.sample_rate, config.n_fft, config.n_mels, float(config.f_min), config.fmax)
    return torch.as_tensor(fb, dtype=dtype, device=device)


def log_mel_spectrogram(audio: torch.Tensor, config: MelConfig = DIFFWAVE_MEL, *, center: bool = True) -> torch.Tensor:
    """DiffWave's normalised log-mel spectrogram (see the module docstring for the formula).

    Args:
        audio: ``(..., T)`` float waveform in ``[-1, 1]``.
        config: the mel settings.
        center: centre frames with ``n_fft // 2`` reflect padding (DiffWave); ``False`` frames the input as is.

    Returns:
        ``(..., n_mels, frames)`` in ``[0, 1]``, float32 (float64 stays float64); ``frames = 1 + T // hop`` when
        centred, ``1 + (T - n_fft) // hop`` otherwise.
    """
    if not isinstance(audio, torch.Tensor) or not audio.is_floating_point():
        raise ValueError(f"audio must be a floating torch.Tensor (..., T), got {type(audio).__name__}"
                         + (f" of dtype {audio.dtype}" if isinstance(audio, torch.Tensor) else ""))
    if audio.dim() == 0:
        raise ValueError("audio must have a time axis (..., T), got a 0-D tensor")
    t = audio.shape[-1]
    min_len = config.n_fft // 2 + 1 if center else config.n_fft
    if t < min_len:
        raise ValueError(f"audio is too short for n_fft={config.n_fft} (center={center}): need at least {min_len} "
                         f"samples, got {t}")
    dtype = torch.float64 if audio.dtype == torch.float64 else torch.float32
    x = audio.to(dtype).reshape(-1, t)
    window = torch.hann_window(config.win_length, periodic=True, dtype=dtype, device=x.device)
    spec = torch.stft(x, config.n_fft, hop_length=config.hop_length, win_length=config.win_length, window=window,
                      center=center, pad_mode="reflect", normalized=False, onesided=True, return_complex=True).abs()
    if config.normalized:
        spec = spec / window.pow(2).sum().sqrt()
    mel = mel_filterbank(config, device=x.device, dtype=dtype) @ spec
    db = 20.0 * torch.log10(mel.clamp_min(1e-5)) - 20.0
    out = ((db + 100.0) / 100.0).clamp(0.0, 1.0)
    return out.reshape(*audio.shape[:-1], config.n_mels, out.shape[-1])


# --------------------------------------------------------------------------------------------------- files


def read_metadata(path: str | os.PathLike) -> list[MetadataEntry]:
    """Parse an LJSpeech ``metadata.csv``: ``id|transcription|normalized`` per line (a line of two fields uses the
    transcription as the normalized text), no header, literal quotes, blank lines ignored.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line (wrong number of fields, empty id, repeated id, a field beyond the csv module's
            size limit) or text that is not UTF-8, with the file and line number. A leading byte-order mark is
            dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata file {str(path)!r} does not exist")
    entries: list[MetadataEntry] = []
    seen: dict[str, int] = {}
    # utf-8-sig: a byte-order mark (some editors add one) is not part of the first id
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE)
        try:
            for row in reader:
                entry = _metadata_entry(row, path, reader.line_num, seen)
                if entry is not None:
                    entries.append(entry)
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{path}, line {_first_non_utf8_line(path)}: not UTF-8 ({err.reason}); LJSpeech's metadata.csv is "
                "UTF-8: convert the file, e.g. iconv -f latin1 -t utf-8"
            ) from err
        except csv.Error as err:
            raise ValueError(f"{path}, line {reader.line_num}: {err}") from err
    return entries


def _first_non_utf8_line(path: Path) -> int:
    """The number of the first line that is not valid UTF-8 (the text reader decodes in blocks, so its own line
    count at the error is not it)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _metadata_entry(row: list[str], path: Path, line: int, seen: dict[str, int]) -> MetadataEntry | None:
    """One parsed line of ``metadata.csv`` (``None`` for a blank line); ``seen`` maps ids to their line."""
    if not row or (len(row) == 1 and not row[0].strip()):
        return None
    if len(row) not in (2, 3):
        raise ValueError(f"{path}, line {line}: expected 3 '|'-separated fields (id|transcription|normalized),"
                         f" got {len(row)}: {'|'.join(row)[:80]!r}")
    uid = row[0].strip()
    if not uid:
        raise ValueError(f"{path}, line {line}: empty id")
    if uid in seen:
        raise ValueError(f"{path}, line {line}: id {uid!r} repeats line {seen[uid]}")
    seen[uid] = line
    return MetadataEntry(uid, row[1], row[2] if len(row) == 3 else row[1])


def load_wav(path: str | os.PathLike, sample_rate: int | None = 22050) -> np.ndarray:
    """Read a sound file as ``float32`` ``(T,)`` in ``[-1, 1]`` at ``sample_rate``.

    Several channels are averaged to mono; a different file rate is resampled with ``librosa.resample``
    (``sample_rate=None`` keeps the file's rate).

    Raises:
        AudioFileError: the file cannot be read, holds no samples, holds NaN or infinite samples or samples outside
            ``[-1, 1]`` (possible in float files), or has a rate so low (below ``sample_rate / 8``) that resampling
            it would blow it up; the message names the file.
    """
    import soundfile as sf

    path = Path(path)
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
        raise AudioFileError(f"could not read audio file {str(path)!r}: {err}") from err
    _check_samples(data, sr, sample_rate, path)
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sample_rate is not None and sr != sample_rate:
        import librosa

        audio = librosa.resample(audio, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def _check_samples(data: np.ndarray, sr: int, sample_rate: int | None, path: Path) -> None:
    """Refuse what would reach training as garbage: no samples, NaN/inf, values beyond full scale, absurd rates."""
    if data.shape[0] == 0:
        raise AudioFileError(f"audio file {str(path)!r} is empty (0 samples)")
    finite = np.isfinite(data)
    if not finite.all():
        raise AudioFileError(f"audio file {str(path)!r} holds {int((~finite).sum())} NaN or infinite sample(s)")
    peak = float(np.abs(data).max())
    if peak > 1.0:
        raise AudioFileError(f"audio file {str(path)!r} holds samples outside [-1, 1] (peak {peak:.4g}): a float "
                             "file beyond full scale; normalise it to [-1, 1]")
    if sample_rate is not None and sr * 8 < sample_rate:
        raise AudioFileError(f"audio file {str(path)!r} says its rate is {sr} Hz: resampling it to {sample_rate} Hz "
                             f"would make it {sample_rate / sr:.0f} times longer; is the header right?")


def _find_root(root: Path) -> Path:
    if not root.exists():
        raise FileNotFoundError(f"LJSpeech folder {str(root)!r} does not exist")
    if not (root / "metadata.csv").is_file() and (root / "LJSpeech-1.1" / "metadata.csv").is_file():
        return root / "LJSpeech-1.1"  # the folder the archive was extracted into
    if not (root / "metadata.csv").is_file():
        raise FileNotFoundError(
            f"no metadata.csv in {str(root)!r}; expected the LJSpeech-1.1 layout: metadata.csv "
            f"(id|transcription|normalized) and wavs/<id>.wav"
        )
    if not (root / "wavs").is_dir():
        raise FileNotFoundError(f"no wavs/ folder in {str(root)!r}; expected wavs/<id>.wav beside metadata.csv")
    return root


class LJSpeechDataset(torch.utils.data.Dataset):
    """LJSpeech-1.1 (or a folder in its layout) as paired ``(audio, mel)`` crops for a mel-conditioned vocoder.

    Args:
        root: the folder holding ``metadata.csv`` and ``wavs/`` (or the folder the archive was extracted into,
            holding ``LJSpeech-1.1/``).
        split: ``"train"`` (ids not starting with ``eval_prefixes``), ``"eval"`` (ids starting with them) or
            ``"all"``.
        mel_config: feature settings (DiffWave's by default); its ``sample_rate`` is the rate audio is brought to.
        crop_frames: mel frames per item (62 as DiffWave), or ``None`` for whole utterances.
        eval_prefixes: held-out chapters, ``("LJ001", "LJ002")`` as in the paper.
        skip_missing: drop ids that have no wav with a warning instead of raising.
        preload: read every wav once into memory (for stand-ins and small subsets).
        max_utterances: keep only the first ``max_utterances`` of the split.

    Items are dicts ``{"audio": (1, crop_frames * hop), "mel": (n_mels, crop_frames), "id": str}`` with a random
    crop start (global torch RNG, seeded per DataLoader worker); :meth:`sample` draws a whole batch from an
    explicit generator for the trainer. With ``crop_frames=None`` an item is the whole utterance trimmed to
    ``T // hop`` frames and ``hop * (T // hop)`` samples.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        mel_config: MelConfig = DIFFWAVE_MEL,
        crop_frames: int | None = DIFFWAVE_MEL.crop_frames,
        eval_prefixes: Sequence[str] = EVAL_PREFIXES,
        skip_missing: bool = False,
        preload: bool = False,
        max_utterances: int | None = None,
    ) -> None:
        if split not in ("train", "eval", "all"):
            raise ValueError(f"unknown split {split!r}; valid: 'train', 'eval', 'all'")
        if crop_frames is not None and (not isinstance(crop_frames, int) or crop_frames <= 0):
            raise ValueError(f"crop_frames must be a positive int or None, got {crop_frames!r}")
        self.root = _find_root(Path(root))
        self.split = split
        self.config = mel_config
        self.crop_frames = crop_frames
        entries = read_metadata(self.root / "metadata.csv")
        wav_dir = self.root / "wavs"
        present = {e.name for e in os.scandir(wav_dir) if e.name.endswith(".wav")}
        missing = [e.id for e in entries if f"{e.id}.wav" not in present]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            metadata = str(self.root / "metadata.csv")
            msg = f"{len(missing)} id(s) in {metadata!r} have no wav in {str(wav_dir)!r}: {shown}"
            if not skip_missing:
                raise FileNotFoundError(msg + " (pass skip_missing=True to leave them out)")
            warnings.warn(msg + "; leaving them out", stacklevel=2)
            entries = [e for e in entries if f"{e.id}.wav" in present]
        prefixes = tuple(eval_prefixes)
        if split == "eval":
            entries = [e for e in entries if e.id.startswith(prefixes)]
        elif split == "train":
            entries = [e for e in entries if not e.id.startswith(prefixes)]
        if not entries:
            raise ValueError(f"split {split!r} of {str(self.root)!r} is empty (eval ids start with {prefixes})")
        if max_utterances is not None:
            entries = entries[: int(max_utterances)]
        self.entries: list[MetadataEntry] = entries
        self._cache: list[np.ndarray] | None = None
        if preload:
            self._cache = [self.load_audio(i) for i in range(len(entries))]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of one training crop's audio, ``(1, crop_frames * hop)`` (the signal x0 of a batch)."""
        return (1, (self.crop_frames or self.config.crop_frames) * self.config.hop_length)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    def wav_path(self, index: int) -> Path:
        return self.root / "wavs" / f"{self.entries[index].id}.wav"

    def load_audio(self, index: int) -> np.ndarray:
        """The whole utterance ``index`` as ``float32 (T,)`` at the config's sample rate."""
        if self._cache is not None:
            return self._cache[index]
        return load_wav(self.wav_path(index), self.config.sample_rate)

    def pair(self, audio: np.ndarray, start_frame: int, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio ``(1, n_frames * hop)`` starting at sample ``start_frame * hop`` and its mel ``(n_mels, n_frames)``.

        The mel frames are exactly frames ``start_frame .. start_frame + n_frames - 1`` of
        :func:`log_mel_spectrogram` of the whole utterance (computed from the reflect-padded utterance around the
        crop, so no edge effect at the crop's borders). Frames past the utterance's last one see zeros, and the
        audio is zero-padded at the end to ``n_frames * hop`` samples (DiffWave pads its crops the same way).
        """
        hop, half = self.config.hop_length, self.config.n_fft // 2
        a, end = start_frame * hop, (start_frame + n_frames) * hop
        padded = np.pad(audio, (half, half), mode="reflect")
        seg_end = a + (n_frames - 1) * hop + self.config.n_fft
        if padded.shape[0] < seg_end:
            padded = np.pad(padded, (0, seg_end - padded.shape[0]))
        segment = padded[a:seg_end]
        mel = log_mel_spectrogram(torch.from_numpy(np.ascontiguousarray(segment)), self.config, center=False)
        wav = audio[a:end]
        if wav.shape[0] < end - a:
            wav = np.pad(wav, (0, end - a - wav.shape[0]))
        return torch.from_numpy(np.ascontiguousarray(wav)).unsqueeze(0), mel

    def _max_start(self, audio: np.ndarray, n_frames: int) -> int:
        return max(0, 1 + audio.shape[0] // self.config.hop_length - n_frames)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        audio = self.load_audio(index)
        if self.crop_frames is None:
            n_frames = audio.shape[0] // self.config.hop_length
            if n_frames == 0:
                raise AudioFileError(f"audio file {str(self.wav_path(index))!r} is shorter than one hop "
                                     f"({self.config.hop_length} samples)")
            wav, mel = self.pair(audio, 0, n_frames)
        else:
            start = int(torch.randint(self._max_start(audio, self.crop_frames) + 1, ()))
            wav, mel = self.pair(audio, start, self.crop_frames)
        return {"audio": wav, "mel": mel, "id": self.entries[index].id}

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """A training batch ``{"audio": (B, 1, crop * hop), "mel": (B, n_mels, crop)}``: utterances drawn
        uniformly with replacement and crop starts uniformly over the utterance, all from ``generator``."""
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        n_frames = self.crop_frames or self.config.crop_frames
        wavs, mels = [], []
        for i in torch.randint(len(self), (batch_size,), generator=generator).tolist():
            audio = self.load_audio(i)
            start = int(torch.randint(self._max_start(audio, n_frames) + 1, (), generator=generator))
            wav, mel = self.pair(audio, start, n_frames)
            wavs.append(wav)
            mels.append(mel)
        out = {"audio": torch.stack(wavs), "mel": torch.stack(mels)}
        return out if device is None else {k: v.to(device) for k, v in out.items()}

    def duration_seconds(self) -> float:
        """Total duration of the split from the files' headers (no decoding)."""
        import soundfile as sf

        return math.fsum(sf.info(str(self.wav_path(i))).duration for i in range(len(self)))
