"""The speech chapter's vocoder runs as shipped results (book chapter 8, ``book/08_speech.ipynb``).

Each run of the chapter is one ``run_experiment("ljspeech", ...)`` (:mod:`spectral_lib.experiments.speech`) passed
through a :class:`~spectral_lib.experiments.shipped.ShippedResults`: at ``cpu`` the shipped run is read back in
seconds (no checkpoint), at the other profiles it trains. The page needs little of a run, so a run keeps:

- its configuration, metrics and loss log (the run folder's files);
- the first :data:`SHOWN_CLIPS` vocoded clips as its samples (what the players, waveforms and spectrograms show;
  float16 when shipped), not all of them;
- ``vocoder_summary.json`` (:data:`SUMMARY`) in its run folder, written when the run finishes
  (:func:`vocoder_summary`): the mean power spectrum of *all* its vocoded clips and of the originals in
  equal-width bands, and how closely the vocoded clips follow their originals' loudness. It is shipped with the
  run and goes stale with it.

The chapter's findings are those of the ``cpu`` runs of :data:`CPU_RUNS`: the paper's AMP and HAAR against the
baseline, the baseline at a second training seed (the seed noise), the baseline with LMNT's L1 loss, and the
MR-STFT loss beyond the paper::

    switch = ShippedResults(CHAPTER, profile, retrain=retrain)
    runs = [vocoder_run(switch, RunSpec(r), runs_root="runs/08_speech") for r in ("none", "wavelet")]
    cpu = cpu_results(switch, runs_root="runs/08_speech", known=runs)   # {role: VocoderRun}, or None

At ``cpu`` :func:`cpu_results` goes through the switch (shipped, or trained and shipped, one to a few minutes a
run); at every other profile it only reads the shipped runs and returns ``None`` while one is missing or stale, so a
page built at ``smoke`` quotes the ``cpu`` findings (or says they are not shipped yet) and never trains them.
:mod:`~spectral_lib.experiments.speech_report` turns them into the page's tables and glued numbers.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectral_lib.experiments import speech
from spectral_lib.experiments.profiles import ExperimentConfig, get_profile

__all__ = [
    "CHAPTER",
    "SHOWN_CLIPS",
    "SUMMARY",
    "PAPER_PROFILES",
    "RunSpec",
    "CPU_RUNS",
    "VocoderRun",
    "run_name",
    "run_label",
    "run_config",
    "page_data_dir",
    "check_choices",
    "vocoder_summary",
    "train_run",
    "vocoder_run",
    "cpu_results",
    "MISSING_CPU",
]

CHAPTER = "08_speech"
"""The chapter whose shipped results these are (``results/cpu/08_speech/``)."""
SHOWN_CLIPS = 1
"""Vocoded clips a run keeps as samples: the page plays and draws the first held-out clip (the metrics and the
summary use every clip)."""
SUMMARY = "vocoder_summary.json"
"""The run folder's file with the power spectra and the envelope correlation (:func:`vocoder_summary`)."""
PAPER_PROFILES = ("gpu", "full")
"""The profiles that fine-tune the pretrained vocoder with the paper's lambda (``paper_lambda`` applies there)."""
_CACHE_INSENSITIVE = ("device", "log_every", "sample_every", "checkpoint_every", "num_workers")


@dataclass(frozen=True)
class RunSpec:
    """One vocoder of the chapter.

    Attributes:
        regularizer: ``"none"``, one of the paper's (:data:`~spectral_lib.experiments.speech.PAPER_REGULARIZERS`) or
            one beyond it (:data:`~spectral_lib.experiments.speech.BEYOND_PAPER`).
        seed: the training seed.
        loss: the diffusion loss: ``None`` for the profile's (squared error at ``smoke``/``cpu``, LMNT's L1 at
            ``gpu``/``full``), or ``"l1"`` / ``"l2"`` explicitly.
    """

    regularizer: str = "none"
    seed: int = 0
    loss: str | None = None

    def __post_init__(self) -> None:
        known = ("none", *speech.PAPER_REGULARIZERS, *speech.BEYOND_PAPER)
        if self.regularizer not in known:
            raise ValueError(f"regularizer must be one of {', '.join(known)}, got {self.regularizer!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.loss not in (None, "l1", "l2"):
            raise ValueError(f"loss must be None (the profile's), 'l1' or 'l2', got {self.loss!r}")


CPU_RUNS: dict[str, RunSpec] = {
    "baseline": RunSpec(),
    "amp": RunSpec("fourier_amp"),
    "haar": RunSpec("wavelet"),
    "baseline_seed1": RunSpec(seed=1),
    "baseline_l1": RunSpec(loss="l1"),
    "mrstft": RunSpec("mrstft"),
}
"""The shipped ``cpu`` runs by role: what the chapter's findings are read from, at every profile."""

MISSING_CPU = (
    "The shipped <code>cpu</code> vocoders of this chapter are not in <code>results/</code> yet (or no longer match "
    "the <code>cpu</code> profile): execute the chapter at <code>profile = \"cpu\"</code> with "
    "<code>retrain = True</code> (or <code>make book RETRAIN=1</code>), six small vocoders of a few minutes each, and "
    "commit "
    "<code>results/cpu/08_speech</code>. Until then the findings below read <em>nan</em>."
)
"""The note the chapter shows while the ``cpu`` runs are not shipped."""


@dataclass
class VocoderRun:
    """What the chapter shows of one run.

    Attributes:
        name: the run's name (:func:`run_name`; its shipped entry and its folder under ``runs_root``).
        spec: what was trained.
        label: the run's name on the page (:func:`run_label`).
        config: its configuration.
        samples: the first :data:`SHOWN_CLIPS` vocoded held-out clips, ``(SHOWN_CLIPS, 1, T)`` in ``[-1, 1]``.
        metrics: :func:`~spectral_lib.experiments.speech.evaluate_vocoder`'s metrics plus the run's times.
        history: the loss log, one dict per logged step (``loss``, ``diffusion``, the spectral term's name).
        summary: the run's :data:`SUMMARY` (:func:`vocoder_summary`).
        shipped: read back from the shipped ``cpu`` results rather than trained in this session.
    """

    name: str
    spec: RunSpec
    label: str
    config: ExperimentConfig
    samples: torch.Tensor
    metrics: dict[str, float]
    history: list[dict[str, float]]
    summary: dict[str, Any]
    shipped: bool

    def spectrum(self, *, data: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(band centres in Hz, mean power per band)`` of the vocoded clips (``data=True``: of the originals)."""
        spectrum = self.summary["spectrum"]
        return np.asarray(spectrum["freqs_hz"]), np.asarray(spectrum["power_data" if data else "power"])


# ------------------------------------------------------------------------------------------------ names, configs


def _paper_lambda(profile: str, spec: RunSpec, paper_lambda: float | None) -> float | None:
    """``paper_lambda`` where it applies (the paper's regularizers at ``gpu``/``full``), else ``None``."""
    if profile in PAPER_PROFILES and spec.regularizer in speech.PAPER_REGULARIZERS:
        return paper_lambda
    return None


def run_name(profile: str, spec: RunSpec, paper_lambda: float | None = None) -> str:
    """``"wavelet-seed0"``, ``"none-l1-seed0"``; at ``gpu``/``full`` ``"wavelet-lam1e-05-seed0"`` when
    ``paper_lambda`` is given (so runs at two of the paper's lambdas do not share a folder)."""
    name = spec.regularizer + (f"-{spec.loss}" if spec.loss else "")
    chosen = _paper_lambda(profile, spec, paper_lambda)
    if chosen is not None:
        name += f"-lam{chosen:g}"
    return f"{name}-seed{spec.seed}"


def run_label(profile: str, spec: RunSpec, paper_lambda: float | None = None) -> str:
    """The run's name on the page: ``"Baseline"``, ``"HAAR (λ=0.1)"``, ``"AMP (λ_paper=1e-05)"``,
    ``"Baseline, L1 loss (LMNT's)"``, ``"MR-STFT loss (λ=0.001, beyond the paper)"``; the seed is not part of it."""
    label = speech.PAPER_NAMES[spec.regularizer]
    beyond = " (beyond the paper)"
    label, note = (label[: -len(beyond)], ", beyond the paper") if label.endswith(beyond) else (label, "")
    chosen = _paper_lambda(profile, spec, paper_lambda)
    if chosen is not None:
        label += f" (λ_paper={chosen:g})"
    elif spec.regularizer != "none":
        label += f" (λ={speech.lambda_for(spec.regularizer, profile):.3g}{note})"
    if spec.loss is not None:
        label += ", L1 loss (LMNT's)" if spec.loss == "l1" else ", squared error"
    return label


def run_config(profile: str, spec: RunSpec, *, paper_lambda: float | None = None,
               data_dir: str | os.PathLike[str] | None = None) -> ExperimentConfig:
    """The configuration of ``spec`` at ``profile``: the profile with the regularizer, its lambda
    (:func:`~spectral_lib.experiments.speech.lambda_for`; ``paper_lambda`` at ``gpu``/``full``), the seed, the
    loss and ``data_dir``."""
    chosen = _paper_lambda(profile, spec, paper_lambda)
    changes: dict[str, Any] = {"regularizer": spec.regularizer, "seed": spec.seed,
                               "lambda_spec": speech.lambda_for(spec.regularizer, profile, paper_lambda=chosen)}
    if spec.loss is not None:
        changes["formulation_kwargs"] = {"loss": spec.loss}
    if data_dir is not None:
        changes["data_dir"] = str(data_dir)
    return get_profile(speech.EXPERIMENT, profile).replace(**changes)


def page_data_dir(profile: str, data_dir: str | os.PathLike[str] | None) -> str | None:
    """The chapter's data folder: ``data_dir`` when given; at ``gpu``/``full`` otherwise LJSpeech-1.1 downloaded
    (and checked) into the temporary folder; at ``smoke``/``cpu`` ``None`` (the profile's stand-in)."""
    if data_dir is not None or profile not in PAPER_PROFILES:
        return None if data_dir is None else str(data_dir)
    import tempfile

    from spectral_lib.data.download import download_dataset

    return str(download_dataset("ljspeech", Path(tempfile.gettempdir()) / "ljspeech"))


def check_choices(regularizers: Iterable[str], beyond_paper: Iterable[str]) -> None:
    """The chapter's parameters: ``regularizers`` must be the paper's, ``beyond_paper`` the others (a clear error
    otherwise, naming the parameter to use)."""
    regularizers, beyond_paper = list(regularizers), list(beyond_paper)
    wrong = [r for r in regularizers if r not in speech.PAPER_REGULARIZERS]
    if wrong:
        paper = ", ".join(speech.PAPER_REGULARIZERS)
        raise ValueError(f"regularizers holds {wrong}, which are not the paper's ({paper})"
                         + ("; put them in beyond_paper" if set(wrong) <= set(speech.BEYOND_PAPER) else ""))
    wrong = [r for r in beyond_paper if r not in speech.BEYOND_PAPER]
    if wrong:
        raise ValueError(f"beyond_paper holds {wrong}; it takes {', '.join(speech.BEYOND_PAPER)} (the paper's "
                         "regularizers go in regularizers)")


# ------------------------------------------------------------------------------------------------ the run summary


def _round(values: Iterable[float]) -> list[float]:
    return [float(f"{float(v):.6g}") for v in values]


def vocoder_summary(samples: torch.Tensor, data: torch.Tensor, clip_ids: list[str],
                    sample_rate: int = speech.SAMPLE_RATE) -> dict[str, Any]:
    """The run's :data:`SUMMARY`: ``clip_ids``, ``sample_rate``, ``spectrum`` (``freqs_hz``, ``power`` of the
    vocoded clips, ``power_data`` of the originals; :func:`~spectral_lib.experiments.speech.band_power_spectrum`)
    and ``envelope_correlation`` (:func:`~spectral_lib.experiments.speech.envelope_correlation`)."""
    freqs, power = speech.band_power_spectrum(samples, sample_rate)
    _, power_data = speech.band_power_spectrum(data, sample_rate)
    return {"clip_ids": list(clip_ids), "sample_rate": int(sample_rate),
            "spectrum": {"freqs_hz": _round(freqs), "power": _round(power), "power_data": _round(power_data)},
            "envelope_correlation": speech.envelope_correlation(samples, data)}


# ------------------------------------------------------------------------------------------------ training


def train_run(config: ExperimentConfig, out_dir: str | os.PathLike[str], *, fresh: bool, progress: bool = False
              ) -> Any:
    """Train ``config`` into ``out_dir`` (``fresh``: from scratch, replacing a run there; else resume or reuse it),
    write the run's :data:`SUMMARY` and return its :class:`~spectral_lib.experiments.run.RunResult` with the first
    :data:`SHOWN_CLIPS` samples only (what is shipped, in float16)."""
    from spectral_lib.experiments.checkpoint import atomic_write_text
    from spectral_lib.experiments.run import run_experiment

    overrides = {k: new for k, (_, new) in get_profile(speech.EXPERIMENT, config.profile).diff(config).items()}
    regularizer = overrides.pop("regularizer", "none")
    result = run_experiment(speech.EXPERIMENT, profile=config.profile, regularizer=regularizer, out=out_dir,
                            resume=not fresh, overwrite=fresh, progress=progress, **overrides)
    path = Path(result.out_dir) / SUMMARY
    if not result.cached or not path.exists():
        clips, _, ids = speech.heldout_clips(result.config, len(result.samples))
        summary = vocoder_summary(result.samples, clips, ids)
        atomic_write_text(path, json.dumps(summary, indent=1) + "\n")
    return dataclasses.replace(result, samples=result.samples[:SHOWN_CLIPS])


def _vocoder_run(name: str, spec: RunSpec, label: str, result: Any, *, shipped: bool) -> VocoderRun:
    from spectral_lib.experiments.shipped import ShippedResultError

    path = Path(result.out_dir) / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShippedResultError(f"run {name!r} has no readable {SUMMARY} in {str(path.parent)!r} ({exc}); train it "
                                 "again (retrain = True)") from exc
    return VocoderRun(name=name, spec=spec, label=label, config=result.config,
                      samples=result.samples[:SHOWN_CLIPS], metrics=dict(result.metrics),
                      history=list(result.history), summary=summary, shipped=shipped)


def vocoder_run(switch: Any, spec: RunSpec, *, runs_root: str | os.PathLike[str],
                paper_lambda: float | None = None, data_dir: str | os.PathLike[str] | None = None) -> VocoderRun:
    """One vocoder of the chapter at ``switch.profile``, through ``switch`` (a
    :class:`~spectral_lib.experiments.shipped.ShippedResults` of :data:`CHAPTER`).

    At ``cpu`` the shipped run is read back, or trained from scratch and shipped; at ``smoke`` it trains from
    scratch; at ``gpu``/``full`` it trains in ``runs_root/<name>`` and resumes there after an interruption (put
    ``runs_root`` on Google Drive on Colab), with progress bars.
    """
    profile = switch.profile
    config = run_config(profile, spec, paper_lambda=paper_lambda, data_dir=data_dir)
    name = run_name(profile, spec, paper_lambda)
    resumable = profile in PAPER_PROFILES
    result = switch.run(name, config, lambda: train_run(config, Path(runs_root) / name, fresh=not resumable,
                                                        progress=resumable))
    return _vocoder_run(name, spec, run_label(profile, spec, paper_lambda), result,
                        shipped=name in switch.restored)


def _same_run(run: VocoderRun, config: ExperimentConfig) -> bool:
    return not {k for k in run.config.diff(config) if k not in _CACHE_INSENSITIVE}


def cpu_results(switch: Any, *, runs_root: str | os.PathLike[str], known: Iterable[VocoderRun] = (),
                specs: Mapping[str, RunSpec] | None = None) -> dict[str, VocoderRun] | None:
    """The ``cpu`` runs of ``specs`` (default :data:`CPU_RUNS`) by role.

    At ``cpu`` every run goes through ``switch`` (shipped, or trained and shipped); runs of ``known`` (the page's
    own, made through the same switch) with the same configuration are reused, so that a retrain trains each run
    once. At any other profile nothing is trained: the shipped runs are read, and ``None`` is returned when one of
    them is missing or stale (show :data:`MISSING_CPU`).
    """
    specs = dict(CPU_RUNS if specs is None else specs)
    if switch.shipping:
        done = {run.name: run for run in known}
        found = {}
        for role, spec in specs.items():
            run = done.get(run_name("cpu", spec))
            if run is None or not _same_run(run, run_config("cpu", spec)):
                run = vocoder_run(switch, spec, runs_root=runs_root)
            found[role] = run
        return found
    store = switch.store
    found = {}
    for role, spec in specs.items():
        name = run_name("cpu", spec)
        if not store.has(name) or store.stale_reason(name, config=run_config("cpu", spec)):
            return None
        result = store.load_run(name, on_stale="ignore")
        found[role] = _vocoder_run(name, spec, run_label("cpu", spec), result, shipped=True)
    return found
