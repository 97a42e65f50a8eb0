"""The adapters' import graph: the SDK stands alone, the web pages get the demo by injection, and
the API, web and node modules import each other without a loop.

Every ``import`` and ``from ... import`` in ``src/bastion`` counts, at module level or inside a
function (a lazy import hides a dependency, it does not remove it). ``from package import name``
counts as an import of ``package.name`` when that is a module, else of ``package``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "bastion"

# what the SDK may import of Bastion: itself, the signing and report-hash modules, and the core
SDK_ALLOWED = ("bastion.client", "bastion.signing", "bastion.reporthash", "bastion.core", "bastion.risk_model")
# the adapters checked for loops (modules of these packages, and any loop through one of them)
LOOP_FREE = ("bastion.api", "bastion.web", "bastion.node")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((SRC / ROOT).rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The Bastion modules ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import a.b.c`` of a name inside a module
                target = target.rpartition(".")[0]
            if target.startswith(ROOT) and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = find_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def inside(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (or a module importing itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(start: str) -> None:  # iterative, so deep graphs cannot overflow the recursion limit
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(components)


def test_the_sdk_imports_no_server_module(graph) -> None:
    """``bastion.client`` (and all it imports, transitively) stays within the SDK, the signing
    module, the report hash and the core: no API, web, node, stress or demo code."""
    outside = sorted(name for name in reachable(graph, "bastion.client") | {"bastion.client"}
                     if name != ROOT and not inside(name, SDK_ALLOWED))
    assert outside == []


def test_web_pages_do_not_import_the_demo(graph) -> None:
    """The web UI gets the demo's keys and bots through ``bastion.web.features.DemoFeatures``,
    never by importing ``bastion.demo`` (directly or through another module)."""
    web = sorted(name for name in graph if inside(name, ("bastion.web",)))
    assert "bastion.web.pages" in web
    leaks = {name: sorted(t for t in reachable(graph, name) if inside(t, ("bastion.demo",))) for name in web}
    assert {name: found for name, found in leaks.items() if found} == {}


def test_no_import_cycle_through_the_api_web_or_node(graph) -> None:
    """No loop of imports (module level or in functions) passes through a module of
    ``bastion.api``, ``bastion.web`` or ``bastion.node``."""
    # the check sees function-level imports (``bastion.cli.main`` imports the API inside a command)
    # and loops (a toy graph shaped like the old ``api.app -> web -> web.pages -> api.app``)
    assert "bastion.app" in graph["bastion.cli.main"]
    toy = {"a.app": {"a.web"}, "a.web": {"a.pages"}, "a.pages": {"a.app", "a.views"}, "a.views": set()}
    assert strongly_connected(toy) == [["a.app", "a.pages", "a.web"]]
    loops = [component for component in strongly_connected(graph)
             if any(inside(name, LOOP_FREE) for name in component)]
    assert loops == []
