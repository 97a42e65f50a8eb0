"""``bastion.core.governance`` stands on floors (docs/governance.md, "The package and its floors").

Every module of the package is parsed:

* it imports governance modules only from floors below its own (``FLOORS``; the package's
  ``__init__`` re-exports and may import any of them), so the package has no import loop;
* no module of the core imports inside a function (no lazy import dodging a loop);
* no governance module reads another module's private name (``module._name`` or
  ``from module import _name``);
* outside the package, the core imports governance only from the modules above it (``transition``,
  ``transparency``, ``genesis``): the floors below governance stay below it.

The checker also runs on small bad snippets, so a broken checker cannot pass silently.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "src" / "bastion" / "core"
PACKAGE = "bastion.core.governance"
FLOORS = {
    "changes": 1,
    "params_codec": 2, "council_rules": 2, "proposal_guards": 2, "dispute_params": 2,
    "actions": 3, "ui_rules": 3,
    "rollout": 4,
    "dispatch": 5,
    "classify": 6,
    "proposals": 7,
    "council": 8,
    "dispute_votes": 8,
    "counter_reports": 8,
}
ABOVE_GOVERNANCE = {"transition", "transparency", "genesis"}   # core modules that may import governance


def governance_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """``(line, submodule)`` for every import of a governance submodule (or of the package itself: "")."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == PACKAGE:
                found += [(node.lineno, alias.name if alias.name in FLOORS else "") for alias in node.names]
            elif node.module.startswith(PACKAGE + "."):
                found.append((node.lineno, node.module.removeprefix(PACKAGE + ".").split(".")[0]))
            elif node.module == "bastion.core" and any(alias.name == "governance" for alias in node.names):
                found.append((node.lineno, ""))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.removeprefix(PACKAGE).lstrip(".").split(".")[0])
                      for alias in node.names if alias.name == PACKAGE or alias.name.startswith(PACKAGE + ".")]
    return found


def floor_violations(source: str, module: str) -> list[str]:
    """Imports of a governance module from its own floor or above (the package itself counts as the top)."""
    own = FLOORS[module]
    violations = []
    for line, target in governance_imports(ast.parse(source)):
        floor = FLOORS.get(target, max(FLOORS.values()) + 1)
        if floor >= own:
            violations.append(f"line {line}: {module} (floor {own}) imports {target or PACKAGE} (floor {floor})")
    return violations


def lazy_imports(source: str) -> list[str]:
    """Imports inside a function or class body."""
    violations = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    violations.append(f"line {inner.lineno}: import inside {node.name}")
    return violations


def private_reads(source: str) -> list[str]:
    """``module._name`` of an imported module, or ``from module import _name``."""
    tree = ast.parse(source)
    modules = set()
    violations = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and alias.name != "__future__":
                    violations.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                if node.module in ("bastion.core", PACKAGE):  # submodules imported by name
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in modules):
            violations.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return violations


def test_every_governance_module_has_a_floor():
    modules = {path.stem for path in (CORE / "governance").glob("*.py")} - {"__init__"}

    assert modules == set(FLOORS)


@pytest.mark.parametrize("module", sorted(FLOORS))
def test_a_governance_module_imports_only_from_lower_floors(module):
    source = (CORE / "governance" / f"{module}.py").read_text(encoding="utf-8")

    assert floor_violations(source, module) == []
    assert private_reads(source) == []


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda path: path.relative_to(CORE).as_posix())
def test_no_core_module_imports_inside_a_function(path):
    assert lazy_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda path: path.name)
def test_the_core_below_governance_does_not_import_it(path):
    if path.stem in ABOVE_GOVERNANCE:
        return
    assert governance_imports(ast.parse(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("from bastion.core.governance import proposals", "dispatch", "imports proposals"),
    ("from bastion.core.governance.dispatch import compute_action_changes", "actions", "imports dispatch"),
    ("from bastion.core.governance import rollout", "actions", "imports rollout"),      # same floor
    ("from bastion.core import governance", "changes", "imports bastion.core.governance"),
    ("import bastion.core.governance.council", "proposals", "imports council"),
])
def test_the_floor_checker_flags_upward_imports(source, module, expected):
    assert any(expected in violation for violation in floor_violations(source, module))


def test_the_other_checkers_flag_bad_code():
    assert lazy_imports("def f():\n    from bastion.core import genesis\n")
    assert private_reads("from bastion.core.governance import actions\nactions._debit({}, 'x', 1)\n")
    assert private_reads("from bastion.core.governance.actions import _debit\n")
    assert not private_reads("from bastion.core.governance import actions\nactions.apply_operation\n")
