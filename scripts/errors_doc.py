"""Generate ``docs/errors.md``, the catalogue of protocol error codes, from the source.

    python scripts/errors_doc.py           # rewrite docs/errors.md
    python scripts/errors_doc.py --check   # exit 1 if docs/errors.md is not what the source gives

Every ``ProtocolError("code", message, ...)`` in ``src/bastion`` is found by walking the syntax tree
of each module, and so is every refusal written as a literal ``{"code": "...", "message": ...}``; a
code held in a local name is followed to the literals it can hold (``_codes_of``), and a code that
comes from another error (``error.code`` when re-raising) is no new code. Per code the catalogue
lists where it is raised (module and function), the message texts (f-string parts shown as
``{expression}``) and the entry points that can reach a raise site: each message type through its
handler in ``bastion.core.transition.HANDLERS``, plus decoding, the per-transaction checks, genesis
and the block's start (``EXTRA_ENTRIES``). Reachability is a static over-approximation: a function
reaches whatever it calls or names (directly, through a module-level table, or through
``self.method``), so "can raise" means "a path exists in the code".
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
OUTPUT = ROOT / "docs" / "errors.md"
CODE_PATTERN = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
# Entry points that are not a message's handler: (label, functions by dotted name).
EXTRA_ENTRIES = (
    ("(decoding)", ("bastion.core.messages.decode_message", "bastion.core.messages._Checked.__post_init__")),
    ("(every transaction)", ("bastion.core.nonces.use_nonce", "bastion.core.ante.check_ante")),
    ("(genesis)", ("bastion.core.genesis.build_state",)),
    ("(block start)", ("bastion.core.transition.begin_block",)),
)


@dataclass(frozen=True)
class RaiseSite:
    code: str
    module: str
    function: str  # dotted name inside the module ("" at module level)
    message: str


class ModuleInfo:
    """One module's definitions (functions, methods, module-level names), its imports and, per
    definition, the dotted names it calls or mentions."""

    def __init__(self, name: str, path: Path, is_package: bool) -> None:
        self.name = name
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.imports: dict[str, str] = {}  # local name -> dotted target (module or module.attribute)
        self.references: dict[str, set[str]] = {}  # definition -> local references ("f", "mod.f", "self.m")
        self.classes: dict[str, str] = {}  # definition -> its class ("" for functions)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[:len(package) - (node.level - 1)]
                    base = ".".join(package + ([base] if base else []))
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = f"{base}.{alias.name}"
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self._define(node.name, node, "")
            elif isinstance(node, ast.ClassDef):
                self._define(node.name, node, "")
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        self._define(f"{node.name}.{item.name}", item, node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and node.value is not None:
                        self._define(target.id, node.value, "")

    def _define(self, name: str, node: ast.AST, cls: str) -> None:
        found = set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                found.add(sub.id)
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
                found.add(f"{sub.value.id}.{sub.attr}")
        self.references[name] = found
        self.classes[name] = cls


def load_modules() -> dict[str, ModuleInfo]:
    modules = {}
    for path in sorted((SRC / "bastion").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = ModuleInfo(name, path, is_package)
    return modules


def call_graph(modules: dict[str, ModuleInfo]) -> dict[str, set[str]]:
    """Fully qualified definition -> the fully qualified definitions it references."""
    defined = {f"{m.name}.{d}" for m in modules.values() for d in m.references}

    def resolve(dotted: str, depth: int = 0) -> str | None:
        if dotted in defined:
            return dotted
        module, _, attr = dotted.rpartition(".")
        if depth < 8 and module in modules and attr in modules[module].imports:  # a re-export
            return resolve(modules[module].imports[attr], depth + 1)
        return None

    graph: dict[str, set[str]] = {}
    for m in modules.values():
        for name, refs in m.references.items():
            targets = set()
            for ref in refs:
                head, _, attr = ref.partition(".")
                candidates = []
                if head == "self" and attr and m.classes[name]:
                    candidates.append(f"{m.name}.{m.classes[name]}.{attr}")
                elif head in m.references and not attr:
                    candidates.append(f"{m.name}.{head}")
                elif head in m.imports:
                    candidates.append(m.imports[head] + (f".{attr}" if attr else ""))
                for candidate in candidates:
                    target = resolve(candidate)
                    if target is not None and target != f"{m.name}.{name}":
                        targets.add(target)
            graph[f"{m.name}.{name}"] = targets
    return graph


def _message_text(node: ast.expr | None) -> str:
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{" + ast.unparse(part.value) + "}"
                       for part in node.values if isinstance(part, ast.Constant | ast.FormattedValue))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _message_text(node.left) + _message_text(node.right)
    return "{" + ast.unparse(node) + "}"


def raise_sites(modules: dict[str, ModuleInfo]) -> list[RaiseSite]:
    """Every ``ProtocolError("literal code", ...)`` call, in module order."""
    return [site for m in modules.values() for site in _module_sites(m)]


def _module_sites(m: ModuleInfo) -> list[RaiseSite]:
    sites = []
    functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []

    def visit(node: ast.AST, scope: str, in_class: bool) -> None:
        # scope: the top-level function or class, or Class.method (nested definitions belong to it)
        for child in ast.iter_child_nodes(node):
            inner, inner_class = scope, False
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if not scope:
                    inner, inner_class = child.name, isinstance(child, ast.ClassDef)
                elif in_class and not isinstance(child, ast.ClassDef):
                    inner = f"{scope}.{child.name}"
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append(child)
            if isinstance(child, ast.Call) and _is_protocol_error(child.func) and child.args:
                message = _message_text(child.args[1] if len(child.args) > 1 else None)
                for code in _codes_of(child.args[0], functions[-1] if functions else None, m):
                    sites.append(RaiseSite(code, m.name, scope, message))
            elif isinstance(child, ast.Dict):  # a refusal written directly: {"code": "...", "message": ...}
                entries = {k.value: v for k, v in zip(child.keys, child.values)
                           if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                code_value = entries.get("code")
                if "message" in entries and isinstance(code_value, ast.Constant) and isinstance(code_value.value, str):
                    sites.append(RaiseSite(code_value.value, m.name, scope, _message_text(entries["message"])))
            visit(child, inner, inner_class)
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.pop()
    visit(m.tree, "", False)
    return sites


def _codes_of(expr: ast.expr, function: ast.FunctionDef | ast.AsyncFunctionDef | None, m: ModuleInfo,
              depth: int = 0) -> list[str]:
    """The literal codes an error's first argument can hold: a string literal; or a local name, through
    the string literals assigned to it in its function (``code = "a" if x else "b"``, or one element of
    a tuple taken from a module-level table of tuples), its parameter default and the literals (or
    local names, followed the same way) that callers in the same module pass for it by keyword. A code
    computed any other way (``error.code`` when re-raising) is no new code: nothing."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if not isinstance(expr, ast.Name) or function is None or depth > 3:
        return []
    name, codes = expr.id, []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and target.id == name:
                codes += _literals(value)
            elif isinstance(target, ast.Tuple) and any(isinstance(e, ast.Name) and e.id == name for e in target.elts):
                position = next(i for i, e in enumerate(target.elts) if isinstance(e, ast.Name) and e.id == name)
                codes += _tuple_codes(value, position, m)
    arguments = function.args
    positional = arguments.posonlyargs + arguments.args
    defaults = dict(zip([a.arg for a in positional][len(positional) - len(arguments.defaults):], arguments.defaults))
    defaults.update({a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None})
    if name in defaults or any(a.arg == name for a in positional + arguments.kwonlyargs):
        default = defaults.get(name)
        if isinstance(default, ast.Constant) and isinstance(default.value, str):
            codes.append(default.value)
        for caller in ast.walk(m.tree):
            if isinstance(caller, ast.FunctionDef | ast.AsyncFunctionDef):
                for call in ast.walk(caller):
                    if isinstance(call, ast.Call) and _called_name(call.func) == function.name:
                        for keyword in call.keywords:
                            if keyword.arg == name:
                                codes += _codes_of(keyword.value, caller, m, depth + 1)
    return list(dict.fromkeys(codes))


def _literals(expr: ast.expr) -> list[str]:
    """The string literals an expression evaluates to: a literal, either branch of ``a if c else b``."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.IfExp):
        return _literals(expr.body) + _literals(expr.orelse)
    return []


def _tuple_codes(value: ast.expr, position: int, m: ModuleInfo) -> list[str]:
    """String literals at ``position`` of the tuples ``value`` can give: a tuple literal, or
    ``TABLE.get(key, default)`` over a module-level dict of tuples."""
    tuples: list[ast.expr] = []
    if isinstance(value, ast.Tuple):
        tuples.append(value)
    elif isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "get":
        tuples += value.args[1:2]
        table = value.func.value
        if isinstance(table, ast.Name):
            for node in m.tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                    if isinstance(node, ast.AnnAssign) else []
                if any(isinstance(t, ast.Name) and t.id == table.id for t in targets) and \
                        isinstance(node.value, ast.Dict):
                    tuples += [v for v in node.value.values if v is not None]
    return [t.elts[position].value for t in tuples if isinstance(t, ast.Tuple) and len(t.elts) > position
            and isinstance(t.elts[position], ast.Constant) and isinstance(t.elts[position].value, str)]


def _called_name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _is_protocol_error(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "ProtocolError") or (
        isinstance(func, ast.Attribute) and func.attr == "ProtocolError")


def entry_points() -> list[tuple[str, tuple[str, ...]]]:
    """(label, functions) per message type, from the state machine's own dispatch table, then the extras."""
    sys.path.insert(0, str(SRC))
    from bastion.core.messages import MESSAGE_TYPES
    from bastion.core.transition import HANDLERS

    names = {cls: name for name, cls in MESSAGE_TYPES.items()}
    entries = [(names[cls], (f"{handler.__module__}.{handler.__qualname__}",))
               for cls, handler in HANDLERS.items()]
    return sorted(entries) + list(EXTRA_ENTRIES)


def reachers(graph: dict[str, set[str]], entries: list[tuple[str, tuple[str, ...]]]) -> dict[str, list[str]]:
    """Definition -> the labels of the entry points that reach it."""
    reached: dict[str, list[str]] = {}
    for label, starts in entries:
        for start in starts:
            if start not in graph:
                raise SystemExit(f"errors_doc: entry point {start} ({label}) not found; update EXTRA_ENTRIES")
        seen: set[str] = set()
        todo = list(starts)
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            todo.extend(graph.get(node, ()))
        for node in seen:
            reached.setdefault(node, []).append(label)
    return reached


def render() -> str:
    modules = load_modules()
    sites = raise_sites(modules)
    bad = sorted({s.code for s in sites if not CODE_PATTERN.fullmatch(s.code)})
    if bad:
        raise SystemExit(f"errors_doc: codes that are not snake_case: {bad}")
    reached = reachers(call_graph(modules), entry_points())
    by_code: dict[str, list[RaiseSite]] = {}
    for site in sites:
        by_code.setdefault(site.code, []).append(site)
    lines = [
        "# Error codes",
        "",
        ("<!-- Generated by `python scripts/errors_doc.py` from the source: do not edit by hand "
         "(tests/test_gates.py fails when it is stale). -->"),
        "",
        "A refused transaction, API request or input file carries a stable snake_case `code`, a human",
        "`message` and, where one field is at fault, its `field` (`bastion.core.errors.ProtocolError`); a",
        "refused transaction changes nothing. This catalogue lists every code raised in `src/bastion`: the",
        "module and function of each raise site, its message (parts filled in at run time in braces), and",
        "the entry points from which the code can be reached: a message type through its handler, or",
        "`(decoding)` for every message at intake, `(every transaction)` for the nonce and ante checks,",
        "`(genesis)` and `(block start)`. That last column comes from a static walk of the calls (a path",
        "exists in the code); codes without it are raised by the adapters (API, node, stress tester, CLI)",
        "or by the state machine's own helpers. Regenerate with `python scripts/errors_doc.py`.",
        "",
        f"{len(by_code)} codes, {len(sites)} raise sites.",
        "",
        "| code | raised in | message | can be raised by |",
        "| --- | --- | --- | --- |",
    ]
    for code in sorted(by_code):
        places, messages, entries = [], [], []
        for site in by_code[code]:
            place = f"`{site.module.removeprefix('bastion.')}`" + (f" `{site.function}`" if site.function else "")
            if place not in places:
                places.append(place)
            text = " ".join(site.message.split()).replace("|", "\\|")
            if text and text not in messages:
                messages.append(text)
            for label in reached.get(f"{site.module}.{site.function}", []):
                if label not in entries:
                    entries.append(label)
        lines.append(f"| `{code}` | {', '.join(places)} | {'; '.join(messages)} | "
                     f"{', '.join(f'`{e}`' for e in sorted(entries))} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/errors.md is stale instead of writing it")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print("docs/errors.md is stale: run python scripts/errors_doc.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
