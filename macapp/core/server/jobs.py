"""A request's work on a model: it runs on the model's owner thread and reports back to the event loop.

The owner thread calls ``Job.work(engine, job)``; the job posts events with ``post`` (thread-safe) and the
request handler reads them with ``await job.next_event()``:

- ``("ready", Started)`` once the model is loaded and the request is checked against its context, before
  any text (so errors are still plain HTTP errors, and a streaming response starts only after this);
- ``("chunk", GenerationChunk)`` as text arrives (only for streaming requests);
- ``("done", value)`` with what ``work`` returned, or ``("error", APIError)``.

A job's ``cancel`` token stops its generation at the next token (the client went away, the server stops);
a job cancelled while it still waits in the queue never starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from macapp.core.engines.base import ChatMessage, Engine, GenerationChunk, GenerationResult, SamplingSettings
from macapp.core.engines.constrained import OutputSpec, StructuredResult, count_prompt_tokens, stream_structured
from macapp.core.progress import CancelToken
from macapp.core.server.errors import bad_request

Work = Callable[[Engine, "Job"], Any]


@dataclass(frozen=True)
class Started:
    """The request fits: its prompt's tokens and the model's context."""

    prompt_tokens: int
    n_ctx: int


class Job:
    """One request's work for an owner thread, with its cancel token and its way back to the event loop."""

    def __init__(self, work: Work, *, streaming: bool = False) -> None:
        self.work = work
        self.streaming = streaming
        self.cancel = CancelToken()
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def post(self, kind: str, value: Any = None) -> None:
        """Hand an event to the request's handler (from any thread)."""
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.cancel.cancel()

    async def next_event(self) -> tuple[str, Any]:
        return await self._events.get()


def _check_fits(prompt_tokens: int, sampling: SamplingSettings, n_ctx: int) -> None:
    if prompt_tokens >= n_ctx:
        raise bad_request(
            f"This model's context holds {n_ctx} tokens; the prompt alone takes {prompt_tokens}.",
            param="messages",
            code="context_length_exceeded",
        )
    if sampling.max_tokens and prompt_tokens + sampling.max_tokens > n_ctx:
        raise bad_request(
            f"This model's context holds {n_ctx} tokens: the prompt takes {prompt_tokens} and "
            f"max_tokens asks for {sampling.max_tokens} more (at most {n_ctx - prompt_tokens}).",
            param="max_tokens",
            code="context_length_exceeded",
        )


def _run_stream(job: Job, stream: Generator[GenerationChunk, None, Any]) -> Any:
    while True:
        try:
            chunk = next(stream)
        except StopIteration as done:
            return done.value
        if job.streaming:
            job.post("chunk", chunk)


def chat_work(messages: Sequence[ChatMessage], sampling: SamplingSettings, output: OutputSpec | None = None) -> Work:
    """Answer ``messages`` with the model's chat template, held to ``output`` (tools, a JSON schema)."""
    output = output or OutputSpec()

    def work(engine: Engine, job: Job) -> StructuredResult:
        prompt_tokens = count_prompt_tokens(engine, messages, output)
        _check_fits(prompt_tokens, sampling, engine.n_ctx)
        job.post("ready", Started(prompt_tokens, engine.n_ctx))
        return _run_stream(job, stream_structured(engine, messages, output, sampling, job.cancel))

    return work


def completion_work(prompt: str, sampling: SamplingSettings) -> Work:
    """Continue raw ``prompt`` text (no template)."""

    def work(engine, job: Job) -> GenerationResult:
        prompt_tokens = engine.count_tokens(prompt) + 1  # + the BOS token most models start with
        _check_fits(prompt_tokens, sampling, engine.n_ctx)
        job.post("ready", Started(prompt_tokens, engine.n_ctx))
        return _run_stream(job, engine.stream_completion(prompt, sampling, job.cancel))

    return work


def count_work(prompt: str | None, messages: Sequence[ChatMessage] | None) -> Work:
    """Tokens of ``prompt`` (as text) or of ``messages`` rendered with the generation cue."""

    def work(engine: Engine, job: Job) -> Started:
        count = engine.count_chat_tokens(messages) if messages is not None else engine.count_tokens(prompt or "")
        return Started(count, engine.n_ctx)

    return work
