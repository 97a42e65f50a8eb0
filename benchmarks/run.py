#!/usr/bin/env python3
"""Run the project's own benchmarks, one process each, and print their JSON lines.

    python benchmarks/run.py [--ops N]      # `make bench`

- ``bench_book.py``: the order book alone (1,000,000 ops by default);
- ``bench_state_machine.py``: the whole state machine (1,000,000 orders over 1,000 accounts and
  three markets, blocks of 1,000, a state hash per block);
- ``bench_liquidation.py``: the end-of-block liquidation step after a 20% oracle drop, 100,000
  subaccounts with 5 positions each, 10% of them liquidatable.

The side-by-side comparison with PyPI order books is `make bench-compare` (../shared/bench).
Record new figures in docs/benchmarks.md with the command, date and machine.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    args = parser.parse_args()
    env_path = str(HERE.parent / "src")
    runs = [["bench_book.py", "--ops", str(args.ops)], ["bench_state_machine.py", "--ops", str(args.ops)],
            ["bench_liquidation.py", "--check"]]
    for script, *options in runs:
        command = [sys.executable, str(HERE / script), *options]
        print(f"$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})


if __name__ == "__main__":
    main()
