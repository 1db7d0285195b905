"""What the Chat page runs on its engine thread: load and unload a model, count the context, answer.

Every function here touches the engine, so the page runs them in ``Worker``s on its one-thread
pool: one engine, one thread at a time. Core modules are imported inside the functions.

``coalesce`` thins a reply stream for the GUI: a small model streams thousands of chunks a
second, and one queued signal per chunk would keep the event loop busy delivering them. Chunks
are merged until ``interval`` has passed since the last yield, so a fast model sends ~100
batches a second and a slow one still sends every token the moment it arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from macapp.core.engines.base import GenerationChunk
from macapp.core.progress import CancelToken, Progress

if TYPE_CHECKING:
    from macapp.core.chat.session import ContextPlan
    from macapp.core.engines.base import Engine

BATCH_INTERVAL_S = 0.01  # s: answer text reaches the GUI in batches this far apart (~100 signals a second at most)


def load_engine(
    ref: str, n_ctx: int, kv_type: str, budget: int | None, cancel: CancelToken, previous: Engine | None = None
) -> Generator[Progress, None, Engine]:
    """Unload ``previous``, open ``ref`` with ``open_engine`` (a GGUF that doesn't fit at ``n_ctx`` is refused
    with a ``UserError``), load it.

    ``cancel`` goes to the engine (not the Worker) so a cancelled load frees what it loaded.
    """
    from macapp.core.engines import open_engine
    from macapp.core.hardware import default_backend

    if previous is not None:
        previous.unload()
    threads = window_threads(default_backend())
    engine = open_engine(ref, n_ctx=n_ctx, kv_type=kv_type, budget=budget, n_threads=threads)
    yield from engine.load(cancel)
    return engine


def window_threads(backend: str) -> int | None:
    """CPU threads for an engine behind the window: on the CPU backend one core stays free for the GUI.

    llama.cpp's threads spin between steps; with all cores taken the event loop waits for the
    scheduler (measured on 2 CPUs: 10-25 ms stalls with 2 threads, and far worse when anything
    else runs). With Metal the GPU does the work, so the engine's default stands (None).
    """
    from macapp.core.engines import cpu_threads

    if (chosen := cpu_threads()) is not None:  # the user's Settings > CPU threads
        return chosen
    if backend != "cpu":
        return None
    from macapp.core.engines.llama_engine import default_threads

    return max(1, default_threads() - 1)


def unload_engine(engine: Engine) -> None:
    engine.unload()


def count_context(
    engine: Engine, conversation_id: int | None, store, system_prompt: str, max_tokens: int
) -> ContextPlan:
    """What the next message would start from: the history that fits, and how many tokens it takes."""
    from macapp.core.chat.session import as_chat, plan_context

    history = as_chat(store.thread(conversation_id)) if conversation_id is not None else []
    return plan_context(engine, history, system_prompt, max_tokens)


def merge_chunks(chunks: list[GenerationChunk]) -> GenerationChunk:
    """One chunk for several: their text, the last one's counts."""
    last = chunks[-1]
    return GenerationChunk("".join(c.text for c in chunks), last.completion_tokens, last.elapsed_s)


def coalesce(
    stream: Generator,
    interval: float = BATCH_INTERVAL_S,
    *,
    kind: type = GenerationChunk,
    merge: Callable[[list], object] = merge_chunks,
) -> Generator[object, None, Any]:
    """Forward ``stream`` with its ``kind`` events (answer text) merged by ``merge`` into batches at most
    ``interval`` apart; any other event goes at once, after the batch before it. Returns the stream's value.
    The chat's reply chunks and the agent's answer text both go through here."""
    pending: list = []
    due = time.monotonic() + interval
    try:
        while True:
            try:
                event = next(stream)
            except StopIteration as done:
                if pending:
                    yield merge(pending)
                return done.value
            if isinstance(event, kind):
                pending.append(event)
                if time.monotonic() < due:
                    continue
            if pending:
                yield merge(pending)
                pending = []
                due = time.monotonic() + interval
            if not isinstance(event, kind):
                yield event
    finally:
        stream.close()


def with_adapter(engine: Engine, adapter: str | None, stream: Generator):
    """``stream`` with the tuned adapter named ``adapter`` (None: the base alone) switched on first, on the
    engine's thread (where the generator runs); an engine that takes no adapters refuses one (``UserError``)."""
    from macapp.core.tuning.adapters import engine_adapter

    engine.use_adapter(engine_adapter(adapter))
    return (yield from stream)
