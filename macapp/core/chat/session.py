"""A conversation in progress: fit the history into the context window, stream the answer, save it.

``plan_context`` decides what the model sees: the system prompt always, then as many of the most
recent turns as fit while leaving room for the answer. When turns must go, it drops a little more
than needed (``SLACK``), so the next several turns keep the same prefix and still reuse the cached
conversation instead of re-reading it all.

``ChatSession`` is what the window and ``macapp chat`` drive: ``send``, ``regenerate`` and
``edit_and_resend`` are generators of events — the passages found (``docs.answer.PassagesFound``, only when
documents are attached to the conversation), then a ``ContextPlan``, then ``GenerationChunk``s — that
write the answer to the ``ChatStore`` while it streams (every ``SAVE_INTERVAL_S``: a killed process
keeps all but the last 50 ms, and a commit per token would cost ~2% of decode speed) and return a
``Turn``.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from macapp.core.chat.store import ChatStore, Message, default_title
from macapp.core.engines.base import (
    ChatMessage,
    Engine,
    GenerationChunk,
    GenerationResult,
    SamplingSettings,
    answer_reserve,
)
from macapp.core.engines.templates import with_system
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken

if TYPE_CHECKING:
    from macapp.core.docs.answer import PassagesFound

SLACK = 8  # when trimming, free an extra 1/SLACK of the window
SAVE_INTERVAL_S = 0.05  # a streaming answer reaches the store at least this often (a kill loses at most this)


@dataclass(frozen=True)
class ContextPlan:
    """What goes to the model and how full the window is."""

    messages: list[ChatMessage]
    dropped: int  # earlier messages left out because they no longer fit
    prompt_tokens: int
    n_ctx: int
    reserve: int  # tokens kept free for the answer

    @property
    def notice(self) -> str | None:
        if not self.dropped:
            return None
        noun = "message" if self.dropped == 1 else "messages"
        return (
            f"{self.dropped} earlier {noun} no longer fit in the {self.n_ctx:,}-token context window "
            "and were left out; the system prompt is kept."
        )


@dataclass(frozen=True)
class Turn:
    """One finished exchange: the saved answer and what producing it cost."""

    message: Message
    result: GenerationResult
    plan: ContextPlan

    @property
    def tokens_used(self) -> int:
        return self.result.prompt_tokens + self.result.completion_tokens


TurnStream = Generator["PassagesFound | ContextPlan | GenerationChunk", None, Turn]


def plan_context(
    engine: Engine, history: Sequence[ChatMessage], system_prompt: str = "", max_tokens: int = 0
) -> ContextPlan:
    """Keep the system prompt and the newest turns that fit in ``engine.n_ctx`` minus the answer's room."""
    n_ctx = engine.n_ctx
    reserve = answer_reserve(n_ctx, max_tokens)
    budget = n_ctx - reserve
    turns = [m for m in history if m["role"] != "system"]
    full = with_system(turns, system_prompt)
    tokens = engine.count_chat_tokens(full)
    if tokens <= budget:
        return ContextPlan(full, 0, tokens, n_ctx, reserve)

    starts = [i for i, m in enumerate(turns) if m["role"] == "user"] or [len(turns) - 1]
    target = budget - n_ctx // SLACK
    lo, hi = 0, len(starts) - 1  # find the earliest turn start whose suffix fits the target
    best: tuple[int, int] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        count = engine.count_chat_tokens(with_system(turns[starts[mid] :], system_prompt))
        if count <= target:
            best, hi = (mid, count), mid - 1
        else:
            lo = mid + 1
    if best is None:  # not even the newest turn fits the slack target: settle for the budget
        last = starts[-1]
        count = engine.count_chat_tokens(with_system(turns[last:], system_prompt))
        if count > budget:
            raise UserError(
                f"This message needs {count:,} tokens but the context window holds {n_ctx:,} "
                f"with {reserve:,} kept for the answer",
                hint="shorten it, lower max tokens, or load the model with a larger context",
            )
        best = (len(starts) - 1, count)
    start = starts[best[0]]
    return ContextPlan(with_system(turns[start:], system_prompt), start, best[1], n_ctx, reserve)


def as_chat(messages: Sequence[Message]) -> list[ChatMessage]:
    """Stored messages as the model sees them; a cited answer's ``[n]`` become its ``[file, p. N]`` labels."""
    out: list[ChatMessage] = []
    for m in messages:
        if m.role not in ("user", "assistant", "system"):
            continue
        content = m.content
        if m.citations:
            from macapp.core.docs.answer import label_citations  # lazily: it pulls in the document index

            content = label_citations(content, m.citations)
        out.append({"role": m.role, "content": content})
    return out


class ChatSession:
    """One conversation bound to an engine and the history store. Drive it from one thread."""

    def __init__(
        self,
        engine: Engine,
        store: ChatStore,
        conversation_id: int | None = None,
        *,
        system_prompt: str = "",
        sampling: SamplingSettings | None = None,
        adapter: str | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.adapter = adapter
        if conversation_id is None:
            conversation_id = store.create_conversation(
                model=engine.model_id,
                adapter=adapter,
                system_prompt=system_prompt,
                settings=(sampling or SamplingSettings()).to_json(),
            ).id
        self.conversation_id = conversation_id
        conv = store.get_conversation(conversation_id)
        self.collection = conv.collection  # documents attached: answers are grounded in them and cite pages
        self.system_prompt = system_prompt or conv.system_prompt
        self.sampling = sampling or SamplingSettings.from_json(conv.settings)

    def thread(self) -> list[Message]:
        return self.store.thread(self.conversation_id)

    def send(self, text: str, cancel: CancelToken | None = None) -> TurnStream:
        """Add the user's message and stream the answer to it."""
        if not text.strip():
            raise UserError("The message is empty")
        first = not any(m.role == "user" for m in self.thread())
        user = self.store.add_message(self.conversation_id, "user", text)
        if first:
            self.store.rename_conversation(self.conversation_id, default_title(text))
        return (yield from self._answer(user.id, cancel))

    def regenerate(self, cancel: CancelToken | None = None) -> TurnStream:
        """A new version of the last answer (the earlier one is kept as a version)."""
        thread = self.thread()
        while thread and thread[-1].role != "user":
            thread.pop()
        if not thread:
            raise UserError("There is no message to answer yet")
        return (yield from self._answer(thread[-1].id, cancel))

    def edit_and_resend(self, message_id: int, text: str, cancel: CancelToken | None = None) -> TurnStream:
        """Replace a user message with a new version and answer it (the old branch is kept)."""
        if not text.strip():
            raise UserError("The message is empty")
        edited = self.store.edit_message(message_id, text)
        return (yield from self._answer(edited.id, cancel))

    def _answer(self, parent_id: int, cancel: CancelToken | None) -> TurnStream:
        thread = self.store.thread(self.conversation_id)
        upto = next(i for i, m in enumerate(thread) if m.id == parent_id)  # a regenerated answer is not context
        history = as_chat(thread[: upto + 1])
        passages = None
        if self.collection:
            from macapp.core.docs import answer as grounding

            question = history[-1]["content"]
            passages = grounding.context_passages(
                self.collection, question, self.engine, max_tokens=self.sampling.max_tokens
            )
            yield grounding.PassagesFound(passages, self.collection)
            if not passages:
                reply = self.store.add_message(
                    self.conversation_id,
                    "assistant",
                    grounding.nothing_found(self.collection),
                    parent_id,
                    model=self.engine.model_id,
                    finish_reason="stop",
                )
                empty = GenerationResult(reply.content, "stop", 0, 0, 0, 0.0, 0.0)
                return Turn(reply, empty, ContextPlan([], 0, 0, self.engine.n_ctx, 0))
            history[-1] = {"role": "user", "content": grounding.grounded_prompt(question, passages)}
        system = grounding.grounded_system(self.system_prompt) if passages else self.system_prompt
        plan = plan_context(self.engine, history, system, self.sampling.max_tokens)
        yield plan
        reply = self.store.begin_message(
            self.conversation_id,
            role="assistant",
            parent_id=parent_id,
            model=self.engine.model_id,
            adapter=self.adapter,
            settings=self.sampling.to_json(),
        )
        stream = self.engine.stream_chat(plan.messages, self.sampling, cancel)
        pending: list[str] = []  # text not yet in the store; written at least every SAVE_INTERVAL_S
        saved_at = time.monotonic()
        try:
            while True:
                try:
                    chunk = next(stream)
                except StopIteration as done:
                    result: GenerationResult = done.value
                    break
                pending.append(chunk.text)
                now = time.monotonic()
                if now - saved_at >= SAVE_INTERVAL_S:
                    self.store.append_text(reply.id, "".join(pending))
                    pending.clear()
                    saved_at = now
                yield chunk
        except BaseException as exc:  # closing this stream early (GeneratorExit) or Ctrl-C is a stop, not a failure
            stopped = isinstance(exc, (GeneratorExit, KeyboardInterrupt))
            if pending:
                self.store.append_text(reply.id, "".join(pending))
            self.store.finish_message(
                reply.id, status="cancelled" if stopped else "error", finish_reason="cancelled" if stopped else None
            )
            raise
        finally:
            stream.close()
        if pending:
            self.store.append_text(reply.id, "".join(pending))
        status = "cancelled" if result.finish_reason == "cancelled" else "done"
        citations = None
        if passages:
            from macapp.core.docs.support import cite_answer

            citations = [c.to_json() for c in cite_answer(result.text, passages)[1]]
        self.store.finish_message(
            reply.id,
            status=status,
            finish_reason=result.finish_reason,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            tokens_per_s=round(result.tokens_per_s, 2),
            citations=citations,
        )
        return Turn(self.store.get_message(reply.id), result, plan)
