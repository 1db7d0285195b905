"""One message in the transcript: its text (Markdown, or a streaming answer), the tool calls an agent
made while writing it (``agent_steps``, above the text), the sources a cited answer used (chips that
open the page viewer), and a footer with tokens/s, the finish reason, the version switcher (‹ 2/3 ›),
Copy, and Edit (questions) or Regenerate (the last answer). Editing happens in place: Save & resend
asks for a new branch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from macapp.ui.chat.agent_steps import StepsPanel
from macapp.ui.chat.citation_chips import CitationChips
from macapp.ui.chat.markdown import RichText, StreamingMarkdown

if TYPE_CHECKING:
    from macapp.core.chat.store import Message

FINISH_WORDS = {
    "cancelled": "stopped",
    "length": "max tokens",
    "context": "context full",
    "max_steps": "step limit reached",
    "time_budget": "time budget spent",
}  # the last two: an agent's
STATUS_WORDS = {"cancelled": "stopped", "interrupted": "interrupted", "error": "failed"}
BUBBLE_PADDING = 28  # horizontal padding + border of a bubble frame (style.qss)
MAX_TEXT_WIDTH = 820


def answer_stats(message: Message) -> str:
    """The footer of an answer: ``41.3 tokens/s · 318 tokens · stopped``."""
    parts = []
    if message.tokens_per_s:
        parts.append(f"{message.tokens_per_s:,.1f} tokens/s")
    if message.completion_tokens is not None:
        parts.append(f"{message.completion_tokens:,} tokens")
    reason = FINISH_WORDS.get(message.finish_reason or "") or STATUS_WORDS.get(message.status)
    if reason:
        parts.append(reason)
    return " · ".join(parts)


def display_text(role: str, content: str) -> str:
    """What a bubble shows: answers without the leading whitespace models like to emit."""
    return content.lstrip() if role == "assistant" else content


def message_text(message: Message) -> str:
    """What a saved message's bubble shows: a cited answer's ``[n]`` markers become ``[file, p. N]``."""
    text = message.content
    if message.citations:
        from macapp.core.docs.answer import label_citations  # lazily: it pulls in the document index

        text = label_citations(text, message.citations)
    return display_text(message.role, text)


def message_key(message: Message) -> tuple:
    """Everything a bubble shows of a message: an unchanged key means the bubble can be reused."""
    return (
        message.id,
        message.content,
        message.status,
        message.finish_reason,
        message.version,
        message.version_count,
        message.tokens_per_s,
        message.completion_tokens,
        tuple((c.get("number"), c.get("label")) for c in message.citations),
    )


def _tool(text: str, tip: str, name: str = "bubbleAction") -> QToolButton:
    button = QToolButton()
    button.setObjectName(name)
    button.setText(text)
    button.setToolTip(tip)
    button.setAutoRaise(True)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button


class MessageBubble(QWidget):
    """A row with one message: its text, and a footer with stats, versions and actions."""

    versionStep = Signal(int, int)  # message id, -1 (older) or +1 (newer)
    regenerateRequested = Signal()
    editSubmitted = Signal(int, str)  # message id, new text
    citationClicked = Signal(object)  # a citation dict of this answer (open its page)

    def __init__(
        self, role: str, message: Message | None = None, parent: QWidget | None = None, *, text: str | None = None
    ):
        """``message`` None: an answer being streamed, or (with ``text``) a question not saved yet."""
        super().__init__(parent)
        self.role = role
        self.message = message
        self.key = message_key(message) if message else None
        self._width = 0
        self._note = ""  # what a streaming answer is working from ("Using 4 passages from …")
        self.chips: CitationChips | None = None
        self.steps: StepsPanel | None = None  # an agent's tool calls, above the answer (made when needed)
        self._outer = QVBoxLayout(self)
        self._outer.setContentsMargins(0, 0, 0, 0)
        self._outer.setSpacing(6)
        row = QHBoxLayout()
        self._outer.addLayout(row)
        self.frame = QFrame()
        self.frame.setObjectName("userBubble" if role == "user" else "assistantBubble")
        self.frame.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        if role == "user":
            row.addStretch(1)
        row.addWidget(self.frame)
        if role != "user":
            row.addStretch(1)
        box = QVBoxLayout(self.frame)
        box.setContentsMargins(12, 8, 12, 6)
        box.setSpacing(4)
        if message is not None:
            self.view: RichText = RichText(message_text(message))
        else:
            self.view = StreamingMarkdown() if text is None else RichText(text)
        box.addWidget(self.view)
        self._box = box
        self.editor_box: QWidget | None = None  # built on the first Edit
        self._actions: tuple[bool, bool] | None = None
        self._set_chips(message)
        box.addLayout(self._build_footer())
        self._update_footer()

    def _build_footer(self) -> QHBoxLayout:
        """Stats, Copy, and Edit (questions) or Regenerate (answers); the version switcher comes when needed."""
        foot = QHBoxLayout()
        foot.setSpacing(2)
        self._foot = foot
        self.prev_button: QToolButton | None = None
        self.stats = QLabel("")
        self.stats.setObjectName("bubbleStats")
        self.stats.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens a bubble
        foot.addWidget(self.stats, 1)
        self.copy_button = _tool("Copy", "Copy this message as Markdown")
        self.copy_button.clicked.connect(self.copy)
        foot.addWidget(self.copy_button)
        if self.role == "user":
            self.action_button = self.edit_button = _tool(
                "Edit", "Change this message and send it again (the old branch is kept)"
            )
            self.edit_button.clicked.connect(self.start_edit)
        else:
            self.action_button = self.regenerate_button = _tool("Regenerate", "Write a new version of this answer")
            self.regenerate_button.clicked.connect(self.regenerateRequested)
            self.regenerate_button.hide()  # only on the last answer
        foot.addWidget(self.action_button)
        return foot

    def _set_chips(self, message: Message | None) -> None:
        """Chips for the sources a saved answer cites (none: no row)."""
        if self.chips is not None or message is None or not message.citations:
            return
        self.chips = CitationChips(message.citations)
        self.chips.clicked.connect(self.citationClicked)
        self._box.insertWidget(self._box.indexOf(self.view) + 1, self.chips)
        if self._width:
            self.fit(self._width)

    def steps_panel(self) -> StepsPanel:
        """The tool calls of this answer, above its text (an empty panel the first time)."""
        if self.steps is None:
            self.steps = StepsPanel()
            self._outer.insertWidget(0, self.steps, 0, Qt.AlignmentFlag.AlignLeft)
            if self._width:
                self.fit(self._width)
        return self.steps

    def _build_switcher(self) -> None:
        """‹ 2/3 ›: built the first time this message has more than one version."""
        self.prev_button = _tool("‹", "Previous version")
        self.version_label = QLabel("")
        self.version_label.setObjectName("bubbleStats")
        self.next_button = _tool("›", "Next version")
        self.prev_button.clicked.connect(lambda: self._step(-1))
        self.next_button.clicked.connect(lambda: self._step(+1))
        for i, w in enumerate((self.prev_button, self.version_label, self.next_button)):
            self._foot.insertWidget(i, w)

    def _build_editor(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("bubbleEditor")
        self.editor.setFixedHeight(110)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.stop_edit)
        self.resend_button = QPushButton("Save && resend")
        self.resend_button.setObjectName("primary")
        self.resend_button.clicked.connect(self._submit_edit)
        buttons.addWidget(cancel)
        buttons.addWidget(self.resend_button)
        lay.addWidget(self.editor)
        lay.addLayout(buttons)
        self._box.insertWidget(self._box.indexOf(self.view) + 1, box)
        if self._width:
            self.editor.setFixedWidth(self._editor_width())
        return box

    # --- state ---------------------------------------------------------------------------------
    @property
    def message_id(self) -> int | None:
        return self.message.id if self.message else None

    def text(self) -> str:
        """The Markdown shown (for a streaming bubble, everything rendered so far)."""
        return self.view.text()

    def _update_footer(self) -> None:
        m = self.message
        versions = m is not None and m.version_count > 1
        if versions and self.prev_button is None:
            self._build_switcher()
        if self.prev_button is not None:
            for w in (self.prev_button, self.version_label, self.next_button):
                w.setVisible(versions)
        if versions:
            self.version_label.setText(f"{m.version}/{m.version_count}")
            self._enable_switcher(busy=False)
        self.stats.setText(answer_stats(m) if m is not None and self.role == "assistant" else "")
        self.stats.setToolTip(self.stats.text())
        self.copy_button.setVisible(m is not None)

    def show_progress(self, text: str, completion_tokens: int) -> None:
        """Render the answer so far (streaming bubbles only)."""
        assert isinstance(self.view, StreamingMarkdown)
        self.view.render(display_text(self.role, text))
        state = f"Writing… {completion_tokens:,} tokens" if completion_tokens else "Thinking…"
        self.stats.setText(f"{self._note} · {state}" if self._note else state)

    def set_note(self, note: str) -> None:
        """What a streaming answer works from, shown beside its progress."""
        self._note = note
        if self.message is None and self.role == "assistant":
            self.stats.setText(f"{note} · Thinking…" if note else "Thinking…")

    def adopt(self, message: Message) -> None:
        """The streamed answer (or the question just sent) is saved: from now on this bubble stands for ``message``."""
        self.message, self.key = message, message_key(message)
        if isinstance(self.view, StreamingMarkdown):
            self.view.finish(message_text(message))
        self._set_chips(message)
        self._update_footer()

    def set_actions(self, last: bool, busy: bool) -> None:
        """Regenerate only on the last answer; nothing that changes the thread while a reply streams."""
        if self._actions == (last, busy):
            return
        self._actions = (last, busy)
        if self.role != "user":
            self.regenerate_button.setVisible(last and self.message is not None)
        self.action_button.setEnabled(not busy)
        self._enable_switcher(busy)

    def _enable_switcher(self, busy: bool) -> None:
        m = self.message
        if self.prev_button is not None and m is not None:
            self.prev_button.setEnabled(not busy and m.version > 1)
            self.next_button.setEnabled(not busy and m.version < m.version_count)

    def fit(self, width: int) -> None:
        """Lay out for a transcript ``width`` pixels wide."""
        self._width = width
        if self.role == "user":  # as wide as the text, up to 80% of the column
            self.view.fit(self._editor_width(), shrink=True)
            if self.editor_box is not None:
                self.editor.setFixedWidth(self._editor_width())
        else:
            inner = min(width, MAX_TEXT_WIDTH) - BUBBLE_PADDING
            self.view.fit(inner)
            if self.chips is not None:
                self.chips.fit(inner)
            self.frame.setFixedWidth(inner + BUBBLE_PADDING)  # answers use the column, even while empty
            if self.steps is not None:
                self.steps.setFixedWidth(inner + BUBBLE_PADDING)

    def _editor_width(self) -> int:
        return int((min(self._width, MAX_TEXT_WIDTH) - BUBBLE_PADDING) * 0.8)

    def set_highlight(self, on: bool) -> None:
        self.frame.setProperty("highlight", on)
        self.frame.style().unpolish(self.frame)
        self.frame.style().polish(self.frame)

    # --- actions -------------------------------------------------------------------------------
    def copy(self) -> None:
        if self.message is not None:
            QApplication.clipboard().setText(message_text(self.message))

    def _step(self, step: int) -> None:
        if self.message is not None:
            self.versionStep.emit(self.message.id, step)

    def start_edit(self) -> None:
        if self.role != "user" or self.message is None:
            return
        if self.editor_box is None:
            self.editor_box = self._build_editor()
        self.editor.setPlainText(self.message.content)
        self.view.hide()
        self.editor_box.show()
        self.editor.setFocus()

    def stop_edit(self) -> None:
        if self.editor_box is not None:
            self.editor_box.hide()
            self.view.show()

    def _submit_edit(self) -> None:
        text = self.editor.toPlainText()
        if text.strip() and self.message is not None:
            self.stop_edit()
            self.editSubmitted.emit(self.message.id, text)
