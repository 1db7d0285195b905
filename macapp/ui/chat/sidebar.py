"""The Chat page's left column: a search box, New chat, and the saved conversations.

With text in the search box the list shows full-text hits (``ChatStore.search``): each names its
conversation and shows the matching words in bold; clicking one opens the conversation at that
message. Rename by double-click or the context menu; delete from the context menu, after a
confirmation. Store calls here are short reads and writes on the GUI thread (see ``ChatStore``).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from macapp.core.chat.store import ChatStore, SearchHit

ID_ROLE = Qt.ItemDataRole.UserRole
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_DELAY_MS = 150


def snippet_html(hit: SearchHit) -> str:
    """A hit as rich text: the conversation's title, then the snippet with its [matches] in bold."""
    snippet = html.escape(hit.snippet).replace("[", "<b>").replace("]", "</b>")
    title = html.escape(hit.conversation_title)
    where = "title" if hit.message_id is None else ("you" if hit.role == "user" else "answer")
    return f"<b>{title}</b><br><span style='font-size: 12px'>{where}: {snippet}</span>"


class ConversationList(QWidget):
    """Saved conversations, newest first, or search hits while the search box has text."""

    opened = Signal(int, object)  # conversation id, message id to bring into view (or None)
    newRequested = Signal()
    deleted = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chatSidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.setMinimumWidth(170)
        self.setMaximumWidth(250)
        self._store: ChatStore | None = None
        self._current: int | None = None
        self._locked: int | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 14, 12, 12)
        lay.setSpacing(8)
        self.new_button = QPushButton("New chat")
        self.new_button.setObjectName("primary")
        self.new_button.setToolTip("Start a new conversation")
        self.new_button.clicked.connect(self.newRequested)
        self.search_box = QLineEdit()
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Search chats")
        self.search_box.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.run_search)
        self.search_box.textChanged.connect(lambda _text: self._search_timer.start())

        self.conversations = QListWidget()
        self.conversations.setObjectName("conversationList")
        self.conversations.setFrameShape(QFrame.Shape.NoFrame)
        self.conversations.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.conversations.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.conversations.customContextMenuRequested.connect(self._context_menu)
        self.conversations.currentItemChanged.connect(self._on_current)
        self.conversations.itemChanged.connect(self._on_renamed)
        self.hits = QListWidget()
        self.hits.setObjectName("conversationList")
        self.hits.setFrameShape(QFrame.Shape.NoFrame)
        self.hits.setWordWrap(True)
        self.hits.itemClicked.connect(self._on_hit)
        self.hits.itemActivated.connect(self._on_hit)
        self.no_hits = QLabel("No messages match.")
        self.no_hits.setObjectName("muted")
        self.no_hits.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.stack = QStackedWidget()
        for w in (self.conversations, self.hits, self.no_hits):
            self.stack.addWidget(w)
        lay.addWidget(self.new_button)
        lay.addWidget(self.search_box)
        lay.addWidget(self.stack, 1)

    def sizeHint(self) -> QSize:
        return QSize(240, super().sizeHint().height())

    def focus_search(self) -> None:
        """Put the cursor in the search box, its text selected (Chat > Search Chats… ⌘F)."""
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def set_store(self, store: ChatStore) -> None:
        self._store = store
        self.refresh()

    def shutdown(self) -> None:
        """The page closes (its store too): a search still waiting for its delay must not read the closed store."""
        self._search_timer.stop()
        self._store = None

    # --- conversations -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the conversations (titles and order change as messages arrive)."""
        if self._store is None:
            return
        lst = self.conversations
        lst.blockSignals(True)
        lst.clear()
        for conv in self._store.list_conversations():
            item = self._new_item(conv)
            lst.addItem(item)
            if conv.id == self._current:
                lst.setCurrentItem(item)
        lst.blockSignals(False)
        if self.search_box.text().strip():
            self.run_search()

    @staticmethod
    def _new_item(conv) -> QListWidgetItem:
        item = QListWidgetItem(conv.title)
        item.setData(ID_ROLE, conv.id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        item.setToolTip(
            f"{conv.title}\nStarted {conv.created_at.astimezone():%d %b %Y, %H:%M}"
            + (f" · {Path(conv.model).name}" if conv.model else "")
        )
        item.setSizeHint(QSize(0, 32))
        return item

    def touch(self, conversation_id: int) -> None:
        """A conversation got a message: show it first, with its (maybe new) title, without re-reading the list."""
        if self._store is None:
            return
        from macapp.core.chat.store import NotFoundError

        lst = self.conversations
        try:
            conv = self._store.get_conversation(conversation_id)
        except NotFoundError:
            self.refresh()
            return
        title = conv.title
        item = self.item(conversation_id)
        lst.blockSignals(True)
        if item is None:  # a new conversation
            item = self._new_item(conv)
            lst.insertItem(0, item)
        if item.text() != title:
            item.setText(title)
        if lst.row(item) != 0:
            lst.insertItem(0, lst.takeItem(lst.row(item)))
        if conversation_id == self._current:
            lst.setCurrentItem(item)
        lst.blockSignals(False)

    def set_current(self, conversation_id: int | None) -> None:
        """Select a conversation without emitting ``opened``."""
        self._current = conversation_id
        lst = self.conversations
        lst.blockSignals(True)
        item = self.item(conversation_id)
        if item is None:
            lst.setCurrentRow(-1)
        else:
            lst.setCurrentItem(item)
        lst.blockSignals(False)

    def set_locked(self, conversation_id: int | None) -> None:
        """The conversation a reply is streaming into cannot be deleted until it ends."""
        self._locked = conversation_id

    def item(self, conversation_id: int | None) -> QListWidgetItem | None:
        for row in range(self.conversations.count()):
            item = self.conversations.item(row)
            if item.data(ID_ROLE) == conversation_id:
                return item
        return None

    def titles(self) -> list[str]:
        return [self.conversations.item(r).text() for r in range(self.conversations.count())]

    def _on_current(self, item: QListWidgetItem | None, _previous) -> None:
        if item is not None:
            self._current = item.data(ID_ROLE)
            self.opened.emit(self._current, None)

    def _on_renamed(self, item: QListWidgetItem) -> None:
        cid = item.data(ID_ROLE)
        if self._store is None or cid is None:
            return
        title = " ".join(item.text().split())
        if not title:
            self.refresh()  # an empty name: keep the old one
            return
        self._store.rename_conversation(cid, title)

    def _context_menu(self, pos) -> None:
        item = self.conversations.itemAt(pos)
        if item is None:
            return
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.conversations.editItem(item))
        delete = menu.addAction("Delete…", lambda: self.delete_conversation(item.data(ID_ROLE)))
        if item.data(ID_ROLE) == self._locked:
            delete.setEnabled(False)
            delete.setText("Delete… (stop the reply first)")
        menu.exec(self.conversations.viewport().mapToGlobal(pos))

    def delete_conversation(self, conversation_id: int, confirm: bool = True) -> bool:
        """Delete after asking; True if it was deleted."""
        if self._store is None or conversation_id == self._locked:
            return False
        item = self.item(conversation_id)
        title = item.text() if item is not None else "this conversation"
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete conversation",
                f"Delete “{title}” and all its messages? This cannot be undone.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        self._store.delete_conversation(conversation_id)
        if self._current == conversation_id:
            self._current = None
        self.refresh()
        self.deleted.emit(conversation_id)
        return True

    # --- search --------------------------------------------------------------------------------
    def run_search(self) -> None:
        """Show the hits for the search box's text (the conversations when it is empty)."""
        self._search_timer.stop()
        query = self.search_box.text().strip()
        if not query or self._store is None:
            self.stack.setCurrentWidget(self.conversations)
            return
        found = self._store.search(query)
        self.hits.clear()
        width = self.stack.width() - 16  # the hit list may not have been shown (or sized) yet
        for hit in found:
            item = QListWidgetItem()
            item.setData(ID_ROLE, hit.conversation_id)
            item.setData(MESSAGE_ROLE, hit.message_id)
            label = QLabel(snippet_html(hit))
            label.setObjectName("hitLabel")
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.setContentsMargins(6, 4, 6, 4)
            label.ensurePolished()
            item.setSizeHint(QSize(0, label.heightForWidth(max(120, width)) + 10))
            self.hits.addItem(item)
            self.hits.setItemWidget(item, label)
        self.stack.setCurrentWidget(self.hits if found else self.no_hits)

    def hit_count(self) -> int:
        return self.hits.count() if self.stack.currentWidget() is self.hits else 0

    def _on_hit(self, item: QListWidgetItem) -> None:
        cid = item.data(ID_ROLE)
        self.set_current(cid)
        self.opened.emit(cid, item.data(MESSAGE_ROLE))
