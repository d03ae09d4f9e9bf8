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


EXTRAS = ("audio-metrics", "diffusers")
"""Extras of pyproject.toml the chapters use on Colab (PESQ in chapter 8, diffusers in chapter 9)."""
CLONE_DIR = "/content/spectral-diffusion-book"


def colab_source(root: Path = ROOT) -> str:
    """The source of the Colab set-up cell for this repository.

    On Colab it clones the repository (so that the shipped ``results/`` come with it), installs the library with
    the chapters' extras, points ``SPECTRAL_RESULTS_DIR`` at the clone's results, and fails with one message that
    names the repository it tried and where to change it. Elsewhere it does nothing.
    """
    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    return _TEMPLATE.format(url=repo["url"].rstrip("/"), branch=repo.get("branch", "main"), where=CLONE_DIR,
                            extras=",".join(EXTRAS))


_TEMPLATE = """\
# Colab set-up: on Google Colab this clones the book (library and shipped results) and installs it;
# elsewhere it does nothing. The repository comes from _config.yml (scripts/sync_colab_cells.py).
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    repo = "{url}"
    branch = "{branch}"
    where = "{where}"  # the clone: library, book and shipped results
    clone = ["git", "clone", "--quiet", "--depth", "1", "--branch", branch, repo, where]
    install = [sys.executable, "-m", "pip", "install", "--quiet", "-e", where + "[{extras}]"]
    for step in ([] if os.path.isdir(where) else [clone]) + [install]:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"Could not install the book's library from {{repo}} (branch {{branch}}):\\n"
                f"{{done.stderr.strip()[-600:]}}\\n"
                "The repository is named in _config.yml (repository.url, repository.branch): change it there and "
                "run scripts/sync_colab_cells.py, or edit `repo` and `branch` in this cell."
            ) from None
    sys.path.insert(0, where)
    os.environ["SPECTRAL_RESULTS_DIR"] = os.path.join(where, "results")"""


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
