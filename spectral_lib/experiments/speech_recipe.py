"""How the LJSpeech vocoder experiment trains: LMNT's recipe, the paper's lambda and ours.

The paper fine-tunes LMNT's DiffWave (``lmnt-com/diffwave``) with "the standard DiffWave DDPM eps-loss" plus
lambda L_S. :data:`LMNT_RECIPE` states what that trainer does (``learner.py``, ``params.py``), :func:`recipe_table`
sets it beside the paper and beside our profiles (read from the configs, so it cannot drift), and
:func:`loss_comparison` reads the shipped ``cpu`` measurement of the two diffusion losses that explains why the
offline profiles keep their own. :mod:`spectral_lib.experiments.speech` re-exports everything here.

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
"""

from __future__ import annotations

import math
from typing import Any

import torch

from spectral_lib._checks import check_choice, check_positive
from spectral_lib.data.audio import DIFFWAVE_MEL
from spectral_lib.experiments.profiles import ExperimentConfig

__all__ = [
    "EXPERIMENT",
    "DIFFWAVE_SCHEDULE",
    "PAPER_NAMES",
    "paper_lambda_equivalent",
    "PAPER_LAMBDAS",
    "PAPER_REGULARIZERS",
    "BEYOND_PAPER",
    "LAMBDAS",
    "lambda_for",
    "LMNT_RECIPE",
    "LMNT_GRAD_CLIP",
    "recipe_table",
    "LOSS_COMPARISON",
    "loss_comparison",
    "run_loss_comparison",
]

EXPERIMENT = "ljspeech"
HOP = DIFFWAVE_MEL.hop_length  # 256 samples per mel frame

DIFFWAVE_SCHEDULE: dict[str, Any] = {"num_steps": 50, "beta_start": 1e-4, "beta_end": 0.05}
"""DiffWave's training schedule: T = 50 betas linear from 1e-4 to 0.05 (Kong et al. 2021, Table 1; lmnt-com/diffwave
``params.noise_schedule``), as ``formulation_kwargs`` of the DDPM formulation."""

PAPER_NAMES: dict[str, str] = {
    "none": "Baseline", "fourier_amp": "AMP", "fourier_amp_phase": "AMP+PHASE", "wavelet": "HAAR",
    "wavelet_bior13": "BIOR13", "mrstft": "MR-STFT loss (beyond the paper)",
}
"""Our regularizer names -> the paper's (Table 2); the MR-STFT loss is not one of the paper's (:data:`BEYOND_PAPER`)."""


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

LMNT_GRAD_CLIP = 1e9
"""LMNT's trainer calls ``clip_grad_norm_(params, max_grad_norm or 1e9)`` with ``max_grad_norm=None``: clipping that
never bites but returns the norm it logs. The ``gpu``/``full`` profiles use the same value."""

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
        "gradient clipping": "none" if config.grad_clip is None else
                             "at norm 1e9 (LMNT's: never bites, logs the norm)" if config.grad_clip >= LMNT_GRAD_CLIP
                             else f"global norm {config.grad_clip:g}",
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
    import spectral_lib.experiments.speech  # noqa: F401  (registers the ljspeech profiles)
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

    import spectral_lib.experiments.speech  # noqa: F401  (registers the ljspeech profiles)
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

    import spectral_lib.experiments.speech  # noqa: F401  (registers the ljspeech experiment)
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
