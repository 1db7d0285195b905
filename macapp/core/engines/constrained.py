"""One call for an answer with tools and/or a JSON schema, whatever the engine: ``stream_structured``.

- an engine with ``capabilities.grammar`` (llama.cpp): one generation under a grammar built from the tools'
  schemas and the response schema, so every call and every JSON answer is schema-valid by construction;
- other engines (MLX, remote, the fake): the answer is parsed and validated, and an invalid one is
  tried again with the problems fed back, at most ``max_attempts`` times (``MAX_ATTEMPTS`` by default);
  what is still invalid after that is returned with its ``problems``.

Plain answer text streams as it arrives; the text of tool calls does not (it comes back parsed, as
``ToolCall``s), and neither does JSON that still has to be validated.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from macapp.core.engines.base import ChatMessage, Engine, GenerationChunk, GenerationResult, SamplingSettings
from macapp.core.engines.structured import (
    InvalidOutput,
    gbnf_for_schema,
    parse_json,
    schema_rules,
)
from macapp.core.engines.tool_calls import (
    ToolCall,
    ToolFormat,
    ToolSpec,
    call_problems,
    format_for_template,
)
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken

MAX_ATTEMPTS = 3  # tries for engines without grammars: each retry shows the model what was wrong
ToolChoice = Literal["auto", "none", "required"]
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}  # response_format {"type": "json_object"}


@dataclass(frozen=True)
class OutputSpec:
    """What the answer must look like: tools it may (or must) call, and/or a JSON schema it must match.

    ``function`` forces a call of that one tool (OpenAI's named ``tool_choice``).
    """

    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    function: str | None = None
    response_schema: dict[str, Any] | None = None
    parallel_tool_calls: bool = True

    def __post_init__(self) -> None:
        if self.function is not None and not any(t.name == self.function for t in self.tools):
            raise UserError(f"tool_choice names {self.function!r}, which is not among the tools")
        if self.tool_choice == "required" and not self.tools:
            raise UserError("tool_choice 'required' needs at least one tool")

    @property
    def callable_tools(self) -> tuple[ToolSpec, ...]:
        """The tools the model may call in this answer (none when ``tool_choice`` is ``none``)."""
        if self.tool_choice == "none":
            return ()
        if self.function is not None:
            return tuple(t for t in self.tools if t.name == self.function)
        return self.tools

    @property
    def must_call(self) -> bool:
        return bool(self.callable_tools) and (self.tool_choice == "required" or self.function is not None)

    @property
    def empty(self) -> bool:
        return not self.callable_tools and self.response_schema is None


@dataclass(frozen=True)
class StructuredResult:
    """The answer: its text (``content``), the calls it made, the JSON ``value`` when a schema was asked for.

    ``problems`` is empty when everything matched its schema; ``constrained`` says a grammar guaranteed it.
    """

    result: GenerationResult
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    value: Any = None
    problems: tuple[str, ...] = ()
    attempts: int = 1
    constrained: bool = False
    format: str = ""

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else self.result.finish_reason


@dataclass
class _Splitter:
    """Lets answer text through as it streams and holds back whatever may be a call."""

    fmt: ToolFormat | None
    hold_all: bool
    text: str = ""
    sent: int = 0
    in_call: bool = False

    def feed(self, piece: str) -> str:
        self.text += piece
        if self.hold_all or self.in_call:
            return ""
        end = len(self.text)
        if self.fmt is not None:
            start = self.fmt.call_start(self.text)
            if start == -1:  # can't tell yet
                return ""
            if start is not None:
                end = start if self.fmt.markers_anywhere else self.sent  # nothing before a call at the start
                self.in_call = any(self.text.startswith(m, start) for m in self.fmt.call_markers)
        return self._take(end)

    def flush(self) -> str:
        """What is left to send once the answer turned out to hold no call."""
        return "" if self.hold_all else self._take(len(self.text))

    def _take(self, end: int) -> str:
        out = self.text[self.sent : end]
        self.sent = max(self.sent, end)
        return out


def tool_format_for(engine: Engine) -> ToolFormat:
    """The tool format of ``engine``'s chat template (``generic`` without a usable template of its own)."""
    template = engine.template if engine.capabilities.tools else None
    if template is None or template.notice:
        return format_for_template(None)
    return format_for_template(template.source)


def build_grammar(spec: OutputSpec, fmt: ToolFormat) -> str | None:
    """The GBNF for ``spec`` in ``fmt`` (None: nothing to constrain). Cached per schema underneath."""
    tools = spec.callable_tools
    if tools:
        answer = schema_rules(spec.response_schema, "answer") if spec.response_schema is not None else None
        return fmt.grammar(tools, required=spec.must_call, parallel=spec.parallel_tool_calls, answer=answer)
    if spec.response_schema is not None:
        return gbnf_for_schema(spec.response_schema)
    return None


def prepare(
    engine: Engine, messages: Sequence[ChatMessage], spec: OutputSpec
) -> tuple[ToolFormat, list[ChatMessage], dict[str, Any]]:
    """The format, the conversation as the engine should get it, and the keyword arguments for ``stream_chat``."""
    fmt = tool_format_for(engine)
    tools = spec.callable_tools
    prepared = fmt.prepare(messages, tools, spec.must_call)
    extra: dict[str, Any] = {}
    if fmt.native and tools:
        extra["tools"] = [t.to_openai() for t in tools]
    return fmt, prepared, extra


def count_prompt_tokens(engine: Engine, messages: Sequence[ChatMessage], spec: OutputSpec) -> int:
    """Tokens of the prompt ``stream_structured`` will send (tools included)."""
    _, prepared, extra = prepare(engine, messages, spec)
    # ``extra`` holds ``tools`` only for a native tool format, i.e. an engine that renders its own template
    # and takes them (llama.cpp, MLX), as ``stream_chat`` gets them below.
    return engine.count_chat_tokens(prepared, **extra)


def stream_structured(
    engine: Engine,
    messages: Sequence[ChatMessage],
    spec: OutputSpec,
    sampling: SamplingSettings | None = None,
    cancel: CancelToken | None = None,
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> Generator[GenerationChunk, None, StructuredResult]:
    """Answer ``messages`` as ``spec`` asks, streaming answer text; returns the parsed ``StructuredResult``.

    Args:
        max_attempts: tries for engines without grammars (1: no retry; an agent feeds problems back itself).
    Yields:
        ``GenerationChunk``s of answer text (never of a call's text).
    """
    sampling = sampling or SamplingSettings()
    fmt, prepared, extra = prepare(engine, messages, spec)
    tools = spec.callable_tools
    grammar = build_grammar(spec, fmt)
    constrained = grammar is not None and engine.capabilities.grammar
    if constrained:
        extra["grammar"] = grammar
        max_attempts = 1
    conversation = list(prepared)
    attempt = 0
    while True:
        attempt += 1
        splitter = _Splitter(fmt if tools else None, hold_all=spec.response_schema is not None and not constrained)
        stream = engine.stream_chat(conversation, sampling, cancel, **extra)
        while True:
            try:
                chunk = next(stream)
            except StopIteration as done:
                result: GenerationResult = done.value
                break
            text = splitter.feed(chunk.text)
            if text:
                yield replace(chunk, text=text)
        outcome = _read(result, fmt, spec, tools, attempt, constrained)
        if not outcome.problems or attempt >= max_attempts or result.finish_reason == "cancelled":
            rest = outcome.content if splitter.hold_all else splitter.flush()
            if rest and not outcome.tool_calls:
                yield GenerationChunk(rest, result.completion_tokens, result.generation_s)
            return outcome
        conversation += [
            {"role": "assistant", "content": result.text},
            {
                "role": "user",
                "content": "That reply was not valid: " + "; ".join(outcome.problems) + ". Reply again, correctly.",
            },
        ]
        if sampling.seed is not None:
            sampling = sampling.with_changes(seed=sampling.seed + 1)


def _read(
    result: GenerationResult,
    fmt: ToolFormat,
    spec: OutputSpec,
    tools: Sequence[ToolSpec],
    attempt: int,
    constrained: bool,
) -> StructuredResult:
    problems: list[str] = []
    content = result.text
    calls: tuple[ToolCall, ...] = ()
    if tools:
        reply = fmt.parse(result.text)
        content, calls = reply.content, reply.calls
        problems += reply.problems
        for call in calls:
            problems += call_problems(call, tools)
        if spec.must_call and not calls and not problems:
            problems.append("the answer called no tool, and one was required")
    value = None
    if spec.response_schema is not None and not calls and not problems:
        try:
            value = parse_json(content, spec.response_schema)
        except InvalidOutput as exc:
            problems += exc.problems
    if result.finish_reason == "length" and problems:
        problems.append("the answer was cut at max_tokens")
    return StructuredResult(result, content, tuple(calls), value, tuple(problems), attempt, constrained, fmt.name)
