"""podman's ``--format`` Go templates: the subset kernelext renders, and Go's errors for the rest.

Supported: ``{{.A.B}}``, ``{{.}}``, ``{{json .A}}``, ``{{upper .A}}`` (or ``{{.A | upper}}``),
``{{lower .A}}``, string literals (``{{"\\n"}}``), trim markers
(``{{- ... -}}``) and podman's ``\\t``/``\\n`` escapes in the text. A template
is parsed whole before anything is rendered, so a malformed one is an error
(podman: ``Error: template: inspect:1: unclosed action``, exit 125) even when
there is nothing to render, and never printed as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernelext.cli.parser import UsageError

OPEN, CLOSE = "{{", "}}"
#: Functions Go's text/template or podman's report package define that kernelext does not render.
_UNSUPPORTED = frozenset({"and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js",
                          "urlquery", "call", "eq", "ne", "lt", "le", "gt", "ge", "range", "if", "with", "define",
                          "template", "block", "end", "else", "title", "join", "split", "truncate", "pad"})
#: Go's names of the types kernelext's documents hold (for "can't evaluate field X in type T").
_GO_TYPES = {str: "string", bool: "bool", int: "int", float: "float64", list: "[]interface {}"}


#: Go field names of podman's documents whose JSON names differ: a template may use either (podman's
#: inspect takes ``.ID`` and ``.Id`` alike).
_JSON_NAMES = {"ID": "Id"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


_FUNCTIONS: dict[str, Callable[[Any], str]] = {
    "json": json.dumps,
    "upper": lambda value: _text(value).upper(),
    "lower": lambda value: _text(value).lower(),
}


class TemplateError(UsageError):
    """A template that does not parse or does not apply to the data; the message is Go's."""


@dataclass(frozen=True)
class _Field:
    path: tuple[str, ...]  # () for "."
    line: int
    column: int  # Go's: the byte offset of the node in its line
    function: str | None = None

    @property
    def node(self) -> str:
        return "." + ".".join(self.path) if self.path else "."


@dataclass(frozen=True)
class Template:
    """A parsed template named as podman names it (the command: ``inspect``, ``ps``)."""

    name: str
    parts: tuple[str | _Field, ...]

    @classmethod
    def parse(cls, text: str, name: str) -> Template:
        parts: list[str | _Field] = []
        pos = 0
        while (start := text.find(OPEN, pos)) != -1:
            literal = text[pos:start]
            inner_start = start + len(OPEN)
            line = text.count("\n", 0, start) + 1
            if text.startswith("- ", inner_start):
                literal = literal.rstrip()
                inner_start += 1
            end = _action_end(text, inner_start, name, line)
            inner_end = end
            pos = end + len(CLOSE)
            if text[inner_start:end].endswith(" -"):
                inner_end -= 1
                pos = len(text) - len(text[pos:].lstrip())
            parts.append(literal)
            column = start - (text.rfind("\n", 0, start) + 1)
            parts.append(_action(text[inner_start:inner_end], name, line, column + (inner_start - start)))
        parts.append(text[pos:])
        # podman's escapes in the text only: inside an action a string literal has Go's own
        return cls(name, tuple(_unescaped(p) if isinstance(p, str) else p for p in parts if p != ""))

    def render(self, data: Any) -> str:
        return "".join(part if isinstance(part, str) else self._value(part, data) for part in self.parts)

    def _value(self, field: _Field, data: Any) -> str:
        value = data
        for key in field.path:
            if isinstance(value, dict) and (key in value or _JSON_NAMES.get(key) in value):
                value = value[key if key in value else _JSON_NAMES[key]]
                continue
            kind = "" if isinstance(value, dict) else f" in type {_GO_TYPES.get(type(value), type(value).__name__)}"
            raise TemplateError(f'template: {self.name}:{field.line}:{field.column}: executing "{self.name}" at '
                                f"<{field.node}>: can't evaluate field {key}{kind}")
        if field.function is not None:
            return _FUNCTIONS[field.function](value)
        return _text(value)


def _unescaped(literal: str) -> str:
    return literal.replace("\\t", "\t").replace("\\n", "\n")


def _action_end(text: str, start: int, name: str, line: int) -> int:
    """Where the action opened before ``start`` closes (a quoted "}}" does not close it)."""
    pos = start
    while True:
        close, quote = text.find(CLOSE, pos), text.find('"', pos)
        if close == -1:
            raise TemplateError(f"template: {name}:{line}: unclosed action")
        if quote == -1 or close < quote:
            return close
        pos = quote + 1
        while pos < len(text) and text[pos] != '"':
            if text[pos] == "\n":
                break
            pos += 2 if text[pos] == "\\" else 1
        if pos >= len(text) or text[pos] != '"':
            raise TemplateError(f"template: {name}:{line}: unterminated quoted string")
        pos += 1


def _action(inner: str, name: str, line: int, column: int) -> str | _Field:
    """One action: a string literal (its value) or a field, alone or given to a function."""
    words = inner.split()
    if not words:
        raise TemplateError(f"template: {name}:{line}: missing value for command")
    if words[0].startswith('"'):
        try:
            value = json.loads(inner.strip())
        except ValueError:
            raise TemplateError(f"template: {name}:{line}: unexpected {inner.strip()} in command") from None
        return str(value)
    if "|" in inner:  # a pipeline: ".A | upper" gives the field to the function, as "upper .A" does
        field, _, piped = inner.partition("|")
        if len(piped.split()) == 1 and len(field.split()) == 1:
            words = [piped.strip(), field.strip()]
    function = None
    if not words[0].startswith("."):
        function = words[0]
        if function in _UNSUPPORTED:
            raise TemplateError(f'template: {name}:{line}: function "{function}" is not supported by kernelext')
        if function not in _FUNCTIONS:
            raise TemplateError(f'template: {name}:{line}: function "{function}" not defined')
        words = words[1:]
        if len(words) != 1:
            raise TemplateError(f'template: {name}:{line}: wrong number of args for {function}: want 1 got '
                                f"{len(words)}")
    if len(words) != 1 or not words[0].startswith("."):
        raise TemplateError(f"template: {name}:{line}: unexpected {inner.strip()!r} in command")
    path = tuple(words[0].split(".")[1:]) if words[0] != "." else ()
    if any(not part.isidentifier() for part in path):
        raise TemplateError(f'template: {name}:{line}: bad character in field name "{words[0]}"')
    return _Field(path, line, column + inner.find(words[0], len(function or "")), function)


def render_template(template: str, data: Any, name: str = "inspect") -> str:
    """``template`` parsed and applied to ``data`` (for one document; parse once for many)."""
    return Template.parse(template, name).render(data)
