"""The project's description files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# PyPI name -> conda-forge name, where they differ.
CONDA_NAMES = {"torch": "pytorch", "soundfile": "pysoundfile", "pillow": "pillow", "pywavelets": "pywavelets"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def _environment_names() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names: set[str] = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(d) for d in dep.get("pip", []) if not d.startswith("-")}
        else:
            names.add(_name(dep))
    return names


def test_environment_yml_names_every_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = _environment_names()
    missing = [d for d in project["dependencies"] if CONDA_NAMES.get(_name(d), _name(d)) not in env]
    assert not missing, f"environment.yml lacks runtime dependencies of pyproject.toml: {missing}"


def test_environment_yml_names_docs_and_test_tools():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    env = _environment_names()
    wanted = {_name(d) for d in extras["docs"] + extras["test"]}
    assert wanted <= env, f"environment.yml lacks: {sorted(wanted - env)}"


def test_constraints_pin_the_cpu_torch_build():
    lines = (ROOT / "requirements" / "constraints-cpu.txt").read_text().splitlines()
    pins = [line for line in lines if line.strip() and not line.startswith("#")]
    assert "torch==2.13.0" in pins


def test_jupyter_book_is_pinned_below_2():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    jb = [d for d in extras["docs"] if _name(d) == "jupyter-book"]
    assert jb and "<2" in jb[0], "Jupyter Book 2.x has no _toc.yml and no Colab button: pin jupyter-book<2"


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme


def test_version_is_single_sourced():
    import spectral_lib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert spectral_lib.__version__ == project["version"]
