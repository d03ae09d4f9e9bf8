"""spectral_lib.device's cooperative thread budget: processes that train at once share the cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from spectral_lib import device
from spectral_lib.device import ThreadBudget


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (device.THREADS_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def other_process():
    """A live process other than this one (its pid stands for a second trainer)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_alone_a_process_takes_every_core(tmp_path):
    budget = ThreadBudget(tmp_path, cores=4)
    assert budget.update() == 4 and torch.get_num_threads() == 4
    assert (tmp_path / str(os.getpid())).exists()


def test_two_live_processes_split_the_cores(tmp_path, other_process):
    (tmp_path / str(other_process)).touch()
    assert ThreadBudget(tmp_path, cores=4).update() == 2
    assert ThreadBudget(tmp_path, cores=3).update() == 1, "3 cores // 2 processes"
    assert ThreadBudget(tmp_path, cores=1).update() == 1, "never fewer than one thread"


def test_idle_and_dead_processes_do_not_count(tmp_path, other_process):
    entry = tmp_path / str(other_process)
    entry.touch()
    old = time.time() - 120
    os.utime(entry, (old, old))  # checked in two minutes ago: idle
    assert ThreadBudget(tmp_path, cores=4, idle_after=30).update() == 4
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / str(dead.pid)).touch()
    assert ThreadBudget(tmp_path, cores=4).update() == 4
    assert not (tmp_path / str(dead.pid)).exists(), "a dead process's entry is cleaned up"


def test_the_share_is_rechecked_periodically_and_released(tmp_path, other_process):
    budget = ThreadBudget(tmp_path, cores=4, interval=60)
    assert budget.update() == 4
    (tmp_path / str(other_process)).touch()  # a second trainer starts
    assert budget.update() == 4, "within the interval the share is not re-read"
    assert budget.update(force=True) == 2 and torch.get_num_threads() == 2
    budget.release()
    assert not (tmp_path / str(os.getpid())).exists()
    (tmp_path / str(other_process)).unlink()  # the other one finishes
    assert budget.update() == 4


def test_environment_forces_or_caps(tmp_path, other_process, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert ThreadBudget(tmp_path, cores=4).update() == 1, "OMP_NUM_THREADS caps the share"
    monkeypatch.setenv(device.THREADS_ENV, "3")
    (tmp_path / str(other_process)).touch()
    assert ThreadBudget(tmp_path, cores=4).update() == 3, "SPECTRAL_THREADS forces, no sharing"
    monkeypatch.setenv(device.THREADS_ENV, "many")
    with pytest.raises(ValueError, match="SPECTRAL_THREADS must be a positive integer"):
        ThreadBudget(tmp_path, cores=4).update()


def test_adapt_threads_uses_the_registry_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(device.THREADS_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(device, "_BUDGET", None)
    threads = device.adapt_threads(force=True)
    assert threads == min(device.available_cores(), threads) >= 1
    assert (tmp_path / str(os.getpid())).exists()
    device.release_threads()
    assert not (tmp_path / str(os.getpid())).exists()


def test_available_cores_is_at_least_one_and_at_most_the_affinity():
    cores = device.available_cores()
    assert 1 <= cores <= (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
