#!/usr/bin/env python3
"""Run the project's own benchmarks, one process each, and print their JSON lines.

    python benchmarks/run.py [--ops N]                      # `make bench`
    python benchmarks/run.py [--ops N] --compiled DIR       # `make bench-compiled`

- ``bench_book.py``: the order book alone (1,000,000 ops by default);
- ``bench_state_machine.py``: the whole state machine (1,000,000 orders over 1,000 accounts and
  three markets, blocks of 1,000, a state hash per block);
- ``bench_maker_rewards.py``: what maker-reward sampling costs the state machine (50,000 orders,
  rewards off against on: valgrind instruction counts when installed, and interleaved timings);
- ``bench_liquidation.py``: the end-of-block liquidation step after a 20% oracle drop, 100,000
  subaccounts with 5 positions each, 10% of them liquidatable;
- ``bench_stress.py``: the stress fast path (account-steps/s) and the default gate sweep
  (1,000 scenarios x 10,000 accounts);
- ``bench_api.py``: signed orders through HTTP on loopback (a ``bastion node`` process, the batch
  endpoint, 250 ms blocks): accepted/s, committed/s and p50/p99 submit-to-commit latency.

With ``--compiled DIR`` (a build of ``build_compiled.py``) only the state machine runs, first on the
pure-Python core, then on the compiled one from DIR, and the exit status is non-zero unless both
runs end in the same state hash.

The side-by-side comparison with PyPI order books is `make bench-compare` (an external harness, see
benchmarks/README.md).
Record new figures in docs/benchmarks.md with the command, date and machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--compiled", type=Path, metavar="DIR", help="compare the pure core with the build in DIR")
    args = parser.parse_args()
    if args.compiled:
        sys.exit(compare_compiled(args.ops, args.compiled))
    env_path = str(HERE.parent / "src")
    runs = [["bench_book.py", "--ops", str(args.ops)], ["bench_state_machine.py", "--ops", str(args.ops)],
            ["bench_maker_rewards.py", "--ops", "50000"],
            ["bench_liquidation.py", "--check"], ["bench_stress.py"], ["bench_api.py"]]
    for script, *options in runs:
        command = [sys.executable, str(HERE / script), *options]
        print(f"$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})


def compare_compiled(ops: int, build_dir: Path) -> int:
    """Run the state machine on the pure core, then on the compiled one; 0 if both end in the same state."""
    reports = []
    for path in (HERE.parent / "src", build_dir.resolve()):
        command = [sys.executable, str(HERE / "bench_state_machine.py"), "--ops", str(ops)]
        print(f"$ BASTION_PATH={path} {' '.join(command[1:])}", file=sys.stderr, flush=True)
        env = {"BASTION_PATH": str(path), "PATH": "/usr/bin:/bin"}
        line = subprocess.run(command, check=True, env=env, capture_output=True, text=True).stdout
        print(line, end="", flush=True)
        reports.append(json.loads(line))
    pure, compiled = reports
    if not compiled["compiled"]:
        print(f"error: {build_dir} holds no compiled core (run build_compiled.py)", file=sys.stderr)
        return 1
    if pure["state_hash"] != compiled["state_hash"]:
        print(f"error: state hashes differ: pure {pure['state_hash']}, compiled {compiled['state_hash']}",
              file=sys.stderr)
        return 1
    print(f"same state hash; compiled/pure throughput: {compiled['orders_per_s'] / pure['orders_per_s']:.2f}x",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    main()
