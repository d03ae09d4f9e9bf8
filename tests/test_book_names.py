"""Every ``spectral_lib`` name the book writes in its prose and solutions exists (imports and attributes resolve).

Code cells run when the book is built, but names in markdown (prose, hidden solutions in fenced blocks, the
workshop page, the landing page) are never executed. This test finds them on every page of the toc:

* fully qualified names, ``spectral_lib.experiments.images.mean_std`` (in prose or code);
* ``from spectral_lib... import a, b as c`` and ``import spectral_lib... as m`` lines in fenced code;
* attribute chains on an alias that names a ``spectral_lib`` module or object, ``images.fd_over_seeds`` or
  ``hf.x0_error_gain``: the aliases are those the page's own code cells import (for the workshop page, those of
  the chapter whose section the name is in) and those of the page's fenced code.

A chain stops at a call or an index (``hf.make_scheduler("epsilon").config`` checks ``hf.make_scheduler``):
what a function returns is the executed code's business.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import execute_notebooks  # noqa: E402

_QUALIFIED = re.compile(r"\bspectral_lib(?:\.[A-Za-z_]\w*)+")
_FENCE = re.compile(r"```(?:python|py|ipython3)?\n(.*?)```", re.DOTALL)
_SECTION = re.compile(r"^### Chapter (\d+)\b", re.MULTILINE)


def resolve(dotted: str) -> str | None:
    """``None`` when ``dotted`` names an existing module or attribute, else what is missing."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for i, name in enumerate(parts[cut:], start=cut):
            if not hasattr(obj, name):
                try:
                    obj = importlib.import_module(".".join(parts[: i + 1]))
                except ImportError:
                    return f"{'.'.join(parts[:i])} has no attribute {name!r}"
            else:
                obj = getattr(obj, name)
        return None
    return f"no module {parts[0]!r}"


def _parse(source: str) -> ast.Module | None:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def aliases(sources: list[str]) -> dict[str, str]:
    """``{alias: dotted spectral_lib name}`` from the import statements of ``sources`` (code)."""
    found: dict[str, str] = {}
    for source in sources:
        tree = _parse(source)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "spectral_lib":
                        found[a.asname or a.name.split(".")[0]] = a.name if a.asname else "spectral_lib"
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "spectral_lib":
                for a in node.names:
                    if a.name != "*":
                        found[a.asname or a.name] = f"{node.module}.{a.name}"
    return found


def references(text: str, names: dict[str, str]) -> list[tuple[str, str]]:
    """``(as written, dotted name)`` for every ``spectral_lib`` name in ``text`` (see the module docstring)."""
    found = [(m.group(0), m.group(0)) for m in _QUALIFIED.finditer(text)]
    found += [(alias, dotted) for alias, dotted in aliases(_FENCE.findall(text)).items()]
    if names:
        pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
                             + r")((?:\.[A-Za-z_]\w*)+)")
        found += [(m.group(0), names[m.group(1)] + m.group(2)) for m in pattern.finditer(text)]
    return found


def _notebook(path: Path) -> tuple[str, list[str]]:
    nb = nbformat.read(path, as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return prose, [c.source for c in nb.cells if c.cell_type == "code"]


def _chapter_code(number: int) -> list[str]:
    matches = sorted((ROOT / "book").glob(f"{number:02d}_*.ipynb"))
    return _notebook(matches[0])[1] if matches else []


def page_problems(path: Path) -> list[str]:
    """``"written -> what is missing"`` for every name of ``path`` that does not resolve."""
    if path.suffix == ".ipynb":
        prose, code = _notebook(path)
        parts = [(prose, aliases(code + _FENCE.findall(prose)))]
    else:
        text = path.read_text()
        cuts = [(m.start(), int(m.group(1))) for m in _SECTION.finditer(text)]
        bounds = [(0, None)] + cuts
        parts = []
        for (start, number), (end, _) in zip(bounds, bounds[1:] + [(len(text), None)]):
            chunk = text[start:end]
            code = (_chapter_code(number) if number else []) + _FENCE.findall(chunk)
            parts.append((chunk, aliases(code)))
    problems = []
    for text, names in parts:
        for written, dotted in references(text, names):
            missing = resolve(dotted)
            if missing:
                problems.append(f"{written} ({dotted}): {missing}")
    return sorted(set(problems))


PAGES = [ROOT / (e + s) for e in execute_notebooks.toc_entries() for s in (".md", ".ipynb")
         if (ROOT / (e + s)).exists()]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_library_name_on_the_page_exists(path):
    problems = page_problems(path)
    assert not problems, f"{path.relative_to(ROOT)} names what spectral_lib does not have:\n" + "\n".join(problems)


def test_the_checker_finds_missing_names(tmp_path):
    page = tmp_path / "11_workshop.md"
    page.write_text(
        "Use `spectral_lib.experiments.images.mean_std` and `spectral_lib.spectral.no_such_loss`.\n\n"
        "### Chapter 7: images\n\nCollect `images.fd_over_seeds(r.out_dir)` and `images.mean_std(v)`.\n\n"
        "```python\nfrom spectral_lib.spectral import fourier_loss, nothing_here\n"
        "import spectral_lib.spectral.wavelet as wm\nprint(wm.DENSE_MAX_SIZE, wm.NO_SUCH_LIMIT)\n```\n"
    )
    problems = page_problems(page)
    assert any("no_such_loss" in p for p in problems)
    assert any(p.startswith("images.fd_over_seeds") for p in problems), problems
    assert any("nothing_here" in p for p in problems) and any("NO_SUCH_LIMIT" in p for p in problems)
    assert not any("mean_std" in p or "fourier_loss" in p or "DENSE_MAX_SIZE" in p for p in problems), problems
    assert len(problems) == 4, problems


MD_PAGES = [p for p in PAGES if p.suffix == ".md"]
CODE_COLUMNS = 79
"""A code block of the book's theme shows about 79 characters at a 1280-pixel window before it cuts a line."""


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """``(language, lines)`` of every fenced block of ``text`` (directives such as ```` ```{figure} ```` included)."""
    blocks, current = [], None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current = (line.strip()[3:].strip(), [])
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current[1].append(line)
    return blocks


@pytest.mark.parametrize("path", MD_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_on_the_markdown_pages_is_not_cut_at_the_column_edge(path):
    long = [line for language, lines in code_blocks(path.read_text()) if language in ("", "python", "bash")
            for line in lines if len(line) > CODE_COLUMNS]
    assert not long, (f"{path.relative_to(ROOT)}: code lines over {CODE_COLUMNS} characters (cut on the page):\n"
                      + "\n".join(long))


def test_the_landing_page_shows_the_readme_figure():
    """The build copies book/ only, so the hero figure lives in book/images; it must stay the README's figure."""
    text = (ROOT / "book" / "intro.md").read_text()
    assert "images/checkerboard.png" in text
    assert (ROOT / "book" / "images" / "checkerboard.png").read_bytes() == (ROOT / "docs" / "checkerboard.png").read_bytes()
