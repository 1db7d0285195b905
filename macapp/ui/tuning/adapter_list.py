"""The Tuning page's list of adapters: finished ones with how they went, unfinished runs as resumable."""

from __future__ import annotations

import logging

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QStyledItemDelegate, QWidget

from macapp.core.tuning import adapters
from macapp.ui.tuning.texts import adapter_text
from macapp.ui.worker import Worker, error_text

log = logging.getLogger(__name__)


class _NarrowItems(QStyledItemDelegate):
    """Items asking for no width: each gets the list's width, and a longer line elides in it."""

    def sizeHint(self, option, index) -> QSize:
        return QSize(1, super().sizeHint(option, index).height())


class AdapterList(QListWidget):
    """Every adapter in the registry, one line each; read in a Worker by ``refresh``, ``listed`` when shown."""

    listed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("adapterList")
        self.setMaximumHeight(130)
        # a long line elides ("…") to the list's width, its tooltip holding it whole: no sideways scrolling
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setItemDelegate(_NarrowItems(self))

    def refresh(self) -> None:
        worker = Worker(adapters.list_adapters, include_incomplete=True)
        worker.signals.returned.connect(self._show)
        worker.signals.errored.connect(lambda exc: log.warning("could not list adapters: %s", error_text(exc)))
        worker.start()

    def _show(self, infos: list[adapters.AdapterInfo]) -> None:
        self.clear()
        for info in infos:
            item = QListWidgetItem(adapter_text(info))
            item.setToolTip(item.text())
            self.addItem(item)
        if not infos:
            item = QListWidgetItem("No adapters yet.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.addItem(item)
        self.listed.emit()
