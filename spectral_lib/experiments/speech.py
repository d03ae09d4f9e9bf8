"""The LJSpeech vocoder experiment (the paper's Table 2): DiffWave trained with and without a spectral term.

Importing this module registers the experiment ``"ljspeech"``: its profiles (``smoke``, ``cpu``, ``gpu``, ``full``),
its sampler (:data:`~spectral_lib.experiments.run.SAMPLERS`: vocode held-out utterances from their ground-truth
mels), its reference (those utterances) and its evaluator (MR-STFT, PESQ, FAD, NDB, UTMOS when available and
high-frequency energy). ``run_experiment("ljspeech", profile=..., regularizer=...)`` then trains, vocodes and
evaluates like every other experiment, and its run folders resume after an interruption.

The paper's setting (Chandran et al. 2026, Sec. 5.2, Table 2), which ``gpu`` and ``full`` follow: fine-tune the
public pretrained DiffWave vocoder (30 layers, 64 channels, dilation cycle 10; 22 050 Hz, 80 mels, n_fft 1024, hop
256, crops of 62 frames; :mod:`spectral_lib.models.diffwave_pretrained`) on LJSpeech-1.1 with batch 16 and learning
rate 2e-4, the spectral term on the one-step ``x0_hat`` (the paper's Eq. 5) at the training step's ``t``, DiffWave's
T = 50 linear betas up to 0.05, the 6-step inference schedule ``[1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5]``, chapters
LJ001/LJ002 held out, 5 seeds. ``full`` is the paper's 150 000 steps; ``gpu`` about an hour on a Colab GPU. Both
train with the recipe of LMNT's trainer, which the paper fine-tunes with "the standard DiffWave DDPM eps-loss"
(:data:`LMNT_RECIPE`): the **L1** distance of the noise (``formulation_kwargs={"loss": "l1"}``), float32, Adam at a
constant 2e-4 without warm-up, no gradient clipping and no EMA. :func:`recipe_table` sets it beside ours.

Offline (``smoke``, ``cpu``) there is neither LJSpeech nor the checkpoint: a small DiffWave vocoder is trained from
scratch on the source-filter stand-in (:func:`spectral_lib.data.standin.write_ljspeech_standin`, written on demand
when no ``data_dir`` is given, see :func:`spectral_lib.experiments.sources.resolve_data_dir`), with settings of our
own for training from scratch in minutes (squared error, lr 2e-3 with a warm-up, clipping, EMA; see the profile).

How lambda relates to the paper's
---------------------------------
Our spectral losses are **means** (over frequency bins with a unitary FFT; over the coefficients of each wavelet
band, summed over bands), so that one lambda works for any clip length. The paper's lambda in {1e-4, 1e-5, 1e-6} is
only plausible for a **sum**. :func:`paper_lambda_equivalent` converts under the literal reading of Eqs. 14 and 16
(an L1 *sum* over the bins of PyTorch's default, unnormalised ``rfft``, per clip; a sum over all wavelet
coefficients): for a 62-frame crop (15 872 samples) lambda_paper = 1e-4 is about 100 for the Fourier amplitude and
0.4 for Haar in our units. Under the other reading (a *mean* over bins of the unnormalised FFT) the factor is only
``sqrt(T)``, about 126. The paper's lambda weighs L_S against LMNT's L1 loss on the noise, which the ``gpu``/``full``
profiles minimise too, so the values are used as they are, converted only for the reduction of L_S. The paper does
not say which reading; the ``gpu``/``full`` profiles use the literal (sum) reading,
and :data:`LAMBDAS` lists the value each profile uses per regularizer (``smoke``/``cpu``: chosen so that the
spectral term is of the order of the diffusion loss at the start of training, see the notes there).

Evaluation settings (the paper gives none) live in the config's ``sample_kwargs`` (see :class:`VocoderEval`) so that
they are written into ``config.json``; :func:`describe_metrics` states each metric's exact configuration.
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
from spectral_lib.data.audio import DIFFWAVE_MEL, EVAL_PREFIXES, LJSpeechDataset
from spectral_lib.diffusion.ddim import DIFFWAVE_FAST_BETAS, fast_sample
from spectral_lib.experiments.profiles import ExperimentConfig, register_profile
from spectral_lib.experiments.run import EVALUATORS, REFERENCES, SAMPLERS
from spectral_lib.experiments.sources import resolve_data_dir

__all__ = [
    "EXPERIMENT",
    "SAMPLE_RATE",
    "DIFFWAVE_SCHEDULE",
    "VocoderEval",
    "vocoder_eval",
    "LAMBDAS",
    "PAPER_LAMBDAS",
    "PAPER_REGULARIZERS",
    "BEYOND_PAPER",
    "lambda_for",
    "LMNT_RECIPE",
    "recipe_table",
    "LOSS_COMPARISON",
    "loss_comparison",
    "run_loss_comparison",
    "paper_lambda_equivalent",
    "PAPER_NAMES",
    "PAPER_TABLE2",
    "heldout_clips",
    "vocode",
    "vocode_heldout",
    "heldout_reference",
    "evaluate_vocoder",
    "ndb_bins",
    "describe_metrics",
    "results_table",
]

EXPERIMENT = "ljspeech"
SAMPLE_RATE = DIFFWAVE_MEL.sample_rate  # 22 050 Hz, LJSpeech's rate
HOP = DIFFWAVE_MEL.hop_length  # 256 samples per mel frame

DIFFWAVE_SCHEDULE: dict[str, Any] = {"num_steps": 50, "beta_start": 1e-4, "beta_end": 0.05}
"""DiffWave's training schedule: T = 50 betas linear from 1e-4 to 0.05 (Kong et al. 2021, Table 1; lmnt-com/diffwave
``params.noise_schedule``), as ``formulation_kwargs`` of the DDPM formulation."""

PAPER_NAMES: dict[str, str] = {
    "none": "Baseline", "fourier_amp": "AMP", "fourier_amp_phase": "AMP+PHASE", "wavelet": "HAAR",
    "wavelet_bior13": "BIOR13", "mrstft": "MR-STFT loss (beyond the paper)",
}
"""Our regularizer names -> the paper's (Table 2); the MR-STFT loss is not one of the paper's (:data:`BEYOND_PAPER`)."""

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


# ------------------------------------------------------------------------------------------------ lambda


def paper_lambda_equivalent(regularizer: str, lambda_paper: float, n_samples: int = DIFFWAVE_MEL.crop_frames * HOP,
                            *, reading: str = "sum", levels: int = 3) -> float:
    """Our lambda that weighs ``regularizer`` as the paper's ``lambda_paper`` would (see the module docstring).

    For an error spread evenly over the bins (the factor is exact then, approximate otherwise):

    - Fourier terms (``fourier_amp``, ``fourier_amp_phase``: its amplitude part), ``reading="sum"``:
      ``sum_k |dA_k|`` over the ``n // 2 + 1`` bins of the unnormalised rFFT is ``sqrt(n) (n // 2 + 1)`` times our
      mean over bins of the unitary FFT; ``reading="mean"``: ``sqrt(n)``.
    - Wavelet terms, ``reading="sum"``: the sum over all ``~n`` coefficients is ``n / (levels + 1)`` times our sum
      over the ``levels + 1`` band means; ``reading="mean"``: ``1 / (levels + 1)``.

    Args:
        regularizer: one of the paper's variants (``"fourier_amp"``, ``"fourier_amp_phase"``, ``"wavelet"``,
            ``"wavelet_bior13"``); ``"none"`` gives 0. ``"mrstft"`` is not in the paper (``ValueError``).
        lambda_paper: the paper's value (1e-4, 1e-5 or 1e-6).
        n_samples: samples per training crop (``62 * 256``, as in the paper).
        reading: ``"sum"`` (the literal norms, our default) or ``"mean"``.
        levels: DWT levels of the wavelet term (3, its default).
    """
    check_choice(reading, "reading", ("sum", "mean"))
    check_positive(lambda_paper, "lambda_paper", allow_zero=True)
    if regularizer == "none":
        return 0.0
    n = int(n_samples)
    if regularizer in ("fourier_amp", "fourier_amp_phase"):
        factor = math.sqrt(n) * (n // 2 + 1) if reading == "sum" else math.sqrt(n)
    elif regularizer in ("wavelet", "wavelet_bior13"):
        factor = n / (levels + 1) if reading == "sum" else 1.0 / (levels + 1)
    else:
        raise ValueError(f"regularizer must be one of the paper's variants ('fourier_amp', 'fourier_amp_phase', "
                         f"'wavelet', 'wavelet_bior13') or 'none', got {regularizer!r}")
    return float(lambda_paper) * factor


PAPER_LAMBDAS: tuple[float, ...] = (1e-4, 1e-5, 1e-6)
"""The paper's lambda values for audio (Table 2), relative to LMNT's L1 loss on the noise; the ``gpu``/``full``
profiles use the first unless :func:`lambda_for` is given another."""

PAPER_REGULARIZERS: tuple[str, ...] = ("fourier_amp", "fourier_amp_phase", "wavelet", "wavelet_bior13")
"""The paper's four regularizers (AMP, AMP+PHASE, HAAR, BIOR13), the chapter's default comparison. ``"mrstft"`` is
not one of them (see :data:`BEYOND_PAPER`)."""

BEYOND_PAPER: tuple[str, ...] = ("mrstft",)
"""Regularizers the chapter may compare *beyond the paper*: the multi-resolution STFT loss is a common audio
training loss, not one of the paper's, and it is circular with the MR-STFT metric of Table 2 (it trains on the
quantity that metric measures)."""

_GPU_LAMBDAS = {name: paper_lambda_equivalent(name, PAPER_LAMBDAS[0]) for name in PAPER_REGULARIZERS}

LAMBDAS: dict[str, dict[str, float]] = {
    # smoke/cpu (the stand-in, a vocoder from scratch): lambda so that lambda * L_S is about half the diffusion loss
    # of a partly trained tiny vocoder (our choice). Measured after 300 steps: MSE of eps 0.045; L_S of x0_hat 0.045
    # (Fourier amplitude), 0.063 (amplitude + phase), 0.32 (Haar, a sum of 4 band means), 0.34 (bior1.3) and 50-200
    # (MR-STFT: its log-magnitude term is large wherever x0_hat is not as silent as a pause).
    "smoke": {"fourier_amp": 0.5, "fourier_amp_phase": 0.5, "wavelet": 0.1, "wavelet_bior13": 0.1, "mrstft": 1e-3},
    "cpu": {"fourier_amp": 0.5, "fourier_amp_phase": 0.5, "wavelet": 0.1, "wavelet_bior13": 0.1, "mrstft": 1e-3},
    # gpu/full (fine-tuning the pretrained vocoder with LMNT's L1 loss): the paper's 1e-4 as it is, against that L1
    # loss, converted only for our mean-reduced spectral terms (the literal sum reading); MR-STFT (beyond the paper)
    # with the cpu profile's ratio to the Fourier amplitude term.
    "gpu": {**_GPU_LAMBDAS, "mrstft": 2e-3 * _GPU_LAMBDAS["fourier_amp"]},
    "full": {**_GPU_LAMBDAS, "mrstft": 2e-3 * _GPU_LAMBDAS["fourier_amp"]},
}
"""``profile -> {regularizer -> lambda_spec}`` in our (mean-reduced) units; see :func:`lambda_for`."""


def lambda_for(regularizer: str, profile: str = "cpu", *, paper_lambda: float | None = None) -> float:
    """The lambda_spec the ``ljspeech`` chapter uses for ``regularizer`` at ``profile`` (0 for ``"none"``).

    Pass it on: ``run_experiment("ljspeech", profile=p, regularizer=r, lambda_spec=lambda_for(r, p))``. (The
    profile's own ``lambda_spec`` is the Fourier amplitude's value; the terms' scales differ by 10x, hence this
    table.)

    Args:
        regularizer: ``"none"``, one of :data:`PAPER_REGULARIZERS` or ``"mrstft"``.
        profile: ``smoke``, ``cpu``, ``gpu`` or ``full``.
        paper_lambda: at ``gpu``/``full`` only, another of the paper's values (:data:`PAPER_LAMBDAS`) for one of
            the paper's regularizers, converted by :func:`paper_lambda_equivalent`; ``None``: the table's value
            (the paper's 1e-4).
    """
    check_choice(profile, f"profile for experiment {EXPERIMENT!r}", tuple(LAMBDAS))
    if regularizer == "none":
        return 0.0
    check_choice(regularizer, "regularizer", tuple(LAMBDAS[profile]))
    if paper_lambda is None:
        return LAMBDAS[profile][regularizer]
    if profile not in ("gpu", "full") or regularizer not in PAPER_REGULARIZERS:
        raise ValueError(f"paper_lambda applies to the paper's regularizers {PAPER_REGULARIZERS} at the gpu/full "
                         f"profiles (which follow the paper's recipe), got {regularizer!r} at {profile!r}")
    check_positive(paper_lambda, "paper_lambda")
    return paper_lambda_equivalent(regularizer, paper_lambda)


# ------------------------------------------------------------------------------------------------ LMNT's recipe

LMNT_RECIPE: dict[str, str] = {
    "diffusion loss": "L1 on the noise: nn.L1Loss()(noise, predicted), a mean over batch and samples",
    "precision": "float32 (fp16 autocast and a gradient scaler only with --fp16)",
    "optimizer": "Adam (PyTorch defaults: betas 0.9/0.999, eps 1e-8, no weight decay)",
    "learning rate": "2e-4, constant, no warm-up",
    "gradient clipping": "none (max_grad_norm=None: the norm is clipped at 1e9, i.e. only logged)",
    "EMA of the weights": "none (the trained weights are saved and sampled)",
    "batch": "16 random crops of 62 mel frames (15 872 samples) per step",
    "noise schedule": "T = 50, beta linear from 1e-4 to 0.05; t uniform in {0, ..., 49}",
    "data order": "epochs over the shuffled utterances (each once per epoch), one random crop each",
}
"""LMNT's DiffWave trainer (lmnt-com/diffwave, ``learner.py`` and ``params.py``), which the paper fine-tunes with
"the standard DiffWave DDPM eps-loss" plus lambda L_S; the ``gpu``/``full`` profiles follow it (see
:func:`recipe_table`)."""

_PAPER_RECIPE: dict[str, str] = {
    "diffusion loss": "\"the standard DiffWave DDPM ε-loss\" + λ L_S, λ ∈ {1e-4, 1e-5, 1e-6}",
    "learning rate": "2e-4",
    "batch": "16",
    "steps": "150 000 (fine-tuning), 5 seeds",
    "start": "LMNT's pretrained LJSpeech checkpoint",
}


def _number(value: float) -> str:
    """``2e-4`` rather than ``0.0002`` for small values, ``15 872`` for large integers."""
    if value and abs(value) < 0.01:
        mantissa, exponent = f"{value:.6e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    if float(value).is_integer() and abs(value) >= 10_000:
        return f"{int(value):,}".replace(",", " ")
    return f"{value:g}"


def _ours(config: ExperimentConfig) -> dict[str, str]:
    """The recipe rows of :func:`recipe_table` for ``config``, read from the config itself."""
    loss = config.formulation_kwargs.get("loss", "l2")
    schedule = {**DIFFWAVE_SCHEDULE, **config.formulation_kwargs}
    warmup = f"linear warm-up over {config.warmup_steps} steps" if config.warmup_steps else "no warm-up"
    crop = config.data.get("crop_frames", DIFFWAVE_MEL.crop_frames)
    model = config.model
    return {
        "diffusion loss": ("L1 on the noise" if loss == "l1" else "squared error on the noise") + ", mean per sample"
                          + (" + λ L_S" if config.lambda_spec else ""),
        "precision": "float32" if config.amp == "off" else f"{config.amp} autocast on a GPU (float32 on a CPU)",
        "optimizer": "AdamW " + ("without weight decay (the same update as Adam)" if not config.weight_decay
                                 else f"with weight decay {config.weight_decay:g}"),
        "learning rate": f"{_number(config.lr)}, {config.lr_schedule}, {warmup}",
        "gradient clipping": "none" if config.grad_clip is None else f"global norm {config.grad_clip:g}",
        "EMA of the weights": "none (samples from the trained weights)" if not config.ema_decay
                              else f"decay {config.ema_decay:g}, sampled with the EMA weights",
        "batch": f"{config.batch_size} random crops of {crop} mel frames ({_number(crop * HOP)} samples) per step",
        "noise schedule": f"T = {schedule['num_steps']}, beta linear from {_number(schedule['beta_start'])} to "
                          f"{_number(schedule['beta_end'])}; t uniform",
        "data order": "utterances drawn uniformly with replacement, one random crop each",
        "steps": _number(config.steps),
        "start": "LMNT's pretrained checkpoint" if model.get("pretrained") else
                 f"from scratch (DiffWave preset {model.get('preset')!r})",
    }


def recipe_table(*profiles: str) -> str:
    """Markdown: LMNT's training recipe, the paper's, and ours at each of ``profiles`` (default ``cpu`` and
    ``gpu``), row by row; ours is read from the profiles' configs, so it cannot drift from the code."""
    profiles = profiles or ("cpu", "gpu")
    from spectral_lib.experiments.profiles import get_profile

    ours = {p: _ours(get_profile(EXPERIMENT, p)) for p in profiles}
    header = ["setting", "LMNT's trainer (lmnt-com/diffwave)", "the paper"] + [f"ours at `{p}`" for p in profiles]
    lmnt = {**LMNT_RECIPE, "steps": "1 000 578 from scratch (its published checkpoint)",
            "start": "random initialisation"}
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in lmnt:
        cells = [key, lmnt[key], _PAPER_RECIPE.get(key, "not stated")]
        lines.append("| " + " | ".join(cells + [ours[p][key] for p in profiles]) + " |")
    return "\n".join(lines)


LOSS_COMPARISON = "cpu/08_speech/diffusion_loss.json"
"""Where, under :func:`~spectral_lib.experiments.shipped.results_root`, the shipped ``cpu`` comparison of the two
diffusion losses lives: the ``cpu`` profile's baseline trained once with its squared error and once with LMNT's L1
(seed 0, everything else equal), with both configurations, their metrics and the commit that made them."""


def loss_comparison(path: str | None = None) -> dict[str, Any]:
    """The shipped comparison of :data:`LOSS_COMPARISON`, checked against the current ``cpu`` profile.

    Returns:
        The JSON's content: ``configs`` and ``metrics`` (each ``{"l2": ..., "l1": ...}``), ``commit``, ``command``,
        ``machine``, ``cpu_seconds``.

    Raises:
        FileNotFoundError: no shipped file.
        ValueError: a stored configuration is no longer the ``cpu`` profile with that loss (the result is stale:
            rerun the command it records).
    """
    import json
    from pathlib import Path

    from spectral_lib.experiments.profiles import get_profile
    from spectral_lib.experiments.run import CACHE_INSENSITIVE
    from spectral_lib.experiments.shipped import results_root

    file = Path(path) if path is not None else results_root() / LOSS_COMPARISON
    data = json.loads(file.read_text())
    profile = get_profile(EXPERIMENT, "cpu")
    for loss, stored in data["configs"].items():
        expected = profile.replace(formulation_kwargs={"loss": loss}) if loss == "l1" else profile
        diff = {k: v for k, v in ExperimentConfig.from_dict(stored).diff(expected).items()
                if k not in CACHE_INSENSITIVE}
        if diff:
            raise ValueError(f"{str(file)!r}: the {loss} run's configuration differs from the current cpu profile in "
                             f"{sorted(diff)}; rerun: {data['command']}")
    return data


def run_loss_comparison(runs_dir: str, *, out: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or read back) the two runs of :data:`LOSS_COMPARISON` in ``runs_dir/l2`` and ``runs_dir/l1`` and write
    the shipped JSON (default: under ``results_root()``). About 5 minutes of CPU time per run, one thread.

    Run it as ``OMP_NUM_THREADS=1 python -c "from spectral_lib.experiments import speech;
    speech.run_loss_comparison('runs/loss_comparison')"``.
    """
    import json
    import platform
    import subprocess
    from pathlib import Path

    from spectral_lib.experiments.checkpoint import atomic_write_text
    from spectral_lib.experiments.run import run_experiment
    from spectral_lib.experiments.shipped import results_root

    runs = {loss: run_experiment(EXPERIMENT, profile="cpu", regularizer="none", seed=0, resume=True,
                                 out=Path(runs_dir) / loss, progress=progress,
                                 **({"formulation_kwargs": {"loss": "l1"}} if loss == "l1" else {}))
            for loss in ("l2", "l1")}
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    data = {
        "what": "ljspeech cpu profile, baseline (no regularizer), seed 0: the diffusion loss as the profile's squared "
                "error (l2) and as LMNT's L1 (l1), everything else equal",
        "command": "OMP_NUM_THREADS=1 python -c \"from spectral_lib.experiments import speech; "
                   "speech.run_loss_comparison('runs/loss_comparison')\"",
        "commit": commit,
        "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        "configs": {loss: run.config.to_dict() for loss, run in runs.items()},
        "metrics": {loss: dict(run.metrics) for loss, run in runs.items()},
    }
    target = Path(out) if out is not None else results_root() / LOSS_COMPARISON
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(data, indent=1) + "\n")
    return data


# ------------------------------------------------------------------------------------------------ profiles

_TINY_VOCODER = {"name": "diffwave", "preset": "tiny", "n_mels": 80}


def _profiles() -> list[ExperimentConfig]:
    common: dict[str, Any] = dict(experiment=EXPERIMENT, formulation="ddpm", formulation_kwargs=DIFFWAVE_SCHEDULE,
                                  sample_every=0, sample_steps=len(DIFFWAVE_FAST_BETAS))
    # gpu/full: the pretrained vocoder fine-tuned with LMNT's recipe (LMNT_RECIPE): L1 on the noise, float32, Adam at
    # a constant 2e-4 (AdamW without weight decay is the same update), no warm-up, no gradient clipping, no EMA
    # (ema_decay 0: the sampled weights are the trained ones), batch 16 of 62-frame crops.
    paper: dict[str, Any] = dict(
        common, formulation_kwargs={**DIFFWAVE_SCHEDULE, "loss": "l1"},
        data={"source": "audio", "split": "train", "crop_frames": DIFFWAVE_MEL.crop_frames},
        model={"name": "diffwave", "preset": "paper", "pretrained": "diffwave-ljspeech"},
        lambda_spec=paper_lambda_equivalent("fourier_amp", PAPER_LAMBDAS[0]),
        batch_size=16, lr=2e-4, lr_schedule="constant", warmup_steps=0, weight_decay=0.0, grad_clip=None,
        ema_decay=0.0, amp="off", sample_batch_size=25,
        sample_kwargs={"clip_frames": 256, "fad_embedding": "auto", "utmos_backend": "speechmos"},
    )
    return [
        # Seconds on one core: every code path (stand-in, loader, training with the mel condition, fast sampling,
        # the five metrics), not a vocoder.
        ExperimentConfig(
            profile="smoke", **common,
            data={"source": "audio", "split": "train", "crop_frames": 8, "preload": True,
                  "standin": {"n_utterances": 10, "seconds": [1.0, 1.4], "seed": 0}},
            model=dict(_TINY_VOCODER), lambda_spec=LAMBDAS["smoke"]["fourier_amp"],
            batch_size=4, steps=8, lr=2e-3, warmup_steps=2, ema_decay=0.9, grad_clip=1.0,
            n_samples=2, sample_batch_size=2, sample_kwargs={"clip_frames": 43},
            log_every=4, checkpoint_every=0,
        ),
        # Minutes on a laptop CPU: a tiny vocoder (0.036 M parameters) from scratch on 48 stand-in utterances,
        # evaluated on 12 held-out clips of 1.5 s. Many short crops (8 frames, 93 ms, the shortest MR-STFT's 2048-
        # point FFT accepts) rather than a few long ones: the vocoder starts to follow its mel condition (quiet in
        # pauses, loud in syllables) after about 600 steps, which it did not within 400 steps of 16-frame crops.
        ExperimentConfig(
            profile="cpu", **common,
            data={"source": "audio", "split": "train", "crop_frames": 8, "preload": True,
                  "standin": {"n_utterances": 60, "seconds": [2.0, 3.0], "seed": 0}},
            model=dict(_TINY_VOCODER), lambda_spec=LAMBDAS["cpu"]["fourier_amp"],
            batch_size=16, steps=600, lr=2e-3, warmup_steps=50, ema_decay=0.99, grad_clip=1.0,
            n_samples=12, sample_batch_size=12, sample_kwargs={"clip_frames": 129},
            log_every=20, checkpoint_every=100,
        ),
        # Colab GPU, about an hour for the chapter: fine-tune the pretrained vocoder on LJSpeech (data_dir needed) with
        # LMNT's recipe (see LMNT_RECIPE), for 1 500 steps instead of 150 000.
        ExperimentConfig(profile="gpu", **paper, steps=1_500, n_samples=100, log_every=25, checkpoint_every=250),
        # The paper's budget: 150 000 steps per run (x 5 seeds) with LMNT's recipe, every held-out utterance that is at
        # least 3 s long.
        ExperimentConfig(profile="full", **paper, steps=150_000, n_samples=1_000, log_every=100,
                         checkpoint_every=5_000),
    ]


# ------------------------------------------------------------------------------------------------ vocoding


def heldout_clips(config: ExperimentConfig, n: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The first ``n`` held-out utterances (chapters LJ001/LJ002) at least ``clip_frames`` long, cut to their first
    ``clip_frames`` mel frames: ``(audio (n', 1, clip_frames * 256), mel (n', 80, clip_frames), ids)`` with
    ``n' = min(n, how many qualify)``. The mel frames are those of the whole utterance (DiffWave's features).

    Raises:
        ValueError: no data folder (neither ``data_dir`` nor a stand-in), or no held-out utterance is long enough.
    """
    settings = vocoder_eval(config)
    data_dir, options = resolve_data_dir(config.data, config.data_dir)
    if data_dir is None:
        raise ValueError(
            f"the {EXPERIMENT} experiment needs LJSpeech: pass data_dir (--data-dir; download it with "
            "spectral_lib.data.download.download_dataset('ljspeech', dest)) or use a profile with a stand-in"
        )
    keep = {k: options[k] for k in ("eval_prefixes", "skip_missing") if k in options}
    dataset = LJSpeechDataset(data_dir, split="eval", crop_frames=None, **keep)
    audios, mels, ids = [], [], []
    for i in range(len(dataset)):
        if len(ids) == n:
            break
        audio = dataset.load_audio(i)
        if audio.shape[0] < settings.clip_samples:
            continue
        wav, mel = dataset.pair(audio, 0, settings.clip_frames)
        audios.append(wav)
        mels.append(mel)
        ids.append(dataset.entries[i].id)
    if not ids:
        raise ValueError(
            f"no held-out utterance ({'/'.join(keep.get('eval_prefixes', EVAL_PREFIXES))}*) in {str(data_dir)!r} is "
            f"at least clip_frames={settings.clip_frames} frames ({settings.clip_samples / SAMPLE_RATE:.2f} s) long"
        )
    return torch.stack(audios), torch.stack(mels), ids


@torch.no_grad()
def vocode(
    model: torch.nn.Module,
    mel: torch.Tensor,
    *,
    formulation: Any = None,
    inference_betas: Sequence[float] = DIFFWAVE_FAST_BETAS,
    generator: torch.Generator | None = None,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Waveforms for log-mel spectrograms with DiffWave's fast sampling (Kong et al. 2021, App. B).

    Args:
        model: a DiffWave vocoder ``model(x, t, mel=mel)``.
        mel: ``(B, n_mels, frames)`` (or one ``(n_mels, frames)``), DiffWave's normalised log-mel features.
        formulation: holds the training schedule (default: DDPM with :data:`DIFFWAVE_SCHEDULE`).
        inference_betas: the inference schedule (default DiffWave's 6 steps, as in the paper).
        generator: the sampler's noise (on ``device``).
        batch_size: clips per network call.
        device: default: the model's.

    Returns:
        ``(B, 1, frames * 256)`` float32 on the CPU, in ``[-1, 1]`` (the sampler clamps every step, as the public
        implementation does).
    """
    from spectral_lib.diffusion import make_formulation

    if mel.dim() == 2:
        mel = mel.unsqueeze(0)
    if mel.dim() != 3:
        raise ValueError(f"mel must be (B, n_mels, frames) or (n_mels, frames), got shape {tuple(mel.shape)}")
    if formulation is None:
        formulation = make_formulation("ddpm", **DIFFWAVE_SCHEDULE)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    hop = getattr(getattr(model, "config", None), "hop_length", HOP)
    out = []
    chunks = list(torch.split(mel, int(batch_size)))
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="vocoding")
    for part in chunks:
        shape = (part.shape[0], 1, part.shape[-1] * hop)
        x = fast_sample(formulation, model, shape, inference_betas, generator=generator, device=device,
                        cond={"mel": part.to(device)})
        out.append(x.float().cpu())
    return torch.cat(out)


def vocode_heldout(model: torch.nn.Module, formulation: Any, config: ExperimentConfig, *, n: int,
                   steps: int | None = None, seed: int, device: torch.device | str,
                   progress: bool = False) -> torch.Tensor:
    """The experiment's samples (registered in :data:`~spectral_lib.experiments.run.SAMPLERS`): the held-out clips
    of :func:`heldout_clips` vocoded from their ground-truth mels, ``(n', 1, clip_frames * 256)`` in ``[-1, 1]``.
    ``steps`` must be ``None`` or the length of the inference schedule."""
    settings = vocoder_eval(config)
    if steps is not None and int(steps) != len(settings.inference_betas):
        raise ValueError(f"the {EXPERIMENT} experiment samples with its {len(settings.inference_betas)}-step inference "
                         f"schedule (sample_kwargs['inference_betas']); got steps={steps}")
    _, mel, _ = heldout_clips(config, n)
    generator = torch.Generator(device=torch.device(device)).manual_seed(int(seed))
    return vocode(model, mel, formulation=formulation, inference_betas=settings.inference_betas,
                  generator=generator, batch_size=config.sample_batch_size, device=device, progress=progress)


def heldout_reference(config: ExperimentConfig, n: int) -> torch.Tensor:
    """The original held-out clips, paired with :func:`vocode_heldout`'s samples (registered in
    :data:`~spectral_lib.experiments.run.REFERENCES`)."""
    return heldout_clips(config, n)[0]


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


# ------------------------------------------------------------------------------------------------ registration

for _config in _profiles():
    register_profile(_config, overwrite=True)
SAMPLERS[EXPERIMENT] = vocode_heldout
REFERENCES[EXPERIMENT] = heldout_reference
EVALUATORS[EXPERIMENT] = evaluate_vocoder
