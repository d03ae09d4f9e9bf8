"""The speech chapter's tables and the numbers its prose quotes (book chapter 8, ``book/08_speech.ipynb``).

Every table is ``{"header", "rows", "formats"}``, the keyword arguments of :func:`spectral_lib.book.table`
(``book.table(**report.cpu_table(cpu, roles))``); every number the prose quotes comes
from :func:`findings` (glued with :func:`spectral_lib.book.glue`). Findings are read from the shipped ``cpu`` runs of
:func:`~spectral_lib.experiments.speech_runs.cpu_results`, so they are the same on a page built at any profile; while
those runs are not shipped, every number is NaN and every string ``"n/a"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from spectral_lib.experiments import speech
from spectral_lib.experiments.profiles import get_profile
from spectral_lib.experiments.speech_runs import CPU_RUNS, PAPER_PROFILES, VocoderRun, run_config

__all__ = [
    "METRICS",
    "MID_BAND_HZ",
    "TOP_BAND_HZ",
    "SEED_NOISE_METRICS",
    "Table",
    "profile_table",
    "lambda_table",
    "page_runs_table",
    "metrics_table",
    "cpu_table",
    "hf_table",
    "cost_table",
    "band_ratio",
    "findings",
]

Table = dict[str, Any]
"""``{"header": [...], "rows": [[...], ...], "formats": [...]}``, the arguments of :func:`spectral_lib.book.table`."""


def _table(header: list[str], rows: list[list[Any]], formats: list[str]) -> Table:
    return {"header": header, "rows": rows, "formats": formats}

METRICS: dict[str, tuple[str, str, str]] = {
    "mrstft": ("MR-STFT ↓", "mrstft", ".3f"),
    "pesq": ("PESQ ↑", "pesq", ".3f"),
    "fd_logmel": ("FD local ↓", "fd", ".0f"),
    "ndb": ("NDB ↓", "ndb", ".2f"),
    "hf_energy_ratio": ("HF energy ratio", "hf", ".2f"),
}
"""Metric key -> (column title, short name in glued names, format) of the chapter's ``cpu`` tables."""
MID_BAND_HZ = (2000.0, 8000.0)
"""The band of the stand-in's upper formants and fricatives, where the chapter compares a vocoder's power with the
recordings' (our choice)."""
TOP_BAND_HZ = 9000.0
"""Above this the recordings are nearly silent: power a vocoder puts there is a noise floor (our choice)."""
SEED_NOISE_METRICS = ("mrstft", "fd_logmel", "hf_energy_ratio")
"""The metrics on which the chapter compares a regularizer's effect with the baseline's change between seeds (PESQ
and NDB barely move at the ``cpu`` profile)."""
_PREFIX = {"baseline": "base", "amp": "amp", "haar": "haar", "baseline_seed1": "seed1", "baseline_l1": "l1",
           "mrstft": "mr"}


# ------------------------------------------------------------------------------------------------ set-up tables


def _architecture(model: Mapping[str, Any]) -> Any:
    from spectral_lib import models

    options = {k: v for k, v in model.items() if k not in ("name", "preset", "pretrained")}
    return models.diffwave_preset(model["preset"], **options)


def _parameters(model: Mapping[str, Any]) -> int:
    from spectral_lib import models

    return sum(p.numel() for p in models.DiffWave(_architecture(model)).parameters())


def _thousands(n: int) -> str:
    return f"{int(n):,}".replace(",", " ")  # 15 872, as the book writes large integers


def profile_table(profiles: Iterable[str] = ("smoke", "cpu", "gpu", "full")) -> Table:
    """What each profile trains: the model (layers, channels, parameters), its start, the data, the steps and the
    batch, read from the profiles (so it cannot drift from the code)."""
    from spectral_lib.data.audio import EVAL_PREFIXES
    from spectral_lib.data.standin import _standin_ids

    rows = []
    for name in profiles:
        config = get_profile(speech.EXPERIMENT, name)
        preset = _architecture(config.model)
        model = (f"DiffWave `{config.model['preset']}`: {preset.residual_layers} layers, "
                 f"{preset.residual_channels} channels, {_thousands(_parameters(config.model))} parameters")
        start = "LMNT's pretrained checkpoint" if config.model.get("pretrained") else "from scratch"
        standin = config.data.get("standin")
        if standin:
            ids = _standin_ids(int(standin["n_utterances"]))
            train = sum(not i.startswith(tuple(EVAL_PREFIXES)) for i in ids)
            data = f"stand-in, {train} training utterances"
        else:
            data = "LJSpeech-1.1 (LJ001/LJ002 held out)"
        crop = config.data.get("crop_frames")
        training = f"{_thousands(config.steps)} steps, batch {config.batch_size} × {crop} frames"
        rows.append([f"`{name}`", model, start, data, training])
    return _table(["profile", "model", "start", "data", "training"], rows, ["", "", "", "", ""])


def lambda_table(profile: str, paper_lambda: float | None = None) -> Table:
    """The paper's lambdas in our units (:func:`~spectral_lib.experiments.speech.paper_lambda_equivalent`) beside
    the lambda this page uses for each of the paper's regularizers."""
    chosen = paper_lambda if profile in PAPER_PROFILES else None
    from spectral_lib.experiments.speech_recipe import _number

    header = ["regularizer", *[f"paper {_number(lam)}" for lam in speech.PAPER_LAMBDAS],
              f"paper {_number(speech.PAPER_LAMBDAS[0])}, *mean* reading", f"this page (`{profile}`)"]
    rows = [[speech.PAPER_NAMES[r], *[speech.paper_lambda_equivalent(r, lam) for lam in speech.PAPER_LAMBDAS],
             speech.paper_lambda_equivalent(r, speech.PAPER_LAMBDAS[0], reading="mean"),
             speech.lambda_for(r, profile, paper_lambda=chosen)]
            for r in speech.PAPER_REGULARIZERS]
    return _table(header, rows, ["", ".3g", ".3g", ".3g", ".2g", ".3g"])


def page_runs_table(runs: Iterable[VocoderRun]) -> Table:
    """The page's runs: where each comes from, its training time and final loss."""
    rows = [[f"{run.label}, seed {run.spec.seed}", "shipped `cpu` result" if run.shipped else "trained now",
             run.metrics.get("train_time_s", math.nan), run.metrics.get("final_loss", math.nan)] for run in runs]
    return _table(["run", "from", "training (s)", "final loss"], rows, ["", "", ".0f", ".4f"])


# ------------------------------------------------------------------------------------------------ result tables


def metrics_table(runs: Mapping[str, Mapping[str, float]], first: str = "run") -> Table:
    """One row per ``{row label: metrics}``, one column per metric of :data:`METRICS`."""
    header = [first, *[title for title, _, _ in METRICS.values()]]
    rows = [[label, *[metrics.get(key, math.nan) for key in METRICS]] for label, metrics in runs.items()]
    return _table(header, rows, ["", *[fmt for _, _, fmt in METRICS.values()]])


def cpu_table(cpu: Mapping[str, VocoderRun], roles: Iterable[str]) -> Table:
    """:func:`metrics_table` of the shipped ``cpu`` runs of ``roles`` (keys of :data:`CPU_RUNS`), labelled with
    their seed."""
    runs = {f"{cpu[r].label}, seed {cpu[r].spec.seed}": cpu[r].metrics for r in roles}
    return metrics_table(runs, first="shipped `cpu` run")


def hf_table(runs: Iterable[VocoderRun], cutoff_hz: float) -> Table:
    """Each run's share of power above ``cutoff_hz``, the originals' and their ratio."""
    rows = [[run.label, run.metrics["hf_energy"], run.metrics["hf_energy_data"], run.metrics["hf_energy_ratio"]]
            for run in runs]
    return _table(["model", f"energy above {cutoff_hz / 1000:g} kHz (share)", "originals", "ratio"], rows,
                  ["", ".4f", ".4f", ".2f"])


def cost_table(cpu: Mapping[str, VocoderRun] | None) -> Table:
    """The shipped ``cpu`` runs' times on the machine that made them: training, steps per second, vocoding and
    metrics."""
    header = ["shipped `cpu` run", "training (min)", "steps per s", "vocoding + metrics (s)"]
    rows = []
    for run in (cpu or {}).values():
        m = run.metrics
        rest = m.get("wall_time_s", math.nan) - m.get("train_time_s", math.nan)
        rows.append([f"{run.label}, seed {run.spec.seed}", m.get("train_time_s", math.nan) / 60,
                     m.get("steps", math.nan) / m.get("train_time_s", math.nan), rest])
    return _table(header, rows, ["", ".1f", ".2f", ".0f"])


# ------------------------------------------------------------------------------------------------ findings


def band_ratio(run: VocoderRun, low_hz: float, high_hz: float = math.inf) -> float:
    """The vocoded clips' power between ``low_hz`` and ``high_hz`` over the originals' (from the run's summary)."""
    freqs, power = run.spectrum()
    _, data = run.spectrum(data=True)
    band = (freqs >= low_hz) & (freqs < high_hz)
    if not band.any():
        raise ValueError(f"no band of the run's spectrum lies between {low_hz} and {high_hz} Hz")
    return float(power[band].sum() / data[band].sum())


def _last(history: list[dict[str, float]], key: str) -> float:
    values = [line[key] for line in history if key in line]
    return float(values[-1]) if values else math.nan


def findings(cpu: Mapping[str, VocoderRun] | None, store: Any = None) -> dict[str, Any]:
    """The numbers the chapter's prose quotes, from the shipped ``cpu`` runs (:data:`CPU_RUNS`); NaN (``"n/a"``
    for strings) while ``cpu`` is ``None``.

    Keys, with ``<run>`` one of ``base`` (baseline, seed 0), ``amp``, ``haar``, ``seed1`` (baseline, seed 1),
    ``l1`` (baseline, LMNT's L1 loss), ``mr`` (MR-STFT loss) and ``<m>`` one of ``mrstft``, ``pesq``, ``fd``,
    ``ndb``, ``hf`` (:data:`METRICS`):

    - ``<run>_<m>``: the metric; ``<run>_d_<m>``: its change against the baseline (seed 0);
    - ``<run>_lambda``: lambda_spec (from the profile, at any time); ``<run>_train_min``: training time in minutes;
    - ``base_envelope``: the baseline's envelope correlation; ``base_mid_ratio``, ``base_top_ratio``: its power
      over the recordings' in :data:`MID_BAND_HZ` and above :data:`TOP_BAND_HZ`;
    - ``noise_share``: the largest change AMP or HAAR makes to a metric of :data:`SEED_NOISE_METRICS`, as a share of
      the baseline's own change between seeds on that metric (below 1: within the seed noise);
    - ``hf_top`` / ``hf_other``: the names of the regularizer (AMP or HAAR) that moves the HF energy ratio more /
      less, ``hf_top_d`` / ``hf_other_d`` their changes;
    - ``mr_hf_times``: the MR-STFT loss run's HF energy ratio over the baseline's;
    - ``amp_term_end``: AMP's last logged spectral term (``fourier_amp``); ``l1_diffusion_end``,
      ``base_diffusion_end``: the last logged diffusion loss of the L1 and squared-error baselines;
    - ``total_min`` (all runs, training + vocoding + metrics), ``mid_lo_khz``, ``mid_hi_khz``, ``top_khz``;
    - from the profiles, at any time: ``steps`` (the ``cpu`` profile's), ``cpu_params`` (the ``cpu`` vocoder's
      parameters, a string), ``smoke_steps``, ``n_cpu_runs``;
    - from the manifest of ``store`` (a :class:`~spectral_lib.experiments.shipped.Shipped`): ``cpu_hardware``,
      ``cpu_commit`` (``"n/a"`` without it).
    """
    out: dict[str, Any] = {"mid_lo_khz": MID_BAND_HZ[0] / 1000, "mid_hi_khz": MID_BAND_HZ[1] / 1000,
                           "top_khz": TOP_BAND_HZ / 1000, "n_cpu_runs": len(CPU_RUNS),
                           "cpu_params": _thousands(_parameters(get_profile(speech.EXPERIMENT, "cpu").model)),
                           "smoke_steps": get_profile(speech.EXPERIMENT, "smoke").steps,
                           "cpu_hardware": "n/a", "cpu_commit": "n/a"}
    names = [f"{p}_{s}" for p in _PREFIX.values() for _, s, _ in METRICS.values()]
    names += [f"{p}_d_{s}" for p in _PREFIX.values() for _, s, _ in METRICS.values()]
    names += [f"{p}_{k}" for p in _PREFIX.values() for k in ("lambda", "train_min")]
    names += ["base_envelope", "base_mid_ratio", "base_top_ratio", "noise_share", "hf_top_d", "hf_other_d",
              "mr_hf_times", "amp_term_end", "l1_diffusion_end", "base_diffusion_end", "total_min"]
    out.update({name: math.nan for name in names})
    out.update(hf_top="n/a", hf_other="n/a", steps=float(get_profile(speech.EXPERIMENT, "cpu").steps))
    for role, prefix in _PREFIX.items():  # what the profile asks for; the shipped runs are checked to match it
        out[f"{prefix}_lambda"] = float(run_config("cpu", CPU_RUNS[role]).lambda_spec)
    if cpu is None:
        return out
    base = cpu["baseline"].metrics
    for role, prefix in _PREFIX.items():
        run = cpu[role]
        for key, (_, short, _) in METRICS.items():
            out[f"{prefix}_{short}"] = float(run.metrics[key])
            out[f"{prefix}_d_{short}"] = float(run.metrics[key] - base[key])
        out[f"{prefix}_train_min"] = float(run.metrics["train_time_s"]) / 60
    short = {key: s for key, (_, s, _) in METRICS.items()}
    out["noise_share"] = max(abs(out[f"{reg}_d_{short[k]}"]) / abs(out[f"seed1_d_{short[k]}"])
                             if out[f"seed1_d_{short[k]}"] else math.inf
                             for reg in ("amp", "haar") for k in SEED_NOISE_METRICS)
    amp_d, haar_d = out["amp_d_hf"], out["haar_d_hf"]
    (out["hf_top"], out["hf_top_d"]), (out["hf_other"], out["hf_other_d"]) = sorted(
        [("AMP", amp_d), ("HAAR", haar_d)], key=lambda item: -abs(item[1]))
    base_run = cpu["baseline"]
    out.update(base_envelope=float(base_run.summary["envelope_correlation"]),
               base_mid_ratio=band_ratio(base_run, *MID_BAND_HZ), base_top_ratio=band_ratio(base_run, TOP_BAND_HZ),
               mr_hf_times=out["mr_hf"] / out["base_hf"],
               amp_term_end=_last(cpu["amp"].history, "fourier_amp"),
               l1_diffusion_end=_last(cpu["baseline_l1"].history, "diffusion"),
               base_diffusion_end=_last(base_run.history, "diffusion"),
               total_min=float(np.sum([run.metrics["wall_time_s"] for run in cpu.values()])) / 60)
    if store is not None and store.has(base_run.name):
        entry = store.entry(base_run.name)
        out.update(cpu_hardware=str(entry.get("hardware", "n/a")), cpu_commit=str(entry.get("commit", "n/a")))
    return out


def _check_roles() -> None:
    missing = set(_PREFIX) ^ set(CPU_RUNS)
    if missing:  # pragma: no cover - a guard for whoever edits CPU_RUNS
        raise RuntimeError(f"speech_report and speech_runs.CPU_RUNS disagree on the roles {sorted(missing)}")


_check_roles()
