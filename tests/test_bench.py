"""The cost chapter's benchmark helpers: profiles, the checkerboard case, the sweeps' rows (timings are not tested)."""

from __future__ import annotations

import pytest
import torch

from spectral_lib.bench import losses, steps
from spectral_lib.experiments.profiles import get_profile


def test_bench_profiles_are_complete_and_unknown_names_are_refused():
    assert set(steps.BENCH_PROFILES) == {"smoke", "cpu", "gpu"}
    cpu = steps.get_bench_profile("cpu")
    assert 64 in cpu.sizes  # the question: the overhead at 64 x 64 on a CPU
    assert len(set(cpu.points)) == len(cpu.points)
    assert {(s, cpu.batch_size) for s in cpu.sizes} | {(cpu.batch_sweep_size, b) for b in cpu.batch_sizes} == set(
        cpu.points
    )
    with pytest.raises(ValueError, match="bench profile.*'laptop'.*smoke"):
        steps.get_bench_profile("laptop")


def test_checkerboard_case_uses_the_experiment_profiles_unet():
    case = steps.checkerboard_case("cpu", 48, 5)
    config = get_profile("checkerboard", "cpu")
    assert (case.network, case.preset) == (config.model["name"], config.model["preset"])
    assert case.model_overrides == {k: v for k, v in config.model.items() if k not in ("name", "preset")}
    assert case.shape == (config.data["channels"], 48, 48) and case.batch_size == 5


def test_step_rows_with_term_timing_and_wavelet_levels_that_fit(monkeypatch):
    # 8 x 8 holds one level of bior1.3 (6 taps): the default 3 levels would raise, the benchmark adapts
    case = steps.StepCase("toy", "unet2d", "tiny", (1, 8, 8), 2, model_overrides={"base_channels": 8, "num_groups": 4})
    assert steps._regularizer("wavelet_bior13", case).options["wavelet"]["levels"] == 1
    assert "levels" not in steps._regularizer("wavelet", case).options["wavelet"]  # Haar: 3 levels fit
    rows = steps.time_training_steps(case, ["wavelet_bior13"], rounds=2, warmup=0, time_terms=True)
    none, bior = rows
    assert none["term_ms"] == 0.0 and none["ratio_paired"] == 1.0 == none["ratio_q25"] == none["ratio_q75"]
    assert bior["term_ms"] > 0 and bior["term_share"] == pytest.approx(bior["term_ms"] / bior["ms"])
    assert bior["ratio_q25"] <= bior["ratio_paired"] <= bior["ratio_q75"]
    assert (bior["size"], bior["batch_size"]) == (8, 2)
    assert "share" in steps.format_table(rows)
    assert "share" not in steps.format_table(steps.time_training_steps(case, ["wavelet"], rounds=1, warmup=0))


def test_overhead_sweep_times_every_point_of_the_profile(monkeypatch):
    tiny = steps.BenchProfile("smoke", sizes=(8, 16), batch_size=2, batch_sizes=(1, 2), batch_sweep_size=8,
                              rounds=1, warmup=0, loss_sizes=(8,), loss_batch=1, loss_repeats=1)
    monkeypatch.setitem(steps.BENCH_PROFILES, "tiny", tiny)
    rows = steps.overhead_sweep("tiny", regularizers=["fourier_amp"])
    assert [(r["size"], r["batch_size"], r["regularizer"]) for r in rows] == [
        (8, 1, "none"), (8, 1, "fourier_amp"), (8, 2, "none"), (8, 2, "fourier_amp"),
        (16, 2, "none"), (16, 2, "fourier_amp"),
    ]
    assert all(r["profile"] == "tiny" and "term_share" in r for r in rows)
    scaling = losses.loss_scaling("tiny")
    assert {r["size"] for r in scaling} == {8} and {r["pixels"] for r in scaling} == {64}
    assert "wavelet bior1.3" in {r["loss"] for r in scaling}  # the level count is dropped from the label


def test_time_losses_takes_custom_cases_and_reports_quartiles():
    calls = []

    def counted(pred, target):
        calls.append(pred.shape)
        return (pred - target).abs().mean()

    rows = losses.time_losses(2, 1, 8, 3, warmup=1, cases={"l1 (counted)": ("image", counted)})
    (row,) = rows
    assert row["name"] == "l1 (counted)" and row["shape"] == (2, 1, 8, 8)
    assert len(calls) == 4 and row["ms_min"] <= row["ms_q25"] <= row["ms"] <= row["ms_q75"]
    assert row["ratio_vs_mse"] != row["ratio_vs_mse"]  # NaN: no MSE baseline among the cases


def test_loss_timings_follow_the_clock_choice():
    cases = {"l1": ("image", lambda p, t: (p - t).abs().mean())}
    assert losses.time_losses(1, 1, 8, 1, warmup=0, cases=cases)[0]["clock"] == "cpu"  # "auto" on a CPU
    assert losses.time_losses(1, 1, 8, 1, warmup=0, cases=cases, clock="wall")[0]["clock"] == "wall"
    with pytest.raises(ValueError, match="clock"):
        losses.time_losses(1, 1, 8, 1, cases=cases, clock="sundial")


def test_each_fast_path_and_its_plain_pytorch_twin_agree():
    """The hand-written paths timed by bench.implementations compute the same values and gradients as the plain
    PyTorch versions they are timed against (otherwise the speed-up would compare different work)."""
    from spectral_lib.bench import implementations

    cases = implementations.comparisons(quick=True)
    assert {c.name.split(":")[0] for c in cases} == {"fourier_amp", "mrstft", "wavelet haar", "wavelet bior1.3"}
    assert len([c for c in cases if c.name.startswith("mrstft")]) == 2
    g = torch.Generator().manual_seed(0)
    for case in cases:
        pred = torch.randn(case.shape, generator=g, dtype=torch.float64, requires_grad=True)
        target = torch.randn(case.shape, generator=g, dtype=torch.float64)
        ours, plain = case.ours(pred, target), case.plain(pred, target)
        (grad_ours,) = torch.autograd.grad(ours, pred)
        (grad_plain,) = torch.autograd.grad(plain, pred)
        torch.testing.assert_close(ours, plain, msg=case.name)
        torch.testing.assert_close(grad_ours, grad_plain, msg=case.name)
        assert ours.item() > 0 and grad_ours.abs().sum() > 0


def test_comparison_rows_and_table():
    from spectral_lib.bench import implementations

    case = implementations.comparisons(("fourier",), quick=True)[0]
    (row,) = implementations.compare([case], repeats=2, warmup=0)
    assert row["shape"] == case.shape and row["clock"] == "cpu"
    assert row["speedup"] == pytest.approx(row["plain_ms"] / row["ours_ms"])
    assert row["ours_min"] <= row["ours_ms"] and row["plain_min"] <= row["plain_ms"]
    table = implementations.format_comparison([row])
    assert "speed-up" in table and "2x1x16x16" in table
    with pytest.raises(ValueError, match="comparison kind"):
        implementations.comparisons(("fft",))


def test_wavelet_comparisons_at_chosen_sizes_from_the_command_line(capsys):
    from spectral_lib.bench import implementations

    cases = implementations.comparisons(("wavelet",), sizes=[8, 16])
    assert [(c.about["size"], c.about["wavelet"]) for c in cases] == [(8, "haar"), (8, "bior1.3"), (16, "haar"),
                                                                     (16, "bior1.3")]
    implementations.main(["--kinds", "wavelet", "--sizes", "16", "--repeats", "1"])
    out = capsys.readouterr().out
    assert out.count("16x1x16x16") == 2 and "wavelet haar" in out and "wavelet bior1.3" in out
