"""Structured output by construction: a JSON schema becomes a llama.cpp grammar (GBNF), and what comes
back is checked against the schema with ``jsonschema``.

Under the grammar llama.cpp can only sample tokens that keep the output inside the schema's shape
(objects, required and optional properties, enums, arrays, nesting, string lengths, patterns), so a
constrained answer parses and validates by construction. The grammar does not encode numeric ranges
(``minimum``, ``multipleOf``) or ``uniqueItems``; those are checked after, like any answer from an
engine without grammars (``validate``). Converting a schema costs milliseconds, so it is cached per schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from macapp.core.errors import UserError

GRAMMAR_CACHE_SIZE = 128  # distinct schemas kept converted (a few per tool set and response format)
MAX_PROBLEMS = 5  # validation messages shown for one answer; the first few say what is wrong
# Keywords the grammar can't enforce: answers are validated after for these.
CHECKED_AFTER = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "not",
        "if",
        "then",
        "else",
        "minProperties",
        "maxProperties",
        "contains",
        "dependentRequired",
        "dependentSchemas",
        "patternProperties",
    }
)
ANY_TEXT_GBNF = "[^\\x00]*"  # free text (a plain answer next to a tool call)
# llama.cpp's converter lets a string hold raw control characters, which strict JSON parsers refuse.
_LAX_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x00-\\x1f] |'


class SchemaError(UserError):
    """A JSON schema that is not one, or that cannot become a grammar."""


class InvalidOutput(ValueError):
    """Text that is not JSON, or JSON that does not match its schema; ``problems`` say where and why."""

    def __init__(self, problems: list[str], text: str = "") -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)
        self.text = text


@dataclass(frozen=True)
class Rules:
    """GBNF rules for one schema, its top rule named ``name`` (no ``root``): to embed in a larger grammar."""

    name: str
    text: str


def schema_key(schema: Any) -> str:
    """The cache key of a schema: its JSON text (property order matters to the grammar, so it is kept)."""
    try:
        return json.dumps(schema, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"The JSON schema is not JSON: {exc}") from exc


def check_schema(schema: Any) -> None:
    """Refuse what is not a JSON schema (draft 2020-12 rules), with the reason."""
    _validator(schema_key(schema))


def gbnf_for_schema(schema: Any) -> str:
    """A complete GBNF grammar (``root`` rule) whose every sentence is JSON matching ``schema``."""
    return _gbnf(schema_key(schema), "root")


def schema_rules(schema: Any, name: str) -> Rules:
    """The rules for ``schema`` with its top rule called ``name`` (letters, digits and ``-``), to combine."""
    return Rules(name, _gbnf(schema_key(schema), name))


def merge_rules(*parts: Rules | str) -> str:
    """One grammar from rule sets and extra rule lines; a rule defined twice keeps its first definition."""
    seen: dict[str, str] = {}
    for part in parts:
        text = part.text if isinstance(part, Rules) else part
        for line in text.splitlines():
            name, sep, body = line.partition(" ::= ")
            if sep and name not in seen:
                seen[name] = body
    return "\n".join(f"{name} ::= {body}" for name, body in seen.items())


def validation_problems(value: Any, schema: Any) -> list[str]:
    """What is wrong with ``value`` against ``schema``, one line each (empty: valid)."""
    validator = _validator(schema_key(schema))
    problems = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        problems.append(f"{_where(error.absolute_path)}: {error.message}")
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def parse_json(text: str, schema: Any | None = None) -> Any:
    """The JSON value in ``text``, checked against ``schema``; ``InvalidOutput`` says what is wrong."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidOutput([f"not valid JSON ({exc})"], text) from exc
    if schema is not None:
        problems = validation_problems(value, schema)
        if problems:
            raise InvalidOutput(problems, text)
    return value


def checked_after(schema: Any) -> set[str]:
    """Keywords in ``schema`` the grammar does not enforce (validated after generation instead)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.update(k for k in node if k in CHECKED_AFTER)
            for key, child in node.items():
                if key not in ("enum", "const", "default", "examples"):
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    return found


def _where(path) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return f"${parts}" if parts else "$ (the whole value)"


def _gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal: quotes, backslashes and control characters escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@lru_cache(maxsize=GRAMMAR_CACHE_SIZE)
def _gbnf(key: str, name: str) -> str:
    from llama_cpp.llama_grammar import SchemaConverter

    class Converter(SchemaConverter):
        # llama-cpp-python 0.3.36 leaves backslashes unescaped in literals: an enum value or property
        # name holding one gave a grammar llama.cpp can't parse (and a crash when sampling with it).
        def _format_literal(self, literal: str) -> str:
            return _gbnf_literal(literal)

    schema = json.loads(key)
    check_schema(schema)
    converter = Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        schema = converter.resolve_refs(schema, "schema")
        top = converter.visit(schema, "" if name == "root" else name)
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise SchemaError(f"This JSON schema can't be turned into a grammar: {exc or type(exc).__name__}") from exc
    text = converter.format_grammar().replace(_LAX_CHAR, _JSON_CHAR)
    if top != name:  # the converter renames reserved words; keep the name the caller asked for
        text += f"\n{name} ::= {top}"
    return text


@lru_cache(maxsize=GRAMMAR_CACHE_SIZE)
def _validator(key: str):
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as BadSchema

    schema = json.loads(key)
    if not isinstance(schema, (dict, bool)):
        raise SchemaError("A JSON schema must be an object")
    try:
        Draft202012Validator.check_schema(schema)
    except BadSchema as exc:
        raise SchemaError(f"This is not a valid JSON schema: {exc.message}") from exc
    return Draft202012Validator(schema)
