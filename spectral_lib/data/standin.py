"""Stand-in data sets written in the real data sets' on-disk formats, so that CI and workshops run the real loaders.

* :func:`write_image_standin`: PNGs in FFHQ's thumbnail layout (``thumbnails128x128/00000/00000.png ...``) drawn
  from a **dead leaves** model (Matheron 1968; Lee, Mumford & Huang 2001): opaque shapes with random colours fall
  on top of each other. Their radii follow ``p(r) ∝ r^-3`` between ``r_min`` and ``r_max``, the scale-invariant
  law that gives natural images' approximately ``1/f^2`` power spectrum and sharp occlusion edges; a mild
  smooth texture (multiplicative, ±4 %) keeps the shapes from being perfectly flat.
* :func:`write_ljspeech_standin`: ``metadata.csv`` + ``wavs/LJxxx-yyyy.wav`` (22 050 Hz, mono, 16-bit PCM) with
  speech-like sound from a **source-filter** synthesiser: a Rosenberg glottal pulse train (differentiated, i.e.
  with lip radiation) whose pitch moves (declination, accents, vibrato-like drift), filtered by a cascade of five
  two-pole formant resonators (Klatt 1980) whose frequencies glide between vowel targets in 5 ms blocks, shaped
  by syllable envelopes, with pauses between words and phrases and band-passed noise bursts for fricatives. Ids
  include ``LJ001-*`` and ``LJ002-*``, so the paper's evaluation split is not empty.

Both are deterministic for a seed (each file draws from ``numpy.random.default_rng([seed, index])``, so a file does
not depend on how many others are written) and fast: a smoke-size stand-in takes well under a second.

Both leave a marker file (:data:`STANDIN_MARKER`) in the folder they fill, and never write into a folder that
already holds data without one: pointed by mistake at the real LJSpeech or FFHQ folder, they refuse instead of
overwriting its files. A stand-in is replaced (its files removed first) only with ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage, signal

__all__ = [
    "dead_leaves",
    "write_image_standin",
    "synthesize_speech",
    "write_ljspeech_standin",
    "VOWEL_FORMANTS",
    "STANDIN_MARKER",
]

STANDIN_MARKER = ".spectral_lib_standin.json"
"""The file a stand-in writer leaves in the folder it fills (what it wrote, with which options); a hidden name, so
that image loaders do not list it."""


def _prepare_folder(folder: Path, data: Sequence[Path], what: dict, overwrite: bool) -> None:
    """Make ``folder`` ready for a stand-in: refuse a file, refuse data (``data``: the paths a stand-in writes that
    exist) not written by a stand-in, refuse an earlier stand-in unless ``overwrite`` (then remove ``data``)."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} is a file; stand-ins are written into a folder")
    present = [p for p in data if p.is_symlink() or p.is_file() or (p.is_dir() and any(p.iterdir()))]
    if present:
        names = ", ".join(p.name for p in present[:3]) + (", ..." if len(present) > 3 else "")
        if not (folder / STANDIN_MARKER).is_file():
            raise FileExistsError(
                f"{str(folder)!r} already holds data ({names}) that is not a stand-in written by spectral_lib; "
                "refusing to write over it: choose another folder"
            )
        if not overwrite:
            raise FileExistsError(f"{str(folder)!r} already holds a stand-in ({names}); pass overwrite=True "
                                  "(CLI: --overwrite) to replace it, or choose another folder")
        for p in present:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STANDIN_MARKER).write_text(json.dumps(what) + "\n")


# --------------------------------------------------------------------------------------------------- images


def dead_leaves(
    resolution: int = 128,
    rng: np.random.Generator | int | None = None,
    *,
    r_min: float = 1.0,
    r_max: float | None = None,
    coverage: float = 6.0,
    texture: float = 0.04,
    supersample: int = 2,
) -> np.ndarray:
    """One dead-leaves image, ``uint8`` ``(resolution, resolution, 3)``.

    Shapes (discs 60 %, rotated rectangles 40 %) are drawn back to front; radii ``r`` follow ``p(r) ∝ r^-3`` on
    ``[r_min, r_max]`` (inverse CDF: ``r = (r_min^-2 - u (r_min^-2 - r_max^-2))^{-1/2}``), which makes the image
    statistically scale invariant and its power spectrum fall as about ``1/f^2``. The number of shapes is chosen
    so that their total area is ``coverage`` times the image's, which leaves a visible background with
    probability about ``exp(-coverage)`` per pixel. Colours: a luminance ``U(0.05, 0.95)`` plus a small chroma
    ``N(0, 0.12)`` per channel. Shapes are rendered at ``supersample`` times the size and box-reduced, so edges are
    sharp but anti-aliased.

    Defaults (``r_max = resolution / 2``, ``coverage = 6``, ``texture = 0.04``) are our choices.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if not isinstance(resolution, int) or resolution <= 0:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    r_max = resolution / 2 if r_max is None else float(r_max)
    if not 0 < r_min < r_max:
        raise ValueError(f"need 0 < r_min < r_max, got r_min={r_min!r}, r_max={r_max!r}")
    big = resolution * supersample
    a, b = r_min**-2, r_max**-2
    mean_r2 = 2 * np.log(r_max / r_min) / (a - b)  # E[r^2] under p(r) ∝ r^-3
    n_shapes = int(np.ceil(coverage * resolution**2 / (np.pi * mean_r2)))

    def colours(n: int) -> list[tuple[int, ...]]:
        c = np.clip(rng.uniform(0.05, 0.95, (n, 1)) + rng.normal(0.0, 0.12, (n, 3)), 0.0, 1.0)
        return [tuple(v) for v in np.round(c * 255).astype(int).tolist()]

    img = Image.new("RGB", (big, big), colours(1)[0])
    draw = ImageDraw.Draw(img)
    u = rng.random(n_shapes)
    radii = (a - u * (a - b)) ** -0.5 * supersample
    centres = rng.uniform(-0.1 * big, 1.1 * big, size=(n_shapes, 2))
    is_disc = rng.random(n_shapes) < 0.6
    angles = rng.uniform(0, np.pi, n_shapes)
    aspects = rng.uniform(0.5, 1.0, n_shapes)
    fills = colours(n_shapes)
    # rectangle corners, all at once: half sizes (r, r * aspect) rotated by the angle around the centre
    hx, hy = radii, radii * aspects
    local = np.stack([np.stack([-hx, -hy], 1), np.stack([hx, -hy], 1), np.stack([hx, hy], 1),
                      np.stack([-hx, hy], 1)], 1)  # (n, 4, 2)
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    px = centres[:, None, 0] + cos * local[..., 0] - sin * local[..., 1]
    py = centres[:, None, 1] + sin * local[..., 0] + cos * local[..., 1]
    corners = np.stack([px, py], -1).tolist()
    boxes = np.stack([centres[:, 0] - radii, centres[:, 1] - radii, centres[:, 0] + radii, centres[:, 1] + radii],
                     1).tolist()
    for k in range(n_shapes):
        if is_disc[k]:
            draw.ellipse(boxes[k], fill=fills[k])
        else:
            draw.polygon([tuple(p) for p in corners[k]], fill=fills[k])
    if supersample > 1:
        img = img.reduce(supersample)
    x = np.asarray(img, dtype=np.float32)
    if texture > 0:
        grain = ndimage.gaussian_filter(rng.standard_normal((resolution, resolution)), 1.0)
        grain /= grain.std() + 1e-8
        x = x * (1.0 + texture * grain[..., None])
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def write_image_standin(
    root: str | os.PathLike,
    n: int = 256,
    resolution: int = 128,
    seed: int = 0,
    *,
    overwrite: bool = False,
    **dead_leaves_kwargs,
) -> Path:
    """Write ``n`` dead-leaves PNGs in FFHQ's thumbnail layout and return the image folder.

    Layout (as FFHQ's ``thumbnails128x128``): ``root/thumbnails{R}x{R}/00000/00000.png``, 1000 files per
    subfolder named after the first index it holds (``01000/01000.png`` ...). ``resolution = 128`` as FFHQ's
    thumbnails, so the loader's anti-aliased resize to 64 is exercised too.

    Raises:
        FileExistsError: the image folder already holds files: not a stand-in (never written over), or a stand-in
            and ``overwrite`` is false (with ``overwrite=True`` its files are removed first).
        NotADirectoryError: ``root`` or the image folder is a file.
    """
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if Path(root).exists() and not Path(root).is_dir():
        raise NotADirectoryError(f"{str(root)!r} is a file; stand-ins are written into a folder")
    folder = Path(root) / f"thumbnails{resolution}x{resolution}"
    existing = sorted(p for p in folder.iterdir() if p.name != STANDIN_MARKER) if folder.is_dir() else []
    _prepare_folder(folder, existing, {"kind": "images", "n": n, "resolution": resolution, "seed": seed},
                    overwrite)
    for i in range(n):
        sub = folder / f"{(i // 1000) * 1000:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        img = dead_leaves(resolution, np.random.default_rng([seed, i]), **dead_leaves_kwargs)
        Image.fromarray(img).save(sub / f"{i:05d}.png", compress_level=1)
    return folder


# --------------------------------------------------------------------------------------------------- speech

#: (F1, F2, F3) in Hz of five vowels, adult female averages after Peterson & Barney (1952), rounded.
VOWEL_FORMANTS: dict[str, tuple[float, float, float]] = {
    "a": (850.0, 1220.0, 2810.0),
    "e": (610.0, 2330.0, 2990.0),
    "i": (310.0, 2790.0, 3310.0),
    "o": (590.0, 920.0, 2710.0),
    "u": (370.0, 950.0, 2670.0),
}
_HIGHER_FORMANTS = (3800.0, 4600.0)  # F4, F5: nearly fixed in real speech
_BANDWIDTHS = (80.0, 100.0, 140.0, 200.0, 260.0)  # Hz, our choice in the range Klatt (1980) uses
_FRICATIVES = {"s": (3500.0, 8000.0), "sh": (1800.0, 5000.0), "f": (1200.0, 7000.0), "h": (400.0, 3000.0)}
_VOICED_ONSETS = ("m", "n", "l", "r", "b", "d", "g", "w")


def _rosenberg(phase: np.ndarray, open_q: float = 0.4, close_q: float = 0.16) -> np.ndarray:
    """Rosenberg (1971) glottal flow over one period, ``phase`` in ``[0, 1)``: rises for ``open_q``, falls for
    ``close_q``, closed after."""
    g = np.zeros_like(phase)
    rise = phase < open_q
    fall = (phase >= open_q) & (phase < open_q + close_q)
    g[rise] = 0.5 * (1 - np.cos(np.pi * phase[rise] / open_q))
    g[fall] = np.cos(0.5 * np.pi * (phase[fall] - open_q) / close_q)
    return g


def _resonator(freq: float, bw: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-pole resonator with unit gain at 0 Hz (Klatt 1980): poles at ``exp(-pi bw / sr ± 2 pi i f / sr)``."""
    r = np.exp(-np.pi * bw / sr)
    a = np.array([1.0, -2 * r * np.cos(2 * np.pi * freq / sr), r * r])
    return np.array([a.sum()]), a


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    na, nr = min(n // 2, int(attack * sr)), min(n // 2, int(release * sr))
    if na:
        env[:na] = 0.5 * (1 - np.cos(np.pi * np.arange(na) / na))
    if nr:
        env[n - nr:] = 0.5 * (1 + np.cos(np.pi * np.arange(nr) / nr))
    return env


def synthesize_speech(
    seconds: float,
    sample_rate: int = 22050,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, str]:
    """Speech-like audio, ``float32`` ``(round(seconds * sample_rate),)`` with peak in ``[0.5, 0.8]``, and made-up
    text with one word per synthesised word.

    Source: a differentiated Rosenberg pulse train with ``f0`` from a per-utterance base in ``[110, 220]`` Hz,
    declining by about 25 % over the utterance, raised by ~15 % on accented syllables, with slow random drift;
    plus 2 % aspiration noise. Filter: five formant resonators in cascade, F1-F3 gliding from one vowel of
    :data:`VOWEL_FORMANTS` to the next across each syllable, F4/F5 fixed (capped below 0.45 ``sample_rate``).
    Timing: syllables of 120-280 ms, 1-3 per word, 30-100 ms between words, a 200-400 ms pause after some words,
    silence at both ends. Half of the syllables start with a fricative (band-passed noise, 40-100 ms).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    sr = int(sample_rate)
    if sr <= 2000:
        raise ValueError(f"sample_rate must be above 2000 Hz, got {sample_rate!r}")
    n = int(round(float(seconds) * sr))
    if n <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")

    # 1. timing: (start, end, onset fricative or None, vowel_from, vowel_to, accented) per syllable
    syllables, words = [], []
    t = rng.uniform(0.08, 0.2)
    end_time = float(seconds) - rng.uniform(0.08, 0.2)
    vowels = list(VOWEL_FORMANTS)
    prev_vowel = str(rng.choice(vowels))
    while True:
        n_syl = int(rng.integers(1, 4))
        word, word_syl = "", []
        for _ in range(n_syl):
            dur = rng.uniform(0.12, 0.28)
            if t + dur > end_time:
                break
            fric = str(rng.choice(list(_FRICATIVES))) if rng.random() < 0.5 else None
            vowel = str(rng.choice(vowels))
            word_syl.append((t, t + dur, fric, prev_vowel, vowel, rng.random() < 0.3))
            word += (fric or str(rng.choice(_VOICED_ONSETS))) + vowel
            prev_vowel = vowel
            t += dur
        if not word_syl:
            break
        syllables += word_syl
        words.append(word)
        t += rng.uniform(0.2, 0.4) if rng.random() < 0.15 else rng.uniform(0.03, 0.1)
    text = " ".join(words).capitalize() + "." if words else "Hm."

    # 2. source: pitch contour and glottal pulses
    time = np.arange(n) / sr
    f0 = rng.uniform(110.0, 220.0) * (1.12 - 0.25 * time / max(float(seconds), 1e-3))
    knots = np.arange(0.0, float(seconds) + 0.1, 0.1)  # slow drift: smooth noise through knots every 100 ms
    drift = np.interp(time, knots, ndimage.gaussian_filter1d(rng.standard_normal(len(knots)), 1.0))
    f0 *= 1.0 + 0.04 * drift / (drift.std() + 1e-12)
    for (s, e, _, _, _, acc) in syllables:
        if acc:
            f0 *= 1.0 + 0.15 * np.exp(-0.5 * ((time - (s + e) / 2) / (0.3 * (e - s))) ** 2)
    phase = np.cumsum(f0 / sr) % 1.0
    source = np.diff(_rosenberg(phase), prepend=0.0) * sr / f0.mean()  # d(flow)/dt: lip radiation
    source += 0.02 * rng.standard_normal(n)

    # 3. voicing envelope and formant tracks (F1..F3 glide from the previous vowel to this one)
    voicing = np.zeros(n)
    tracks = np.empty((n, 3))
    tracks[:] = VOWEL_FORMANTS["a"]
    last = np.array(VOWEL_FORMANTS["a"])
    cursor = 0
    fricative_part = np.zeros(n)
    for (s, e, fric, v_from, v_to, acc) in syllables:
        i0, i1 = int(s * sr), min(int(e * sr), n)
        fric_len = int(rng.uniform(0.04, 0.1) * sr) if fric else 0
        fric_len = min(fric_len, (i1 - i0) // 2)
        if fric:
            lo, hi = _FRICATIVES[fric]
            hi = min(hi, 0.45 * sr)
            lo = min(lo, 0.5 * hi)
            b, a = signal.butter(2, (lo, hi), btype="bandpass", fs=sr)
            burst = signal.lfilter(b, a, rng.standard_normal(fric_len))
            fricative_part[i0:i0 + fric_len] += 0.15 * burst / (np.abs(burst).max() + 1e-12) * \
                _envelope(fric_len, sr, 0.015, 0.02)
        v0 = i0 + fric_len
        voicing[v0:i1] = (1.3 if acc else 1.0) * _envelope(i1 - v0, sr, 0.02, 0.05)
        tracks[cursor:v0] = last
        w = np.linspace(0.0, 1.0, i1 - v0)[:, None] ** 0.7
        tracks[v0:i1] = (1 - w) * np.array(VOWEL_FORMANTS[v_from]) + w * np.array(VOWEL_FORMANTS[v_to])
        last = tracks[i1 - 1] if i1 > v0 else last
        cursor = i1
    tracks[cursor:] = last

    # 4. filter: five resonators in cascade, coefficients updated every 5 ms, filter states carried over
    voiced = source * voicing
    block = max(1, int(0.005 * sr))
    out = np.zeros(n)
    states = [np.zeros(2) for _ in range(5)]
    cap = 0.45 * sr
    for start in range(0, n, block):
        seg = voiced[start:start + block]
        if not np.any(seg) and not any(np.any(z) for z in states):
            continue
        freqs = [*tracks[start], *_HIGHER_FORMANTS]
        for k, (f, bw) in enumerate(zip(freqs, _BANDWIDTHS)):
            b, a = _resonator(min(f, cap - k * 50.0), bw, sr)
            seg, states[k] = signal.lfilter(b, a, seg, zi=states[k])
        out[start:start + block] = seg
    out = out / (np.abs(out).max() + 1e-12) + fricative_part
    out += 1e-4 * rng.standard_normal(n)  # a recording's noise floor
    out *= rng.uniform(0.5, 0.8) / (np.abs(out).max() + 1e-12)
    return out.astype(np.float32), text


def _standin_ids(n: int) -> list[str]:
    """LJSpeech-style ids: the first ``max(2, n // 5)`` alternate between chapters LJ001 and LJ002 (the paper's
    held-out chapters), the rest fill LJ003, LJ004, ... 50 per chapter."""
    n_eval = min(n - 1, max(2, n // 5))
    ids = [f"LJ00{1 + (k % 2)}-{k // 2 + 1:04d}" for k in range(n_eval)]
    ids += [f"LJ{3 + k // 50:03d}-{k % 50 + 1:04d}" for k in range(n - n_eval)]
    return ids


def write_ljspeech_standin(
    root: str | os.PathLike,
    n_utterances: int = 12,
    seconds: float | Sequence[float] = 2.0,
    sample_rate: int = 22050,
    seed: int = 0,
    *,
    overwrite: bool = False,
) -> Path:
    """Write an LJSpeech-1.1-layout stand-in into ``root`` and return ``root``.

    ``root/metadata.csv``: ``id|transcription|normalized`` lines, no header, UTF-8, quotes kept literally (some
    transcriptions carry a quoted word, as LJSpeech's do). ``root/wavs/<id>.wav``: mono 16-bit PCM at
    ``sample_rate``. ``seconds`` is one duration or a ``(min, max)`` range drawn per utterance.

    Raises:
        FileExistsError: ``root`` already holds ``metadata.csv`` or ``wavs/``: not a stand-in (never written over,
            e.g. the real LJSpeech-1.1), or a stand-in and ``overwrite`` is false (with ``overwrite=True`` its
            ``metadata.csv`` and ``wavs/`` are removed first).
        NotADirectoryError: ``root`` is a file.
    """
    if not isinstance(n_utterances, int) or n_utterances < 2:
        raise ValueError(f"n_utterances must be an int >= 2 (one for each split), got {n_utterances!r}")
    import soundfile as sf

    root = Path(root)
    wavs = root / "wavs"
    _prepare_folder(root, [root / "metadata.csv", wavs], {"kind": "ljspeech", "n_utterances": n_utterances,
                                                          "seed": seed, "sample_rate": sample_rate}, overwrite)
    wavs.mkdir(exist_ok=True)
    lines = []
    for i, uid in enumerate(_standin_ids(n_utterances)):
        rng = np.random.default_rng([seed, i])
        if isinstance(seconds, (int, float)):
            dur = float(seconds)
        else:
            lo, hi = seconds
            dur = float(rng.uniform(lo, hi))
        audio, text = synthesize_speech(dur, sample_rate, rng)
        sf.write(wavs / f"{uid}.wav", audio, sample_rate, subtype="PCM_16")
        transcription = normalized = text
        if i % 3 == 1:  # a literal quote, as in LJSpeech's "the printer's art" lines
            first, _, rest = text.partition(" ")
            transcription = normalized = f'"{first}" {rest}'.strip()
        lines.append(f"{uid}|{transcription}|{normalized}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
