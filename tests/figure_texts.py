"""Test helper shared by the figure tests: every title and axis label a figure shows."""

from __future__ import annotations


def figure_texts(fig) -> list[str]:
    """The suptitle, then each axes' title, x label and y label, empty ones left out."""
    found = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        found += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return [t for t in found if t]
