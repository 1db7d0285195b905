"""Where a message is written: the text box, the Tools switch, Regenerate, and one button that is Send or Stop.

Ctrl+Enter sends (⌘+Enter on a Mac, where Qt reports ⌘ as Control; the keypad Enter too); a
plain Enter starts a new line. While an answer streams the button says Stop.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

SEND_HINT = "⌘↩ sends" if sys.platform == "darwin" else "Ctrl+Enter sends"
_SEND_MODIFIERS = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.MetaModifier


class Composer(QPlainTextEdit):
    """The message box; ``submitted`` on Ctrl+Enter (either Enter key), a new line on Enter."""

    submitted = Signal()

    def canInsertFromMimeData(self, source) -> bool:
        """Dropped files are not text to type: they go on to the page (PDFs attach to the conversation)."""
        if source.hasUrls() and any(url.isLocalFile() for url in source.urls()):
            return False
        return super().canInsertFromMimeData(source)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and event.modifiers() & _SEND_MODIFIERS:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class ComposerBox(QFrame):
    """The composer with its buttons; ``sendClicked`` is Send or Stop depending on ``set_streaming``."""

    sendClicked = Signal()
    regenerateClicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("composerBox")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(18, 8, 18, 14)
        lay.setSpacing(6)
        self.editor = Composer()
        self.editor.setObjectName("composer")
        self.editor.setPlaceholderText("Message the model…")
        self.editor.setFixedHeight(84)
        self.editor.submitted.connect(self.sendClicked)
        buttons = QHBoxLayout()
        self.tools_button = QPushButton("Tools")
        self.tools_button.setObjectName("toolsToggle")
        self.tools_button.setCheckable(True)
        self.tools_button.setToolTip(
            "Let the model use the tools this chat grants (set them in ⚙ → Tools); "
            "it asks before anything writes or runs"
        )
        buttons.addWidget(self.tools_button)
        hint = QLabel(SEND_HINT)
        hint.setObjectName("muted")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Write a new version of the last answer")
        self.regenerate_button.clicked.connect(self.regenerateClicked)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.setMinimumWidth(84)
        self.send_button.clicked.connect(self.sendClicked)
        buttons.addWidget(hint)
        buttons.addStretch(1)
        buttons.addWidget(self.regenerate_button)
        buttons.addWidget(self.send_button)
        lay.addWidget(self.editor)
        lay.addLayout(buttons)
        self.set_streaming(False)

    def set_streaming(self, streaming: bool) -> None:
        self.send_button.setText("Stop" if streaming else "Send")
        self.send_button.setToolTip("Stop the answer (what was written is kept)" if streaming else SEND_HINT)
        self.send_button.setEnabled(True)

    def stopping(self) -> None:
        """Stop was pressed: the button waits until the engine thread has saved the partial answer."""
        self.send_button.setEnabled(False)
