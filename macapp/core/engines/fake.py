"""``FakeEngine``: an engine whose answers are chosen by its caller, for tests of the logic around a model.

It speaks the whole ``Engine`` protocol (load progress and cancel, token counts, streaming that
returns a ``GenerationResult``, cancel honoured between chunks) with no model behind it:

    engine = FakeEngine()
    engine.enqueue(["Hello", " world"])
    chunks, result = drain(engine.stream_chat([{"role": "user", "content": "hi"}]))
    engine.prompts[-1]  # the messages it was given

Each queued chunk counts as one token, so ``max_tokens`` cuts an answer at a chunk boundary, and a stop
string (``SamplingSettings.stop``) ends the answer where it begins inside a chunk. Tokens of
text are counted as words and punctuation marks, and a conversation is rendered as ChatML, so counts
grow with the text the way a real tokenizer's do. It lives in the core (not in tests/) so selftests and
demos can drive the same code paths without a model file.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass

from macapp.core.engines.base import (
    AdapterFiles,
    ChatMessage,
    EngineCapabilities,
    FinishReason,
    GenerationChunk,
    GenerationResult,
    SamplingSettings,
    refuse_unsupported,
)
from macapp.core.engines.templates import render_chatml
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken, Progress

_TOKEN = re.compile(r"\w+|[^\w\s]")
LOAD_STEPS = 4


@dataclass(frozen=True)
class ScriptedAnswer:
    """One queued answer: its chunks, and how it ends when every chunk went out."""

    chunks: tuple[str, ...]
    finish_reason: FinishReason = "stop"


class FakeEngine:
    """A scriptable engine: ``enqueue`` answers, then ``stream_chat`` streams them in order."""

    name = "fake"
    capabilities = EngineCapabilities()  # renders ChatML itself, no grammar, no adapters
    template = None

    def __init__(
        self,
        model_id: str = "fake-model",
        *,
        n_ctx: int = 4096,
        chunk_delay_s: float = 0.0,
        load_error: UserError | None = None,
    ) -> None:
        self.model_id = model_id
        self.label = model_id  # what the window and the CLI call the model
        self.chunk_delay_s = chunk_delay_s  # a pause before each chunk, for tests that stop an answer midway
        self.load_error = load_error  # raised by load(), as a model that fails to load would
        self.template_notice: str | None = None
        self.prompts: list[list[ChatMessage]] = []  # every conversation stream_chat was given, in order
        self.samplings: list[SamplingSettings] = []
        self._n_ctx = n_ctx
        self._loaded = False
        self._answers: deque[ScriptedAnswer] = deque()

    # -- scripting -----------------------------------------------------------------------------

    def enqueue(self, chunks: Iterable[str], finish_reason: FinishReason = "stop") -> FakeEngine:
        """Queue the next answer, as the chunks it streams in; returns the engine (calls chain)."""
        self._answers.append(ScriptedAnswer(tuple(chunks), finish_reason))
        return self

    def enqueue_call(self, name: str, arguments: dict | None = None, *more: tuple[str, dict]) -> FakeEngine:
        """Queue an answer that calls tool ``name`` (and the ``(name, arguments)`` pairs in ``more``), written
        as a model without a native tool format writes calls (``tool_calls.GenericFormat``)."""
        calls = [{"name": name, "arguments": arguments or {}}, *({"name": n, "arguments": a} for n, a in more)]
        return self.enqueue([json.dumps({"tool_calls": calls}, ensure_ascii=False)])

    @property
    def pending(self) -> int:
        """Answers queued and not yet given."""
        return len(self._answers)

    # -- the Engine protocol -------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self, cancel: CancelToken | None = None) -> Iterator[Progress]:
        for step in range(LOAD_STEPS):
            if cancel is not None:
                cancel.raise_if_cancelled()
            yield Progress("loading", step, LOAD_STEPS, f"Loading {self.model_id}")
        if self.load_error is not None:
            raise self.load_error
        self._loaded = True
        yield Progress("loading", LOAD_STEPS, LOAD_STEPS, f"Loaded {self.model_id}")

    def unload(self) -> None:
        self._loaded = False

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN.findall(text))

    def use_adapter(self, adapter: AdapterFiles | None) -> None:
        refuse_unsupported(self, adapter=adapter)

    def count_chat_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[dict] | None = None) -> int:
        refuse_unsupported(self, tools=tools)
        return self.count_tokens(render_chatml(messages))

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        sampling: SamplingSettings | None = None,
        cancel: CancelToken | None = None,
        *,
        tools: Sequence[dict] | None = None,
        grammar: str | None = None,
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """Stream the next queued answer; ``UserError`` when none is queued or the prompt overflows."""
        refuse_unsupported(self, tools=tools, grammar=grammar)
        self._require()
        self.prompts.append([ChatMessage(role=m["role"], content=m["content"]) for m in messages])
        return (yield from self._answer(self.count_chat_tokens(messages), sampling, cancel))

    def stream_completion(
        self, prompt: str, sampling: SamplingSettings | None = None, cancel: CancelToken | None = None
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """Stream the next queued answer as the continuation of raw ``prompt`` text."""
        self._require()
        self.prompts.append([ChatMessage(role="user", content=prompt)])
        return (yield from self._answer(self.count_tokens(prompt), sampling, cancel))

    # -- internals -----------------------------------------------------------------------------

    def _require(self) -> None:
        if not self._loaded:
            raise UserError("No model is loaded", hint="load a model first")

    def _answer(
        self, prompt_tokens: int, sampling: SamplingSettings | None, cancel: CancelToken | None
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        sampling = sampling or SamplingSettings()
        self.samplings.append(sampling)
        if prompt_tokens >= self._n_ctx:
            raise UserError(f"The prompt is {prompt_tokens} tokens; the context window holds {self._n_ctx}")
        if not self._answers:
            raise UserError(f"{self.model_id} has no answer queued", hint="call enqueue() before stream_chat()")
        answer = self._answers.popleft()
        room = self._n_ctx - prompt_tokens
        started = time.perf_counter()
        text, sent = "", 0
        finish: FinishReason = answer.finish_reason
        for chunk in answer.chunks:
            if 0 < sampling.max_tokens <= sent:
                finish = "length"
                break
            if sent >= room:
                finish = "context"
                break
            if self.chunk_delay_s:
                (cancel or CancelToken()).wait(self.chunk_delay_s)  # wakes at once when cancelled
            if cancel is not None and cancel.cancelled:
                finish = "cancelled"
                break
            stop_at = _first_stop(chunk, sampling.stop)
            if stop_at is not None:
                cut = chunk[:stop_at]
                sent += 1
                if cut:
                    text += cut
                    yield GenerationChunk(cut, sent, time.perf_counter() - started)
                finish = "stop"
                break
            text += chunk
            sent += 1
            yield GenerationChunk(chunk, sent, time.perf_counter() - started)
        ended = time.perf_counter()
        return GenerationResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            prompt_eval_tokens=prompt_tokens,
            completion_tokens=sent,
            prompt_s=0.0,
            generation_s=ended - started,
        )


def _first_stop(chunk: str, stops: Sequence[str]) -> int | None:
    """Where the earliest stop string begins in ``chunk``, or None (a fake's stop never spans two chunks)."""
    found = [i for s in stops if s and (i := chunk.find(s)) >= 0]
    return min(found) if found else None
