"""The Documents page's table of one collection's files (pages, passages, when added), and the words for them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from macapp.core.units import plural

if TYPE_CHECKING:
    from macapp.core.docs.ingest import CollectionInfo, FileInfo

HEADERS = ("File", "Pages", "Passages", "Added")
HASH_ROLE = Qt.ItemDataRole.UserRole


def added_text(stamp: str) -> str:
    """``2025-03-02T10:04:00+00:00`` as local ``2 Mar 2025, 11:04`` (the text itself if it isn't a date)."""
    try:
        when = datetime.fromisoformat(stamp).astimezone()
        return f"{when.day} {when:%b %Y, %H:%M}"
    except (ValueError, TypeError):
        return stamp or ""


def ocr_text(pages: int) -> str:
    """``12 pages read by OCR`` (empty when none was)."""
    return f"{plural(pages, 'page')} read by OCR" if pages else ""


def collection_summary(info: CollectionInfo) -> str:
    parts = [
        plural(len(info.files), "file"),
        plural(info.pages, "page"),
        ocr_text(info.ocr_pages),
        plural(info.chunks, "passage"),
    ]
    return " · ".join(part for part in parts if part)


class NumberItem(QTableWidgetItem):
    """A table cell that sorts by number."""

    def __init__(self, value: int):
        super().__init__(f"{value:,}")
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", 0)


class FilesTable(QTableWidget):
    """A collection's files, one row each, sortable; one row can be selected."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(HEADERS), parent)
        self.setHorizontalHeaderLabels(HEADERS)
        self.horizontalHeaderItem(2).setToolTip("The passages the file was split into for search")
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(30)
        head = self.horizontalHeader()
        head.setHighlightSections(False)
        head.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            head.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        for col in (1, 2):  # numbers, right-aligned under their headers
            self.horizontalHeaderItem(col).setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.sortByColumn(0, Qt.SortOrder.AscendingOrder)

    def show_files(self, files: list[FileInfo]) -> None:
        """One row per file (none for an empty list), sorted as the user last chose."""
        self.setSortingEnabled(False)
        self.setRowCount(0)
        self.setRowCount(len(files))
        for row, f in enumerate(files):
            name = QTableWidgetItem(f.file)
            name.setToolTip(f"{f.path}\nsha256 {f.file_hash}")
            name.setData(HASH_ROLE, f.file_hash)
            self.setItem(row, 0, name)
            pages = NumberItem(f.pages)
            if f.ocr_pages:  # a scan: say how much of it OCR read
                pages.setText(f"{f.pages:,} ({f.ocr_pages:,} by OCR)")
                pages.setToolTip(f"{ocr_text(f.ocr_pages)}: they had no text layer")
            self.setItem(row, 1, pages)
            self.setItem(row, 2, NumberItem(f.chunks))
            self.setItem(row, 3, QTableWidgetItem(added_text(f.added_at)))
        self.setSortingEnabled(True)

    def selected_hash(self) -> str | None:
        """The file hash of the selected row (None when no row is)."""
        rows = self.selectionModel().selectedRows()
        return self.item(rows[0].row(), 0).data(HASH_ROLE) if rows else None
