"""Shared test settings: one torch thread per xdist worker (CI has 2 cores and runs 2 workers)."""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator, so that every test draws the same numbers on every run."""
    g = torch.Generator()
    g.manual_seed(1234)
    return g
