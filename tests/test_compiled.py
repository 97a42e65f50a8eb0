"""The optional mypyc build of the core behaves exactly like the pure-Python reference.

The build (``benchmarks/build_compiled.py``, ~20-40 s of C compilation on the 2-core benchmark
machine) goes to a temporary directory; every golden scenario then runs there in a subprocess and
its whole output (results, events, per-block state hashes, final state) must equal the pure run's.

Opt-in, because ``make test`` must never compile anything: set ``BASTION_TEST_COMPILED=1`` and use
an interpreter with the ``compiled`` extra (``make test-compiled`` does both).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.scenario import run_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_FILES = sorted((ROOT / "tests" / "scenarios").glob("*.json"))

# Runs in the subprocess, with the compiled build first on sys.path: one JSON line per scenario.
RUNNER = """
import json, sys
import bastion.core.orders
from bastion.scenario import run_scenario
if bastion.core.orders.__file__.endswith(".py"):
    sys.exit("the compiled core was not loaded: " + bastion.core.orders.__file__)
for path in sys.argv[1:]:
    print(json.dumps(run_scenario(json.load(open(path)))))
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("BASTION_TEST_COMPILED"),
                       reason="builds the core with mypyc (~30 s): set BASTION_TEST_COMPILED=1 (make test-compiled)"),
]


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mypyc") is None:
        pytest.fail("BASTION_TEST_COMPILED is set but mypyc is missing: pip install '.[compiled]'")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from build_compiled import build
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return build(tmp_path_factory.mktemp("compiled"), quiet=True)


def test_golden_scenarios_give_the_same_output_compiled_and_pure(compiled_dir: Path) -> None:
    # Arrange: the pure outputs, in this process (JSON round trip, as the subprocess prints them)
    expected = [json.loads(json.dumps(run_scenario(json.loads(p.read_text())))) for p in SCENARIO_FILES]

    # Act
    completed = subprocess.run([sys.executable, "-c", RUNNER, *map(str, SCENARIO_FILES)], cwd=compiled_dir,
                               env={**os.environ, "PYTHONPATH": str(compiled_dir)}, capture_output=True, text=True)

    # Assert
    assert completed.returncode == 0, completed.stderr
    outputs = [json.loads(line) for line in completed.stdout.splitlines()]
    assert len(outputs) == len(SCENARIO_FILES)
    for path, pure, compiled in zip(SCENARIO_FILES, expected, outputs):
        assert [b["state_hash"] for b in compiled["blocks"]] == [b["state_hash"] for b in pure["blocks"]], path.stem
        assert compiled == pure, path.stem
