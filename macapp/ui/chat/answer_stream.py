"""The Chat page's answer in progress: one at a time, streamed into the transcript's bubble.

``AnswerStream`` starts the worker the page builds for a turn (on the engine thread) and owns what the answer
needs while it runs: its ``CancelToken`` (Stop), the conversation it belongs to, the context plan and the live
token figures. ``jobs.coalesce`` batches chunks on the engine thread (~100 signals a second at most); the
transcript buffers them, and a 30 Hz timer renders the streaming bubble (only its last Markdown part, see
``markdown``) and, 5 times a second, the context meter. So the event loop never spends long on one answer
however fast it comes (``bench/ui_stall.py``).

A chat turn yields typed events: the passages found (``PassagesFound``, only with documents attached), the
``ContextPlan``, then ``GenerationChunk``s; an agent run's events go to the page as they are (``agentEvent``),
which renders its tool rows and approval cards. Only the answer of the conversation on screen is drawn: its
signals name the conversation, and late ones are dropped once the user has moved on or ``shutdown`` ran.
The page does the rest through the signals: it shows the saved branch once the store has the question, the
notices, and locks what must not change while an answer runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from macapp.core.chat.session import ContextPlan
from macapp.core.docs.answer import PassagesFound
from macapp.core.engines.base import GenerationChunk
from macapp.core.progress import CancelToken
from macapp.ui.chat.documents import passages_note

if TYPE_CHECKING:
    from macapp.core.chat.session import Turn
    from macapp.ui.chat.header import ContextMeter
    from macapp.ui.chat.transcript import Transcript
    from macapp.ui.worker import Worker

FLUSH_MS = 33  # the streaming bubble re-renders at most ~30 times a second
METER_INTERVAL_S = 0.2  # the context meter follows an answer 5 times a second


class AnswerStream(QObject):
    """The one answer being written, from its start to its end, drawn while its conversation is on screen."""

    started = Signal()  # an answer began (``busy``; ``conversation`` is its conversation)
    questionSaved = Signal(object)  # earlier messages left out (int, or None: not known yet): the store has it
    planned = Signal(object)  # the turn's ContextPlan
    agentEvent = Signal(object)  # an agent run's event, for the conversation on screen
    turnFinished = Signal(object)  # Turn; the bubble shows the saved answer when it is on screen
    agentFinished = Signal(object)  # AgentResult, or None when the run was stopped before it began
    failed = Signal(object, object)  # the exception, the answer's conversation id
    ended = Signal(object, bool)  # the answer's conversation id; True: show what the store has (failed or on screen)

    def __init__(self, transcript: Transcript, meter: ContextMeter, shown: Callable[[], int | None], parent=None):
        super().__init__(parent)
        self.transcript = transcript
        self.meter = meter
        self._shown = shown  # the conversation on screen
        self.conversation: int | None = None
        self._cancel: CancelToken | None = None
        self._closed = False
        self._plan: ContextPlan | None = None
        self._live_used = 0
        self._meter_shown = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self._flush)

    @property
    def busy(self) -> bool:
        """An answer is being written."""
        return self._cancel is not None

    def on_screen(self) -> bool:
        """The answer in progress belongs to the conversation on screen (one answer runs at a time, and its
        signals arrive in order before the next can start)."""
        return not self._closed and self.conversation == self._shown()

    def start(self, make_worker: Callable[[CancelToken], Worker], conversation: int | None, agent: bool = False):
        """Run the worker ``make_worker`` builds with this answer's token: a chat turn, or an agent run."""
        cancel = CancelToken()
        worker = make_worker(cancel)
        self._cancel, self.conversation, self._plan = cancel, conversation, None
        worker.signals.yielded.connect(self._on_agent_event if agent else self._on_event)
        worker.signals.returned.connect(self._on_agent_done if agent else self._on_done)
        worker.signals.errored.connect(self._on_failed)
        worker.signals.finished.connect(self._after)
        self.started.emit()
        self.transcript.begin_stream()  # at once, not when the plan arrives: the work splits over two events
        self._timer.start()
        return worker.start()

    def stop(self) -> bool:
        """Stop the answer being written (the session keeps its text so far); False when none is."""
        if self._cancel is None:
            return False
        self._cancel.cancel()
        return True

    def shutdown(self) -> None:
        """The page closes: stop the answer and drop every late signal."""
        self._closed = True
        self._timer.stop()
        self.stop()

    # --- while it runs -------------------------------------------------------------------------
    def _on_event(self, event) -> None:
        if not self.on_screen():
            return
        match event:
            case GenerationChunk():
                self.transcript.append_stream(event.text, event.completion_tokens)
                if self._plan is not None:
                    self._live_used = self._plan.prompt_tokens + event.completion_tokens
            case PassagesFound():  # from the conversation's documents
                self.questionSaved.emit(None)
                self.transcript.set_stream_note(passages_note(event.passages, event.collection))
            case ContextPlan():
                self._plan, self._live_used = event, event.prompt_tokens
                self.questionSaved.emit(event.dropped)
                self.meter.set_usage(event.prompt_tokens, event.n_ctx)
                self.planned.emit(event)

    def _on_agent_event(self, event) -> None:
        if self.on_screen():
            self.agentEvent.emit(event)

    def _flush(self) -> None:
        self.transcript.flush_stream()
        now = time.monotonic()
        if self._plan is not None and now - self._meter_shown >= METER_INTERVAL_S:
            self._meter_shown = now
            self.meter.set_usage(self._live_used, self._plan.n_ctx)

    # --- how it ends ---------------------------------------------------------------------------
    def _finish(self) -> bool:
        """The last batch drawn; True when the answer is on screen."""
        self._timer.stop()
        if not self.on_screen():
            return False
        self._flush()
        return True

    def _on_done(self, turn: Turn) -> None:
        if self._closed:
            return
        if self._finish():
            self.transcript.finish_stream(turn.message)
            if turn.plan.messages:  # (nothing relevant in the documents: saved without asking the model)
                self.meter.set_usage(turn.tokens_used, turn.plan.n_ctx)
        self.turnFinished.emit(turn)

    def _on_agent_done(self, result) -> None:
        if not self._closed:
            self._finish()
            self.agentFinished.emit(result)

    def _on_failed(self, exc: BaseException) -> None:
        if not self._closed:
            self.failed.emit(exc, self.conversation)

    def _after(self) -> None:
        if self._closed:
            return
        self._timer.stop()
        conversation, refresh = self.conversation, self.transcript.stream is not None or self.on_screen()
        self._cancel = self.conversation = None
        if refresh:  # on screen, or a bubble left streaming (it failed): the page shows what the store has
            self.transcript.discard_stream()
        self.ended.emit(conversation, refresh)
