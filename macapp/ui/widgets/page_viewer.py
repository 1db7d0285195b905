"""The page a citation points at: the PDF page rendered, the sentences the citation stands for (its
``quote``) marked in translucent yellow and scrolled into view, with previous/next page and zoom.

Pages render in a ``Worker`` on the viewer's own one-thread pool (PDFium runs one call at a time
anyway), so a big page never stalls the window and a render never waits behind indexing. Only the
newest request is shown. A PDF that is no longer where it was indexed gets a clear message and the
quoted passage instead of a page.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from macapp.core.docs.pages import PagedText
from macapp.ui.jobs.documents import RenderedPage, render_cited_page
from macapp.ui.worker import Latest, Worker, error_text

ZOOMS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)  # × 72 dpi
DEFAULT_ZOOM = 1.25
HIGHLIGHT = QColor(255, 212, 0, 96)
HIGHLIGHT_EDGE = QColor(230, 170, 0, 160)
PAD = 2.0  # pixels around each highlighted box


def moved_text(citation: dict) -> str:
    name = citation.get("file") or "The PDF"
    path = citation.get("path")
    if not path:
        return f"{name}: this citation does not say where the PDF is, so its page can't be shown."
    return (
        f"{name} is no longer at {path} — it was moved, renamed or deleted after it was indexed. "
        "Put it back there, or add it again from its new place to see its pages."
    )


class PageViewer(QDialog):
    """One cited page at a time; ``show_citation`` opens it, the buttons move through the PDF."""

    rendered = Signal(object)  # the RenderedPage now on screen

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("pageViewer")
        self.setWindowTitle("Source")
        self.resize(860, 900)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.citation: dict = {}
        self.path: str | None = None
        self.page = 1
        self.pages = 0
        self.zoom = DEFAULT_ZOOM
        self.highlights: list[QRectF] = []  # in image pixels (device-independent)
        self._renders = Latest()  # a newer page or zoom makes an older render's answer stale

        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        bar = QFrame()
        bar.setObjectName("viewerBar")
        head = QHBoxLayout(bar)
        head.setContentsMargins(14, 8, 14, 8)
        head.setSpacing(6)
        self.title = QLabel("")
        self.title.setObjectName("strong")
        self.page_label = QLabel("")
        self.page_label.setObjectName("muted")
        self.prev_button = QPushButton("‹ Previous")
        self.next_button = QPushButton("Next ›")
        self.zoom_out = QPushButton("−")
        self.zoom_in = QPushButton("+")
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("muted")
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("300%") + 6)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        for button, tip in (
            (self.prev_button, "Previous page"),
            (self.next_button, "Next page"),
            (self.zoom_out, "Zoom out"),
            (self.zoom_in, "Zoom in"),
        ):
            button.setToolTip(tip)
        self.zoom_out.setObjectName("zoomButton")
        self.zoom_in.setObjectName("zoomButton")
        self.prev_button.clicked.connect(lambda: self.show_page(self.page - 1))
        self.next_button.clicked.connect(lambda: self.show_page(self.page + 1))
        self.zoom_out.clicked.connect(lambda: self.step_zoom(-1))
        self.zoom_in.clicked.connect(lambda: self.step_zoom(+1))
        head.addWidget(self.title, 1)
        head.addWidget(self.page_label)
        head.addSpacing(8)
        for w in (self.prev_button, self.next_button):
            head.addWidget(w)
        head.addSpacing(8)
        for w in (self.zoom_out, self.zoom_label, self.zoom_in):
            head.addWidget(w)
        root.addWidget(bar)

        self.message = QLabel("")
        self.message.setObjectName("viewerMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setContentsMargins(18, 14, 18, 14)
        self.message.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.image = QLabel()
        self.image.setObjectName("pageImage")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setContentsMargins(16, 16, 16, 16)
        self.scroll = QScrollArea()
        self.scroll.setObjectName("pageScroll")
        self.scroll.setWidget(self.image)
        self.scroll.setWidgetResizable(True)
        self.scroll.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.body = QStackedWidget()  # the page, or a message instead of it
        self.body.addWidget(self.scroll)
        self.body.addWidget(self.message)
        root.addWidget(self.body, 1)
        self._update_controls()

    # --- what to show --------------------------------------------------------------------------
    def show_citation(self, citation: dict) -> Worker | None:
        """Open the cited page with its passage highlighted; a clear message if the PDF has moved."""
        self.citation = dict(citation)
        self.path = citation.get("path") or None
        self.setWindowTitle(f"Source — {citation.get('label') or citation.get('file', '')}")
        self.title.setText(str(citation.get("file") or ""))
        self.pages = 0
        self.show()
        self.raise_()
        self.activateWindow()
        if not self.path or not Path(self.path).is_file():
            self._show_message(moved_text(citation), quote=str(citation.get("text") or ""))
            return None
        return self.show_page(int(citation.get("page") or 1))

    def show_page(self, page: int) -> Worker | None:
        """Render ``page`` (1-based) of the open PDF at the current zoom."""
        if not self.path or (self.pages and not 1 <= page <= self.pages):
            return None
        self.page = page
        ticket = self._renders.ticket()
        scale = self.zoom * self.devicePixelRatioF()
        worker = Worker(render_cited_page, self.path, page, scale, self._passage_for(page), pool=self.pool)
        worker.signals.returned.connect(self._renders.only_if_current(ticket, self._on_rendered))
        worker.signals.errored.connect(self._renders.only_if_current(ticket, self._on_failed))
        self.page_label.setText(f"Page {page}" + (f" of {self.pages}" if self.pages else "") + " · rendering…")
        self._update_controls()
        return worker.start()

    def step_zoom(self, step: int) -> None:
        at = min(range(len(ZOOMS)), key=lambda i: abs(ZOOMS[i] - self.zoom))
        self.zoom = ZOOMS[max(0, min(len(ZOOMS) - 1, at + step))]
        self.show_page(self.page)

    def _passage_for(self, page: int) -> str:
        """What to highlight on ``page``: on the cited page, the sentences the citation stands for (its quote);
        on the passage's other pages, the passage (where it runs onto them); elsewhere nothing."""
        cited = int(self.citation.get("page") or 0)
        first = int(self.citation.get("page_start") or cited)
        last = int(self.citation.get("page_end") or cited)
        text = str(self.citation.get("text") or "")
        if page == cited and self.citation.get("quote"):
            return str(self.citation["quote"])
        if not first <= page <= last:
            return ""
        breaks = tuple(self.citation.get("page_breaks") or ())
        if len(breaks) != last - first:  # saved before pages were recorded: the passage, where it shows
            return text
        paged = PagedText(text, first, breaks)
        return " ".join(paged.text[s:e] for p, s, e in paged.parts() if p == page)

    # --- results -------------------------------------------------------------------------------
    def _on_rendered(self, result: RenderedPage) -> None:
        self.page, self.pages = result.page, result.pages
        image = QImage.fromData(result.png, "PNG")
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap.fromImage(image)
        px_per_point = result.scale / ratio  # device-independent pixels per PDF point
        self.highlights = [
            QRectF(
                r.left * px_per_point - PAD,
                r.top * px_per_point - PAD,
                (r.right - r.left) * px_per_point + 2 * PAD,
                (r.bottom - r.top) * px_per_point + 2 * PAD,
            )
            for r in result.rects
        ]
        if self.highlights:
            painter = QPainter(pixmap)
            painter.scale(ratio, ratio)
            painter.setPen(HIGHLIGHT_EDGE)
            painter.setBrush(HIGHLIGHT)
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
            for rect in self.highlights:
                painter.drawRoundedRect(rect, 2, 2)
            painter.end()
        pixmap.setDevicePixelRatio(ratio)
        self.body.setCurrentWidget(self.scroll)
        self.image.setPixmap(pixmap)
        self.page_label.setText(f"Page {self.page} of {self.pages}")
        self._update_controls()
        QTimer.singleShot(0, self, self._scroll_to_highlight)
        self.rendered.emit(result)

    def _scroll_to_highlight(self) -> None:
        """The first highlight a third of the way down the view (else the top of the page)."""
        self.image.adjustSize()
        bar = self.scroll.verticalScrollBar()
        if not self.highlights:
            bar.setValue(0)
            return
        pixmap = self.image.pixmap()
        offset_y = max(0.0, (self.image.height() - pixmap.deviceIndependentSize().height()) / 2)
        offset_x = max(0.0, (self.image.width() - pixmap.deviceIndependentSize().width()) / 2)
        first = self.highlights[0]
        bar.setValue(int(first.top() + offset_y - self.scroll.viewport().height() / 3))
        self.scroll.horizontalScrollBar().setValue(int(first.left() + offset_x - 24))

    def _on_failed(self, exc: BaseException) -> None:
        self._show_message(error_text(exc))

    def _show_message(self, text: str, quote: str = "") -> None:
        self.highlights = []
        self.image.clear()
        if quote:
            text += "\n\nThe cited passage:\n“" + " ".join(quote.split()) + "”"
        self.message.setText(text)
        self.body.setCurrentWidget(self.message)
        self.page_label.setText("")
        self._update_controls()

    def _update_controls(self) -> None:
        has_page = self.body.currentWidget() is self.scroll and self.pages > 0
        self.prev_button.setEnabled(has_page and self.page > 1)
        self.next_button.setEnabled(has_page and self.page < self.pages)
        self.zoom_out.setEnabled(has_page and self.zoom > ZOOMS[0])
        self.zoom_in.setEnabled(has_page and self.zoom < ZOOMS[-1])
        self.zoom_label.setText(f"{round(self.zoom * 100)}%")

    def closeEvent(self, event) -> None:
        self._renders.drop()  # a render still running is not shown
        super().closeEvent(event)

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Wait for a render in progress (the window is closing)."""
        self._renders.drop()
        return self.pool.waitForDone(timeout_ms)
