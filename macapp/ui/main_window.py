"""The main window: a sidebar of pages (Models, Discover, Chat, Documents, Tuning) beside a page stack.

The window owns the app's one download queue (created after the first paint, closed on close)
and wires the pages together: the Models page's hardware probe gives Discover and Chat their
budget, its scans give Chat the models to pick from, a finished download makes the Models
page rescan the library, and a collection deleted on the Documents page stops the chats that
used it from citing it. Closing the window stops an answer in progress (and any indexing: the
file being added is rolled back) and unloads the model.

On first run (``Settings.welcome_done`` unset) a welcome screen covers the pages until the person
downloads its pick, browses, or skips. The menu bar is ``app_menu.AppMenu``.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QPoint, QRect, QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from macapp.core.settings import Settings, update_settings
from macapp.core.units import format_bytes
from macapp.ui.chat.page import ChatPage
from macapp.ui.discover.page import DiscoverPage
from macapp.ui.documents.page import DocumentsPage
from macapp.ui.models.page import ModelsPage
from macapp.ui.server.panel import ServerPanel
from macapp.ui.tuning.page import TuningPage
from macapp.ui.welcome.page import WelcomeScreen
from macapp.ui.worker import running_workers

log = logging.getLogger(__name__)
TOAST_MS = 3500


class MainWindow(QMainWindow):
    """Orchard's window. The library scan starts once the window has painted."""

    def __init__(self, settings: Settings | None = None, on_first_paint: Callable[[], None] | None = None):
        super().__init__()
        self.setWindowTitle("Orchard")
        self.setMinimumSize(QSize(760, 520))
        self._settings = settings or Settings.load()
        self._on_first_paint = on_first_paint
        self._painted = False
        self.first_paint_time: float | None = None
        self.download_queue = None  # DownloadQueue, created after the first paint
        self.welcome: WelcomeScreen | None = None  # the first-run screen over the pages, once shown

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFrameShape(QFrame.Shape.NoFrame)
        self.sidebar.setMinimumWidth(184)
        # as wide as the panel that holds it (the server switch below sets that width), not wider: a selected
        # page's highlight reaches the panel's edge
        self.sidebar.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.sidebar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.pages = QStackedWidget()
        self.models_page = ModelsPage(self._settings)
        self.models_page.hardwareDetected.connect(self._show_hardware)
        self.discover_page = DiscoverPage()
        self.models_page.hardwareDetected.connect(self.discover_page.apply_hardware)
        self.models_page.scanFinished.connect(self._after_scan)
        self.models_page.chatRequested.connect(self._chat_with)
        self.discover_page.downloadFinished.connect(lambda _job: self.models_page.start_scan())
        self.chat_page = ChatPage(self._settings)
        self.models_page.hardwareDetected.connect(self.chat_page.apply_hardware)
        self.models_page.table_model.rowsInserted.connect(lambda *_: self._offer_models())
        self._add_page("Models", self.models_page)
        self._add_page("Discover", self.discover_page)
        self._add_page("Chat", self.chat_page)
        self.documents_page = DocumentsPage()
        self.documents_page.collectionDeleted.connect(self.chat_page.documents.forget_collection)
        self.chat_page.documents.panel.batchFinished.connect(self._chat_documents_changed)
        self._add_page("Documents", self.documents_page)
        self.tuning_page = TuningPage()
        self.models_page.hardwareDetected.connect(self.tuning_page.apply_hardware)
        self.tuning_page.tryInChat.connect(self._try_adapter_in_chat)
        self._add_page("Tuning", self.tuning_page)
        self.sidebar.currentRowChanged.connect(self.pages.setCurrentIndex)
        self.sidebar.currentRowChanged.connect(self._on_page_chosen)
        self.sidebar.setCurrentRow(0)

        brand = QLabel("Orchard")
        brand.setObjectName("brand")
        side = QWidget()
        side.setObjectName("sidePanel")
        side_lay = QVBoxLayout(side)
        side_lay.setContentsMargins(0, 16, 0, 12)
        side_lay.setSpacing(8)
        side_lay.addWidget(brand)
        side_lay.addWidget(self.sidebar, 1)
        self.server_panel = ServerPanel(self._settings)  # the OpenAI-compatible server switch and the remote servers
        self.server_panel.endpointsChanged.connect(self.chat_page.refresh_remote)
        side_lay.addWidget(self.server_panel)
        self.machine_label = QLabel("")
        self.machine_label.setObjectName("machine")
        self.machine_label.setWordWrap(True)
        side_lay.addWidget(self.machine_label)

        central = QWidget()
        lay = QHBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(side)
        lay.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self.toast = QLabel(self)
        self.toast.setObjectName("toast")
        self.toast.hide()
        self._toast_timer = QTimer(self, singleShot=True, interval=TOAST_MS, timeout=self.toast.hide)
        from macapp.ui.app_menu import AppMenu

        self.app_menu = AppMenu(self)
        self._restore_geometry()
        if not self._settings.welcome_done:
            self.show_welcome()

    def _add_page(self, name: str, page: QWidget) -> None:
        item = QListWidgetItem(name)
        item.setSizeHint(QSize(160, 36))
        self.sidebar.addItem(item)
        self.pages.addWidget(page)

    def _try_adapter_in_chat(self, name: str) -> None:
        """A new chat with the adapter just tuned switched on (over the model loaded in Chat)."""
        self.show_page("Chat")
        self.chat_page.new_chat()
        self.chat_page.use_adapter(name)

    def page_names(self) -> list[str]:
        return [self.sidebar.item(row).text() for row in range(self.sidebar.count())]

    def show_page(self, name: str) -> None:
        for row in range(self.sidebar.count()):
            if self.sidebar.item(row).text() == name:
                self.sidebar.setCurrentRow(row)
                return
        raise KeyError(name)

    def _chat_with(self, path: str) -> None:
        """Models page → Chat with this model: the Chat page, that model picked and loading."""
        self._offer_models()  # the picker lists the library as the Models page shows it
        self.show_page("Chat")
        self.chat_page.use_model(path)

    def _chat_documents_changed(self, *_args) -> None:
        if self.documents_page.isVisible():  # else it reads the index when it is next shown
            self.documents_page.refresh()

    def _show_hardware(self, hw) -> None:
        where = "Metal" if hw.gpu == "metal" else "CPU"
        self.machine_label.setText(
            f"{hw.chip}\n{format_bytes(hw.total_bytes)} memory · {where}\nModel budget {format_bytes(hw.budget_bytes)}"
        )
        self.machine_label.setToolTip(f"Model budget: {hw.budget_rule}")

    # --- first paint and start-up work ----------------------------------------------------------
    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            self.first_paint_time = time.time()
            if self._on_first_paint is not None:
                self._on_first_paint()
            QTimer.singleShot(0, self._start_background_work)  # after the frame reaches the screen

    def _start_background_work(self) -> None:
        self.models_page.start_scan()
        self._open_download_queue()
        self.chat_page.open_history()
        self.chat_page.refresh_remote()  # the configured remote servers' models join the picker
        self.server_panel.resume()  # serving again if the switch was on at the last quit

    def _open_download_queue(self) -> None:
        """The app's one download queue; unfinished downloads of the last session come back paused."""
        from macapp.core.models.download_queue import DownloadQueue

        try:
            self.download_queue = DownloadQueue(on_change=self.discover_page.downloads.listener())
        except OSError as exc:
            log.warning("could not open the download queue: %s", exc)
            self.discover_page.notice.show_message(f"Downloads are unavailable: {exc}")
            return
        self.discover_page.set_queue(self.download_queue)

    def _after_scan(self) -> None:
        if self.models_page.hardware is None:
            self.discover_page.hardware_unknown()
            if self.welcome is not None:
                self.welcome.hardware_unknown()
        self._offer_models()

    def _offer_models(self) -> None:
        """The Chat page's picker lists the Models page's library (after a scan and each added file)."""
        self.chat_page.set_library(self.models_page.table_model.entries(), self.models_page.hardware)
        if self.welcome is not None:
            self.welcome.set_has_models(self.models_page.table_model.rowCount() > 0)

    # --- the welcome screen ----------------------------------------------------------------------
    def show_welcome(self) -> None:
        """Cover the pages with the welcome screen (first run, or Help > Welcome to Orchard)."""
        welcome = self.welcome
        if welcome is None:
            welcome = self.welcome = WelcomeScreen(self.pages)
            welcome.downloadRequested.connect(self._download_from_welcome)
            welcome.browseRequested.connect(lambda: self.finish_welcome("Discover"))
            welcome.skipRequested.connect(lambda: self.finish_welcome("Models"))
            self.models_page.hardwareDetected.connect(welcome.apply_hardware)
            self.pages.installEventFilter(self)
            if self.models_page.hardware is not None:  # shown again later: the probe has answered
                welcome.apply_hardware(self.models_page.hardware)
            elif self._painted and not self.models_page.scanning:
                welcome.hardware_unknown()
            welcome.set_has_models(self.models_page.table_model.rowCount() > 0)
        welcome.setGeometry(self.pages.rect())
        welcome.raise_()
        welcome.show()
        self.sidebar.setCurrentRow(-1)  # no page is selected while the welcome covers them

    @property
    def welcome_visible(self) -> bool:
        return self.welcome is not None and self.welcome.isVisibleTo(self)

    def finish_welcome(self, page: str = "Models") -> None:
        """The person answered the welcome: remember it (no welcome next start) and show ``page``."""
        self._settings.welcome_done = True
        try:
            update_settings(lambda s: setattr(s, "welcome_done", True))
        except OSError as exc:
            log.warning("could not save that the welcome was seen: %s", exc)
        self.show_page(page)

    def _download_from_welcome(self, repo_id: str, file: str) -> None:
        if self.discover_page.download(repo_id, [file]) is None:
            self.welcome.show_error("Downloads are not ready yet; try again in a moment.")
            return
        self.finish_welcome("Discover")  # its downloads panel shows the new job

    def _on_page_chosen(self, row: int) -> None:
        if row >= 0 and self.welcome is not None:
            self.welcome.hide()  # a page was chosen (sidebar, menu): it takes the place of the welcome

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.pages and event.type() == QEvent.Type.Resize and self.welcome is not None:
            self.welcome.setGeometry(self.pages.rect())
        return super().eventFilter(watched, event)

    # --- settings and messages -------------------------------------------------------------------
    def apply_settings(self, saved: Settings, changed: set[str]) -> None:
        """Settings were saved (the Settings dialog): the pages read the new values; the library rescans."""
        for name in changed:
            setattr(self._settings, name, getattr(saved, name))
        if changed & {"default_ctx", "kv_type"}:
            self.models_page.reset_runtimes()  # per-model context and KV type start again from the new defaults
        if changed:
            self.models_page.start_scan()

    def open_files(self, paths: list[str]) -> None:
        """Files opened with Orchard (dropped on its Dock icon, "Open With"): PDFs and images join the chat on
        screen, GGUF models join the library; anything else gets a one-line answer."""
        from macapp.ui.widgets.drops import is_document

        pdfs = [p for p in paths if is_document(p)]
        models = [p for p in paths if p.lower().endswith(".gguf")]
        others = [Path(p).name for p in paths if p not in pdfs and p not in models]
        if models:  # someone with models of their own needs no welcome
            self.finish_welcome("Models") if self.welcome_visible else self.show_page("Models")
            self.models_page.add_files(models)
        if pdfs:
            self.show_page("Chat")
            self.chat_page.documents.add(pdfs)
        if others:
            self.show_toast(
                "Orchard opens PDFs, images and GGUF models; left out: "
                + ", ".join(others[:3])
                + (" …" if len(others) > 3 else "")
            )

    def show_toast(self, text: str) -> None:
        """A short message at the bottom of the window that goes away by itself (e.g. "Copied")."""
        self.toast.setText(text)
        self.toast.adjustSize()
        area = QRect(self.pages.mapTo(self, QPoint(0, 0)), self.pages.size())
        self.toast.move(area.center().x() - self.toast.width() // 2, area.bottom() - self.toast.height() - 24)
        self.toast.raise_()
        self.toast.show()
        self._toast_timer.start()

    # --- geometry --------------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        saved = self._settings.window_geometry
        if saved:
            try:
                if self.restoreGeometry(QByteArray(base64.b64decode(saved, validate=True))):
                    return
            except ValueError:
                log.warning("ignoring unreadable window geometry")
        self.resize(1180, 760)

    def geometry_text(self) -> str:
        return base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii")

    def closeEvent(self, event) -> None:
        self.chat_page.shutdown()  # stops an answer or a load gracefully and unloads the model
        self.server_panel.shutdown()  # stops the OpenAI-compatible server
        for worker in running_workers():
            worker.cancel()
        self.discover_page.shutdown()
        self.tuning_page.shutdown()
        if self.download_queue is not None:
            self.download_queue.close()  # a running download stops and comes back paused next time
        try:
            geometry = self.geometry_text()
            update_settings(lambda s: setattr(s, "window_geometry", geometry))
        except OSError as exc:
            log.warning("could not save the window geometry: %s", exc)
        super().closeEvent(event)
