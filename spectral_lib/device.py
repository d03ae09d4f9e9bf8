"""Device choice, seeding, and torch's CPU thread budget.

Threads
-------
By default every torch process uses every core. Two trainings side by side (two notebooks, ``make notebooks
JOBS=2``, a test beside a notebook) then each run twice as many threads as the machine has cores, and on a small
machine each slows down far more than twofold (measured: 15-30x on 2 cores). :func:`adapt_threads` gives each
process its share instead, cooperatively: every process that calls it registers in a small folder of live
processes (``$SPECTRAL_THREADS_DIR``, default ``<tmp>/spectral_lib-threads-<uid>``) and takes
``max(1, cores // live)`` threads, re-checked every few seconds, so a process that finishes (or stops calling)
hands its share back. ::

    from spectral_lib.device import adapt_threads
    for step in range(steps):
        adapt_threads()          # cheap: re-checks at most every 5 s
        ...                      # one training step

* ``SPECTRAL_THREADS=n`` forces ``n`` threads (no sharing).
* ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, when set, cap the share (``make`` and the tests set them).
* ``cores`` counts the CPUs this process may use (affinity, cgroup quota), not the machine's.

Measured with ``scripts/measure_threads.py`` (two cpu-profile checkerboard trainings side by side, 60 s each, on a
2-core machine shared with other jobs, load average 6-9): 0.07 steps/s in all and about 6 CPU seconds per step with
torch's default threads, 0.30 steps/s and about 2 CPU seconds per step with this budget. Only processes that call
:func:`adapt_threads` are counted: other load on the machine is not.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "default_device",
    "seed_everything",
    "make_generator",
    "on_colab",
    "THREADS_ENV",
    "THREADS_DIR_ENV",
    "available_cores",
    "ThreadBudget",
    "adapt_threads",
    "release_threads",
]


def default_device(prefer: str | None = None) -> torch.device:
    """The device to run on: ``prefer`` if given (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), else CUDA when
    available, else Apple's MPS when available, else the CPU. Asking for CUDA without one is an error."""
    if prefer is not None:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for but CUDA is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Same seed + same profile -> same numbers on the same machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def on_colab() -> bool:
    """True when running inside Google Colab."""
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in __import__("sys").modules


# ------------------------------------------------------------------------------------------------ threads

THREADS_ENV = "SPECTRAL_THREADS"
"""Force this many torch threads (an integer >= 1); no sharing."""
THREADS_DIR_ENV = "SPECTRAL_THREADS_DIR"
"""Folder of the live-process registry (default ``<tmp>/spectral_lib-threads-<uid>``)."""


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup v2 CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class ThreadBudget:
    """This process's share of the cores among the processes that use the library right now.

    Args:
        registry: folder of live processes (default ``$SPECTRAL_THREADS_DIR`` or ``<tmp>/spectral_lib-threads-<uid>``).
        cores: CPUs to share (default :func:`available_cores`).
        interval: seconds between two re-checks in :meth:`update` (default 5: cheap enough for every step).
        idle_after: a process whose last check is older than this counts as idle, not live (default 30 s, our
            choice: several re-check intervals, far below a notebook's idle time).
    """

    def __init__(self, registry: str | os.PathLike[str] | None = None, *, cores: int | None = None,
                 interval: float = 5.0, idle_after: float = 30.0) -> None:
        if registry is None:
            uid = os.getuid() if hasattr(os, "getuid") else "user"
            registry = os.environ.get(THREADS_DIR_ENV) or Path(tempfile.gettempdir()) / f"spectral_lib-threads-{uid}"
        self.registry = Path(registry)
        self.cores = int(cores) if cores is not None else available_cores()
        self.interval, self.idle_after = float(interval), float(idle_after)
        self.pid = os.getpid()
        self.threads: int | None = None
        self._checked = -math.inf

    @property
    def _entry(self) -> Path:
        return self.registry / str(self.pid)

    def live(self) -> int:
        """Processes that checked in within ``idle_after`` seconds and still run (this one included once it has
        checked in). Entries of dead processes are removed."""
        now, count = time.time(), 0
        try:
            entries = list(self.registry.iterdir())
        except OSError:
            return 1
        for entry in entries:
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid != self.pid and not _alive(pid):
                entry.unlink(missing_ok=True)
                continue
            try:
                fresh = now - entry.stat().st_mtime <= self.idle_after
            except OSError:
                continue
            count += fresh
        return max(1, count)

    def share(self) -> int:
        """Threads for this process now: ``SPECTRAL_THREADS`` if set, else ``max(1, cores // live)`` capped by
        ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` when those are set."""
        forced = _env_int(THREADS_ENV)
        if forced is not None:
            return forced
        threads = max(1, self.cores // self.live())
        caps = [c for c in (_env_int("OMP_NUM_THREADS"), _env_int("MKL_NUM_THREADS")) if c is not None]
        return min([threads, *caps])

    def update(self, *, force: bool = False) -> int:
        """Check in (heartbeat), recompute the share at most every ``interval`` seconds, and apply it with
        ``torch.set_num_threads`` when it changed. Returns the thread count in effect."""
        now = time.monotonic()
        if not force and self.threads is not None and now - self._checked < self.interval:
            return self.threads
        self._checked = now
        try:
            self.registry.mkdir(parents=True, exist_ok=True)
            self._entry.touch()  # creates the entry, or refreshes its time stamp
        except OSError:
            pass  # no writable temp folder: share as if alone
        threads = self.share()
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.threads = threads
        return threads

    def release(self) -> None:
        """Leave the registry (others take the cores back at their next check)."""
        self._entry.unlink(missing_ok=True)
        self.threads, self._checked = None, -math.inf


_BUDGET: ThreadBudget | None = None


def _budget() -> ThreadBudget:
    global _BUDGET
    if _BUDGET is None or _BUDGET.pid != os.getpid():  # a forked child gets its own entry
        _BUDGET = ThreadBudget()
        import atexit

        atexit.register(_BUDGET.release)
    return _BUDGET


def adapt_threads(*, force: bool = False) -> int:
    """Set torch's thread count to this process's share of the cores (see the module docstring); cheap enough
    to call once per training step (it re-checks at most every 5 s). Returns the thread count in effect."""
    return _budget().update(force=force)


def release_threads() -> None:
    """Hand this process's share back (call when a training loop ends; :func:`adapt_threads` checks in again)."""
    if _BUDGET is not None and _BUDGET.pid == os.getpid():
        _BUDGET.release()
