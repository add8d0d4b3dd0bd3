"""Path templates of google/api/http.proto: parsing, and matching through a segment trie.

    Template = "/" Segments [ Verb ] ;    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;    Verb = ":" LITERAL ;

Matching walks one trie node per path segment (a dict lookup for literals, then the `*` and
`**` children), so its cost depends on the path's depth, never on how many routes exist.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Generic, TypeVar
from urllib.parse import unquote

__all__ = ["Router", "Template", "TemplateError", "Variable", "parse_template"]

R = TypeVar("R")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Multi-segment variables decode everything except an encoded slash (http.proto says so):
# "a%2Fb" must stay distinguishable from the segment separator in "a/b".
_ENCODED_SLASH = re.compile(r"(%2[fF])")


class TemplateError(ValueError):
    """A path template breaks the grammar, or two routes claim the same method and path."""


@dataclasses.dataclass(frozen=True)
class Variable:
    """A `{field.path=…}` capture: segments [start, end) of the path (end None: to the end)."""

    field_path: str
    start: int
    end: int | None
    multi: bool

    def extract(self, segments: list[str]) -> str:
        """The variable's value, percent-decoded as the spec says for its kind."""
        raw = "/".join(segments[self.start : self.end])
        if "%" not in raw:
            return raw
        if not self.multi:
            return unquote(raw, errors="strict")
        parts = _ENCODED_SLASH.split(raw)
        return "".join(p if i % 2 else unquote(p, errors="strict") for i, p in enumerate(parts))


@dataclasses.dataclass(frozen=True)
class Template:
    """A parsed template: one entry per path segment (literal text, `*` or `**`)."""

    text: str
    segments: tuple[str, ...]
    verb: str
    variables: tuple[Variable, ...]


def _split_verb(text: str) -> tuple[str, str]:
    colon = text.rfind(":")
    if colon > max(text.rfind("/"), text.rfind("}")):
        verb = text[colon + 1 :]
        if not verb or not _literal_ok(verb):
            raise TemplateError(f"{text!r}: bad custom verb {verb!r}")
        return text[:colon], verb
    return text, ""


def _literal_ok(segment: str) -> bool:
    return bool(segment) and not any(c in segment for c in "{}=*:")


def _check_segment(text: str, segment: str) -> None:
    if segment not in ("*", "**") and not _literal_ok(segment):
        raise TemplateError(f"{text!r}: bad segment {segment!r}")


def parse_template(text: str) -> Template:
    """Parse `text`; raises TemplateError naming the template for any grammar violation."""
    if not text.startswith("/"):
        raise TemplateError(f"{text!r}: a template starts with '/'")
    path, verb = _split_verb(text)
    segments: list[str] = []
    variables: list[Variable] = []
    i = 1
    while True:
        if path.startswith("{", i):
            close = path.find("}", i)
            if close < 0 or "{" in path[i + 1 : close]:
                raise TemplateError(f"{text!r}: unbalanced or nested '{{'")
            name, has_sub, sub = path[i + 1 : close].partition("=")
            if not all(_IDENT.match(part) for part in name.split(".")):
                raise TemplateError(f"{text!r}: bad field path {name!r}")
            if any(v.field_path == name for v in variables):
                raise TemplateError(f"{text!r}: field {name!r} is bound twice")
            inner = sub.split("/") if has_sub else ["*"]
            for segment in inner:
                _check_segment(text, segment)
            start = len(segments)
            segments.extend(inner)
            multi = len(inner) > 1 or "**" in inner
            end = None if "**" in inner else len(segments)
            variables.append(Variable(name, start, end, multi))
            i = close + 1
        else:
            slash = path.find("/", i)
            stop = len(path) if slash < 0 else slash
            _check_segment(text, path[i:stop])
            segments.append(path[i:stop])
            i = stop
        if i == len(path):
            break
        if path[i] != "/":
            raise TemplateError(f"{text!r}: expected '/' at offset {i}")
        i += 1
    if "**" in segments[:-1]:
        raise TemplateError(f"{text!r}: '**' must be the last segment")
    return Template(text, tuple(segments), verb, tuple(variables))


class _Node(Generic[R]):
    __slots__ = ("double_star", "ends", "literals", "star")

    def __init__(self) -> None:
        self.literals: dict[str, _Node[R]] = {}
        self.star: _Node[R] | None = None
        self.double_star: _Node[R] | None = None
        # verb ("" for none) -> HTTP method -> route
        self.ends: dict[str, dict[str, R]] = {}


class Router(Generic[R]):
    """Maps (HTTP method, path) to a route; literals win over `*`, and `*` over `**`."""

    def __init__(self) -> None:
        self._root: _Node[R] = _Node()

    def add(self, method: str, template: Template, route: R) -> None:
        """Register `route`; raises TemplateError if method + template is already taken."""
        node = self._root
        for segment in template.segments:
            if segment == "*":
                node.star = node.star or _Node()
                node = node.star
            elif segment == "**":
                node.double_star = node.double_star or _Node()
                node = node.double_star
            else:
                node = node.literals.setdefault(segment, _Node())
        methods = node.ends.setdefault(template.verb, {})
        if method in methods:
            raise TemplateError(f"{method} {template.text}: already routed")
        methods[method] = route

    def match(self, method: str, path: str) -> tuple[R, list[str]] | None:
        """The route for `method` and raw `path` with the path's segments, or None."""
        for segments, verb in _candidates(path):
            for node in self._walk(self._root, segments, 0, verb, []):
                route = node.ends[verb].get(method)
                if route is not None:
                    return route, segments
        return None

    def allowed_methods(self, path: str) -> list[str]:
        """Every method some route accepts for `path` (empty: no template matches it)."""
        allowed: set[str] = set()
        for segments, verb in _candidates(path):
            for node in self._walk(self._root, segments, 0, verb, []):
                allowed.update(node.ends[verb])
        return sorted(allowed)

    def routes(self) -> list[R]:
        """Every registered route, in no particular order (start-up use: the OpenAPI document)."""
        found: list[R] = []
        pending = [self._root]
        while pending:
            node = pending.pop()
            found.extend(route for methods in node.ends.values() for route in methods.values())
            pending.extend(node.literals.values())
            pending.extend(child for child in (node.star, node.double_star) if child is not None)
        return found

    def _walk(
        self, node: _Node[R], segments: list[str], i: int, verb: str, out: list[_Node[R]]
    ) -> list[_Node[R]]:
        # Depth-first in priority order, collecting every node whose template matches.
        if i == len(segments):
            if verb in node.ends:
                out.append(node)
        else:
            child = node.literals.get(segments[i])
            if child is not None:
                self._walk(child, segments, i + 1, verb, out)
            if node.star is not None and segments[i]:
                self._walk(node.star, segments, i + 1, verb, out)
        rest = node.double_star
        if rest is not None and verb in rest.ends:
            out.append(rest)
        return out


def _candidates(path: str) -> list[tuple[list[str], str]]:
    segments = path[1:].split("/")
    last = segments[-1]
    colon = last.rfind(":")
    if colon < 0:
        return [(segments, "")]
    # `/v1/things/a:b` may be a verb call or an id containing ':'; try the verb first.
    head = [*segments[:-1], last[:colon]]
    return [(head, last[colon + 1 :]), (segments, "")]
