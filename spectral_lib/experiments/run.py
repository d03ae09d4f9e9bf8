"""One experiment, end to end: train, sample with the EMA weights, evaluate, write the run folder.

A run folder holds::

    config.json          the ExperimentConfig (written when training starts)
    log.jsonl            one line of loss parts per log_every steps
    checkpoints/last.pt  model, EMA, optimizer and every random state (exact resume)
    samples.pt           generated samples, clipped to the data range [-1, 1], float32, (n_samples, C, H, W|T)
    figures/             samples.png, radial_spectrum.png (and periodic samples_step*.png)
    metrics.json         the evaluation; written last, so its presence means "finished"

Every file is written atomically (temporary file + ``os.replace``). ``run_experiment(..., resume=True)`` on a
finished run with the same configuration reads the stored result back without training: notebooks use it as a
cache. On an unfinished run it continues training exactly where the last checkpoint left it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from spectral_lib._checks import check_choice
from spectral_lib.device import adapt_threads, default_device
from spectral_lib.experiments import run_folder
from spectral_lib.experiments import train as train_mod
from spectral_lib.experiments.checkpoint import (
    CheckpointError,
    atomic_path,
    atomic_write_text,
    load_checkpoint,
    load_error_detail,
)
from spectral_lib.experiments.profiles import ExperimentConfig, get_profile
from spectral_lib.experiments.run_folder import RESULT_FILES
from spectral_lib.experiments.sources import build_source, split_batch

__all__ = [
    "RunResult",
    "run_experiment",
    "sample_run",
    "load_run_model",
    "evaluate_run",
    "load_run",
    "compute_metrics",
    "generate_samples",
    "reference_data",
    "default_run_dir",
    "EVALUATORS",
    "SAMPLERS",
    "REFERENCES",
    "CACHE_INSENSITIVE",
    "RESULT_FILES",
]

CACHE_INSENSITIVE = ("device", "log_every", "sample_every", "checkpoint_every", "num_workers")
"""Config keys that do not change a finished run's result: a cached run is reused when only these differ."""

@dataclass
class RunResult:
    """A finished run. ``samples`` are in the data range ``[-1, 1]``; ``wall_time`` is training + sampling +
    evaluation in seconds (summed over resumed sessions); ``cached`` says the result was read back from disk."""

    samples: torch.Tensor | None
    metrics: dict[str, float]
    config: ExperimentConfig
    out_dir: Path
    wall_time: float
    cached: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def figures(self) -> dict[str, Path]:
        """The figures of the run folder by name (``samples``, ``radial_spectrum``, ``samples_step000200``...)."""
        return {p.stem: p for p in sorted((self.out_dir / "figures").glob("*.png"))}


def default_run_dir(config: ExperimentConfig) -> Path:
    """``$SPECTRAL_RUNS_DIR`` (default ``runs``) / ``{experiment}-{profile}-{formulation}-{regularizer}-seed{seed}``."""
    root = Path(os.environ.get("SPECTRAL_RUNS_DIR", "runs"))
    return root / f"{config.experiment}-{config.profile}-{config.formulation}-{config.regularizer}-seed{config.seed}"


# ------------------------------------------------------------------------------------------------ sampling


@torch.no_grad()
def generate_samples(
    model: torch.nn.Module,
    formulation: Any,
    shape: tuple[int, ...],
    n: int,
    *,
    steps: int | None,
    seed: int,
    device: torch.device | str,
    batch_size: int = 256,
    sample_kwargs: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """``n`` samples of ``shape`` from ``formulation.sample`` in batches, clipped to ``[-1, 1]``, float32 on CPU.

    The formulation's sampler (see :func:`~spectral_lib.experiments.train.draw_samples`): DDPM ancestral (on a
    respaced sub-sequence of ``steps`` steps when ``steps < T``), DDIM (``steps``), EDM Heun (``steps``). One
    generator seeded with ``seed`` drives every batch, so the result depends only on the seed.
    """
    from tqdm import tqdm

    device = torch.device(device)
    model = model.to(device).eval()
    generator = torch.Generator(device=device).manual_seed(int(seed))
    out = []
    batches = [min(batch_size, n - i) for i in range(0, n, batch_size)]
    for b in tqdm(batches, desc="sampling", disable=not progress, dynamic_ncols=True):
        adapt_threads()
        x = train_mod.draw_samples(formulation, model, (b, *shape), steps=steps, generator=generator, device=device,
                                   sample_kwargs=sample_kwargs)
        out.append(x.float().clamp(-1.0, 1.0).cpu())
    return torch.cat(out)


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {}
"""``experiment -> fn(model, formulation, config, *, n, steps, seed, device, progress) -> samples`` for experiments
whose samples are not unconditional draws (the LJSpeech vocoder vocodes held-out utterances from their mels, see
:mod:`spectral_lib.experiments.speech`); the others use :func:`generate_samples`. Register others here."""

REFERENCES: dict[str, Callable[[ExperimentConfig, int], torch.Tensor]] = {}
"""``experiment -> fn(config, n) -> reference (n, C, ...)``: the data the samples are evaluated against, paired with
them when the experiment has its own sampler (the original held-out utterances); the others use training
examples (:func:`reference_data`)."""


def _draw(model: torch.nn.Module, formulation: Any, config: ExperimentConfig, shape: tuple[int, ...], *, n: int,
          steps: int | None, seed: int, device: torch.device | str, progress: bool) -> torch.Tensor:
    """The experiment's samples: its registered sampler (:data:`SAMPLERS`) or :func:`generate_samples`."""
    sampler = SAMPLERS.get(config.experiment)
    if sampler is not None:
        return sampler(model, formulation, config, n=n, steps=steps, seed=seed, device=device, progress=progress)
    return generate_samples(model, formulation, shape, n, steps=steps, seed=seed, device=device,
                            batch_size=config.sample_batch_size, sample_kwargs=config.sample_kwargs,
                            progress=progress)


def reference_data(config: ExperimentConfig, n: int) -> torch.Tensor:
    """``n`` training examples for the evaluation, drawn from their own seeded stream (not the training one), or the
    experiment's own reference (:data:`REFERENCES`). Dict batches give their signal (``split_batch``)."""
    if config.experiment in REFERENCES:
        return REFERENCES[config.experiment](config, n).float().cpu()
    source = build_source(config.data, data_dir=config.data_dir, seed=train_mod.stream_seed(config.seed, "reference"))
    g = torch.Generator().manual_seed(train_mod.stream_seed(config.seed, "reference"))
    x0, _ = split_batch(source.sample(n, g))
    return x0.float().cpu()


# ------------------------------------------------------------------------------------------------ metrics


def _spectral_metrics(samples: torch.Tensor, data: torch.Tensor, config: ExperimentConfig) -> dict[str, float]:
    from spectral_lib.metrics.spectrum import high_frequency_energy, high_frequency_energy_ratio, spectral_distance

    return {
        "spectral_distance": spectral_distance(samples, data),
        "hf_energy_ratio": high_frequency_energy_ratio(samples, data),
        "hf_energy": high_frequency_energy(samples),
        "hf_energy_data": high_frequency_energy(data),
    }


def _checkerboard_metrics(samples: torch.Tensor, data: torch.Tensor, config: ExperimentConfig) -> dict[str, float]:
    from spectral_lib.data.checkerboard import checkerboard_metrics

    check_sizes = tuple(config.data.get("check_sizes", (4,)))
    metrics = _spectral_metrics(samples, data, config)
    metrics.update(checkerboard_metrics(samples, check_sizes))
    return metrics


EVALUATORS: dict[str, Callable[[torch.Tensor, torch.Tensor, ExperimentConfig], dict[str, float]]] = {
    "checkerboard": _checkerboard_metrics,
}
"""``experiment -> fn(samples, data, config) -> metrics``; experiments not listed get the spectral metrics
(spectral distance and high-frequency energy ratio against the data). Register others here."""


def compute_metrics(config: ExperimentConfig, samples: torch.Tensor, data: torch.Tensor) -> dict[str, float]:
    """The experiment's metrics of ``samples`` against ``data`` (see :data:`EVALUATORS`)."""
    evaluator = EVALUATORS.get(config.experiment, _spectral_metrics)
    return {k: float(v) for k, v in evaluator(samples, data, config).items()}


# ------------------------------------------------------------------------------------------------ figures


def _write_figures(out_dir: Path, config: ExperimentConfig, samples: torch.Tensor, data: torch.Tensor) -> None:
    from spectral_lib import plotting
    from spectral_lib.metrics.spectrum import radial_power_spectrum

    label = f"{config.formulation} + {config.regularizer}"
    figures = out_dir / "figures"
    if samples.dim() == 4:
        n = min(len(samples), 64)
        fig = plotting.sample_grid(samples[:n], nrow=int(math.ceil(math.sqrt(n))), title=f"Samples ({label})")
        unit = "cycles/pixel"
    else:
        sample_rate = int(config.data.get("sample_rate", 22050))
        fig = plotting.plot_waveform(samples[:4], sample_rate=sample_rate, title=f"Samples ({label})")
        plotting.save_figure(plotting.plot_spectrogram(samples[0], sample_rate, title=f"Spectrogram ({label})"),
                             figures / "spectrogram.png")
        unit = "cycles/sample"
    plotting.save_figure(fig, figures / "samples.png")
    spectra = {label: radial_power_spectrum(samples), "data": radial_power_spectrum(data)}
    fig = plotting.plot_radial_spectra(spectra, reference="data", frequency_unit=unit,
                                       title=f"Power spectrum: {config.experiment}, {label}")
    plotting.save_figure(fig, figures / "radial_spectrum.png")


# ------------------------------------------------------------------------------------------------ run folders


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc}") from exc


def _read_config(out_dir: Path) -> ExperimentConfig:
    """The run's config from ``config.json`` (a clear error for a folder that is no run)."""
    values = run_folder.read_run_config(out_dir)
    if values is None:
        raise FileNotFoundError(f"{str(out_dir)!r} holds no run (no config.json)")
    return ExperimentConfig.from_dict(values)


def _read_log(out_dir: Path) -> list[dict[str, float]]:
    """The log lines; a damaged line (cut by a crash, edited) is skipped with a warning naming it."""
    path = out_dir / "log.jsonl"
    if not path.exists():
        return []
    lines, bad = [], []
    for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
            if not isinstance(line, dict) or "step" not in line:
                raise ValueError("not a log line")
            lines.append(line)
        except ValueError:
            bad.append(number)
    if bad:
        where = f"line {bad[0]}" if len(bad) == 1 else f"lines {', '.join(map(str, bad[:5]))}"
        warnings.warn(f"{str(path)!r}: skipping the damaged {where}", stacklevel=3)
    return lines


def _save_samples(path: Path, samples: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        torch.save(samples.contiguous(), tmp)


def _load_samples(path: Path) -> torch.Tensor:
    """``samples.pt``, read with ``weights_only=True``; anything but a float tensor of samples is refused, named."""
    if not path.exists():
        raise ValueError(f"{str(path)!r} does not exist: the run has not been sampled yet (see sample_run)")
    try:
        samples = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds, depending on the damage
        raise ValueError(f"{str(path)!r} cannot be read as a tensor of samples ({load_error_detail(exc)}); it is "
                         "damaged or not written by this library: sample the run again (sample_run(..., save=True))"
                         ) from exc
    if not isinstance(samples, torch.Tensor):
        raise ValueError(f"{str(path)!r} holds a {type(samples).__name__}, not a tensor of samples")
    if not samples.is_floating_point() or samples.dim() not in (3, 4) or samples.shape[0] == 0:
        raise ValueError(f"{str(path)!r} holds a {samples.dtype} tensor of shape {tuple(samples.shape)}; expected "
                         "float samples (N, C, H, W) or (N, C, T)")
    return samples


def load_run(out_dir: str | os.PathLike[str]) -> RunResult:
    """A finished run folder as a :class:`RunResult` (no training, no sampling)."""
    out_dir = Path(out_dir)
    if not (out_dir / "metrics.json").exists():
        raise ValueError(f"{str(out_dir)!r} holds no finished run (no metrics.json)")
    config = _read_config(out_dir)
    metrics = _read_json(out_dir / "metrics.json")
    return RunResult(
        samples=_load_samples(out_dir / "samples.pt"), metrics=metrics, config=config, out_dir=out_dir,
        wall_time=float(metrics.get("wall_time_s", float("nan"))), cached=True, history=_read_log(out_dir),
    )


def _differs(saved: ExperimentConfig, config: ExperimentConfig, ignore: tuple[str, ...]) -> dict:
    return {k: v for k, v in saved.diff(config).items() if k not in ignore}


def _prepare_out_dir(out_dir: Path, config: ExperimentConfig, *, resume: bool, overwrite: bool) -> RunResult | None:
    """Decide what happens to ``out_dir`` before training: nothing there (train), a finished run with the same
    settings (returned as the cache), a run to continue (its stale results removed) or to delete (``overwrite``).
    Everything is refused before anything is touched; a folder that is not a run is never written over or deleted."""
    run_folder.check_out_dir(out_dir)
    present = run_folder.refuse_foreign(out_dir, "delete" if overwrite else "write over")
    if not present:
        return None
    if overwrite:
        run_folder.remove_entries(out_dir, run_folder.run_entries())
        return None
    if not resume:
        raise FileExistsError(
            f"{str(out_dir)!r} already holds a run ({', '.join(present)}); pass resume=True to reuse or continue it, "
            "overwrite=True to start again, or choose another out"
        )
    saved_values = run_folder.read_run_config(out_dir)
    if saved_values is None or not (out_dir / "metrics.json").exists():
        return None  # an unfinished run: the trainer continues it (and refuses what cannot be continued)
    saved = ExperimentConfig.from_dict(saved_values)
    if not _differs(saved, config, CACHE_INSENSITIVE):
        return load_run(out_dir)
    # Refuse before touching anything when training could not continue (the trainer would refuse too).
    train_mod.check_resumable(saved.to_dict(), config, out_dir / "config.json")
    if config.steps < saved.steps:
        raise ValueError(
            f"{str(out_dir)!r} holds a run finished after {saved.steps} steps; resuming it with steps={config.steps} "
            f"would label its weights and metrics with {config.steps}: resume with steps >= {saved.steps}, or choose "
            "another out"
        )
    run_folder.remove_entries(out_dir, RESULT_FILES)  # they no longer answer this config; computed again
    return None


def run_experiment(
    experiment: str,
    *,
    profile: str = "cpu",
    regularizer: str = "none",
    formulation: str | None = None,
    out: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> RunResult:
    """Train ``experiment`` at ``profile`` with ``regularizer`` and ``formulation``, sample, evaluate, save.

    Args:
        experiment, profile: a named configuration (:func:`~spectral_lib.experiments.profiles.get_profile`).
        regularizer: a name of ``SPECTRAL_REGULARIZERS`` (``"none"`` is the baseline).
        formulation: ``"ddpm"`` (ancestral sampling, respaced to the profile's ``sample_steps``), ``"ddim"`` (DDPM
            training, deterministic DDIM sampling with ``sample_steps``) or ``"edm"`` (Heun with ``sample_steps``);
            ``None``: the profile's (``"ddpm"`` unless the profile says otherwise, e.g. ``"edm"`` for ``ffhq``).
        out: the run folder (default :func:`default_run_dir`).
        seed: overrides the profile's seed.
        resume: reuse a finished run with the same configuration (a cache) or continue an interrupted one.
        overwrite: delete an existing run in ``out`` (its known files only) and train from scratch.
        progress: progress bars for training and sampling.
        **overrides: any other config key (``steps=100``, ``lambda_spec=0.1``, ``data={"size": 16}``, ...).

    Returns:
        :class:`RunResult`. Under ``torchrun`` the ranks other than 0 return after training with no samples.

    Raises:
        FileExistsError: ``out`` holds a run and neither ``resume`` nor ``overwrite`` is set.
        ValueError: unknown names or keys (listing the valid ones), or resuming a run with another configuration.
    """
    from spectral_lib.diffusion import FORMULATIONS
    from spectral_lib.spectral import SPECTRAL_REGULARIZERS

    check_choice(regularizer, "regularizer", SPECTRAL_REGULARIZERS)
    changes = dict(overrides, regularizer=regularizer)
    if formulation is not None:
        check_choice(formulation, "formulation", FORMULATIONS)
        changes["formulation"] = formulation
    if seed is not None:
        changes["seed"] = seed
    config = get_profile(experiment, profile).replace(**changes)
    out_dir = Path(out) if out is not None else default_run_dir(config)
    cached = _prepare_out_dir(out_dir, config, resume=resume, overwrite=overwrite)
    if cached is not None:
        return cached
    trained = train_mod.train(config, out_dir, resume=resume, progress=progress)
    if not trained.dist.is_main:
        return RunResult(samples=None, metrics={}, config=config, out_dir=out_dir, wall_time=trained.wall_time)
    device = next(trained.ema_model.parameters()).device
    shape = tuple(load_checkpoint(train_mod.checkpoint_path(out_dir))["sample_shape"])
    t1 = time.perf_counter()
    samples = _draw(
        trained.ema_model, trained.formulation, config, shape, n=config.n_samples, steps=config.sample_steps,
        seed=train_mod.stream_seed(config.seed, "samples"), device=device, progress=progress,
    )
    sample_time = time.perf_counter() - t1
    _save_samples(out_dir / "samples.pt", samples)
    return _finish(out_dir, config, samples, trained.wall_time, sample_time, t1, history=_read_log(out_dir))


def _finish(
    out_dir: Path, config: ExperimentConfig, samples: torch.Tensor, train_time: float, sample_time: float,
    t_sampling: float, history: list[dict[str, float]],
) -> RunResult:
    """Evaluate, draw the figures and write metrics.json (last: it marks the run finished). ``wall_time_s`` is the
    training time plus everything since ``t_sampling``."""
    data = reference_data(config, len(samples))
    metrics = compute_metrics(config, samples, data)
    _write_figures(out_dir, config, samples, data)
    last = history[-1] if history else {}
    metrics.update(
        train_time_s=train_time,
        sample_time_s=sample_time,
        final_loss=float(last.get("loss", float("nan"))),
        steps=float(last.get("step", config.steps)),
    )
    metrics["wall_time_s"] = train_time + (time.perf_counter() - t_sampling)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return RunResult(samples=samples, metrics=metrics, config=config, out_dir=out_dir,
                     wall_time=metrics["wall_time_s"], cached=False, history=history)


def load_run_model(
    out_dir: str | os.PathLike[str],
    *,
    ema: bool = True,
    trust_pickle: bool = False,
    edm_repo: str | os.PathLike[str] | None = None,
) -> tuple[torch.nn.Module, Any, ExperimentConfig, dict]:
    """A run folder's network with its trained weights: ``(model, formulation, config, checkpoint state)``.

    The weights come from ``checkpoints/last.pt`` (``torch.load(weights_only=True)``: no code runs). A run fine-tuned
    from an EDM network pickle needs that pickle again for the network's code, and unpickling runs whatever the file
    holds: it is loaded only with ``trust_pickle=True``, and the ``edm_repo`` folder named in the run's
    ``config.json`` is never put on ``sys.path`` (pass ``edm_repo`` here, or make NVIDIA's code importable
    yourself). A DiffWave run's ``pretrained`` weights are not read again (the checkpoint replaces them).

    Raises:
        UntrustedPickleError: an EDM run without ``trust_pickle=True`` (the message names the pickle).
        CheckpointError: the checkpoint is missing, damaged, or does not fit the network.
    """
    out_dir = Path(out_dir)
    config = _read_config(out_dir)
    model_options = dict(config.model)
    if model_options.get("name") == "edm_pretrained":
        if not trust_pickle:
            raise train_mod.UntrustedPickleError(_untrusted_message(out_dir, model_options))
        model_options.pop("edm_repo", None)
        if edm_repo is not None:
            model_options["edm_repo"] = str(edm_repo)
    if model_options.get("name") == "diffwave":
        model_options.pop("pretrained", None)  # same architecture; the checkpoint holds the weights
    state = load_checkpoint(train_mod.checkpoint_path(out_dir))
    key = "ema" if ema else "model"
    ckpt = train_mod.checkpoint_path(out_dir)
    if key not in state or "sample_shape" not in state:
        missing = [k for k in (key, "sample_shape") if k not in state]
        raise CheckpointError(f"checkpoint {str(ckpt)!r} lacks {', '.join(map(repr, missing))}")
    _check_sample_shape(state["sample_shape"], ckpt)
    model = train_mod.build_model(dataclasses.replace(config, model=model_options), trust_pickle=trust_pickle)
    try:
        model.load_state_dict(state[key])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} does not fit the network of its config.json: "
                              f"{str(exc).strip().splitlines()[0]}") from exc
    return model, train_mod.build_formulation(config), config, state


def _untrusted_message(out_dir: Path, options: Mapping[str, Any]) -> str:
    message = (
        f"the run folder {str(out_dir)!r} was fine-tuned from the EDM network pickle {options.get('network')!r} "
        "(named in its config.json); rebuilding the network unpickles that file, and unpickling runs any code it "
        "holds. Pass trust_pickle=True (CLI: --trust-pickle) only if you trust that file"
    )
    if options.get("edm_repo"):
        message += (f". Its config.json also names edm_repo {options['edm_repo']!r}: a folder named in a data file is "
                    "never put on sys.path; pass edm_repo=... (CLI: --edm-repo) yourself if you trust it")
    return message


_MAX_SAMPLE_ELEMENTS = 1 << 28
"""The largest sample (elements of one item) a checkpoint may claim: 2^28 floats is 1 GiB; real ones are < 2^20."""


def _check_sample_shape(shape: Any, ckpt: Path) -> None:
    ok = (isinstance(shape, (list, tuple)) and len(shape) in (2, 3)
          and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
          and math.prod(shape) <= _MAX_SAMPLE_ELEMENTS)
    if not ok:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} has an implausible sample_shape {shape!r}; expected "
                              "[C, H, W] or [C, T] of positive sizes")


def sample_run(
    out_dir: str | os.PathLike[str],
    n: int | None = None,
    steps: int | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    ema: bool = True,
    progress: bool = False,
    save: bool = False,
    trust_pickle: bool = False,
    edm_repo: str | os.PathLike[str] | None = None,
) -> torch.Tensor:
    """Draw ``n`` samples (default ``config.n_samples``) from a run folder's checkpoint.

    Args:
        out_dir: a run folder with ``checkpoints/last.pt``.
        n, steps: number of samples and sampler steps (default: the config's).
        seed: generator seed (default: the run's own sampling seed, which reproduces ``samples.pt``).
        device: default ``default_device(config.device)``.
        ema: use the EMA weights (default, as the run does) or the raw trained weights.
        save: also write them to ``samples.pt`` (atomically).
        trust_pickle, edm_repo: for a run fine-tuned from an EDM pickle, see :func:`load_run_model`.

    Returns:
        ``(n, C, H, W)`` or ``(n, C, T)`` float32 samples in ``[-1, 1]`` on the CPU.
    """
    out_dir = Path(out_dir)
    model, formulation, config, state = load_run_model(out_dir, ema=ema, trust_pickle=trust_pickle,
                                                       edm_repo=edm_repo)
    dev = default_device(device if device is not None else config.device)
    samples = _draw(
        model, formulation, config, tuple(state["sample_shape"]), n=int(n or config.n_samples),
        steps=steps or config.sample_steps,
        seed=train_mod.stream_seed(config.seed, "samples") if seed is None else seed, device=dev, progress=progress,
    )
    if save:
        _save_samples(out_dir / "samples.pt", samples)
    return samples


def evaluate_run(out_dir: str | os.PathLike[str], *, write: bool = True) -> dict[str, float]:
    """Recompute the metrics of a run folder's ``samples.pt`` (and the figures); update ``metrics.json``."""
    out_dir = Path(out_dir)
    config = _read_config(out_dir)
    samples = _load_samples(out_dir / "samples.pt")
    data = reference_data(config, len(samples))
    metrics = compute_metrics(config, samples, data)
    if write:
        _write_figures(out_dir, config, samples, data)
        previous = _read_json(out_dir / "metrics.json") if (out_dir / "metrics.json").exists() else {}
        merged = {**previous, **metrics}
        atomic_write_text(out_dir / "metrics.json", json.dumps(merged, indent=2) + "\n")
        return merged
    return metrics
