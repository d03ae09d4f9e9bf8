"""Every notebook's ``parameters`` cell reads as papermill reads it: each assignment is a parameter papermill finds
(a line with a second ``=``, even in a comment, is skipped with "Unable to parse line N"), and ``profile`` is one.
The template of ``scripts/new_notebook.py`` too."""

from __future__ import annotations

import ast
import logging
import sys
from pathlib import Path

import nbformat
import pytest
from papermill.translators import PythonTranslator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import new_notebook  # noqa: E402

NOTEBOOKS = sorted(p.relative_to(ROOT) for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
PENDING: dict[Path, str] = {}
"""Notebooks whose parameters cell is known not to parse yet, with why (strict: remove the entry once fixed)."""


def parameter_problems(source: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """What papermill gets wrong in a parameters cell: its warnings, and assignments it does not see."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = {p.name for p in PythonTranslator.inspect(nbformat.v4.new_code_cell(source))}
    problems = [r.getMessage() for r in caplog.records if r.name.startswith("papermill")]
    assigned = {t.id for node in ast.parse(source).body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    problems += [f"papermill does not see the parameter {name!r}" for name in sorted(assigned - found)]
    if "profile" not in found:
        problems.append("no 'profile' parameter")
    return problems


def _case(path: Path):
    marks = [pytest.mark.xfail(strict=True, reason=PENDING[path])] if path in PENDING else []
    return pytest.param(path, marks=marks, id=str(path))


@pytest.mark.parametrize("path", [_case(p) for p in NOTEBOOKS])
def test_parameters_cell_parses_without_papermill_warnings(path, caplog):
    cells = [c for c in nbformat.read(ROOT / path, as_version=4).cells
             if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path}: {len(cells)} cells tagged 'parameters', expected 1"
    problems = parameter_problems(cells[0].source, caplog)
    assert not problems, f"{path}: " + "; ".join(problems)


@pytest.mark.parametrize("trains", [False, True])
def test_the_new_notebook_template_parses(trains, caplog):
    cell = [c for c in new_notebook.opening_cells("T", trains=trains) if "parameters" in c.metadata.get("tags", [])][0]
    assert parameter_problems(cell.source, caplog) == []
    assert ("retrain" in cell.source) is trains


def test_the_check_sees_a_comment_with_an_equals_sign(caplog):
    problems = parameter_problems('profile = "cpu"\nretrain = False  # at cpu (RETRAIN=1)\n', caplog)
    assert any("Unable to parse line 2" in p for p in problems), problems
    assert "papermill does not see the parameter 'retrain'" in problems
    assert parameter_problems("seed = 0\n", caplog) == ["no 'profile' parameter"]
