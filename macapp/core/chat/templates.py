"""Chat templates from GGUF metadata (``tokenizer.chat_template``), rendered in a Jinja sandbox.

A GGUF file is untrusted input and its template is a program, so it runs in jinja2's
``ImmutableSandboxedEnvironment`` set up like Hugging Face transformers (``raise_exception``,
``strftime_now``, a ``tojson`` that keeps non-ASCII). Any unsafe access fails the render at once
(no silent empty string). A missing, broken, unsafe or failing template never raises: the prompt
falls back to ChatML with a one-line notice for the user. The sandbox stops code execution and
mutation, not resource use: a template can still loop for long (huge allocations end in
``MemoryError``, which falls back like any other error).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Template
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from macapp.core.engines.base import ChatMessage

log = logging.getLogger(__name__)

FALLBACK_NAME = "ChatML"
FALLBACK_STOP_STRINGS: tuple[str, ...] = ("<|im_end|>",)

# End-of-turn markers old GGUFs often don't flag as end-of-generation tokens.
END_OF_TURN_MARKERS: tuple[str, ...] = (
    "<|im_end|>",  # ChatML: Qwen, Yi, Hermes, SmolLM
    "<|eot_id|>",  # Llama 3
    "<|eom_id|>",  # Llama 3.1 tool calls
    "<|eot|>",  # Llama 4
    "<end_of_turn>",  # Gemma
    "<|end|>",  # Phi-3, gpt-oss
    "<|return|>",  # gpt-oss
    "<|end_of_turn|>",  # OpenChat
    "<|END_OF_TURN_TOKEN|>",  # Command-R
    "<｜end▁of▁sentence｜>",  # DeepSeek
    "<|endoftext|>",  # Phi-2, GPT-style
    "</s>",  # Llama 2, Mistral, Zephyr
)

_DETAIL_MAX = 160


class _TemplateRaised(TemplateError):
    """The template called ``raise_exception(message)``."""


def _raise_exception(message: Any = "") -> None:
    raise _TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Refuses unsafe attributes with an error instead of jinja's silent undefined."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def _make_environment() -> _Sandbox:
    env = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _make_environment()


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt text; ``notice`` is a one-line message for the user when ChatML was used instead."""

    text: str
    notice: str | None = None


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def _describe(error: BaseException) -> str:
    if isinstance(error, TemplateError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _broken(detail: str) -> str:
    return f"This model's chat template is broken ({_one_line(detail)}); using {FALLBACK_NAME} instead."


@lru_cache(maxsize=16)
def _compile(source: str) -> tuple[Template | None, str | None]:
    """(template, None) or (None, notice); cached so reopening a model costs nothing."""
    try:
        return _ENV.from_string(source), None
    except TemplateSyntaxError as e:
        return None, _broken(f"{e.message} at line {e.lineno}")
    except Exception as e:  # deep nesting (RecursionError), sandbox refusals while compiling, ...
        return None, _broken(_describe(e))


def render_chatml(messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
    """The fallback format: ``<|im_start|>role\\ncontent<|im_end|>\\n`` per turn, then the assistant cue."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def with_system(messages: Sequence[ChatMessage], system_prompt: str | None) -> list[ChatMessage]:
    """The conversation with ``system_prompt`` first (replacing a leading system turn) when it is non-empty."""
    turns = list(messages)
    if not system_prompt or not system_prompt.strip():
        return turns
    if turns and turns[0]["role"] == "system":
        turns = turns[1:]
    return [ChatMessage(role="system", content=system_prompt), *turns]


def merge_system_into_user(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """For templates without a system role: a leading system turn joins the first user turn."""
    if not messages or messages[0]["role"] != "system":
        return list(messages)
    system, rest = messages[0]["content"], list(messages[1:])
    for i, m in enumerate(rest):
        if m["role"] == "user":
            rest[i] = ChatMessage(role="user", content=f"{system}\n\n{m['content']}" if m["content"] else system)
            return rest
    return [ChatMessage(role="user", content=system), *rest]


def template_stop_strings(source: str | None) -> tuple[str, ...]:
    """End-of-turn markers written literally in a template (the engine also stops on llama.cpp's EOG tokens)."""
    if not source:
        return ()
    return tuple(marker for marker in END_OF_TURN_MARKERS if marker in source)


class ChatTemplate:
    """A model's chat template, compiled once; ``render`` always returns a prompt."""

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = "", name: str = ""):
        self.source = source or ""
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.name = name
        if not self.source.strip():
            self._template, self.notice = None, f"This model has no chat template; using {FALLBACK_NAME}."
        else:
            self._template, self.notice = _compile(self.source)
        if self.notice:
            log.info("chat template of %s: %s", name or "a model", self.notice)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """End-of-turn markers of the template, or ChatML's when it cannot be used at all."""
        return FALLBACK_STOP_STRINGS if self._template is None else template_stop_strings(self.source)

    def render(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True,
               **extra: Any) -> RenderedPrompt:
        """The prompt for ``messages``; ``extra`` reaches the template as variables (``tools``, ...)."""
        if self._template is None:
            return self._fallback(messages, add_generation_prompt, self.notice or "")
        try:
            return RenderedPrompt(self._run(messages, add_generation_prompt, extra))
        except _TemplateRaised as e:
            first = e
        except SecurityError as e:
            return self._fallback(messages, add_generation_prompt, self._unsafe(e))
        except Exception as e:
            return self._fallback(messages, add_generation_prompt, self._failed(e))
        # Gemma, Mistral v1 and others refuse a system turn: merge it into the first user turn (as LM Studio does).
        if messages and messages[0]["role"] == "system":
            try:
                return RenderedPrompt(self._run(merge_system_into_user(messages), add_generation_prompt, extra))
            except SecurityError as e:
                return self._fallback(messages, add_generation_prompt, self._unsafe(e))
            except Exception:
                pass
        notice = f"This model's chat template refused the conversation ({_one_line(first)}); using {FALLBACK_NAME}."
        return self._fallback(messages, add_generation_prompt, notice)

    def _run(self, messages: Sequence[ChatMessage], add_generation_prompt: bool, extra: dict[str, Any]) -> str:
        assert self._template is not None
        variables: dict[str, Any] = {"tools": None, "bos_token": self.bos_token, "eos_token": self.eos_token}
        variables.update(extra)
        variables["messages"] = list(messages)
        variables["add_generation_prompt"] = add_generation_prompt
        return self._template.render(variables)

    def _unsafe(self, error: Exception) -> str:
        detail = _one_line(error)
        return f"This model's chat template tried something unsafe ({detail}); it was not run, using {FALLBACK_NAME}."

    def _failed(self, error: Exception) -> str:
        return f"This model's chat template failed ({_one_line(_describe(error))}); using {FALLBACK_NAME} instead."

    def _fallback(self, messages: Sequence[ChatMessage], add_generation_prompt: bool, notice: str) -> RenderedPrompt:
        if self._template is not None:
            log.warning("chat template of %s: %s", self.name or "a model", notice)
        return RenderedPrompt(render_chatml(messages, add_generation_prompt=add_generation_prompt), notice)
