"""The OpenAI wire format: request bodies checked into typed requests, results turned into response documents.

Sampling: ``temperature``, ``top_p``, ``max_tokens`` (or ``max_completion_tokens``), ``stop`` and ``seed`` are
honoured; what the request leaves out comes from Orchard's balanced preset. llama.cpp's ``top_k``, ``min_p`` and
``repeat_penalty`` are accepted as extensions (as llama.cpp's own server does).

Chat also takes ``tools``, ``tool_choice`` (auto, none, required or a named function), ``parallel_tool_calls``
and ``response_format`` (text, json_object, json_schema); calls and JSON answers are held to their schemas
(``engines.constrained``). A field the server understands but cannot honour is a 400 naming it, never
silently dropped: ``n`` > 1, ``logprobs``/``top_logprobs``, a non-empty ``logit_bias``, non-zero
``presence_penalty``/``frequency_penalty`` (use ``repeat_penalty``), audio output, image or audio content,
and the legacy ``functions``. Hints that change no answer (``user``, ``metadata``, ``store``, ...) are ignored.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any, TypeGuard, cast

import numpy as np

from macapp.core.engines.base import ChatMessage, GenerationResult, SamplingSettings
from macapp.core.engines.constrained import JSON_OBJECT_SCHEMA, OutputSpec, StructuredResult, ToolChoice
from macapp.core.engines.tool_calls import ToolSpec
from macapp.core.errors import UserError
from macapp.core.server.errors import bad_request

FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "context": "length",
    "cancelled": "stop",
    "tool_calls": "tool_calls",
}
COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions; chat runs until the context is full
MAX_STOPS = 4
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_TOOL_CHOICES = ("auto", "none", "required")


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    sampling: SamplingSettings
    stream: bool
    include_usage: bool
    output: OutputSpec = OutputSpec()


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompt: str
    sampling: SamplingSettings
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    as_base64: bool


@dataclass(frozen=True)
class TokenizeRequest:
    """vLLM's ``POST /tokenize``: ``prompt`` text or chat ``messages`` (rendered with the generation cue)."""

    model: str
    prompt: str | None
    messages: list[ChatMessage] | None


def _field(
    body: dict,
    name: str,
    kinds: type | tuple[type, ...],
    default: Any = None,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise bad_request(f"'{name}' must be a number, not a boolean", param=name)
    if not isinstance(value, kinds):
        raise bad_request(f"'{name}' has the wrong type ({type(value).__name__})", param=name)
    number = cast(float, value)  # bounds come only with numeric kinds
    if lo is not None and number < lo or hi is not None and number > hi:
        raise bad_request(f"'{name}' must be between {lo} and {hi} (got {value})", param=name)
    return value


def _model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required: one of the ids GET /v1/models lists", param="model")
    return model


def _stream_options(body: dict) -> tuple[bool, bool]:
    stream = bool(_field(body, "stream", bool, False))
    options = _field(body, "stream_options", dict, {})
    return stream, bool(stream and options.get("include_usage"))


def _refuse_unsupported(body: dict) -> None:
    """400 for fields this server understands but cannot honour (an answer must not quietly differ)."""
    if _field(body, "n", int, 1) != 1:
        raise bad_request("only n=1 is supported", param="n")
    if body.get("logprobs") or body.get("top_logprobs"):
        param = "logprobs" if body.get("logprobs") else "top_logprobs"
        raise bad_request("logprobs are not supported by this server", param=param)
    if body.get("logit_bias"):
        raise bad_request("logit_bias is not supported by this server", param="logit_bias")
    for name in ("presence_penalty", "frequency_penalty"):
        if _field(body, name, (int, float), 0, lo=-2, hi=2) != 0:
            raise bad_request(
                f"{name} is not supported by this server; use repeat_penalty (1 = off, 1.1 = mild)", param=name
            )
    if body.get("audio") is not None or any(m != "text" for m in body.get("modalities") or ()):
        raise bad_request("only text output is supported", param="modalities")
    for name in ("functions", "function_call"):
        if body.get(name) is not None:
            raise bad_request(f"'{name}' is the legacy form: send 'tools' and 'tool_choice'", param=name)


def _sampling(body: dict, default_max_tokens: int) -> SamplingSettings:
    _refuse_unsupported(body)
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _field(body, name, int, default_max_tokens, lo=1, hi=1 << 30)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise bad_request("'stop' must be a string or a list of strings", param="stop")
    if stop and len(stop) > MAX_STOPS:
        raise bad_request(f"'stop' takes at most {MAX_STOPS} sequences", param="stop")
    base = SamplingSettings()
    return base.with_changes(
        temperature=float(_field(body, "temperature", (int, float), base.temperature, lo=0, hi=2)),
        top_p=float(_field(body, "top_p", (int, float), base.top_p, lo=0, hi=1)),
        top_k=_field(body, "top_k", int, base.top_k, lo=0, hi=1 << 20),
        min_p=float(_field(body, "min_p", (int, float), base.min_p, lo=0, hi=1)),
        repeat_penalty=float(_field(body, "repeat_penalty", (int, float), base.repeat_penalty, lo=0, hi=10)),
        seed=_seed(_field(body, "seed", int, None, lo=-(1 << 63), hi=(1 << 64) - 1)),
        max_tokens=max_tokens,
        stop=tuple(s for s in stop or () if s),
    )


def _seed(seed: int | None) -> int | None:
    """Any 64-bit seed as one llama.cpp takes (uint32, where 0xFFFFFFFF would mean 'random')."""
    return None if seed is None else seed % 0xFFFFFFFF


def _content(message: dict, i: int) -> str:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise bad_request(
                    f"messages[{i}]: only text content is supported (got a {kind!r} part)", param="messages"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise bad_request(f"messages[{i}].content must be a string or a list of text parts", param="messages")


def _tool_calls(message: dict, i: int) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    if not isinstance(calls, list) or not all(
        isinstance(c, dict) and isinstance(c.get("function"), dict) and isinstance(c["function"].get("name"), str)
        for c in calls
    ):
        raise bad_request(
            f"messages[{i}].tool_calls must be a list of {{'id', 'type': 'function', 'function': "
            "{'name', 'arguments'}}",
            param="messages",
        )
    return [
        {
            "id": str(c.get("id") or ""),
            "type": "function",
            "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or "{}"},
        }
        for c in calls
    ]


def parse_messages(raw: Any) -> list[ChatMessage]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    messages: list[ChatMessage] = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{i}] must be an object", param="messages")
        raw_role = message.get("role")
        role = _ROLES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            raise bad_request(
                f"messages[{i}].role must be system, user or assistant (got {message.get('role')!r})", param="messages"
            )
        turn: ChatMessage = {"role": role, "content": _content(message, i)}
        if role == "assistant" and message.get("tool_calls"):
            turn["tool_calls"] = _tool_calls(message, i)
        if role == "tool":
            turn["tool_call_id"] = str(message.get("tool_call_id") or "")
            if isinstance(message.get("name"), str):
                turn["name"] = message["name"]
        messages.append(turn)
    _name_tool_results(messages)
    return messages


def _name_tool_results(messages: list[ChatMessage]) -> None:
    """Give each tool result the name of the call it answers (templates and the generic format show it)."""
    names = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls", ()) if c["id"]}
    for message in messages:
        if message["role"] == "tool" and "name" not in message and message["tool_call_id"] in names:
            message["name"] = names[message["tool_call_id"]]


def _is_tool_choice(value: object) -> TypeGuard[ToolChoice]:
    return value in _TOOL_CHOICES


def parse_output(body: dict) -> OutputSpec:
    """``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``response_format`` as an ``OutputSpec``."""
    raw_tools = body.get("tools")
    if raw_tools is not None and not isinstance(raw_tools, list):
        raise bad_request("'tools' must be a list", param="tools")
    try:
        tools = tuple(ToolSpec.from_openai(t) for t in raw_tools or ())
    except UserError as exc:
        raise bad_request(str(exc), param="tools") from exc
    if len({t.name for t in tools}) != len(tools):
        raise bad_request("two tools have the same name", param="tools")
    choice, function = body.get("tool_choice") or ("auto" if tools else "none"), None
    if isinstance(choice, dict):
        fn = choice.get("function")
        if choice.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request(
                "tool_choice must be auto, none, required or {'type': 'function', 'function': {'name': ...}}",
                param="tool_choice",
            )
        choice, function = "required", fn["name"]
    if not _is_tool_choice(choice):
        raise bad_request(
            f"tool_choice must be auto, none, required or a function (got {choice!r})", param="tool_choice"
        )
    try:
        return OutputSpec(
            tools,
            choice,
            function,
            _response_schema(body.get("response_format")),
            bool(_field(body, "parallel_tool_calls", bool, True)),
        )
    except UserError as exc:
        raise bad_request(str(exc), param="response_format" if "schema" in str(exc) else "tool_choice") from exc


def _response_schema(fmt: Any) -> dict[str, Any] | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return JSON_OBJECT_SCHEMA
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad_request(
                "response_format json_schema needs 'json_schema': {'name', 'schema': {...}}", param="response_format"
            )
        from macapp.core.engines.structured import check_schema

        try:
            check_schema(schema)
        except UserError as exc:
            raise bad_request(str(exc), param="response_format") from exc
        return schema
    raise bad_request(
        "response_format must be {'type': 'text' | 'json_object' | 'json_schema'}", param="response_format"
    )


def parse_chat(body: dict) -> ChatRequest:
    stream, usage = _stream_options(body)
    return ChatRequest(
        _model(body), parse_messages(body.get("messages")), _sampling(body, 0), stream, usage, parse_output(body)
    )


def parse_completion(body: dict) -> CompletionRequest:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request(
            "'prompt' must be one string (lists of prompts and token ids are not supported)", param="prompt"
        )
    stream, usage = _stream_options(body)
    return CompletionRequest(_model(body), prompt, _sampling(body, COMPLETION_DEFAULT_MAX_TOKENS), stream, usage)


def parse_embeddings(body: dict) -> EmbeddingRequest:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise bad_request(
            "'input' must be a string or a non-empty list of strings (token ids are not supported)", param="input"
        )
    fmt = _field(body, "encoding_format", str, "float")
    if fmt not in ("float", "base64"):
        raise bad_request("'encoding_format' must be float or base64", param="encoding_format")
    return EmbeddingRequest(_model(body), inputs, fmt == "base64")


def parse_tokenize(body: dict) -> TokenizeRequest:
    if body.get("messages") is not None:
        return TokenizeRequest(_model(body), None, parse_messages(body["messages"]))
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise bad_request("'prompt' (a string) or 'messages' is required", param="prompt")
    return TokenizeRequest(_model(body), prompt, None)


# ------------------------------------------------------------------ responses


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


def usage(result: GenerationResult | StructuredResult) -> dict[str, int]:
    if isinstance(result, StructuredResult):
        result = result.result
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def chat_completion(ident: str, created: int, model: str, result: StructuredResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    if result.tool_calls:
        message["content"] = result.content or None
        message["tool_calls"] = [call.to_openai() for call in result.tool_calls]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH_REASONS[result.finish_reason]}
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(result),
    }


def tool_call_deltas(result: StructuredResult) -> list[dict[str, Any]]:
    """Stream deltas for the calls: each call's id and name, then its arguments (the SDKs join them by index)."""
    deltas = []
    for index, call in enumerate(result.tool_calls):
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        deltas.append({"tool_calls": [{"index": index, "function": {"arguments": call.arguments_json}}]})
    return deltas


def chat_chunk(
    ident: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}


def text_completion(
    ident: str, created: int, model: str, text: str, finish: str | None, result: GenerationResult | None = None
) -> dict[str, Any]:
    """A whole completion (with ``result``) or one streamed piece of one (without)."""
    doc = {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }
    if result is not None:
        doc["usage"] = usage(result)
    return doc


def usage_chunk(
    ident: str, created: int, model: str, obj: str, result: GenerationResult | StructuredResult
) -> dict[str, Any]:
    return {"id": ident, "object": obj, "created": created, "model": model, "choices": [], "usage": usage(result)}


def embeddings(model: str, vectors: np.ndarray, as_base64: bool, prompt_tokens: int) -> dict[str, Any]:
    data = []
    for i, row in enumerate(vectors):
        vector = base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") if as_base64 else [float(x) for x in row]
        data.append({"object": "embedding", "index": i, "embedding": vector})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
