"""The one page header: the page's title, a muted status line beside it, the page's buttons on the right."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QWidget

from macapp.ui.widgets.labels import make_label


class PageHeader(QWidget):
    """``title`` in the page-title style, ``status`` (``self.status``, a label the page updates) beside it at
    the text's baseline, and ``buttons`` at the right edge in the order given (the primary one last)."""

    def __init__(self, title: str, status: str = "", buttons: Sequence[QWidget] = (), parent: QWidget | None = None):
        super().__init__(parent)
        self.title = make_label(title, "pageTitle")
        self.status = make_label(status, "muted")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addSpacing(12)
        lay.addWidget(self.status, 0, Qt.AlignmentFlag.AlignBottom)
        lay.addStretch(1)
        for button in buttons:
            lay.addWidget(button)
