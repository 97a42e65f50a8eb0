"""The adapters' import graph: the SDK stands alone and the web pages get the demo by injection.

The graph is ``test_architecture.import_graph``: every ``import`` in ``src/bastion``, at module level
or inside a function (a lazy import hides a dependency, it does not remove it). That file's test
also forbids every import cycle, the adapters' included.
"""
from __future__ import annotations

import pytest
from test_architecture import import_graph

ROOT = "bastion"

# what the SDK may import of Bastion: itself, the signing and report-hash modules, the core and its
# pure risk formulas
SDK_ALLOWED = ("bastion.client", "bastion.signing", "bastion.reporthash", "bastion.core", "bastion.risk_model")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


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
