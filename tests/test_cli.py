"""The command line: help, refusals with exit code 2 and the valid names, a smoke train end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from spectral_lib.cli import main

SMALL = ["--profile", "smoke", "--steps", "3", "--batch-size", "4", "--set", "data.size=16", "--set", "n_samples=4",
         "--set", "sample_steps=2", "--device", "cpu", "--no-progress"]


def test_help_documents_every_option(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--experiment", "--profile", "--regularizer", "--formulation", "--lambda-spec", "--steps",
                   "--seed", "--resume", "--device", "--data-dir", "--out", "--set", "--overwrite"):
        assert option in text, option
    for command in ("sample", "evaluate", "standin"):
        assert main([command, "--help"]) == 0
        assert "--" in capsys.readouterr().out
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert all(c in text for c in ("train", "sample", "evaluate", "standin"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--experiment", "mnist"], r"invalid choice: 'mnist' \(choose from 'checkerboard'"),
        (["train", "--experiment", "checkerboard", "--profile", "huge"], r"invalid choice: 'huge'.*'smoke'"),
        (["train", "--experiment", "checkerboard", "--regularizer", "fourier"],
         r"invalid choice: 'fourier'.*'fourier_amp'.*'wavelet'"),
        (["train", "--experiment", "checkerboard", "--formulation", "sde"], r"invalid choice: 'sde'.*'edm'"),
        (["train", "--experiment", "checkerboard", "--steps", "many"], r"invalid int value: 'many'"),
        (["train", "--experiment", "checkerboard", "--set", "noequals"], r"--set expects KEY=VALUE"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_with_the_valid_names(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err), err


def test_library_errors_exit_2_with_the_message(tmp_path, capsys):
    code = main(["train", "--experiment", "checkerboard", "--out", str(tmp_path / "r"), "--set", "stepz=3", *SMALL])
    assert code == 2
    assert "unknown config key 'stepz'; valid keys:" in capsys.readouterr().err


def test_train_sample_evaluate_end_to_end(tmp_path, capsys):
    out = tmp_path / "haar"
    argv = ["train", "--experiment", "checkerboard", "--regularizer", "wavelet", "--formulation", "ddim",
            "--lambda-spec", "0.5", "--seed", "7", "--out", str(out), *SMALL]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "finished in" in printed
    config = json.loads((out / "config.json").read_text())
    assert (config["regularizer"], config["lambda_spec"], config["seed"], config["steps"]) == ("wavelet", 0.5, 7, 3)
    assert config["data"]["size"] == 16 and config["data"]["check_sizes"] == [4]
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(printed[printed.index("{"):]) == metrics

    # A second train on the same folder is refused without --resume, and reuses the run with it.
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert "reused (finished run)" in capsys.readouterr().out

    assert main(["sample", "--run", str(out), "--n", "3", "--steps", "2", "--out", str(tmp_path / "s.pt"),
                 "--grid", str(tmp_path / "g.png"), "--no-progress"]) == 0
    assert "3 samples of shape (1, 16, 16)" in capsys.readouterr().out
    assert torch.load(tmp_path / "s.pt", weights_only=True).shape == (3, 1, 16, 16)
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["evaluate", "--run", str(out), "--no-write"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["binary_share"] == pytest.approx(metrics["binary_share"])


def test_evaluate_of_a_missing_run_exits_2(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path / "nothing")]) == 2
    assert "nothing" in capsys.readouterr().err


def test_standin_writes_images(tmp_path, capsys):
    assert main(["standin", "--kind", "images", "--out", str(tmp_path), "--n", "2", "--resolution", "16"]) == 0
    assert len(list(tmp_path.rglob("*.png"))) == 2
    assert "wrote stand-in images" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "spectral_lib", "train", "--experiment", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr


# ------------------------------------------------------------------------------------------------ clumsy users


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_out_that_is_a_file_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["train", "--experiment", "checkerboard", "--out", str(tmp_path / "f"), *SMALL]) == 2
    assert "is a file, not a run folder" in _one_line(capsys.readouterr().err)


def test_out_in_a_folder_without_write_permission_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    from spectral_lib.experiments import run_folder

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(run_folder.os, "access", lambda path, mode: False)  # as a non-root user on a read-only folder
    assert main(["train", "--experiment", "checkerboard", "--out", str(tmp_path / "ro" / "run"), *SMALL]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "cannot write into" in line and "ro" in line
    assert list((tmp_path / "ro").iterdir()) == []


def test_unexpected_os_errors_become_one_line(tmp_path, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x"))

    monkeypatch.setattr("spectral_lib.experiments.run.run_experiment", denied)
    assert main(["train", "--experiment", "checkerboard", "--out", str(tmp_path / "r"), *SMALL]) == 2
    assert "Permission denied" in _one_line(capsys.readouterr().err)


def test_diverging_run_exits_1_with_one_line(tmp_path, capsys):
    argv = ["train", "--experiment", "checkerboard", "--out", str(tmp_path / "r"), "--lr", "1e30", "--set",
            "log_every=3", "--set", "checkpoint_every=2", *SMALL]
    assert main(argv) == 1
    line = _one_line(capsys.readouterr().err)
    assert "training diverged" in line and "lower lr" in line and "checkpoint" in line


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One small finished run, trained through the command line (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--experiment", "checkerboard", "--out", str(out), *SMALL]) == 0
    return out


def test_sample_refuses_to_overwrite_an_existing_file(cli_run, tmp_path, capsys):
    out = cli_run
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"my tensor")
    argv = ["sample", "--run", str(out), "--n", "2", "--steps", "2", "--out", str(mine), "--no-progress"]
    assert main(argv) == 2
    assert "mine.pt" in _one_line(capsys.readouterr().err) and mine.read_bytes() == b"my tensor"
    assert main([*argv, "--overwrite"]) == 0
    assert torch.load(mine, weights_only=True).shape == (2, 1, 16, 16)


def test_evaluate_of_a_corrupt_samples_file_exits_2_with_one_line(cli_run, tmp_path, capsys):
    import shutil

    out = shutil.copytree(cli_run, tmp_path / "copy")
    (out / "samples.pt").write_bytes(b"garbage")
    assert main(["evaluate", "--run", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "samples.pt" in line and "weights_only" not in line


def test_standin_never_writes_over_real_data_and_replaces_its_own_with_overwrite(tmp_path, capsys):
    real = tmp_path / "LJSpeech-1.1"
    (real / "wavs").mkdir(parents=True)
    (real / "metadata.csv").write_text("LJ001-0001|a|a\n")
    assert main(["standin", "--kind", "ljspeech", "--out", str(real), "--n", "2", "--seconds", "0.3"]) == 2
    assert "not a stand-in" in _one_line(capsys.readouterr().err)
    assert (real / "metadata.csv").read_text() == "LJ001-0001|a|a\n"
    argv = ["standin", "--kind", "images", "--out", str(tmp_path / "img"), "--n", "2", "--resolution", "16"]
    assert main(argv) == 0 and main(argv) == 2
    assert "--overwrite" in _one_line(capsys.readouterr().err)
    assert main([*argv, "--overwrite"]) == 0
