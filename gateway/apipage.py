"""The human-readable API reference at /docs: one HTML page rendered from the OpenAPI document.

Self-contained (inline style, no script, nothing fetched from elsewhere), so it works where
the gateway runs without any CDN, and shows exactly the document at /openapi.json.
"""

from __future__ import annotations

import html
import re
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header{background:#00509e;color:#fff;padding:1.2rem 2rem}header h1{margin:0;font-size:1.5rem}
main{max-width:72rem;margin:0 auto;padding:1rem 2rem}nav{columns:2;font-size:.9rem}
section.op{background:#fff;border:1px solid #d9dee5;border-radius:6px;margin:1rem 0;padding:.8rem 1rem}
.verb{display:inline-block;min-width:4.2rem;text-align:center;border-radius:4px;color:#fff;font-weight:600;
padding:.1rem .4rem;margin-right:.5rem;font-size:.85rem}
.get{background:#2f7d32}.post{background:#1565c0}.put{background:#ef6c00}.patch{background:#6a1b9a}
.delete{background:#c62828}.other{background:#555}
code,.path{font-family:ui-monospace,monospace;font-size:.9em}.path{font-weight:600}
table{border-collapse:collapse;width:100%;margin:.4rem 0}th,td{text-align:left;vertical-align:top;
border-top:1px solid #e3e7ec;padding:.3rem .5rem}th{font-size:.8rem;color:#556}
h2{margin-top:2rem;border-bottom:2px solid #00509e}h3{margin:.2rem 0}.muted{color:#667;font-size:.9rem}
td p{margin:0}
"""


def _inline(text: str) -> str:
    """Escaped text with `code` and **bold** marked up."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _paragraphs(text: str) -> str:
    blocks = [block.strip() for block in text.split("\n\n") if block.strip()]
    rendered = []
    for block in blocks:
        lines = block.split("\n")
        if all(line.startswith("- ") for line in lines):
            rendered.append("<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines) + "</ul>")
        else:
            rendered.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "".join(rendered)


def _anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#{_anchor(name)}"><code>{html.escape(name)}</code></a>'
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of string to {_type(schema['additionalProperties'])}"
    shown = html.escape(str(kind or "any"))
    if "format" in schema:
        shown += f" <span class=muted>({html.escape(schema['format'])})</span>"
    return shown


def _parameters(parameters: list[dict[str, Any]], document: dict[str, Any]) -> str:
    if not parameters:
        return ""
    rows = []
    for given in parameters:
        parameter = (
            document["components"]["parameters"][given["$ref"].rsplit("/", 1)[-1]]
            if "$ref" in given
            else given
        )
        required = " <span class=muted>required</span>" if parameter.get("required") else ""
        rows.append(
            f"<tr><td><code>{html.escape(parameter['name'])}</code>{required}</td>"
            f"<td>{html.escape(parameter['in'])}</td><td>{_type(parameter.get('schema', {}))}</td>"
            f"<td>{_paragraphs(parameter.get('description', ''))}</td></tr>"
        )
    return (
        "<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _properties(schema: dict[str, Any]) -> str:
    rows = [
        f"<tr><td><code>{html.escape(name)}</code></td><td>{_type(prop)}</td>"
        f"<td>{_paragraphs(prop.get('description', ''))}</td></tr>"
        for name, prop in schema.get("properties", {}).items()
    ]
    if not rows:
        return ""
    return "<table><tr><th>field</th><th>type</th><th>meaning</th></tr>" + "".join(rows) + "</table>"


def _body(content: dict[str, Any]) -> str:
    media, entry = next(iter(content.items()))
    schema = entry.get("schema", {})
    if media != "application/json":
        return f"<p>Raw bytes (<code>{html.escape(media)}</code>).</p>"
    if "properties" in schema:
        return _properties(schema)
    return f"<p>{_type(schema)}</p>"


def _operation(path: str, verb: str, operation: dict[str, Any], document: dict[str, Any]) -> str:
    css = verb if verb in ("get", "post", "put", "patch", "delete") else "other"
    token = (
        "bearer token" if operation.get("security") == [{"bearerAuth": []}] else "bearer token where needed"
    )
    parts = [
        f'<section class=op id="{html.escape(operation["operationId"])}">',
        f'<h3><span class="verb {css}">{verb.upper()}</span><span class=path>{html.escape(path)}</span></h3>',
        f"<p class=muted>{html.escape(operation['operationId'])} · {token}</p>",
        _paragraphs(operation.get("description", "")),
        _parameters(operation.get("parameters", []), document),
    ]
    if "requestBody" in operation:
        parts += ["<h4>Request body</h4>", _body(operation["requestBody"]["content"])]
    ok = operation["responses"]["200"]
    parts += ["<h4>Response</h4>", _body(ok["content"]), "</section>"]
    return "".join(parts)


def render(document: dict[str, Any]) -> str:
    info = document["info"]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            by_tag.setdefault(operation["tags"][0], []).append((path, verb, operation))
    nav = "".join(
        f'<li><a href="#{html.escape(op["operationId"])}">{verb.upper()} {html.escape(path)}</a></li>'
        for tag in sorted(by_tag)
        for path, verb, op in by_tag[tag]
    )
    sections = []
    for tag in document.get("tags", []):
        sections.append(f"<h2>{html.escape(tag['name'])}</h2>{_paragraphs(tag.get('description', ''))}")
        sections += [_operation(path, verb, op, document) for path, verb, op in by_tag.get(tag["name"], [])]
    schemas = [
        f'<section class=op id="{_anchor(name)}"><h3><code>{html.escape(name)}</code></h3>'
        f"{_paragraphs(schema.get('description', ''))}"
        + (
            _properties(schema)
            if "properties" in schema
            else f"<p>{', '.join(f'<code>{html.escape(str(v))}</code>' for v in schema['enum'])}</p>"
            if "enum" in schema
            else f"<p>{_type(schema)}</p>"
        )
        + "</section>"
        for name, schema in document["components"]["schemas"].items()
    ]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(info['title'])}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{html.escape(info['title'])} <small>{html.escape(info['version'])}</small></h1>"
        '<p>The machine-readable document: <a style="color:#fff" href="/openapi.json">/openapi.json</a></p>'
        f"</header><main>{_paragraphs(info.get('description', ''))}<nav><ul>{nav}</ul></nav>"
        + "".join(sections)
        + "<h2>Schemas</h2>"
        + "".join(schemas)
        + "</main></body></html>"
    )
