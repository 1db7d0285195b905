"""The downloads panel: one row per job of the app's DownloadQueue, with progress and controls.

The queue runs on its own thread and reports every change from there; ``listener()`` hands
it a callback that only emits a Qt signal, delivered (queued) on the GUI thread, where the
rows are updated. Pause, Resume and Cancel return at once; Remove deletes the partial file,
which may touch the network and wait for the transfer to stop, so it runs in a Worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from macapp.core.units import format_bytes, time_left
from macapp.ui.widgets.elided import ElidedLabel
from macapp.ui.widgets.memory_bar import VERDICT_COLORS
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.core.models.download_queue import DownloadJob, DownloadQueue

STATE_WORDS = {
    "queued": "Queued",
    "running": "Downloading",
    "paused": "Paused",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
STATE_COLORS = {"done": VERDICT_COLORS["fits"], "failed": VERDICT_COLORS["too_big"]}
CANCEL_TIP = (
    "Stop this download and take it off the queue. The partial file is kept, so downloading "
    "the same file again continues where it stopped."
)
REMOVE_TIP = "Take this download off the list and delete its partial file."
MAX_LIST_HEIGHT = 196  # about three rows
CLEAR_TIP = "Take this download off the list (the model stays in your library)."


def progress_text(job: DownloadJob) -> str:
    """ "12.3 MB of 4.7 GB · 8.1 MB/s · 9 min left" (with "part 2 of 3" for split models)."""
    parts = [f"part {job.file_index + 1} of {len(job.files)}"] if len(job.files) > 1 else []
    if job.state == "done":
        return "Verified and added to your library"
    if job.state == "cancelled":
        return "Stopped — the partial file is kept; Resume continues it"
    if job.total:
        parts.append(f"{format_bytes(job.done)} of {format_bytes(job.total)}")
    if job.state == "running":
        if job.speed > 0:
            parts.append(f"{format_bytes(job.speed)}/s")
        if time_left(job.eta):
            parts.append(time_left(job.eta))
        if not job.total:
            parts.append("starting…")
    elif job.state == "queued":
        parts.append("waiting for the download ahead of it")
    return " · ".join(parts)


def percent(job: DownloadJob) -> int:
    if job.state == "done":
        return 100
    if not job.total:
        return 0
    return max(0, min(100, int(job.done * 100 / job.total)))


class JobRow(QFrame):
    """One download: name, state, a progress bar with bytes/speed/time left (or the error), and buttons."""

    def __init__(self, job: DownloadJob, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("jobRow")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.job = job
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 8, 12, 8)
        lay.setSpacing(14)
        info = QVBoxLayout()
        info.setSpacing(4)
        top = QHBoxLayout()
        top.setSpacing(8)
        self.name_label = ElidedLabel(job.name, name="rowTitle")
        self.repo_label = ElidedLabel(job.repo_id, Qt.TextElideMode.ElideMiddle, name="muted", min_shown=8)
        self.state_label = QLabel()
        self.state_label.setObjectName("jobState")
        # the name keeps its width; the repo takes what is left (and elides first when the row is narrow)
        self.repo_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.repo_label.setToolTip(job.repo_id)
        top.addWidget(self.name_label)
        top.addWidget(self.repo_label, 1)
        top.addWidget(self.state_label)
        info.addLayout(top)

        progress_line = QWidget()
        line = QHBoxLayout(progress_line)
        line.setContentsMargins(0, 0, 0, 0)
        line.setSpacing(10)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(6)
        self.detail_label = ElidedLabel("", Qt.TextElideMode.ElideRight, name="muted")
        self.progress.setMinimumWidth(60)
        line.addWidget(self.progress, 1)
        line.addWidget(self.detail_label)
        self.error_label = QLabel()
        self.error_label.setObjectName("errorText")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._line_stack = QStackedLayout()
        self._line_stack.addWidget(progress_line)
        self._line_stack.addWidget(self.error_label)
        info.addLayout(self._line_stack)
        lay.addLayout(info, 1)

        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(CANCEL_TIP)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip(REMOVE_TIP)
        width = self.pause_button.fontMetrics().horizontalAdvance("Resume") + 30
        for button in (self.pause_button, self.cancel_button, self.remove_button):
            button.setMinimumWidth(width)
            lay.addWidget(button)
        self.update_job(job)

    def update_job(self, job: DownloadJob) -> None:
        self.job = job
        state = job.state
        self.name_label.set_full_text(job.name if len(job.files) == 1 else f"{job.name} (+{len(job.files) - 1} parts)")
        self.name_label.setToolTip("\n".join(job.files))
        self.state_label.setText(STATE_WORDS.get(state, state))
        color = STATE_COLORS.get(state)
        self.state_label.setStyleSheet(f"color: {color};" if color else "")
        self.progress.setValue(percent(job))
        self.detail_label.set_full_text(progress_text(job))
        self.detail_label.setToolTip(self.detail_label.full_text())
        if state == "failed" and job.error:
            self.error_label.setText(job.error)
            self._line_stack.setCurrentIndex(1)
        else:
            self._line_stack.setCurrentIndex(0)
        self.pause_button.setText(
            "Pause" if state in ("queued", "running") else "Retry" if state == "failed" else "Resume"
        )
        self.pause_button.setToolTip("Try this download again" if state == "failed" else "")
        self.pause_button.setVisible(state != "done")
        self.cancel_button.setVisible(state in ("queued", "running", "paused"))
        self.remove_button.setVisible(state in ("failed", "cancelled", "done"))
        self.remove_button.setText("Clear" if state == "done" else "Remove")
        self.remove_button.setToolTip(CLEAR_TIP if state == "done" else REMOVE_TIP)


class _QueueBridge(QObject):
    """Carries the queue's change reports from its thread to the GUI thread."""

    changed = Signal(object)  # DownloadJob snapshot


class DownloadsPanel(QFrame):
    """The app's downloads, newest last; hidden while there are none, collapsible when there are."""

    jobChanged = Signal(object)  # DownloadJob, on the GUI thread, after its row was updated
    jobFinished = Signal(object)  # DownloadJob that has just reached "done"
    jobRemoved = Signal(object)  # DownloadJob taken off the list
    errorShown = Signal(str)  # a control failed (Remove could not delete the partial file...)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("downloadsPanel")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self._queue: DownloadQueue | None = None
        self._bridge = _QueueBridge(self)
        self._bridge.changed.connect(self._on_job, Qt.ConnectionType.QueuedConnection)
        self._hidden_ids: set[int] = set()
        self.rows: dict[int, JobRow] = {}
        self.max_list_height = MAX_LIST_HEIGHT

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 8, 0, 0)
        lay.setSpacing(6)
        head = QHBoxLayout()
        head.setContentsMargins(2, 0, 2, 0)
        title = QLabel("Downloads")
        title.setObjectName("sectionTitle")
        self.summary_label = QLabel()
        self.summary_label.setObjectName("muted")
        self.toggle_button = QPushButton("Hide")
        self.toggle_button.setObjectName("flat")
        self.toggle_button.setToolTip("Show or hide the list of downloads")
        self.toggle_button.clicked.connect(lambda: self.set_expanded(not self.body.isVisible()))
        head.addWidget(title)
        head.addSpacing(8)
        head.addWidget(self.summary_label, 0, Qt.AlignmentFlag.AlignBottom)
        head.addStretch(1)
        head.addWidget(self.toggle_button)
        lay.addLayout(head)

        self.body = QScrollArea()
        self.body.setObjectName("jobList")
        self.body.setWidgetResizable(True)
        self.body.setFrameShape(QFrame.Shape.NoFrame)
        self.body.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QWidget()
        inner.setObjectName("jobListBody")
        self._rows_lay = QVBoxLayout(inner)
        self._rows_lay.setContentsMargins(1, 1, 1, 1)
        self._rows_lay.setSpacing(0)
        self._rows_lay.addStretch(1)
        self.body.setWidget(inner)
        lay.addWidget(self.body)
        self.hide()

    # --- the queue -----------------------------------------------------------------------------
    def listener(self) -> Callable[[DownloadJob], None]:
        """The callback to give the queue (``DownloadQueue(on_change=panel.listener())``); any thread."""
        return self._bridge.changed.emit

    def attach(self, queue: DownloadQueue) -> None:
        """Use ``queue`` for the buttons and show the jobs it already has (unfinished ones come back paused)."""
        self._queue = queue
        for job in queue.jobs():
            self._on_job(job)

    @property
    def queue(self) -> DownloadQueue | None:
        return self._queue

    def _on_job(self, job: DownloadJob) -> None:
        if job.id in self._hidden_ids:
            if job.state in ("done", "cancelled"):
                return
            self._hidden_ids.discard(job.id)  # queued again: show it again
        row = self.rows.get(job.id)
        was = row.job.state if row else None
        if row is None:
            row = self.rows[job.id] = JobRow(job)
            row.pause_button.clicked.connect(lambda _=False, r=row: self._pause_or_resume(r))
            row.cancel_button.clicked.connect(lambda _=False, r=row: self._cancel(r))
            row.remove_button.clicked.connect(lambda _=False, r=row: self._remove(r))
            self._rows_lay.insertWidget(self._rows_lay.count() - 1, row)
            self.set_expanded(True)
            QTimer.singleShot(0, self._fit_height)  # again once the new row is shown (a hidden one has no height)
        else:
            row.update_job(job)
        self._refresh()
        self.jobChanged.emit(job)
        if job.state == "done" and was != "done":
            self.jobFinished.emit(job)

    # --- controls ------------------------------------------------------------------------------
    def _pause_or_resume(self, row: JobRow) -> None:
        if self._queue is None:
            return
        if row.job.state in ("queued", "running"):
            self._queue.pause(row.job.id)
        else:
            self._queue.resume(row.job.id)

    def _cancel(self, row: JobRow) -> None:
        if self._queue is not None:
            self._queue.cancel(row.job.id)

    def _remove(self, row: JobRow) -> None:
        job = row.job
        if job.state == "done" or self._queue is None:
            self._drop_row(job)
            return
        for button in (row.pause_button, row.cancel_button, row.remove_button):
            button.setEnabled(False)
        row.detail_label.set_full_text("Removing…")
        self._hidden_ids.add(job.id)
        worker = Worker(self._queue.discard, job.id)
        worker.signals.returned.connect(lambda _r, j=job: self._drop_row(j))
        worker.signals.errored.connect(lambda exc, j=job: self._remove_failed(j, exc))
        worker.start()

    def _remove_failed(self, job: DownloadJob, exc: BaseException) -> None:
        self._drop_row(job)
        self.errorShown.emit(f"Could not delete the partial file of {job.name}: {error_text(exc)}")

    def _drop_row(self, job: DownloadJob) -> None:
        self._hidden_ids.add(job.id)
        row = self.rows.pop(job.id, None)
        if row is not None:
            self._rows_lay.removeWidget(row)
            row.hide()
            row.deleteLater()
        self._refresh()
        self.jobRemoved.emit(job)

    # --- look ----------------------------------------------------------------------------------
    def set_expanded(self, expanded: bool) -> None:
        self.body.setVisible(expanded)
        self.toggle_button.setText("Hide" if expanded else "Show")

    def _refresh(self) -> None:
        states = [r.job.state for r in self.rows.values()]
        counts = [(states.count(s), STATE_WORDS[s].lower()) for s in ("running", "queued", "paused", "failed", "done")]
        self.summary_label.setText(" · ".join(f"{n} {word}" for n, word in counts if n))
        self.setVisible(bool(self.rows))
        self._fit_height()

    def _fit_height(self) -> None:
        """As tall as the rows (wrapped error lines included), up to about three; more scroll."""
        lay = self._rows_lay
        width = self.body.viewport().width() if self.isVisible() else self.width()
        lay.activate()
        need = lay.heightForWidth(width) if lay.hasHeightForWidth() else lay.sizeHint().height()
        self.body.setFixedHeight(max(0, min(need, self.max_list_height)) + 2)

    def set_max_list_height(self, height: int) -> None:
        """Leave the page room on a short window (the list scrolls)."""
        self.max_list_height = max(72, min(MAX_LIST_HEIGHT, height))
        self._fit_height()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()
