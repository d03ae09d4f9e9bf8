"""The diffusers chapter's training runs as shipped results (book chapter 9, ``book/09_diffusers.ipynb``).

A :class:`~spectral_lib.integrations.diffusers.CheckerboardRun` holds two trained ``UNet2DModel`` s; what the
chapter shows of it is small: the samples, their crispness metrics, the loss history and the wall times. This module
turns a run into that :class:`RunSummary` and ships it through
:class:`~spectral_lib.experiments.shipped.ShippedResults` (``results/cpu/09_diffusers/``): one JSON entry (metrics,
history, times) and one float16 array entry (samples) per run, both keyed by the run's fingerprint.

    switch = ShippedResults("09_diffusers", profile, retrain=retrain)
    run = checkerboard_run(switch, "wavelet", "v_prediction", lambda_spec=1.0)   # shipped at cpu, else trained
    sweep = cpu_sweep(switch)   # the cpu sweep of prediction type x lambda: shipped (read at every profile)

The runs are not :class:`~spectral_lib.experiments.profiles.ExperimentConfig` runs, so their staleness is checked
here: a run's key holds its *recipe* (profile name, regularizer, prediction type, lambda) and its *fingerprint*
(every number of the :class:`~spectral_lib.integrations.diffusers.DiffusersProfile`, the regularizer's resolved
terms with their defaults, :data:`RESULT_VERSION`). An entry whose fingerprint differs from what its recipe gives
today is retrained at ``cpu`` (the switch compares keys) and listed by :func:`stale_runs` (the repository test).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import check_choice
from . import diffusers as hf

__all__ = [
    "CHAPTER",
    "RESULT_VERSION",
    "SWEEP_REGULARIZER",
    "SWEEP_PREDICTION_TYPES",
    "SWEEP_LAMBDAS",
    "RunSummary",
    "run_name",
    "run_key",
    "summarize",
    "checkerboard_run",
    "sweep_runs",
    "cpu_sweep",
    "sweep_findings",
    "stale_runs",
]

CHAPTER = "09_diffusers"
"""The chapter whose shipped results these are (``results/cpu/09_diffusers/``)."""
RESULT_VERSION = 1
"""Part of every run's fingerprint: bump it when a code change alters the runs without changing a profile."""
SWEEP_REGULARIZER = "wavelet"
"""The spectral term of the chapter's sweep: the paper's Haar wavelet loss (Eq. 16)."""
SWEEP_PREDICTION_TYPES = ("epsilon", "v_prediction")
"""diffusers' default prediction type and the one the chapter trains with."""
SWEEP_LAMBDAS = (0.0, 0.1, 1.0)
"""λ of the sweep: 0 is the plain diffusers loss; 1 the paper's "unweighted" image setting; 0.1 in between."""


@dataclass
class RunSummary:
    """What the chapter shows of one run.

    Attributes:
        name: the shipped name (:func:`run_name`).
        regularizer, prediction_type, lambda_spec: the run's recipe.
        samples: ``(n, C, H, W)`` DDIM samples of the EMA network, data range about ``[-1, 1]`` (float32; shipped
            copies went through float16).
        metrics: :func:`~spectral_lib.data.checkerboard.checkerboard_metrics` of the clamped samples.
        history: one dict per logged step (``step``, ``loss``, ``diffusion`` and with a term ``spectral``).
        train_seconds, sample_seconds: wall times of the run that made it (the build machine's for shipped runs).
        shipped: ``True`` when read back from ``results/`` rather than trained in this session.
    """

    name: str
    regularizer: str
    prediction_type: str
    lambda_spec: float
    samples: torch.Tensor
    metrics: dict[str, float]
    history: list[dict[str, float]]
    train_seconds: float
    sample_seconds: float
    shipped: bool = False

    @property
    def label(self) -> str:
        """``"baseline"`` for the plain loss, else ``"<regularizer>, λ = <lambda>"``."""
        if self.regularizer == "none" or self.lambda_spec == 0:
            return "baseline"
        return f"{self.regularizer}, λ = {self.lambda_spec:g}"


def run_name(regularizer: str, prediction_type: str, lambda_spec: float = 1.0) -> str:
    """The shipped name of a run: ``"v_prediction-none"``, ``"epsilon-wavelet-lam0.1"``."""
    check_choice(prediction_type, "prediction_type", hf.PREDICTION_TYPES)
    if regularizer == "none" or lambda_spec == 0:
        return f"{prediction_type}-none"
    return f"{prediction_type}-{regularizer}-lam{float(lambda_spec):g}"


def _regularizer_terms(regularizer: str) -> Any:
    if regularizer == "none":
        return None
    from ..experiments.shipped_store import regularizer_terms  # every option with the loss functions' defaults

    return regularizer_terms(regularizer, {})


def run_key(profile: str, regularizer: str, prediction_type: str, lambda_spec: float = 1.0) -> dict[str, Any]:
    """``{"recipe": ..., "fingerprint": ...}``: how to rebuild the run, and everything that decides its result."""
    import json

    config = hf.get_diffusers_profile(profile)
    lam = 0.0 if regularizer == "none" else float(lambda_spec)
    regularizer = "none" if lam == 0 else regularizer
    recipe = {"profile": profile, "regularizer": regularizer, "prediction_type": prediction_type, "lambda_spec": lam}
    fingerprint = {"config": dataclasses.asdict(config), "regularizer_terms": _regularizer_terms(regularizer),
                   "prediction_type": prediction_type, "lambda_spec": lam, "result_version": RESULT_VERSION}
    return json.loads(json.dumps({"recipe": recipe, "fingerprint": fingerprint}))


def summarize(run: hf.CheckerboardRun, lambda_spec: float) -> dict[str, Any]:
    """The JSON part of a :class:`RunSummary` of ``run`` (metrics, history, wall times)."""
    return {"metrics": {k: float(v) for k, v in run.metrics.items()}, "history": run.trained.history,
            "train_seconds": float(run.train_seconds), "sample_seconds": float(run.sample_seconds),
            "regularizer": run.regularizer, "prediction_type": run.prediction_type, "lambda_spec": float(lambda_spec)}


def checkerboard_run(switch: Any, regularizer: str, prediction_type: str, lambda_spec: float = 1.0, *,
                     profile: str | None = None) -> RunSummary:
    """One run of :func:`~spectral_lib.integrations.diffusers.train_checkerboard`, through ``switch``.

    Args:
        switch: a :class:`~spectral_lib.experiments.shipped.ShippedResults` of this chapter: at ``cpu`` it reads
            the shipped run (seconds) or trains and ships it; at other profiles it trains.
        regularizer: a ``SpectralRegularizer`` name, or ``"none"`` (λ is then 0).
        prediction_type: one of :data:`~spectral_lib.integrations.diffusers.PREDICTION_TYPES`.
        lambda_spec: λ (0 gives the plain diffusers baseline).
        profile: the diffusers profile (default ``switch.profile``).
    """
    profile = profile or switch.profile
    lam = 0.0 if regularizer == "none" else float(lambda_spec)
    name = run_name(regularizer, prediction_type, lam)
    key = run_key(profile, regularizer, prediction_type, lam)
    trained: dict[str, hf.CheckerboardRun] = {}

    def train() -> hf.CheckerboardRun:
        if "run" not in trained:
            trained["run"] = hf.train_checkerboard(profile, "none" if lam == 0 else regularizer,
                                                   prediction_type=prediction_type, lambda_spec=lam or None)
        return trained["run"]

    numbers = switch.json(name, lambda: summarize(train(), lam), key=key)
    samples = switch.arrays(f"{name}-samples", lambda: {"samples": train().samples}, key=key)["samples"]
    return RunSummary(name=name, regularizer="none" if lam == 0 else regularizer, prediction_type=prediction_type,
                      lambda_spec=lam, samples=samples, metrics=numbers["metrics"], history=numbers["history"],
                      train_seconds=numbers["train_seconds"], sample_seconds=numbers["sample_seconds"],
                      shipped=not trained)


def sweep_runs() -> list[tuple[str, str, float]]:
    """``(regularizer, prediction_type, lambda)`` of every run of the cpu sweep, baselines first."""
    return [("none" if lam == 0 else SWEEP_REGULARIZER, pred, lam)
            for pred in SWEEP_PREDICTION_TYPES for lam in SWEEP_LAMBDAS]


def cpu_sweep(switch: Any, known: Iterable[RunSummary] = ()) -> dict[tuple[str, float], RunSummary] | None:
    """The ``cpu`` sweep (prediction type x λ, :func:`sweep_runs`), keyed ``(prediction_type, lambda)``.

    At ``cpu`` every run goes through ``switch`` (shipped, or trained and shipped: about 2 minutes a run on a
    laptop core); runs of ``known`` (the page's own runs, made through the same ``switch``) are reused by name, so
    that a retrain does not train them twice. At any other profile nothing is trained: the shipped ``cpu`` runs are
    read back, and ``None`` is returned when one of them is missing or stale (the page then says so).
    """
    if switch.shipping:
        done = {run.name: run for run in known}
        return {(pred, lam): done.get(run_name(reg, pred, lam)) or checkerboard_run(switch, reg, pred, lam,
                                                                                     profile="cpu")
                for reg, pred, lam in sweep_runs()}
    store = switch.store
    found = {}
    for reg, pred, lam in sweep_runs():
        name = run_name(reg, pred, lam)
        key = run_key("cpu", reg, pred, lam)
        if any(not store.has(n) or store.stale_reason(n, key=key) for n in (name, f"{name}-samples")):
            return None
        numbers = store.load_json(name, on_stale="ignore")
        samples = store.load_arrays(f"{name}-samples", on_stale="ignore")["samples"]
        found[pred, lam] = RunSummary(name=name, regularizer=reg, prediction_type=pred, lambda_spec=lam,
                                      samples=samples, metrics=numbers["metrics"], history=numbers["history"],
                                      train_seconds=numbers["train_seconds"],
                                      sample_seconds=numbers["sample_seconds"], shipped=True)
    return found


def sweep_findings(sweep: Mapping[tuple[str, float], RunSummary] | None) -> dict[str, float]:
    """The numbers the chapter's prose quotes from the ``cpu`` sweep (:func:`cpu_sweep`); NaN for every one when
    ``sweep`` is ``None`` (not shipped yet), so that the page still builds and says why.

    Keys (``v``: ``v_prediction``, ``eps``: ``epsilon``; ``low`` / ``top``: the smallest and largest non-zero λ):
    ``v_share``, ``v_contrast``, ``eps_share``, ``eps_contrast`` (baselines' ``binary_share`` and ``contrast``),
    ``v_share_low``, ``v_share_top``, ``low_lambda``, ``top_lambda``, and at the top λ the last logged loss parts
    ``eps_spectral_end``, ``eps_pointwise_end``, ``v_spectral_end``, ``v_pointwise_end`` and their ratios
    ``eps_scale_end``, ``v_scale_end`` (spectral over pointwise).
    """
    nonzero = sorted(lam for lam in SWEEP_LAMBDAS if lam > 0)
    low, top = nonzero[0], nonzero[-1]
    names = ("v_share", "v_contrast", "eps_share", "eps_contrast", "v_share_low", "v_share_top",
             "eps_spectral_end", "eps_pointwise_end", "v_spectral_end", "v_pointwise_end", "eps_scale_end",
             "v_scale_end")
    found = {name: float("nan") for name in names}
    found.update(low_lambda=low, top_lambda=top)
    if sweep is None:
        return found
    for short, kind in (("v", "v_prediction"), ("eps", "epsilon")):
        base, strong = sweep[kind, 0.0], sweep[kind, top]
        end = strong.history[-1]
        found.update({f"{short}_share": base.metrics["binary_share"], f"{short}_contrast": base.metrics["contrast"],
                      f"{short}_spectral_end": end["spectral"], f"{short}_pointwise_end": end["diffusion"],
                      f"{short}_scale_end": end["spectral"] / end["diffusion"]})
    found["v_share_low"] = sweep["v_prediction", low].metrics["binary_share"]
    found["v_share_top"] = sweep["v_prediction", top].metrics["binary_share"]
    return {k: float(v) for k, v in found.items()}


MISSING_SWEEP = ("The shipped <code>cpu</code> sweep is not in <code>results/</code> yet: build this chapter at "
                 "<code>profile = \"cpu\"</code> with <code>retrain = True</code> (or <code>make book RETRAIN=1</code>)"
                 " to train it, about 2 minutes a run, and commit <code>results/cpu/09_diffusers</code>.")
"""The note the chapter shows while the sweep is not shipped."""


def stale_runs(store: Any) -> dict[str, str]:
    """``{name: reason}`` for every shipped entry of ``store`` (a :class:`~spectral_lib.experiments.shipped.Shipped`
    of this chapter) whose key no longer matches what its recipe gives under today's profiles."""
    stale = {}
    for name, entry in store.entries().items():
        key = entry.get("key")
        if not isinstance(key, Mapping) or "recipe" not in key:
            stale[name] = "no recipe in its key"
            continue
        recipe = key["recipe"]
        try:
            wanted = run_key(recipe["profile"], recipe["regularizer"], recipe["prediction_type"],
                             recipe["lambda_spec"])
        except (KeyError, ValueError) as exc:
            stale[name] = f"its recipe cannot be rebuilt any more ({exc})"
            continue
        if wanted != key:
            changed = sorted(k for k in set(wanted["fingerprint"]) | set(key.get("fingerprint", {}))
                             if wanted["fingerprint"].get(k) != key.get("fingerprint", {}).get(k))
            stale[name] = f"fingerprint changed ({', '.join(changed) or 'recipe'})"
    return stale
