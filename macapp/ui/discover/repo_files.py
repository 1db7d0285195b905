"""One Hub repo's GGUF files on the Discover page, each row filled in as its header is read remotely.

Listing the files is one Worker; reading the headers is a second, a generator that yields one
``FileEstimate`` per file, on a one-thread pool of its own (header reads share a cache file and
need not crowd the global pool). Picking another repo cancels the reads and ignores late answers.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from macapp.core.units import format_bytes, format_params
from macapp.ui.discover.widgets import ModelRow, RowList
from macapp.ui.jobs.hub import FileEstimate, estimate_at_discover_ctx, list_repo_files, read_remote_estimates
from macapp.ui.widgets.elided import ElidedLabel
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.core.models.facts import ModelFacts
    from macapp.core.models.hub import HubFileGroup, RepoFiles

READING = "Reading header…"
PICK_A_REPO = "Select a repository to see its GGUF files."


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def file_subtitle(group: HubFileGroup, facts: ModelFacts | None = None) -> str:
    """ "Q4_K_M · 4.7 GB · 7.6 B parameters · 4-bit, k-quant, medium" (parameters once the header is read)."""
    parts = [group.quant.name if group.quant else "quantization not in the name", format_bytes(group.size)]
    if len(group.parts) > 1:
        parts[-1] += f" in {len(group.parts)} parts"
    if facts is not None:
        parts.append(f"{format_params(facts.parameters)} parameters")
    if group.quant:
        parts.append(group.quant.describe())
    return " · ".join(parts)


def short_reason(message: str, repo_id: str, path: str) -> str:
    """A header error for a row that already names the file: "org/repo/x.gguf: x.gguf is not a valid
    GGUF file: ..." reads "Not a valid GGUF file: ..."."""
    name = PurePosixPath(path).name
    for prefix in (f"{repo_id}/{path}: ", f"{name}: "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    for prefix in (f"{name} is ", f"{name} "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
            break
    return sentence(message)


class RepoFilesView(QWidget):
    """The repo's name, a line about its files, the refused names (if any), and a row per model file."""

    filesListed = Signal()  # rows are there (each "Reading header…"), or the listing failed
    estimatesFinished = Signal()  # every header was read (or failed)
    failed = Signal(str)  # one readable line for the page's notice
    downloadRequested = Signal(str, object, str)  # repo id, [files], revision

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.listing: RepoFiles | None = None
        self._latest: dict[str, object] = {}  # "files" / "headers" -> the signals of the newest worker
        self._headers_worker: Worker | None = None
        self._budget: int | None = None
        self._backend = "cpu"
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 0, 0, 0)
        lay.setSpacing(4)
        self.repo_title = ElidedLabel("", name="detailsTitle")
        self.note = ElidedLabel("", Qt.TextElideMode.ElideRight, name="muted")
        self.refused_label = QLabel()
        self.refused_label.setObjectName("muted")
        self.refused_label.hide()
        self.files = RowList()
        self.files.show_placeholder(PICK_A_REPO)
        lay.addWidget(self.repo_title)
        lay.addWidget(self.note)
        lay.addWidget(self.refused_label)
        lay.addSpacing(4)
        lay.addWidget(self.files, 1)
        self._sync_heading()

    def _sync_heading(self) -> None:
        """No repo yet: no empty title and note rows above the placeholder (a gap on a short window)."""
        self.repo_title.setVisible(bool(self.repo_title.full_text()))
        self.note.setVisible(bool(self.note.full_text()))

    def _is_latest(self, kind: str) -> bool:
        return self.sender() is self._latest.get(kind)

    def clear(self, placeholder: str = PICK_A_REPO) -> None:
        """Forget the shown repo (and stop reading its headers)."""
        self.cancel()
        self._latest.pop("files", None)
        self.listing = None
        self.repo_title.set_full_text("")
        self.note.set_full_text("")
        self.refused_label.hide()
        self.files.clear(placeholder)
        self._sync_heading()

    def show_repo(self, repo_id: str, budget: int | None, backend: str) -> Worker:
        """List ``repo_id``'s GGUF files in a worker, then read their headers and estimate each."""
        self.clear("Listing files…")
        self.repo_title.set_full_text(repo_id)
        self.repo_title.setToolTip(repo_id)
        self._sync_heading()
        self._budget, self._backend = budget, backend
        worker = Worker(list_repo_files, repo_id)
        self._latest["files"] = worker.signals
        worker.signals.returned.connect(self._show_listing)
        worker.signals.errored.connect(self._on_listing_failed)
        return worker.start()

    def reestimate(self, budget: int | None, backend: str) -> None:
        """The budget changed: estimate the rows whose header is known again (arithmetic only)."""
        self._budget, self._backend = budget, backend
        for row in self.files.rows:
            if row.facts is not None:
                row.set_estimate(estimate_at_discover_ctx(row.facts, budget, backend))

    def cancel(self) -> None:
        if self._headers_worker is not None:
            self._headers_worker.cancel()
            self._headers_worker = None
        self._latest.pop("headers", None)

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Stop reading headers and wait a little for the read in flight (the window is closing)."""
        self.cancel()
        self._pool.clear()
        self._pool.waitForDone(timeout_ms)

    # --- answers -------------------------------------------------------------------------------
    def _show_listing(self, listing: RepoFiles) -> None:
        if not self._is_latest("files"):
            return
        self.listing = listing
        groups = listing.groups
        self.files.clear("" if groups else "This repository has no GGUF files.")
        for group in groups:
            self.files.add_row(self._row(listing, group))
        n, refused = len(groups), len(listing.refused)
        revision = f"revision {listing.revision[:10]}"
        self.note.set_full_text(
            f"{n} model file{'s' if n != 1 else ''} · {revision} · memory for an 8k-token "
            f"chat, read from each file's header"
            if n
            else revision
        )
        self.note.setToolTip(f"{self.note.full_text()}\n{listing.repo_id} at commit {listing.revision}")
        self._sync_heading()
        if refused:
            self.refused_label.setText(
                f"{refused} file{'s' if refused != 1 else ''} with unsafe names "
                f"{'were' if refused != 1 else 'was'} ignored"
            )
            self.refused_label.setToolTip("\n".join(listing.refused))
        self.refused_label.setVisible(bool(refused))
        self.filesListed.emit()
        if groups:
            worker = Worker(
                read_remote_estimates,
                listing.repo_id,
                listing.revision,
                groups,
                self._budget,
                self._backend,
                pool=self._pool,
            )
            self._headers_worker = worker
            self._latest["headers"] = worker.signals
            worker.signals.yielded.connect(self._on_estimate)
            worker.signals.errored.connect(self._on_headers_failed)
            worker.signals.finished.connect(self._on_headers_finished)
            worker.start()

    def _row(self, listing: RepoFiles, group: HubFileGroup) -> ModelRow:
        name = PurePosixPath(group.name).name
        files = tuple(p.path for p in group.parts)
        row = ModelRow(name, file_subtitle(group), (listing.repo_id, files))
        row.group_name = group.name
        row.title.setToolTip("\n".join(files))
        row.download_button.setToolTip(f"Download {name} ({format_bytes(group.size)})")
        row.downloadClicked.connect(
            lambda r=listing.repo_id, f=files, v=listing.revision: self.downloadRequested.emit(r, list(f), v)
        )
        row.show_message(READING)
        return row

    def _on_listing_failed(self, exc: BaseException) -> None:
        if self._is_latest("files"):
            self.files.clear("")
            self.failed.emit(sentence(error_text(exc)))
            self.filesListed.emit()

    def _on_estimate(self, result: FileEstimate) -> None:
        if not self._is_latest("headers") or self.listing is None:
            return
        row = next((r for r in self.files.rows if r.group_name == result.name), None)
        group = next((g for g in self.listing.groups if g.name == result.name), None)
        if row is None or group is None:
            return
        if result.facts is not None:
            row.facts = result.facts
            row.subtitle.set_full_text(file_subtitle(group, result.facts))
            row.subtitle.setToolTip(row.subtitle.full_text())
        if result.estimate is not None:
            row.set_estimate(result.estimate)
            return
        error = result.error or "no estimate"
        row.show_message(short_reason(error, self.listing.repo_id, result.name), error=True)
        if result.unusable:
            row.set_unusable(error)

    def _on_headers_failed(self, exc: BaseException) -> None:
        if self._is_latest("headers"):
            self.failed.emit(sentence(error_text(exc)))

    def _on_headers_finished(self) -> None:
        if not self._is_latest("headers"):
            return
        self._headers_worker = None
        for row in self.files.rows:
            if row.showing_message and row.message.full_text() == READING:
                row.show_message("header not read", error=True)
        self.estimatesFinished.emit()
