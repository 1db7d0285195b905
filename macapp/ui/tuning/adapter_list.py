"""The Tuning page's list of adapters: finished ones with how they went, unfinished runs as resumable."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from macapp.core.tuning import adapters
from macapp.ui.tuning.texts import adapter_text
from macapp.ui.worker import Worker, error_text

log = logging.getLogger(__name__)


class AdapterList(QListWidget):
    """Every adapter in the registry, one line each; read in a Worker by ``refresh``, ``listed`` when shown."""

    listed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("adapterList")
        self.setMaximumHeight(130)

    def refresh(self) -> None:
        worker = Worker(adapters.list_adapters, include_incomplete=True)
        worker.signals.returned.connect(self._show)
        worker.signals.errored.connect(lambda exc: log.warning("could not list adapters: %s", error_text(exc)))
        worker.start()

    def _show(self, infos: list[adapters.AdapterInfo]) -> None:
        self.clear()
        for info in infos:
            self.addItem(adapter_text(info))
        if not infos:
            item = QListWidgetItem("No adapters yet.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.addItem(item)
        self.listed.emit()
