#!/usr/bin/env python
"""Write (or check) the Colab set-up cell of every notebook from ``_config.yml``.

The repository is named once, in ``_config.yml`` (``repository.url`` and ``repository.branch``); launch buttons
read it there, and this script copies it into the code cell tagged ``colab-setup`` of each notebook, so that a
notebook opened on Colab installs the library from the same repository and branch the book was built from.

    python scripts/sync_colab_cells.py          # rewrite the cells
    python scripts/sync_colab_cells.py --check  # exit 1 if any cell disagrees (used by the tests)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
TAG = "colab-setup"


def colab_source(root: Path = ROOT) -> str:
    """The source of the Colab set-up cell for this repository."""
    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    url = repo["url"].rstrip("/")
    branch = repo.get("branch", "main")
    return (
        "# Colab set-up: on Google Colab this installs the book's library; elsewhere it does nothing.\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    package = "spectral-diffusion-book @ git+{url}@{branch}"\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", package], check=True)'
    )


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "book").rglob("*.ipynb"))


def sync(path: Path, source: str, *, check: bool) -> bool:
    """Return True when the notebook's cell already matched (or had no cell tagged colab-setup: False)."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        print(f"{path}: expected exactly one code cell tagged {TAG!r}, found {len(cells)}", file=sys.stderr)
        return False
    if cells[0].source == source:
        return True
    if not check:
        cells[0].source = source
        nbformat.write(nb, path)
        print(f"updated {path.relative_to(ROOT)}")
        return True
    print(f"{path}: Colab set-up cell differs from _config.yml (run scripts/sync_colab_cells.py)", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on any difference")
    args = parser.parse_args(argv)
    source = colab_source()
    results = [sync(p, source, check=args.check) for p in notebooks()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
