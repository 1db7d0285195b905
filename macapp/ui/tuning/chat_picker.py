"""Choosing saved conversations to tune on (the Tuning page's "Dataset from chats")."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget


def read_conversations() -> list[tuple[int, str]]:
    """Worker function: (id, title) of every saved conversation, in the history's order."""
    from macapp.core.chat.store import ChatStore

    store = ChatStore()
    try:
        return [(c.id, c.title or f"Conversation {c.id}") for c in store.list_conversations()]
    finally:
        store.close()


class ChatPicker(QDialog):
    """Saved conversations with checkboxes."""

    def __init__(self, conversations: list[tuple[int, str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Dataset from chats")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(22, 18, 22, 14)  # as the Settings dialog's
        lay.setSpacing(10)
        self.intro = QLabel("Each chosen conversation becomes one example (the answers as shown, edits included).")
        self.intro.setWordWrap(True)  # the dialog keeps its width instead of stretching to the sentence
        lay.addWidget(self.intro)
        self.list = QListWidget()
        for cid, title in conversations:
            item = QListWidgetItem(title)
            item.setData(Qt.ItemDataRole.UserRole, cid)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.list.addItem(item)
        lay.addWidget(self.list, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(460, 420)

    def chosen(self) -> list[int]:
        return [
            self.list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]
