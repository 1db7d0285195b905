"""Progress of adding PDFs (or re-indexing a collection): one row per file with its bar and outcome.

The Chat page shows it above the composer for the PDFs dropped on a conversation; the Documents page
shows it under its buttons. ``add`` and ``reindex`` run their work in ``Worker``s on the indexing
pool (``doc_jobs.indexing_pool``), so batches queue behind each other and the window never waits.
Cancel stops every batch: the file in progress is rolled back, finished files stay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from macapp.core.units import time_left
from macapp.ui.jobs.documents import add_pdfs, indexing_pool, reindex_collection
from macapp.ui.widgets.elided import ElidedLabel
from macapp.ui.widgets.memory_bar import VERDICT_COLORS
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.core.docs.ingest import FileOutcome, IngestProgress

STAGE_WORDS = {
    "hash": "Reading",
    "extract": "Reading pages",
    "ocr": "Reading by OCR",
    "chunk": "Splitting into passages",
    "embed": "Indexing",
    "reindex": "Re-indexing",
}
STATUS_WORDS = {"added": "Added", "updated": "Updated", "skipped": "Skipped", "failed": "Failed"}
STATUS_COLORS = {
    "added": VERDICT_COLORS["fits"],
    "updated": VERDICT_COLORS["fits"],
    "skipped": VERDICT_COLORS["tight"],
    "failed": VERDICT_COLORS["too_big"],
}
MAX_LIST_HEIGHT = 180  # about four rows; more scroll


def outcome_text(outcome: FileOutcome) -> str:
    """What a finished row says: ``3 pages · 12 passages``, or why it was skipped or failed."""
    if outcome.status in ("added", "updated"):
        pages = f"{outcome.pages} page{'s' if outcome.pages != 1 else ''}"
        if outcome.ocr_pages:
            pages += f" ({outcome.ocr_pages} read by OCR)"
        text = f"{pages} · {outcome.chunks} passage{'s' if outcome.chunks != 1 else ''}"
        return text + (" · replaced the older version" if outcome.status == "updated" else "")
    if not outcome.hint:
        return outcome.message
    # "x.pdf is not a PDF. Only PDF files can be added." (the PDF errors are sentences), not "PDF. — Only"
    return outcome.message + (" " if outcome.message.endswith((".", "!", "?")) else " — ") + outcome.hint


def ocr_detail(step: IngestProgress) -> str:
    """While pages are read by OCR: ``page 3 of 12 · about 40 s left`` (nothing at other stages)."""
    if step.stage != "ocr" or not step.pages:
        return ""
    left = time_left(step.eta_seconds)
    return f"page {step.page} of {step.pages}" + (f" · about {left}" if left else "")


class IngestRow(QFrame):
    """One file: name, state, a thin bar while it is worked on, then its outcome."""

    def __init__(self, name: str, path: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ingestRow")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.name = name
        self.outcome: FileOutcome | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 5, 10, 5)
        lay.setSpacing(3)
        top = QHBoxLayout()
        top.setSpacing(10)
        self.name_label = ElidedLabel(name, name="rowTitle")
        self.name_label.setToolTip(path or name)
        self.state_label = QLabel("Waiting")
        self.state_label.setObjectName("jobState")
        self.state_label.setMinimumWidth(
            max(self.state_label.fontMetrics().horizontalAdvance(w) for w in STAGE_WORDS.values()) + 12
        )
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(5)
        self.progress.setFixedWidth(120)
        top.addWidget(self.name_label, 1)
        top.addWidget(self.progress)
        top.addWidget(self.state_label)
        lay.addLayout(top)
        self.detail_label = QLabel("")
        self.detail_label.setObjectName("muted")
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_label.hide()
        lay.addWidget(self.detail_label)

    @property
    def status(self) -> str:
        """waiting | working | added | updated | skipped | failed | cancelled | done"""
        if self.outcome is not None:
            return self.outcome.status
        return self.property("status") or "waiting"

    def show_step(self, stage: str, fraction: float, detail: str = "") -> None:
        self.setProperty("status", "working")
        self.state_label.setText(STAGE_WORDS.get(stage, stage.capitalize()))
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.detail_label.setText(detail)
        self.detail_label.setVisible(bool(detail))

    def finish(self, outcome: FileOutcome) -> None:
        self.outcome = outcome
        self._done(
            STATUS_WORDS.get(outcome.status, outcome.status), STATUS_COLORS.get(outcome.status), outcome_text(outcome)
        )

    def stop(self, word: str, detail: str = "") -> None:
        """A row without a file outcome ends: Cancelled, Failed (an error outside any one file), or Done."""
        self.setProperty("status", word.lower())
        color = {"Failed": STATUS_COLORS["failed"], "Done": STATUS_COLORS["added"]}.get(word)
        self._done(word, color, detail)

    def _done(self, word: str, color: str | None, detail: str) -> None:
        self.progress.hide()
        self.state_label.setText(word)
        self.state_label.setStyleSheet(f"color: {color};" if color else "")
        self.detail_label.setText(detail)
        self.detail_label.setVisible(bool(detail))


class _Batch:
    """The rows and worker of one ``add`` (kind "add") or ``reindex`` (kind "reindex") call."""

    def __init__(self, kind: str, collection: str, rows: list[IngestRow], worker: Worker):
        self.kind = kind
        self.collection = collection
        self.rows = rows
        self.worker = worker


class IngestPanel(QFrame):
    """Rows for the PDFs being added, with Cancel while any batch runs and ✕ to clear the list after."""

    fileFinished = Signal(str, object)  # collection, FileOutcome
    batchFinished = Signal(str, object)  # collection, list[FileOutcome] (reindex: [])
    busyChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ingestPanel")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self._batches: list[_Batch] = []
        self.rows: list[IngestRow] = []
        self.place: Callable[[str], str] = lambda collection: f"“{collection}”"  # how titles name a collection
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        lay.setSpacing(4)
        head = QHBoxLayout()
        head.setSpacing(8)
        self.title = QLabel("")
        self.title.setObjectName("strong")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop adding: the file in progress is rolled back, finished files stay")
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Clear this list")
        self.close_button.clicked.connect(self.clear)
        head.addWidget(self.title, 1)
        head.addWidget(self.cancel_button)
        head.addWidget(self.close_button)
        lay.addLayout(head)
        body = QWidget()
        body.setObjectName("ingestList")
        self._list = QVBoxLayout(body)
        self._list.setContentsMargins(0, 0, 0, 0)
        self._list.setSpacing(0)
        self._list.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setObjectName("ingestScroll")
        self.scroll.setWidget(body)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        lay.addWidget(self.scroll)
        self._update()

    # --- state ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self._batches)

    def outcomes(self) -> list[FileOutcome]:
        return [row.outcome for row in self.rows if row.outcome is not None]

    # --- work ----------------------------------------------------------------------------------
    def add(self, collection: str, paths: Sequence[str]) -> Worker:
        """Add ``paths`` to ``collection`` in a worker (queued behind any batch already running)."""
        rows = [self._add_row(Path(p).name, str(p)) for p in paths]
        worker = Worker(add_pdfs, collection, [str(p) for p in paths], pass_token=True, pool=indexing_pool())
        return self._start(_Batch("add", collection, rows, worker))

    def reindex(self, collection: str, if_needed: bool = False) -> Worker:
        """Re-embed ``collection`` in a worker (``if_needed``: only if it was built with another embedder);
        one row follows it."""
        row = self._add_row(f"Re-indexing {self.place(collection)}")
        worker = Worker(reindex_collection, collection, if_needed=if_needed, pass_token=True, pool=indexing_pool())
        return self._start(_Batch("reindex", collection, [row], worker))

    def reindexing(self) -> set[str]:
        """The collections with a re-index queued or running."""
        return {b.collection for b in self._batches if b.kind == "reindex"}

    def _start(self, batch: _Batch) -> Worker:
        was_busy = self.busy
        self._batches.append(batch)
        signals = batch.worker.signals
        signals.yielded.connect(lambda step: self._on_step(batch, step))
        signals.returned.connect(lambda result: self._on_returned(batch, result))
        signals.errored.connect(lambda exc: self._stop_rows(batch, "Failed", error_text(exc)))
        signals.aborted.connect(lambda: self._stop_rows(batch, "Cancelled"))
        signals.finished.connect(lambda: self._after(batch))
        self._update()
        if not was_busy:
            self.busyChanged.emit(True)
        return batch.worker.start()

    def cancel(self) -> None:
        """Stop every batch (queued ones end at once, the running one at its next step)."""
        for batch in self._batches:
            batch.worker.cancel()
        self.cancel_button.setEnabled(False)

    def clear(self) -> None:
        """Forget the finished rows (and hide when nothing runs)."""
        keep = {id(row) for batch in self._batches for row in batch.rows}
        for row in [r for r in self.rows if id(r) not in keep]:
            self.rows.remove(row)
            self._list.removeWidget(row)
            row.deleteLater()
        self._update()

    # --- progress ------------------------------------------------------------------------------
    def _add_row(self, name: str, path: str = "") -> IngestRow:
        row = IngestRow(name, path)
        self._list.insertWidget(self._list.count() - 1, row)
        self.rows.append(row)
        return row

    def _on_step(self, batch: _Batch, step: IngestProgress) -> None:
        if step.stage == "reindex":  # a re-index (also the one an add starts with when the embedder changed)
            index, fraction = 0, step.done / step.total if step.total else 0.0
        elif step.outcome is not None:
            index, fraction = int(step.done) - 1, 1.0
        else:
            index, fraction = int(step.done), step.done - int(step.done)
        if not 0 <= index < len(batch.rows):
            return
        row = batch.rows[index]
        if step.outcome is not None:
            row.finish(step.outcome)
            self.fileFinished.emit(batch.collection, step.outcome)
        else:
            row.show_step(step.stage, fraction, ocr_detail(step))
        self._update()

    def _on_returned(self, batch: _Batch, result: object) -> None:
        if batch.kind == "reindex":
            batch.rows[0].stop(
                "Done",
                "already uses the current embedding model" if result is None else f"{result:,} passages re-indexed",
            )
        self.batchFinished.emit(batch.collection, result if isinstance(result, list) else [])

    def _stop_rows(self, batch: _Batch, word: str, detail: str = "") -> None:
        for row in batch.rows:
            if row.outcome is None:
                row.stop(word, detail)

    def _after(self, batch: _Batch) -> None:
        if batch in self._batches:
            self._batches.remove(batch)
        self._update()
        if not self.busy:
            self.cancel_button.setEnabled(True)
            self.busyChanged.emit(False)

    def _update(self) -> None:
        total = len(self.rows)
        finished = [r for r in self.rows if r.outcome is not None]
        ok = sum(1 for r in finished if r.outcome.ok)
        failed = sum(1 for r in finished if not r.outcome.ok)
        collections = list(dict.fromkeys(b.collection for b in self._batches))
        if self.busy:
            if all(b.kind == "reindex" for b in self._batches):
                self.title.setText("Re-indexing…")
            else:
                where = f" to {self.place(collections[0])}" if len(collections) == 1 else ""
                self.title.setText(f"Adding PDFs{where} · {len(finished)} of {total} done")
        else:
            parts = [f"{ok} added" if ok else "", f"{failed} failed" if failed else ""]
            self.title.setText("Documents · " + (", ".join(p for p in parts if p) or "done"))
        self.cancel_button.setVisible(self.busy)
        self.close_button.setVisible(not self.busy)
        self.setVisible(bool(self.rows))
        self._fit_height()

    def _fit_height(self) -> None:
        """As tall as the rows (wrapped messages included), up to MAX_LIST_HEIGHT; more scroll."""
        width = self.scroll.viewport().width()
        height = sum(
            r.heightForWidth(width) if width > 0 and r.hasHeightForWidth() else r.sizeHint().height() for r in self.rows
        )
        self.scroll.setFixedHeight(min(MAX_LIST_HEIGHT, max(height, 1)))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()
