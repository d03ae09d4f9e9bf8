"""The workshop page's solutions, checked without running them: their code parses and uses only names that its
chapter's notebook (or an earlier solution of the same chapter) defines, and their prose types no number.

The solutions are executed too, in their chapter's namespace, at the end of each chapter's smoke run
(``tests/test_book.py::test_notebook_runs_at_smoke_profile``).
"""

from __future__ import annotations

import ast
import builtins
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import check_prose_numbers  # noqa: E402
import workshop_solutions  # noqa: E402

SOLUTIONS = workshop_solutions.solutions()
KERNEL_NAMES = set(dir(builtins)) | {"display", "get_ipython"}
"""Names every IPython kernel has without an import (``display`` is one of IPython's builtins)."""


def _parse(source: str) -> ast.Module:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return ast.parse("\n".join(lines))


def bound_names(tree: ast.AST) -> set[str]:
    """Every name ``tree`` binds anywhere (assignments, loops, imports, definitions, arguments, handlers)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name.split(".")[0]) for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def chapter_names(chapter: int) -> set[str]:
    notebook = workshop_solutions.chapter_notebook(chapter)
    assert notebook is not None, f"the workshop has solutions for chapter {chapter}, which has no notebook"
    cells = nbformat.read(notebook, as_version=4).cells
    return set().union(*(bound_names(_parse(c.source)) for c in cells if c.cell_type == "code"))


def unknown_names(code: str, known: set[str]) -> list[str]:
    """The names ``code`` reads that neither it, ``known`` nor a kernel's builtins define."""
    tree = _parse(code)
    defined = known | bound_names(tree) | KERNEL_NAMES
    return sorted({n.id for n in ast.walk(tree)
                   if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in defined})


def problems_of(solutions: list[workshop_solutions.Solution], names_of=chapter_names) -> list[str]:
    found, known = [], {}
    for s in solutions:
        known.setdefault(s.chapter, set(names_of(s.chapter)))
        for code in s.code:
            try:
                missing = unknown_names(code, known[s.chapter])
            except SyntaxError as exc:
                found.append(f"{s.exercise}: does not parse: {exc}")
                continue
            if missing:
                found.append(f"{s.exercise} (line {s.line}): {', '.join(missing)} not defined in chapter "
                             f"{s.chapter}'s notebook")
            known[s.chapter] |= bound_names(_parse(code))
    return found


def test_the_page_has_solutions_with_code_for_the_chapters_it_teaches():
    chapters = {s.chapter for s in SOLUTIONS if s.code}
    assert {1, 2, 3, 4, 9, 10} <= chapters, chapters
    assert all(workshop_solutions.chapter_notebook(c) for c in chapters)


def test_every_solution_uses_only_names_its_chapter_defines():
    problems = problems_of(SOLUTIONS)
    assert not problems, "workshop solutions that would fail in their chapter:\n" + "\n".join(problems)


def test_no_solution_types_a_number():
    """A solution says what to run and what to look for, or points to the chapter's glued numbers."""
    typed = [f"{s.exercise} (line {s.line + n - 1}): {', '.join(numbers)}: {text.strip()}"
             for s in SOLUTIONS for n, text, numbers in check_prose_numbers.prose_numbers(s.prose)]
    assert not typed, "numbers typed in workshop solutions:\n" + "\n".join(typed)


def test_the_checks_find_what_they_should(tmp_path):
    page = tmp_path / "11_workshop.md"
    page.write_text(
        "### Chapter 4: x\n\n**4.1 Q?** Ask.\n\n:::{admonition} Solution\n:class: dropdown\n"
        "The gap is about 0.03 here.\n\n```python\nfig, ax = plt.subplots()\nshown = display(Audio(clip))\n```\n:::\n\n"
        "**4.2 Q?** Ask.\n\n:::{admonition} Solution\n:class: dropdown\nSee the chapter.\n\n```text\nx = 0.5\n```\n\n"
        "```python\nprint(shown, models['ddpm'])\n```\n:::\n"
    )
    found = workshop_solutions.solutions(page)
    assert [(s.exercise, s.line, len(s.code)) for s in found] == [("4.1", 5, 1), ("4.2", 17, 1)]
    assert "0.03" in found[0].prose and ":class:" not in found[0].prose and "x = 0.5" not in found[1].prose
    problems = problems_of(found, names_of=lambda chapter: {"models"})
    assert problems == ["4.1 (line 5): Audio, clip, plt not defined in chapter 4's notebook"], problems
    assert check_prose_numbers.prose_numbers(found[0].prose)[0][2] == ("0.03",)


def test_solutions_outside_a_numbered_exercise_are_refused(tmp_path):
    page = tmp_path / "w.md"
    page.write_text("### Chapter 4: x\n\n:::{admonition} Solution\ntext\n:::\n")
    with pytest.raises(ValueError, match="line 3"):
        workshop_solutions.solutions(page)
    page.write_text("### Chapter 4: x\n\n**4.1 Q?**\n\n:::{admonition} Solution\n```python\nx = 1\n")
    with pytest.raises(ValueError, match="never closed"):
        workshop_solutions.solutions(page)
