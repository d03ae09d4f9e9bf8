"""Audio metrics of the paper's Table 2: MR-STFT, PESQ, NDB, FAD, UTMOS. The paper gives none of their settings;
ours are written here, in each docstring.

* **MR-STFT** (lower is better): the multi-resolution STFT loss used as a distance, exactly
  :func:`spectral_lib.spectral.stft.mrstft_loss` (spectral convergence + log-magnitude L1, averaged over its
  resolutions), on paired audio (vocoded vs original).
* **PESQ** (higher, -0.5..4.5): ITU-T P.862.2 wide-band through the ``pesq`` package, at 16 kHz (both signals
  resampled with librosa), on pairs.
* **NDB** (lower, 0..1; Richardson & Weiss 2018): k-means bins on real features, a two-proportion z-test per bin,
  the share of bins whose proportions differ at ``alpha = 0.05``.
* **FAD** (lower; Kilgour et al. 2019): the Fréchet distance between embeddings of real and generated audio. The
  standard embedding is VGGish (a hook through the ``frechet_audio_distance`` package where its weights load);
  offline we use a VGGish-like log-mel front end without the network (64 bands, 25 ms windows, 10 ms hop at 16 kHz)
  and name the result ``"FD (local log-mel frames ...)"``, not FAD.
* **UTMOS** (higher, 1..5): a learned MOS predictor; only through an existing package with downloadable weights
  (``utmos``, or SpeechMOS via ``torch.hub`` when asked); otherwise a clear error says why it is missing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .fid import FrechetResult, frechet_distance_from_features

__all__ = [
    "mrstft_distance",
    "pesq_wb",
    "NDBResult",
    "ndb",
    "logmel_frames",
    "fad",
    "vggish_embeddings",
    "utmos",
]

AudioLike = torch.Tensor | np.ndarray | Sequence[np.ndarray | torch.Tensor]


def _batch(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """``(T,)``, ``(B, T)`` or ``(B, 1, T)`` -> float ``(B, 1, T)``."""
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        raise ValueError(f"{name} must hold floating audio samples in [-1, 1], got dtype {t.dtype}")
    if t.dim() == 1:
        t = t.view(1, 1, -1)
    elif t.dim() == 2:
        t = t.unsqueeze(1)
    elif t.dim() != 3 or t.shape[1] != 1:
        raise ValueError(f"{name} must be (T,), (B, T) or (B, 1, T) mono audio, got shape {tuple(t.shape)}")
    return t


def _clips(x: AudioLike, name: str) -> list[np.ndarray]:
    """A list of 1-D float64 clips from a batch tensor/array or a sequence of clips (lengths may differ)."""
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return [c[0].detach().cpu().double().numpy() for c in _batch(x, name)]
    clips = [np.asarray(torch.as_tensor(c).detach().cpu().double().numpy()).reshape(-1) for c in x]
    if not clips:
        raise ValueError(f"{name} is empty")
    return clips


# --------------------------------------------------------------------------------------------------- paired


def mrstft_distance(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, *, reduction: str = "mean",
                    **loss_kwargs) -> float | torch.Tensor:
    """MR-STFT distance between paired audio, the same definition as the training loss
    :func:`spectral_lib.spectral.stft.mrstft_loss` (and its default resolutions unless ``loss_kwargs`` say
    otherwise).

    Args:
        pred, target: ``(T,)``, ``(B, T)`` or ``(B, 1, T)``, same shape.
        reduction: ``"mean"`` gives a float; ``"none"`` the ``(B,)`` tensor.
    """
    from ..spectral.stft import mrstft_loss  # lazy: the spectral layer is a sibling module

    if reduction not in ("mean", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; valid: 'mean', 'none'")
    p, t = _batch(pred, "pred"), _batch(target, "target")
    with torch.no_grad():
        per_sample = mrstft_loss(p, t, reduction="none", **loss_kwargs)
    return float(per_sample.mean()) if reduction == "mean" else per_sample


def _resample(x: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    if sr == target_sr:
        return x
    import librosa

    return librosa.resample(x, orig_sr=sr, target_sr=target_sr)


def pesq_wb(pred: AudioLike, target: AudioLike, sample_rate: int, *,
            reduction: str = "mean") -> float | np.ndarray:
    """Wide-band PESQ (ITU-T P.862.2) of ``pred`` (degraded) against ``target`` (reference), per pair.

    Both are resampled to 16 kHz with ``librosa.resample`` (soxr, high quality), the rate P.862.2 is defined at.

    Args:
        pred, target: paired clips: ``(T,)``, ``(B, T)``, ``(B, 1, T)`` or equal-length sequences of 1-D clips.
        sample_rate: their sample rate (22 050 for LJSpeech).
        reduction: ``"mean"`` gives a float, ``"none"`` an array of one score per pair.

    Raises:
        ImportError: the ``pesq`` package is not installed.
        ValueError: a pair holds no detectable speech (PESQ's ``NoUtterancesError``), or lengths differ.
    """
    try:
        import pesq as pesq_pkg
    except ImportError as err:
        raise ImportError("PESQ needs the `pesq` package (`pip install pesq`, a small C extension; the project's "
                          "[audio-metrics] extra installs it)") from err
    if reduction not in ("mean", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; valid: 'mean', 'none'")
    preds, targets = _clips(pred, "pred"), _clips(target, "target")
    if len(preds) != len(targets):
        raise ValueError(f"pred and target must hold the same number of clips, got {len(preds)} and {len(targets)}")
    scores = []
    for i, (p, t) in enumerate(zip(preds, targets)):
        if p.shape != t.shape:
            raise ValueError(f"pair {i}: pred and target lengths differ ({p.size} vs {t.size} samples)")
        if not np.any(t) or not np.any(p):
            raise ValueError(f"pair {i}: the {'reference' if not np.any(t) else 'degraded'} clip is silent; PESQ "
                             f"detected no speech")
        p16, t16 = _resample(p, sample_rate, 16000), _resample(t, sample_rate, 16000)
        try:
            scores.append(pesq_pkg.pesq(16000, t16, p16, "wb"))
        except pesq_pkg.NoUtterancesError as err:
            raise ValueError(f"pair {i}: PESQ detected no speech in the reference or the degraded clip") from err
    out = np.asarray(scores, dtype=np.float64)
    return float(out.mean()) if reduction == "mean" else out


# --------------------------------------------------------------------------------------------------- NDB


@dataclass(frozen=True)
class NDBResult:
    """Number of statistically different bins (Richardson & Weiss 2018).

    Attributes:
        fraction: ``n_different / k`` (the number reported as NDB/K; the paper's "NDB 0.63" is this fraction).
        n_different: bins whose proportions differ at ``alpha``.
        k: number of bins; ``alpha``: the test's significance level.
        real_proportions, sample_proportions: ``(k,)`` share of each set in each bin.
        z, p_values: ``(k,)`` the two-proportion z statistics and two-sided p-values.
    """

    fraction: float
    n_different: int
    k: int
    alpha: float
    real_proportions: np.ndarray
    sample_proportions: np.ndarray
    z: np.ndarray
    p_values: np.ndarray

    def __float__(self) -> float:
        return float(self.fraction)


def ndb(
    real_features: np.ndarray | torch.Tensor,
    sample_features: np.ndarray | torch.Tensor,
    *,
    k: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    standardize: bool = False,
) -> NDBResult:
    """NDB/K: how many of ``k`` k-means bins of the real features hold a significantly different share of samples.

    1. ``k`` bins: k-means (``scipy.cluster.vq.kmeans2``, k-means++ start, seeded) on the real features ``(N, D)``;
       each real and generated vector goes to its nearest centroid.
    2. Per bin, the two-proportion z-test with the pooled proportion
       ``z = (p_r - p_s) / sqrt(p (1 - p) (1/N_r + 1/N_s))``, ``p = (n_r + n_s) / (N_r + N_s)``, two-sided
       ``p-value = 2 (1 - Phi(|z|))``; a bin differs when ``p-value < alpha``.
    3. Report ``n_different / k``.

    Defaults ``k = 100``, ``alpha = 0.05`` and no whitening follow Richardson & Weiss's reference code;
    ``standardize`` scales each feature by the real set's mean and standard deviation first. Same distribution ->
    about ``alpha`` (false positives); disjoint distributions -> 1.
    """
    from scipy.cluster.vq import kmeans2, vq
    from scipy.stats import norm

    real = np.asarray(torch.as_tensor(real_features).detach().cpu().double().numpy())
    gen = np.asarray(torch.as_tensor(sample_features).detach().cpu().double().numpy())
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"real_features and sample_features must be (N, D) with the same D, got {real.shape} and "
                         f"{gen.shape}")
    if not isinstance(k, int) or not 2 <= k <= real.shape[0]:
        raise ValueError(f"k must be an int between 2 and the number of real features ({real.shape[0]}), got {k!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if standardize:
        mean, std = real.mean(axis=0), real.std(axis=0) + 1e-12
        real, gen = (real - mean) / std, (gen - mean) / std
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # kmeans2: "One of the clusters is empty" (handled below)
        centroids, _ = kmeans2(real, k, minit="++", rng=np.random.default_rng(seed))
    real_labels, _ = vq(real, centroids)
    gen_labels, _ = vq(gen, centroids)
    n_r, n_s = real.shape[0], gen.shape[0]
    c_r = np.bincount(real_labels, minlength=k).astype(np.float64)
    c_s = np.bincount(gen_labels, minlength=k).astype(np.float64)
    p_r, p_s = c_r / n_r, c_s / n_s
    pooled = (c_r + c_s) / (n_r + n_s)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_r + 1 / n_s))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p_r - p_s) / se, 0.0)  # a bin empty in both sets does not differ
    p_values = 2 * norm.sf(np.abs(z))
    different = p_values < alpha
    return NDBResult(float(different.mean()), int(different.sum()), k, float(alpha), p_r, p_s, z, p_values)


# --------------------------------------------------------------------------------------------------- FAD


def logmel_frames(audio: AudioLike, sample_rate: int, *, n_mels: int = 64) -> np.ndarray:
    """Frame-level log-mel features ``(frames, n_mels)`` of one or many clips, VGGish's front end without the
    network: resample to 16 kHz, 25 ms Hann windows (400 samples, FFT 512) every 10 ms, ``n_mels`` HTK mel bands
    between 125 and 7500 Hz on the magnitude spectrum, ``log(mel + 0.01)``. Frames of all clips are stacked."""
    import librosa

    out = []
    for clip in _clips(audio, "audio"):
        x = _resample(clip, sample_rate, 16000)
        if x.size < 400:
            x = np.pad(x, (0, 400 - x.size))
        mel = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, hop_length=160, win_length=400,
                                             window="hann", center=False, power=1.0, n_mels=n_mels, fmin=125.0,
                                             fmax=7500.0, htk=True, norm=None)
        out.append(np.log(mel + 0.01).T)
    return np.concatenate(out, axis=0)


_NO_VGGISH = (
    "VGGish embeddings need the `frechet_audio_distance` package (`pip install frechet_audio_distance`), which "
    "fetches VGGish (harritaylor/torchvggish) through torch.hub on first use, e.g. on Colab. Offline, use "
    "fad(..., embedding='local'), which is a Fréchet distance on log-mel frames and is not FAD."
)


def vggish_embeddings(audio: AudioLike, sample_rate: int) -> np.ndarray:
    """VGGish embeddings ``(frames, 128)`` (one per 0.96 s, before PCA, as in FAD) of one or many clips.

    Raises:
        ImportError: ``frechet_audio_distance`` is not installed. RuntimeError: VGGish cannot be loaded (offline).
    """
    try:
        from frechet_audio_distance import FrechetAudioDistance
    except ImportError as err:
        raise ImportError(_NO_VGGISH) from err
    try:
        try:  # newer releases take the rate in the constructor
            model = FrechetAudioDistance(model_name="vggish", sample_rate=16000, use_pca=False, use_activation=False,
                                         verbose=False)
        except TypeError:
            model = FrechetAudioDistance(model_name="vggish", use_pca=False, use_activation=False, verbose=False)
    except Exception as err:
        raise RuntimeError(f"VGGish could not be loaded ({type(err).__name__}: {err}). " + _NO_VGGISH) from err
    clips = [_resample(c, sample_rate, 16000).astype(np.float32) for c in _clips(audio, "audio")]
    return np.asarray(model.get_embeddings(clips, sr=16000), dtype=np.float64)


def fad(samples: AudioLike, reference: AudioLike, sample_rate: int, *, embedding: str = "local") -> FrechetResult:
    """Fréchet distance between the embeddings of generated and real audio.

    ``embedding="vggish"`` is FAD proper (:func:`vggish_embeddings`); ``"local"`` uses :func:`logmel_frames` and is
    labelled ``"FD (local log-mel frames, 64 bands at 16 kHz; not VGGish FAD)"``. Frames of all clips are pooled
    on each side, as FAD pools VGGish frames.
    """
    if embedding == "vggish":
        fa, fb = vggish_embeddings(samples, sample_rate), vggish_embeddings(reference, sample_rate)
        name = "FAD (VGGish, frechet_audio_distance)"
    elif embedding == "local":
        fa, fb = logmel_frames(samples, sample_rate), logmel_frames(reference, sample_rate)
        name = "FD (local log-mel frames, 64 bands at 16 kHz; not VGGish FAD)"
    else:
        raise ValueError(f"unknown embedding {embedding!r}; valid: 'local', 'vggish'")
    return FrechetResult(frechet_distance_from_features(fa, fb), name, fa.shape[0], fb.shape[0], fa.shape[1])


# --------------------------------------------------------------------------------------------------- UTMOS


_NO_UTMOS = (
    "UTMOS is a learned MOS predictor (Saeki et al. 2022) whose weights (a wav2vec 2.0 model, ~400 MB) must be "
    "downloaded: install the `utmos` package (`pip install utmos`, weights from the Hugging Face hub on first use), "
    "or call utmos(..., backend='speechmos') to load SpeechMOS's utmos22_strong through torch.hub (needs network, "
    "e.g. on Colab). Neither is available offline, so offline runs report no UTMOS."
)


def utmos(audio: AudioLike, sample_rate: int, *, backend: str = "auto", reduction: str = "mean") -> float | np.ndarray:
    """Predicted MOS (1..5) of each clip with UTMOS.

    ``backend="auto"``/``"utmos"``: the ``utmos`` package (``utmos.Score().calculate_wav(wav, sample_rate)``);
    ``"speechmos"``: ``torch.hub.load("tarepan/SpeechMOS:v1.2.0", "utmos22_strong")`` (downloads code and weights).

    Raises:
        ImportError: the backend is not installed or cannot load (the message says what is missing and why).
    """
    if backend not in ("auto", "utmos", "speechmos"):
        raise ValueError(f"unknown backend {backend!r}; valid: 'auto', 'utmos', 'speechmos'")
    if reduction not in ("mean", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; valid: 'mean', 'none'")
    clips = _clips(audio, "audio")
    scores: list[float] = []
    if backend in ("auto", "utmos"):
        try:
            import utmos as utmos_pkg
        except ImportError as err:
            raise ImportError(_NO_UTMOS) from err
        try:
            model = utmos_pkg.Score()
        except Exception as err:
            raise ImportError(f"the utmos package is installed but its model could not be loaded "
                              f"({type(err).__name__}: {err}). " + _NO_UTMOS) from err
        for c in clips:
            scores.append(float(model.calculate_wav(torch.from_numpy(c).float().unsqueeze(0), sample_rate)))
    else:
        try:
            predictor = torch.hub.load("tarepan/SpeechMOS:v1.2.0", "utmos22_strong", trust_repo=True)
        except Exception as err:
            raise ImportError(f"SpeechMOS could not be loaded through torch.hub ({type(err).__name__}: {err}). "
                              + _NO_UTMOS) from err
        with torch.no_grad():
            for c in clips:
                scores.append(float(predictor(torch.from_numpy(c).float().unsqueeze(0), sample_rate)))
    out = np.asarray(scores)
    return float(out.mean()) if reduction == "mean" else out
