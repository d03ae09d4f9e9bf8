"""The image chapter's runs as shipped results (book chapter 7, ``book/07_images.ipynb``).

Every model of the chapter is one :func:`~spectral_lib.experiments.images.evaluation.run_variant` passed through a
:class:`~spectral_lib.experiments.shipped.ShippedResults`: at ``cpu`` the shipped run is read back in seconds (no
checkpoint), at ``smoke`` it trains from scratch, at ``gpu``/``full`` it fine-tunes NVIDIA's network in
``runs_root`` and resumes there after an interruption::

    study = ImageStudy(profile, retrain=retrain, dataset=dataset, runs_root="runs/07_images")
    runs = study.runs()                        # {(network, variant, seed): ImageRun}, planned_runs(profile)
    per_seed = study.seed_metrics(runs, data)  # {run name: {"fd_local": [...], "hf_energy_ratio": [...]}}
    cpu = study.cpu_results(runs, per_seed)    # the shipped cpu runs (at cpu: these), or None

What is shipped (``results/cpu/07_images/``, see :mod:`~spectral_lib.experiments.shipped`):

* every run of :func:`~spectral_lib.experiments.images.profiles.planned_runs` at ``cpu``, under its run folder's
  name (``baseline-seed0``, ``wavelet-weighted-seed0``...): configuration, metrics, training log, its first
  :data:`SHOWN_SAMPLES` samples (float16: what the sample panels and the crops show) and :data:`SUMMARY`, the
  radially averaged power spectrum of *all* its samples (the spectra figures);
* ``fd-<run name>`` (JSON): the run's per-seed Fréchet distance on local features and high-frequency energy ratio
  (:func:`~spectral_lib.experiments.images.evaluation.metrics_over_seeds`), stale with its run or its settings.

At every other profile :meth:`ImageStudy.cpu_results` only reads the shipped runs (``None`` while one is missing or
stale), so a page built at ``smoke`` quotes the ``cpu`` findings and never trains them.

Making the shipped results (on an idle machine; about 25 minutes on 2 cores: eleven models of about 85 s of
training each, plus their samples and the per-seed metrics)::

    python scripts/execute_notebooks.py --profile cpu --retrain --out _build/src --only book/07_images.ipynb
    git add results/cpu/07_images

Offline models always train from scratch (their run folders under ``runs_root`` are overwritten), so no run folder
of an older code version is ever reused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spectral_lib.experiments.images.evaluation import metrics_over_seeds, prepare_data, run_variant, variant_config
from spectral_lib.experiments.images.profiles import OFFLINE_EXPERIMENT, Variant, planned_runs, settings
from spectral_lib.experiments.profiles import ExperimentConfig
from spectral_lib.experiments.shipped import SHIPPED_PROFILE, ShippedResults

__all__ = [
    "CHAPTER",
    "SHOWN_SAMPLES",
    "SUMMARY",
    "FD_VERSION",
    "MISSING_CPU",
    "ImageRun",
    "CpuResults",
    "run_name",
    "image_summary",
    "train_run",
    "ImageStudy",
    "loader_speed",
    "prepare_real_path",
]

CHAPTER = "07_images"
"""The chapter whose shipped results these are (``results/cpu/07_images/``)."""
SHOWN_SAMPLES = 16
"""Samples a run keeps (and ships): the sample panels show 4 x 4 per model, and the crops are chosen among them."""
SUMMARY = "image_summary.json"
"""The run folder's file with the radially averaged power spectrum of all its samples (:func:`image_summary`)."""
FD_VERSION = 1
"""Part of the key of the shipped per-seed metrics: bump it when how they are computed changes."""
FEATURE_SEED = 0
"""Seed of the random convolutional features of the FD (the run's own ``fd_local`` uses the same)."""

MISSING_CPU = (
    "The shipped <code>cpu</code> results of this chapter are not in <code>results/</code> yet, or no longer match "
    "the <code>cpu</code> profile ({reason}). Execute the chapter at <code>profile = \"cpu\"</code> with "
    "<code>retrain = True</code> (or <code>make book RETRAIN=1</code>) and commit <code>results/cpu/07_images</code>. "
    "Until then the findings below read <em>nan</em>."
)
"""The note the chapter shows while the ``cpu`` results are not shipped (``{reason}``: :meth:`ImageStudy.missing_note`
fills it in)."""


# ------------------------------------------------------------------------------------------------ one run


@dataclass
class ImageRun:
    """What the chapter shows of one trained model.

    Attributes:
        name: the run's name: its run folder's and its shipped entry's (:func:`run_name`).
        network: ``"vp"``/``"ve"`` on the real path, ``None`` offline.
        variant, seed: the Table 1 row (or ours) and the training seed.
        config: its configuration.
        samples: its first :data:`SHOWN_SAMPLES` samples ``(n, C, H, W)`` in ``[-1, 1]`` (same starting noise for
            every run of a profile).
        metrics: the run's ``metrics.json`` (``fd_local``, ``hf_energy_ratio``, ``train_time_s``...).
        history: the training log, one dict per logged step (``loss``, ``diffusion``, ``spectral``...).
        summary: the run's :data:`SUMMARY`.
        source: ``"shipped"``, ``"trained now"`` or ``"run folder (cache)"``.
        out_dir: the run folder (the shipped folder for a shipped run: no checkpoint there).
    """

    name: str
    network: str | None
    variant: Variant
    seed: int
    config: ExperimentConfig
    samples: torch.Tensor
    metrics: dict[str, float]
    history: list[dict[str, float]]
    summary: dict[str, Any]
    source: str
    out_dir: Path

    @property
    def label(self) -> str:
        """``"baseline"``, ``"HAAR (weighted)"``, ``"baseline, training seed 1"``; ``"VP: AMP (unweighted)"`` on the
        real path."""
        label = self.variant.label + (f", training seed {self.seed}" if self.seed else "")
        return f"{self.network.upper()}: {label}" if self.network else label

    def spectrum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(frequencies in cycles/pixel, power)`` of all the run's samples (:data:`SUMMARY`)."""
        spectrum = self.summary["spectrum"]
        return torch.tensor(spectrum["freqs"], dtype=torch.float64), torch.tensor(spectrum["power"],
                                                                                dtype=torch.float64)

    def last(self, key: str, n: int = 5) -> float:
        """Mean of the last ``n`` logged values of ``key`` (e.g. ``"spectral"``, ``"diffusion"``); NaN if none."""
        values = [float(line[key]) for line in self.history if key in line][-n:]
        return sum(values) / len(values) if values else float("nan")


@dataclass
class CpuResults:
    """The shipped ``cpu`` results the chapter's findings come from: ``runs`` by ``(None, variant, seed)`` and their
    per-seed metrics by run name; ``provenance``: commit, date and hardware of the shipped baseline."""

    runs: dict[tuple[str | None, Variant, int], ImageRun]
    per_seed: dict[str, dict[str, list[float]]]
    provenance: dict[str, str]


def run_name(variant: Variant, seed: int = 0, network: str | None = None) -> str:
    """The run folder's name, which is also the shipped entry's: ``baseline-seed0``, ``vp-wavelet-weighted-seed0``."""
    return (f"{network}-" if network else "") + f"{variant.key}-seed{int(seed)}"


def _round(values: Iterable[float]) -> list[float]:
    return [float(f"{float(v):.6g}") for v in values]


def image_summary(samples: torch.Tensor) -> dict[str, Any]:
    """The run's :data:`SUMMARY`: ``{"n": samples, "spectrum": {"freqs", "power"}}``, the radially averaged power
    spectrum of ``samples`` (:func:`~spectral_lib.metrics.spectrum.radial_power_spectrum`)."""
    from spectral_lib.metrics.spectrum import radial_power_spectrum

    freqs, power = radial_power_spectrum(samples.float())
    return {"n": int(samples.shape[0]), "spectrum": {"freqs": _round(freqs), "power": _round(power)}}


def train_run(profile: str, variant: Variant, *, root: str | os.PathLike[str], fresh: bool, **options: Any) -> Any:
    """Train one variant (:func:`~spectral_lib.experiments.images.evaluation.run_variant`; ``fresh``: from scratch,
    replacing a run in its folder), write the run's :data:`SUMMARY` and return its
    :class:`~spectral_lib.experiments.run.RunResult` with the first :data:`SHOWN_SAMPLES` samples only (what is
    shipped)."""
    from spectral_lib.experiments.checkpoint import atomic_write_text

    result = run_variant(profile, variant, root=root, fresh=fresh, **options)
    if result.samples is None:  # a torchrun rank other than 0
        return result
    path = Path(result.out_dir) / SUMMARY
    if not result.cached or not path.exists():
        atomic_write_text(path, json.dumps(image_summary(result.samples)) + "\n")
    return dataclasses.replace(result, samples=result.samples[:SHOWN_SAMPLES])


def _image_run(name: str, network: str | None, variant: Variant, seed: int, result: Any, source: str) -> ImageRun:
    from spectral_lib.experiments.shipped import ShippedResultError

    path = Path(result.out_dir) / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShippedResultError(f"run {name!r} has no readable {SUMMARY} in {str(path.parent)!r} ({exc}); train it "
                                 "again (retrain = True)") from exc
    return ImageRun(name=name, network=network, variant=variant, seed=seed, config=result.config,
                    samples=result.samples[:SHOWN_SAMPLES], metrics=dict(result.metrics),
                    history=list(result.history), summary=summary, source=source, out_dir=Path(result.out_dir))


# ------------------------------------------------------------------------------------------------ the study


class ImageStudy:
    """The chapter's models at one profile, shipped at ``cpu``.

    Args:
        profile: the page's profile (``smoke``, ``cpu``, ``gpu``, ``full``).
        retrain: at ``cpu``, train afresh and overwrite the shipped results.
        dataset: the data set of the real path (``cifar10``, ``afhqv2``, ``ffhq``); offline always ``ffhq``'s
            stand-in.
        runs_root: the run folders (checkpoints included). Offline every run trains from scratch there; on the
            real path a finished run is read back and an interrupted one continues (put it on Google Drive on Colab).
        data_dir: the prepared data (real path; :func:`prepare_real_path`).
        edm_repo, trust_pickle: NVIDIA's code folder, and the caller's choice to unpickle the EDM networks of the
            real path's run folders again (per-seed metrics and FID); never taken from a run folder.
        results_root: the ``results/`` folder (default :func:`~spectral_lib.experiments.shipped.results_root`).
        progress: progress bars (default: on the real path only).
    """

    def __init__(self, profile: str, *, retrain: bool = False, dataset: str = OFFLINE_EXPERIMENT,
                 runs_root: str | os.PathLike[str] = "runs/07_images", data_dir: str | os.PathLike[str] | None = None,
                 edm_repo: str | os.PathLike[str] | None = None, trust_pickle: bool = False,
                 results_root: str | os.PathLike[str] | None = None, progress: bool | None = None) -> None:
        self.profile = str(profile)
        self.settings = settings(self.profile)
        self.dataset = dataset if self.settings.real else OFFLINE_EXPERIMENT
        self.runs_root = Path(runs_root)
        self.data_dir, self.edm_repo, self.trust_pickle = data_dir, edm_repo, bool(trust_pickle)
        self.switch = ShippedResults(CHAPTER, self.profile, retrain=retrain, root=results_root)
        self.store = self.switch.store
        self.progress = self.settings.real if progress is None else bool(progress)
        self.missing_reason = ""

    def config(self, variant: Variant, seed: int = 0, network: str | None = None,
               profile: str | None = None) -> ExperimentConfig:
        """The configuration of one model (:func:`~spectral_lib.experiments.images.evaluation.variant_config`)."""
        profile = profile or self.profile
        real = settings(profile).real
        return variant_config(profile, variant, dataset=self.dataset if real else OFFLINE_EXPERIMENT, seed=seed,
                              network=network, edm_repo=self.edm_repo if real else None,
                              data_dir=self.data_dir if real else None)

    def run(self, variant: Variant, seed: int = 0, network: str | None = None) -> ImageRun:
        """One model, shipped, read back or trained now."""
        name = run_name(variant, seed, network)
        config = self.config(variant, seed, network)
        restored = len(self.switch.restored)
        result = self.switch.run(name, config, lambda: train_run(
            self.profile, variant, root=self.runs_root, fresh=not self.settings.real, dataset=self.dataset,
            seed=seed, network=network, edm_repo=self.edm_repo if network else None, data_dir=config.data_dir,
            progress=self.progress))
        source = ("shipped" if len(self.switch.restored) > restored
                  else "run folder (cache)" if result.cached else "trained now")
        return _image_run(name, network, variant, seed, result, source)

    def runs(self) -> dict[tuple[str | None, Variant, int], ImageRun]:
        """Every model of :func:`~spectral_lib.experiments.images.profiles.planned_runs` at this profile."""
        return {(network, variant, seed): self.run(variant, seed, network)
                for network, variant, seed in planned_runs(self.profile)}

    def fd_key(self, profile: str | None = None) -> dict[str, Any]:
        """The settings the per-seed metrics depend on (their shipped entries' key)."""
        chosen = settings(profile or self.profile)
        return {"version": FD_VERSION, "seeds": list(chosen.fd_seeds), "n": chosen.fd_samples,
                "reference": chosen.fd_reference, "feature_seed": FEATURE_SEED}

    def seed_metrics(self, runs: Mapping[Any, ImageRun], reference: torch.Tensor) -> dict[str, dict[str, list[float]]]:
        """Per run, fresh samples for every sampling seed of the settings against ``reference`` (the first
        ``fd_reference`` training images): ``{run name: {"fd_local": [...], "hf_energy_ratio": [...]}}``, shipped at
        ``cpu`` (entry ``fd-<run name>``)."""
        if len(reference) != self.settings.fd_reference:
            raise ValueError(f"reference holds {len(reference)} images; the settings of {self.profile!r} compare with "
                             f"the first {self.settings.fd_reference} training images")
        out = {}
        for run in runs.values():
            def compute(run: ImageRun = run) -> dict[str, list[float]]:
                return metrics_over_seeds(run.out_dir, reference, seeds=self.settings.fd_seeds,
                                          n=self.settings.fd_samples, feature_seed=FEATURE_SEED,
                                          trust_pickle=self.trust_pickle, edm_repo=self.edm_repo)

            out[run.name] = self.switch.json(f"fd-{run.name}", compute, key=self.fd_key(), depends_on=[run.name])
        return out

    def cpu_results(self, runs: Mapping[Any, ImageRun] | None = None,
                    per_seed: Mapping[str, Mapping[str, list[float]]] | None = None) -> CpuResults | None:
        """The shipped ``cpu`` results: at ``cpu`` the page's own ``runs`` and ``per_seed`` (which went through the
        switch); elsewhere read from the store, ``None`` (and :attr:`missing_reason`) while one is missing or stale."""
        if self.switch.shipping:
            if runs is None or per_seed is None:
                raise ValueError("at cpu, pass the page's runs and per-seed metrics")
            return CpuResults(dict(runs), dict(per_seed), self._provenance())
        found, metrics = {}, {}
        for network, variant, seed in planned_runs(SHIPPED_PROFILE):
            name = run_name(variant, seed, network)
            reason = self.store.stale_reason(name, config=self.config(variant, seed, network, SHIPPED_PROFILE))
            fd_reason = self.store.stale_reason(f"fd-{name}", key=self.fd_key(SHIPPED_PROFILE))
            if reason or fd_reason:
                self.missing_reason = f"{name}: {reason or fd_reason}"
                return None
            result = self.store.load_run(name, on_stale="ignore")
            found[network, variant, seed] = _image_run(name, network, variant, seed, result, "shipped")
            metrics[name] = self.store.load_json(f"fd-{name}", on_stale="ignore")
        return CpuResults(found, metrics, self._provenance())

    def missing_note(self) -> str:
        """:data:`MISSING_CPU` with the reason :meth:`cpu_results` found (HTML-escaped)."""
        import html

        return MISSING_CPU.format(reason=html.escape(self.missing_reason or "nothing shipped"))

    def _provenance(self) -> dict[str, str]:
        """Commit, date and hardware of the shipped baseline (at ``cpu`` after a retrain: this build's)."""
        name = run_name(Variant())
        if not self.store.has(name):
            return {"commit": "this build", "date": time.strftime("%Y-%m-%d"), "hardware": "this machine"}
        entry = self.store.entry(name)
        commit = str(entry.get("commit", "?")) + (" + local changes" if entry.get("dirty") else "")
        return {"commit": commit, "date": str(entry.get("date", "?")), "hardware": str(entry.get("hardware", "?"))}

    # -------------------------------------------------------------------------------------- real path

    def measure_fid(self, runs: Mapping[Any, ImageRun]) -> dict[str, Path]:
        """FID of every run (:func:`~spectral_lib.experiments.images.fid.fid_for_run`, with this study's
        ``trust_pickle`` and ``edm_repo``) written as a result file under ``results/<profile>/<dataset>/``; returns
        ``{run name: result file}``. Real path only."""
        from spectral_lib.experiments.images.fid import fid_for_run
        from spectral_lib.experiments.images.profiles import DATASETS
        from spectral_lib.experiments.images.results import write_result

        if not self.settings.real:
            raise ValueError(f"FID is measured on the real path (gpu, full), not at {self.profile!r}")
        written = {}
        for run in runs.values():
            fid = fid_for_run(run.out_dir, n=self.settings.fid_samples, seeds=self.settings.fid_seeds,
                              reference=DATASETS[self.dataset].fid_reference, batch_size=self.settings.fid_batch_size,
                              autocast=self.settings.fid_autocast, sampler_dtype=self.settings.sampler_dtype,
                              progress=self.progress, trust_pickle=self.trust_pickle, edm_repo=self.edm_repo)
            written[run.name] = write_result(self.profile, self.dataset, run.network, run.variant, fid,
                                             run_metrics=run.metrics, config=run.config, seed=run.seed)
        return written


# ------------------------------------------------------------------------------------------------ helpers


def loader_speed(folder: str | os.PathLike[str], resolution: int, n: int) -> dict[str, float]:
    """Images per second of :class:`~spectral_lib.data.images.ImageFolderDataset` on ``n`` images of ``folder``:
    ``first`` (decode, resize, write the cache; a fresh cache folder) and ``cached`` (read back), and ``n``."""
    import tempfile

    from spectral_lib.data.images import ImageFolderDataset

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        data = ImageFolderDataset(folder, resolution, cache_dir=cache, max_images=n, progress=False)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = ImageFolderDataset(folder, resolution, cache_dir=cache, max_images=n, progress=False)
        data.get_batch(range(len(data)))
        cached = time.perf_counter() - t0
    return {"n": len(data), "first": len(data) / first, "cached": len(data) / max(cached, 1e-9)}


def prepare_real_path(dataset: str, data_dir: str | os.PathLike[str] | None, edm_repo: str | os.PathLike[str], *,
                      trust_pickle: bool, tf32: bool = False) -> Path:
    """Everything the real path needs before it trains; returns the prepared data (an EDM zip).

    1. ``trust_pickle`` must be ``True``: the real path unpickles NVIDIA's EDM networks (unpickling runs the code a
       pickle holds) and imports NVIDIA's code from ``edm_repo``; the caller says so (see SECURITY.md).
    2. A CUDA GPU (the networks have 56-62 M parameters; FID samples tens of thousands of images).
    3. NVIDIA's code (``git clone`` of :data:`~spectral_lib.models.edm_pretrained.EDM_CODE_URL` into ``edm_repo``
       when missing) on ``sys.path``, and ``torch-fidelity`` (Inception-v3 for FID; installed with pip when
       missing).
    4. TF32 matrix products as ``tf32`` asks (the profile's choice, recorded in its results).
    5. The data set (:func:`~spectral_lib.experiments.images.evaluation.prepare_data`: downloaded and converted once
       for ``cifar10``/``afhqv2``; ``ffhq`` from ``data_dir``).
    """
    import importlib.util
    import subprocess
    import sys

    from spectral_lib.models.edm_pretrained import EDM_CODE_URL, add_edm_code_to_path

    if not trust_pickle:
        raise ValueError("the real path fine-tunes NVIDIA's EDM network pickles (unpickling runs the code they hold) "
                         f"and imports NVIDIA's code from edm_repo {str(edm_repo)!r}: set trust_pickle = True in the "
                         "parameters if you trust them (see SECURITY.md)")
    if not torch.cuda.is_available():
        raise RuntimeError("the real path (gpu, full) fine-tunes 56-62 M-parameter networks and samples thousands of "
                           "images for FID: it needs a GPU (Colab: Runtime > Change runtime type > GPU)")
    if not Path(edm_repo, "torch_utils").is_dir():
        subprocess.run(["git", "clone", "--depth", "1", EDM_CODE_URL, str(edm_repo)], check=True)
    if importlib.util.find_spec("torch_fidelity") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "torch-fidelity"], check=True)
    add_edm_code_to_path(edm_repo)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(tf32)
    return prepare_data(dataset, data_dir)
