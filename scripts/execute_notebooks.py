#!/usr/bin/env python
"""Execute the book's notebooks with papermill at a named profile.

The sources stay clean: ``_config.yml``, ``_toc.yml``, ``references.bib`` and ``book/`` are copied to ``--out``
and the copies are executed in place there; ``jupyter-book build <out>`` then renders the stored outputs.

    python scripts/execute_notebooks.py --profile cpu --out _build/src [--jobs 2] [--only book/05_checkerboard.ipynb]
    python scripts/execute_notebooks.py --profile cpu --retrain          # train afresh, overwrite results/cpu/
    python scripts/execute_notebooks.py --sources-only --out _build/src   # pages and config only (make html)

``--only`` re-executes the named notebooks and keeps the others' executed copies in ``--out``.

A run of every notebook of the toc that completes records each notebook's wall time in
``results/timings/<profile>.json`` (``cpu-retrain.json`` with ``--retrain``); the markdown pages are copied with
their timings tables rendered from those files (:mod:`book_timings`).

``--retrain`` injects ``retrain = True`` into every notebook whose parameters cell declares ``retrain`` and sets
``SPECTRAL_RETRAIN=1`` for the kernels (:mod:`spectral_lib.experiments.shipped` reads it): at ``cpu`` the chapters
then train instead of reading the shipped results, and write the new results over them.

After execution the set-up cells are tagged for the rendered page (:func:`tag_setup_cells`): papermill's injected
parameters cell, the ``parameters`` cell and the Colab cell are removed from the page (``remove-cell``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import book_timings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
BOOK_DIRS = ("_static",)
"""Folders beside _config.yml that the book needs (``_static``: the book's CSS)."""
REMOVED_ON_PAGE = ("injected-parameters", "parameters", "colab-setup")
"""Cell tags whose cells the rendered page leaves out (``remove-cell`` is added after execution)."""
RETRAIN_ENV = "SPECTRAL_RETRAIN"
RUN_AFTER = {"book/06_ablation.ipynb": "book/05_checkerboard.ipynb"}
"""Notebook -> the notebook it must follow in the same worker: chapter 6 reuses chapter 5's run folders and ships
into chapter 5's results, so the two never run side by side (``--jobs 2`` once had them write the same entry)."""
RUN_ALONE = ("book/10_cost.ipynb",)
"""Notebooks that measure time (chapter 10's overhead ratios): executed after every other one, with nothing beside."""


def schedule(notebooks: list[Path]) -> tuple[list[list[Path]], list[Path]]:
    """Split ``notebooks`` (toc order) into chains for the worker pool (a chain runs in order in one worker, see
    :data:`RUN_AFTER`) and the notebooks of :data:`RUN_ALONE`, executed one by one after the pool."""
    alone = [nb for nb in notebooks if nb.as_posix() in RUN_ALONE]
    chains: list[list[Path]] = []
    where: dict[str, list[Path]] = {}
    for nb in notebooks:
        if nb in alone:
            continue
        before = RUN_AFTER.get(nb.as_posix())
        chain = where.get(before) if before else None
        if chain is None:
            chain = []
            chains.append(chain)
        chain.append(nb)
        where[nb.as_posix()] = chain
    return chains, alone


def toc_entries(root: Path = ROOT) -> list[str]:
    """Every file named in ``_toc.yml`` (root first), as paths relative to ``root`` without suffix."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                entries.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return entries


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks listed in ``_toc.yml``, in book order, as paths relative to ``root``."""
    return [Path(e + ".ipynb") for e in toc_entries(root) if (root / (e + ".ipynb")).exists()]


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary file, so that a concurrent reader never sees half a file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def copy_sources(out: Path, root: Path = ROOT) -> None:
    """Copy the book's pages to ``out``: the configuration files and everything under ``book/`` but the notebooks.

    The notebooks are left out (papermill writes them there, see :func:`prepare_tree`), so that several processes
    can prepare the same tree at once.
    """
    for name in BOOK_FILES:
        _copy_atomic(root / name, out / name)
    for folder in BOOK_DIRS:
        for src in (root / folder).rglob("*") if (root / folder).is_dir() else []:
            if src.is_file():
                _copy_atomic(src, out / src.relative_to(root))
    for src in (root / "book").rglob("*"):
        rel = src.relative_to(root)
        if src.is_dir() or ".ipynb_checkpoints" in rel.parts or "runs" in rel.parts or src.suffix == ".ipynb":
            continue
        if src.suffix == ".md":
            _write_atomic(book_timings.render(src.read_text(), root), out / rel)
        else:
            _copy_atomic(src, out / rel)


def _write_atomic(text: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, dst)


def prepare_tree(out: Path, notebooks: list[Path], root: Path = ROOT) -> None:
    """Copy the sources to ``out`` for executing ``notebooks``: every page and configuration file, a fresh copy of
    each notebook in ``notebooks``, and of any other notebook of the toc that ``out`` does not hold yet. Notebooks
    already executed in ``out`` and not named are kept, so that ``--only`` re-executes a chapter without wiping
    the others' outputs."""
    copy_sources(out, root)
    for nb in toc_notebooks(root):
        if nb in notebooks or not (out / nb).exists():
            _copy_atomic(root / nb, out / nb)


def tag_setup_cells(path: Path) -> int:
    """Add ``remove-cell`` to the cells tagged :data:`REMOVED_ON_PAGE` of an executed notebook (in place).

    Papermill tags the cell it injects ``injected-parameters`` but cannot add tags of our choosing, so this runs
    after execution. Returns the number of cells changed (0 when already tagged: it is idempotent).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if any(t in tags for t in REMOVED_ON_PAGE) and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
            changed += 1
    if changed:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tagging")
        nbformat.write(nb, tmp)
        os.replace(tmp, path)
    return changed


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned at the top level of the notebook's ``parameters`` cell."""
    import ast

    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
    return set()


def execute(notebook: Path, output: Path, profile: str, *, cwd: Path, timeout: int | None = None,
            retrain: bool = False) -> float:
    """Execute ``notebook`` into ``output`` with ``profile`` injected (and ``retrain = True`` where the notebook
    declares it and ``retrain`` is set), tag its set-up cells for the page; return the wall time in seconds."""
    import papermill as pm

    parameters: dict[str, object] = {"profile": profile}
    if retrain and "retrain" in declared_parameters(notebook):
        parameters["retrain"] = True
    start = time.perf_counter()
    pm.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(cwd),
        progress_bar=False,
        execution_timeout=timeout,
    )
    seconds = time.perf_counter() - start
    tag_setup_cells(Path(output))
    return seconds


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="profile injected into every notebook (smoke, cpu, gpu)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "src", help="where the executed copy goes")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once")
    parser.add_argument("--only", nargs="*", default=None, help="execute only these notebooks (paths as in the toc)")
    parser.add_argument("--retrain", action="store_true",
                        help="train afresh at cpu instead of reading the shipped results, and overwrite them")
    parser.add_argument("--sources-only", action="store_true",
                        help="refresh the copied pages and configuration (not the executed notebooks) and stop")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    notebooks = toc_notebooks()
    if args.only:
        wanted = {Path(p).with_suffix(".ipynb") for p in args.only}
        unknown = wanted - set(notebooks)
        if unknown:
            parser.error(f"not in _toc.yml: {', '.join(map(str, sorted(unknown)))}")
        notebooks = [nb for nb in notebooks if nb in wanted]
    if args.sources_only:
        notebooks = []
    prepare_tree(out, notebooks)
    if not notebooks:
        print(f"[execute] sources copied to {out}; no notebook executed")
        return 0
    capped = args.jobs > 1 and "OMP_NUM_THREADS" not in os.environ
    if capped:
        # A static cap per kernel; inside it, spectral_lib.device.adapt_threads shares the cores among the kernels
        # that are training at the moment (and with anything else on the machine that uses the library).
        os.environ["OMP_NUM_THREADS"] = str(max(1, _cores() // args.jobs))
    if args.retrain:
        os.environ[RETRAIN_ENV] = "1"

    def run(nb: Path) -> tuple[Path, float]:
        target = out / nb
        print(f"[execute] {nb} (profile={args.profile}{', retrain' if args.retrain else ''}) ...", flush=True)
        seconds = execute(target, target, args.profile, cwd=target.parent, retrain=args.retrain)
        print(f"[execute] {nb}: {seconds:.1f} s", flush=True)
        return nb, seconds

    times: dict[Path, float] = {}

    def run_chain(chain: list[Path]) -> None:
        times.update(run(nb) for nb in chain)

    chains, alone = schedule(notebooks)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_chain, chain) for chain in chains]
        for future in futures:  # the first failure is raised after every chain has finished
            future.result()
    if capped:  # the notebooks that run alone get every core again
        os.environ.pop("OMP_NUM_THREADS", None)
    times.update(run(nb) for nb in alone)
    wall = time.perf_counter() - start
    results = [(nb, times[nb]) for nb in notebooks]  # toc order
    total = sum(s for _, s in results)
    print(f"[execute] {len(results)} notebook(s), profile={args.profile}, {total:.1f} s of notebook time, "
          f"{wall:.1f} s wall clock")
    for nb, seconds in results:
        print(f"  {seconds:8.1f} s  {nb}")
    if not args.only:  # a whole run: its times become the book's timings table (results/timings/)
        path = book_timings.record(args.profile, {str(nb): s for nb, s in results}, retrain=args.retrain,
                                   jobs=args.jobs, wall_s=wall)
        print(f"[execute] timings recorded in {path}; `make html` renders them into the pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
