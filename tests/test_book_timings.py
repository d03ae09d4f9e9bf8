"""Measured notebook times (scripts/book_timings.py): recorded only by a complete build, rendered into the pages,
never typed; and the workshop's 90-minute path fits its slots with the measured cpu times."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import book_timings  # noqa: E402
import execute_notebooks  # noqa: E402

NOTEBOOKS = [str(p) for p in execute_notebooks.toc_notebooks()]
INFO = {"date": "2026-01-02 03:04 UTC", "hardware": "CPU Test, 2 cores", "cores": 2, "commit": "abc1234567",
        "dirty": False}


def test_record_writes_every_notebook_and_load_reads_it_back(tmp_path):
    path = book_timings.record("cpu", {"book/a.ipynb": 7.94, "book/b.ipynb": 125.0}, root=tmp_path, info=INFO)
    assert path == tmp_path / "timings" / "cpu.json"
    value = book_timings.load("cpu", tmp_path)
    assert value["notebooks"] == {"book/a.ipynb": 7.9, "book/b.ipynb": 125.0} and value["total_s"] == 132.9
    assert value["hardware"] == INFO["hardware"] and value["retrain"] is False
    assert value["wall_s"] == 132.9  # one notebook at a time: the wall clock is the sum
    parallel = book_timings.record("smoke", {"book/a.ipynb": 60.0, "book/b.ipynb": 50.0}, jobs=2, wall_s=70.04,
                                   root=tmp_path, info=INFO)
    assert json.loads(parallel.read_text())["wall_s"] == 70.0
    table = book_timings.chapters_table(results=tmp_path)
    assert "| **wall clock** (what you wait) | 70 s | 2.2 min |" in table, table
    with pytest.raises(ValueError, match="wall_s"):
        book_timings.record("cpu", {"book/a.ipynb": 1.0}, wall_s=float("nan"), root=tmp_path, info=INFO)
    assert book_timings.record("cpu", {"book/a.ipynb": 1.0}, retrain=True, root=tmp_path, info=INFO).name == \
        "cpu-retrain.json"
    assert book_timings.load("gpu", tmp_path) is None
    with pytest.raises(ValueError, match="no notebook times"):
        book_timings.record("cpu", {}, root=tmp_path, info=INFO)
    with pytest.raises(ValueError, match=">= 0"):
        book_timings.record("cpu", {"book/a.ipynb": -1.0}, root=tmp_path, info=INFO)
    (tmp_path / "timings" / "smoke.json").write_text("{not json")
    with pytest.raises(ValueError, match="smoke.json"):
        book_timings.load("smoke", tmp_path)


def test_format_seconds():
    assert [book_timings.format_seconds(s) for s in (None, 7.4, 89, 150, 3700)] == [
        "not measured yet", "7 s", "89 s", "2.5 min", "1 h 02 min"]


def test_tables_say_not_measured_until_a_build_records_times(tmp_path):
    empty = book_timings.chapters_table(ROOT, tmp_path)
    assert empty.count(book_timings.NOT_MEASURED) >= len(NOTEBOOKS) * len(book_timings.RUNS)
    assert not re.search(r"\d+(\.\d+)? (s|min)\b", empty), "no time may appear before one is measured"
    book_timings.record("cpu", {nb: 60.0 + i for i, nb in enumerate(NOTEBOOKS)}, root=tmp_path, info=INFO)
    table = book_timings.chapters_table(ROOT, tmp_path)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "{doc}" in line]
    assert len(rows) == len(NOTEBOOKS)
    assert all(row.split("|")[3].strip() == f"{60 + i} s" for i, row in enumerate(rows)), rows[:2]
    assert all(row.split("|")[2].strip() == book_timings.NOT_MEASURED for row in rows), "smoke was not measured"
    assert INFO["hardware"] in table and INFO["commit"] in table


def test_render_replaces_only_the_marked_blocks(tmp_path):
    text = "before\n<!-- timings:chapters -->\nold table\n<!-- /timings -->\nafter\n"
    rendered = book_timings.render(text, ROOT, tmp_path)
    assert rendered.startswith("before\n<!-- timings:chapters -->\n| chapter |")
    assert rendered.endswith("<!-- /timings -->\nafter\n") and "old table" not in rendered
    assert book_timings.render(rendered, ROOT, tmp_path) == rendered, "rendering is idempotent"
    with pytest.raises(ValueError, match="unknown timings block"):
        book_timings.render("<!-- timings:nope -->\n<!-- /timings -->", ROOT, tmp_path)


def test_a_complete_build_records_its_times_and_a_partial_one_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAL_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(execute_notebooks, "execute", lambda nb, out, profile, **kw: 3.0)
    out = tmp_path / "src"
    assert execute_notebooks.main(["--profile", "smoke", "--out", str(out), "--only", NOTEBOOKS[0]]) == 0
    assert not (tmp_path / "results" / "timings").exists(), "--only is not a complete run"
    assert execute_notebooks.main(["--profile", "smoke", "--out", str(out)]) == 0
    recorded = json.loads((tmp_path / "results" / "timings" / "smoke.json").read_text())
    assert set(recorded["notebooks"]) == set(NOTEBOOKS) and recorded["total_s"] == 3.0 * len(NOTEBOOKS)

    def fail(nb, out, profile, **kw):
        raise RuntimeError("a cell failed")

    monkeypatch.setattr(execute_notebooks, "execute", fail)
    with pytest.raises(RuntimeError):
        execute_notebooks.main(["--profile", "cpu", "--out", str(out)])
    assert not (tmp_path / "results" / "timings" / "cpu.json").exists(), "a failed build records nothing"
    execute_notebooks.copy_sources(out)
    workshop = (out / "book" / "11_workshop.md").read_text()
    assert "| 3 s |" in workshop, "the copied pages show the recorded times"


def test_the_committed_pages_show_the_committed_timings():
    assert book_timings.pages(), "no page of the book holds a timings block"
    assert book_timings.main(["--check"]) == 0, "run: python scripts/book_timings.py --update"


# ------------------------------------------------------------------------------------------------ the 90-minute path


def plan_rows(text: str) -> list[tuple[int, list[str], str]]:
    """``(start minute, notebooks run in full, the row)`` for each row of the workshop's 90-minute table."""
    section = text.split("## The 90-minute path", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = re.match(r"\|\s*(\d+):(\d\d)\s*\|(.*)", line)
        if match:
            cells = [c.strip() for c in match.group(3).split("|")]
            run = cells[1] if len(cells) > 1 else ""
            notebooks = re.findall(r"(\d\d_\w+)", run) if "run all" in run.lower() else []
            rows.append((int(match.group(1)) * 60 + int(match.group(2)), notebooks, line))
    return rows


def test_the_plan_parser_finds_what_it_should():
    text = ("## The 90-minute path\n\n| time | what | run | focus |\n|---|---|---|---|\n"
            "| 0:00 | a | run all {doc}`01_why_blur` | x |\n| 0:20 | b | read {doc}`02_fourier_lens` | y |\n| 1:30 | end | | |\n\n## Next")
    assert plan_rows(text) == [(0, ["01_why_blur"], text.splitlines()[4]), (20, [], text.splitlines()[5]),
                               (90, [], text.splitlines()[6])]


def test_the_ninety_minute_path_fits_its_slots():
    rows = plan_rows((ROOT / "book" / "11_workshop.md").read_text())
    assert rows and rows[-1][0] == 90, "the 90-minute table must end with a row at 1:30"
    starts = [start for start, _, _ in rows]
    assert starts == sorted(starts)
    named = {nb for _, notebooks, _ in rows for nb in notebooks}
    assert named <= {Path(nb).stem for nb in NOTEBOOKS}, f"unknown notebooks in the plan: {named}"
    recorded = book_timings.load("cpu")
    if recorded is None:
        pytest.skip("no measured cpu build yet (results/timings/cpu.json): the slots are checked once there is one")
    for (start, notebooks, line), (end, _, _) in zip(rows, rows[1:]):
        needed = sum(recorded["notebooks"][f"book/{nb}.ipynb"] for nb in notebooks)
        assert needed <= 0.5 * (end - start) * 60, (
            f"{line}\nruns {notebooks} in {needed:.0f} s, more than half of its {end - start}-minute slot")


def test_schedule_keeps_chapter_6_after_chapter_5_and_chapter_10_alone():
    """Chapter 6 ships into chapter 5's results and reuses its run folders: with --jobs 2 they must share one worker,
    in order; chapter 10 times the regularizers and runs after every other notebook."""
    notebooks = execute_notebooks.toc_notebooks()
    chains, alone = execute_notebooks.schedule(notebooks)
    assert [p.as_posix() for p in alone] == ["book/10_cost.ipynb"]
    flat = [nb for chain in chains for nb in chain] + alone
    assert sorted(flat) == sorted(notebooks) and len(flat) == len(notebooks)  # each notebook exactly once
    for after, before in execute_notebooks.RUN_AFTER.items():
        chain = next(c for c in chains if Path(after) in c)
        assert chain.index(Path(before)) < chain.index(Path(after)), chain
    # a notebook whose predecessor is not executed (--only) starts a chain of its own
    chains, alone = execute_notebooks.schedule([Path("book/06_ablation.ipynb")])
    assert chains == [[Path("book/06_ablation.ipynb")]] and alone == []
