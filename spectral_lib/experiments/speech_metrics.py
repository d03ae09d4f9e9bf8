"""How the LJSpeech vocoder experiment is evaluated: the settings, the metrics of the paper's Table 2, the tables.

Evaluation settings (the paper gives none) live in the config's ``sample_kwargs`` (see :class:`VocoderEval`) so that
they are written into ``config.json``; :func:`describe_metrics` states each metric's exact configuration.
:mod:`spectral_lib.experiments.speech` re-exports everything here and registers :func:`evaluate_vocoder`.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from spectral_lib._checks import check_choice, check_positive
from spectral_lib.data.audio import DIFFWAVE_MEL
from spectral_lib.diffusion.ddim import DIFFWAVE_FAST_BETAS
from spectral_lib.experiments.profiles import ExperimentConfig
from spectral_lib.experiments.speech_recipe import EXPERIMENT

__all__ = [
    "SAMPLE_RATE",
    "PAPER_TABLE2",
    "VocoderEval",
    "vocoder_eval",
    "ndb_bins",
    "evaluate_vocoder",
    "describe_metrics",
    "results_table",
    "mean_std",
]

SAMPLE_RATE = DIFFWAVE_MEL.sample_rate  # 22 050 Hz, LJSpeech's rate
HOP = DIFFWAVE_MEL.hop_length  # 256 samples per mel frame

PAPER_TABLE2: dict[str, dict[str, tuple[float, str]]] = {
    "baseline": {"fad": (1.994, "Baseline"), "utmos": (3.941, "Baseline"), "pesq": (3.440, "Baseline"),
                 "mrstft": (1.217, "Baseline"), "ndb": (0.63, "Baseline")},
    "best": {"fad": (1.462, "AMP, λ=1e-4"), "utmos": (3.988, "AMP+PHASE, λ=1e-5"),
             "pesq": (3.516, "AMP+PHASE, λ=1e-4"), "mrstft": (1.1708, "HAAR, λ=1e-4"),
             "ndb": (0.59, "AMP+PHASE λ=1e-5; HAAR λ=1e-4")},
}
"""The numbers of the paper's Table 2 we have (mean over 5 seeds): the baseline and the best value per metric with
the variant that reached it. Also reported: BIOR13 is sensitive to lambda (FAD 2.649 at 1e-5)."""


# ------------------------------------------------------------------------------------------------ evaluation settings


@dataclass(frozen=True)
class VocoderEval:
    """How the ``ljspeech`` experiment vocodes and evaluates (read from the config's ``sample_kwargs``).

    Attributes:
        inference_betas: the fast inference schedule (DiffWave's 6 steps, as in the paper).
        clip_frames: mel frames per held-out clip (``clip_frames * 256`` samples); we vocode the first
            ``clip_frames`` frames of the first ``n_samples`` held-out utterances that are at least that long (our
            choice: equal lengths keep ``samples.pt`` one tensor; the paper vocodes whole utterances).
        fad_embedding: ``"local"`` (a Fréchet distance on log-mel frames, always computed, labelled ``fd_logmel``),
            ``"vggish"`` (FAD proper, also reported as ``fad_vggish``; an error when VGGish cannot load) or
            ``"auto"`` (VGGish when it loads, a warning otherwise).
        utmos_backend: ``None`` (no UTMOS) or a backend of :func:`spectral_lib.metrics.audio.utmos`
            (``"utmos"``, ``"speechmos"``); a backend that cannot load gives a warning and no UTMOS.
        hf_cutoff_hz: the high-frequency band starts here (4 kHz, our choice: above the first three formants, where
            fricatives and the "crispness" of a voice live).
        ndb_max_k: at most this many NDB bins (100, Richardson & Weiss's default); see :func:`ndb_bins`.
    """

    inference_betas: tuple[float, ...] = DIFFWAVE_FAST_BETAS
    clip_frames: int = 256
    fad_embedding: str = "local"
    utmos_backend: str | None = None
    hf_cutoff_hz: float = 4000.0
    ndb_max_k: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "inference_betas", tuple(float(b) for b in self.inference_betas))
        if not self.inference_betas or not all(0.0 < b < 1.0 for b in self.inference_betas):
            raise ValueError(f"inference_betas must be a non-empty list of betas in (0, 1), got {self.inference_betas}")
        if isinstance(self.clip_frames, bool) or not isinstance(self.clip_frames, int) or self.clip_frames < 4:
            raise ValueError(f"clip_frames must be an integer >= 4 (mel frames), got {self.clip_frames!r}")
        check_choice(self.fad_embedding, "fad_embedding", ("local", "vggish", "auto"))
        check_choice(self.utmos_backend, "utmos_backend", (None, "utmos", "speechmos", "auto"))
        check_positive(self.hf_cutoff_hz, "hf_cutoff_hz")
        if self.hf_cutoff_hz >= SAMPLE_RATE / 2:
            raise ValueError(f"hf_cutoff_hz must be below the Nyquist frequency {SAMPLE_RATE / 2} Hz, "
                             f"got {self.hf_cutoff_hz}")
        if isinstance(self.ndb_max_k, bool) or not isinstance(self.ndb_max_k, int) or self.ndb_max_k < 2:
            raise ValueError(f"ndb_max_k must be an integer >= 2, got {self.ndb_max_k!r}")

    @property
    def clip_samples(self) -> int:
        return self.clip_frames * HOP

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["inference_betas"] = list(self.inference_betas)
        return out


def vocoder_eval(config: ExperimentConfig) -> VocoderEval:
    """The :class:`VocoderEval` of a config (its ``sample_kwargs``). Unknown keys raise ``ValueError``."""
    valid = [f.name for f in fields(VocoderEval)]
    unknown = sorted(set(config.sample_kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown sample_kwargs {unknown} for the {EXPERIMENT} experiment; valid: {', '.join(valid)}")
    return VocoderEval(**config.sample_kwargs)


# ------------------------------------------------------------------------------------------------ metrics


def ndb_bins(n_real: int, max_k: int = 100, per_bin: int = 20) -> int:
    """Number of NDB bins for ``n_real`` real feature vectors: ``min(max_k, n_real // per_bin)``, at least 2 (our
    choice: about ``per_bin`` real vectors per bin, so that a bin's proportion is not pure noise)."""
    return int(max(2, min(int(max_k), int(n_real) // int(per_bin))))


def _pesq(samples: torch.Tensor, data: torch.Tensor) -> float:
    from spectral_lib.metrics.audio import pesq_wb

    try:
        return float(pesq_wb(samples, data, SAMPLE_RATE))
    except (ValueError, ImportError) as err:  # a silent clip, or no pesq package
        warnings.warn(f"PESQ not computed: {err}", stacklevel=3)
        return float("nan")


def evaluate_vocoder(samples: torch.Tensor, data: torch.Tensor, config: ExperimentConfig) -> dict[str, float]:
    """The experiment's metrics (registered in :data:`~spectral_lib.experiments.run.EVALUATORS`) of vocoded clips
    ``samples`` against the originals ``data`` (paired, ``(N, 1, T)`` at 22 050 Hz). See :func:`describe_metrics`.

    Keys: ``mrstft`` (lower is better), ``pesq`` (higher), ``fd_logmel`` (lower; offline stand-in for FAD),
    ``fad_vggish`` (when VGGish loads), ``ndb`` (fraction, lower) and ``ndb_k``, ``utmos`` / ``utmos_data`` (when a
    backend loads), ``hf_energy`` / ``hf_energy_data`` / ``hf_energy_ratio`` (share of power above
    ``hf_cutoff_hz``), ``spectral_distance`` (decades), ``n_clips``, ``clip_seconds``.
    """
    from spectral_lib.metrics.audio import fad, logmel_frames, mrstft_distance, ndb, utmos
    from spectral_lib.metrics.spectrum import high_frequency_energy, spectral_distance

    if samples.shape != data.shape:
        raise ValueError(f"samples and data must be paired clips of one shape, got {tuple(samples.shape)} and "
                         f"{tuple(data.shape)}")
    settings = vocoder_eval(config)
    samples, data = samples.float(), data.float()
    metrics: dict[str, float] = {
        "mrstft": float(mrstft_distance(samples, data)),
        "pesq": _pesq(samples, data),
        "fd_logmel": float(fad(samples, data, SAMPLE_RATE, embedding="local").value),
    }
    if settings.fad_embedding in ("vggish", "auto"):
        try:
            metrics["fad_vggish"] = float(fad(samples, data, SAMPLE_RATE, embedding="vggish").value)
        except (ImportError, RuntimeError) as err:
            if settings.fad_embedding == "vggish":
                raise
            warnings.warn(f"FAD (VGGish) not computed, only the local log-mel FD: {err}", stacklevel=2)
    real, fake = logmel_frames(data, SAMPLE_RATE), logmel_frames(samples, SAMPLE_RATE)
    k = ndb_bins(len(real), settings.ndb_max_k)
    metrics["ndb"] = float(ndb(real, fake, k=k, seed=config.seed).fraction)
    metrics["ndb_k"] = float(k)
    if settings.utmos_backend is not None:
        try:
            metrics["utmos"] = float(utmos(samples, SAMPLE_RATE, backend=settings.utmos_backend))
            metrics["utmos_data"] = float(utmos(data, SAMPLE_RATE, backend=settings.utmos_backend))
        except ImportError as err:
            warnings.warn(f"UTMOS not computed: {err}", stacklevel=2)
    cutoff = settings.hf_cutoff_hz / (SAMPLE_RATE / 2)
    hf, hf_data = high_frequency_energy(samples, cutoff), high_frequency_energy(data, cutoff)
    metrics.update(hf_energy=hf, hf_energy_data=hf_data, hf_energy_ratio=hf / hf_data if hf_data > 0 else float("nan"),
                   spectral_distance=float(spectral_distance(samples, data)), n_clips=float(len(samples)),
                   clip_seconds=samples.shape[-1] / SAMPLE_RATE)
    return metrics


def describe_metrics(config: ExperimentConfig) -> str:
    """Markdown: the exact configuration of every metric of a run with ``config`` (the paper gives none)."""
    from spectral_lib.spectral.stft import mrstft_loss

    s = vocoder_eval(config)
    defaults = {k: v.default for k, v in inspect.signature(mrstft_loss).parameters.items()
                if v.default is not inspect.Parameter.empty}
    seconds = s.clip_samples / SAMPLE_RATE
    lines = [
        f"- **Clips**: the first {config.n_samples} held-out utterances (ids starting with LJ001/LJ002) that are at "
        f"least {seconds:.2f} s long, cut to their first {s.clip_frames} mel frames ({s.clip_samples} samples, "
        f"{seconds:.2f} s at {SAMPLE_RATE} Hz), vocoded from their ground-truth log-mel spectrograms (DiffWave's "
        f"features: n_fft 1024, hop 256, 80 HTK mels from 20 Hz to 11 025 Hz) with the {len(s.inference_betas)}-step "
        f"schedule {list(s.inference_betas)}, one noise draw per clip (seed {config.seed}).",
        f"- **MR-STFT** (lower is better): spectral convergence + mean |log magnitude difference| (natural log), "
        f"averaged over {len(defaults['fft_sizes'])} resolutions with FFT sizes {list(defaults['fft_sizes'])}, hops "
        f"{list(defaults['hop_sizes'])} and Hann windows of {list(defaults['win_lengths'])} samples "
        f"(`spectral_lib.spectral.mrstft_loss`, the training loss of the same name); mean over clips.",
        "- **PESQ** (higher, -0.5 to 4.5): ITU-T P.862.2 wide-band, both clips resampled to 16 kHz with librosa "
        "(soxr), the `pesq` package; mean over clips.",
        "- **FAD**: the Fréchet distance between Gaussian fits of frame embeddings of all vocoded and all original "
        "clips. Offline we report **FD (log-mel, local)**: VGGish's front end without the network (16 kHz, 25 ms "
        "Hann windows every 10 ms, FFT 512, 64 HTK mel bands 125 to 7500 Hz, log(mel + 0.01)). It is *not* FAD and "
        "its scale differs from the paper's. "
        + ("With network access, FAD proper uses VGGish embeddings (`frechet_audio_distance`, 128-d, before PCA)."
           if s.fad_embedding != "local" else "This profile does not try VGGish."),
        f"- **NDB** (lower, a fraction): k-means (k-means++, seed {config.seed}) with k = min({s.ndb_max_k}, "
        "N/20) bins on the original clips' log-mel frames (the FD features), each frame of both sets assigned to its "
        "nearest centroid, a two-sided two-proportion z-test per bin at alpha = 0.05, the share of bins that differ. "
        "Frames of one clip are correlated, so the test is optimistic; compare NDB between runs, not with 0.05.",
        ("- **UTMOS** (higher, 1 to 5): not computed at this profile: it needs a learned model (wav2vec 2.0, about "
         "400 MB) that must be downloaded." if s.utmos_backend is None else
         f"- **UTMOS** (higher, 1 to 5): the `{s.utmos_backend}` backend (SpeechMOS `utmos22_strong` through "
         "torch.hub, or the `utmos` package), on the clips at their 22 050 Hz rate; mean over clips. Where it "
         "cannot load, the run reports no UTMOS and warns."),
        f"- **High-frequency energy**: the share of the clips' power above {s.hf_cutoff_hz / 1000:g} kHz (unitary "
        "rFFT of each whole clip, mean over clips, DC excluded), for the vocoded clips and the originals; their "
        "ratio is 1 when the vocoder keeps as much high-frequency energy as the recording.",
    ]
    return "\n".join(lines)


_TABLE_METRICS = (  # key, label, better, our key(s)
    ("fad", "FAD ↓", ("fad_vggish", "fd_logmel")),
    ("utmos", "UTMOS ↑", ("utmos",)),
    ("pesq", "PESQ ↑", ("pesq",)),
    ("mrstft", "MR-STFT ↓", ("mrstft",)),
    ("ndb", "NDB ↓", ("ndb",)),
)


def results_table(results: Mapping[str, Mapping[str, float]], *, with_paper: bool = True,
                  digits: int = 3) -> str:
    """A markdown table in the form of the paper's Table 2, rows = metrics, with the paper's baseline and best values
    beside ours.

    Args:
        results: column label (e.g. ``"Baseline"``, ``"AMP (λ=1)"``) -> a run's metrics (:func:`evaluate_vocoder`).
            Values can be floats or ``(mean, std)`` pairs (several seeds).
        with_paper: add the columns "paper: baseline" and "paper: best (variant, λ)".

    The FAD row shows FAD (VGGish) when a run has it, otherwise our local log-mel FD, marked "FD (local)".
    Missing metrics (UTMOS offline) show "n/a". A high-frequency energy row (ours only) closes the table.
    """
    def fmt(value: Any) -> str:
        if isinstance(value, (tuple, list)):
            mean, std = value
            return f"{mean:.{digits}f} ± {std:.{digits}f}"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return f"{value:.{digits}f}"

    header = ["metric"] + (["paper: baseline", "paper: best (variant, λ)"] if with_paper else []) + list(results)
    rows = []
    for key, label, ours in _TABLE_METRICS:
        row = [label]
        if with_paper:
            base, best = PAPER_TABLE2["baseline"][key][0], PAPER_TABLE2["best"][key]
            row += [f"{base:g}", f"{best[0]:g} ({best[1]})"]
        for metrics in results.values():
            found = next((k for k in ours if k in metrics), None)
            cell = "n/a" if found is None else fmt(metrics[found])
            if found == "fd_logmel" and cell != "n/a":
                cell += " (FD local)"
            row.append(cell)
        rows.append(row)
    hf = ["HF energy ratio (ours)"] + (["–", "–"] if with_paper else [])
    hf += [fmt(m.get("hf_energy_ratio")) for m in results.values()]
    rows.append(hf)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def mean_std(runs: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """``{metric: (mean, std)}`` over several runs (seeds) of the keys they all have (std with ``ddof = 1``; 0 for
    one run)."""
    keys = set(runs[0]).intersection(*runs[1:]) if runs else set()
    out = {}
    for k in sorted(keys):
        values = np.asarray([float(r[k]) for r in runs])
        out[k] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
    return out
