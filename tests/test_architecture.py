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

The import graph of the whole of ``src/bastion`` (module-level and function-level imports alike:
a lazy import is still a dependency) has no cycle and no import that goes up the layers listed in
the README's "Layers" section (``KNOWN_CYCLES`` and ``KNOWN_UPWARD`` list today's exceptions).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
CORE = SRC / "bastion" / "core"
PURE_MODULES = sorted(CORE.rglob("*.py")) + [SRC / "bastion" / "risk_model.py"]  # a core package stays checked

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
    package = ".".join(path.parent.relative_to(SRC).parts)
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


# ---------------------------------------------------------------------------- import cycles and layers
BASTION = SRC / "bastion"
README = SRC.parent / "README.md"

# Import cycles allowed: none (issue 15 took apart the governance and adapter loops). The test demands
# this set to be exact, so a new cycle fails; each entry would be one strongly connected component.
KNOWN_CYCLES: set[frozenset[str]] = set()
# Imports that go up the README's layers, (importer, imported); same rule: exact. None: the HTTP app
# that puts the API's routers and the pages together is ``bastion.app``, a layer above both.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def module_names(root: Path = BASTION) -> dict[str, tuple[Path, bool]]:
    """Every module under ``root`` by dotted name: (its file, whether it is a package's ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def imported_modules(source: str, module: str, is_package: bool, known: set[str] | dict[str, object]) -> set[str]:
    """The modules of ``known`` that ``source`` (the text of ``module``) imports, wherever the import
    statement stands (top level, function, class, ``if``): ``import a.b``, ``from a import b`` (the
    submodule ``a.b`` when it is one, else ``a``) and relative imports, each resolved to the longest
    known module name."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(root: Path = BASTION) -> dict[str, set[str]]:
    """Module -> the first-party modules it imports (see ``imported_modules``)."""
    modules = module_names(root)
    return {name: imported_modules(path.read_text(encoding="utf-8"), name, is_package, modules)
            for name, (path, is_package) in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = set()
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.add(frozenset(component))
    return cycles


def read_layers(readme: str) -> dict[str, int]:
    """The README's layer list: top-level part of ``bastion`` (``bastion`` itself for the package's
    ``__init__``) -> its layer number, from the numbered list after the ``<!-- layers`` marker."""
    lines = readme.split("<!-- layers", 1)[1].splitlines()[1:]
    layers = {}
    for line in lines:
        entry = re.match(r"(\d+)\. (.*?):", line)
        if entry is None:
            break
        for name in re.findall(r"`([a-z_]+)`", entry.group(2)):
            layers[name] = int(entry.group(1))
    return layers


def layer_part(module: str) -> str:
    """``bastion.api.app`` -> ``api``; ``bastion`` -> ``bastion``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def upward_imports(graph: dict[str, set[str]], layers: dict[str, int]) -> set[tuple[str, str]]:
    """Every (importer, imported) whose imported module stands on a higher layer than the importer."""
    return {(module, target) for module, targets in graph.items() for target in targets
            if layers[layer_part(target)] > layers[layer_part(module)]}


def test_the_import_graph_is_complete():
    graph = import_graph()

    assert {"bastion.core.transition", "bastion.app", "bastion.node.node", "bastion.cli.main"} <= set(graph)
    assert "bastion.core.orders" in graph["bastion.core.transition"]
    assert "bastion.node.replay" in graph["bastion.node.node"]  # a lazy import inside a method counts


def test_no_import_cycle_beyond_the_known_ones():
    cycles = find_cycles(import_graph())

    new = [sorted(cycle) for cycle in cycles - KNOWN_CYCLES]
    gone = [sorted(cycle) for cycle in KNOWN_CYCLES - cycles]
    assert new == [], f"import cycles (modules that import each other, directly or around a loop): {new}"
    assert gone == [], f"no longer cycles: remove them from KNOWN_CYCLES: {gone}"


def test_every_module_stands_on_a_layer_of_the_readme():
    layers = read_layers(README.read_text(encoding="utf-8"))

    missing = sorted({layer_part(module) for module in import_graph()} - set(layers))
    assert missing == [], f"add these to the README's Layers list: {missing}"
    assert layers["core"] > layers["risk_model"] and layers["cli"] > layers["api"] > layers["node"] > layers["core"]


def test_no_upward_import_beyond_the_known_ones():
    upward = upward_imports(import_graph(), read_layers(README.read_text(encoding="utf-8")))

    new, gone = sorted(upward - KNOWN_UPWARD), sorted(KNOWN_UPWARD - upward)
    assert new == [], f"imports going up the README's layers (importer, imported): {new}"
    assert gone == [], f"no longer upward: remove them from KNOWN_UPWARD: {gone}"


# the graph checker on small made-up packages, so that a broken checker cannot pass silently
KNOWN = {"bastion", "bastion.core", "bastion.core.book", "bastion.core.orders", "bastion.api", "bastion.api.app"}


@pytest.mark.parametrize(("source", "expected"), [
    ("import bastion.core.book", {"bastion.core.book"}),
    ("from bastion.core import book", {"bastion.core.book"}),
    ("from bastion.core.book import Book, BUY", {"bastion.core.book"}),
    ("from bastion.core import Thing", {"bastion.core"}),
    ("from . import book", {"bastion.core.book"}),
    ("from .book import Book", {"bastion.core.book"}),
    ("from ..api.app import create_app", {"bastion.api.app"}),
    ("import json\nfrom fastapi import FastAPI", set()),
    ("def later():\n    from bastion.api.app import create_app\n    return create_app", {"bastion.api.app"}),
    ("class A:\n    def m(self):\n        import bastion.api.app", {"bastion.api.app"}),
    ("if FLAG:\n    from bastion.api import app", {"bastion.api.app"}),
])
def test_checker_finds_every_import(source, expected):
    assert imported_modules(source, "bastion.core.orders", False, KNOWN) == expected


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, set()),
    ({"a": {"b"}, "b": {"a"}}, {frozenset({"a", "b"})}),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, {frozenset({"a", "b", "c"})}),
    ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c", "a"}}, {frozenset({"a", "b"}), frozenset({"c", "d"})}),
])
def test_checker_finds_cycles(graph, expected):
    assert find_cycles(graph) == expected


def test_checker_reads_layers_and_flags_upward_imports():
    readme = ("# x\n<!-- layers: lowest first -->\n1. `bastion`, `risk_model`: base\n2. `core`: machine\n"
              "3. `api`: adapters\n\nafter the list, `web`: not a layer\n")
    layers = read_layers(readme)
    graph = {"bastion.core.orders": {"bastion.risk_model", "bastion.api.app"}, "bastion.api.app": {"bastion.core"},
             "bastion.risk_model": {"bastion"}}

    assert layers == {"bastion": 1, "risk_model": 1, "core": 2, "api": 3}
    assert upward_imports(graph, layers) == {("bastion.core.orders", "bastion.api.app")}
