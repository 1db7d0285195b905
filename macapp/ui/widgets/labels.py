"""One way to make the app's labels: text, a style-sheet name, selectable or wrapped."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


def make_label(text: str = "", name: str | None = None, *, selectable: bool = False, wrap: bool = False) -> QLabel:
    """A QLabel named ``name`` (the style sheet's hook), optionally selectable by mouse or word-wrapped."""
    label = QLabel(text)
    if name:
        label.setObjectName(name)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if wrap:
        label.setWordWrap(True)
    return label
