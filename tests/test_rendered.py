"""Build the HTML book from the smoke-executed notebooks and look at it in headless Chromium.

Run after tests/test_book.py (``make test`` does): notebooks it did not execute are executed here. The browser
is Debian's ``chromium`` (``make browser`` installs it where missing); without one these tests skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import execute_notebooks  # noqa: E402

pytestmark = pytest.mark.rendered
SMOKE = ROOT / "_build" / "smoke"
HTML = SMOKE / "_build" / "html"
CHECKERBOARD_PAGE = "book/05_checkerboard.html"


@pytest.fixture(scope="module")
def html() -> Path:
    src = SMOKE / "src"
    execute_notebooks.copy_sources(src)
    for nb in execute_notebooks.toc_notebooks():
        if not (src / nb).exists():
            execute_notebooks.execute(ROOT / nb, src / nb, "smoke", cwd=(src / nb).parent, timeout=600)
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [str(jb), "build", str(src), "--path-output", str(SMOKE)], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return HTML


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _dom(browser: str, page: Path, screenshot: Path | None = None) -> str:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
        "--user-data-dir=" + str(SMOKE / "chromium-profile"),
    ]
    if screenshot is not None:
        subprocess.run(
            [browser, *flags, f"--screenshot={screenshot}", "--window-size=1280,2400", page.as_uri()],
            capture_output=True,
            timeout=120,
        )
    proc = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium failed on {page}: {proc.stderr[-2000:]}"
    return proc.stdout


def test_book_has_index_and_every_chapter(html):
    assert (html / "index.html").exists()
    for entry in execute_notebooks.toc_entries():
        assert (html / (entry + ".html")).exists(), f"no page for {entry}"


def test_no_error_outputs_in_any_page(html):
    for page in html.rglob("*.html"):
        text = page.read_text(errors="replace")
        assert "Traceback (most recent call last)" not in text, f"{page} shows a traceback"
        assert "output traceback" not in text, f"{page} shows an error output cell"


@pytest.mark.parametrize("page", ["index.html", CHECKERBOARD_PAGE])
def test_page_renders_in_chromium(html, page):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium here: `make browser` installs Debian's chromium (needs apt and root)")
    path = html / page
    if not path.exists():
        pytest.skip(f"{page} is not part of the book yet")
    dom = _dom(browser, path, screenshot=SMOKE / (path.stem + ".png"))
    assert "<article" in dom or 'role="main"' in dom, f"{page}: no main article in the rendered DOM"
    assert "Traceback" not in dom, f"{page}: rendered an error"
    if page != "index.html":
        images = re.findall(r"<img[^>]+src=\"([^\"]+)\"", dom)
        figures = [src for src in images if "logo" not in src]
        assert len(figures) >= 2, f"{page}: expected figures, found {len(figures)} images"
        assert "<table" in dom, f"{page}: expected the results table"
