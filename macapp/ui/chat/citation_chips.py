"""The sources under a cited answer: one chip per cited page, ``[file, p. N]`` (two passages of one page
make one chip: its tooltip quotes both), wrapping onto more lines when the bubble is narrow. A click asks
for the page viewer at that page (``clicked(citation dict)``, the page's first citation)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtWidgets import QLayout, QLayoutItem, QToolButton, QWidget

EXCERPT_CHARS = 280


class FlowLayout(QLayout):
    """Items left to right, wrapping to a new line when the width runs out (Qt's flow layout example)."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._gap = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    def _arrange(self, rect: QRect, move: bool) -> int:
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, line = area.x(), area.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            if x + hint.width() > area.right() + 1 and line:
                x, y, line = area.x(), y + line + self._gap, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._gap
            line = max(line, hint.height())
        return y + line - rect.y() + m.bottom()


def excerpt(citation: dict) -> str:
    text = " ".join(str(citation.get("text", "")).split())
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"
    return text


def chip_tip(citation: dict, *more: dict) -> str:
    """The label, then the excerpt of each passage cited on that page (``more``: the page's other ones)."""
    texts = [f"“{text}”" for text in (excerpt(c) for c in (citation, *more)) if text]
    if not texts:
        return "Click to open the page."
    return f"{citation.get('label', '')}\n\n" + "\n\n".join(texts) + "\n\nClick to open the page."


def by_page(citations: Sequence[dict]) -> dict[tuple, list[dict]]:
    """The citations grouped by (file, page), in the order their pages are first cited."""
    pages: dict[tuple, list[dict]] = {}
    for citation in citations:
        pages.setdefault((citation.get("file"), citation.get("page")), []).append(citation)
    return pages


class CitationChips(QWidget):
    """A wrapping row of citation chips; ``fit(width)`` sets its height for a bubble that wide."""

    clicked = Signal(object)  # the citation (Citation.to_json() dict)

    def __init__(self, citations: Sequence[dict], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("citationChips")
        self.citations = list(citations)
        self.chips: list[QToolButton] = []
        flow = FlowLayout(self)
        for citation, *more in by_page(self.citations).values():
            chip = QToolButton()
            chip.setObjectName("citationChip")
            chip.setText(str(citation.get("label") or f"[{citation.get('file')}, p. {citation.get('page')}]"))
            chip.setToolTip(chip_tip(citation, *more))
            chip.setCursor(Qt.CursorShape.PointingHandCursor)
            chip.clicked.connect(lambda _=False, c=citation: self.clicked.emit(c))
            flow.addWidget(chip)
            self.chips.append(chip)

    def fit(self, width: int) -> None:
        self.setFixedSize(width, self.layout().heightForWidth(width))
