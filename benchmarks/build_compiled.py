#!/usr/bin/env python3
"""Build an optional mypyc-compiled copy of the core, outside ``src/``.

    python benchmarks/build_compiled.py OUT_DIR        # `make bench-compiled` builds into build/compiled

Copies ``src/bastion`` to ``OUT_DIR/bastion`` and compiles ``COMPILED_MODULES`` there with mypyc
(the interpreter running this script must have the ``compiled`` extra: ``pip install '.[compiled]'``).
Put ``OUT_DIR`` first on ``sys.path`` to use it (``BASTION_PATH=OUT_DIR`` for the benchmark); the
pure-Python source in ``src/`` stays the reference and the default, and no extension module is ever
written next to it (it would shadow the Python files in the editable install). The extension
modules need nothing at run time but the interpreter they were built for (mypyc links its support
library in); mypy is needed only to build them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# The state machine and the risk model. Not compiled: genesis (once per chain), messages
# (``decode_message`` reads the dataclasses' annotation text, which mypyc replaces by classes) and
# everything outside the core (CLI, scenario runner).
COMPILED_MODULES = (
    "bastion/risk_model.py",
    "bastion/core/accounts.py",
    "bastion/core/book.py",
    "bastion/core/conditional.py",
    "bastion/core/errors.py",
    "bastion/core/funding.py",
    "bastion/core/governance/changes.py",
    "bastion/core/governance/dispatch.py",
    "bastion/core/governance/params_codec.py",
    "bastion/core/governance/proposals.py",
    "bastion/core/hashing.py",
    "bastion/core/leaves.py",
    "bastion/core/margin.py",
    "bastion/core/nonces.py",
    "bastion/core/liquidation.py",
    "bastion/core/oracle.py",
    "bastion/core/orders.py",
    "bastion/core/params.py",
    "bastion/core/state.py",
    "bastion/core/timefmt.py",
    "bastion/core/transition.py",
    "bastion/core/units.py",
    "bastion/core/votes.py",
)


def build(out_dir: Path, *, quiet: bool = False) -> Path:
    """Copy the package to ``out_dir`` and compile it there; returns ``out_dir``."""
    out_dir = out_dir.resolve()
    if out_dir == SRC or SRC in out_dir.parents:
        raise SystemExit(f"refusing to build inside {SRC}: extension modules there would shadow the source")
    target = out_dir / "bastion"
    for stale in (target, out_dir / "build"):  # a previous build's copy and mypyc's C sources
        if stale.exists():
            shutil.rmtree(stale)
    for stale_library in out_dir.glob("*__mypyc*"):
        stale_library.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SRC / "bastion", target, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    env = dict(os.environ, MYPYC_OPT_LEVEL=os.environ.get("MYPYC_OPT_LEVEL", "3"))
    subprocess.run([sys.executable, "-m", "mypyc", *COMPILED_MODULES], cwd=out_dir, env=env, check=True,
                   stdout=subprocess.DEVNULL if quiet else None)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    print(build(args.out_dir))


if __name__ == "__main__":
    main()
