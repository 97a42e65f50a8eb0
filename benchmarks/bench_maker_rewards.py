#!/usr/bin/env python3
"""What maker-reward sampling costs the state machine: rewards off against rewards on, same workload.

    PYTHONPATH=src python benchmarks/bench_maker_rewards.py [--ops 50000] [--rounds 8] [--sample-interval 10]
                                                            [--no-instructions]

The workload is ``bench_state_machine.py``'s (three markets, 1,000 accounts, blocks of 1,000
messages, a state hash per block); "on" is its ``--maker-rewards`` genesis (20% of the fees to the
pool, a sample of every book every ``--sample-interval`` blocks, 100-block epochs). Three measures,
one JSON line each:

* ``timing``: ``--rounds`` pairs of ``bench_state_machine.py`` processes, off and on, the order
  within a pair alternating, both processes of a pair with the same ``PYTHONHASHSEED`` (so their
  dictionaries are laid out alike); orders per CPU second of each, the medians, and the median of
  the pairs' relative costs. On a shared virtual machine single runs wander by several percent, so
  read the medians.
* ``interleaved``: one process holds four states, rewards off, on, off again and on again (the
  repeats are the control: they show the method's own bias), and applies every block to each in
  turn, the order rotating from block to block; each block's CPU time counts to its state, minus
  the time the garbage collector ran inside it (a collection scans all four states, so it would
  land on whichever state happened to cross the threshold; its total is reported apart). This is
  the steadiest timing on a shared machine.
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


def interleaved(ops: int, interval: int) -> dict:
    """Four states (off, on, off, on) over the same blocks in turn (see the module docstring)."""
    import gc
    import time

    from bench_state_machine import block_nonces, generate, make_genesis

    from bastion.core.genesis import build_state
    from bastion.core.transition import apply_block

    blocks = generate(ops, 1_000, 1_000)
    nonces = block_nonces(blocks)
    flags = (False, True, False, True)
    states = [build_state(make_genesis(1_000, on, interval, 100)) for on in flags]
    start_ms = states[0].time_ms
    collecting = [0.0, 0.0]   # [time spent collecting in the current block, when the running one started]

    def on_gc(phase: str, _info: dict) -> None:
        if phase == "start":
            collecting[1] = time.process_time()
        else:
            collecting[0] += time.process_time() - collecting[1]

    cpu = [0.0] * len(states)
    gc_total = 0.0
    gc.collect()
    gc.callbacks.append(on_gc)
    try:
        for height, txs in enumerate(blocks, start=1):
            turn = height % len(states)
            for which in [*range(turn, len(states)), *range(turn)]:
                collecting[0] = 0.0
                t0 = time.process_time()
                apply_block(states[which], start_ms + height * 250, txs, nonces[height - 1])
                cpu[which] += time.process_time() - t0 - collecting[0]
                gc_total += collecting[0]
    finally:
        gc.callbacks.remove(on_gc)
    off, on, off_again, on_again = (ops / seconds for seconds in cpu)
    mean_off = (off + off_again) / 2
    return {"measure": "interleaved", "ops": ops, "sample_interval": interval,
            "orders_per_cpu_s": {"off": round(off), "on": round(on), "off_again": round(off_again),
                                 "on_again": round(on_again)},
            "cost_pct": round((mean_off - (on + on_again) / 2) / mean_off * 100, 2),
            "control_off_pct": round((off - off_again) / mean_off * 100, 2),
            "gc_seconds_all_states": round(gc_total, 3),
            "repeats_agree": [state.state_hash for state in states[:2]] == [state.state_hash for state in states[2:]],
            "rewards_paid": states[1].maker_rewards.paid_total}


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
    print(json.dumps(interleaved(args.ops, args.sample_interval)), flush=True)
    if args.rounds > 0:
        print(json.dumps(timing(args.ops, args.rounds, args.sample_interval)), flush=True)


if __name__ == "__main__":
    main()
