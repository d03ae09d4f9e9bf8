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

The pieces live in three modules, all re-exported here: :mod:`~spectral_lib.experiments.speech_recipe` (LMNT's
recipe, the paper's lambda and ours, the shipped loss comparison), :mod:`~spectral_lib.experiments.speech_metrics`
(evaluation settings, metrics, tables) and this one (profiles, vocoding, registration).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from spectral_lib.data.audio import DIFFWAVE_MEL, EVAL_PREFIXES, LJSpeechDataset
from spectral_lib.diffusion.ddim import DIFFWAVE_FAST_BETAS, fast_sample
from spectral_lib.experiments.profiles import ExperimentConfig, register_profile
from spectral_lib.experiments.run import EVALUATORS, REFERENCES, SAMPLERS
from spectral_lib.experiments.sources import resolve_data_dir
from spectral_lib.experiments.speech_metrics import (
    PAPER_TABLE2,
    SAMPLE_RATE,
    VocoderEval,
    describe_metrics,
    evaluate_vocoder,
    mean_std,
    ndb_bins,
    results_table,
    vocoder_eval,
)
from spectral_lib.experiments.speech_recipe import (
    BEYOND_PAPER,
    LMNT_GRAD_CLIP,
    DIFFWAVE_SCHEDULE,
    EXPERIMENT,
    LAMBDAS,
    LMNT_RECIPE,
    LOSS_COMPARISON,
    PAPER_LAMBDAS,
    PAPER_NAMES,
    PAPER_REGULARIZERS,
    lambda_for,
    loss_comparison,
    paper_lambda_equivalent,
    recipe_table,
    run_loss_comparison,
)

__all__ = [
    "EXPERIMENT",
    "SAMPLE_RATE",
    "HOP",
    "DIFFWAVE_SCHEDULE",
    "VocoderEval",
    "vocoder_eval",
    "LAMBDAS",
    "PAPER_LAMBDAS",
    "PAPER_REGULARIZERS",
    "BEYOND_PAPER",
    "lambda_for",
    "LMNT_RECIPE",
    "LMNT_GRAD_CLIP",
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
    "mean_std",
]

HOP = DIFFWAVE_MEL.hop_length  # 256 samples per mel frame


# ------------------------------------------------------------------------------------------------ profiles

_TINY_VOCODER = {"name": "diffwave", "preset": "tiny", "n_mels": 80}


def _profiles() -> list[ExperimentConfig]:
    common: dict[str, Any] = dict(experiment=EXPERIMENT, formulation="ddpm", formulation_kwargs=DIFFWAVE_SCHEDULE,
                                  sample_every=0, sample_steps=len(DIFFWAVE_FAST_BETAS))
    # gpu/full: the pretrained vocoder fine-tuned with LMNT's recipe (LMNT_RECIPE): L1 on the noise, float32, Adam at
    # a constant 2e-4 (AdamW without weight decay is the same update), no warm-up, no EMA (ema_decay 0: the sampled
    # weights are the trained ones), batch 16 of 62-frame crops, and LMNT's clipping quirk: the gradient norm is
    # clipped at 1e9 (max_grad_norm=None), which never bites but logs the norm.
    paper: dict[str, Any] = dict(
        common, formulation_kwargs={**DIFFWAVE_SCHEDULE, "loss": "l1"},
        data={"source": "audio", "split": "train", "crop_frames": DIFFWAVE_MEL.crop_frames},
        model={"name": "diffwave", "preset": "paper", "pretrained": "diffwave-ljspeech"},
        lambda_spec=paper_lambda_equivalent("fourier_amp", PAPER_LAMBDAS[0]),
        batch_size=16, lr=2e-4, lr_schedule="constant", warmup_steps=0, weight_decay=0.0, grad_clip=LMNT_GRAD_CLIP,
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


# ------------------------------------------------------------------------------------------------ registration

for _config in _profiles():
    register_profile(_config, overwrite=True)
SAMPLERS[EXPERIMENT] = vocode_heldout
REFERENCES[EXPERIMENT] = heldout_reference
EVALUATORS[EXPERIMENT] = evaluate_vocoder
