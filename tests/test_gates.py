"""The gates that ``make test`` (and so CI) runs besides the behaviour tests (issue 15):

* ruff over ``src/ tests/ benchmarks/ scripts/`` with the rule set of ``[tool.ruff]`` in pyproject.toml:
  no finding;
* mypy with ``[tool.mypy]``: strict on ``bastion.core`` and ``bastion.risk_model``, normal checking
  elsewhere: no error;
* ``docs/errors.md``, the error-code catalogue, is what ``scripts/errors_doc.py`` generates from the
  source today, and every code is snake_case;
* every public function, class and method of the core has a docstring, and each message handler's
  docstring names the codes that its own module raises on its way.

Every core module is held to all of it, the governance package (``bastion.core.governance``) and the
modules beside it (``guardian``, ``votes``, ``twap``) included: no module is exempt.
"""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "src" / "bastion" / "core"

_spec = importlib.util.spec_from_file_location("errors_doc", ROOT / "scripts" / "errors_doc.py")
errors_doc = sys.modules["errors_doc"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(errors_doc)

def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


# ------------------------------------------------------------------------------------------ ruff, mypy
def test_ruff_finds_nothing():
    result = run_tool("ruff", "check", "src", "tests", "benchmarks", "scripts")

    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_error():
    result = run_tool("mypy")

    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------ the error catalogue
def test_the_error_catalogue_is_current():
    expected = errors_doc.render()

    assert errors_doc.OUTPUT.read_text(encoding="utf-8") == expected, \
        "docs/errors.md is stale: run python scripts/errors_doc.py"


def test_every_error_code_is_snake_case_and_listed():
    codes = {site.code for site in errors_doc.raise_sites(errors_doc.load_modules())}
    listed = set()
    for line in errors_doc.OUTPUT.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            listed.add(line.split("`")[1])

    assert len(codes) > 100  # the walk found the codes (there are well over a hundred)
    assert sorted(code for code in codes if not errors_doc.CODE_PATTERN.fullmatch(code)) == []
    assert listed == codes


def test_the_catalogue_finds_every_way_a_code_is_written(tmp_path):
    module = tmp_path / "bastion" / "sample.py"
    module.parent.mkdir()
    module.write_text('''
from bastion.core.errors import ProtocolError
TABLE = {"title": (10, "title_too_long"), "reason": (20, "reason_too_long")}

def literal():
    raise ProtocolError("plain_code", f"value {x} is wrong", field="x")

def chosen(pool):
    code = "insufficient_treasury" if pool == "treasury" else "insufficient_insurance_fund"
    raise ProtocolError(code, "not enough")

def check_text(value, *, code="text_too_long"):
    raise ProtocolError(code, "too long")

def check_field(name, value):
    limit, code = TABLE.get(name, (5, "field_too_long"))
    check_text(value, code=code)

def written():
    return {"code": "node_stopped", "message": "stopped"}

def reraised(error):
    raise ProtocolError(error.code, error.message)
''', encoding="utf-8")
    info = errors_doc.ModuleInfo("bastion.sample", module, False)
    sites = {(site.code, site.function, site.message) for site in errors_doc._module_sites(info)}

    assert sites == {
        ("plain_code", "literal", "value {x} is wrong"),
        ("insufficient_treasury", "chosen", "not enough"), ("insufficient_insurance_fund", "chosen", "not enough"),
        ("text_too_long", "check_text", "too long"), ("field_too_long", "check_text", "too long"),
        ("title_too_long", "check_text", "too long"), ("reason_too_long", "check_text", "too long"),
        ("node_stopped", "written", "stopped"),
    }


def test_the_catalogue_names_what_can_raise_a_code():
    rows = {line.split("`")[1]: line for line in errors_doc.OUTPUT.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")}

    assert "`place_order`" in rows["post_only_would_cross"] and "`withdraw`" not in rows["post_only_would_cross"]
    assert "`(every transaction)`" in rows["nonce_used"]
    assert "`(decoding)`" in rows["unknown_message_type"]


# ------------------------------------------------------------------------------------------- docstrings
def public_definitions(path: Path) -> list[tuple[str, ast.AST]]:
    """(name, node) of each public top-level function and class and of each public method of those classes."""
    found: list[tuple[str, ast.AST]] = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            found.append((node.name, node))
            if isinstance(node, ast.ClassDef):
                found += [(f"{node.name}.{item.name}", item) for item in node.body
                          if isinstance(item, ast.FunctionDef) and not item.name.startswith("_")]
    return found


DOCUMENTED = sorted(CORE.rglob("*.py")) + [
    ROOT / "src" / "bastion" / "risk_model.py"]


@pytest.mark.parametrize("path", DOCUMENTED, ids=lambda path: path.name)
def test_every_public_core_definition_has_a_docstring(path):
    missing = [name for name, node in public_definitions(path) if ast.get_docstring(node) is None]

    assert missing == [], f"{path.name}: no docstring for {missing}"


def test_each_handler_names_the_codes_it_raises():
    sys.path.insert(0, str(ROOT / "src"))
    from bastion.core.transition import HANDLERS

    modules = errors_doc.load_modules()
    graph = errors_doc.call_graph(modules)
    sites = errors_doc.raise_sites(modules)
    checked, problems = 0, []
    for handler in HANDLERS.values():
        module = handler.__module__
        reached, todo = set(), [f"{module}.{handler.__qualname__}"]
        while todo:  # the handler and what it calls in its own module
            name = todo.pop()
            if name not in reached and name.startswith(module + "."):
                reached.add(name)
                todo.extend(graph.get(name, ()))
        codes = sorted({site.code for site in sites if f"{site.module}.{site.function}" in reached})
        missing = [code for code in codes if f"``{code}``" not in (handler.__doc__ or "")]
        checked += 1
        if missing:
            problems.append(f"{module}.{handler.__qualname__}: {missing}")

    assert checked >= 9  # deposit, withdraw, transfer, the order handlers, leverage, margin mode, oracle
    assert problems == []
