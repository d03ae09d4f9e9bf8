"""Profiles: the registry, replace() with validation, JSON round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from spectral_lib.experiments import profiles
from spectral_lib.experiments.profiles import ExperimentConfig, get_profile, profiles_for, register_profile


def test_registry_names():
    assert "checkerboard" in profiles.EXPERIMENTS
    assert {"smoke", "cpu", "gpu"} <= set(profiles_for("checkerboard"))
    assert {"smoke", "cpu", "gpu"} <= set(profiles.PROFILES)
    for exp, by_profile in profiles.REGISTRY.items():
        for name, cfg in by_profile.items():
            assert (cfg.experiment, cfg.profile) == (exp, name)


def test_checkerboard_profiles_follow_the_prototype():
    cpu = get_profile("checkerboard", "cpu")
    assert (cpu.data["size"], cpu.data["channels"], cpu.data["check_sizes"]) == (32, 1, [4])
    assert cpu.data["random_offsets"] is True
    assert (cpu.steps, cpu.batch_size, cpu.lambda_spec, cpu.sample_steps) == (800, 64, 1.0, 50)
    smoke = get_profile("checkerboard", "smoke")
    assert smoke.steps <= 50 and smoke.n_samples <= 16 and smoke.sample_steps <= 20
    gpu = get_profile("checkerboard", "gpu")
    assert gpu.data["size"] == 64 and gpu.steps > cpu.steps


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown experiment 'mnist'; valid: 'checkerboard'"):
        get_profile("mnist", "cpu")
    with pytest.raises(ValueError, match=r"unknown profile .*'huge'.*'smoke', 'cpu', 'gpu'"):
        get_profile("checkerboard", "huge")


def test_replace_top_level_dotted_and_merged():
    cfg = get_profile("checkerboard", "cpu")
    new = cfg.replace(steps=10, lr=1e-4, **{"data.size": 16}, model={"preset": "tiny"})
    assert (new.steps, new.lr, new.data["size"], new.model["preset"]) == (10, 1e-4, 16, "tiny")
    assert new.data["check_sizes"] == [4] and new.model["name"] == "unet2d"  # the other entries are kept
    assert cfg.steps == 800 and cfg.data["size"] == 32  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3  # type: ignore[misc]


def test_replace_refuses_unknown_keys_listing_valid_ones():
    cfg = get_profile("checkerboard", "smoke")
    with pytest.raises(ValueError, match=r"unknown config key 'stepz'; valid keys: experiment, profile, .*steps"):
        cfg.replace(stepz=3)
    with pytest.raises(ValueError, match=r"unknown config key 'lr.x'"):
        cfg.replace(**{"lr.x": 3})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("amp", "fp8", r"unknown amp 'fp8'; valid: 'off', 'bf16', 'fp16'"),
        ("steps", 0, r"steps must be an integer >= 1, got 0"),
        ("batch_size", 2.5, r"batch_size must be an integer"),
        ("lr", -1.0, r"lr must be finite and > 0"),
        ("ema_decay", 1.0, r"ema_decay must be in \[0, 1\)"),
        ("spectral_weighting", "sigma", r"unknown spectral_weighting"),
        ("lr_schedule", "step", r"unknown lr_schedule"),
        ("data", 3, r"data must be a dict"),
    ],
)
def test_invalid_values(key, value, message):
    with pytest.raises(ValueError, match=message):
        get_profile("checkerboard", "smoke").replace(**{key: value})


def test_json_round_trip():
    cfg = get_profile("checkerboard", "gpu").replace(regularizer="wavelet", regularizer_kwargs={"levels": 2},
                                                     grad_clip=None, device="cpu")
    text = json.dumps(cfg.to_dict())
    again = ExperimentConfig.from_dict(json.loads(text))
    assert again == cfg
    assert cfg.diff(again) == {}
    assert cfg.diff(cfg.replace(steps=5)) == {"steps": (cfg.steps, 5)}


def test_from_dict_refuses_unknown_and_missing_keys():
    d = get_profile("checkerboard", "smoke").to_dict()
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['colour'\]"):
        ExperimentConfig.from_dict({**d, "colour": "red"})
    del d["experiment"]
    with pytest.raises(ValueError, match="needs the key 'experiment'"):
        ExperimentConfig.from_dict(d)


def test_dicts_are_copied_not_shared():
    data = {"source": "checkerboard", "size": 8}
    cfg = ExperimentConfig(experiment="x", profile="y", data=data)
    data["size"] = 99
    assert cfg.data["size"] == 8


def test_register_profile_extends_the_registry(monkeypatch):
    monkeypatch.setattr(profiles, "REGISTRY", {k: dict(v) for k, v in profiles.REGISTRY.items()})
    extra = get_profile("checkerboard", "smoke").replace(experiment="toy2", profile="full")
    register_profile(extra)
    assert "toy2" in profiles.EXPERIMENTS and "full" in profiles.PROFILES
    assert get_profile("toy2", "full") == extra
    with pytest.raises(ValueError, match="exists"):
        register_profile(extra)
