"""The Discover page: curated models for this Mac, Hub search, a repo's files with estimates, downloads.

Before any search the page lists the curated catalog ordered for this Mac's memory budget (the
first pick highlighted). A search lists GGUF repos; picking one lists its files, and each file's
GGUF header is then read remotely (HTTP range requests) so its row fills in with the parameters
and the memory it needs. Every network call runs in a Worker; a failure is one line in the
notice strip. Downloads go to the app's one DownloadQueue, shown in the panel at the bottom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes, format_params
from macapp.ui.discover.downloads import DownloadsPanel
from macapp.ui.discover.repo_files import PICK_A_REPO, RepoFilesView, sentence
from macapp.ui.discover.widgets import ModelRow, RepoDelegate, RepoListModel, RowList
from macapp.ui.jobs.hub import CuratedPicks, load_recommendations, search_hub
from macapp.ui.widgets.labels import make_label as _label
from macapp.ui.widgets.notice import Notice
from macapp.ui.widgets.page_header import PageHeader
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.core.hardware import Hardware
    from macapp.core.models.catalog import Recommendation
    from macapp.core.models.download_queue import DownloadJob, DownloadQueue
    from macapp.core.models.hub import HubModel

JobKey = tuple[str, tuple[str, ...]]  # (repo id, files): what a Download button queues
SIDE_BY_SIDE_WIDTH = 860  # narrower than this, the search results sit above the repo's files


class DiscoverPage(QWidget):
    """Find a model that fits this Mac and download it."""

    downloadFinished = Signal(object)  # DownloadJob that reached "done" (the window rescans the library)
    recommendationsShown = Signal()
    searchFinished = Signal()
    filesListed = Signal()
    estimatesFinished = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._hardware: Hardware | None = None
        self._latest: dict[str, object] = {}  # kind of work -> the signals of its newest worker
        self._jobs: dict[JobKey, str] = {}  # job state by what it downloads
        self._query = ""
        self._picks: list[Recommendation] = []  # the curated list on screen, in row order

        root = QVBoxLayout(self)
        root.setContentsMargins(24, 18, 24, 18)
        root.setSpacing(12)
        header = PageHeader("Discover")
        self.status_label = header.status
        root.addWidget(header)

        search = QHBoxLayout()
        self.search_box = QLineEdit()
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Search GGUF models on Hugging Face — e.g. qwen 7b, llama 3.2, phi")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.returnPressed.connect(lambda: self.search(self.search_box.text()))
        self.search_box.textChanged.connect(self._on_search_text)
        self.search_button = QPushButton("Search")
        self.search_button.setObjectName("primary")
        self.search_button.clicked.connect(lambda: self.search(self.search_box.text()))
        search.addWidget(self.search_box, 1)
        search.addWidget(self.search_button)
        root.addLayout(search)
        self.notice = Notice()
        root.addWidget(self.notice)

        self.views = QStackedWidget()
        self.views.addWidget(self._build_recommendations())
        self.views.addWidget(self._build_results())
        root.addWidget(self.views, 1)

        self.downloads = DownloadsPanel()
        self.downloads.jobChanged.connect(self._on_job_changed)
        self.downloads.jobRemoved.connect(self._on_job_removed)
        self.downloads.jobFinished.connect(self.downloadFinished)
        self.downloads.errorShown.connect(self.notice.show_message)
        root.addWidget(self.downloads)

    # --- construction --------------------------------------------------------------------------
    def _build_recommendations(self) -> QWidget:
        view = QWidget()
        lay = QVBoxLayout(view)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        self.recommend_title = _label(f"Recommended for {machine_noun()}", "sectionTitle")
        lay.addWidget(self.recommend_title)
        self.recommend_note = _label("", "muted")
        self.recommend_note.setWordWrap(True)
        lay.addWidget(self.recommend_note)
        self.recommended = RowList()
        self.recommended.show_placeholder(f"Measuring {machine_noun()}'s memory…")
        lay.addWidget(self.recommended, 1)
        self.recommend_view = view
        return view

    def _build_results(self) -> QWidget:
        view = QWidget()
        lay = QVBoxLayout(view)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        top = QHBoxLayout()
        self.back_button = QPushButton("← Recommended")
        self.back_button.setObjectName("flat")
        self.back_button.setToolTip(f"Back to the models recommended for {machine_noun()}")
        self.back_button.clicked.connect(lambda: self.show_recommendations())
        self.results_label = _label("", "sectionTitle")
        top.addWidget(self.back_button)
        top.addWidget(self.results_label, 1)
        lay.addLayout(top)

        self.repo_model = RepoListModel(self)
        self.repos_view = repos = QListView()
        repos.setObjectName("repoList")
        repos.setModel(self.repo_model)
        repos.setItemDelegate(RepoDelegate(repos))
        repos.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        repos.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        repos.setUniformItemSizes(True)
        repos.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        repos.setMinimumWidth(200)
        repos.selectionModel().currentRowChanged.connect(self._on_repo_changed)

        self.repo_files = RepoFilesView()
        self.files = self.repo_files.files  # the rows of the selected repo's files
        self.refused_label = self.repo_files.refused_label
        self.repo_files.filesListed.connect(self._on_files_listed)
        self.repo_files.estimatesFinished.connect(self.estimatesFinished)
        self.repo_files.failed.connect(self.notice.show_message)
        self.repo_files.downloadRequested.connect(self.download)

        self.results_splitter = splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(repos)
        splitter.addWidget(self.repo_files)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([250, 750])
        lay.addWidget(splitter, 1)
        self.results_view = view
        return view

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_results_layout()
        self.downloads.set_max_list_height(self.height() // 4)

    def _fit_results_layout(self) -> None:
        """Repos beside their files on a wide window, above them on a narrow one."""
        wide = self.views.width() >= SIDE_BY_SIDE_WIDTH
        splitter = self.results_splitter
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if splitter.orientation() == orientation:
            return
        splitter.setOrientation(orientation)
        if wide:
            self.repo_files.layout().setContentsMargins(12, 0, 0, 0)
        else:
            self.repo_files.layout().setContentsMargins(0, 8, 0, 0)
        total = max(1, splitter.width() if wide else splitter.height())
        first = 250 if wide else min(150, total // 3)
        splitter.setSizes([first, max(1, total - first)])

    # --- hardware and the queue (set by the window) --------------------------------------------
    @property
    def hardware(self) -> Hardware | None:
        return self._hardware

    @property
    def backend(self) -> str:
        return "metal" if self._hardware is not None and self._hardware.gpu == "metal" else "cpu"

    @property
    def budget(self) -> int | None:
        return self._hardware.budget_bytes if self._hardware else None

    def apply_hardware(self, hardware: Hardware) -> None:
        """This Mac's budget is known (or changed): order the curated models for it, re-estimate the files."""
        self._hardware = hardware
        self.recommend_title.setText(f"Recommended for {hardware.place}")
        self._update_status()
        worker = Worker(load_recommendations, hardware)
        self._latest["recommend"] = worker.signals
        worker.signals.returned.connect(self._show_recommended)
        worker.signals.errored.connect(self._on_recommend_failed)
        worker.start()
        self.repo_files.reestimate(self.budget, self.backend)

    def hardware_unknown(self) -> None:
        """The probe failed: no budget, so no recommendations; search still works."""
        if self._hardware is None:
            self.recommended.show_placeholder(
                f"Orchard could not measure {machine_noun()}'s memory, so it cannot recommend a model. "
                "Search the Hub above."
            )

    def set_queue(self, queue: DownloadQueue) -> None:
        self.downloads.attach(queue)

    def shutdown(self) -> None:
        """Stop reading headers (the window is closing)."""
        self.repo_files.shutdown()

    def _is_latest(self, kind: str) -> bool:
        return self.sender() is self._latest.get(kind)

    # --- recommendations -----------------------------------------------------------------------
    def _show_recommended(self, curated: CuratedPicks) -> None:
        if not self._is_latest("recommend"):
            return
        picks = curated.picks
        self._picks = picks
        self.recommended.clear("" if picks else "The model catalog is empty.")
        from macapp.core.models.catalog import best_pick  # off the start-up path (tomllib, estimate)
        from macapp.core.models.speed import READABLE_TOKENS_PER_S, format_speed

        best = best_pick(picks)
        place = self._hardware.place if self._hardware else "this computer"
        for pick in picks:
            entry, file = pick.entry, pick.file
            speed = [f"{format_speed(pick.tokens_per_s)} here"] if pick.tokens_per_s else []
            subtitle = " · ".join(
                (
                    f"{format_params(entry.facts.parameters)} parameters",
                    file.quant,
                    *speed,
                    f"{format_bytes(file.approx_bytes)} download",
                    entry.licence,
                )
            )
            row = ModelRow(entry.name, subtitle, (entry.repo, (file.file,)), best=pick is best)
            row.badge.setToolTip(
                f"The model that suits {place} best: the largest that fits its memory well and "
                f"answers at a readable pace (at least {READABLE_TOKENS_PER_S:.0f} tokens/s)"
            )
            row.title.setToolTip(f"{entry.name}\n{entry.repo}" + (f"\n{entry.note}" if entry.note else ""))
            row.subtitle.setToolTip(f"{subtitle}\n{entry.repo} · {file.file}")  # the whole line, when it is elided
            row.set_estimate(pick.estimate)
            row.download_button.setToolTip(
                f"Download {file.file} ({format_bytes(file.approx_bytes)}) from {entry.repo}"
            )
            row.downloadClicked.connect(lambda e=entry, f=file: self.download(e.repo, [f.file]))
            self.recommended.add_row(row)
            row.set_job_state(self._jobs.get(row.key))
        self.recommend_note.setText(
            f"Curated instruct models, estimated for an 8k-token chat within {place}'s "
            f"{format_bytes(self.budget)} model budget, each with how fast it would answer here "
            f"and the largest quantization that fits well."
        )
        self.recommend_note.setToolTip(
            f"Speeds are rough: decode reads every weight once per token ({curated.bandwidth.basis})."
        )
        self.recommendationsShown.emit()

    def _on_recommend_failed(self, exc: BaseException) -> None:
        if self._is_latest("recommend"):
            self.recommended.show_placeholder("")
            self.notice.show_message(sentence(error_text(exc)))

    def show_recommendations(self, matching_query: str = "") -> None:
        """The curated list; with ``matching_query``, only the entries that match it (the offline search)."""
        from macapp.core.models.catalog import matching  # off the start-up path

        keep = {e.id for e in matching([p.entry for p in self._picks], matching_query)}
        for row, pick in zip(self.recommended.rows, self._picks, strict=False):
            row.setVisible(pick.entry.id in keep)
        if self._picks and not keep:
            self.recommended.show_placeholder(f"No curated model matches “{matching_query}”.")
        elif self._picks:
            self.recommended.show_placeholder("")
        self.views.setCurrentWidget(self.recommend_view)
        self._update_status()

    def _on_search_text(self, text: str) -> None:
        if not text.strip():
            self.show_recommendations()

    # --- search and a repo's files -------------------------------------------------------------
    def search(self, query: str) -> Worker | None:
        """Search the Hub for GGUF repos in a worker; an empty query shows the recommendations."""
        query = query.strip()
        if not query:
            self.show_recommendations()
            return None
        self.notice.hide()
        self.status_label.setText(f"Searching for “{query}”…")
        worker = Worker(search_hub, query)
        self._latest["search"] = worker.signals
        self._query = query
        worker.signals.returned.connect(self._show_results)
        worker.signals.errored.connect(self._on_search_failed)
        return worker.start()

    def _show_results(self, repos: list[HubModel]) -> None:
        if not self._is_latest("search"):
            return
        self.repo_model.set_repos(repos)
        n = len(repos)
        self.results_label.setText(
            f"{n} GGUF repositor{'y' if n == 1 else 'ies'} for “{self._query}”"
            if n
            else f"No GGUF repositories match “{self._query}”"
        )
        self.repo_files.clear(PICK_A_REPO if n else "")
        self.views.setCurrentWidget(self.results_view)
        self._update_status()
        self.searchFinished.emit()

    def _on_search_failed(self, exc: BaseException) -> None:
        if self._is_latest("search"):
            from macapp.core.models.hub import HubUnreachable

            self._update_status()
            if isinstance(exc, HubUnreachable) and self._picks:  # offline: the catalog still answers
                self.show_recommendations(self._query)
                self.notice.show_message(
                    f"{sentence(error_text(exc)).rstrip('.')}. Showing the curated models matching “{self._query}”."
                )
            else:
                self.notice.show_message(sentence(error_text(exc)))
            self.searchFinished.emit()

    def select_repo(self, row: int) -> None:
        """Pick search result ``row`` as a click would."""
        self.repos_view.setCurrentIndex(self.repo_model.index(row, 0))

    def _on_repo_changed(self, current, _previous) -> None:
        if current.isValid():
            self.show_repo(self.repo_model.repo(current.row()).id)

    def show_repo(self, repo_id: str) -> Worker:
        """List ``repo_id``'s files and read their headers (in workers)."""
        return self.repo_files.show_repo(repo_id, self.budget, self.backend)

    def _on_files_listed(self) -> None:
        for row in self.files.rows:
            row.set_job_state(self._jobs.get(row.key))
        self.filesListed.emit()

    # --- downloads -----------------------------------------------------------------------------
    def download(self, repo_id: str, files: list[str], revision: str = "main") -> DownloadJob | None:
        """Queue ``files`` of ``repo_id`` (one model; several parts for a split one)."""
        queue = self.downloads.queue
        if queue is None:
            self.notice.show_message("Downloads are not ready yet; try again in a moment.")
            return None
        job = queue.add(repo_id, list(files), revision)
        self.downloads.set_expanded(True)
        return job

    def _rows_for(self, key: JobKey) -> list[ModelRow]:
        return [r for r in (*self.recommended.rows, *self.files.rows) if r.key == key]

    def _on_job_changed(self, job: DownloadJob) -> None:
        key = (job.repo_id, tuple(job.files))
        self._jobs[key] = job.state
        for row in self._rows_for(key):
            row.set_job_state(job.state)
        self._update_status()

    def _on_job_removed(self, job: DownloadJob) -> None:
        key = (job.repo_id, tuple(job.files))
        if self._jobs.get(key) != "done":
            self._jobs.pop(key, None)
            for row in self._rows_for(key):
                row.set_job_state(None)
        self._update_status()

    def _update_status(self) -> None:
        parts = []
        if self._hardware is not None:
            parts.append(f"budget {format_bytes(self._hardware.budget_bytes)}")
        running = sum(1 for s in self._jobs.values() if s in ("queued", "running"))
        if running:
            parts.append(f"{running} download{'s' if running != 1 else ''} in progress")
        self.status_label.setText(" · ".join(parts))
