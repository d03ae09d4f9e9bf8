"""Page glue for the book's chapters: the page header, glued numbers, checked claims, labelled audio players.

A chapter's hidden set-up cell makes one call, and the prose quotes what the page computed::

    from spectral_lib import book
    book.page_header(profile)                     # profile, date, hardware, commit; a banner at smoke

    share = float(scores["clean_share"])
    book.glue("haar_clean", share)                # prose: {glue:text}`haar_clean:.0%` of the boards are clean
    book.claim(share > base_share, "Haar gives more clean boards than the baseline", profiles=("cpu", "gpu"))
    book.audio_players({"original": clip, "low-pass 1 kHz": low}, rate=22050)

* :func:`page_header` displays one line (profile, UTC date, CPU model and cores or GPU name, torch's threads,
  the commit and whether the tree had local changes) and, at ``smoke``, an admonition saying the page's numbers
  mean nothing. It remembers the profile for :func:`claim`.
* :func:`glue` wraps MyST-NB's ``glue`` (``{glue:text}`name:fmt``` in the prose). It turns NumPy and torch scalars
  into Python numbers first (their ``repr`` is not a number MyST-NB can format), and where ``myst_nb`` is missing
  (Colab, a bare kernel) it does nothing, or displays the value when ``display=True``.
* :func:`claim` states a finding as a checked sentence: silent while the numbers support it, a visible warning on
  the page when they do not. ``profiles=("cpu", "gpu")`` marks a finding that is expected only there; at another
  profile a failing claim gives a quiet note instead of a warning. Claims on the shipped ``cpu`` results
  (:mod:`spectral_lib.experiments.shipped`) take no ``profiles``: they must hold at every profile.
* :func:`audio_player` / :func:`audio_players`: each player in an HTML block with its own caption, so labels never
  pile up above a group of players when the book merges output streams.

Every output carries ``metadata["spectral_book"]`` (``{"kind": "header" | "claim" | ..., ...}``), which the tests
read back from the executed notebooks (e.g. no failed claim at any profile it is meant for).

Nothing heavy is imported at module import (torch only inside :func:`build_info`); IPython is needed only for
displaying.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PROFILES",
    "build_info",
    "page_header",
    "current_profile",
    "glue",
    "claim",
    "note",
    "table",
    "audio_player",
    "audio_players",
]

PROFILES = ("smoke", "cpu", "gpu", "full")
"""Profiles a page can be built at (see :mod:`spectral_lib.experiments.profiles`)."""

METADATA_KEY = "spectral_book"
"""Key of the output metadata that marks the outputs of this module (read back by the tests)."""

_STATE: dict[str, Any] = {"profile": None}

_SMOKE_TITLE = "Smoke build: the numbers on this page mean nothing"
_SMOKE_BANNER = (
    "This page was executed at the <code>smoke</code> profile, a seconds-long plumbing check with tiny models and "
    "data: "
    "its figures and tables show that the code runs, not what the method does. Findings quoted from the shipped "
    "<code>cpu</code> results still hold; run the page with <code>profile = \"cpu\"</code> to see real results."
)
_STYLES = {  # inline fallback so that banners stand out in Jupyter and Colab too; the book's theme adds its own
    "warning": "border-left: 4px solid #e0a800; background: #fff8e1; padding: 0.5em 0.9em; margin: 0.5em 0;",
    "danger": "border-left: 4px solid #c62828; background: #fdecea; padding: 0.5em 0.9em; margin: 0.5em 0;",
    "note": "border-left: 4px solid #1e88e5; background: #eef5fc; padding: 0.5em 0.9em; margin: 0.5em 0;",
}


# ------------------------------------------------------------------------------------------------ build facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def _git(*args: str, cwd: Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def source_commit() -> tuple[str, bool | None]:
    """The commit the library was loaded from and whether tracked files had local changes.

    A git checkout answers with ``git rev-parse``; a ``pip install git+...`` (Colab) with the commit pip recorded in
    the package's ``direct_url.json``; otherwise ``("unknown", None)``.
    """
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        commit = _git("rev-parse", "--short=10", "HEAD", cwd=root)
        if commit:
            status = _git("status", "--porcelain", "--untracked-files=no", cwd=root)
            return commit, bool(status)
    try:
        from importlib.metadata import distribution

        text = distribution("spectral-diffusion-book").read_text("direct_url.json")
        commit = json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
        if commit:
            return commit[:10], None
    except Exception:  # noqa: BLE001 - no metadata is a normal case, not an error
        pass
    return "unknown", None


def build_info(profile: str | None = None) -> dict[str, Any]:
    """Facts about this build: profile, UTC date, hardware, torch threads, library commit.

    Returns:
        ``{"profile", "date", "hardware", "device", "cores", "threads", "torch", "python", "commit", "dirty"}``;
        ``hardware`` names the GPU when CUDA is available, else the CPU model and its cores.
    """
    import torch

    cores = _cores()
    if torch.cuda.is_available():
        device, hardware = "cuda", f"GPU {torch.cuda.get_device_name(0)}"
    else:
        device, hardware = "cpu", f"CPU {_cpu_model()}, {cores} core{'s' if cores != 1 else ''}"
    commit, dirty = source_commit()
    return {
        "profile": profile,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": hardware,
        "device": device,
        "cores": cores,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": commit,
        "dirty": dirty,
    }


# ------------------------------------------------------------------------------------------------ display


def _display_html(body: str, *, text: str, meta: Mapping[str, Any]) -> None:
    from IPython.display import display

    display({"text/html": body, "text/plain": text}, raw=True, metadata={METADATA_KEY: dict(meta)})


def _admonition(kind: str, title: str, body_html: str) -> str:
    return (
        f'<div class="admonition {kind}" style="{_STYLES[kind]}">'
        f'<p class="admonition-title"><strong>{html.escape(title)}</strong></p><p>{body_html}</p></div>'
    )


def _check_profile(profile: object) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return str(profile)


def page_header(profile: str, *, show: bool = True) -> None:
    """Show how this page was built, and at ``smoke`` a banner saying its numbers mean nothing.

    Call it once, in the chapter's set-up cell (tagged ``hide-input``), after the parameters and Colab cells.
    It also records ``profile`` for :func:`claim`. Returns nothing (so that it can end a cell); the facts it
    shows are :func:`build_info`'s.
    """
    profile = _check_profile(profile)
    _STATE["profile"] = profile
    info = build_info(profile)
    if not show:
        return
    changes = " + local changes" if info["dirty"] else ""
    line = (
        f"Built at profile <code>{profile}</code> · {info['date']} · {html.escape(info['hardware'])} "
        f"(torch {html.escape(info['torch'])}, {info['threads']} thread{'s' if info['threads'] != 1 else ''}) · "
        f"commit <code>{html.escape(info['commit'])}</code>{changes}"
    )
    parts = [_admonition("warning", _SMOKE_TITLE, _SMOKE_BANNER)] if profile == "smoke" else []
    parts.append(f'<p class="page-build-info" style="font-size: 0.85em; color: #555;">{line}</p>')
    plain = f"Built at profile {profile}, {info['date']}, {info['hardware']}, commit {info['commit']}{changes}"
    if profile == "smoke":
        plain = "SMOKE BUILD: the numbers on this page mean nothing.\n" + plain
    _display_html("".join(parts), text=plain, meta={"kind": "header", **info})


def current_profile() -> str | None:
    """The profile given to :func:`page_header` in this kernel (``None`` before the call)."""
    return _STATE["profile"]


# ------------------------------------------------------------------------------------------------ glue


def _plain(value: Any) -> Any:
    """NumPy and torch scalars (and one-element arrays or tensors) as Python numbers; other values unchanged."""
    if value is None or type(value) in (bool, int, float, str):  # exact types: np.float64 subclasses float
        return value
    numel, size = getattr(value, "numel", None), getattr(value, "size", None)
    count = numel() if callable(numel) else size if isinstance(size, int) else None
    if count == 1 and callable(getattr(value, "item", None)):
        return value.item()
    return value


def glue(name: str, value: Any, *, display: bool = False) -> None:
    """Store ``value`` under ``name`` for ``{glue:text}`name:fmt``` in the page's prose (MyST-NB glue).

    Args:
        name: unique on the page; letters, digits and ``_`` (the role splits on ``:``).
        value: a number (Python, NumPy or one-element torch tensor: stored as a Python number, so that format specs
            such as ``.2f`` or ``.0%`` work), a string, or anything IPython can display (figures, tables).
        display: also show the value in the notebook (MyST-NB's ``display``).

    Without ``myst_nb`` (Colab, a bare kernel) nothing is stored; with ``display=True`` the value is displayed.
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise ValueError(f"glue name must be letters, digits and '_', got {name!r}")
    value = _plain(value)
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        if display:
            from IPython.display import display as _show

            _show(value)
        return
    _myst_glue(name, value, display=display)


# ------------------------------------------------------------------------------------------------ claims


def claim(condition: Any, text: str, *, profiles: Iterable[str] | None = None, detail: str = "") -> None:
    """A finding stated in the prose, checked against the numbers the page was built with.

    Put the call in a cell tagged ``remove-input`` right after the paragraph that states the finding. While
    ``condition`` holds nothing is shown. When it fails a warning appears on the page, quoting ``text``.

    Args:
        condition: truthy when the numbers support the sentence (NumPy/torch booleans are fine).
        text: the finding, as the prose states it.
        profiles: the profiles at which the finding is expected (``None``: every profile, e.g. for claims on the
            shipped ``cpu`` results). At another profile a failing claim gives a quiet note instead of a warning.
        detail: the numbers behind it, shown with the warning (e.g. ``f"Haar {a:.2f}, baseline {b:.2f}"``).

    Returns nothing (a cell may end with it); the outcome is in the output's metadata (``status``: ``"failed"``
    or ``"not-expected"``), which the notebook tests read.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("claim needs the sentence it checks as text")
    holds = bool(_plain(condition))
    profile = _STATE["profile"]
    if profiles is not None:
        profiles = tuple(_check_profile(p) for p in profiles)
    expected_here = profiles is None or profile is None or profile in profiles
    status = "holds" if holds else ("failed" if expected_here else "not-expected")
    meta = {"kind": "claim", "status": status, "text": text, "profile": profile,
            "profiles": list(profiles) if profiles is not None else None}
    if holds:
        return
    extra = f" ({html.escape(detail)})" if detail else ""
    if expected_here:
        body = (f"The text says: <em>{html.escape(text)}</em>. The numbers this page was built with "
                f"(profile <code>{profile}</code>) do not support it{extra}. Read the figures and tables, not the "
                "sentence.")
        _display_html(_admonition("danger", "This finding does not hold in this build", body),
                      text=f"CLAIM NOT SUPPORTED: {text}{(' (' + detail + ')') if detail else ''}", meta=meta)
    else:
        wanted = ", ".join(profiles or ())
        body = (f"<em>{html.escape(text)}</em> is a finding of the {wanted} profile; at <code>{profile}</code> "
                f"the numbers above do not show it{extra}.")
        _display_html(_admonition("note", "Not expected at this profile", body), text=f"(at {profile}) {text}",
                      meta=meta)


def note(text_html: str, *, kind: str = "note", title: str = "Note") -> None:
    """Show an admonition (``"note"``, ``"warning"`` or ``"danger"``) with an HTML body."""
    if kind not in _STYLES:
        raise ValueError(f"kind must be one of {', '.join(_STYLES)}, got {kind!r}")
    _display_html(_admonition(kind, title, text_html), text=f"{title}: {text_html}", meta={"kind": kind})


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, formats: Sequence[str] | None = None) -> None:
    """Display a table (Markdown, so the book renders it as an HTML table).

    Args:
        header: column titles.
        rows: one sequence of cells per row, as many as ``header``.
        formats: a format spec per column (``".2f"``, ``".0%"``, ``""`` for ``str``), applied to numeric cells.
    """
    from IPython.display import Markdown, display

    header = [str(h) for h in header]
    formats = list(formats) if formats is not None else [""] * len(header)
    if len(formats) != len(header):
        raise ValueError(f"formats has {len(formats)} entries for {len(header)} columns")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        cells = list(row)
        if len(cells) != len(header):
            raise ValueError(f"row {i} has {len(cells)} cells for {len(header)} columns: {cells!r}")
        texts = []
        for cell, fmt in zip(cells, formats):
            value = _plain(cell)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            texts.append(format(value, fmt) if fmt and numeric else str(value))
        lines.append("| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |")
    display(Markdown("\n".join(lines)))


# ------------------------------------------------------------------------------------------------ audio


def _waveform(clip: Any, label: str) -> Any:
    """``clip`` as one float64 NumPy waveform ``(T,)``, checked (``label`` names it in errors)."""
    import numpy as np

    data = clip.detach().cpu().numpy() if hasattr(clip, "detach") else np.asarray(clip)
    data = np.asarray(data, dtype=np.float64).squeeze()
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"audio clip {label!r}: an audio clip must be one waveform (T,) (or (1, T), (1, 1, T)), "
                         f"got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"audio clip {label!r}: the audio clip holds NaN or infinite values")
    return data


def _audio_html(data: Any, rate: int, gain: float | None) -> str:
    """IPython's player: each clip scaled to full scale (``gain=None``), or every sample times ``gain``."""
    from IPython.display import Audio

    if gain is None:
        return Audio(data, rate=int(rate))._repr_html_()
    return Audio(data * gain, rate=int(rate), normalize=False)._repr_html_()


def audio_player(clip: Any, rate: int, label: str, *, normalize: bool = True) -> None:
    """Display one audio player with its own caption above it.

    Args:
        clip: waveform ``(T,)``, ``(1, T)`` or ``(1, 1, T)`` (NumPy or torch), in any range.
        rate: sample rate in Hz.
        label: what the player plays.
        normalize: scale the clip to full scale for playback (IPython's default), or, with ``False``, play it at
            its own level (see :func:`audio_players`).
    """
    audio_players({label: clip}, rate, normalize=normalize)


def audio_players(
    clips: Mapping[str, Any] | Sequence[tuple[str, Any]], rate: int, *, caption: str = "", normalize: bool = True,
) -> None:
    """Display labelled audio players as one HTML table: one row per clip, its label beside its player.

    Args:
        clips: ``{label: waveform}`` or ``[(label, waveform), ...]``; waveforms as in :func:`audio_player`.
        rate: sample rate in Hz.
        caption: optional table caption.
        normalize: ``True`` (IPython's default): every clip is scaled to full scale on its own, so all sound equally
            loud whatever their levels. ``False``: one gain for every clip, so a louder or hissier clip is heard
            as such: samples as they are (1.0 is full scale), or, when a clip peaks above 1, every clip divided
            by that largest peak (the caption then says so). Use it where the chapter compares levels.
    """
    import numpy as np

    items = list(clips.items()) if isinstance(clips, Mapping) else list(clips)
    if not items:
        raise ValueError("audio_players needs at least one (label, clip)")
    waves = []
    for label, clip in items:
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"every audio player needs a label, got {label!r}")
        waves.append(_waveform(clip, label))
    gain = None
    if not normalize:
        peak = max(float(np.abs(w).max()) for w in waves)
        gain = 1.0 if peak <= 1.0 else 1.0 / peak
        if gain < 1.0:
            note = f"every clip scaled by {gain:.3g} to fit full scale; their levels stay comparable"
            caption = f"{caption} ({note})" if caption else note.capitalize()
    rows = [
        f'<tr><th scope="row" class="audio-label" style="text-align: left; padding-right: 1em;">'
        f"{html.escape(label)}</th><td>{_audio_html(wave, rate, gain)}</td></tr>"
        for (label, _), wave in zip(items, waves)
    ]
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = f'<table class="audio-players">{cap}{"".join(rows)}</table>'
    text = "\n".join(f"[audio] {label}" for label, _ in items)
    meta = {"kind": "audio", "labels": [label for label, _ in items], "normalize": bool(normalize)}
    if gain is not None:
        meta["gain"] = gain
    _display_html(body, text=text, meta=meta)
