"""Tool calls in a model's own format, and a generic format for models that have none.

A format (``ToolFormat``) knows how a model writes a call, so it can (a) build the grammar that makes
every call schema-valid, (b) read calls back out of the answer text, and (c) prepare a conversation
that holds earlier calls and their results. Formats are registered and chosen from the GGUF's chat
template (``format_for_template``):

- ``hermes`` (Qwen 2.5, Hermes): ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``;
- ``llama3`` (Llama 3.1+): ``{"name": ..., "parameters": {...}}``, after an optional ``<|python_tag|>``;
- ``mistral``: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}]``;
- ``generic`` (any other template): the tools are described in the system turn and a call is the JSON
  ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``.

Native formats get the tools through the chat template (``tools=``); the generic one through text.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from macapp.core.engines.base import ChatMessage
from macapp.core.engines.structured import (
    ANY_TEXT_GBNF,
    InvalidOutput,
    Rules,
    check_schema,
    merge_rules,
    schema_rules,
    validation_problems,
)
from macapp.core.errors import UserError

MAX_PARALLEL_CALLS = 4  # calls one answer may hold: a small model otherwise repeats a call until max_tokens
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # OpenAI's rule for function names


class InvalidToolCall(InvalidOutput):
    """A call the model wrote that can't be run: unknown tool, unreadable JSON or arguments off the schema."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: its name, what it does, and the JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise UserError(f"A tool name must be 1-64 letters, digits, '_', '.' or '-' (got {self.name!r})")
        if not isinstance(self.parameters, dict) or self.parameters.get("type", "object") != "object":
            raise UserError(f"The parameters of tool {self.name!r} must be a JSON schema of type object")
        check_schema(self.parameters)

    @classmethod
    def from_openai(cls, doc: Any) -> ToolSpec:
        """From OpenAI's ``{"type": "function", "function": {"name", "description", "parameters"}}``."""
        if not isinstance(doc, dict) or doc.get("type", "function") != "function":
            raise UserError("Each tool must be {'type': 'function', 'function': {...}}")
        fn = doc.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UserError("Each tool needs 'function' with a 'name'")
        description = fn.get("description") or ""
        if not isinstance(description, str):
            raise UserError(f"The description of tool {fn['name']!r} must be a string")
        parameters = fn.get("parameters")
        return cls(
            fn["name"], description, parameters if parameters is not None else {"type": "object", "properties": {}}
        )

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: which tool, with what arguments (parsed JSON), and its id."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{secrets.token_hex(8)}")

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments_json}}


@dataclass(frozen=True)
class ParsedReply:
    """An answer split into its text and its calls; ``problems`` name calls that were written but can't be read."""

    content: str
    calls: tuple[ToolCall, ...] = ()
    problems: tuple[str, ...] = ()


def check_call(call: ToolCall, tools: Sequence[ToolSpec]) -> None:
    """Raise ``InvalidToolCall`` unless ``call`` names one of ``tools`` and its arguments match that schema."""
    problems = call_problems(call, tools)
    if problems:
        raise InvalidToolCall(problems)


def call_problems(call: ToolCall, tools: Sequence[ToolSpec]) -> list[str]:
    tool = next((t for t in tools if t.name == call.name), None)
    if tool is None:
        names = ", ".join(t.name for t in tools) or "none"
        return [f"{call.name!r} is not a tool here (the tools are: {names})"]
    return [
        f"{call.name} arguments{problem.removeprefix('$').removeprefix(' (the whole value)')}"
        for problem in validation_problems(call.arguments, tool.parameters)
    ]


def read_call(obj: Any, keys: Sequence[str] = ("arguments", "parameters")) -> ToolCall:
    """A ``ToolCall`` from ``{"name": ..., "arguments": {...}}`` (arguments may also be a JSON string)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise InvalidToolCall(["a tool call must be an object with a 'name'"], json.dumps(obj))
    arguments: Any = next((obj[k] for k in keys if k in obj), {})
    if isinstance(arguments, str):
        text = arguments
        try:
            arguments = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise InvalidToolCall([f"the arguments of {obj['name']} are not valid JSON ({exc})"], text) from exc
    if not isinstance(arguments, dict):
        raise InvalidToolCall(
            [f"the arguments of {obj['name']} must be a JSON object, not {type(arguments).__name__}"], json.dumps(obj)
        )
    return ToolCall(
        obj["name"],
        arguments,
        obj["id"] if isinstance(obj.get("id"), str) and obj["id"] else f"call_{secrets.token_hex(8)}",
    )


def _decode_all(text: str) -> list[Any]:
    """Every JSON value in ``text`` one after another (separated by spaces, ``;`` or ``,``)."""
    decoder, i = json.JSONDecoder(), 0
    values: list[Any] = []
    while True:
        while i < len(text) and text[i] in " \t\r\n;,":
            i += 1
        if i >= len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)


def _calls_from(objects: Sequence[Any], keys: Sequence[str]) -> tuple[list[ToolCall], list[str]]:
    calls: list[ToolCall] = []
    problems: list[str] = []
    for obj in objects:
        try:
            calls.append(read_call(obj, keys))
        except InvalidToolCall as exc:
            problems.extend(exc.problems)
    return calls, problems


class ToolFormat:
    """How one family of models writes tool calls. Subclasses register with ``@register``."""

    name = ""
    native = True  # tools reach the chat template; else they are described in the system turn
    arguments_key = "arguments"
    answer_excludes = "{"  # first characters a plain answer may not start with (they start a call)
    call_markers: tuple[str, ...] = ("{",)  # text that starts a call...
    markers_anywhere = False  # ...only at the start of the answer, or anywhere in it

    def detect(self, template_source: str) -> bool:
        return False

    def calls_rule(self, call: str, parallel: bool) -> str:
        """GBNF for the text of one or more calls, given the rule name of one call's JSON."""
        raise NotImplementedError

    def parse(self, text: str) -> ParsedReply:
        raise NotImplementedError

    def prepare(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], required: bool) -> list[ChatMessage]:
        """The conversation as the template should see it: earlier calls' arguments as objects."""
        return [_with_object_arguments(m) for m in messages]

    def grammar(
        self, tools: Sequence[ToolSpec], *, required: bool, parallel: bool = True, answer: Rules | None = None
    ) -> str:
        """A grammar whose sentences are schema-valid calls (and, unless ``required``, plain answers)."""
        calls = [self.call_schema(t) for t in tools]
        call = schema_rules(calls[0] if len(calls) == 1 else {"anyOf": calls}, "call")
        lines = [f"tool-calls ::= {self.calls_rule('call', parallel)}"]
        if required:
            lines.insert(0, "root ::= tool-calls")
        elif answer is not None:
            lines.insert(0, f"root ::= tool-calls | {answer.name}")
        else:
            excluded = "".join(_class_escape(c) for c in self.answer_excludes)
            lines.insert(0, "root ::= tool-calls | answer-text")
            lines.append(f"answer-text ::= [^{excluded} \\t\\r\\n] {ANY_TEXT_GBNF}")
        return merge_rules("\n".join(lines), call, *([answer] if answer is not None else []))

    def call_schema(self, tool: ToolSpec) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"name": {"const": tool.name}, self.arguments_key: tool.parameters},
            "required": ["name", self.arguments_key],
        }

    def call_start(self, text: str) -> int | None:
        """Where a call begins in ``text`` (None: nowhere yet); ``-1`` while it can't be told yet."""
        if self.markers_anywhere:
            found = [i for i in (text.find(m) for m in self.call_markers) if i >= 0]
            if found:
                return min(found)
            held = max((k for m in self.call_markers for k in range(1, len(m)) if text.endswith(m[:k])), default=0)
            return len(text) - held if held else None
        stripped = text.lstrip()
        if not stripped:
            return -1
        for marker in self.call_markers:
            if stripped.startswith(marker):
                return len(text) - len(stripped)
            if marker.startswith(stripped):
                return -1
        return None


FORMATS: dict[str, ToolFormat] = {}


def register(cls: type[ToolFormat]) -> type[ToolFormat]:
    FORMATS[cls.name] = cls()
    return cls


def format_for_template(source: str | None) -> ToolFormat:
    """The tool format a chat template speaks, or ``generic`` when it has none."""
    if source and "tools" in source:
        for fmt in FORMATS.values():
            if fmt.native and fmt.detect(source):
                return fmt
    return FORMATS["generic"]


def _class_escape(char: str) -> str:
    return "\\" + char if char in "]\\^-[" else char


def _with_object_arguments(message: ChatMessage) -> ChatMessage:
    calls = message.get("tool_calls")
    if not calls:
        return message
    fixed = []
    for call in calls:
        fn = dict(call.get("function", {}))
        if isinstance(fn.get("arguments"), str):
            try:
                fn["arguments"] = json.loads(fn["arguments"] or "{}")
            except ValueError:
                pass
        fixed.append({**call, "function": fn})
    return {**message, "tool_calls": fixed}


@register
class HermesFormat(ToolFormat):
    name = "hermes"
    answer_excludes = "<"
    call_markers = ("<tool_call>",)
    markers_anywhere = True
    _BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)

    def detect(self, template_source: str) -> bool:
        return "<tool_call>" in template_source

    def calls_rule(self, call: str, parallel: bool) -> str:
        block = f'"<tool_call>\\n" {call} "\\n</tool_call>"'
        return f'{block} ("\\n" {block}){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else block

    def parse(self, text: str) -> ParsedReply:
        blocks = self._BLOCK.findall(text)
        if not blocks:
            return ParsedReply(text)
        objects, problems = [], []
        for block in blocks:
            try:
                objects.extend(_decode_all(block))
            except ValueError as exc:
                problems.append(f"a tool call is not valid JSON ({exc})")
        calls, more = _calls_from(objects, ("arguments", "parameters"))
        return ParsedReply(self._BLOCK.sub("", text).strip(), tuple(calls), tuple(problems + more))


@register
class Llama3Format(ToolFormat):
    name = "llama3"
    arguments_key = "parameters"
    call_markers = ("<|python_tag|>", "{")

    def detect(self, template_source: str) -> bool:
        return "<|start_header_id|>" in template_source and (
            "<|python_tag|>" in template_source or "ipython" in template_source
        )

    def calls_rule(self, call: str, parallel: bool) -> str:
        return f'{call} ("; " {call}){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else call

    def parse(self, text: str) -> ParsedReply:
        body = text.strip().removeprefix("<|python_tag|>").strip()
        if not body.startswith("{"):
            return ParsedReply(text)
        try:
            objects = _decode_all(body)
        except ValueError as exc:
            return ParsedReply("", (), (f"the tool call is not valid JSON ({exc})",))
        if not all(isinstance(o, dict) and "name" in o for o in objects):
            return ParsedReply(text)  # JSON the user asked for, not a call
        calls, problems = _calls_from(objects, ("parameters", "arguments"))
        return ParsedReply("", tuple(calls), tuple(problems))


@register
class MistralFormat(ToolFormat):
    name = "mistral"
    answer_excludes = "["
    call_markers = ("[TOOL_CALLS]", "[")

    def detect(self, template_source: str) -> bool:
        return "[TOOL_CALLS]" in template_source

    def calls_rule(self, call: str, parallel: bool) -> str:
        more = f' ("," space {call}){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else ""
        return f'"[TOOL_CALLS]"? "[" space {call}{more} "]"'

    def parse(self, text: str) -> ParsedReply:
        body = text.strip().removeprefix("[TOOL_CALLS]").strip()
        if not body.startswith("["):
            return ParsedReply(text)
        try:
            objects = json.loads(body)
        except ValueError as exc:
            return ParsedReply("", (), (f"the tool calls are not valid JSON ({exc})",))
        calls, problems = _calls_from(objects if isinstance(objects, list) else [objects], ("arguments",))
        return ParsedReply("", tuple(calls), tuple(problems))


@register
class GenericFormat(ToolFormat):
    """For templates without tools: the tools described in the system turn, a call as one JSON object."""

    name = "generic"
    native = False

    def calls_rule(self, call: str, parallel: bool) -> str:
        more = f' ("," space {call}){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else ""
        return f'"{{" space "\\"tool_calls\\"" space ":" space "[" space {call}{more} "]" space "}}" space'

    def parse(self, text: str) -> ParsedReply:
        body = text.strip()
        if not body.startswith("{"):
            return ParsedReply(text)
        try:
            doc, _ = json.JSONDecoder().raw_decode(body)
        except ValueError as exc:
            if '"tool_calls"' in body[:40]:
                return ParsedReply("", (), (f"the tool call is not valid JSON ({exc})",))
            return ParsedReply(text)
        if not isinstance(doc, dict) or "tool_calls" not in doc:
            return ParsedReply(text)  # JSON, but an answer
        objects = doc["tool_calls"] if isinstance(doc["tool_calls"], list) else [doc["tool_calls"]]
        calls, problems = _calls_from(objects, ("arguments", "parameters"))
        return ParsedReply("", tuple(calls), tuple(problems))

    def prepare(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], required: bool) -> list[ChatMessage]:
        turns: list[ChatMessage] = []
        for message in messages:
            if message["role"] == "tool":
                name = message.get("name") or "the tool"
                turns.append(
                    {
                        "role": "user",
                        "content": f"Result of {name} ({message.get('tool_call_id', '')}):\n{message['content']}",
                    }
                )
            elif message.get("tool_calls"):
                calls = [
                    {
                        "name": c["function"]["name"],
                        "arguments": _with_object_arguments({"role": "assistant", "content": "", "tool_calls": [c]})[
                            "tool_calls"
                        ][0]["function"]["arguments"],
                    }
                    for c in message["tool_calls"]
                ]
                text = json.dumps({"tool_calls": calls}, ensure_ascii=False)
                turns.append({"role": "assistant", "content": f"{message['content']}\n{text}".strip()})
            else:
                turns.append({"role": message["role"], "content": message["content"]})
        if not tools:
            return turns
        guide = tools_prompt(tools, required)
        if turns and turns[0]["role"] == "system":
            return [{"role": "system", "content": f"{turns[0]['content']}\n\n{guide}"}, *turns[1:]]
        return [{"role": "system", "content": guide}, *turns]


def tools_prompt(tools: Sequence[ToolSpec], required: bool) -> str:
    """The system text that teaches a model without a tool format the tools and the call syntax."""
    lines = [
        f"- {t.name}: {t.description or 'no description'} Arguments (JSON schema): "
        f"{json.dumps(t.parameters, ensure_ascii=False)}"
        for t in tools
    ]
    how = 'To call a tool, reply with only this JSON: {"tool_calls": [{"name": "TOOL", "arguments": {...}}]}'
    when = "You must call one of the tools now." if required else "If no tool is needed, answer normally."
    return "You can use these tools:\n" + "\n".join(lines) + f"\n{how}\n{when}"
