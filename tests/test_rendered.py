"""Build the HTML book from the smoke-executed notebooks and look at it in headless Chromium.

Run after tests/test_book.py (``make test`` does): notebooks it did not execute are executed here. The browser
is Debian's ``chromium`` (``make browser`` installs it where missing); without one the browser tests skip, saying
so, and the checks of the page conventions (banner, hidden set-up cells, labelled players, glue) still run on the
HTML files.

``SPECTRAL_RENDERED_PAGES="01_why_blur 02_fourier_lens"`` builds a book of the landing page and those chapters
only (a chapter engineer's quick check); the default is the whole toc.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import execute_notebooks  # noqa: E402
from test_book import PAGE_ORDER_PENDING  # noqa: E402

pytestmark = pytest.mark.rendered
SMOKE = ROOT / "_build" / "smoke"
HTML = SMOKE / "_build" / "html"
CHECKERBOARD_PAGE = "book/05_checkerboard.html"


BUILD_LOG: dict[str, str] = {}


def _pages() -> list[str]:
    """The toc entries to build: ``$SPECTRAL_RENDERED_PAGES`` (file stems) or every entry."""
    wanted = os.environ.get("SPECTRAL_RENDERED_PAGES", "").split()
    entries = execute_notebooks.toc_entries()
    if not wanted:
        return entries
    return [entries[0]] + [e for e in entries[1:] if Path(e).name in wanted]


def _write_subset_toc(src: Path, entries: list[str]) -> None:
    lines = ["format: jb-book", f"root: {entries[0]}", "chapters:"] + [f"  - file: {e}" for e in entries[1:]]
    (src / "_toc.yml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def html() -> Path:
    src = SMOKE / "src"
    execute_notebooks.copy_sources(src)
    pages = _pages()
    if pages != execute_notebooks.toc_entries():
        _write_subset_toc(src, pages)
    for nb in execute_notebooks.toc_notebooks():
        if nb.with_suffix("").as_posix() in pages and not (src / nb).exists():
            execute_notebooks.execute(ROOT / nb, src / nb, "smoke", cwd=(src / nb).parent, timeout=600)
    shutil.rmtree(HTML, ignore_errors=True)  # a page left from an earlier, larger build would be checked too
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [str(jb), "build", str(src), "--path-output", str(SMOKE)], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    BUILD_LOG["text"] = proc.stdout + proc.stderr
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
    for entry in _pages():
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


# ------------------------------------------------------------------------------------------------ page conventions

CONVERTED = [nb.with_suffix("").as_posix() for nb in execute_notebooks.toc_notebooks()
             if str(nb) not in PAGE_ORDER_PENDING]


def _article(html: Path, entry: str) -> str:
    path = html / (entry + ".html")
    if not path.exists():
        pytest.skip(f"{entry} is not part of this build (SPECTRAL_RENDERED_PAGES)")
    text = path.read_text(errors="replace")
    start, end = text.find("<article"), text.find("</article>")
    assert start >= 0 and end > start, f"{path}: no <article> element"
    return text[start:end]


@pytest.mark.parametrize("entry", CONVERTED)
def test_smoke_page_opens_with_the_banner_and_the_build(html, entry):
    article = _article(html, entry)
    banner = article.find("numbers on this page mean nothing")
    assert banner >= 0 and 'class="admonition warning"' in article, f"{entry}: no smoke banner"
    learn = article.find('id="what-you-will-learn"')
    sections = [m.start() for m in re.finditer(r"<section id=", article) if m.start() > learn]
    after_learn = sections[0] if sections else len(article)
    assert learn < banner < after_learn, f"{entry}: the banner must follow 'What you will learn', before the text"
    assert re.search(r"Built at profile <code>smoke</code> · \d{4}-\d\d-\d\d \d\d:\d\d UTC · (CPU|GPU) .* commit "
                     r"<code>[0-9a-f]+</code>", article), f"{entry}: no build line (profile, date, hardware, commit)"


@pytest.mark.parametrize("entry", CONVERTED)
def test_set_up_cells_are_hidden(html, entry):
    article = _article(html, entry)
    for text, what in (("# Parameters (papermill", "the parameters cell"), ("google.colab", "the Colab cell"),
                       ('<span class="n">profile</span> <span class="o">=</span>', "a parameters cell")):
        assert text not in article, f"{entry}: {what} is shown on the page"
    header = re.search(r'<details class="[^"]*hide above-input[^"]*">(.*?)</details>', article, re.DOTALL)
    assert header and "page_header" in header.group(1), f"{entry}: the set-up cell's code must be collapsed"
    assert "tag_injected-parameters" not in article, f"{entry}: papermill's injected cell is on the page"


@pytest.mark.parametrize("entry", CONVERTED)
def test_every_audio_player_has_its_own_label(html, entry):
    article = _article(html, entry)
    players = article.count("<audio")
    labelled = re.findall(r'<tr><th scope="row" class="audio-label"[^>]*>([^<]+)</th><td>\s*<audio', article)
    assert len(labelled) == players, f"{entry}: {players} audio players, {len(labelled)} with a label of their own"
    assert all(label.strip() for label in labelled)
    if entry.endswith(("01_why_blur", "02_fourier_lens")):
        assert players >= 2, f"{entry}: expected its audio players"


@pytest.mark.parametrize("entry", CONVERTED)
def test_glued_numbers_render_and_no_claim_fails(html, entry):
    article = _article(html, entry)
    assert "This finding does not hold in this build" not in article, f"{entry}: a claim fails at smoke"
    source = (ROOT / (entry + ".ipynb")).read_text()
    if "{glue:" in source:
        assert 'class="pasted-text"' in article, f"{entry}: glued values are missing from the page"
    problems = [line for line in BUILD_LOG.get("text", "").splitlines()
                if "mystnb.glue" in line and Path(entry).name in line]
    assert not problems, f"{entry}: glue warnings in the build:\n" + "\n".join(problems)


@pytest.mark.parametrize("entry", CONVERTED)
def test_converted_page_in_chromium(html, entry):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium here: `make browser` installs Debian's chromium (needs apt and root)")
    path = html / (entry + ".html")
    if not path.exists():
        pytest.skip(f"{entry} is not part of this build")
    dom = _dom(browser, path, screenshot=SMOKE / (path.stem + ".png"))
    assert "numbers on this page mean nothing" in dom, f"{entry}: the banner is not in the rendered DOM"
    assert re.search(r"<details class=\"[^\"]*hide above-input[^\"]*\">", dom), f"{entry}: set-up cell not collapsed"
    assert "<details open" not in dom.split("What you will learn", 1)[-1][:20000], f"{entry}: set-up cell open"
    assert dom.count("<audio") == len(re.findall(r'class="audio-label"', dom)), f"{entry}: unlabelled players"
