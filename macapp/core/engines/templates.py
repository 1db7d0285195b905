"""Chat templates from GGUF metadata (``tokenizer.chat_template``), rendered in a Jinja sandbox.

A GGUF file is untrusted input and its template is a program, so it runs in jinja2's
``ImmutableSandboxedEnvironment`` set up like Hugging Face transformers (``raise_exception``,
``strftime_now``, a ``tojson`` that keeps non-ASCII). Any unsafe access fails the render at once
(no silent empty string). The sandbox also bounds what a template may cost (``template_limits``):
a render stops after ``RENDER_TIMEOUT_S``, values and output are capped in size, and operations
that would allocate too much are refused before they run. A missing, broken, unsafe, failing or
too costly template never raises: the prompt falls back to ChatML with a one-line notice for the
user. A template that was too costly once is not run again for the rest of the process.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Template
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError

from macapp.core.engines.base import ChatMessage
from macapp.core.engines.template_limits import Budget, LimitedSandbox, TemplateTooCostly, limited, size_of

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
MAX_INPUT_SIZE = 1 << 40  # no limit on what the user sends; only counted
_REMEMBERED_MAX = 64  # costly template sources remembered (a few per model in a library)
_STRFTIME_WIDTH = re.compile(r"%[-_0^#]*\d{4,}")  # glibc pads to any width: %1000000000Y


class _TemplateRaised(TemplateError):
    """The template called ``raise_exception(message)``."""


def _raise_exception(message: Any = "") -> None:
    raise _TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    if _STRFTIME_WIDTH.search(str(fmt)):
        raise TemplateTooCostly("formats a date with a width of a thousand or more")
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _Sandbox(LimitedSandbox):
    """Refuses unsafe attributes with an error instead of jinja's silent undefined."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def _make_environment() -> _Sandbox:
    env = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.add_filter("tojson", _tojson)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _make_environment()


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt text; ``notice`` is a one-line message for the user when ChatML was used instead."""

    text: str
    notice: str | None = None


def _one_line(text: object) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def _describe(error: BaseException) -> str:
    if isinstance(error, TemplateError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _broken(detail: str) -> str:
    return f"This model's chat template is broken ({_one_line(detail)}); using {FALLBACK_NAME} instead."


def _too_costly(error: TemplateTooCostly) -> str:
    return f"This model's chat template {error.reason}; using {FALLBACK_NAME} instead."


# Template source -> notice, for templates that ran out of time or memory: later turns fall back at once.
_COSTLY: dict[str, str] = {}


def _remember_costly(source: str, notice: str) -> None:
    if len(_COSTLY) >= _REMEMBERED_MAX:
        del _COSTLY[next(iter(_COSTLY))]
    _COSTLY[source] = notice


@lru_cache(maxsize=16)
def _compile(source: str) -> tuple[Template | None, str | None]:
    """(template, None) or (None, notice); cached so reopening a model costs nothing."""
    try:
        with limited(Budget()):  # constant parts are evaluated while compiling
            return _ENV.from_string(source), None
    except TemplateTooCostly as e:
        return None, _too_costly(e)
    except TemplateSyntaxError as e:
        return None, _broken(f"{e.message} at line {e.lineno}")
    # A model's template is untrusted input: deep nesting (RecursionError), sandbox refusals while compiling, ...
    except Exception as e:  # noqa: BLE001
        return None, _broken(_describe(e))


def _input_size(messages: Sequence[ChatMessage], extra: dict[str, Any]) -> int:
    """Characters in the conversation and the extra variables (tools): a template may copy them."""
    text = 0
    for message in messages:
        content = message.get("content")
        text += len(content) if type(content) is str else size_of(content, MAX_INPUT_SIZE)
    return text + (size_of(extra, MAX_INPUT_SIZE) if extra else 0)


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
        self._template: Template | None
        self.notice: str | None
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

    def render(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True, **extra: Any
    ) -> RenderedPrompt:
        """The prompt for ``messages``; ``extra`` reaches the template as variables (``tools``, ...)."""
        if self._template is None:
            return self._fallback(messages, add_generation_prompt, self.notice or "")
        if self.source in _COSTLY:
            return self._fallback(messages, add_generation_prompt, _COSTLY[self.source])
        budget = Budget.for_input(_input_size(messages, extra))  # both tries share it
        try:
            return RenderedPrompt(self._run(messages, add_generation_prompt, extra, budget))
        except _TemplateRaised as e:
            first = e
        except SecurityError as e:
            return self._fallback(messages, add_generation_prompt, self._unsafe(e))
        except TemplateTooCostly as e:
            return self._fallback(messages, add_generation_prompt, self._costly(e))
        except Exception as e:  # noqa: BLE001 - a model's template is untrusted code: any failure means the fallback
            return self._fallback(messages, add_generation_prompt, self._failed(e))
        # Gemma, Mistral v1 and others refuse a system turn: merge it into the first user turn (as LM Studio does).
        if messages and messages[0]["role"] == "system":
            try:
                return RenderedPrompt(self._run(merge_system_into_user(messages), add_generation_prompt, extra, budget))
            except SecurityError as e:
                return self._fallback(messages, add_generation_prompt, self._unsafe(e))
            except TemplateTooCostly as e:
                return self._fallback(messages, add_generation_prompt, self._costly(e))
            except Exception:  # noqa: BLE001 - the merged try failed too: the first error is the one reported
                pass
        notice = f"This model's chat template refused the conversation ({_one_line(first)}); using {FALLBACK_NAME}."
        return self._fallback(messages, add_generation_prompt, notice)

    def _run(
        self, messages: Sequence[ChatMessage], add_generation_prompt: bool, extra: dict[str, Any], budget: Budget
    ) -> str:
        assert self._template is not None
        variables: dict[str, Any] = {"tools": None, "bos_token": self.bos_token, "eos_token": self.eos_token}
        variables.update(extra)
        variables["messages"] = list(messages)
        variables["add_generation_prompt"] = add_generation_prompt
        with limited(budget):
            return self._template.render(variables)

    def _unsafe(self, error: Exception) -> str:
        detail = _one_line(error)
        return f"This model's chat template tried something unsafe ({detail}); it was not run, using {FALLBACK_NAME}."

    def _costly(self, error: TemplateTooCostly) -> str:
        notice = _too_costly(error)
        _remember_costly(self.source, notice)
        return notice

    def _failed(self, error: Exception) -> str:
        return f"This model's chat template failed ({_one_line(_describe(error))}); using {FALLBACK_NAME} instead."

    def _fallback(self, messages: Sequence[ChatMessage], add_generation_prompt: bool, notice: str) -> RenderedPrompt:
        if self._template is not None:
            log.warning("chat template of %s: %s", self.name or "a model", notice)
        return RenderedPrompt(render_chatml(messages, add_generation_prompt=add_generation_prompt), notice)
