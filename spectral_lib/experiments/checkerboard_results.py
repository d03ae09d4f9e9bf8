"""What chapters 5 and 6 show, through the shipped ``cpu`` results: their runs, the DDIM samples of chapter 6's DDPM
networks and the seed checks, and the read-only view of the shipped results that their prose quotes at every profile.

    study = CheckerboardStudy(CHAPTER_5, profile, retrain=retrain, runs_root="runs")
    results = study.comparison()                # {regularizer: RunResult}
    seeds = study.seed_check()                  # {Variant: {seed: scores}}
    cpu, profiles = study.findings()            # the shipped cpu results (this study at cpu) and the claims' profiles

What is shipped (``results/cpu/<chapter>/``, see :mod:`~spectral_lib.experiments.shipped`):

* every run a chapter shows, under its run folder's name (:func:`run_name`, e.g.
  ``checkerboard-cpu-edm-wavelet-lam1-seed0``): config, metrics, training log and float16 samples, no checkpoint.
  Chapter 5 owns its comparison runs; chapter 6 reads those it shares with chapter 5 from chapter 5's shipped
  results (``shared=``), so that both chapters quote one baseline and one Haar run;
* ``seed_check`` (JSON): the scores of the seed check's extra training seeds (their samples are not shipped);
* ``ddim_samples`` (chapter 6, arrays): chapter 6's DDPM networks sampled with DDIM (:data:`~.ablation.DDIM_ETAS`),
  so that chapter 6 at ``cpu`` needs no checkpoint.

At ``cpu`` the shipped entries are read back in seconds; ``retrain=True`` (``make book RETRAIN=1``) trains afresh
through :func:`~spectral_lib.experiments.ablation.run_variant` (whose run folders under ``runs_root`` are a cache:
chapter 6 executed after chapter 5 in the same folder trains only its own runs) and ships the result. At ``smoke`` and
``gpu`` everything is computed afresh and nothing is shipped. Scores are computed on the page from the samples,
except for the seed check, whose JSON carries :data:`SCORES_VERSION` in its key. The keys of the two derived
entries also hold a digest of the fingerprint of every run they were computed from, so that they are recomputed when
those runs would be trained differently today. Computing them needs the runs' checkpoints: where a run folder is
missing (a fresh clone), :func:`~.ablation.run_variant` trains it again first.

Making the shipped results (on an idle machine; chapter 5 first, so that chapter 6 finds its runs in the cache)::

    rm -rf _build/src/book/runs      # no run folder of an older code version may be reused
    python scripts/execute_notebooks.py --profile cpu --retrain --out _build/src \
        --only book/05_checkerboard.ipynb book/06_ablation.ipynb
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from spectral_lib.experiments.ablation import (
    ABLATION,
    ABLATION_SEEDS,
    COMPARISON_SEEDS,
    DDIM_ETAS,
    DISPLAY_NAMES,
    Variant,
    ablation_variants,
    checkerboard_scores,
    comparison_variants,
    pointwise_loss_at_end,
    run_variant,
    sample_with,
    variant_config,
    variant_dir,
)
from spectral_lib.experiments.profiles import ExperimentConfig, get_profile
from spectral_lib.experiments.shipped import SHIPPED_PROFILE, ShippedResultError, ShippedResults, run_fingerprint

__all__ = ["CHAPTER_5", "CHAPTER_6", "SCORES_VERSION", "SWEEP_SAMPLERS", "run_name", "spectral_lambda",
           "variant_name", "compared", "listed", "SweepPoint", "CheckerboardStudy"]

CHAPTER_5 = "05_checkerboard"
CHAPTER_6 = "06_ablation"
SCORES_VERSION = 1
"""Part of the key of the shipped seed checks: bump it when :func:`~.ablation.checkerboard_scores` changes."""

_SEEDS = {CHAPTER_5: COMPARISON_SEEDS, CHAPTER_6: ABLATION_SEEDS}


def run_name(config: ExperimentConfig) -> str:
    """The name a run is shipped under: its run folder's (:func:`~.ablation.variant_dir`)."""
    return variant_dir("", config).name


def spectral_lambda(config: ExperimentConfig) -> float:
    """The weight of the spectral term a run trained with: its λ, or 0 for the baseline (which ignores λ)."""
    return 0.0 if config.regularizer == "none" else float(config.lambda_spec)


def variant_name(variant: Variant, config: ExperimentConfig | None = None) -> str:
    """A variant's name in tables and legends: the regularizer's :data:`~.ablation.DISPLAY_NAMES` entry, with λ
    (``config``'s, when the variant leaves it to the profile) for a spectral term, e.g. ``"Haar wavelet, λ=0.3"``."""
    name = DISPLAY_NAMES[variant.regularizer]
    lam = variant.lambda_spec if config is None else config.lambda_spec
    return name if variant.regularizer == "none" or lam is None else f"{name}, λ={lam:g}"


def listed(values: Mapping[float, float], fmt: str, symbol: str = "λ") -> str:
    """``"0.45 at λ = 0.1, 0.58 at λ = 0.3 and 0.75 at λ = 1"`` for ``{λ: value}`` (sorted by λ), for prose."""
    parts = [f"{format(v, fmt)} at {symbol} = {k:g}" for k, v in sorted(values.items())]
    if not parts:
        raise ValueError("listed needs at least one value")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def compared(value: float, other: float, *, tolerance: float) -> str:
    """``"more than"``, ``"fewer than"`` or ``"about as many as"``: how ``value`` compares with ``other`` (within
    ``tolerance``), for prose that quotes numbers it cannot know in advance."""
    if abs(float(value) - float(other)) <= tolerance:
        return "about as many as"
    return "more than" if value > other else "fewer than"


def _digest(config: ExperimentConfig) -> str:
    """A short digest of the run's fingerprint: part of a derived entry's key, so that the entry is recomputed when a
    run it was made from would be trained differently today (even after that run was shipped again)."""
    text = json.dumps(run_fingerprint(config), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _variant_key(variant: Variant) -> str:
    lam = "profile" if variant.lambda_spec is None else f"{variant.lambda_spec:g}"
    return f"{variant.regularizer}|{lam}|{variant.formulation or 'profile'}"


SWEEP_SAMPLERS = {"edm": "EDM, Heun", "ddpm": "DDPM, ancestral", "ddim": "DDPM, DDIM η=0"}
"""Names of the samplers in chapter 6's formulation comparison (DDIM: DDPM's networks sampled with η = 0)."""


class SweepPoint(NamedTuple):
    """One run of a sweep: its λ (0 for the baseline), scores, pointwise loss at the end of training and wall time."""

    lam: float
    scores: dict[str, float]
    loss: float
    wall_time: float


class CheckerboardStudy:
    """The runs and derived results of chapter 5 or 6 at one profile, shipped at ``cpu``.

    Args:
        chapter: :data:`CHAPTER_5` or :data:`CHAPTER_6` (their seed checks differ).
        profile: the page's profile.
        retrain: train afresh at ``cpu`` and overwrite the shipped results.
        runs_root: the run folders (checkpoints included), a cache shared by the two chapters.
        results_root: the ``results/`` folder (default :func:`~spectral_lib.experiments.shipped.results_root`).
        shared: chapter 5's study, whose runs chapter 6 reuses.
        read_only: only read the shipped results (never train); :class:`ShippedResultError` when one is missing.
        progress: progress bars while training.
    """

    def __init__(self, chapter: str, profile: str, *, retrain: bool = False, runs_root: str | os.PathLike[str] = "runs",
                 results_root: str | os.PathLike[str] | None = None, shared: CheckerboardStudy | None = None,
                 read_only: bool = False, progress: bool = False) -> None:
        if chapter not in _SEEDS:
            raise ValueError(f"chapter must be {CHAPTER_5!r} or {CHAPTER_6!r}, got {chapter!r}")
        self.chapter, self.profile = chapter, str(profile)
        self.config = get_profile("checkerboard", self.profile)
        self.check_sizes = tuple(self.config.data["check_sizes"])
        self.runs_root, self.results_root = runs_root, results_root
        self.switch = ShippedResults(chapter, self.profile, retrain=retrain, root=results_root)
        self.store = self.switch.store
        self.shared, self.read_only, self.progress = shared, read_only, progress
        self.guest = False  # a study whose runs another chapter's page shows (see _quiet)
        if shared is not None:
            shared.guest = True
        self.sources: dict[str, str] = {}
        self._data: torch.Tensor | None = None

    # -------------------------------------------------------------------------------------- data and scores

    @property
    def data(self) -> torch.Tensor:
        """The held-out boards every sample is scored against: ``(n_samples, C, H, W)`` (the seed-0 stream)."""
        if self._data is None:
            from spectral_lib.experiments.run import reference_data

            self._data = reference_data(self.config, self.config.n_samples)
        return self._data

    def scores(self, samples: torch.Tensor) -> dict[str, float]:
        """:func:`~.ablation.checkerboard_scores` of ``samples`` against :attr:`data`."""
        return checkerboard_scores(samples, self.data, self.check_sizes)

    # -------------------------------------------------------------------------------------- runs

    def variant_config(self, variant: Variant, seed: int = 0) -> ExperimentConfig:
        return variant_config(variant, profile=self.profile, seed=seed)

    def owns(self, name: str) -> bool:
        """Whether ``name`` is one of this chapter's shipped runs that another chapter may share (chapter 5's
        comparison)."""
        return self.chapter == CHAPTER_5 and name in {run_name(self.variant_config(v))
                                                      for v in comparison_variants(self.profile)}

    def run(self, variant: Variant, seed: int = 0) -> Any:
        """The finished run of ``variant`` (shipped, cached or trained now): a
        :class:`~spectral_lib.experiments.run.RunResult`."""
        config = self.variant_config(variant, seed)
        name = run_name(config)
        if self.shared is not None and self.shared.owns(name):
            return self.shared.run(variant, seed)
        if self.read_only:
            self.sources[name] = "shipped"
            return self.store.load_run(name, on_stale="warn")
        if self._quiet(name, config=config):
            self.sources[name] = "shipped"
            return self.store.load_run(name, on_stale="ignore")
        restored = len(self.switch.restored)
        result = self.switch.run(name, config, lambda: self._train(variant, seed))
        if len(self.switch.restored) > restored:
            self.sources[name] = "shipped"
        else:
            self.sources[name] = "run folder (cache)" if result.cached else "trained now"
        return result

    def _quiet(self, name: str, **asked: Any) -> bool:
        """Whether to read ``name`` from the store directly: on another chapter's page (:attr:`guest`), a current
        shipped entry is read without this chapter's "shipped results" note, so that the page shows one note (its
        own chapter's). Anything missing or stale still goes through the switch, with its warning."""
        if not (self.guest and self.switch.shipping and not self.switch.retrain):
            return False
        return self.store.stale_reason(name, **asked) is None

    def _train(self, variant: Variant, seed: int) -> Any:
        return run_variant(variant, profile=self.profile, root=self.runs_root, seed=seed, progress=self.progress,
                           replace_stale=True)

    def comparison(self) -> dict[str, Any]:
        """Chapter 5's runs: ``{regularizer: RunResult}`` for :func:`~.ablation.comparison_variants`."""
        return {v.regularizer: self.run(v) for v in comparison_variants(self.profile)}

    def sweep(self) -> dict[Variant, Any]:
        """Chapter 6's λ sweep: ``{Variant: RunResult}``, the baseline first."""
        return {v: self.run(v) for v in ABLATION[self.profile].lambda_variants()}

    def formulations(self) -> dict[Variant, Any]:
        """Chapter 6's formulation comparison: ``{Variant: RunResult}``."""
        return {v: self.run(v) for v in ABLATION[self.profile].formulation_variants()}

    def plan(self) -> list[tuple[Variant, str, str]]:
        """``(variant, run name, what happens)`` for every run of chapter 6's grid, before anything runs."""
        rows, seen = [], set()
        for variant in ablation_variants(self.profile):
            config = self.variant_config(variant)
            name = run_name(config)
            if name in seen:  # e.g. the EDM pair of the formulation comparison: the sweep's runs
                continue
            seen.add(name)
            shared = self.shared is not None and self.shared.owns(name)
            status = (self.shared if shared else self)._status(name, config)
            rows.append((variant, name, status + (" (chapter 5's run)" if shared else "")))
        return rows

    def _status(self, name: str, config: ExperimentConfig) -> str:
        if self.read_only or (self.switch.shipping and not self.switch.retrain):
            reason = self.store.stale_reason(name, config=config)
            return "shipped result" if reason is None else f"trains now: {reason}"
        finished = (variant_dir(self.runs_root, config) / "metrics.json").exists()
        return "run folder (cache)" if finished else "trains now"

    def points(self, runs: Mapping[Variant, Any]) -> dict[Variant, SweepPoint]:
        """``{Variant: SweepPoint}`` of runs (:meth:`sweep`): λ, scores, pointwise loss at the end, wall time."""
        return {v: SweepPoint(spectral_lambda(r.config), self.scores(r.samples), pointwise_loss_at_end(r),
                              r.wall_time) for v, r in runs.items()}

    def sampler_sets(self, runs: Mapping[Variant, Any],
                     ddim: Mapping[tuple[Variant, float], torch.Tensor]) -> dict[tuple[str, str], tuple[Any, Any]]:
        """Chapter 6's formulation comparison by sampler: ``{(sampler, variant name): (samples, run)}``, each EDM
        run with its Heun samples, each DDPM run with its ancestral samples and with DDIM's (η = 0, from
        :meth:`ddim_samples`). Sampler names: :data:`SWEEP_SAMPLERS`."""
        out = {}
        for v, r in runs.items():
            name = variant_name(v, r.config)
            if r.config.formulation == "edm":
                out[SWEEP_SAMPLERS["edm"], name] = (r.samples, r)
            else:
                out[SWEEP_SAMPLERS["ddpm"], name] = (r.samples, r)
                out[SWEEP_SAMPLERS["ddim"], name] = (ddim[v, 0.0], r)
        return out

    def sampler_rows(self, sets: Mapping[tuple[str, str], tuple[Any, Any]]) -> list[tuple[str, str, dict, float]]:
        """``(sampler, model, scores, pointwise loss of the network)`` per entry of :meth:`sampler_sets`."""
        return [(sampler, name, self.scores(x), pointwise_loss_at_end(run))
                for (sampler, name), (x, run) in sets.items()]

    # -------------------------------------------------------------------------------------- derived results

    def seed_check(self) -> dict[Variant, dict[int, dict[str, float]]]:
        """``{Variant: {seed: scores}}`` for the chapter's seed check (:data:`~.ablation.COMPARISON_SEEDS` or
        :data:`~.ablation.ABLATION_SEEDS`): seed 0 scored from the page's run, the other seeds from the shipped
        ``seed_check`` JSON (computed by training them where it is not current)."""
        plan = _SEEDS[self.chapter][self.profile]
        runs = {run_name(c): _digest(c) for v, seeds in plan.items() for c in
                (self.variant_config(v, s) for s in seeds if s != 0)}
        key = {"scores": SCORES_VERSION, "n_samples": self.config.n_samples, "runs": runs,
               "seeds": {_variant_key(v): [s for s in seeds if s != 0] for v, seeds in plan.items()}}
        depends_on = [run_name(self.variant_config(v)) for v in plan]
        depends_on = [n for n in depends_on if self.shared is None or not self.shared.owns(n)]

        def compute() -> dict[str, dict[str, dict[str, float]]]:
            return {_variant_key(v): {str(s): self.scores(self._train(v, s).samples) for s in seeds if s != 0}
                    for v, seeds in plan.items()}

        extra = self._derived("seed_check", "json", compute, key, depends_on)
        out = {}
        for variant, seeds in plan.items():
            stored = extra.get(_variant_key(variant), {})
            missing = [s for s in seeds if s != 0 and str(s) not in stored]
            if missing:
                raise ShippedResultError(f"the shipped seed check of chapter {self.chapter} lacks seeds {missing} of "
                                         f"{variant.label()}; rebuild it (make book RETRAIN=1)")
            out[variant] = {s: (self.scores(self.run(variant).samples) if s == 0 else stored[str(s)]) for s in seeds}
        return out

    def ddim_samples(self) -> dict[tuple[Variant, float], torch.Tensor]:
        """Chapter 6's DDPM networks sampled with DDIM: ``{(variant, eta): (n, C, H, W) samples}``, every DDPM
        variant of the grid at η = 0 and the DDPM baseline at each of :data:`~.ablation.DDIM_ETAS`. Shipped as
        arrays, so that no checkpoint is needed at ``cpu``."""
        if self.chapter != CHAPTER_6:
            raise ValueError("ddim_samples belongs to chapter 6's study")
        requests = self.ddim_requests()
        names = {f"{_variant_key(v).replace('|', '_')}_eta{eta:g}": (v, eta) for v, eta in requests}
        runs = {run_name(c): _digest(c) for c in (self.variant_config(v) for v, _ in requests)}
        key = {"sampler": "ddim", "steps": self.config.sample_steps, "n": self.config.n_samples, "runs": runs,
               "requests": {k: [_variant_key(v), eta] for k, (v, eta) in names.items()}}
        depends_on = sorted({run_name(self.variant_config(v)) for v, _ in requests})

        def compute() -> dict[str, torch.Tensor]:
            return {k: sample_with(self._train(v, 0), "ddim", eta=eta) for k, (v, eta) in names.items()}

        arrays = self._derived("ddim_samples", "arrays", compute, key, depends_on)
        return {names[k]: arrays[k] for k in names}

    def ddim_requests(self) -> list[tuple[Variant, float]]:
        """``(variant, eta)`` of :meth:`ddim_samples`."""
        ddpm = [v for v in ABLATION[self.profile].formulation_variants()
                if self.variant_config(v).formulation == "ddpm"]
        requests = [(v, 0.0) for v in ddpm]
        baseline = next((v for v in ddpm if v.regularizer == "none"), None)
        if baseline is not None:
            requests += [(baseline, float(eta)) for eta in DDIM_ETAS if eta != 0]
        return requests

    def _derived(self, name: str, kind: str, compute: Any, key: Any, depends_on: list[str]) -> Any:
        if self.read_only:
            reason = self.store.stale_reason(name, key=key)
            if reason == "not shipped":
                self.store.entry(name)  # raises, saying how to make it
            if reason:
                self.store.check_stale(name, on_stale="warn")
            load = self.store.load_json if kind == "json" else self.store.load_arrays
            return load(name, on_stale="ignore")
        if self._quiet(name, key=key):
            load = self.store.load_json if kind == "json" else self.store.load_arrays
            return load(name, on_stale="ignore")
        method = self.switch.json if kind == "json" else self.switch.arrays
        return method(name, compute, key=key, depends_on=depends_on)

    # -------------------------------------------------------------------------------------- findings

    def shipped_view(self) -> CheckerboardStudy | None:
        """The chapter's shipped ``cpu`` results as a read-only study (``None`` when nothing is shipped)."""
        if not self.store.entries():
            return None
        shared = self.shared.shipped_view() if self.shared is not None else None
        if self.shared is not None and shared is None:
            return None
        return CheckerboardStudy(self.chapter, SHIPPED_PROFILE, runs_root=self.runs_root,
                                 results_root=self.results_root, shared=shared, read_only=True)

    def findings(self) -> tuple[CheckerboardStudy, tuple[str, ...] | None]:
        """``(study, profiles)``: where the prose's findings come from, and the ``profiles`` of their claims.

        At ``cpu`` this study itself (its runs are the shipped ones); elsewhere the read-only view of the shipped
        ``cpu`` results, with ``profiles=None`` (the findings hold at every profile). When nothing is shipped, a
        warning on the page and this study with ``profiles=("cpu",)``: its claims are then not expected to hold.
        """
        if self.profile == SHIPPED_PROFILE:
            return self, None
        view = self.shipped_view()
        if view is not None:
            return view, None
        from spectral_lib import book

        shared = f" (and chapter {CHAPTER_5}'s, whose runs it shares)" if self.shared is not None else ""
        book.note(f"No shipped <code>cpu</code> results were found for chapter {self.chapter}{shared}. The findings "
                  f"below are checked against this build's own <code>{self.profile}</code> numbers instead, which "
                  "do not support them. Execute the chapter at <code>cpu</code> to make the shipped results "
                  "(make book RETRAIN=1).", kind="warning", title="No shipped results")
        return self, (SHIPPED_PROFILE,)

    def provenance(self) -> dict[str, str]:
        """``{"commit", "date", "hardware"}`` of the shipped results (``"this build"`` when none are shipped)."""
        entries = self.store.entries()
        if not entries or not (self.read_only or self.switch.shipping):
            return {"commit": "this build", "date": "now", "hardware": "this machine"}
        latest = max(entries.values(), key=lambda e: str(e.get("date", "")))
        commit = str(latest.get("commit", "?")) + (" + local changes" if latest.get("dirty") else "")
        return {"commit": commit, "date": str(latest.get("date", "?")), "hardware": str(latest.get("hardware", "?"))}

    def source_text(self) -> str:
        """Where the findings come from, for the prose: ``"commit c, date, hardware"`` of the shipped results, or
        a plain statement that this build's own numbers stand in for them."""
        source = self.provenance()
        if source["commit"] == "this build":
            return f"none shipped: this {self.profile} build's own numbers stand in for them"
        return "commit {commit}, {date}, {hardware}".format(**source)

