"""Results that outlive a session: the ``results/`` folder of the repository, and the chapters' shipped results.

Layout (the contract every experiment follows)::

    results/
      cpu/<chapter>/manifest.json         what is shipped for the chapter: per entry its kind, fingerprint,
                                          recipe and provenance (commit, date, hardware, torch, wall time)
      cpu/<chapter>/<run>/                a run folder without checkpoints: config.json, metrics.json, log.jsonl,
                                          samples.npz (float16) and the run's derived JSON caches (seed_metrics...)
      cpu/<chapter>/<name>.npz            named arrays a figure needs (float16 where the values allow)
      cpu/<chapter>/<name>.json           derived numbers (a table, a sweep)
      gpu/<experiment>/<row>.json         one small JSON of numbers per table row run on a GPU (gpu/full profiles)
      full/<experiment>/<row>.json

:func:`results_root` finds the folder: ``$SPECTRAL_RESULTS_DIR`` if set, else ``results/`` beside the
``spectral_lib`` package of a source checkout (the Colab cell clones the repository and sets the variable).

How a chapter uses it
---------------------
The chapter's parameters cell has ``profile`` and ``retrain = False``; its set-up cell makes a
:class:`ShippedResults`. Every run, array or table the page shows goes through it::

    from spectral_lib.experiments.ablation import Variant, run_variant, variant_config, variant_dir
    from spectral_lib.experiments.shipped import ShippedResults

    shipped = ShippedResults("05_checkerboard", profile, retrain=retrain)
    for reg in ("none", "wavelet"):
        config = variant_config(Variant(reg), profile=profile)
        results[reg] = shipped.run(variant_dir("", config).name, config,
                                   lambda: run_variant(Variant(reg), profile=profile))
    ddim = shipped.arrays("ddim_samples", lambda: {"samples": sample_with(results["none"], "ddim")},
                          key={"steps": 50}, depends_on=[variant_dir("", config).name])["samples"]

* at ``cpu``: the shipped entry is read back (seconds, no checkpoint needed), with one note on the page saying
  which commit and machine made it. An entry that is missing, or whose configuration no longer matches the
  profile, is trained afresh, with a loud warning, and written over the shipped one.
* at ``cpu`` with ``retrain=True`` (``make book RETRAIN=1`` sets ``SPECTRAL_RETRAIN=1``): everything is computed
  afresh and written to ``results/cpu/<chapter>/`` (commit the result).
* at any other profile (``smoke``, ``gpu``): computed afresh, never shipped (smoke stays the CI plumbing check).

Findings the prose quotes hold at ``cpu``, so the page reads them from the shipped results at *every* profile
and shows them in a table (``Shipped(chapter).load_json(name)``, ``.load_run(name)``). A page built at ``smoke``
therefore still states true findings, and never a number its own table contradicts.

Staleness
---------
A run's *fingerprint* is its configuration (less the keys that do not change a result, as in
:data:`~spectral_lib.experiments.run.CACHE_INSENSITIVE`), the regularizer's resolved terms with every default
of their loss functions, and :data:`RESULT_VERSIONS` of its experiment (bump it when code changes results
without changing a configuration). The manifest stores it and the *recipe* (experiment, profile, overrides), so
:func:`stale_entries` can recompute what the profile asks for today; ``tests/test_shipped.py`` fails on any
difference. Arrays and tables are stale when a run they ``depends_on`` is, when that run was shipped again from
another configuration after them (its fingerprint is recorded with them), or when their ``key`` differs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from spectral_lib.experiments.shipped_store import (
    MANIFEST,
    RESULT_VERSIONS,
    RESULTS_ENV,
    SHIPPED_PROFILE,
    Shipped,
    ShippedResultError,
    _differences,
    _describe,
    _html,
    _jsonable,
    results_root,
    run_fingerprint,
    stale_entries,
)

__all__ = [
    "RESULTS_ENV",
    "RETRAIN_ENV",
    "SHIPPED_PROFILE",
    "RESULT_VERSIONS",
    "MANIFEST",
    "ShippedResultError",
    "results_root",
    "run_fingerprint",
    "Shipped",
    "ShippedResults",
    "stale_entries",
]

RETRAIN_ENV = "SPECTRAL_RETRAIN"
"""``SPECTRAL_RETRAIN=1`` (set by ``make book RETRAIN=1``) makes every :class:`ShippedResults` retrain."""


# ------------------------------------------------------------------------------------------------ the chapter switch


class ShippedResults:
    """A chapter's switch between shipped and fresh results (see the module docstring for the rules).

    Args:
        chapter: the chapter's file stem, e.g. ``"05_checkerboard"``.
        profile: the page's profile; only :data:`SHIPPED_PROFILE` reads and writes shipped results.
        retrain: train afresh and overwrite the shipped results (``None`` or ``False``: ``$SPECTRAL_RETRAIN``).
        root: the ``results/`` folder (default :func:`results_root`).
    """

    def __init__(self, chapter: str, profile: str, *, retrain: bool | None = None,
                 root: str | os.PathLike[str] | None = None) -> None:
        self.store = Shipped(chapter, root=root)
        self.profile = str(profile)
        self.retrain = bool(retrain) or os.environ.get(RETRAIN_ENV, "") in ("1", "true", "yes")
        self.restored: list[str] = []
        self.computed: list[str] = []
        self._told = False

    @property
    def shipping(self) -> bool:
        """True when this profile reads and writes the shipped results."""
        return self.profile == SHIPPED_PROFILE

    def run(self, name: str, config: Any, train: Callable[[], Any]) -> Any:
        """The run ``name`` with configuration ``config``: shipped, or ``train()`` (then shipped at ``cpu``).

        ``train`` returns a :class:`~spectral_lib.experiments.run.RunResult` whose configuration must be ``config``
        (up to keys that do not change a result): otherwise :class:`ValueError`, since the shipped entry would be
        stale at once.
        """
        if self.shipping and not self.retrain:
            reason = self.store.stale_reason(name, config=config)
            if reason is None:
                self._restored(name)
                return self.store.load_run(name, on_stale="ignore")
            self._fresh(name, reason)
        result = train()
        if self.shipping:
            diff = _differences(run_fingerprint(result.config), run_fingerprint(config))
            if diff:
                raise ValueError(f"run {name!r}: train() returned a run with another configuration than the one "
                                 f"given to ShippedResults.run ({_describe(diff)})")
            self.store.save_run(name, result)
            self.computed.append(name)
        return result

    def arrays(self, name: str, compute: Callable[[], Mapping[str, Any]], *, key: Any = None,
               depends_on: Iterable[str] = (), dtype: str = "auto") -> dict[str, Any]:
        """Named arrays ``compute()`` returns (e.g. samples drawn from a checkpoint), shipped at ``cpu``.

        At ``cpu`` a shipped copy with the same ``key`` whose ``depends_on`` runs are current is read back (float32
        tensors); otherwise ``compute()`` runs and its arrays are shipped. Elsewhere ``compute()`` runs. Returns
        ``{name: tensor}`` in either case (computed values pass through the same float16 rounding when shipped).
        """
        return self._derived(name, "arrays", compute, key, tuple(depends_on), dtype)

    def json(self, name: str, compute: Callable[[], Any], *, key: Any = None,
             depends_on: Iterable[str] = ()) -> Any:
        """JSON-able numbers ``compute()`` returns (a table, per-seed metrics), shipped at ``cpu`` as
        :meth:`arrays` does."""
        return self._derived(name, "json", compute, key, tuple(depends_on), None)

    def _derived(self, name: str, kind: str, compute: Callable[[], Any], key: Any, depends_on: tuple[str, ...],
                 dtype: str | None) -> Any:
        if self.shipping and not self.retrain:
            reason = self.store.stale_reason(name, key=key) if self.store.has(name) else "not shipped"
            if reason is None and self.store.entry(name).get("kind") == kind:
                self._restored(name)
                load = self.store.load_arrays if kind == "arrays" else self.store.load_json
                return load(name, on_stale="ignore")
            self._fresh(name, reason or f"not a {kind} entry")
        value = self._compute(name, compute, depends_on)
        if not self.shipping:
            return _as_tensors(value) if kind == "arrays" else _jsonable(value)
        self.computed.append(name)
        if kind == "arrays":
            self.store.save_arrays(name, value, key=key, depends_on=depends_on, dtype=dtype or "auto")
            return self.store.load_arrays(name, on_stale="ignore")
        self.store.save_json(name, value, key=key, depends_on=depends_on)
        return self.store.load_json(name, on_stale="ignore")

    def _compute(self, name: str, compute: Callable[[], Any], depends_on: tuple[str, ...]) -> Any:
        """``compute()``, with a clear error when it needs the checkpoint of a run that was read back shipped."""
        from spectral_lib.experiments.checkpoint import CheckpointError

        try:
            return compute()
        except CheckpointError as exc:
            shipped_runs = [r for r in depends_on if r in self.restored] or self.restored
            if not shipped_runs:
                raise
            raise ShippedResultError(
                f"{name!r} of chapter {self.store.chapter} must be computed afresh, and it needs a checkpoint, but "
                f"the run(s) {', '.join(map(repr, shipped_runs))} were read back from the shipped results, which "
                f"hold none ({exc}). Execute the chapter with retrain = True (make book RETRAIN=1)."
            ) from exc

    def _restored(self, name: str) -> None:
        self.restored.append(name)
        if self._told:
            return
        self._told = True
        entry = self.store.entry(name)
        changes = " + local changes" if entry.get("dirty") else ""
        from spectral_lib import book

        book.note(
            f"This page shows the <strong>shipped <code>cpu</code> results</strong> of the chapter, made at commit "
            f"<code>{_html(str(entry.get('commit')))}</code>{changes} on {_html(str(entry.get('date')))} "
            f"({_html(str(entry.get('hardware')))}). Set <code>retrain = True</code> in the parameters (or run "
            "<code>make book RETRAIN=1</code>) to train them afresh.", kind="note", title="Shipped results")

    def _fresh(self, name: str, reason: str) -> None:
        from spectral_lib import book

        missing = reason == "not shipped"
        book.note(f"The shipped result <code>{_html(name)}</code> cannot be used: {_html(reason)}. It is computed "
                  "afresh now (this takes the training time of the <code>cpu</code> profile) and written to "
                  "<code>results/</code>; commit it afterwards.", kind="warning",
                  title="Training: no shipped result yet" if missing else "Retraining: shipped result out of date")


def _as_tensors(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: tensor}``: float arrays as float32 tensors (as the shipped copies load), others as they are."""
    import torch

    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError(f"compute() must return a non-empty mapping name -> array, got {type(arrays).__name__}")
    out = {}
    for k, v in arrays.items():
        t = v.detach().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(v)
        out[str(k)] = t.float() if t.is_floating_point() else t
    return out
