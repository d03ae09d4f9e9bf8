"""Shipped results: export and restore without checkpoints, staleness, the chapter switch, and the repository's
own ``results/`` (current and compact)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spectral_lib.experiments import profiles, shipped
from spectral_lib.experiments.shipped import Shipped, ShippedResultError, ShippedResults

OVERRIDES = {"steps": 4, "n_samples": 4, "sample_steps": 3, "log_every": 1}
CHAPTER = "99_test"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One finished tiny run folder (checkerboard, smoke profile, 4 steps), trained once for the module."""
    from spectral_lib.experiments import run_experiment

    out = tmp_path_factory.mktemp("run") / "run"
    run_experiment("checkerboard", profile="smoke", regularizer="wavelet", out=out, progress=False, **OVERRIDES)
    return out


def _config():
    return profiles.get_profile("checkerboard", "smoke").replace(regularizer="wavelet", **OVERRIDES)


def _load(run_dir: Path):
    from spectral_lib.experiments.run import load_run

    return load_run(run_dir)


def _never():
    pytest.fail("the shipped result should have been read back, not recomputed")


def test_a_run_round_trips_without_its_checkpoint(run_dir, tmp_path, notes):
    fresh = _load(run_dir)
    first = ShippedResults(CHAPTER, "cpu", root=tmp_path).run("haar", _config(), lambda: fresh)
    assert first is fresh and notes == ["Training: no shipped result yet"]
    folder = tmp_path / "cpu" / CHAPTER / "haar"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "log.jsonl", "metrics.json", "samples.npz"]
    with np.load(folder / "samples.npz") as data:
        assert data["samples"].dtype == np.float16

    switch = ShippedResults(CHAPTER, "cpu", root=tmp_path)
    restored = switch.run("haar", _config(), _never)
    assert switch.restored == ["haar"] and notes[-1] == "Shipped results"
    assert restored.cached and restored.out_dir == folder
    torch.testing.assert_close(restored.samples, fresh.samples, atol=5e-4, rtol=0)
    assert restored.metrics == fresh.metrics and restored.history == fresh.history
    assert restored.config.to_dict() == fresh.config.to_dict()
    entry = Shipped(CHAPTER, root=tmp_path).entry("haar")
    assert entry["recipe"]["overrides"]["steps"] == 4 and entry["commit"] and entry["hardware"]


def test_other_profiles_never_read_or_write_shipped_results(run_dir, tmp_path, notes):
    fresh = _load(run_dir)
    for profile in ("smoke", "gpu"):
        assert ShippedResults(CHAPTER, profile, root=tmp_path).run("haar", _config(), lambda: fresh) is fresh
    assert not (tmp_path / "cpu").exists() and notes == []


def test_a_changed_profile_makes_the_shipped_run_stale(run_dir, tmp_path, notes, monkeypatch):
    Shipped(CHAPTER, root=tmp_path).save_run("haar", _load(run_dir))
    assert shipped.stale_entries(tmp_path) == {}
    smoke = profiles.REGISTRY["checkerboard"]["smoke"]
    monkeypatch.setitem(profiles.REGISTRY["checkerboard"], "smoke", smoke.replace(batch_size=smoke.batch_size + 1))
    stale = shipped.stale_entries(tmp_path)
    assert list(stale) == [f"{CHAPTER}/haar"] and "batch_size" in stale[f"{CHAPTER}/haar"]
    # the chapter asks for today's configuration: it retrains, loudly, and ships the new run
    calls = []
    new_config = _config()
    switch = ShippedResults(CHAPTER, "cpu", root=tmp_path)
    with pytest.raises(ValueError, match="another configuration"):  # the old run does not answer the new config
        switch.run("haar", new_config, lambda: calls.append(1) or _load(run_dir))
    assert calls == [1] and notes == ["Retraining: shipped result out of date"]


def test_a_result_version_bump_makes_runs_stale(run_dir, tmp_path, monkeypatch):
    Shipped(CHAPTER, root=tmp_path).save_run("haar", run_dir)  # from the folder (samples.pt) this time
    monkeypatch.setitem(shipped.RESULT_VERSIONS, "checkerboard", 2)
    assert "result_version" in shipped.stale_entries(tmp_path)[f"{CHAPTER}/haar"]
    with pytest.raises(ShippedResultError, match="RETRAIN=1"):
        Shipped(CHAPTER, root=tmp_path).load_run("haar", on_stale="raise")


def test_the_fingerprint_sees_a_changed_regularizer_default(monkeypatch):
    from spectral_lib.spectral import regularizer

    config = _config()
    before = shipped.run_fingerprint(config)
    assert before["regularizer_terms"]["wavelet"]["wavelet"] == "haar"
    assert before["regularizer_terms"]["wavelet"]["mode"]  # defaults of wavelet_loss are part of it
    assert "log_every" not in before and "device" not in before  # keys that do not change a result
    monkeypatch.setitem(regularizer._PRESETS, "wavelet", {"wavelet": {"wavelet": "haar", "levels": 2}})
    assert shipped.run_fingerprint(config) != before


def test_retrain_computes_afresh_and_overwrites(run_dir, tmp_path, monkeypatch, notes):
    store = Shipped(CHAPTER, root=tmp_path)
    store.save_run("haar", _load(run_dir))
    calls = []
    monkeypatch.setenv("SPECTRAL_RETRAIN", "1")
    ShippedResults(CHAPTER, "cpu", root=tmp_path).run("haar", _config(), lambda: calls.append(1) or _load(run_dir))
    assert calls == [1] and notes == []


def test_arrays_and_json_round_trip_with_key_and_dependencies(run_dir, tmp_path, notes):
    Shipped(CHAPTER, root=tmp_path).save_run("haar", _load(run_dir))
    values = {"samples": torch.linspace(-1, 1, 50).view(2, 25), "power": torch.tensor([1e-9, 1.0, 1e6]),
              "labels": np.arange(3)}
    first = ShippedResults(CHAPTER, "cpu", root=tmp_path).arrays("ddim", lambda: values, key={"steps": 3},
                                                                 depends_on=["haar"])
    with np.load(tmp_path / "cpu" / CHAPTER / "ddim.npz") as data:
        assert data["samples"].dtype == np.float16 and data["power"].dtype == np.float32  # 1e-9 needs float32
        assert data["labels"].dtype.kind == "i"
    again = ShippedResults(CHAPTER, "cpu", root=tmp_path).arrays("ddim", _never, key={"steps": 3})
    for name in values:
        torch.testing.assert_close(again[name], first[name])
    torch.testing.assert_close(again["power"], values["power"])
    torch.testing.assert_close(again["samples"], values["samples"], atol=5e-4, rtol=0)
    calls = []
    ShippedResults(CHAPTER, "cpu", root=tmp_path).arrays("ddim", lambda: calls.append(1) or values, key={"steps": 5})
    assert calls == [1], "a new key recomputes"
    ShippedResults(CHAPTER, "cpu", root=tmp_path).arrays("ddim", lambda: calls.append(2) or values)
    assert calls == [1, 2], "no key where one was stored recomputes too"

    table = {"rows": [["haar", 0.5]], "seeds": (0, 1)}
    assert ShippedResults(CHAPTER, "cpu", root=tmp_path).json("table", lambda: table, depends_on=["haar"]) == \
        {"rows": [["haar", 0.5]], "seeds": [0, 1]}
    assert ShippedResults(CHAPTER, "cpu", root=tmp_path).json("table", _never)["seeds"] == [0, 1]
    assert Shipped(CHAPTER, root=tmp_path).load_json("table") == {"rows": [["haar", 0.5]], "seeds": [0, 1]}


def test_a_derived_entry_that_needs_a_checkpoint_of_a_shipped_run_says_so(run_dir, tmp_path, notes):
    from spectral_lib.experiments.run import sample_run

    Shipped(CHAPTER, root=tmp_path).save_run("haar", _load(run_dir))
    switch = ShippedResults(CHAPTER, "cpu", root=tmp_path)
    restored = switch.run("haar", _config(), _never)
    with pytest.raises(ShippedResultError, match=r"'haar'.*hold none.*retrain = True"):
        switch.arrays("more", lambda: {"samples": sample_run(restored.out_dir, n=2)}, depends_on=["haar"])


def test_derived_entries_go_stale_with_their_run(run_dir, tmp_path, monkeypatch):
    store = Shipped(CHAPTER, root=tmp_path)
    store.save_run("haar", _load(run_dir))
    store.save_json("table", {"a": 1}, depends_on=["haar"])
    monkeypatch.setitem(shipped.RESULT_VERSIONS, "checkerboard", 2)
    stale = shipped.stale_entries(tmp_path)
    assert set(stale) == {f"{CHAPTER}/haar", f"{CHAPTER}/table"}
    assert "depends on run 'haar'" in stale[f"{CHAPTER}/table"]


def test_a_derived_entry_computed_from_another_version_of_its_run_is_stale(run_dir, tmp_path):
    store = Shipped(CHAPTER, root=tmp_path)
    store.save_run("haar", _load(run_dir))
    store.save_json("table", {"a": 1}, depends_on=["haar"])
    assert shipped.stale_entries(tmp_path) == {}
    # the run is shipped again from another (current) configuration, the table is not recomputed
    other = tmp_path / "other_run"
    shutil.copytree(run_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["seed"] = config["seed"] + 1
    (other / "config.json").write_text(json.dumps(config))
    store.save_run("haar", other)
    stale = shipped.stale_entries(tmp_path)
    assert set(stale) == {f"{CHAPTER}/table"}
    assert "another version of run 'haar'" in stale[f"{CHAPTER}/table"] and "seed" in stale[f"{CHAPTER}/table"]
    # a run shipped after the entry that depends on it (later in the same execution) is recorded when it comes
    store.save_json("early", {"a": 1}, depends_on=["later"])
    assert "depends on run 'later': not shipped" in shipped.stale_entries(tmp_path)[f"{CHAPTER}/early"]
    store.save_run("later", run_dir)
    assert store.entry("early")["depends_on"]["later"] == store.entry("later")["fingerprint"]
    assert f"{CHAPTER}/early" not in shipped.stale_entries(tmp_path)


def test_clear_errors_for_missing_corrupt_and_wrong_input(run_dir, tmp_path):
    store = Shipped(CHAPTER, root=tmp_path)
    with pytest.raises(ShippedResultError, match=r"no shipped result 'haar'.*make book RETRAIN=1"):
        store.load_run("haar")
    (store.folder).mkdir(parents=True)
    (store.folder / "manifest.json").write_text("{not json")
    with pytest.raises(ShippedResultError, match="manifest.json"):
        store.entries()
    (store.folder / "manifest.json").write_text(json.dumps({"entries": {}}))
    for bad in ("../x", "", ".hidden", "a/b"):
        with pytest.raises(ValueError, match="name"):
            store.save_json(bad, {})
    with pytest.raises(ValueError, match="NaN"):
        store.save_arrays("bad", {"x": torch.tensor([float("nan")])})
    with pytest.raises(ValueError, match="float16"):
        store.save_arrays("big", {"x": torch.tensor([1e6])}, dtype="float16")
    # signals asked for in float16 keep values below its normal range (audio near a zero crossing): absolute error
    # at most 2**-25; "auto" keeps such values in float32 instead, for spectra spanning many decades
    quiet = torch.tensor([1e-5, -3e-5, 7e-5, 0.5, -1.0, 1e-9])
    store.save_arrays("quiet", {"x": quiet}, dtype="float16")
    store.save_arrays("spectrum", {"x": quiet.abs()})
    assert torch.allclose(store.load_arrays("quiet")["x"], quiet, rtol=1e-3, atol=2.0**-25)
    assert torch.allclose(store.load_arrays("spectrum")["x"], quiet.abs(), rtol=1e-6, atol=0)
    with pytest.raises(ShippedResultError, match="no finished run"):
        store.save_run("x", tmp_path)
    store.save_json("table", {"a": 1})
    with pytest.raises(ShippedResultError, match="is a 'json', not a 'run'"):
        store.load_run("table")
    shutil.copytree(run_dir, tmp_path / "copy")
    (tmp_path / "copy" / "samples.pt").unlink()
    with pytest.raises(ShippedResultError, match="no samples.pt"):
        store.save_run("x", tmp_path / "copy")


# ------------------------------------------------------------------------------------------------ the repository


def test_shipped_results_in_the_repository_are_current():
    stale = shipped.stale_entries()
    assert not stale, "shipped results that no longer match their profile (rebuild with make book RETRAIN=1):\n" + \
        "\n".join(f"  {k}: {v}" for k, v in stale.items())


def test_shipped_results_in_the_repository_are_compact():
    root = shipped.results_root()
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    total = sum(p.stat().st_size for p in files)
    assert total < 30 * 2**20, f"results/ holds {total / 2**20:.1f} MB; keep it under 30 MB"
    too_big = [f"{p.relative_to(root)} ({p.stat().st_size / 2**20:.1f} MB)" for p in files
               if p.stat().st_size > 5 * 2**20]
    assert not too_big, f"single files over 5 MB in results/: {too_big}"
    weights = [str(p.relative_to(root)) for p in files if p.suffix in (".pt", ".pth", ".ckpt", ".pkl", ".safetensors")]
    assert not weights, f"results/ must not hold checkpoints or pickles: {weights}"
    for path in root.rglob("*.npz") if root.exists() else []:
        with np.load(path, allow_pickle=False) as data:
            wide = [k for k in data.files if data[k].dtype == np.float64]
            assert not wide, f"{path.relative_to(root)}: float64 arrays {wide}; ship float16 or float32"
