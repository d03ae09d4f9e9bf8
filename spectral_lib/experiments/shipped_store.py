"""The store behind :mod:`spectral_lib.experiments.shipped`: one chapter's shipped results on disk.

:class:`Shipped` reads, writes and checks ``results_root()/cpu/<chapter>/`` (layout in
:mod:`~spectral_lib.experiments.shipped`); :func:`run_fingerprint` says what decides a run's result and
:func:`stale_entries` lists every shipped entry that no longer answers today's profiles. Writes are atomic.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_ENV",
    "SHIPPED_PROFILE",
    "RESULT_VERSIONS",
    "MANIFEST",
    "ShippedResultError",
    "results_root",
    "run_fingerprint",
    "regularizer_terms",
    "Shipped",
    "stale_entries",
]

RESULTS_ENV = "SPECTRAL_RESULTS_DIR"
"""Environment variable that overrides where :func:`results_root` points."""
SHIPPED_PROFILE = "cpu"
"""The profile whose results are shipped in the repository."""
RESULT_VERSIONS: dict[str, int] = {}
"""``experiment -> version`` (default 1), part of every run's fingerprint: bump it when a code change alters that
experiment's results without changing its configuration, so that the shipped results count as stale."""

MANIFEST = "manifest.json"
RUN_FILES = ("config.json", "metrics.json", "log.jsonl")
_FLOAT16_RANGE = (6.2e-5, 6.0e4)  # normal float16 magnitudes: values inside keep ~3 significant digits


_UNSET = object()


class ShippedResultError(ValueError):
    """A shipped result is missing, corrupt or stale; the message names the file and what to run."""


def results_root() -> Path:
    """``$SPECTRAL_RESULTS_DIR``, else the repository's ``results/`` folder (it may not exist yet)."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "results"  # <repo>/spectral_lib/experiments/this file


# ------------------------------------------------------------------------------------------------ fingerprints


def regularizer_terms(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The regularizer's terms with their weights and *every* option, defaults of the loss functions included."""
    from spectral_lib.spectral.regularizer import TERMS, SpectralRegularizer

    reg = SpectralRegularizer.from_name(name, **dict(kwargs))
    terms = {}
    for term, weight in reg.weights.items():
        params = inspect.signature(TERMS[term]).parameters.values()
        defaults = {p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY and p.name != "reduction"}
        terms[term] = {"weight": weight, **defaults, **reg.options[term]}
    return json.loads(json.dumps(terms, default=repr))


def run_fingerprint(config: Any) -> dict[str, Any]:
    """What decides a run's result: the config (less ``CACHE_INSENSITIVE`` keys), the regularizer's resolved terms
    and the experiment's :data:`RESULT_VERSIONS` entry. Two runs with equal fingerprints are interchangeable."""
    from spectral_lib.experiments.run import CACHE_INSENSITIVE

    values = {k: v for k, v in config.to_dict().items() if k not in CACHE_INSENSITIVE}
    values["regularizer_terms"] = regularizer_terms(config.regularizer, config.regularizer_kwargs)
    values["result_version"] = RESULT_VERSIONS.get(config.experiment, 1)
    return values


def _recipe(config: Any) -> dict[str, Any]:
    """``{"experiment", "profile", "overrides"}``: how to rebuild ``config`` from today's profile."""
    from spectral_lib.experiments.profiles import get_profile

    base = get_profile(config.experiment, config.profile)
    return {"experiment": config.experiment, "profile": config.profile,
            "overrides": {k: new for k, (_, new) in base.diff(config).items()}}


def _differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    keys = sorted(set(stored) | set(wanted))
    return {k: (stored.get(k), wanted.get(k)) for k in keys if stored.get(k) != wanted.get(k)}


def _describe(diff: Mapping[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{k}: shipped {a!r}, now {b!r}" for k, (a, b) in list(diff.items())[:6])


# ------------------------------------------------------------------------------------------------ arrays


def _pack(value: Any, dtype: str) -> Any:
    """A tensor or array as a compact NumPy array: floats in float16 when ``dtype`` allows (see module doc)."""
    import numpy as np

    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if array.dtype.kind != "f":
        return array
    if not np.isfinite(array).all():
        raise ValueError(f"cannot ship an array with NaN or infinite values (shape {array.shape})")
    if dtype == "float32":
        return array.astype(np.float32)
    magnitudes = np.abs(array[array != 0])
    if magnitudes.size == 0:
        return array.astype(np.float16)
    if dtype == "float16":
        # Asked for float16 (signals such as samples in [-1, 1]): an absolute precision. Values below the normal
        # range become subnormal or 0 (absolute error at most 2**-25, about 3e-8); only overflow is refused.
        if magnitudes.max() > _FLOAT16_RANGE[1]:
            raise ValueError(f"values of magnitude up to {magnitudes.max():.3g} overflow float16 (max 65504); "
                             "pass dtype='auto' or 'float32'")
        return array.astype(np.float16)
    # "auto" (spectra, tables of numbers): float16 only where every value keeps ~3 significant digits.
    fits = magnitudes.min() >= _FLOAT16_RANGE[0] and magnitudes.max() <= _FLOAT16_RANGE[1]
    return array.astype(np.float16 if fits else np.float32)


def _save_npz(path: Path, arrays: Mapping[str, Any], dtype: str) -> None:
    import numpy as np

    from spectral_lib.experiments.checkpoint import atomic_path

    if dtype not in ("auto", "float16", "float32"):
        raise ValueError(f"dtype must be 'auto', 'float16' or 'float32', got {dtype!r}")
    packed = {str(k): _pack(v, dtype) for k, v in arrays.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **packed)


def _load_npz(path: Path) -> dict[str, Any]:
    import numpy as np
    import torch

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: torch.from_numpy(data[k].astype(np.float32) if data[k].dtype.kind == "f" else data[k])
                    for k in data.files}
    except (OSError, ValueError) as exc:
        raise ShippedResultError(f"cannot read shipped arrays {str(path)!r}: {exc}") from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShippedResultError(f"cannot read {str(path)!r}: {exc}") from exc


def _write_json(path: Path, value: Any) -> None:
    from spectral_lib.experiments.checkpoint import atomic_write_text

    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def _provenance() -> dict[str, Any]:
    from spectral_lib.book import build_info

    info = build_info(SHIPPED_PROFILE)
    return {k: info[k] for k in ("date", "hardware", "threads", "torch", "commit", "dirty")}


def _check_name(name: object) -> str:
    text = str(name)
    if not text or text.startswith(".") or text in ("manifest", MANIFEST) or not all(
            c.isalnum() or c in "._-" for c in text):
        raise ValueError(f"a shipped result's name must be letters, digits, '.', '_' or '-', got {name!r}")
    return text


# ------------------------------------------------------------------------------------------------ the store


class Shipped:
    """The shipped results of one chapter, ``results_root()/cpu/<chapter>/``: read, write, check.

    Args:
        chapter: the chapter's file stem, e.g. ``"05_checkerboard"``.
        root: the ``results/`` folder (default :func:`results_root`).
    """

    def __init__(self, chapter: str, *, root: str | os.PathLike[str] | None = None) -> None:
        self.chapter = _check_name(chapter)
        self.folder = Path(root if root is not None else results_root()) / SHIPPED_PROFILE / self.chapter

    # -------------------------------------------------------------------------------------- manifest

    def entries(self) -> dict[str, dict[str, Any]]:
        """``{name: entry}`` from the manifest (empty when nothing is shipped)."""
        path = self.folder / MANIFEST
        if not path.exists():
            return {}
        manifest = _read_json(path)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("entries"), dict):
            raise ShippedResultError(f"{str(path)!r} is not a manifest of shipped results (no 'entries')")
        return manifest["entries"]

    def has(self, name: str) -> bool:
        return _check_name(name) in self.entries()

    def entry(self, name: str) -> dict[str, Any]:
        """The manifest entry of ``name``; :class:`ShippedResultError` (saying how to make it) when missing."""
        entries = self.entries()
        if _check_name(name) not in entries:
            raise ShippedResultError(
                f"no shipped result {name!r} for chapter {self.chapter} in {str(self.folder)!r} (shipped: "
                f"{', '.join(sorted(entries)) or 'none'}). Execute the chapter at profile 'cpu' with retrain = True "
                "(make book RETRAIN=1) and commit results/."
            )
        return entries[name]

    def _record(self, name: str, entry: Mapping[str, Any]) -> None:
        entries = self.entries()
        entries[name] = {**entry, **_provenance()}
        _write_json(self.folder / MANIFEST, {"chapter": self.chapter, "profile": SHIPPED_PROFILE,
                                             "entries": entries})

    # -------------------------------------------------------------------------------------- writing

    def save_run(self, name: str, result: Any) -> Path:
        """Ship a finished run (a :class:`~spectral_lib.experiments.run.RunResult` or a run folder) as ``name``:
        config, metrics, log, float16 samples and the run folder's other JSON files (derived caches such as
        ``seed_metrics.json``); never checkpoints or figures."""
        import torch

        from spectral_lib.experiments.profiles import ExperimentConfig

        source = Path(getattr(result, "out_dir", result))
        if not (source / "metrics.json").exists():
            raise ShippedResultError(f"{str(source)!r} holds no finished run (no metrics.json) to ship")
        samples = getattr(result, "samples", None)
        if samples is None:
            if not (source / "samples.pt").exists():
                raise ShippedResultError(f"{str(source)!r} holds no samples.pt to ship")
            samples = torch.load(source / "samples.pt", map_location="cpu", weights_only=True)
        config = ExperimentConfig.from_dict(_read_json(source / "config.json"))
        target = self.folder / _check_name(name)
        if target.resolve() == source.resolve():
            return target  # already this shipped entry: keep its provenance
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for path in sorted(source.glob("*.json")) + [source / "log.jsonl"]:
            if path.is_file():
                shutil.copy2(path, target / path.name)
        _save_npz(target / "samples.npz", {"samples": samples}, "float16")
        metrics = _read_json(source / "metrics.json")
        fingerprint = run_fingerprint(config)
        self._record(name, {"kind": "run", "fingerprint": fingerprint, "recipe": _recipe(config),
                            "wall_time_s": metrics.get("wall_time_s")})
        self._fill_dependency(name, fingerprint)
        return target

    def save_arrays(self, name: str, arrays: Mapping[str, Any], *, key: Any = None,
                    depends_on: Iterable[str] = (), dtype: str = "auto") -> Path:
        """Ship named arrays (tensors or NumPy) as ``<name>.npz``; ``dtype="auto"`` stores floats as float16 when
        all magnitudes fit its normal range (three significant digits), else float32."""
        if not isinstance(arrays, Mapping) or not arrays:
            raise ValueError(f"arrays must be a non-empty mapping name -> array, got {type(arrays).__name__}")
        path = self.folder / f"{_check_name(name)}.npz"
        _save_npz(path, arrays, dtype)
        self._record(name, {"kind": "arrays", "key": _jsonable(key), "depends_on": self._dependencies(depends_on)})
        return path

    def save_json(self, name: str, value: Any, *, key: Any = None, depends_on: Iterable[str] = ()) -> Path:
        """Ship JSON-able numbers (a table, a sweep) as ``<name>.json``."""
        path = self.folder / f"{_check_name(name)}.json"
        _write_json(path, _jsonable(value))
        self._record(name, {"kind": "json", "key": _jsonable(key), "depends_on": self._dependencies(depends_on)})
        return path

    def _dependencies(self, depends_on: Iterable[str]) -> dict[str, Any]:
        """``{run: its shipped fingerprint}`` for the runs a derived entry was computed from, recorded when it is
        saved, so that the entry is stale once one of them is shipped again with another fingerprint. A run that is
        not shipped yet (a chapter may ship it later in the same execution) is recorded as ``None`` and filled in
        when :meth:`save_run` ships it."""
        entries = self.entries()
        return {_check_name(run): entries[run].get("fingerprint") if run in entries else None for run in depends_on}

    def _fill_dependency(self, run: str, fingerprint: Mapping[str, Any]) -> None:
        entries = self.entries()
        waiting = [e for e in entries.values() if isinstance(e.get("depends_on"), dict)
                   and run in e["depends_on"] and e["depends_on"][run] is None]
        if waiting:
            for entry in waiting:
                entry["depends_on"][run] = dict(fingerprint)
            _write_json(self.folder / MANIFEST, {"chapter": self.chapter, "profile": SHIPPED_PROFILE,
                                                 "entries": entries})

    # -------------------------------------------------------------------------------------- reading

    def load_run(self, name: str, *, on_stale: str = "warn") -> Any:
        """The shipped run ``name`` as a :class:`~spectral_lib.experiments.run.RunResult` (``cached=True``,
        ``out_dir`` the shipped folder, float32 samples); see :meth:`check_stale` for ``on_stale``."""
        from spectral_lib.experiments.profiles import ExperimentConfig
        from spectral_lib.experiments.run import RunResult

        self._expect(name, "run", on_stale)
        folder = self.folder / name
        metrics = _read_json(folder / "metrics.json")
        log = folder / "log.jsonl"
        history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        return RunResult(samples=_load_npz(folder / "samples.npz")["samples"], metrics=metrics,
                         config=ExperimentConfig.from_dict(_read_json(folder / "config.json")), out_dir=folder,
                         wall_time=float(metrics.get("wall_time_s", float("nan"))), cached=True, history=history)

    def load_arrays(self, name: str, *, on_stale: str = "warn") -> dict[str, Any]:
        """The shipped arrays ``name`` as ``{key: float32 (or integer) torch tensor}``."""
        self._expect(name, "arrays", on_stale)
        return _load_npz(self.folder / f"{name}.npz")

    def load_json(self, name: str, *, on_stale: str = "warn") -> Any:
        """The shipped JSON ``name``."""
        self._expect(name, "json", on_stale)
        return _read_json(self.folder / f"{name}.json")

    def _expect(self, name: str, kind: str, on_stale: str) -> None:
        entry = self.entry(name)
        if entry.get("kind") != kind:
            raise ShippedResultError(f"shipped result {name!r} of chapter {self.chapter} is a {entry.get('kind')!r}, "
                                     f"not a {kind!r}")
        self.check_stale(name, on_stale=on_stale)

    # -------------------------------------------------------------------------------------- staleness

    def stale_reason(self, name: str, *, config: Any = None, key: Any = _UNSET) -> str | None:
        """Why ``name`` no longer answers what is asked (``None``: it is current).

        A run is compared with ``config`` when given (the chapter's request), else with what its recipe gives under
        today's profile; arrays and JSON with ``key`` when given (``None`` included), and through the runs they
        depend on.
        """
        entries = self.entries()
        if name not in entries:
            return "not shipped"
        entry = entries[name]
        if entry.get("kind") == "run":
            if config is None:
                from spectral_lib.experiments.profiles import get_profile

                recipe = entry["recipe"]
                try:
                    config = get_profile(recipe["experiment"], recipe["profile"]).replace(**recipe["overrides"])
                except ValueError as exc:
                    return f"its configuration cannot be rebuilt any more ({exc})"
            diff = _differences(entry["fingerprint"], run_fingerprint(config))
            return f"configuration changed ({_describe(diff)})" if diff else None
        if key is not _UNSET and _jsonable(key) != entry.get("key"):
            return f"key changed (shipped {entry.get('key')!r}, now {_jsonable(key)!r})"
        for run, fingerprint in entry.get("depends_on", {}).items():
            reason = self.stale_reason(run)
            if reason:
                return f"it depends on run {run!r}: {reason}"
            if fingerprint is not None and entries[run]["fingerprint"] != fingerprint:
                diff = _differences(fingerprint, entries[run]["fingerprint"])
                return f"it was computed from another version of run {run!r} ({_describe(diff)})"
        return None

    def check_stale(self, name: str, *, on_stale: str = "warn") -> str | None:
        """``on_stale``: ``"warn"`` (a danger note on the page, the result is still returned for reference),
        ``"raise"`` (:class:`ShippedResultError`) or ``"ignore"``. Returns the reason or ``None``."""
        if on_stale not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_stale must be 'warn', 'raise' or 'ignore', got {on_stale!r}")
        reason = self.stale_reason(name)
        if reason and on_stale == "raise":
            raise ShippedResultError(f"shipped result {name!r} of chapter {self.chapter} is stale: {reason}. "
                                     "Rebuild it: make book RETRAIN=1 (or the chapter with retrain = True).")
        if reason and on_stale == "warn":
            from spectral_lib import book

            book.note(f"The shipped result <code>{name}</code> no longer matches the <code>cpu</code> profile "
                      f"({_html(reason)}). It is shown for reference only; rebuild it with "
                      "<code>make book RETRAIN=1</code>.", kind="danger", title="Stale shipped result")
        return reason

    def summary(self) -> str:
        """A markdown table of the shipped entries: name, kind, commit, date, hardware, training time."""
        rows = ["| shipped result | kind | commit | date | hardware | training |", "|---|---|---|---|---|---|"]
        for name, e in sorted(self.entries().items()):
            wall = e.get("wall_time_s")
            time_text = f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else ""
            commit = e.get("commit", "?") + (" + local changes" if e.get("dirty") else "")
            rows.append(f"| `{name}` | {e.get('kind')} | `{commit}` | {e.get('date', '?')} | {e.get('hardware', '?')} "
                        f"| {time_text} |")
        return "\n".join(rows)


def _jsonable(value: Any) -> Any:
    """``value`` through JSON (tuples become lists, NumPy/torch scalars numbers), so that stored == asked."""
    def default(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        raise TypeError(f"cannot store {type(obj).__name__} as JSON in a shipped result")

    return json.loads(json.dumps(value, default=default))


def _html(text: str) -> str:
    import html

    return html.escape(text)


def stale_entries(root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``{"<chapter>/<name>": reason}`` for every shipped entry under ``root/cpu`` that is not current."""
    base = Path(root if root is not None else results_root()) / SHIPPED_PROFILE
    stale = {}
    for folder in sorted(p for p in base.glob("*") if (p / MANIFEST).exists()):
        store = Shipped(folder.name, root=base.parent)
        for name in sorted(store.entries()):
            reason = store.stale_reason(name)
            if reason:
                stale[f"{folder.name}/{name}"] = reason
    return stale


