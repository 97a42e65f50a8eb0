"""The maker-reward benchmark runs end to end on a small workload (its figures are in docs/benchmarks.md;
nothing here is timed): the interleaved measure's repeated states end in the same state hash, and
the timing measure reads its child processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_maker_rewards_small_run() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_maker_rewards.py"), "--ops", "3000",
               "--rounds", "1", "--no-instructions", "--sample-interval", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(command, check=True, env=env, capture_output=True, text=True, timeout=300).stdout
    interleaved, timing = (json.loads(line) for line in out.splitlines())
    assert interleaved["measure"] == "interleaved" and interleaved["repeats_agree"] is True
    assert set(interleaved["orders_per_cpu_s"]) == {"off", "on", "off_again", "on_again"}
    assert timing["measure"] == "timing"
    assert len(timing["orders_per_cpu_s_off"]) == len(timing["orders_per_cpu_s_on"]) == 1
