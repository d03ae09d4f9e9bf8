#!/usr/bin/env python
"""Create a notebook with the book's standard opening cells.

    python scripts/new_notebook.py book/05_checkerboard.ipynb "The checkerboard experiment"

The opening is: a title cell, a code cell tagged ``parameters`` (papermill injects the profile after it), and the
Colab set-up cell tagged ``colab-setup`` (kept in step with ``_config.yml`` by scripts/sync_colab_cells.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_colab_cells import colab_source  # noqa: E402


def opening_cells(title: str) -> list:
    return [
        new_markdown_cell(f"# {title}"),
        new_code_cell(
            '# Parameters (papermill overrides these): "smoke" (CI, seconds), "cpu" (a laptop, minutes), "gpu" (Colab)\n'
            'profile = "cpu"',
            metadata={"tags": ["parameters"]},
        ),
        new_code_cell(colab_source(), metadata={"tags": ["colab-setup"]}),
    ]


def main() -> int:
    path, title = Path(sys.argv[1]), sys.argv[2]
    if path.exists():
        raise SystemExit(f"{path} exists")
    nb = new_notebook(cells=opening_cells(title))
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    print(f"created {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
