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


@pytest.fixture
def notes(monkeypatch) -> list[str]:
    """Titles of the notes (``spectral_lib.book.note``) shown while the test runs, e.g. by the shipped-results
    switch; nothing is displayed."""
    from spectral_lib import book

    titles: list[str] = []
    monkeypatch.setattr(book, "note", lambda text, kind="note", title="Note": titles.append(title))
    return titles
