#!/usr/bin/env python
"""Create a notebook with the book's standard opening and closing cells (book/CONVENTIONS.md).

    python scripts/new_notebook.py book/05_checkerboard.ipynb "The checkerboard experiment" [--trains]

The opening is: the title; "What you will learn" with the time line; a code cell tagged ``parameters``
(papermill injects the profile after it; ``--trains`` adds ``retrain``); the Colab set-up cell tagged
``colab-setup`` (kept in step with ``_config.yml`` by scripts/sync_colab_cells.py); the set-up cell tagged
``hide-input`` that imports and calls ``book.page_header(profile)``. The closing is "Key takeaways" and
"Self-check".
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_colab_cells import colab_source  # noqa: E402


def opening_cells(title: str, *, trains: bool = False) -> list:
    parameters = (
        '# Parameters (papermill overrides these): "smoke" (CI, seconds), "cpu" (a laptop, minutes), "gpu" (Colab)\n'
        'profile = "cpu"'
    )
    if trains:
        # no "=" in a comment: papermill reads a line with two as no parameter ("Unable to parse line")
        parameters += "\nretrain = False  # True at cpu: train afresh and overwrite the shipped results"
    return [
        new_markdown_cell(f"# {title}"),
        new_markdown_cell(
            "## What you will learn\n\n- ...\n\n"
            "**Time:** smoke 10 s · cpu 1 min · gpu 1 min. **GPU:** not needed."
        ),
        new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        new_code_cell(colab_source(), metadata={"tags": ["colab-setup"]}),
        new_code_cell("from spectral_lib import book\n\nbook.page_header(profile)", metadata={"tags": ["hide-input"]}),
    ]


def closing_cells() -> list:
    return [
        new_markdown_cell("## Key takeaways\n\n- ..."),
        new_markdown_cell(
            "## Self-check\n\n1. ...?\n\n:::{admonition} Answer\n:class: dropdown\n...\n:::"
        ),
    ]


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--trains"]
    if len(args) != 2:
        raise SystemExit(__doc__)
    path, title = Path(args[0]), args[1]
    if path.exists():
        raise SystemExit(f"{path} exists")
    nb = new_notebook(cells=opening_cells(title, trains="--trains" in sys.argv) + closing_cells())
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    print(f"created {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
