"""The Models table: one row per library entry, with its facts and a memory bar for its estimate."""

from __future__ import annotations

import os
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QHeaderView, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QTableView

from macapp.core.units import format_bytes, format_count, format_params
from macapp.ui.widgets.delegates import paint_item_background
from macapp.ui.widgets.memory_bar import VERDICT_WORDS, estimate_tooltip, paint_bar, verdict_color

if TYPE_CHECKING:
    from macapp.core.models.estimate import MemoryEstimate
    from macapp.core.models.library import LibraryEntry

ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1  # the LibraryEntry of the row
SORT_ROLE = Qt.ItemDataRole.UserRole + 2  # a number or lower-case text to sort by
ESTIMATE_ROLE = Qt.ItemDataRole.UserRole + 3  # the row's MemoryEstimate (None for unusable files)
_Index = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    NAME = 0
    PARAMETERS = 1
    VOCAB = 2
    CONTEXT = 3
    QUANT = 4
    SIZE = 5
    KIND = 6
    MEMORY = 7
    STATUS = 8


HEADERS = {
    Column.NAME: "Name",
    Column.PARAMETERS: "Parameters",
    Column.VOCAB: "Vocabulary",
    Column.CONTEXT: "Context",
    Column.QUANT: "Quant",
    Column.SIZE: "Size",
    Column.KIND: "Kind",
    Column.MEMORY: "Memory",
    Column.STATUS: "Status",
}
# Widest values a column usually shows; the page sizes the columns from them.
COLUMN_SAMPLES = {
    Column.PARAMETERS: "888.8 M",
    Column.VOCAB: "888,888",
    Column.CONTEXT: "888,888",
    Column.QUANT: "IQ2_XXS",
    Column.SIZE: "88.8 GB",
    Column.KIND: "Instruct",
    Column.MEMORY: "88888 888.8 MB",
    Column.STATUS: "Too big",  # a file's problem is longer: it elides, and its tooltip holds it all
}
# Columns the details panel repeats, hidden in this order when the table is too narrow to give names NAME_ROOM.
OPTIONAL_COLUMNS = (Column.VOCAB, Column.KIND, Column.PARAMETERS, Column.CONTEXT)
NAME_ROOM = 180
_RIGHT = {Column.PARAMETERS, Column.VOCAB, Column.CONTEXT, Column.SIZE}
ERROR_COLOR = "#c0392b"


def _real(path: str) -> str:
    return os.path.realpath(path)


def short_reason(entry: LibraryEntry) -> str:
    """The reason alone, for a narrow column: the row already shows the name, so
    "x.gguf is not a valid GGUF file: it is truncated: ..." reads "Truncated: ..."."""
    reason = entry.error or ""
    if reason.startswith(entry.name + " "):
        head, sep, tail = reason.partition(": ")
        reason = tail if sep else "File" + reason[len(entry.name) :]
        for filler in ("it is ", "it "):
            if reason.startswith(filler):
                reason = reason[len(filler) :]
    return reason[:1].upper() + reason[1:]


def status_text(entry: LibraryEntry, estimate: MemoryEstimate | None) -> str:
    if entry.error:
        return f"⚠ {short_reason(entry)}"
    if estimate is None or estimate.verdict is None:
        return "Ready"
    return VERDICT_WORDS[estimate.verdict]


class LibraryTableModel(QAbstractTableModel):
    """Library entries and their current estimates; the page decides what each estimate is."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._entries: list[LibraryEntry] = []
        self._estimates: dict[str, MemoryEstimate | None] = {}

    # --- editing -------------------------------------------------------------------------------
    def set_entries(self, entries: list[LibraryEntry], estimates: dict[str, MemoryEstimate | None]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self._estimates = dict(estimates)
        self.endResetModel()

    def upsert(self, entry: LibraryEntry, estimate: MemoryEstimate | None) -> int:
        """Add ``entry``, or replace the row of the same file; returns its row."""
        row = self.row_of_path(entry.path)
        if row is None:
            row = len(self._entries)
            self.beginInsertRows(QModelIndex(), row, row)
            self._entries.append(entry)
            self._estimates[entry.id] = estimate
            self.endInsertRows()
        else:
            self._estimates.pop(self._entries[row].id, None)
            self._entries[row] = entry
            self._estimates[entry.id] = estimate
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(Column) - 1))
        return row

    def set_estimate(self, entry_id: str, estimate: MemoryEstimate | None) -> None:
        row = self.row_of(entry_id)
        if row is None:
            return
        self._estimates[entry_id] = estimate
        self.dataChanged.emit(self.index(row, Column.MEMORY), self.index(row, Column.STATUS))

    # --- lookup --------------------------------------------------------------------------------
    def entries(self) -> list[LibraryEntry]:
        return list(self._entries)

    def entry(self, row: int) -> LibraryEntry:
        return self._entries[row]

    def estimate(self, entry_id: str) -> MemoryEstimate | None:
        return self._estimates.get(entry_id)

    def row_of(self, entry_id: str) -> int | None:
        return next((i for i, e in enumerate(self._entries) if e.id == entry_id), None)

    def row_of_path(self, path: str) -> int | None:
        real = _real(path)
        return next((i for i, e in enumerate(self._entries) if e.path == path or _real(e.path) == real), None)

    # --- Qt model ------------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[Column(section)]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in _RIGHT:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self._entries[index.row()]
        col = Column(index.column())
        estimate = self._estimates.get(entry.id)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(entry, estimate, col)
        if role == SORT_ROLE:
            return self._sort_key(entry, estimate, col)
        if role == ENTRY_ROLE:
            return entry
        if role == ESTIMATE_ROLE:
            return estimate
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(entry, estimate, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _RIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col == Column.STATUS:
            if entry.error:
                return QColor(ERROR_COLOR)
            if estimate is not None and estimate.verdict:
                return verdict_color(estimate.verdict)
        return None

    @staticmethod
    def _display(entry: LibraryEntry, estimate: MemoryEstimate | None, col: Column) -> str:
        if col == Column.NAME:
            return entry.name
        if col == Column.STATUS:
            return status_text(entry, estimate)
        f = entry.facts
        if f is None:
            return ""
        if col == Column.PARAMETERS:
            return format_params(f.parameters)
        if col == Column.VOCAB:
            return format_count(f.vocab_size)
        if col == Column.CONTEXT:
            return format_count(f.context_length)
        if col == Column.QUANT:
            return f.quantization
        if col == Column.SIZE:
            return format_bytes(f.file_size)
        if col == Column.KIND:
            return f.kind.capitalize() if f.kind != "unknown" else "—"
        if col == Column.MEMORY:
            return format_bytes(estimate.total_bytes) if estimate else ""
        return ""

    @staticmethod
    def _sort_key(entry: LibraryEntry, estimate: MemoryEstimate | None, col: Column) -> Any:
        f = entry.facts
        numbers = {
            Column.PARAMETERS: lambda: f.parameters,
            Column.VOCAB: lambda: f.vocab_size,
            Column.CONTEXT: lambda: f.context_length,
            Column.SIZE: lambda: f.file_size,
            Column.MEMORY: lambda: estimate.total_bytes if estimate else -1,
        }
        if col in numbers:
            return numbers[col]() if f is not None else -1
        return LibraryTableModel._display(entry, estimate, col).lower()

    @staticmethod
    def _tooltip(entry: LibraryEntry, estimate: MemoryEstimate | None, col: Column) -> str | None:
        if entry.error and col in (Column.NAME, Column.STATUS):
            return f"{entry.path}\n\nCannot be used: {entry.error}"
        if col == Column.NAME:
            facts = entry.facts
            where = f"{entry.path}\nid {entry.id} (for `macapp run` and the server)"
            return f"{where}\n{facts.name} · {facts.architecture} · from {entry.source}" if facts else where
        if col == Column.KIND and entry.facts is not None:
            return entry.facts.kind_reason
        if col in (Column.MEMORY, Column.STATUS) and estimate is not None:
            return estimate_tooltip(estimate)
        return None


class ElideDelegate(QStyledItemDelegate):
    """Elide a column's text in its own way (names in the middle, reasons at the end)."""

    def __init__(self, mode: Qt.TextElideMode, parent=None):
        super().__init__(parent)
        self._mode = mode

    def initStyleOption(self, option: QStyleOptionViewItem, index: _Index) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = self._mode


class MemoryDelegate(QStyledItemDelegate):
    """The Memory column: a small bar of the row's estimate against the budget, and the total."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        estimate = index.data(ESTIMATE_ROLE)
        if estimate is None:
            super().paint(painter, option, index)
            return
        paint_item_background(self, painter, option, index)
        rect = QRectF(option.rect).adjusted(8, 0, -8, 0)
        text = format_bytes(estimate.total_bytes)
        text_w = option.fontMetrics.horizontalAdvance("888.8 MB") + 8
        bar_w = max(24.0, rect.width() - text_w)
        bar = QRectF(rect.left(), rect.center().y() - 4, bar_w, 8)
        parts = (estimate.weights_bytes, estimate.kv_cache_bytes, estimate.compute_bytes + estimate.overhead_bytes)
        paint_bar(painter, bar, parts, estimate.budget_bytes, estimate.verdict, option.palette, radius=3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setPen(
            option.palette.color(
                option.palette.ColorRole.HighlightedText if selected else option.palette.ColorRole.Text
            )
        )
        align = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight
        painter.drawText(rect.adjusted(bar_w, 0, 0, 0), int(align), text)
        painter.restore()


class LibraryTableView(QTableView):
    """The library table: facts columns as wide as their usual values, the name taking the rest (eliding in the
    middle), and the facts the details panel repeats hidden when the view is narrow, so it never scrolls sideways
    for want of room for a name."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._widths: dict[Column, int] = {}

    def size_columns(self) -> None:
        head = self.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        head.setStretchLastSection(False)
        fm = self.fontMetrics()
        bold = QFont(head.font())
        bold.setBold(True)  # the headers are drawn bold (style.qss)
        head_fm = QFontMetrics(bold)
        for col, sample in COLUMN_SAMPLES.items():
            self._widths[col] = max(head_fm.horizontalAdvance(HEADERS[col]), fm.horizontalAdvance(sample)) + 20
            head.resizeSection(col, self._widths[col])
        self.fit_columns()

    def fit_columns(self) -> None:
        """Show every column that leaves the name NAME_ROOM; hide the optional ones, in order, until it does."""
        head = self.horizontalHeader()
        room = self.viewport().width() - NAME_ROOM - sum(self._widths.values())
        for col in OPTIONAL_COLUMNS:
            hide = room < 0
            if hide:
                room += self._widths.get(col, 0)
            if head.isSectionHidden(col) != hide:
                head.setSectionHidden(col, hide)
                if not hide:
                    head.resizeSection(col, self._widths[col])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_columns()
