#!/usr/bin/env python3
"""What maker-reward sampling costs the state machine: rewards off against rewards on, same workload.

    PYTHONPATH=src python benchmarks/bench_maker_rewards.py [--ops 50000] [--rounds 8] [--sample-interval 10]
                                                            [--no-instructions]

The workload is ``bench_state_machine.py``'s (three markets, 1,000 accounts, blocks of 1,000
messages, a state hash per block); "on" is its ``--maker-rewards`` genesis (20% of the fees to the
pool, a sample of every book every ``--sample-interval`` blocks, 100-block epochs). Two measures,
one JSON line each:

* ``timing``: ``--rounds`` pairs of ``bench_state_machine.py`` processes, off and on, the order
  within a pair alternating, both processes of a pair with the same ``PYTHONHASHSEED`` (so their
  dictionaries are laid out alike); orders per CPU second of each, the medians, and the median of
  the pairs' relative costs. On a shared virtual machine single runs wander by several percent, so
  read the medians.
* ``instructions`` (when valgrind is installed; ``--no-instructions`` skips it): the CPU
  instructions the process executes, counted by ``valgrind --tool=cachegrind``, for generating
  the workload alone, and for generating and applying it with rewards off and on. The applied part
  is the difference; the cost of rewards is the relative difference of the applied parts. The count
  is exact and the same from run to run (a fixed hash seed), so it shows costs far below the
  timing noise; it includes the garbage collector, but not what memory stalls add.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, os.environ.get("BASTION_PATH") or str(HERE.parent / "src"))


def timing(ops: int, rounds: int, interval: int) -> dict:
    """Interleaved off/on process pairs; orders per CPU second (see the module docstring)."""
    off: list[int] = []
    on: list[int] = []
    costs: list[float] = []
    for pair in range(rounds):
        got = {}
        for rewards in ((False, True) if pair % 2 == 0 else (True, False)):
            command = [sys.executable, str(HERE / "bench_state_machine.py"), "--ops", str(ops)]
            if rewards:
                command += ["--maker-rewards", "--sample-interval", str(interval)]
            env = {**os.environ, "PYTHONHASHSEED": str(pair + 1)}
            line = subprocess.run(command, check=True, env=env, capture_output=True, text=True).stdout
            got[rewards] = json.loads(line)["orders_per_cpu_s"]
        off.append(got[False])
        on.append(got[True])
        costs.append((got[False] - got[True]) / got[False] * 100)
    median_off, median_on = statistics.median(off), statistics.median(on)
    return {"measure": "timing", "ops": ops, "rounds": rounds, "sample_interval": interval,
            "orders_per_cpu_s_off": off, "orders_per_cpu_s_on": on,
            "median_off": round(median_off), "median_on": round(median_on),
            "cost_pct_of_medians": round((median_off - median_on) / median_off * 100, 2),
            "median_pair_cost_pct": round(statistics.median(costs), 2)}


def instructions(ops: int, interval: int) -> dict | None:
    """Instruction counts under cachegrind (see the module docstring); None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts = {}
    for mode in ("generate", "off", "on"):
        command = [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                   sys.executable, str(Path(__file__).resolve()), "--apply", mode, "--ops", str(ops),
                   "--sample-interval", str(interval)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        out = subprocess.run(command, check=True, env=env, capture_output=True, text=True).stderr
        found = re.search(r"I\s+refs:\s+([\d,]+)", out)
        if found is None:
            raise RuntimeError(f"no instruction count in valgrind's output:\n{out}")
        counts[mode] = int(found.group(1).replace(",", ""))
    applied_off = counts["off"] - counts["generate"]
    applied_on = counts["on"] - counts["generate"]
    return {"measure": "instructions", "ops": ops, "sample_interval": interval,
            "generate": counts["generate"], "applied_off": applied_off, "applied_on": applied_on,
            "cost_pct": round((applied_on - applied_off) / applied_off * 100, 2)}


def apply_only(mode: str, ops: int, interval: int) -> None:
    """The process valgrind counts: generate the workload and, unless ``mode`` is ``generate``,
    apply every block with rewards off or on (nothing timed, nothing printed)."""
    from bench_state_machine import block_nonces, generate, make_genesis

    from bastion.core.genesis import build_state
    from bastion.core.transition import apply_block

    blocks = generate(ops, 1_000, 1_000)
    nonces = block_nonces(blocks)
    if mode == "generate":
        return
    state = build_state(make_genesis(1_000, mode == "on", interval, 100))
    start_ms = state.time_ms
    for height, txs in enumerate(blocks, start=1):
        apply_block(state, start_ms + height * 250, txs, nonces[height - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=8, help="off/on process pairs for the timing (0: none)")
    parser.add_argument("--sample-interval", type=int, default=10, help="sample every N blocks (10: the default)")
    parser.add_argument("--no-instructions", action="store_true", help="skip the valgrind instruction count")
    parser.add_argument("--apply", choices=("generate", "off", "on"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.apply:
        apply_only(args.apply, args.ops, args.sample_interval)
        return
    if not args.no_instructions:
        counted = instructions(args.ops, args.sample_interval)
        print(json.dumps(counted if counted else {"measure": "instructions", "skipped": "valgrind not installed"}),
              flush=True)
    if args.rounds > 0:
        print(json.dumps(timing(args.ops, args.rounds, args.sample_interval)), flush=True)


if __name__ == "__main__":
    main()
