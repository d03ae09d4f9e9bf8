"""Chapters 9 and 10: the diffusers runs as shipped results, the cost chapter's live and reference measurements,
and their figure modules (spectral_lib.plotting.diffusers, spectral_lib.plotting.cost)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from figure_texts import figure_texts as _texts  # tests/figure_texts.py

from spectral_lib.experiments import cost
from spectral_lib.experiments.shipped import Shipped, ShippedResults
from spectral_lib.integrations import diffusers as hf
from spectral_lib.integrations import diffusers_runs as runs_lib
from spectral_lib.plotting import cost as cost_figures
from spectral_lib.plotting import diffusers as hf_figures
from spectral_lib.plotting.core import BookFigure

# ------------------------------------------------------------------------------------------------ chapter 9: runs


@pytest.fixture
def fake_training(monkeypatch):
    """``hf.train_checkerboard`` replaced by a seconds-free fake that records its calls; the samples encode λ."""
    calls: list[tuple] = []

    def train(profile, regularizer="none", *, prediction_type="epsilon", lambda_spec=None, **_):
        calls.append((profile, regularizer, prediction_type, lambda_spec))
        lam = lambda_spec or 0.0
        crisp = 0.9 - 0.3 * lam if prediction_type == "v_prediction" else 0.05
        history = [{"step": s, "loss": 1.0, "diffusion": 0.5 / (s + 1),
                    **({"spectral": (20.0 if prediction_type == "epsilon" else 0.2) / (s + 1)}
                       if regularizer != "none" else {})} for s in (0, 10)]
        return SimpleNamespace(metrics={"binary_share": crisp, "contrast": crisp, "ideal_agreement": 1.0,
                                        "ideal_mae": 0.1},
                               trained=SimpleNamespace(history=history), train_seconds=1.5, sample_seconds=0.5,
                               samples=torch.full((4, 1, 8, 8), 0.25 + lam), regularizer=regularizer,
                               prediction_type=prediction_type)

    monkeypatch.setattr(hf, "train_checkerboard", train)
    return calls


def test_run_names_and_keys_say_what_decides_a_run():
    assert runs_lib.run_name("none", "epsilon", 1.0) == "epsilon-none"
    assert runs_lib.run_name("wavelet", "v_prediction", 0.1) == "v_prediction-wavelet-lam0.1"
    assert runs_lib.run_name("wavelet", "v_prediction", 0.0) == "v_prediction-none"
    with pytest.raises(ValueError, match="prediction_type"):
        runs_lib.run_name("wavelet", "velocity")
    key = runs_lib.run_key("cpu", "wavelet", "v_prediction", 1.0)
    assert key["recipe"] == {"profile": "cpu", "regularizer": "wavelet", "prediction_type": "v_prediction",
                             "lambda_spec": 1.0}
    assert key["fingerprint"]["config"]["steps"] == hf.get_diffusers_profile("cpu").steps
    assert key["fingerprint"]["regularizer_terms"]["wavelet"]["wavelet"] == "haar"
    assert runs_lib.run_key("cpu", "none", "epsilon", 1.0)["recipe"]["lambda_spec"] == 0.0
    assert runs_lib.run_key("cpu", "wavelet", "epsilon") != runs_lib.run_key("smoke", "wavelet", "epsilon")


def test_a_run_is_shipped_at_cpu_and_read_back_without_training(fake_training, tmp_path, notes):
    first = runs_lib.checkerboard_run(ShippedResults(runs_lib.CHAPTER, "cpu", root=tmp_path), "wavelet",
                                      "v_prediction", 1.0)
    assert len(fake_training) == 1 and not first.shipped and first.label == "wavelet, λ = 1"
    folder = tmp_path / "cpu" / runs_lib.CHAPTER
    assert {p.name for p in folder.iterdir()} == {"manifest.json", "v_prediction-wavelet-lam1.json",
                                                  "v_prediction-wavelet-lam1-samples.npz"}
    again = runs_lib.checkerboard_run(ShippedResults(runs_lib.CHAPTER, "cpu", root=tmp_path), "wavelet",
                                      "v_prediction", 1.0)
    assert len(fake_training) == 1, "a shipped run must be read back, not retrained"
    assert again.shipped and again.metrics == first.metrics and again.history == first.history
    torch.testing.assert_close(again.samples, first.samples)
    assert runs_lib.stale_runs(Shipped(runs_lib.CHAPTER, root=tmp_path)) == {}


def test_other_profiles_train_and_never_write(fake_training, tmp_path, notes):
    run = runs_lib.checkerboard_run(ShippedResults(runs_lib.CHAPTER, "smoke", root=tmp_path), "none", "epsilon")
    assert fake_training == [("smoke", "none", "epsilon", None)] and run.label == "baseline"
    assert not (tmp_path / "cpu").exists() and notes == []


def test_a_changed_profile_makes_shipped_runs_stale_and_retrains(fake_training, tmp_path, notes, monkeypatch):
    runs_lib.checkerboard_run(ShippedResults(runs_lib.CHAPTER, "cpu", root=tmp_path), "none", "v_prediction")
    changed = hf.DIFFUSERS_PROFILES["cpu"].replace(steps=hf.DIFFUSERS_PROFILES["cpu"].steps + 1)
    monkeypatch.setitem(hf.DIFFUSERS_PROFILES, "cpu", changed)
    stale = runs_lib.stale_runs(Shipped(runs_lib.CHAPTER, root=tmp_path))
    assert set(stale) == {"v_prediction-none", "v_prediction-none-samples"}
    assert all("config" in reason for reason in stale.values())
    runs_lib.checkerboard_run(ShippedResults(runs_lib.CHAPTER, "cpu", root=tmp_path), "none", "v_prediction")
    assert len(fake_training) == 2 and "Retraining: shipped result out of date" in notes
    assert runs_lib.stale_runs(Shipped(runs_lib.CHAPTER, root=tmp_path)) == {}


def test_the_cpu_sweep_is_read_at_every_profile_once_shipped(fake_training, tmp_path, notes):
    smoke = ShippedResults(runs_lib.CHAPTER, "smoke", root=tmp_path)
    assert runs_lib.cpu_sweep(smoke) is None, "nothing shipped: no sweep, and nothing trained"
    assert fake_training == []
    found = runs_lib.sweep_findings(None)
    assert math.isnan(found["v_share"]) and found["top_lambda"] == max(runs_lib.SWEEP_LAMBDAS)

    cpu = ShippedResults(runs_lib.CHAPTER, "cpu", retrain=True, root=tmp_path)
    page_runs = [runs_lib.checkerboard_run(cpu, reg, "v_prediction", 1.0) for reg in ("none", "wavelet")]
    sweep = runs_lib.cpu_sweep(cpu, page_runs)
    assert len(fake_training) == len(runs_lib.sweep_runs()) == len(sweep), "the page's runs are not trained twice"
    assert sweep["v_prediction", 1.0] is page_runs[1]
    read = runs_lib.cpu_sweep(ShippedResults(runs_lib.CHAPTER, "smoke", root=tmp_path))
    assert len(fake_training) == len(sweep) and set(read) == set(sweep)
    assert all(r.shipped for r in read.values())
    found = runs_lib.sweep_findings(read)
    assert found["v_share"] == pytest.approx(0.9, abs=1e-6) and found["eps_share"] == pytest.approx(0.05)
    assert found["v_share_top"] == pytest.approx(0.9 - 0.3 * found["top_lambda"], abs=1e-6)
    assert found["eps_scale_end"] == pytest.approx(40.0) and found["v_scale_end"] == pytest.approx(0.4)
    table = hf_figures.sweep_table(read)
    assert len(table["rows"]) == len(read) and len(table["header"]) == len(table["formats"]) == len(table["rows"][0])


def test_a_real_tiny_diffusers_run_ships_and_restores(tmp_path, notes, monkeypatch):
    pytest.importorskip("diffusers", reason="the diffusers extra is not installed")
    tiny = hf.DIFFUSERS_PROFILES["smoke"].replace(steps=2, n_samples=2, sample_steps=2, log_every=1)
    monkeypatch.setitem(hf.DIFFUSERS_PROFILES, "cpu", tiny)
    run = runs_lib.checkerboard_run(ShippedResults(runs_lib.CHAPTER, "cpu", root=tmp_path), "wavelet",
                                    "v_prediction", 1.0)
    assert run.samples.shape == (2, 1, tiny.size, tiny.size) and "spectral" in run.history[-1]
    monkeypatch.setattr(hf, "train_checkerboard", lambda *a, **k: pytest.fail("should read the shipped run"))
    again = runs_lib.checkerboard_run(ShippedResults(runs_lib.CHAPTER, "cpu", root=tmp_path), "wavelet",
                                      "v_prediction", 1.0)
    torch.testing.assert_close(again.samples, run.samples, atol=2e-3, rtol=0)
    assert again.metrics == pytest.approx(run.metrics)


def test_shipped_diffusers_runs_in_the_repository_are_current():
    stale = runs_lib.stale_runs(Shipped(runs_lib.CHAPTER))
    assert not stale, "shipped chapter-9 runs that no longer match their profile (rebuild the chapter with " \
                      "retrain = True):\n" + "\n".join(f"  {k}: {v}" for k, v in stale.items())


# ------------------------------------------------------------------------------------------------ chapter 9: figures


def test_chapter_9_figures_have_titles_labels_and_no_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    gains = {kind: hf.x0_error_gain(torch.linspace(0.99, 0.01, 50), kind) for kind in hf.PREDICTION_TYPES}
    history = [{"step": 0, "diffusion": 1.0, "spectral": 2.0}, {"step": 5, "diffusion": 0.5, "spectral": 1.0}]
    figures = [
        hf_figures.x0_hat_by_prediction({"x_t": images, "x̂₀ from 'epsilon'": images}, [1, 2, 3, 4]),
        hf_figures.error_gain(gains),
        hf_figures.loss_parts({"baseline": [{"step": 0, "diffusion": 1.0}], "wavelet": history}, title="Loss"),
        hf_figures.sweep_grids({("epsilon", 0.0): images, ("v_prediction", 1.0): images}, title="Sweep"),
    ]
    assert plt.get_fignums() == before, "figure functions must not create pyplot figures"
    for fig in figures:
        assert isinstance(fig, BookFigure) and fig._repr_png_()[:4] == b"\x89PNG"
        assert len(_texts(fig)) >= 2, _texts(fig)
    assert len(figures[0].axes) == 8 and figures[0].axes[0].get_title() == "t = 1"
    assert figures[1].axes[0].get_yscale() == "log" and len(figures[1].axes[0].lines) == 3
    assert len(figures[2].axes[0].lines) == 3, "baseline MSE, wavelet MSE and wavelet spectral term"
    assert [ax.get_title() for ax in figures[3].axes[:2]] == ["no term (baseline)", "wavelet, λ = 1"]


def test_chapter_9_figures_refuse_bad_input():
    with pytest.raises(ValueError, match="rows"):
        hf_figures.x0_hat_by_prediction({}, [1])
    with pytest.raises(ValueError, match=r"\(2, 1, H, W\)"):
        hf_figures.x0_hat_by_prediction({"x": torch.zeros(3, 1, 4, 4)}, [1, 2])
    with pytest.raises(ValueError, match="empty"):
        hf_figures.loss_parts({"a": []}, title="t")


# ------------------------------------------------------------------------------------------------ chapter 10


def _step_rows(sizes=(16, 32, 64), batches=(4, 16, 32), batch=16, side=32):
    """Synthetic overhead_sweep rows: the step grows with the pixels, each term a fixed 1 ms."""
    rows = []
    points = {(s, batch) for s in sizes} | {(side, b) for b in batches}
    for size, b in sorted(points):
        step = 0.01 * size * size * b / 16
        for i, reg in enumerate(("none", "fourier_amp", "fourier_amp_phase", "wavelet", "wavelet_bior13")):
            term = 0.0 if reg == "none" else 1.0 + 0.1 * i
            rows.append({"regularizer": reg, "size": size, "batch_size": b, "ms": step + term, "term_ms": term,
                         "term_share": term / (step + term), "ratio_paired": (step + term) / step,
                         "ratio_q25": (step + term) / step - 0.01, "ratio_q75": (step + term) / step + 0.01,
                         "network": "unet2d/tiny"})
    return rows


def test_overhead_summary_reads_the_size_sweep():
    summary = cost.overhead_summary(_step_rows(), "cpu")
    assert summary["size_small"] == 16 and summary["size_large"] == 64 and summary["size_mid"] == 32
    step16 = 0.01 * 16 * 16
    assert summary["share_small_lo"] == pytest.approx(1.1 / (step16 + 1.1))
    assert summary["share_small_hi"] == pytest.approx(1.4 / (step16 + 1.4))
    assert summary["share_max_rest"] == pytest.approx(1.4 / (0.01 * 32 * 32 + 1.4))
    assert summary["ratio_hi"] == pytest.approx((step16 + 1.4) / step16) and summary["falls"] == 1.0
    assert summary["step_ms_large"] == pytest.approx(0.01 * 64 * 64)
    with pytest.raises(ValueError, match="size sweep"):
        cost.overhead_summary(_step_rows(batch=8, batches=(4, 32)), "cpu")


def test_pixel_ratio_and_paths_summary():
    steps = _step_rows()
    losses = [{"loss": name, "size": s, "shape": (16, 1, s, s), "ms": ms * s / 16, "pixels": s * s}
              for s in (16, 32, 64, 128) for name, ms in (("mse", 0.01), ("fourier_amp", 0.5), ("wavelet haar", 1.0))]
    found = cost.pixel_ratio(losses, steps, 16)
    assert found["size"] == 64 and found["loss"] == "wavelet haar"
    assert found["ratio"] == pytest.approx((0.01 * 64 * 64) / (1.0 * 64 / 16))
    paths = [{"size": s, "speedup_min": v} for s, v in ((16, 1.5), (32, 2.5), (64, 0.8))]
    summary = cost.paths_summary(paths)
    assert (summary["speedup_lo"], summary["speedup_hi"], summary["size_large"]) == (0.8, 2.5, 64)
    with pytest.raises(ValueError):
        cost.paths_summary([])


def test_measure_runs_live_and_ships_the_reference_only_at_cpu(tmp_path, notes):
    key = cost.bench_key("cpu")
    live, reference = cost.measure(ShippedResults(cost.CHAPTER, "smoke", root=tmp_path), "overhead",
                                   lambda: [{"x": 1}], key=key)
    assert live == [{"x": 1}] and reference is None and not (tmp_path / "cpu").exists()
    live, reference = cost.measure(ShippedResults(cost.CHAPTER, "cpu", root=tmp_path), "overhead",
                                   lambda: [{"x": 2}], key=key, ship=False)
    assert reference is None, "a measurement that did not run on a CPU never becomes the reference"
    live, reference = cost.measure(ShippedResults(cost.CHAPTER, "cpu", root=tmp_path), "overhead",
                                   lambda: [{"x": 3}], key=key)
    assert reference == [{"x": 3}], "no reference yet: the cpu measurement becomes it"
    live, reference = cost.measure(ShippedResults(cost.CHAPTER, "cpu", root=tmp_path), "overhead",
                                   lambda: [{"x": 4}], key=key)
    assert live == [{"x": 4}] and reference == [{"x": 3}], "a current reference is kept, the page still measures"
    live, reference = cost.measure(ShippedResults(cost.CHAPTER, "smoke", root=tmp_path), "overhead",
                                   lambda: [{"x": 5}], key=key)
    assert reference == [{"x": 3}], "every profile shows the shipped reference"
    _, reference = cost.measure(ShippedResults(cost.CHAPTER, "cpu", retrain=True, root=tmp_path), "overhead",
                                lambda: [{"x": 6}], key=key)
    assert reference == [{"x": 6}]
    _, reference = cost.measure(ShippedResults(cost.CHAPTER, "smoke", root=tmp_path), "overhead",
                                lambda: [], key=cost.bench_key("smoke"))
    assert reference is None, "a reference of other bench values is not used"
    assert "commit" in cost.reference_note(Shipped(cost.CHAPTER, root=tmp_path), "overhead")


def test_wavelet_paths_time_both_dwt_paths_at_the_profile_sizes():
    from spectral_lib.bench.steps import get_bench_profile

    rows = cost.wavelet_paths("smoke")
    bench = get_bench_profile("smoke")
    assert [(r["wavelet"], r["size"]) for r in rows] == [(w, s) for s in bench.sizes for w in ("haar", "bior1.3")]
    for r in rows:
        assert list(r["shape"]) == [bench.loss_batch, 1, r["size"], r["size"]]
        assert r["name"] == f"wavelet {r['wavelet']}: dense matrices vs ptwt convolutions", "the bench's own rows"
        assert r["speedup"] == pytest.approx(r["plain_ms"] / r["ours_ms"]) and r["ours_min"] <= r["ours_ms"]
    table = cost_figures.paths_table(rows)
    assert len(table["rows"]) == len(rows) and len(table["header"]) == len(table["formats"]) == len(table["rows"][0])


def test_the_convolution_path_computes_the_same_loss():
    from spectral_lib.bench.implementations import wavelet_comparisons
    from spectral_lib.spectral import wavelet_loss, wavelet_max_level

    pred, target = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    (case,) = wavelet_comparisons([16], wavelets=["bior1.3"], batch=2)
    assert case.shape == (2, 1, 16, 16) and dict(case.about) == {"wavelet": "bior1.3", "size": 16}
    torch.testing.assert_close(case.plain(pred, target), case.ours(pred, target))
    levels = min(3, wavelet_max_level(16, "bior1.3"))
    torch.testing.assert_close(case.ours(pred, target), wavelet_loss(pred, target, wavelet="bior1.3", levels=levels))


def test_one_overhead_target_serves_the_bench_the_chapter_and_the_figure():
    import inspect

    from spectral_lib.bench import steps

    assert cost.TARGET_CPU == steps.OVERHEAD_TARGETS["cpu"] == steps.overhead_target("cpu")
    assert steps.overhead_target("cuda") == steps.OVERHEAD_TARGETS["cuda"] < cost.TARGET_CPU
    assert inspect.signature(cost_figures.overhead).parameters["target"].default == cost.TARGET_CPU


def test_chapter_10_figures_and_tables():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    rows = _step_rows()
    losses = [{"loss": name, "size": s, "shape": (16, 1, s, s), "ms": 0.5, "pixels": s * s}
              for s in (16, 32, 64) for name in ("fourier_amp", "wavelet haar", "mse (audio)")]
    overhead = cost_figures.overhead(rows, batch_size=16, sweep_size=32, where="a CPU")
    pixels = cost_figures.per_pixel(losses, rows, batch_size=16)
    assert plt.get_fignums() == before
    assert len(overhead.axes) == 4 and "a CPU" in overhead._suptitle.get_text()
    assert all(ax.get_xlabel() and ax.get_title() for ax in overhead.axes)
    assert len(pixels.axes[0].lines) == 3, "two image losses and the step; audio losses are left out"
    table = cost_figures.overhead_table([r for r in rows if r["batch_size"] == 16])
    header, body = table["header"], table["rows"]
    assert header == ["image side", "16", "32", "64"] and body[0][0] == "step without a term (ms)"
    assert body[1][0] == "Fourier amplitude" and "%" in body[1][1]
    with pytest.raises(ValueError, match="size sweep"):
        cost_figures.overhead(rows, batch_size=8, sweep_size=32, where="x")
    with pytest.raises(ValueError, match="no loss rows"):
        cost_figures.per_pixel(losses, rows, batch_size=16, shown=["nope"])


def test_the_shipped_cost_reference_in_the_repository_is_current():
    store = Shipped(cost.CHAPTER)
    stale = {name: entry.get("key") for name, entry in store.entries().items() if entry.get("key") != cost.bench_key("cpu")}
    assert not stale, ("the shipped cpu reference of chapter 10 was measured with other bench values; rerun the "
                       f"chapter at cpu with retrain = True: {sorted(stale)}")
