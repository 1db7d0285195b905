"""The Documents page's "Embedding model" row: which model makes the vectors, and choosing another.

The model in settings is loaded in a worker to read its name and dimension (newest answer wins). Choosing
another GGUF loads it first: a file that is not an embedding model is refused with its message and the
setting stays. What follows a change (re-indexing the collections built with another embedder) is the
page's: the row says ``chosen``; ``shown`` whenever it names a model (None: the one in settings can't be
loaded); ``failed`` with a message for the page's notice.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from macapp.ui.jobs.documents import EmbedderChoice, current_embedder, use_embedder
from macapp.ui.widgets.elided import EllipsisLabel
from macapp.ui.worker import Latest, Worker, error_text


class EmbedderChooser(QFrame):
    """The embedding model's name and dimension, with Choose GGUF… and Use bundled."""

    shown = Signal(object)  # the EmbedderChoice now on the row, or None when it can't be loaded
    chosen = Signal(object)  # the EmbedderChoice just switched to (saved in settings)
    failed = Signal(str)  # what went wrong, for the page's notice

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.choice: EmbedderChoice | None = None  # None until loaded (or when it can't be)
        self.choosing = False
        self._loads = Latest()  # a newer load or a choice makes an older load's answer stale
        self.setObjectName("embedderRow")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.setToolTip(
            "The model that turns passages into vectors for search. Changing it re-indexes "
            "every collection (vectors of two models never mix)."
        )
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 6, 8, 6)
        lay.setSpacing(10)
        title = QLabel("Embedding model")
        title.setObjectName("strong")
        self.label = EllipsisLabel("Loading…")  # "…" with the whole line in its tooltip when the page is narrow
        self.label.setObjectName("muted")
        self.choose_button = QPushButton("Choose GGUF…")
        self.choose_button.setToolTip("Embed documents with another GGUF embedding model")
        self.choose_button.clicked.connect(self._choose_file)
        self.bundled_button = QPushButton("Use bundled")
        self.bundled_button.setToolTip("Go back to the embedding model that comes with the app (all-MiniLM-L6-v2)")
        self.bundled_button.clicked.connect(lambda: self.choose(""))
        lay.addWidget(title)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.choose_button)
        lay.addWidget(self.bundled_button)
        self._update_buttons()

    def load(self) -> Worker:
        """Load the embedder in settings (in a worker) to show its file and dimension."""
        ticket = self._loads.ticket()
        worker = Worker(current_embedder)
        worker.signals.returned.connect(self._loads.only_if_current(ticket, self._show))
        worker.signals.errored.connect(self._loads.only_if_current(ticket, self._on_load_failed))
        return worker.start()

    def _on_load_failed(self, exc: BaseException) -> None:
        self._show(None)
        self.failed.emit(f"The embedding model can't be loaded. {error_text(exc)}")

    def choose(self, path: str) -> Worker:
        """Embed with the GGUF at ``path`` ("" = the bundled model): it is loaded first (a file that is no
        embedding model changes nothing), then saved; ``chosen`` follows."""
        self._loads.drop()  # a load already under way no longer counts
        self.choosing = True
        self.label.setText(f"loading {Path(path).name if path else 'the bundled model'}…")
        self._update_buttons()
        worker = Worker(use_embedder, path)
        worker.signals.returned.connect(self._on_chosen)
        worker.signals.errored.connect(self._on_choice_failed)
        return worker.start()

    def _on_chosen(self, choice: EmbedderChoice) -> None:
        self.choosing = False
        self._loads.drop()  # a load started meanwhile would show the old model
        self._show(choice)
        self.chosen.emit(choice)

    def _on_choice_failed(self, exc: BaseException) -> None:
        self.choosing = False
        self.failed.emit(error_text(exc))
        if self.choice is not None:
            self._show(self.choice)  # the row shows the model still in use
        else:
            self.load()

    def _show(self, choice: EmbedderChoice | None) -> None:
        self.choice = choice
        if choice is None:
            self.label.setText("can't be loaded")
            self.label.setToolTip("")
        else:
            bundled = " · bundled" if choice.bundled else ""
            self.label.setText(f"{choice.file} · {choice.dim:,} dimensions{bundled}")
            self.label.setToolTip(f"{choice.path or 'Bundled with the app'}\nCollections record it as {choice.name}")
        self._update_buttons()
        self.shown.emit(choice)

    def _choose_file(self) -> None:
        start = str(Path(self.choice.path).parent) if self.choice and self.choice.path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose an embedding model", start, "GGUF models (*.gguf)")
        if path:
            self.choose(path)

    def _update_buttons(self) -> None:
        self.choose_button.setEnabled(not self.choosing)
        self.bundled_button.setEnabled(not self.choosing and not (self.choice and self.choice.bundled))
