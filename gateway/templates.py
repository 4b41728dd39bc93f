"""Path templates of `google.api.http` rules, parsed and matched as grpc-gateway and Envoy do.

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

`{payment_id}` is `{payment_id=*}`: one segment. A variable over several segments
(`{name=shelves/*/books/*}`) keeps a percent-encoded slash in its value encoded ("reserved
expansion"); a single-segment one decodes everything. Matching runs on the raw
(still percent-encoded) path, so that an encoded slash never splits a segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERAL = re.compile(r"[A-Za-z0-9\-._~!$&'()+,;=@%]+")
_ONE_SEGMENT = "[^/]+"
_MANY_SEGMENTS = "[^/]+(?:/[^/]+)*"


class TemplateError(ValueError):
    """A path template that the grammar does not allow; the message says where."""


@dataclass(frozen=True)
class Variable:
    """A `{field.path=...}` of a template."""

    field_path: tuple[str, ...]
    # The pattern covers more than one segment: its value keeps %2F encoded.
    multi_segment: bool
    # The segments it matches, as written: "*" for `{id}`, "shelves/*" for `{name=shelves/*}`.
    pattern: str = "*"

    @property
    def name(self) -> str:
        return ".".join(self.field_path)

    @property
    def openapi_name(self) -> str:
        """The placeholder in OpenAPI: `{policy.country_code}` is `{policy_country_code}`, since
        tools read a dot in a placeholder as an attribute (schemathesis, code generators)."""
        return "_".join(self.field_path)


@dataclass(frozen=True)
class PathTemplate:
    template: str
    variables: tuple[Variable, ...]
    verb: str
    # The template with each variable as `{field.path}` (OpenAPI's form).
    openapi_path: str
    # Leading literal segments, for indexing ("v1", "payments").
    prefix: tuple[str, ...]
    literal_count: int
    _regex: re.Pattern[str]

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Field path -> decoded value, or None if the path does not match.

        Raises ValueError if a matched value is not valid percent-encoded UTF-8."""
        found = self._regex.fullmatch(raw_path)
        if found is None:
            return None
        return {
            variable.name: _decode(found.group(f"v{index}"), variable.multi_segment)
            for index, variable in enumerate(self.variables)
        }

    @property
    def sort_key(self) -> tuple[int, int, int, str]:
        """Most specific first: with a verb, then more literal segments, then fewer variables."""
        return (0 if self.verb else 1, -self.literal_count, len(self.variables), self.template)


def _decode(raw: str, multi_segment: bool) -> str:
    if not multi_segment:
        return unquote(raw, errors="strict")
    return "/".join(unquote(part, errors="strict").replace("/", "%2F") for part in raw.split("/"))


def parse(template: str) -> PathTemplate:
    if not template.startswith("/"):
        raise TemplateError(f"{template!r}: a path template starts with '/'")
    body, verb = _split_verb(template[1:], template)
    segments = _split_top_level(body, template)
    regex_parts: list[str] = []
    openapi_parts: list[str] = []
    variables: list[Variable] = []
    literal_count = 0
    prefix: list[str] = []
    prefix_open = True
    for position, segment in enumerate(segments):
        if segment.startswith("{"):
            if not segment.endswith("}"):
                raise TemplateError(f"{template!r}: a variable takes a whole segment: {segment!r}")
            variable, pattern = _parse_variable(segment[1:-1], template, last=position == len(segments) - 1)
            regex_parts.append(f"(?P<v{len(variables)}>{pattern})")
            openapi_parts.append(f"{{{variable.openapi_name}}}")
            variables.append(variable)
            prefix_open = False
            continue
        pattern, literal = _segment_pattern(segment, template, last=position == len(segments) - 1)
        regex_parts.append(pattern)
        openapi_parts.append(segment)
        if literal:
            literal_count += 1
            # The last segment of a template with a verb is followed by ":verb" in a path.
            if prefix_open and len(prefix) < 2 and not (verb and position == len(segments) - 1):
                prefix.append(segment)
        else:
            prefix_open = False
    names = [v.name for v in variables]
    if len(set(names)) != len(names):
        raise TemplateError(f"{template!r}: a field is bound twice")
    verb_regex = f":{re.escape(verb)}" if verb else ""
    return PathTemplate(
        template=template,
        variables=tuple(variables),
        verb=verb,
        openapi_path="/" + "/".join(openapi_parts) + (f":{verb}" if verb else ""),
        prefix=tuple(prefix),
        literal_count=literal_count,
        _regex=re.compile("/" + "/".join(regex_parts) + verb_regex),
    )


def _split_verb(body: str, template: str) -> tuple[str, str]:
    """ "v1/payments/{id}:refund" -> ("v1/payments/{id}", "refund"): a ':' outside braces
    after the last top-level '/'."""
    depth = 0
    colon = -1
    for index, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "/" and depth == 0:
            colon = -1
        elif char == ":" and depth == 0:
            colon = index
    if depth != 0:
        raise TemplateError(f"{template!r}: unbalanced braces")
    if colon < 0:
        return body, ""
    verb = body[colon + 1 :]
    if not _LITERAL.fullmatch(verb):
        raise TemplateError(f"{template!r}: the custom verb must be a literal, got {verb!r}")
    return body[:colon], verb


def _split_top_level(body: str, template: str) -> list[str]:
    segments, depth, start = [], 0, 0
    for index, char in enumerate(body):
        if char == "{":
            depth += 1
            if depth > 1:
                raise TemplateError(f"{template!r}: variables do not nest")
        elif char == "}":
            depth -= 1
        elif char == "/" and depth == 0:
            segments.append(body[start:index])
            start = index + 1
    segments.append(body[start:])
    if any(not segment for segment in segments):
        raise TemplateError(f"{template!r}: empty segment")
    return segments


def _segment_pattern(segment: str, template: str, *, last: bool) -> tuple[str, bool]:
    """The regex of one segment, and whether it is a literal."""
    if segment == "*":
        return _ONE_SEGMENT, False
    if segment == "**":
        if not last:
            raise TemplateError(f"{template!r}: '**' must be the last segment")
        return _MANY_SEGMENTS, False
    if not _LITERAL.fullmatch(segment):
        raise TemplateError(f"{template!r}: {segment!r} is not a literal segment")
    return re.escape(segment), True


def _parse_variable(inner: str, template: str, *, last: bool) -> tuple[Variable, str]:
    path, _, pattern = inner.partition("=")
    field_path = tuple(path.split("."))
    if not all(_IDENT.fullmatch(part) for part in field_path):
        raise TemplateError(f"{template!r}: {path!r} is not a field path")
    parts = pattern.split("/") if pattern else ["*"]
    if any(not part for part in parts):
        raise TemplateError(f"{template!r}: empty segment in {{{inner}}}")
    regexes = [
        _segment_pattern(part, template, last=last and index == len(parts) - 1)[0]
        for index, part in enumerate(parts)
    ]
    multi = len(parts) > 1 or parts[0] == "**"
    return Variable(field_path, multi, "/".join(parts)), "/".join(regexes)
