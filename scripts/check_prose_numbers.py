#!/usr/bin/env python
"""List the numbers typed by hand in the chapters' prose: every one must come from the page's outputs (glue).

    python scripts/check_prose_numbers.py                      # every notebook of the toc, every offending line
    python scripts/check_prose_numbers.py book/05_checkerboard.ipynb

A decimal number (``0.39``, ``1e-4``) or a percentage (``90 %``) in a markdown cell is an offence unless it is

* quoted from the page's outputs with MyST-NB glue: ``{glue:text}`name:.2f``` (see :mod:`spectral_lib.book`);
* inside math (``$...$``, ``$$...$$``), a code span or a fenced block (formulas and code are not findings);
* part of a name (``bior1.3``, ``LJSpeech-1.1``), a link target, a role's target (``{cite:p}`...```) or a
  directive's option line;
* on the chapter's time line (``**Time:** ...``: measured times, stated once per chapter);
* in :data:`ALLOWED`, the reviewed list of structural numbers (a constant of the method or a definition, not a
  result), each with its reason.

The paper's own numbers are findings too: display them from the library's constants (e.g. ``images.PAPER_TABLE1``)
and glue them, so that the prose and the table beside it cannot disagree.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

#: ``{chapter file name: [(number as written, words on the same line, reason), ...]}``: numbers in prose that are
#: definitions or chosen inputs, not results. Add an entry only after review; the reason says why no output of the
#: page could ever contradict it. The words pin the entry to its sentence, so the same number elsewhere still counts.
ALLOWED: dict[str, list[tuple[str, str, str]]] = {
    "01_why_blur.ipynb": [
        ("0.2", "within 0.2 of", "the crisp-pixel tolerance of checkerboard_metrics: a definition"),
        ("1.5", "above 1.5 times the", "the harmonic cut-off of the table: a definition"),
    ],
    "02_fourier_lens.ipynb": [
        ("0.5", "Nyquist frequency 0.5", "the Nyquist frequency in cycles per pixel: a definition"),
        ("90%", "keeps 90 % and 99 %", "the exercise's question: chosen shares"),
        ("99%", "keeps 90 % and 99 %", "the exercise's question: chosen shares"),
    ],
}

_FENCE = re.compile(r"^(```|~~~|:::)")
_MATH_BLOCK = re.compile(r"\$\$.*?\$\$", re.DOTALL)
_MATH_INLINE = re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$")
_ROLE = re.compile(r"\{[\w:.-]+\}`[^`]*`")  # {glue:text}`x:.2f`, {cite:p}`key`, {doc}`page`
_CODE = re.compile(r"`[^`\n]*`")
_LINK_TARGET = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+")
_NUMBER = re.compile(
    r"(?<![\w.])(?<![A-Za-z]-)"  # not part of a name such as bior1.3 or LJSpeech-1.1
    r"(?:\d+\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+(?:\.\d+)?\s?%)"
)


@dataclass(frozen=True)
class Offence:
    """One line of prose with numbers typed by hand."""

    path: Path
    cell: int  # index of the cell in the notebook (0-based), or -1 for a markdown page
    line: int  # 1-based line within the cell
    text: str
    numbers: tuple[str, ...]

    def __str__(self) -> str:
        where = f"cell {self.cell}, line {self.line}" if self.cell >= 0 else f"line {self.line}"
        return f"{self.path.name}: {where}: {', '.join(self.numbers)}: {self.text.strip()[:160]}"


def _strip(text: str) -> str:
    """The prose of a markdown cell with math, code, roles and link targets blanked (line structure kept)."""
    text = _MATH_BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    lines, out, fenced = text.split("\n"), [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            fenced = not fenced
            out.append("")
            continue
        if fenced or stripped.startswith(":") and not stripped.startswith(":::") or stripped.startswith("**Time:**"):
            out.append("")  # inside code, a directive option (":class: dropdown") or the time line
            continue
        if stripped.startswith(":::"):
            out.append("")
            continue
        for pattern in (_ROLE, _CODE, _MATH_INLINE, _LINK_TARGET):
            line = pattern.sub(" ", line)
        out.append(line)
    return "\n".join(out)


def prose_numbers(text: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line number, original line, numbers)`` for every line of markdown ``text`` with numbers typed by hand."""
    original = text.split("\n")
    found = []
    for i, line in enumerate(_strip(text).split("\n")):
        numbers = tuple(m.group(0).replace(" ", "") for m in _NUMBER.finditer(line))
        if numbers:
            found.append((i + 1, original[i] if i < len(original) else line, numbers))
    return found


def _allowed(number: str, line: str, entries: list[tuple[str, str, str]]) -> bool:
    return any(number == n and words in line for n, words, _ in entries)


def offences(path: Path, allowed: list[tuple[str, str, str]] | None = None) -> list[Offence]:
    """Every line of ``path``'s markdown (notebook cells or a ``.md`` page) with a number that is not allowed.

    ``allowed`` defaults to the file's entries of :data:`ALLOWED`.
    """
    path = Path(path)
    allowed = ALLOWED.get(path.name, []) if allowed is None else allowed
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        cells = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
    else:
        cells = [(-1, path.read_text())]
    result = []
    for index, source in cells:
        for line, text, numbers in prose_numbers(source):
            left = tuple(n for n in numbers if not _allowed(n, text, allowed))
            if left:
                result.append(Offence(path, index, line, text, left))
    return result


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT / "scripts"))
    from execute_notebooks import toc_notebooks

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks or pages (default: every notebook of the toc)")
    args = parser.parse_args(argv)
    paths = args.paths or [ROOT / p for p in toc_notebooks()]
    total = 0
    for path in paths:
        found = offences(path)
        total += len(found)
        for offence in found:
            print(offence)
    print(f"{total} line(s) with numbers typed by hand in {len(paths)} file(s)", file=sys.stderr)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
