#!/usr/bin/env python3
"""Run the project's own benchmarks, one process each, and print their JSON lines.

    python benchmarks/run.py [--ops N]      # `make bench`

- ``bench_book.py``: the order book alone (1,000,000 ops by default);
- ``bench_state_machine.py``: the whole state machine (1,000,000 orders over 1,000 accounts and
  three markets, blocks of 1,000, a state hash per block).

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
    for script in ("bench_book.py", "bench_state_machine.py"):
        command = [sys.executable, str(HERE / script), "--ops", str(args.ops)]
        print(f"$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})


if __name__ == "__main__":
    main()
