"""The transcript: one bubble per message of the branch on screen, and the answer being written.

``set_thread`` shows a branch and reuses the bubble of every message that has not changed, so a
new answer, a regenerated one or a switched version re-renders only what differs. The answer in
progress lives in a streaming bubble: the page buffers its chunks with ``append_stream`` and
renders them with ``flush_stream`` from a ~30 Hz timer. The view follows the end of the text only
while the reader is at the bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from macapp.ui.chat.agent_steps import StepsPanel
from macapp.ui.chat.bubble import MessageBubble, message_key

if TYPE_CHECKING:
    from macapp.core.chat.store import Message, SavedToolStep

HIGHLIGHT_MS = 2500


class Transcript(QScrollArea):
    """The messages of one conversation branch, newest at the bottom."""

    versionStep = Signal(int, int)
    regenerateRequested = Signal()
    editSubmitted = Signal(int, str)
    citationClicked = Signal(object)  # a citation dict (open the page viewer)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("transcript")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        body.setObjectName("transcriptBody")
        self._layout = QVBoxLayout(body)
        self._layout.setContentsMargins(20, 16, 20, 16)
        self._layout.setSpacing(12)
        self._layout.addStretch(1)
        self.setWidget(body)
        self.placeholder = QLabel("")
        self.placeholder.setObjectName("emptyState")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setContentsMargins(0, 80, 0, 0)
        self.divider = QLabel("Earlier messages are outside the context window: the model no longer sees them.")
        self.divider.setObjectName("contextDivider")
        self.divider.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._rows: list[MessageBubble] = []
        self._by_id: dict[int, MessageBubble] = {}
        self.stream: MessageBubble | None = None
        self.pending: MessageBubble | None = None  # the question just sent, until the store has it
        self._stream_text: list[str] = []
        self._stream_tokens = 0
        self._stream_dirty = False
        self._dropped = 0
        self._busy = False
        self._width = 0
        self._stick = True
        self._highlighted: MessageBubble | None = None
        self.steps_of: Callable[[int], list[SavedToolStep]] | None = None  # an agent answer's saved tool calls
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range)
        bar.valueChanged.connect(self._on_scrolled)
        self._arrange()

    # --- the branch ----------------------------------------------------------------------------
    def bubbles(self) -> list[MessageBubble]:
        return list(self._rows)

    def bubble(self, message_id: int) -> MessageBubble | None:
        return self._by_id.get(message_id)

    def set_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)

    def set_thread(self, messages: list[Message], dropped: int | None = None) -> None:
        """Show ``messages`` (root first), reusing the bubbles of unchanged messages."""
        old = self._by_id
        rows: list[MessageBubble] = []
        for message in messages:
            bubble = old.pop(message.id, None)
            pending = self.pending
            if bubble is None and pending is not None and message.role == "user" and pending.text() == message.content:
                bubble, self.pending = pending, None
                bubble.adopt(message)
            elif bubble is None or bubble.key != message_key(message):
                if bubble is not None:
                    bubble.hide()
                    bubble.deleteLater()
                bubble = self._make_bubble(message)
            rows.append(bubble)
        for bubble in old.values():
            bubble.hide()
            bubble.deleteLater()
        if self._highlighted is not None and self._highlighted not in rows:
            self._highlighted = None
        self._rows = rows
        self._by_id = {b.message_id: b for b in rows}
        if dropped is not None:
            self._dropped = dropped
        self._dropped = min(self._dropped, len(rows))
        self._arrange()

    def set_dropped(self, dropped: int) -> None:
        """Mark the first ``dropped`` messages as outside the model's context window."""
        if dropped != self._dropped:
            self._dropped = dropped
            self._arrange()

    def _make_bubble(self, message: Message | None, role: str = "assistant", text: str | None = None) -> MessageBubble:
        bubble = MessageBubble(message.role if message else role, message, text=text)
        bubble.versionStep.connect(self.versionStep)
        bubble.regenerateRequested.connect(self.regenerateRequested)
        bubble.editSubmitted.connect(self.editSubmitted)
        bubble.citationClicked.connect(self.citationClicked)
        if message is not None and message.role == "assistant" and "agent" in message.settings and self.steps_of:
            steps = self.steps_of(message.id)
            if steps:
                bubble.steps_panel().show_saved(steps)
        if self._width:
            bubble.fit(self._width)
        return bubble

    def _arrange(self) -> None:
        """Put placeholder, divider, rows and the streaming bubble in order (no re-rendering).

        Only the layout items from the first difference on are moved: a new answer touches the end.
        """
        lay = self._layout
        items: list[QWidget] = list(self._rows)
        if self._dropped:
            items.insert(self._dropped, self.divider)
        if self.pending is not None:
            items.append(self.pending)
        if self.stream is not None:
            items.append(self.stream)
        if not items:
            items = [self.placeholder]
        current = [lay.itemAt(i).widget() for i in range(lay.count() - 1)]  # the last item is the stretch
        same = 0
        while same < min(len(items), len(current)) and items[same] is current[same]:
            same += 1
        keep = set(map(id, items))
        for widget in current[same:]:
            lay.removeWidget(widget)
            if id(widget) not in keep:
                widget.hide()
        for i, widget in enumerate(items[same:], start=same):
            lay.insertWidget(i, widget)
            widget.show()
        last = self._rows[-1] if self._rows and self.stream is None else None
        for bubble in self._rows:
            bubble.set_actions(bubble is last, self._busy)

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._arrange()

    # --- streaming -----------------------------------------------------------------------------
    def add_pending(self, text: str) -> None:
        """Show a question at once; ``set_thread`` adopts its bubble when the store has the message."""
        if self.pending is not None:
            self.pending.hide()
            self.pending.deleteLater()
        self.pending = self._make_bubble(None, "user", text)
        self._stick = True
        self._arrange()

    def begin_stream(self) -> MessageBubble:
        """An empty answer bubble at the end (thinking until the first text arrives)."""
        if self.stream is not None:
            self.stream.hide()
            self.stream.deleteLater()
        self.stream = self._make_bubble(None)
        self._stream_text, self._stream_tokens, self._stream_dirty = [], 0, True
        self._stick = True
        self._arrange()
        self.flush_stream()
        return self.stream

    def append_stream(self, text: str, completion_tokens: int) -> None:
        """Buffer streamed text; ``flush_stream`` shows it."""
        self._stream_text.append(text)
        self._stream_tokens = completion_tokens
        self._stream_dirty = True

    def flush_stream(self) -> None:
        if self.stream is None or not self._stream_dirty:
            return
        self._stream_dirty = False
        if len(self._stream_text) > 1:
            self._stream_text = ["".join(self._stream_text)]
        self.stream.show_progress(self._stream_text[0] if self._stream_text else "", self._stream_tokens)

    def set_stream_note(self, note: str) -> None:
        """Say what the answer being written works from (the passages found in the documents)."""
        if self.stream is not None:
            self.stream.set_note(note)

    def stream_steps(self) -> StepsPanel | None:
        """The tool calls of the answer being written (None when no answer is)."""
        return self.stream.steps_panel() if self.stream is not None else None

    def clear_stream_text(self) -> None:
        """Forget the text streamed so far (an agent's words before its tool calls are not its answer)."""
        self._stream_text, self._stream_dirty = [], True

    def streamed_text(self) -> str:
        return "".join(self._stream_text)

    def finish_stream(self, message: Message) -> None:
        """The answer is saved as ``message``: its bubble joins the branch."""
        if self.stream is None:
            return
        bubble, self.stream = self.stream, None
        bubble.adopt(message)
        self._rows.append(bubble)
        self._by_id[message.id] = bubble
        self._arrange()

    def discard_stream(self) -> None:
        """Drop the streaming bubble (and a question the store never got)."""
        if self.stream is not None or self.pending is not None:
            for bubble in (self.stream, self.pending):
                if bubble is not None:
                    bubble.hide()
                    bubble.deleteLater()
            self.stream = self.pending = None
            self._arrange()

    # --- layout and scrolling ------------------------------------------------------------------
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        width = self.viewport().width() - self._layout.contentsMargins().left() - self._layout.contentsMargins().right()
        if width != self._width and width > 0:
            self._width = width
            for bubble in [*self._rows, *(b for b in (self.pending, self.stream) if b is not None)]:
                bubble.fit(width)

    def _on_scrolled(self, value: int) -> None:
        self._stick = value >= self.verticalScrollBar().maximum() - 24

    def _on_range(self, _low: int, high: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(high)

    def scroll_to_end(self) -> None:
        self._stick = True
        self.widget().layout().activate()
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())

    def scroll_to_message(self, message_id: int, highlight: bool = True) -> bool:
        """Bring a message into view (and flash it); False if it is not on this branch."""
        bubble = self._by_id.get(message_id)
        if bubble is None:
            return False
        self.widget().layout().activate()
        self._stick = False
        self.ensureWidgetVisible(bubble, 0, 40)
        if highlight:
            if self._highlighted is not None and self._highlighted is not bubble:
                self._highlighted.set_highlight(False)
            self._highlighted = bubble
            bubble.set_highlight(True)
            QTimer.singleShot(HIGHLIGHT_MS, bubble, lambda: self._unhighlight(bubble))
        return True

    def _unhighlight(self, bubble: MessageBubble) -> None:
        if self._highlighted is bubble:
            self._highlighted = None
            bubble.set_highlight(False)
