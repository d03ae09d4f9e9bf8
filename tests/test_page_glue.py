"""spectral_lib.book: the page header, glue, checked claims and labelled audio players."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch

from spectral_lib import book


@pytest.fixture
def shown(monkeypatch):
    """Everything displayed through IPython, as (data, metadata) pairs."""
    import IPython.display

    outputs: list[tuple[dict, dict]] = []

    def display(obj, raw=False, metadata=None, **kwargs):
        outputs.append((obj if raw else {"text/plain": repr(obj)}, metadata or {}))

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setitem(book._STATE, "profile", None)
    return outputs


def test_page_header_at_smoke_shows_the_banner_and_the_build(shown):
    book.page_header("smoke")
    ((data, meta),) = shown
    html = data["text/html"]
    assert "numbers on this page mean nothing" in html and 'class="admonition warning"' in html
    info = meta["spectral_book"]
    assert info["kind"] == "header" and info["profile"] == "smoke"
    for key in ("date", "hardware", "commit", "threads"):
        assert str(info[key]) in html, f"the header line must show the {key}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", info["date"])
    assert info["hardware"].startswith("GPU " if torch.cuda.is_available() else "CPU ")
    assert book.current_profile() == "smoke"


def test_page_header_at_cpu_has_no_banner(shown):
    book.page_header("cpu")
    html = shown[0][0]["text/html"]
    assert "mean nothing" not in html and "Built at profile <code>cpu</code>" in html


def test_page_header_rejects_an_unknown_profile(shown):
    with pytest.raises(ValueError, match="profile must be one of smoke, cpu, gpu"):
        book.page_header("fast")


def test_build_info_reads_the_commit_of_this_checkout():
    from pathlib import Path

    if not (Path(book.__file__).resolve().parents[1] / ".git").exists():
        pytest.skip("not a git checkout")
    commit, dirty = book.source_commit()
    assert re.fullmatch(r"[0-9a-f]{7,10}", commit) and dirty in (True, False)


@pytest.fixture
def glued(monkeypatch):
    import myst_nb

    stored: dict[str, object] = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: stored.__setitem__(name, value))
    return stored


def test_glue_stores_numbers_myst_nb_can_format(glued):
    from myst_nb.core.variables import format_plain_text

    book.glue("a", np.float64(0.3912))
    book.glue("b", torch.tensor(1.25))
    book.glue("c", np.int64(7))
    book.glue("d", np.array([0.5]))
    book.glue("e", "sharper")
    assert glued == {"a": 0.3912, "b": 1.25, "c": 7, "d": 0.5, "e": "sharper"}
    assert all(type(glued[k]) in (float, int, str) for k in glued)
    assert format_plain_text(repr(glued["a"]), ".1%") == "39.1%"  # what {glue:text}`a:.1%` renders
    with pytest.raises(ValueError):  # MyST-NB itself cannot format the repr of a NumPy scalar: why glue converts
        format_plain_text(repr(np.float64(0.3912)), ".1%")


def test_glue_keeps_arrays_and_checks_names(glued):
    book.glue("grid", np.zeros(3))
    assert isinstance(glued["grid"], np.ndarray)
    for bad in ("a:b", "", "x y"):
        with pytest.raises(ValueError, match="glue name"):
            book.glue(bad, 1.0)


def test_glue_without_myst_nb_is_a_no_op_or_a_display(monkeypatch, shown):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import fails, as on Colab
    book.glue("x", 0.5)
    assert shown == []
    book.glue("x", 0.5, display=True)
    assert shown == [({"text/plain": "0.5"}, {})]


def test_claim_is_silent_when_it_holds_and_warns_when_it_fails(shown):
    book.page_header("cpu")
    shown.clear()
    book.claim(np.bool_(True), "Haar is crisper")
    assert shown == []
    book.claim(torch.tensor(0.4) > 0.5, "Haar is crisper", detail="Haar 0.40, baseline 0.50")
    ((data, meta),) = shown
    assert meta["spectral_book"]["status"] == "failed" and "Haar is crisper" in data["text/html"]
    assert "admonition danger" in data["text/html"] and "Haar 0.40, baseline 0.50" in data["text/html"]


def test_claim_for_another_profile_gives_a_note_not_a_warning(shown):
    book.page_header("smoke")
    shown.clear()
    book.claim(False, "Haar is crisper", profiles=("cpu", "gpu"))
    ((data, meta),) = shown
    assert meta["spectral_book"]["status"] == "not-expected" and "admonition note" in data["text/html"]
    shown.clear()
    book.claim(False, "the table has five rows", profiles=("smoke", "cpu"))
    assert shown[0][1]["spectral_book"]["status"] == "failed"
    with pytest.raises(ValueError, match="profile"):
        book.claim(True, "x", profiles=("laptop",))
    with pytest.raises(ValueError, match="sentence"):
        book.claim(True, " ")


def test_audio_players_label_every_player(shown):
    clip = np.sin(np.linspace(0, 100, 800))
    book.audio_players({"original": clip, "low-pass ≤ 1000 Hz": torch.tensor(clip).view(1, 1, -1) * 0.5}, rate=8000)
    ((data, meta),) = shown
    html = data["text/html"]
    assert meta["spectral_book"]["labels"] == ["original", "low-pass ≤ 1000 Hz"]
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.DOTALL)
    assert len(rows) == 2 and all(r.count("<audio") == 1 and "audio-label" in r for r in rows)
    assert "original" in rows[0] and "low-pass" in rows[1]


def test_audio_players_reject_bad_clips(shown):
    with pytest.raises(ValueError, match="label"):
        book.audio_players([("", np.zeros(10))], rate=8000)
    with pytest.raises(ValueError, match="one waveform"):
        book.audio_player(np.zeros((2, 10)), 8000, "stereo")
    with pytest.raises(ValueError, match="NaN"):
        book.audio_player(np.array([0.0, np.nan]), 8000, "broken")
    with pytest.raises(ValueError, match="at least one"):
        book.audio_players({}, rate=8000)


def test_table_formats_numbers_per_column(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj.data))
    book.table(["name", "value", "share"], [("a|b", np.float64(0.12345), torch.tensor(0.5)), ("c", 2, "n/a")],
               formats=["", ".3f", ".0%"])
    assert shown == ["| name | value | share |\n|---|---|---|\n| a\\|b | 0.123 | 50% |\n| c | 2.000 | n/a |"]
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        book.table(["a", "b"], [(1,)])


def _played(html: str) -> list[np.ndarray]:
    """The samples each player of ``html`` plays, read back from its embedded WAV (full scale = 1)."""
    import base64
    import io
    import wave

    out = []
    for b64 in re.findall(r'src="data:audio/wav;base64,([^"]+)"', html):
        with wave.open(io.BytesIO(base64.b64decode(b64))) as w:
            out.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32767)
    return out


def test_audio_players_keep_the_levels_apart_only_when_asked(shown):
    clip = 0.4 * np.sin(np.linspace(0, 100, 800))
    clips = {"quiet": clip, "half as loud": 0.5 * clip}
    book.audio_players(clips, rate=8000)
    book.audio_players(clips, rate=8000, normalize=False)
    book.audio_player(torch.tensor(3 * clip), 8000, "too loud", normalize=False)
    book.audio_players({"loud": 3 * clip, "quiet": clip}, rate=8000, normalize=False, caption="Two runs")
    (normalized, _), (kept, meta), (one, one_meta), (scaled, scaled_meta) = shown
    a, b = _played(normalized["text/html"])
    assert np.abs(a).max() == pytest.approx(1, abs=1e-3) and np.abs(b).max() == pytest.approx(1, abs=1e-3)
    a, b = _played(kept["text/html"])
    np.testing.assert_allclose(a, clip, atol=1 / 32767)  # the samples as they are
    np.testing.assert_allclose(b, 0.5 * clip, atol=1 / 32767)
    assert meta["spectral_book"]["normalize"] is False and meta["spectral_book"]["gain"] == 1.0
    (c,) = _played(one["text/html"])
    assert np.abs(c).max() == pytest.approx(1, abs=1e-3) and one_meta["spectral_book"]["gain"] == pytest.approx(1 / np.abs(3 * clip).max())
    loud, quiet = _played(scaled["text/html"])
    assert np.abs(loud).max() == pytest.approx(1, abs=1e-3)
    assert np.abs(quiet).max() == pytest.approx(1 / 3, abs=1e-3), "one gain for every clip: the ratio stays"
    assert "Two runs (every clip scaled by 0.833 to fit full scale" in scaled["text/html"]
