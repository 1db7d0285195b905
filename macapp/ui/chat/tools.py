"""The Chat page's tools: the grants of the conversation on screen, and how an agent run shows in the transcript.

``ChatTools`` keeps the drawer's Tools section (``agent_tools.ToolsPanel``) and the composer's Tools
button in step, saves the grants with the conversation when they are edited (a new chat keeps them
until its first message saves it), builds the run (``agent_jobs.agent_turn``) and renders what it
yields: answer text into the streaming bubble, an approval card whose click answers the waiting loop,
and a row per tool call above the answer. The page's ``AnswerStream`` runs the turn (the worker, busy, Stop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from macapp.ui.chat.agent_steps import ApprovalCard

if TYPE_CHECKING:
    from macapp.core.progress import CancelToken
    from macapp.ui.chat.page import ChatPage


class ChatTools(QObject):
    """The Tools switch and grants of the conversation on screen, and the rendering of its agent runs."""

    questionSaved = Signal()  # a run's first event after its tools are ready: the store has the question

    def __init__(self, page: ChatPage):
        super().__init__(page)
        self.page = page
        self.panel = page.drawer.tools
        self.button = page.composer_box.tools_button
        self.panel.changed.connect(self._save)
        self.button.toggled.connect(self.panel.set_enabled)

    @property
    def enabled(self) -> bool:
        """The conversation's Tools switch is on: messages go to the agent."""
        return self.panel.enabled

    # --- the grants ----------------------------------------------------------------------------
    def show(self, conversation=None) -> None:
        """Show the grants of ``conversation`` (None: a new chat, nothing granted, tools off)."""
        from macapp.core.agent.guard import Grants
        from macapp.core.agent.history import grants_of

        self.panel.set_grants(grants_of(conversation) if conversation is not None else Grants())
        self.panel.set_problems([])
        self._sync_button()

    def settings_entry(self) -> dict[str, Any]:
        """The grants as an entry of the conversation's settings; while a run goes on, the saved ones (the run
        adds its "always" approvals there, and the panel is locked)."""
        from macapp.core.agent.history import SETTINGS_KEY

        page = self.page
        if page.busy and page.cid is not None:
            saved = page.store.get_conversation(page.cid).settings.get(SETTINGS_KEY)
            if saved is not None:
                return {SETTINGS_KEY: saved}
        return {SETTINGS_KEY: self.panel.grants().to_json()}

    def set_busy(self, busy: bool) -> None:
        self.panel.setEnabled(not busy)  # a run keeps the grants it started with
        self.button.setEnabled(not busy)

    def _sync_button(self) -> None:
        self.button.blockSignals(True)
        self.button.setChecked(self.panel.enabled)
        self.button.blockSignals(False)

    def _save(self) -> None:
        from macapp.core.agent.history import save_grants

        self._sync_button()
        if self.page.cid is not None and self.page.store is not None:
            save_grants(self.page.store, self.page.cid, self.panel.grants())

    # --- a run ---------------------------------------------------------------------------------
    def turn(self, text: str, collection: str | None, cancel: CancelToken):
        """The run of ``text`` in the conversation on screen (a generator for the engine thread)."""
        from macapp.ui.chat.agent_jobs import agent_turn

        page = self.page
        return agent_turn(
            page.store, page.cid, text, page.engine, self.panel.grants(), collection, cancel, page.drawer.sampling()
        )

    def render(self, event) -> None:
        """Show one event of the run on screen."""
        from macapp.core.agent.approvals import ApprovalRequest
        from macapp.core.agent.loop import AgentText, ToolStarted, ToolStep
        from macapp.ui.chat.agent_jobs import ToolsReady

        transcript = self.page.transcript
        if isinstance(event, ToolsReady):
            self.panel.set_problems(event.problems)
            if event.problems:
                self.page.notice.show_message("Some tools can't be used in this run: " + "; ".join(event.problems))
            return
        if transcript.pending is not None:
            self.questionSaved.emit()
        steps = transcript.stream_steps()
        if steps is None:
            return
        if isinstance(event, AgentText):
            transcript.append_stream(event.text, 0)
        elif isinstance(event, ApprovalRequest):
            card = steps.add_card(
                ApprovalCard(
                    event.call.name, event.effect, event.call.arguments, event.description, call_id=event.call.id
                )
            )
            card.decided.connect(event.answer)
            QTimer.singleShot(0, transcript, lambda: transcript.ensureWidgetVisible(card, 0, 20))
        elif isinstance(event, ToolStarted):
            steps.add_row(event.index, event.call.name, event.call.arguments)
        elif isinstance(event, ToolStep):
            steps.finish_step(event)
            transcript.clear_stream_text()  # words before a call are not the answer

    def stop(self) -> None:
        """Stop was pressed: a card waiting for an answer says Stopped at once."""
        stream = self.page.transcript.stream
        if stream is not None and stream.steps is not None:
            stream.steps.stop()

    def after_run(self, thread: list, conversation) -> None:
        """The run on screen ended: its saved answer and ``thread`` (the branch as the store has it) in the
        transcript, the grants with the "always" approvals it added (its problems stay shown)."""
        from macapp.core.agent.history import grants_of

        self.stop()  # a card left waiting (the run ended some other way) says so
        transcript = self.page.transcript
        if thread and thread[-1].role == "assistant":
            transcript.finish_stream(thread[-1])
        transcript.set_thread(thread)
        problems = self.panel.problems.text()
        self.panel.set_grants(grants_of(conversation))
        self.panel.set_problems(problems.splitlines() if problems else [])
        self._sync_button()
