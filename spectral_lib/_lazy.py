"""Package attributes imported on first use (PEP 562): a package names what it re-exports and from which of its
submodules, so that importing one submodule does not pay for the others (SciPy, PIL, librosa, the trainer)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each name to the submodule (relative to
    ``package``) that defines it; a name is imported on first access and kept in ``namespace`` (the package's
    ``globals()``). Any other name raises ``AttributeError`` as a module would."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
