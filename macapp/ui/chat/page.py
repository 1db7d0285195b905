"""The Chat page: saved conversations on the left, the transcript and composer in the middle, the
settings drawer on the right.

Threads: an ``EngineHost`` (``engine``) holds the one loaded engine and a one-thread
``QThreadPool`` on which every engine call runs in a ``Worker``: loading, unloading, counting the
context and answering. Each answer gets its own ``CancelToken`` handed to the ``ChatSession``: Stop cancels
it and the session returns normally with ``finish_reason="cancelled"``, the partial answer kept.
The store is thread-safe; the GUI reads it directly (short queries) while the session writes.

Streaming: the answer in progress is an ``AnswerStream`` (``answer_stream``): it starts the turn the page
builds, streams its events into the transcript's bubble at most 30 times a second, and says by signals when
the store has the question, when the answer ended or failed; the page builds sessions and shows the rest.

Switching conversation (or starting a new one) while an answer streams stops that answer first;
its text so far is saved, marked stopped.

Documents (``documents``): PDFs dropped on the page join the conversation's collection (added on
the indexing pool, with a row per file above the composer); a conversation with a collection answers
from it: the session first yields the passages found, and the saved answer's citations become chips
that open the page viewer. Documents indexed with another embedding model than the one chosen now
fail the answer (the question stays saved) with a notice that offers to re-index them.

Tools (``tools``; ``agent_tools``, ``agent_jobs``, ``agent_steps``): with the conversation's Tools
switch on, a message goes to the agent loop on the engine thread instead. Its tool calls appear above the answer
as rows; a call that writes or executes shows an approval card and the loop waits (on its thread)
for the click; Stop cancels the run's token, which ends that wait too. The grants are saved in the
conversation's settings, beside the sampling values, and come back when it is reopened.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from macapp.core.engines.base import SamplingSettings
from macapp.core.errors import UserError
from macapp.core.hardware import machine_noun
from macapp.ui.chat.answer_stream import AnswerStream
from macapp.ui.chat.composer import SEND_HINT, ComposerBox
from macapp.ui.chat.documents import ChatDocuments
from macapp.ui.chat.engine import EngineHost
from macapp.ui.chat.header import ModelBar, engine_label
from macapp.ui.chat.jobs import coalesce, count_context, with_adapter
from macapp.ui.chat.panes import PaneFitter
from macapp.ui.chat.settings import SettingsDrawer
from macapp.ui.chat.sidebar import ConversationList
from macapp.ui.chat.tools import ChatTools
from macapp.ui.chat.transcript import Transcript
from macapp.ui.widgets.notice import Notice
from macapp.ui.worker import Latest, Worker, error_text

if TYPE_CHECKING:
    from macapp.core.chat.session import ContextPlan, Turn
    from macapp.core.chat.store import ChatStore, Message
    from macapp.core.engines.base import Engine
    from macapp.core.hardware import Hardware
    from macapp.core.models.library import LibraryEntry
    from macapp.core.settings import Settings

log = logging.getLogger(__name__)
RECOUNT_DELAY_MS = 300


class ChatPage(QWidget):
    """Chat with a local model; conversations are saved in the ``ChatStore``."""

    modelLoaded = Signal(object)  # the loaded engine
    turnFinished = Signal(object)  # Turn
    agentFinished = Signal(object)  # AgentResult, or None when the run was stopped before it began
    busyChanged = Signal(bool)  # an answer started (True) or ended (False)

    def __init__(self, settings: Settings, store: ChatStore | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self._owns_store = False
        self.host = EngineHost(self)  # the one loaded model and its one thread
        self.host.progress.connect(lambda fraction: self.header.set_progress(fraction))
        self.host.loaded.connect(self.modelLoaded)
        self.host.loadFailed.connect(lambda exc: self.notice.show_message(error_text(exc)))
        self.host.loadEnded.connect(self._after_load)
        self.cid: int | None = None
        self._closed = False
        self._counts = Latest()  # a newer count of the context makes an older one stale
        self._template_noted: object = None
        self._recount_timer = QTimer(self)
        self._recount_timer.setSingleShot(True)
        self._recount_timer.setInterval(RECOUNT_DELAY_MS)
        self._recount_timer.timeout.connect(self._recount)

        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        self.sidebar = ConversationList()
        self.sidebar.opened.connect(self.open_conversation)
        self.sidebar.newRequested.connect(self.new_chat)
        self.sidebar.deleted.connect(self._on_deleted)
        self.drawer = SettingsDrawer(settings.default_ctx, settings.kv_type)
        self.drawer.changed.connect(self._save_conversation_settings)
        self.drawer.hide()
        self.documents = ChatDocuments(self)  # takes the page's drops
        root.addWidget(self.sidebar)
        root.addLayout(self._build_center(), 1)
        root.addWidget(self.drawer)
        self.panes = PaneFitter(self)  # a narrow window: the drawer floats over the answers instead of squeezing them
        self.tools = ChatTools(self)  # the Tools switch, the grants, and how an agent run shows
        self.tools.questionSaved.connect(self._adopt_question)
        self.answer = self._answer_stream()  # the answer being written
        self._set_busy(False)
        self._update_model_state()

    # --- construction --------------------------------------------------------------------------
    def _build_center(self) -> QVBoxLayout:
        col = QVBoxLayout()
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        self.header = ModelBar(self.drawer)
        self.header.loadRequested.connect(self._on_load_button)
        self.header.ejectRequested.connect(self.eject)
        self.meter = self.header.meter
        col.addWidget(self.header)
        self.notice = Notice()
        notice_row = QHBoxLayout()
        notice_row.setContentsMargins(18, 6, 18, 0)
        notice_row.addWidget(self.notice)
        col.addLayout(notice_row)
        self.transcript = Transcript()
        self.transcript.regenerateRequested.connect(self.regenerate)
        self.transcript.editSubmitted.connect(self.edit_and_resend)
        self.transcript.versionStep.connect(self.step_version)
        self.transcript.citationClicked.connect(self.documents.open_citation)
        col.addWidget(self.transcript, 1)
        strip = QWidget()
        strip.setObjectName("docsStrip")
        strip.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        docs = QVBoxLayout(strip)
        docs.setContentsMargins(18, 0, 18, 6)
        docs.setSpacing(6)
        docs.addWidget(self.documents.label)
        docs.addWidget(self.documents.panel)
        col.addWidget(strip)
        self.composer_box = ComposerBox()
        self.composer = self.composer_box.editor
        self.send_button = self.composer_box.send_button
        self.regenerate_button = self.composer_box.regenerate_button
        self.composer_box.sendClicked.connect(self._on_send_button)
        self.composer_box.regenerateClicked.connect(self.regenerate)
        col.addWidget(self.composer_box)
        return col

    def _answer_stream(self) -> AnswerStream:
        answer = AnswerStream(self.transcript, self.meter, lambda: self.cid, self)
        answer.started.connect(self._on_answer_started)
        answer.questionSaved.connect(self._adopt_question)
        answer.planned.connect(lambda plan: plan.notice and self.notice.show_message(plan.notice))
        answer.agentEvent.connect(self.tools.render)
        answer.turnFinished.connect(self._on_turn_done)
        answer.agentFinished.connect(self._on_agent_done)
        answer.failed.connect(self._on_turn_failed)
        answer.ended.connect(self._after_answer)
        return answer

    # --- history -------------------------------------------------------------------------------
    def open_history(self) -> None:
        """Open the chat history (``ChatStore()`` unless one was given) and list the conversations."""
        if self.store is None:
            from macapp.core.chat.store import ChatStore

            try:
                self.store = ChatStore()
            except UserError as exc:
                self.notice.show_message(error_text(exc))
                return
            self._owns_store = True
        self.sidebar.set_store(self.store)
        self.transcript.steps_of = self.store.tool_steps
        self.drawer.set_adapters(_adapter_names())
        self._update_placeholder()

    def _thread(self, cid: int | None) -> list[Message]:
        return self.store.thread(cid) if cid is not None and self.store is not None else []

    def open_conversation(self, cid: int, message_id: int | None = None) -> None:
        """Show a saved conversation (and bring ``message_id`` into view). A streaming answer elsewhere stops."""
        from macapp.core.chat.store import NotFoundError

        if self.store is None:
            return
        if self.busy and cid != self.answer.conversation:
            self.stop()
        if cid != self.cid or not self.busy:
            try:
                conv = self.store.get_conversation(cid)
            except NotFoundError:
                self.sidebar.refresh()
                return
            self.cid = cid
            self.documents.show_conversation(conv)
            self.drawer.set_conversation(SamplingSettings.from_json(conv.settings), conv.system_prompt)
            self.drawer.set_adapters(_adapter_names(), conv.adapter)
            self.tools.show(conv)
            if self.engine is None and conv.model and not self.loading:
                self.header.picker.select_path(conv.model)
            self.notice.hide()
            self.transcript.discard_stream()
            self.transcript.set_thread(self._thread(cid), dropped=0)
            self._recount()
        self.sidebar.set_current(cid)
        if message_id is not None:
            QTimer.singleShot(0, self.transcript, lambda: self.transcript.scroll_to_message(message_id))
        else:
            QTimer.singleShot(0, self.transcript, self.transcript.scroll_to_end)
        self._update_actions()

    def new_chat(self) -> None:
        """An empty conversation; it is saved with the first message."""
        if self.busy:
            self.stop()
        self.cid = None
        self.drawer.set_adapters(_adapter_names(), self.drawer.adapter())
        self.documents.show_conversation(None)
        self.tools.show(None)
        self.sidebar.set_current(None)
        self.notice.hide()
        self.transcript.discard_stream()
        self.transcript.set_thread([], dropped=0)
        self._recount()
        self._update_actions()
        self.composer.setFocus()

    def use_adapter(self, name: str | None) -> None:
        """Answer with the tuned adapter ``name`` from the next message on (None: the model alone)."""
        self.drawer.set_adapters(_adapter_names(), name)

    def _on_deleted(self, cid: int) -> None:
        if cid == self.cid:
            self.new_chat()

    def _save_conversation_settings(self) -> None:
        if self.cid is not None and self.store is not None:
            self.store.update_conversation(
                self.cid, settings=self._settings_json(), system_prompt=self.drawer.system_prompt()
            )
        self._recount_timer.start()

    def _settings_json(self) -> dict:
        """The conversation's settings as the drawer shows them: sampling values, and the tools it grants."""
        return {**self.drawer.sampling().to_json(), **self.tools.settings_entry()}

    # --- models --------------------------------------------------------------------------------
    def set_library(self, entries: list[LibraryEntry], hardware: Hardware | None = None) -> None:
        """The models to offer (the Models page's scan) and, when known, this machine."""
        self.header.set_library(entries, hardware)
        self._update_model_state()

    def apply_hardware(self, hardware: Hardware) -> None:
        self.header.apply_hardware(hardware)

    def refresh_remote(self) -> Worker:
        """List the configured remote endpoints' models in the picker (asked in a worker)."""
        return self.header.refresh_remote()

    @property
    def engine(self) -> Engine | None:
        """The loaded model (None while none is, or while one loads)."""
        return self.host.engine

    @property
    def engine_pool(self) -> QThreadPool:
        return self.host.pool

    @property
    def loading(self) -> bool:
        return self.host.loading

    def load_model(self, ref: str | None = None) -> Worker | None:
        """Load ``ref`` (a path or library id; default: the picked model) on the engine thread."""
        if ref is None:
            ref = self.header.picker.current_ref()
            if ref is None:
                self.notice.show_message("Pick a model to load — add models on the Models page.")
                return None
        if self.busy or self.loading:
            return None
        worker = self.host.load(ref, self.drawer.n_ctx, self.drawer.kv_type, self.header.budget)
        self.notice.hide()
        self.header.show_loading(ref if ref.startswith("remote:") else Path(ref).name)
        self._update_model_state()
        return worker

    def use_model(self, path: str) -> Worker | None:
        """Pick the library model at ``path`` and load it (the Models page's "Chat with this model"); while an
        answer streams or a model loads, it is only picked."""
        if not self.header.picker.select_path(path):
            self.notice.show_message("That model is not in the library any more.")
            return None
        loaded = self.host.ref
        return None if loaded is not None and Path(loaded) == Path(path) else self.load_model(path)

    def _on_load_button(self) -> None:
        if self.loading:
            self.host.cancel_load()
        else:
            self.load_model()

    def _after_load(self) -> None:
        self._update_model_state()
        self._recount()

    def eject(self) -> None:
        """Unload the model (on the engine thread) and free its memory."""
        if self.engine is None or self.busy:
            return
        self.host.eject()
        self._update_model_state()

    def _update_model_state(self) -> None:
        self.header.show_state(self.engine, self.loading, self.busy)
        self._update_placeholder()
        self._update_actions()

    def _update_placeholder(self) -> None:
        if self.engine is None and not self.header.picker.local_ids():
            self.transcript.set_placeholder(
                "No models yet: download one on the Discover page, or add yours on the Models page.\n"
                f"Conversations stay on {machine_noun()}."
            )
        elif self.engine is None:
            self.transcript.set_placeholder(f"Load a model to start chatting.\nConversations stay on {machine_noun()}.")
        else:
            self.transcript.set_placeholder(f"Say hello to {engine_label(self.engine)}. {SEND_HINT}.")

    # --- answering -----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """``shutdown`` has run: late results are dropped."""
        return self._closed

    @property
    def busy(self) -> bool:
        """An answer is being written."""
        return self.answer.busy

    def _ready(self) -> bool:
        if self.engine is None:
            self.notice.show_message("Load a model first (pick one above and press Load).")
            return False
        if self.store is None:
            self.notice.show_message("The chat history could not be opened, so nothing can be saved.")
            return False
        return not self.busy and not self.loading

    def ensure_conversation(self) -> int:
        """The conversation on screen, saved now if it is still new (a first message or a dropped PDF)."""
        if self.cid is None:
            self.cid = self.store.create_conversation(
                model=self.engine.model_id if self.engine else None,
                system_prompt=self.drawer.system_prompt(),
                settings=self._settings_json(),
            ).id
            self.sidebar.set_current(self.cid)
            self.sidebar.touch(self.cid)
        return self.cid

    def _session(self):
        """A session for the conversation on screen and today's settings; built for each answer, so it
        picks up documents attached since the last one."""
        from macapp.core.chat.session import ChatSession

        sampling, system, adapter = self.drawer.sampling(), self.drawer.system_prompt(), self.drawer.adapter()
        self.ensure_conversation()
        self.store.update_conversation(
            self.cid, model=self.engine.model_id, system_prompt=system, settings=self._settings_json(), adapter=adapter
        )
        session = ChatSession(
            self.engine, self.store, self.cid, system_prompt=system, sampling=sampling, adapter=adapter
        )
        session.system_prompt = system  # an emptied prompt stays empty
        return session

    def send_message(self, text: str | None = None) -> Worker | None:
        """Send ``text`` (default: the composer's) and stream the answer."""
        text = self.composer.toPlainText() if text is None else text
        if not text.strip() or not self._ready():
            return None
        if self.tools.enabled:
            return self._send_to_agent(text)
        session = self._session()
        self.composer.clear()
        self.transcript.add_pending(text)
        return self._start_turn(lambda cancel: session.send(text, cancel))

    def regenerate(self) -> Worker | None:
        """A new version of the last answer (the old one stays as a version)."""
        if self.cid is None or not self._ready():
            return None
        if not any(m.role == "user" for m in self._thread(self.cid)):
            return None
        session = self._session()
        return self._start_turn(session.regenerate)

    def edit_and_resend(self, message_id: int, text: str) -> Worker | None:
        """Replace a user message with a new version and answer it (the old branch is kept)."""
        if not self._ready():
            return None
        session = self._session()
        return self._start_turn(lambda cancel: session.edit_and_resend(message_id, text, cancel))

    def stop(self) -> None:
        """Stop the answer being written; its text so far is kept."""
        if self.answer.stop():
            self.composer_box.stopping()
            self.tools.stop()

    def _on_send_button(self) -> None:
        if self.busy:
            self.stop()
        else:
            self.send_message()

    def _start_turn(self, start) -> Worker:
        engine, adapter = self.engine, self.drawer.adapter()
        return self.answer.start(
            lambda cancel: self.host.run(coalesce, with_adapter(engine, adapter, start(cancel))), self.cid
        )

    def _on_answer_started(self) -> None:
        self.notice.hide()
        self._set_busy(True)

    def _adopt_question(self, dropped: int | None = None) -> None:
        """The store has the question sent: show the saved branch (regenerating: without the old answer)."""
        thread = self._thread(self.cid)
        while thread and thread[-1].role != "user":
            thread.pop()
        self.transcript.set_thread(thread, dropped=dropped)  # adopts the question's bubble
        self.sidebar.touch(self.cid)  # the first message names the conversation

    def _on_turn_done(self, turn: Turn) -> None:
        if self.answer.on_screen():
            self.transcript.set_thread(self._thread(self.cid))
            if not turn.plan.messages:  # nothing relevant in the documents: saved without asking the model
                self._recount_timer.start()
            self._note_template(turn.plan.notice)
        self.turnFinished.emit(turn)

    def _on_turn_failed(self, exc: BaseException, cid: int | None) -> None:
        if not self.documents.explain_failure(exc, cid):  # (documents indexed with another embedding model)
            self.notice.show_message(error_text(exc))

    def _after_answer(self, cid: int | None, refresh: bool) -> None:
        if refresh:  # show what the store has
            self.transcript.set_thread(self._thread(self.cid))
        if cid is not None:
            self.sidebar.touch(cid)
        self._set_busy(False)

    # --- the agent -----------------------------------------------------------------------------
    def _send_to_agent(self, text: str) -> Worker:
        """Run the agent on ``text`` with the tools this conversation grants."""
        self._session()  # saves the conversation and today's settings
        collection = self.store.get_conversation(self.cid).collection
        self.composer.clear()
        self.transcript.add_pending(text)
        engine, adapter = self.engine, self.drawer.adapter()

        def run(cancel) -> Worker:
            worker = self.host.run(with_adapter, engine, adapter, self.tools.turn(text, collection, cancel))
            worker.signals.aborted.connect(lambda: self._on_agent_aborted(text))
            return worker

        return self.answer.start(run, self.cid, agent=True)

    def _on_agent_done(self, result) -> None:
        if self.answer.on_screen():
            self.tools.after_run(self._thread(self.cid), self.store.get_conversation(self.cid))
            self._recount_timer.start()
        self.agentFinished.emit(result)

    def _on_agent_aborted(self, text: str) -> None:
        """Stopped while its MCP servers were starting: nothing was saved, so the message goes back to the composer."""
        if self._closed:
            return
        if self.answer.on_screen() and not self.composer.toPlainText().strip():
            self.composer.setPlainText(text)
        self.agentFinished.emit(None)

    def _set_busy(self, busy: bool) -> None:
        self.composer_box.set_streaming(busy)
        self.tools.set_busy(busy)
        self.transcript.set_busy(busy)
        self.sidebar.set_locked(self.answer.conversation if busy else None)
        self._update_model_state()
        self.busyChanged.emit(busy)

    def _update_actions(self) -> None:
        has_user = self.cid is not None and any(b.role == "user" for b in self.transcript.bubbles())
        self.regenerate_button.setEnabled(self.engine is not None and not self.busy and has_user)

    def step_version(self, message_id: int, step: int) -> None:
        """Show the previous (-1) or next (+1) version of a message and the branch under it."""
        if self.busy or self.store is None:
            return
        versions = self.store.versions(message_id)
        ids = [m.id for m in versions]
        if message_id not in ids:
            return
        target = ids.index(message_id) + step
        if 0 <= target < len(ids):
            self.transcript.set_thread(self.store.select_version(ids[target]))
            self._recount()

    # --- the context meter ---------------------------------------------------------------------
    def _recount(self) -> None:
        """Count what the next message would start from, on the engine thread."""
        if self.engine is None or self.busy or self._closed or self.store is None:
            return
        worker = self.host.run(
            count_context,
            self.engine,
            self.cid,
            self.store,
            self.drawer.system_prompt(),
            self.drawer.sampling().max_tokens,
        )
        worker.signals.returned.connect(self._counts.only_if_current(self._counts.ticket(), self._on_counted))
        worker.signals.errored.connect(lambda exc: log.info("context count failed: %s", exc))
        worker.start()

    def _on_counted(self, plan: ContextPlan) -> None:
        if self._closed or self.busy or self.engine is None:
            return  # the answer's own figures are showing
        self.meter.set_usage(plan.prompt_tokens, plan.n_ctx)
        self.transcript.set_dropped(plan.dropped)
        self._note_template()

    def _note_template(self, also: str | None = None) -> None:
        """Say once per loaded model that its chat template could not be used (ChatML stands in)."""
        notes = [also] if also else []
        engine = self.engine
        if engine is not None and engine.template_notice and self._template_noted is not engine:
            self._template_noted = engine
            notes.append(engine.template_notice)
        if notes:
            self.notice.show_message("\n".join(notes))

    # --- closing -------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop the answer and any load, unload the model, wait for the engine thread; True if it ended."""
        if self._closed:
            return True
        self._closed = True
        self._recount_timer.stop()
        self.answer.shutdown()  # the session saves the text so far, marked stopped
        self.sidebar.shutdown()  # a search still waiting must not read the store closed below
        self.documents.shutdown()
        done = self.host.shutdown(timeout_ms)
        if self._owns_store and self.store is not None and done:
            self.store.close()
        return done


def _adapter_names() -> list[str]:
    from macapp.core.tuning.adapters import list_adapters

    try:
        return [a.name for a in list_adapters()]
    except (OSError, UserError):
        return []
