#!/usr/bin/env python
"""The exercise solutions of the workshop page (``book/11_workshop.md``), read as the chapters would run them.

Every ``:::{admonition} Solution`` block of the page belongs to an exercise (``**4.2 ...**``) of a chapter section
(``### Chapter 4: ...``); its fenced ``python`` code runs in the namespace of that chapter's notebook, after the
chapter's own cells. The book's tests use this module to execute each chapter's solutions at the end of its smoke
run (``tests/test_book.py``) and to check them without running anything (``tests/test_workshop.py``).

    python scripts/workshop_solutions.py          # every solution: exercise, line on the page, lines of code
    python scripts/workshop_solutions.py 4        # chapter 4's solution code, to paste at the end of its notebook
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKSHOP = ROOT / "book" / "11_workshop.md"

_SECTION = re.compile(r"^### Chapter (\d+)\b")
_EXERCISE = re.compile(r"^\*\*(\d+\.\d+)\b")
_SOLUTION = re.compile(r"^:::\{admonition\} Solution\s*$")
PYTHON = ("python", "py", "ipython3")


@dataclass(frozen=True)
class Solution:
    """One solution block: its chapter, exercise, first line on the page (1-based), prose and code."""

    chapter: int
    exercise: str
    line: int
    prose: str  # the block's text outside fenced code, directive lines left out
    code: tuple[str, ...]  # its fenced python blocks, in order

    @property
    def label(self) -> str:
        return f"workshop solution {self.exercise} ({WORKSHOP.relative_to(ROOT)}, line {self.line})"


def solutions(page: Path = WORKSHOP) -> list[Solution]:
    """Every solution block of ``page``, in page order.

    Raises:
        ValueError: a solution outside a ``### Chapter N`` section or before any ``**N.M**`` exercise, an exercise
            numbered for another chapter than its section, or a block or fence that is never closed (naming the
            line).
    """
    lines = Path(page).read_text(encoding="utf-8").splitlines()
    found: list[Solution] = []
    chapter, exercise, i = None, None, 0
    while i < len(lines):
        line = lines[i]
        if m := _SECTION.match(line):
            chapter, exercise = int(m.group(1)), None
        elif (m := _EXERCISE.match(line)) and chapter is not None:
            exercise = m.group(1)
            if int(exercise.split(".")[0]) != chapter:
                raise ValueError(f"{page}: line {i + 1}: exercise {exercise} in the section of chapter {chapter}")
        elif _SOLUTION.match(line):
            if chapter is None or exercise is None:
                raise ValueError(f"{page}: line {i + 1}: a solution outside a chapter's numbered exercise")
            start, prose, code, block = i + 1, [], [], None
            i += 1
            while i < len(lines) and not (block is None and lines[i].strip() == ":::"):
                text = lines[i].strip()
                if block is None and text.startswith("```"):
                    if text[3:].strip() in PYTHON:
                        block = []
                    else:  # ```text, ```bash, a bare fence: neither prose nor code to run
                        i = _skip_fence(lines, i, page)
                elif block is not None and text == "```":
                    code.append("\n".join(block) + "\n")
                    block = None
                elif block is not None:
                    block.append(lines[i])
                elif not text.startswith(":"):
                    prose.append(lines[i])
                i += 1
            if i >= len(lines):
                raise ValueError(f"{page}: the solution block of line {start} is never closed")
            found.append(Solution(chapter, exercise, start, "\n".join(prose), tuple(code)))
        i += 1
    return found


def _skip_fence(lines: list[str], i: int, page: Path) -> int:
    """The index of the line that closes the fence opened at ``lines[i]``."""
    for j in range(i + 1, len(lines)):
        if lines[j].strip() == "```":
            return j
    raise ValueError(f"{page}: the fence of line {i + 1} is never closed")


def chapter_notebook(chapter: int, root: Path = ROOT) -> Path | None:
    """``book/NN_*.ipynb`` of ``chapter``, or ``None``."""
    matches = sorted((root / "book").glob(f"{chapter:02d}_*.ipynb"))
    return matches[0] if matches else None


def chapter_solutions(chapter: int, page: Path = WORKSHOP) -> list[Solution]:
    """The solutions of one chapter that hold code."""
    return [s for s in solutions(page) if s.chapter == chapter and s.code]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapter", nargs="?", type=int, help="print this chapter's solution code")
    args = parser.parse_args(argv)
    if args.chapter is None:
        for s in solutions():
            print(f"{s.exercise:>5}  line {s.line:>4}  {sum(c.count(chr(10)) for c in s.code):>3} lines of code")
        return 0
    found = chapter_solutions(args.chapter)
    if not found:
        print(f"chapter {args.chapter} has no solution with code on {WORKSHOP.relative_to(ROOT)}", file=sys.stderr)
        return 1
    for s in found:
        print(f"# {s.label}")
        print("\n".join(s.code))
    return 0


if __name__ == "__main__":
    sys.exit(main())
