"""The core stays pure (DESIGN.md section 1, STYLE.md "Layout shows the architecture").

Every module under ``src/bastion/core/`` and ``bastion.risk_model`` is parsed and its AST walked:

* imports: only the stdlib allow-list, ``bastion.core.*`` and ``bastion.risk_model`` (so no
  clock, randomness, logging, I/O, OS, threads, ``decimal``, and no adapter such as
  ``bastion.scenario`` or ``bastion.cli``);
* no float literal and no call of ``float()``;
* no builtin that reads the outside world or depends on the process (``open``, ``print``,
  ``input``, ``__import__``, ``eval``, ``exec``, ``hash`` - salted per process for strings -,
  ``id`` - memory addresses);
* no ``assert`` statement (rules must survive ``python -O``).

The checker is also run on small bad snippets, so that a broken checker cannot pass silently.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
CORE = SRC / "bastion" / "core"
PURE_MODULES = sorted(CORE.rglob("*.py")) + [SRC / "bastion" / "risk_model.py"]   # packages inside the core too

STDLIB_ALLOWED = {
    "__future__", "abc", "bisect", "collections", "collections.abc", "copy", "dataclasses", "enum", "fractions",
    "functools", "hashlib", "heapq", "itertools", "json", "operator", "re", "typing",
}
FIRST_PARTY_ALLOWED = ("bastion.core", "bastion.risk_model")
# Named explicitly so that the failure message says why (the allow-list rejects them anyway).
FORBIDDEN = {
    "time", "datetime", "random", "secrets", "uuid", "logging", "os", "sys", "io", "pathlib", "socket", "asyncio",
    "sqlite3", "threading", "multiprocessing", "subprocess", "decimal", "importlib", "tempfile", "shutil", "signal",
    "bastion.scenario", "bastion.cli", "bastion.node", "bastion.api", "bastion.store", "bastion.web",
    "bastion.stress", "bastion.client",
}
FORBIDDEN_CALLS = {"float", "open", "print", "input", "__import__", "eval", "exec", "compile", "breakpoint", "hash",
                   "id", "globals", "vars"}


def is_allowed_import(module: str) -> bool:
    if any(module == name or module.startswith(name + ".") for name in FORBIDDEN):
        return False
    if any(module == name or module.startswith(name + ".") for name in FIRST_PARTY_ALLOWED):
        return True
    return module in STDLIB_ALLOWED


def find_violations(source: str, *, package: str = "bastion.core") -> list[str]:
    """Every rule the source breaks, as ``"line N: what"``."""
    violations = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not is_allowed_import(alias.name):
                    violations.append(f"{where}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative import: resolve against the package
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                module = f"{base}.{module}" if module else base
            # ``from bastion import risk_model`` imports the module bastion.risk_model
            if not is_allowed_import(module) and not all(is_allowed_import(f"{module}.{alias.name}")
                                                         for alias in node.names):
                names = ", ".join(alias.name for alias in node.names)
                violations.append(f"{where}: from {module} import {names} (as {module}.{node.names[0].name})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            violations.append(f"{where}: float literal {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            violations.append(f"{where}: call of {node.func.id}()")
        elif isinstance(node, ast.Assert):
            violations.append(f"{where}: assert statement (use ProtocolError or InvariantViolation)")
    return violations


def test_the_pure_modules_are_all_found():
    names = {path.relative_to(SRC / "bastion").as_posix().removeprefix("core/") for path in PURE_MODULES}

    assert {"transition.py", "orders.py", "book.py", "margin.py", "hashing.py", "risk_model.py",
            "governance/changes.py", "governance/dispatch.py", "governance/proposals.py"} <= names


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda path: path.relative_to(SRC).as_posix())
def test_core_module_is_pure(path):
    package = ".".join(path.parent.relative_to(SRC).parts)      # bastion.core, bastion.core.governance, bastion
    violations = find_violations(path.read_text(encoding="utf-8"), package=package)

    assert violations == [], f"{path.relative_to(SRC)}: " + "; ".join(violations)


@pytest.mark.parametrize(("source", "expected"), [
    ("import time", "import time"),                                      # clock
    ("from datetime import datetime", "from datetime import"),           # clock
    ("import random", "import random"),                                  # randomness
    ("from uuid import uuid4", "from uuid import"),                      # randomness
    ("import logging", "import logging"),                                # logging from the core
    ("import os.path", "import os.path"),                                # OS / I/O
    ("from pathlib import Path", "from pathlib import"),                 # I/O
    ("import decimal", "import decimal"),                                # Decimal arithmetic
    ("import numpy", "import numpy"),                                    # not in the stdlib allow-list
    ("from bastion.scenario import run_scenario", "from bastion.scenario import"),  # an adapter
    ("from bastion.cli.main import app", "from bastion.cli.main import"),            # an adapter
    ("from .. import scenario", "bastion.scenario"),                     # relative import of an adapter
    ("from bastion import scenario", "bastion.scenario"),                # adapter imported as a name
    ("x = 0.5", "float literal"),                                        # float literal
    ("x = 1e3", "float literal"),                                        # float literal in exponent form
    ("x = float('1')", "call of float()"),                               # float()
    ("open('state.json')", "call of open()"),                            # I/O
    ("print(1)", "call of print()"),                                     # output
    ("key = hash('BTC-USD')", "call of hash()"),                         # salted per process
    ("assert x > 0", "assert statement"),                                # stripped by python -O
])
def test_checker_flags_impure_code(source, expected):
    violations = find_violations(source, package="bastion.core")

    assert any(expected in violation for violation in violations), violations


@pytest.mark.parametrize("source", [
    "from fractions import Fraction",
    "from bastion.core.units import PPM",
    "from bastion.risk_model import notional",
    "from . import units",
    "from .book import Book",
    "from .. import risk_model",
    "from bastion import risk_model",
    "x = 10**6 // 3",
    "y = Fraction(1, 3)",
])
def test_checker_accepts_pure_code(source):
    assert find_violations(source, package="bastion.core") == []
