"""The book's structure, and every notebook executed end to end at the smoke profile.

The executed notebooks are written to ``_build/smoke/src`` (a copy of the book's sources), where
``tests/test_rendered.py`` builds the HTML book from them and looks at it in a browser.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import execute_notebooks  # noqa: E402
import sync_colab_cells  # noqa: E402

SMOKE_TREE = ROOT / "_build" / "smoke" / "src"
NOTEBOOKS = execute_notebooks.toc_notebooks()
ALL_NOTEBOOKS = sorted(p.relative_to(ROOT) for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_every_toc_entry_exists():
    missing = [e for e in execute_notebooks.toc_entries() if not any((ROOT / (e + s)).exists() for s in (".md", ".ipynb"))]
    assert not missing, f"_toc.yml names files that do not exist: {missing}"


def test_every_notebook_is_in_the_toc():
    listed = set(NOTEBOOKS)
    orphans = [str(p) for p in ALL_NOTEBOOKS if p not in listed]
    assert not orphans, f"notebooks in book/ missing from _toc.yml: {orphans}"


PLACEHOLDER = re.compile(r"\bTODO\b|^\s*(?:- )?[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\s*$", re.MULTILINE)


def _prose(path: Path) -> str:
    if path.suffix == ".md":
        return path.read_text()
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


@pytest.mark.parametrize("entry", execute_notebooks.toc_entries(), ids=str)
def test_no_placeholder_left_in_the_prose(entry):
    path = next(ROOT / (entry + s) for s in (".md", ".ipynb") if (ROOT / (entry + s)).exists())
    found = [m.group(0).strip() for m in PLACEHOLDER.finditer(_prose(path))]
    assert not found, f"{path.relative_to(ROOT)}: placeholder text left for the reader: {found}"


def test_placeholder_pattern_catches_what_it_should():
    assert PLACEHOLDER.findall("text\nRESULTS_DISCUSSION\n- SUMMARY_RESULTS\nTODO: later")
    assert not PLACEHOLDER.findall("uses `DENSE_MAX_SIZE` and SPECTRAL_LIB_CACHE in a sentence; a TODOs list")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=str)
def test_notebook_opening_cells(path):
    nb = nbformat.read(ROOT / path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path} has no code cell"
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), f"{path}: first code cell must be tagged 'parameters'"
    assert "profile =" in first.source, f"{path}: the parameters cell must set `profile`"
    assert sum("colab-setup" in c.metadata.get("tags", []) for c in code) == 1, f"{path}: one Colab set-up cell"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=str)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(ROOT / path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path}: cells {dirty} carry outputs; clear them (the book renders papermill's copies)"


def test_prepare_tree_keeps_executed_notebooks_it_is_not_asked_to_run(tmp_path):
    first, second = NOTEBOOKS[0], NOTEBOOKS[1]
    execute_notebooks.prepare_tree(tmp_path, [])
    assert all((tmp_path / nb).exists() for nb in NOTEBOOKS), "a missing notebook must be copied"
    assert (tmp_path / "_toc.yml").exists() and (tmp_path / "book" / "11_workshop.md").exists()
    (tmp_path / first).write_text("executed")
    (tmp_path / second).write_text("stale")
    (tmp_path / "book" / "11_workshop.md").write_text("old page")
    execute_notebooks.prepare_tree(tmp_path, [second])
    assert (tmp_path / first).read_text() == "executed", "--only wiped another chapter's executed copy"
    assert (tmp_path / second).read_bytes() == (ROOT / second).read_bytes(), "the notebook to run is a fresh copy"
    assert (tmp_path / "book" / "11_workshop.md").read_bytes() == (ROOT / "book" / "11_workshop.md").read_bytes()


def test_colab_cells_follow_config():
    assert sync_colab_cells.main(["--check"]) == 0


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_notebook_runs_at_smoke_profile(path):
    execute_notebooks.copy_sources(SMOKE_TREE)
    output = SMOKE_TREE / path
    tmp = output.with_name(f".{output.stem}.running.ipynb")
    seconds = execute_notebooks.execute(ROOT / path, tmp, "smoke", cwd=output.parent, timeout=600)
    tmp.replace(output)
    nb = nbformat.read(output, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{path}: error outputs after execution"
    print(f"{path}: {seconds:.1f} s at smoke")
