"""Results that outlive a session: the ``results/`` folder of the repository.

Layout (the contract every experiment follows)::

    results/
      cpu/<chapter or experiment>/...     shipped cpu-profile results the chapters read (samples, metrics, small
                                          arrays; float16/uint8; no optimiser state), with a provenance.json
      gpu/<experiment>/<row>.json         one small JSON of numbers per table row run on a GPU (gpu/full profiles)
      full/<experiment>/<row>.json

:func:`results_root` finds the folder: ``$SPECTRAL_RESULTS_DIR`` if set, else ``results/`` beside the
``spectral_lib`` package of a source checkout. The book's chapters read it; ``RETRAIN=1`` rewrites it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["RESULTS_ENV", "results_root"]

RESULTS_ENV = "SPECTRAL_RESULTS_DIR"
"""Environment variable that overrides where :func:`results_root` points."""


def results_root() -> Path:
    """``$SPECTRAL_RESULTS_DIR``, else the repository's ``results/`` folder (it may not exist yet)."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "results"
