#!/usr/bin/env python
"""Measure a cpu-profile checkerboard training alone and beside a second one, with torch's default threads and
with the cooperative budget of :func:`spectral_lib.device.adapt_threads`.

    python scripts/measure_threads.py                     # the four cases, 60 s of training each
    python scripts/measure_threads.py --seconds 90 --cases default:1 budget:2

Each case starts 1 or 2 worker processes at once; every worker trains the checkerboard ``cpu`` configuration
(no checkpoints) for ``--seconds`` and reports its steps per second (after a warm-up), its CPU time and its thread
count. ``default``: torch's own choice (every core, ``OMP_NUM_THREADS`` unset). ``budget``: ``adapt_threads()``
after every step (what the trainer does). The load average before and after each case is printed too: on a
shared machine, read the numbers as "under that load".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP_S = 5.0


def worker(mode: str, seconds: float) -> dict:
    import torch

    from spectral_lib.device import adapt_threads, release_threads
    from spectral_lib.experiments import train as train_mod
    from spectral_lib.experiments.profiles import get_profile

    class Stop(Exception):
        pass

    config = get_profile("checkerboard", "cpu").replace(steps=10**6, checkpoint_every=0, sample_every=0,
                                                        log_every=10**6)
    stamps: list[float] = []
    threads: list[int] = []
    start = time.perf_counter()

    def callback(state) -> None:
        if mode == "budget":
            adapt_threads()
        stamps.append(time.perf_counter())
        threads.append(torch.get_num_threads())
        if stamps[-1] - start > seconds:
            raise Stop

    if mode == "budget":
        adapt_threads(force=True)
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory() as out:
        try:
            train_mod.train(config, out, progress=False, callback=callback)
        except Stop:
            pass
    release_threads()
    cpu = time.process_time() - cpu0
    measured = [t for t in stamps if t - start >= WARMUP_S]
    rate = (len(measured) - 1) / (measured[-1] - measured[0]) if len(measured) > 1 else float("nan")
    return {"mode": mode, "steps": len(stamps), "steps_per_s": rate, "wall_s": stamps[-1] - start if stamps else 0.0,
            "cpu_s": cpu, "threads": sorted(set(threads))}


def run_case(mode: str, copies: int, seconds: float, registry: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SPECTRAL_THREADS")}
    env["SPECTRAL_THREADS_DIR"] = registry
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    load_before = os.getloadavg()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", mode, "--seconds", str(seconds)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"mode": mode, "copies": copies, "load_before": load_before, "load_after": os.getloadavg(),
            "workers": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="training time per worker")
    parser.add_argument("--cases", nargs="*", default=["default:1", "default:2", "budget:1", "budget:2"],
                        help="mode:copies, mode 'default' or 'budget'")
    parser.add_argument("--worker", choices=("default", "budget"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds)))
        return 0
    print(f"cores: {os.cpu_count()}, {args.seconds:.0f} s of training per worker (steps/s after {WARMUP_S:.0f} s)")
    with tempfile.TemporaryDirectory() as registry:
        for case in args.cases:
            mode, copies = case.split(":")
            result = run_case(mode, int(copies), args.seconds, registry)
            rates = ", ".join(f"{w['steps_per_s']:.2f}" for w in result["workers"])
            cpu = ", ".join(f"{w['cpu_s']:.0f}/{w['wall_s']:.0f} ({w['cpu_s'] / max(w['steps'], 1):.2f} per step)"
                            for w in result["workers"])
            threads = ", ".join("/".join(map(str, w["threads"])) for w in result["workers"])
            lb, la = result["load_before"], result["load_after"]
            total = sum(w["steps_per_s"] for w in result["workers"])
            print(f"{mode:8s} x{copies}: steps/s {rates} (total {total:.2f}) | CPU s / wall s {cpu} | "
                  f"threads {threads} | load avg (1 min) {lb[0]:.2f} -> {la[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
