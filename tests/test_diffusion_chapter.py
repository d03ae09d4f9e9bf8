"""Chapter 4 (diffusion in a few lines) and its shipped cpu results.

* The shipped results in the repository answer today's cpu profile (the chapter's key is rebuilt here from the
  toy 2-D profile and the notebook's parameters cell), and hold what the chapter reads.
* The shipped path itself, end to end: the notebook executed at ``cpu`` with a tiny profile override and
  ``SPECTRAL_RESULTS_DIR`` in a temporary folder trains and ships its networks, samples and findings; executed
  again it reads them back (no training) and quotes the same findings.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from pathlib import Path

import nbformat
import pytest

from spectral_lib.data.toy2d import toy2d_profile
from spectral_lib.experiments.shipped import Shipped

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "04_diffusion_in_a_few_lines.ipynb"
CHAPTER = NOTEBOOK.stem
ENTRIES = ("denoisers", "sampling", "findings")
TINY = {"steps": 12, "batch_size": 32, "hidden": 16, "depth": 1, "n_points": 120, "n_samples": 40, "n_paths": 2,
        "ddim_steps": 5, "edm_steps": 4}


def parameters() -> dict:
    """The defaults of the notebook's parameters cell."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_parameters_cell_declares_what_the_shipped_key_needs():
    params = parameters()
    assert params["profile"] == "cpu" and params["retrain"] is False and params["overrides"] == {}
    assert {"seed", "dataset"} <= set(params)


def test_shipped_results_match_the_cpu_profile():
    store = Shipped(CHAPTER)
    entries = store.entries()
    if not entries:
        pytest.skip("chapter 4's cpu results are not shipped yet (make book RETRAIN=1 makes them)")
    assert set(ENTRIES) <= set(entries), f"shipped entries {sorted(entries)}, expected {ENTRIES}"
    params = parameters()
    wanted = {"profile": dataclasses.asdict(toy2d_profile("cpu")), "dataset": params["dataset"],
              "seed": params["seed"]}
    for name in ENTRIES:
        key = {k: v for k, v in entries[name]["key"].items() if k != "parameters"}
        assert key == json.loads(json.dumps(wanted)), (
            f"results/cpu/{CHAPTER}/{name} was made for another configuration than today's cpu profile "
            "(rebuild: python scripts/execute_notebooks.py --profile cpu --retrain "
            f"--only book/{CHAPTER}.ipynb)")
    arrays = store.load_arrays("denoisers", on_stale="raise")
    cpu = toy2d_profile("cpu")
    assert arrays["ddpm_loss"].shape == arrays["edm_loss"].shape == (cpu.steps,)
    assert arrays["ddpm_weights"].numel() == arrays["edm_weights"].numel() == entries["denoisers"]["key"]["parameters"]
    sampling = store.load_arrays("sampling", on_stale="raise")
    assert sampling["0_samples"].shape == (cpu.n_samples, 2) and sampling["0_path"].shape == (1001, cpu.n_paths, 2)
    findings = store.load_json("findings", on_stale="raise")
    assert len(findings["spread_edm"]) == len(findings["sigmas"]) == len(findings["gap_mean"])
    assert len(findings["on_data"]) == len(findings["samplers"]) == 4


def _outputs(path: Path) -> tuple[list[dict], str]:
    nb = nbformat.read(path, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    text = "\n".join(json.dumps(o.get("data", {})) + "".join(o.get("text", "")) for o in outputs)
    return outputs, text


def _glued(outputs: list[dict]) -> dict[str, str]:
    """``{name: plain text}`` of the values the notebook glued (MyST-NB stores them as scrapbook records)."""
    found = {}
    for o in outputs:
        name = o.get("metadata", {}).get("scrapbook", {}).get("name")
        if name:
            found[name] = str(o["data"]["application/papermill.record/text/plain"])
    return found


@pytest.mark.notebook
def test_cpu_page_ships_then_reads_back_its_results(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    import papermill as pm

    results = tmp_path / "results"
    monkeypatch.setenv("SPECTRAL_RESULTS_DIR", str(results))
    monkeypatch.delenv("SPECTRAL_RETRAIN", raising=False)
    params = {"profile": "cpu", "overrides": TINY}

    def execute(name: str) -> tuple[list[dict], str]:
        out = tmp_path / f"{name}.ipynb"
        pm.execute_notebook(str(NOTEBOOK), str(out), parameters=params, kernel_name="python3", cwd=str(tmp_path),
                            progress_bar=False, execution_timeout=600)
        return _outputs(out)

    first, first_text = execute("first")
    store = Shipped(CHAPTER, root=results)
    assert set(store.entries()) == set(ENTRIES)
    assert "no shipped result yet" in first_text and "Shipped results" not in first_text
    assert store.load_arrays("denoisers")["ddpm_loss"].shape == (TINY["steps"],)
    assert store.entry("denoisers")["key"]["profile"]["steps"] == TINY["steps"]

    second, second_text = execute("second")
    assert "Shipped results" in second_text, "the second run must read the shipped results"
    assert "no shipped result yet" not in second_text and "out of date" not in second_text
    assert not any("No shipped cpu results" in json.dumps(o.get("data", {})) for o in second)
    glued_first, glued_second = _glued(first), _glued(second)
    quoted = [k for k in glued_first if k.startswith("cpu_")]
    assert quoted, "the page quotes cpu findings"
    assert all(glued_first[k] == glued_second[k] != "nan" for k in quoted), {
        k: (glued_first[k], glued_second.get(k)) for k in quoted}
