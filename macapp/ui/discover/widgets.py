"""Pieces of the Discover page: a model row with its memory verdict and Download button, a
scrolling list of such rows, and the list of Hub search results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QStackedLayout,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes, format_count
from macapp.ui.widgets.delegates import paint_item_background
from macapp.ui.widgets.elided import ElidedLabel
from macapp.ui.widgets.memory_bar import VERDICT_WORDS, MemoryBar, estimate_tooltip, verdict_color

if TYPE_CHECKING:
    from macapp.core.models.estimate import MemoryEstimate
    from macapp.core.models.facts import ModelFacts
    from macapp.core.models.hub import HubModel

_Index = QModelIndex | QPersistentModelIndex
REPO_STATS_ROLE = Qt.ItemDataRole.UserRole + 1  # "1,234 downloads · 56 likes · updated ..."
COMPACT_WIDTH = 620  # a row narrower than this drops its memory bar (the total and verdict stay)
# What a row's Download button says while the queue holds a job for its files.
JOB_BUTTON = {
    "queued": ("Queued", False),
    "running": ("Downloading…", False),
    "paused": ("Resume", True),
    "done": ("Downloaded", False),
}


def repolish(widget: QWidget, name: str) -> None:
    """Give ``widget`` another object name and let the style sheet restyle it."""
    widget.setObjectName(name)
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class ModelRow(QFrame):
    """One model on offer: name and facts on the left; memory bar, total, verdict and Download on the right.

    ``key`` is (repo id, files) — what the Download button queues — so job changes find their rows.
    """

    downloadClicked = Signal()

    def __init__(
        self,
        title: str,
        subtitle: str,
        key: tuple[str, tuple[str, ...]],
        best: bool = False,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("hubRow")
        self.setProperty("best", best)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.key = key
        self.estimate: MemoryEstimate | None = None
        self.facts: ModelFacts | None = None  # once a remote header was read
        self.group_name: str | None = None  # the Hub file group a file row stands for
        self.job_state: str | None = None
        self.unusable = False
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 8, 12, 8)
        lay.setSpacing(14)

        text = QVBoxLayout()
        text.setSpacing(2)
        top = QHBoxLayout()
        top.setSpacing(8)
        self.title = ElidedLabel(title, name="rowTitle")
        self.title.setToolTip(title)
        top.addWidget(self.title)
        self.badge = QLabel("Best pick", self)  # a child from the start: shown parentless it became a window
        self.badge.setToolTip(f"The model that suits {machine_noun()} best: the largest that fits its memory well")
        self.badge.setObjectName("bestBadge")
        self.badge.setVisible(best)
        top.addWidget(self.badge)
        top.addStretch(1)
        text.addLayout(top)
        self.subtitle = ElidedLabel(subtitle, Qt.TextElideMode.ElideRight, name="muted")
        self.subtitle.setToolTip(subtitle)
        text.addWidget(self.subtitle)
        lay.addLayout(text, 1)
        lay.addWidget(self._build_memory_box())

        self.download_button = QPushButton("Download")
        if best:
            self.download_button.setObjectName("primary")
        fm = self.download_button.fontMetrics()
        self.download_button.setMinimumWidth(fm.horizontalAdvance("Downloading…") + 34)
        self.download_button.clicked.connect(self.downloadClicked)
        lay.addWidget(self.download_button)

    def _build_memory_box(self) -> QWidget:
        box = QWidget()
        fm = self.fontMetrics()
        self.bar = MemoryBar()
        self.bar.setMinimumWidth(0)
        self.bar.setFixedSize(96, 22)
        self.memory_label = QLabel()
        self.memory_label.setObjectName("number")
        self.memory_label.setFixedWidth(fm.horizontalAdvance("888.8 MB") + 6)
        self.memory_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.verdict_label = QLabel()
        self.verdict_label.setObjectName("rowVerdict")
        self.verdict_label.setFixedWidth(fm.horizontalAdvance("Too big") + 14)
        numbers = QWidget()
        row = QHBoxLayout(numbers)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(10)
        row.addWidget(self.bar)
        row.addWidget(self.memory_label)
        row.addWidget(self.verdict_label)
        self.message = ElidedLabel("", Qt.TextElideMode.ElideRight, name="muted")
        self._memory_stack = QStackedLayout(box)
        self._memory_stack.addWidget(numbers)
        self._memory_stack.addWidget(self.message)
        box.setFixedWidth(numbers.sizeHint().width())
        self._memory_box, self._numbers = box, numbers
        return box

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        compact = self.width() < COMPACT_WIDTH
        if self.bar.isVisibleTo(self) == compact:
            self.bar.setVisible(not compact)
            self._memory_box.setFixedWidth(self._numbers.sizeHint().width())

    # --- state ---------------------------------------------------------------------------------
    def set_estimate(self, estimate: MemoryEstimate | None) -> None:
        """Show what the model needs against the budget (bar, total, verdict in its colour)."""
        self.estimate = estimate
        self.bar.set_estimate(estimate)
        if estimate is None:
            self.memory_label.setText("")
            self.verdict_label.setText("")
            return
        self.memory_label.setText(format_bytes(estimate.total_bytes))
        self.verdict_label.setText(VERDICT_WORDS[estimate.verdict] if estimate.verdict else "")
        self.verdict_label.setStyleSheet(f"color: {verdict_color(estimate.verdict).name()}; font-weight: 600;")
        tip = estimate_tooltip(estimate)
        for w in (self.bar, self.memory_label, self.verdict_label):
            w.setToolTip(tip)
        self._memory_stack.setCurrentIndex(0)

    def show_message(self, text: str, error: bool = False) -> None:
        """Put a one-line note where the estimate goes ("Reading header…", or why there is none); its tooltip
        holds the whole of it, for when the row is too narrow and it elides."""
        self.message.set_full_text(f"⚠ {text}" if error else text)
        self.message.setToolTip(self.message.full_text())
        repolish(self.message, "errorText" if error else "muted")
        self._memory_stack.setCurrentIndex(1)

    @property
    def showing_message(self) -> bool:
        return self._memory_stack.currentIndex() == 1

    def set_job_state(self, state: str | None) -> None:
        """Follow the download queue: "Queued", "Downloading…", "Downloaded", or Download again."""
        text, enabled = JOB_BUTTON.get(state or "", ("Download", True))
        self.download_button.setText(text)
        self.download_button.setEnabled(enabled and not self.unusable)
        self.job_state = state

    def set_unusable(self, reason: str) -> None:
        """The file cannot be used (not a GGUF, parts missing): say so and offer no download."""
        self.unusable = True
        self.download_button.setEnabled(False)
        self.download_button.setToolTip(f"Orchard cannot use this file: {reason}")


class RowList(QScrollArea):
    """ModelRows in a card that scrolls, or a centred line when there are none."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("rowList")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        body.setObjectName("rowListBody")
        self._lay = QVBoxLayout(body)
        self._lay.setContentsMargins(1, 1, 1, 1)
        self._lay.setSpacing(0)
        self.placeholder = QLabel()
        self.placeholder.setObjectName("emptyState")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setContentsMargins(24, 36, 24, 36)
        self._lay.addWidget(self.placeholder)
        self._lay.addStretch(1)
        self.setWidget(body)
        self.rows: list[ModelRow] = []

    def clear(self, placeholder: str = "") -> None:
        """Drop every row; show ``placeholder`` (if any) instead."""
        for row in self.rows:
            self._lay.removeWidget(row)
            row.hide()
            row.deleteLater()
        self.rows = []
        self.show_placeholder(placeholder)

    def show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.setVisible(bool(text))

    def add_row(self, row: ModelRow) -> None:
        self._lay.insertWidget(self._lay.count() - 1, row)
        self.rows.append(row)
        self.placeholder.hide()

    def row(self, title: str) -> ModelRow:
        """The row whose title is ``title`` (tests and the page look rows up by it)."""
        return next(r for r in self.rows if r.title.full_text() == title)


class RepoListModel(QAbstractListModel):
    """Hub search results (``HubModel``), drawn two lines a row by ``RepoDelegate``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._repos: list[HubModel] = []

    def set_repos(self, repos: list[HubModel]) -> None:
        self.beginResetModel()
        self._repos = list(repos)
        self.endResetModel()

    def repo(self, row: int) -> HubModel:
        return self._repos[row]

    def repos(self) -> list[HubModel]:
        return list(self._repos)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._repos)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        repo = self._repos[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return repo.id
        if role == REPO_STATS_ROLE:
            return repo_stats(repo)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{repo.id}\n{repo_stats(repo)}" + (
                "\nGated: accept its licence on the Hub and log in to download" if repo.gated else ""
            )
        return None


def repo_stats(repo: HubModel) -> str:
    """ "1,234,567 downloads · 321 likes · updated 2024-05-01 · gated"."""
    parts = [f"{format_count(repo.downloads)} downloads", f"{format_count(repo.likes)} likes"]
    if repo.last_modified:
        parts.append(f"updated {repo.last_modified[:10]}")
    if repo.gated:
        parts.append("gated")
    return " · ".join(parts)


class RepoDelegate(QStyledItemDelegate):
    """A search result as two lines: the repo id (elided in the middle), then its numbers, muted."""

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        return QSize(200, option.fontMetrics.height() * 2 + 16)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        paint_item_background(self, painter, option, index)
        rect = option.rect.adjusted(10, 7, -10, -7)
        fm = option.fontMetrics
        text_color = option.palette.color(QPalette.ColorRole.Text)
        muted = QColor(text_color)
        muted.setAlphaF(0.62)
        painter.save()
        bold = QFont(option.font)
        bold.setWeight(QFont.Weight.DemiBold)
        painter.setFont(bold)
        painter.setPen(text_color)
        name = QFontMetrics(bold).elidedText(index.data(), Qt.TextElideMode.ElideMiddle, rect.width())
        painter.drawText(rect.adjusted(0, 0, 0, -fm.height()), int(Qt.AlignmentFlag.AlignLeft), name)
        painter.setFont(option.font)
        painter.setPen(muted)
        stats = fm.elidedText(index.data(REPO_STATS_ROLE), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect.adjusted(0, fm.height() + 2, 0, 0), int(Qt.AlignmentFlag.AlignLeft), stats)
        painter.restore()
