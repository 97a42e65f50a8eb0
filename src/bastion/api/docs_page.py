"""``GET /docs``: the API reference as one self-contained HTML page, rendered by the node from its
own OpenAPI schema (``GET /openapi.json``).

FastAPI's default ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN, so they are blank
on a machine without internet access, and need an inline script. This page needs neither: it is
server-rendered HTML with an inline stylesheet, no script and no external URL, so it works offline
and under the pages' Content-Security-Policy (``bastion.api.security.PAGE_POLICY``). It lists every
operation by tag (method, path, what it does, its parameters, its request body with an example,
its responses) and then every schema with its fields; anchors link an operation to the schemas it
uses. To try requests, use ``/openapi.json`` with any OpenAPI tool, or the SDK (``bastion.client``).
"""
from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

__all__ = ["mount_api_docs", "render_api_docs"]

METHODS = ("get", "post", "put", "patch", "delete")
CODE = re.compile(r"``(.+?)``", re.DOTALL)
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1rem 1.2rem; color: #111827; background: #f8fafc; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; }
h3 { font-size: 1rem; margin: 1.2rem 0 .3rem; } code, pre { font-family: ui-monospace, monospace; }
pre { background: #f3f4f6; padding: .5rem; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: .3rem 0; }
th, td { padding: .2rem .4rem; border-bottom: 1px solid #e5e7eb; text-align: left; vertical-align: top; }
th { background: #f3f4f6; } .method { display: inline-block; min-width: 3.5rem; font-weight: 700; }
.get { color: #0a7d3b; } .post { color: #1d4ed8; } .muted { color: #6b7280; }
.operation { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: .4rem .9rem; margin: .6rem 0; }
nav ul { columns: 2; } @media (max-width: 600px) { nav ul { columns: 1; } }
"""


def _text(text: str) -> str:
    """A docstring as HTML: escaped, its paragraphs kept, double-backquoted names as code."""
    paragraphs = [part.strip() for part in re.split(r"\n\s*\n", text) if part.strip()]
    return "".join("<p>" + CODE.sub(r"<code>\1</code>", escape(part)) + "</p>" for part in paragraphs)


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _type_html(schema: dict[str, Any]) -> str:
    """A schema's type in a few words, with links to named schemas."""
    if not isinstance(schema, dict):
        return ""
    name = _ref_name(schema)
    if name is not None:
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    for combiner in ("anyOf", "oneOf", "allOf"):
        if combiner in schema:
            return " | ".join(_type_html(part) for part in schema[combiner])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type_html(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type_html(schema['additionalProperties'])}"
    bounds = []
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("maxLength", "length ≤"), ("pattern", "matches")):
        if key in schema:
            value = schema[key]
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            bounds.append(f"{label} {value}")
    text = escape(str(kind))
    return text + (f' <span class="muted">({escape(", ".join(bounds))})</span>' if bounds else "")


def _operation_html(path: str, method: str, op: dict[str, Any]) -> str:
    anchor = escape(op.get("operationId", f"{method}-{path}"))
    parts = [f'<div class="operation" id="op-{anchor}">',
             f'<h3><span class="method {method}">{method.upper()}</span> <code>{escape(path)}</code></h3>']
    what = op.get("description") or op.get("summary")
    if what:
        parts.append(_text(str(what)))
    parameters = op.get("parameters", [])
    if parameters:
        parts.append("<table><thead><tr><th>parameter</th><th>in</th><th>type</th><th>required</th>"
                     "<th>description</th></tr></thead><tbody>")
        for p in parameters:
            about = p.get("description") or p.get("schema", {}).get("description") or ""
            parts.append(f"<tr><td><code>{escape(p.get('name', ''))}</code></td><td>{escape(p.get('in', ''))}</td>"
                         f"<td>{_type_html(p.get('schema', {}))}</td><td>{'yes' if p.get('required') else 'no'}</td>"
                         f"<td>{escape(about)}</td></tr>")
        parts.append("</tbody></table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        parts.append(f"<p>Request body (JSON): {_type_html(body)}</p>")
    responses = op.get("responses", {})
    if responses:
        items = []
        for code, response in sorted(responses.items()):
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            items.append(f"<li><b>{escape(code)}</b> {escape(response.get('description', ''))}"
                         f"{': ' + _type_html(schema) if schema else ''}</li>")
        parts.append(f"<p>Responses:</p><ul>{''.join(items)}</ul>")
    parts.append("</div>")
    return "\n".join(parts)


def _schema_html(name: str, schema: dict[str, Any]) -> str:
    parts = [f'<div class="operation" id="schema-{escape(name)}"><h3>{escape(name)}</h3>']
    if schema.get("description"):
        parts.append(_text(schema["description"]))
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    if properties:
        parts.append("<table><thead><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>"
                     "</thead><tbody>")
        for field, spec in properties.items():
            parts.append(f"<tr><td><code>{escape(field)}</code></td><td>{_type_html(spec)}</td>"
                         f"<td>{'yes' if field in required else 'no'}</td>"
                         f"<td>{escape(spec.get('description', ''))}</td></tr>")
        parts.append("</tbody></table>")
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        parts.append(f"<p>Example:</p><pre>{escape(json.dumps(examples[0], indent=1))}</pre>")
    parts.append("</div>")
    return "\n".join(parts)


def render_api_docs(schema: dict[str, Any]) -> str:
    """The whole page for an OpenAPI ``schema`` (a dict as ``FastAPI.openapi()`` returns it)."""
    info = schema.get("info", {})
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in schema.get("paths", {}).items():
        for method in METHODS:
            if method in operations:
                op = operations[method]
                by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((path, method, op))
    contents, sections = [], []
    for tag, operations in by_tag.items():
        contents.append(f'<li><a href="#tag-{escape(tag)}">{escape(tag)}</a> ({len(operations)})</li>')
        sections.append(f'<h2 id="tag-{escape(tag)}">{escape(tag)}</h2>')
        sections.extend(_operation_html(path, method, op) for path, method, op in operations)
    schemas = schema.get("components", {}).get("schemas", {})
    contents.append(f'<li><a href="#schemas">schemas</a> ({len(schemas)})</li>')
    sections.append('<h2 id="schemas">Schemas</h2>')
    sections.extend(_schema_html(name, spec) for name, spec in sorted(schemas.items()))
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title} · reference</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>", _text(info.get("description", "")),
        ('<p class="muted">Served by this node from its <a href="/openapi.json">OpenAPI schema</a>; '
         'no script, nothing loaded from elsewhere. <a href="/">Back to the markets</a>.</p>'),
        ("<p>Live pushes: the WebSocket <code>/v1/ws</code> (not in the schema); send "
         '<code>{"op": "subscribe", "channel": ...}</code> for <code>blocks</code>, <code>book</code>, '
         "<code>trades</code>, <code>account</code> or <code>governance</code>.</p>"),
        f"<nav><ul>{''.join(contents)}</ul></nav>", *sections, "</body></html>"])


def mount_api_docs(app: FastAPI) -> None:
    """Serve ``GET /docs`` on ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    page: list[str] = []  # rendered once: the schema does not change while the node runs

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def api_docs() -> HTMLResponse:
        if not page:
            page.append(render_api_docs(app.openapi()))
        return HTMLResponse(page[0])
