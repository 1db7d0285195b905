"""An inline message strip: how the UI tells a person something without a popup."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget


class Notice(QWidget):
    """One inline message under the header (replaces the previous one; never a popup), optionally with
    one button that fixes what it says."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("notice")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self._on_action: Callable[[], object] | None = None
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.action_button.clicked.connect(self._act)
        self.action_button.hide()
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action_button)
        lay.addWidget(close)
        self.hide()

    def show_message(self, text: str, action: str = "", on_action: Callable[[], object] | None = None) -> None:
        """Show ``text``; with ``action``, a button of that name that hides the notice and calls ``on_action``."""
        self.label.setText(text)
        self._on_action = on_action if action else None
        self.action_button.setText(action)
        self.action_button.setVisible(bool(action))
        self.show()

    def _act(self) -> None:
        act, self._on_action = self._on_action, None
        self.hide()
        if act is not None:
            act()
