#!/usr/bin/env python
"""Measured notebook times: recorded by a complete book build, rendered into the book's markdown pages.

Where the numbers come from
---------------------------
``scripts/execute_notebooks.py`` times every notebook it executes (papermill, wall clock). When a run of **every**
notebook of the toc completes without an error (not with ``--only``), it calls :func:`record`, which writes
``results/timings/<run>.json`` (``<run>``: the profile, ``cpu-retrain`` for ``--retrain``)::

    {"run": "cpu", "profile": "cpu", "retrain": false, "jobs": 1, "date": ..., "hardware": ..., "cores": 2,
     "commit": ..., "dirty": false, "total_s": 812.4, "notebooks": {"book/01_why_blur.ipynb": 7.9, ...}}

Where they are shown
--------------------
A markdown page of the book (``book/*.md``) holds a generated block between two markers::

    <!-- timings:chapters -->
    ... the table, generated ...
    <!-- /timings -->

:func:`render` regenerates every block from the JSON files that exist; a run that was never recorded shows
"not measured yet" (no number is ever typed). The build renders the pages as it copies them
(``execute_notebooks.copy_sources``), so a fresh ``make book`` shows its own times; the committed pages are kept in
step with the committed JSON by ``tests/test_book_timings.py`` (refresh them with
``python scripts/book_timings.py --update``).

    python scripts/book_timings.py            # print the table
    python scripts/book_timings.py --update   # rewrite the blocks of book/*.md from results/timings/
    python scripts/book_timings.py --check    # exit 1 if a page's block differs from the JSON (tests use it)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("smoke", "cpu", "cpu-retrain", "gpu")
"""The recorded runs, in the order of the table's columns."""
RUN_TITLES = {
    "smoke": "`smoke`",
    "cpu": "`cpu` (shipped results)",
    "cpu-retrain": "`cpu`, `RETRAIN=1`",
    "gpu": "`gpu`",
}
NOT_MEASURED = "not measured yet"
_BLOCK = re.compile(r"(<!-- timings:(?P<kind>[\w-]+) -->\n)(?P<body>.*?)(<!-- /timings -->)", re.DOTALL)


def results_dir(root: Path | None = None) -> Path:
    """``results/timings`` of the repository (or of ``$SPECTRAL_RESULTS_DIR``, as the shipped results)."""
    if root is not None:
        return Path(root) / "timings"
    env = os.environ.get("SPECTRAL_RESULTS_DIR")
    return (Path(env) if env else ROOT / "results") / "timings"


def run_name(profile: str, retrain: bool = False) -> str:
    """``"cpu"``, ``"cpu-retrain"``, ``"smoke"``, ...: the name of a recorded run."""
    return f"{profile}-retrain" if retrain else str(profile)


# ------------------------------------------------------------------------------------------------ recording


def record(profile: str, seconds: Mapping[str, float], *, retrain: bool = False, jobs: int = 1,
           wall_s: float | None = None, root: Path | None = None, info: Mapping[str, Any] | None = None) -> Path:
    """Write the wall times of a complete run to ``results/timings/<run>.json`` (atomically) and return the path.

    Args:
        profile: the profile the notebooks were executed at.
        seconds: ``{notebook path as in the toc (book/NN_name.ipynb): wall seconds}``, every notebook of the run.
        retrain: the run trained afresh (``--retrain``).
        jobs: notebooks executed at once (their times overlap when > 1).
        wall_s: the wall time of the whole run (what a user waits); default the sum of ``seconds``, which is
            that only when ``jobs == 1``.
        info: facts about the machine (default :func:`spectral_lib.book.build_info`).
    """
    if not seconds:
        raise ValueError("no notebook times to record")
    bad = {k: v for k, v in seconds.items() if not isinstance(v, (int, float)) or not v >= 0}
    if bad:
        raise ValueError(f"notebook times must be seconds >= 0, got {bad}")
    if info is None:
        sys.path.insert(0, str(ROOT))
        from spectral_lib.book import build_info

        info = build_info(profile if profile in ("smoke", "cpu", "gpu", "full") else None)
    if wall_s is not None and not (isinstance(wall_s, (int, float)) and wall_s >= 0):
        raise ValueError(f"wall_s must be seconds >= 0, got {wall_s!r}")
    run = run_name(profile, retrain)
    total = float(sum(seconds.values()))
    value = {
        "run": run, "profile": profile, "retrain": bool(retrain), "jobs": int(jobs),
        "date": info.get("date") or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": info.get("hardware"), "cores": info.get("cores"), "commit": info.get("commit"),
        "dirty": info.get("dirty"), "total_s": round(total, 1),
        "wall_s": round(float(total if wall_s is None else wall_s), 1),
        "notebooks": {str(k): round(float(v), 1) for k, v in seconds.items()},
    }
    folder = results_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load(run: str, root: Path | None = None) -> dict[str, Any] | None:
    """The recorded run ``run`` (see :data:`RUNS`), or ``None`` when it was never recorded."""
    path = results_dir(root) / f"{run}.json"
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); delete it or rebuild the book") from exc
    if not isinstance(value, dict) or not isinstance(value.get("notebooks"), dict):
        raise ValueError(f"{path} holds no notebook times ('notebooks'); delete it or rebuild the book")
    return value


def notebook_seconds(notebook: str, run: str, root: Path | None = None) -> float | None:
    """The measured wall time of ``notebook`` (``book/NN_name.ipynb``) in ``run``, or ``None``."""
    recorded = load(run, root)
    return None if recorded is None else recorded["notebooks"].get(notebook)


# ------------------------------------------------------------------------------------------------ rendering


def format_seconds(seconds: float | None) -> str:
    """``"8 s"``, ``"45 s"``, ``"2.5 min"``, ``"1 h 05 min"``; ``None`` gives :data:`NOT_MEASURED`."""
    if seconds is None:
        return NOT_MEASURED
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def _toc_notebooks(root: Path) -> list[str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    from execute_notebooks import toc_notebooks

    return [str(p) for p in toc_notebooks(root)]


def _title(path: Path) -> str:
    import nbformat

    cells = nbformat.read(path, as_version=4).cells
    first = cells[0].source.strip() if cells else ""
    return first.splitlines()[0].lstrip("# ").strip() if first.startswith("#") else path.stem


def chapters_table(root: Path = ROOT, results: Path | None = None) -> str:
    """The generated block ``chapters``: one row per notebook of the toc, one column per run of :data:`RUNS`,
    a total row, and one line per recorded run saying where and when it was measured."""
    recorded = {run: load(run, results) for run in RUNS}
    lines = ["| chapter | " + " | ".join(RUN_TITLES[r] for r in RUNS) + " |", "|---" * (len(RUNS) + 1) + "|"]
    for number, notebook in enumerate(_toc_notebooks(root), start=1):
        stem = Path(notebook).with_suffix("").as_posix()
        cells = [format_seconds(None if recorded[r] is None else recorded[r]["notebooks"].get(notebook))
                 for r in RUNS]
        lines.append(f"| {number} {{doc}}`{_title(root / notebook)} <{Path(stem).name}>` | " + " | ".join(cells) + " |")
    totals = [format_seconds(None if recorded[r] is None else recorded[r]["total_s"]) for r in RUNS]
    lines.append("| **all notebooks** (sum) | " + " | ".join(totals) + " |")
    walls = [format_seconds(None if recorded[r] is None else recorded[r].get("wall_s", recorded[r]["total_s"]))
             for r in RUNS]
    lines.append("| **wall clock** (what you wait) | " + " | ".join(walls) + " |")
    notes = []
    for run in RUNS:
        value = recorded[run]
        if value is None:
            continue
        jobs = f", {value['jobs']} notebooks at a time" if value.get("jobs", 1) > 1 else ", one notebook at a time"
        changes = " + local changes" if value.get("dirty") else ""
        notes.append(f"- {RUN_TITLES[run]}: measured {value.get('date')} on {value.get('hardware')}{jobs}, "
                     f"commit `{value.get('commit')}`{changes}.")
    if not notes:
        notes.append(f"- No complete build has been timed yet: every cell says *{NOT_MEASURED}*.")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


RENDERERS = {"chapters": chapters_table}
"""Block kind -> function ``(root, results) -> markdown``."""


def render(text: str, root: Path = ROOT, results: Path | None = None) -> str:
    """``text`` with every ``<!-- timings:KIND -->`` block regenerated (unknown kinds raise ``ValueError``)."""
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        kind = match.group("kind")
        if kind not in RENDERERS:
            raise ValueError(f"unknown timings block {kind!r}; known: {', '.join(RENDERERS)}")
        if kind not in cache:
            cache[kind] = RENDERERS[kind](root, results)
        return match.group(1) + cache[kind] + match.group(4)

    return _BLOCK.sub(replace, text)


def pages(root: Path = ROOT) -> list[Path]:
    """The markdown pages of ``book/`` that hold a timings block."""
    return sorted(p for p in (root / "book").glob("*.md") if _BLOCK.search(p.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--update", action="store_true", help="rewrite the timings blocks of book/*.md")
    action.add_argument("--check", action="store_true", help="exit 1 when a page's block differs from the JSON")
    args = parser.parse_args(argv)
    if not (args.update or args.check):
        print(chapters_table())
        return 0
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if args.update:
                page.write_text(new)
    verb = "updated" if args.update else "out of date (run python scripts/book_timings.py --update)"
    for page in stale:
        print(f"{page}: {verb}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
