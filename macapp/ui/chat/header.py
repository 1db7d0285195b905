"""The Chat page's header: the model picker with memory verdicts, Load/Eject, the load progress,
the context meter and the gear that opens the settings drawer.

The picker lists the library's usable models, each with the verdict (fits, tight, too big) at
the context length the next load would use (set in the drawer), coloured like the Models page;
estimates are pure arithmetic, so they run on the GUI thread. The meter shows how much of the
loaded model's context window the conversation fills: ``1,234 / 8,192 tokens``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes, format_count
from macapp.ui.widgets.elided import ElidingComboBox, EllipsisLabel
from macapp.ui.widgets.memory_bar import VERDICT_WORDS, verdict_color
from macapp.ui.worker import Latest, Worker

if TYPE_CHECKING:
    from macapp.core.engines.base import Engine
    from macapp.core.hardware import Hardware
    from macapp.core.models.estimate import MemoryEstimate
    from macapp.core.models.library import LibraryEntry
    from macapp.ui.chat.settings import SettingsDrawer

log = logging.getLogger(__name__)

FULL_AT = 0.85  # the meter turns amber from here
REMOTE_WORD = "remote"


def engine_label(engine: Engine) -> str:
    """Which engine answers, for a person: ``llama.cpp · tiny.gguf`` or ``remote · MODEL @ host:port``."""
    return f"{engine.name} · {engine.label}"


def remote_models() -> tuple[list[tuple[str, str]], list[str]]:
    """``(ref, shown name)`` for every model of the configured remote endpoints, and a note for each endpoint
    that could not be listed (on a worker thread: this asks the servers)."""
    from macapp.core.engines.remote import configured_endpoints, list_remote_models, remote_ref
    from macapp.core.errors import UserError

    found: list[tuple[str, str]] = []
    skipped: list[str] = []
    try:
        endpoints = configured_endpoints()
    except UserError as exc:
        return [], [exc.message]
    for endpoint in endpoints:
        try:
            models = list_remote_models(endpoint.url, endpoint.resolve_key())  # the key from the keychain
        except UserError as exc:
            skipped.append(f"{endpoint.name}: {exc.message}")
            continue
        found += [(remote_ref(endpoint.name, m.id), f"{m.id} @ {endpoint.name}") for m in models]
    return found, skipped


def verdict_text(estimate: MemoryEstimate | None) -> str:
    """``Fits · 1.2 GB of 16 GB at 8,192 tokens`` (or what is missing to say so)."""
    if estimate is None or estimate.verdict is None:
        return f"Measuring {machine_noun()}'s memory…" if estimate is not None else ""
    text = (
        f"{VERDICT_WORDS[estimate.verdict]} · {format_bytes(estimate.gpu_bytes)} of "
        f"{format_bytes(estimate.budget_bytes)} at {format_count(estimate.n_ctx)} tokens"
    )
    if estimate.verdict == "too_big":
        fits = estimate.max_ctx_that_fits
        text += (
            f" — the largest context that fits is {format_count(fits)} tokens"
            if fits
            else " — pick a smaller model or quantization"
        )
    return text


def _dot(color: QColor, size: int = 10) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)


PICKER_MAX_WIDTH = 380  # px: room for "Meta-Llama-3.1-8B-Instruct-Q4_K_M" and its dot


class ModelPicker(ElidingComboBox):
    """Usable library models; each item's dot and tooltip give its memory verdict. A long name elides in the
    middle when the header is narrow (the settings drawer open), and the tooltip holds it whole."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.setMinimumContentsLength(10)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setIconSize(QSize(10, 10))
        self.setToolTip("The model to chat with")
        self.setPlaceholderText("No models yet")
        self._entries: dict[str, LibraryEntry] = {}
        self._remote: list[tuple[str, str]] = []  # (remote:NAME/MODEL, shown name)
        self._estimates: dict[str, MemoryEstimate | None] = {}

    def sizeHint(self) -> QSize:
        return QSize(max(260, super().sizeHint().width()), super().sizeHint().height())

    def set_entries(self, entries: list[LibraryEntry]) -> None:
        """List the usable ``entries``, keeping the current pick when it is still there."""
        self._entries = {e.id: e for e in entries if e.facts is not None}
        self._rebuild()

    def set_remote(self, models: list[tuple[str, str]]) -> None:
        """List remote models (``remote:NAME/MODEL``, shown name) after the library's."""
        self._remote = list(models)
        self._rebuild()

    def _rebuild(self) -> None:
        keep = self.currentData()
        self.blockSignals(True)
        self.clear()
        for entry in self._entries.values():
            # Without ".gguf": when the header is narrow the middle elides and the quantization stays in sight.
            name = entry.name
            self.addItem(name[: -len(".gguf")] if name.lower().endswith(".gguf") else name, entry.id)
        for ref, shown in self._remote:
            self.addItem(_dot(QColor("#8a8f98")), shown, ref)
            self.setItemData(self.count() - 1, f"{ref}\nRuns on a remote server", Qt.ItemDataRole.ToolTipRole)
        index = self.findData(keep) if keep is not None else -1
        self.setCurrentIndex(index if index >= 0 else (0 if self.count() else -1))
        self.blockSignals(False)
        if self._estimates:
            self.set_estimates(self._estimates)

    def local_ids(self) -> list[str]:
        """The library's models on offer (their ids), remote ones not counted."""
        return list(self._entries)

    def remote_refs(self) -> list[str]:
        return [ref for ref, _ in self._remote]

    def is_remote(self) -> bool:
        """The pick is a model on a remote server."""
        return self.currentData() in self.remote_refs()

    def current_ref(self) -> str | None:
        """What to load: the picked library model's path, or a ``remote:NAME/MODEL`` id."""
        entry = self.current_entry()
        if entry is not None:
            return entry.path
        return self.currentData() if self.is_remote() else None

    def entries(self) -> list[LibraryEntry]:
        return list(self._entries.values())

    def current_entry(self) -> LibraryEntry | None:
        ident = self.currentData()
        return self._entries.get(ident) if ident is not None else None

    def select_path(self, path: str) -> bool:
        """Pick the model a chat names: a path, a short or long library id (as older versions stored), a remote id."""
        for row in range(self.count()):
            ident = self.itemData(row)
            entry = self._entries.get(ident)
            if ident == path or (entry is not None and entry.known_as(path)):
                self.setCurrentIndex(row)
                return True
        return False

    def set_estimates(self, estimates: dict[str, MemoryEstimate | None]) -> None:
        self._estimates = estimates
        for row in range(self.count()):
            ident = self.itemData(row)
            if ident not in self._entries:  # a remote model: no memory verdict here
                continue
            est = estimates.get(ident)
            verdict = est.verdict if est is not None else None
            self.setItemIcon(row, _dot(verdict_color(verdict)))
            entry = self._entries[ident]
            self.setItemData(row, f"{entry.id}\n{entry.path}\n{verdict_text(est)}", Qt.ItemDataRole.ToolTipRole)

    def estimate(self) -> MemoryEstimate | None:
        entry = self.current_entry()
        return self._estimates.get(entry.id) if entry is not None else None


class ContextMeter(QWidget):
    """``used / window tokens`` with a thin bar; amber when nearly full."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(8)
        self.bar = QProgressBar()
        self.bar.setObjectName("contextBar")
        self.bar.setTextVisible(False)
        self.bar.setFixedSize(90, 6)
        self.label = QLabel("")
        self.label.setObjectName("contextLabel")
        self.label.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.bar)
        lay.addWidget(self.label)
        self.setToolTip("How much of the model's context window this conversation fills")
        self.used = 0
        self.window = 0
        self.clear()

    def clear(self) -> None:
        """No model: nothing to measure (the status line says so)."""
        self.used = self.window = 0
        self.label.setText("")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.hide()

    def set_usage(self, used: int, window: int) -> None:
        self.show()
        if (used, window) == (self.used, self.window):
            return
        self.used, self.window = used, window
        self.label.setText(f"{format_count(used)} / {format_count(window)} tokens")
        self.bar.setRange(0, max(1, window))
        self.bar.setValue(min(used, window))
        full = window > 0 and used >= FULL_AT * window
        if self.bar.property("full") != full:
            self.bar.setProperty("full", full)
            self.bar.style().unpolish(self.bar)
            self.bar.style().polish(self.bar)


class ModelBar(QWidget):
    """Header row (picker, verdict, Load, Eject, gear) over a status row (model, load progress, meter)."""

    loadRequested = Signal()  # Load pressed (Cancel while a load runs)
    ejectRequested = Signal()

    def __init__(self, drawer: SettingsDrawer, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chatHeader")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self._drawer = drawer
        self._hardware: Hardware | None = None
        self._remote_lists = Latest()  # a newer refresh makes an older answer stale
        self.remote_worker: Worker | None = None
        rows = QVBoxLayout(self)
        rows.setContentsMargins(18, 12, 14, 8)
        rows.setSpacing(4)
        head = QHBoxLayout()
        head.setSpacing(8)
        self.picker = ModelPicker()
        self.picker.currentIndexChanged.connect(self.update_verdicts)
        self.verdict_label = QLabel("")
        self.verdict_label.setObjectName("verdict")
        self.load_button = QPushButton("Load")
        self.load_button.setObjectName("primary")
        self.load_button.clicked.connect(self.loadRequested)
        self.eject_button = QPushButton("Eject")
        self.eject_button.setToolTip("Unload the model and free its memory")
        self.eject_button.clicked.connect(self.ejectRequested)
        self.gear = QToolButton()
        self.gear.setObjectName("gear")
        self.gear.setText("⚙")
        self.gear.setCheckable(True)
        self.gear.setToolTip("Answer settings, system prompt, context length")
        self.gear.toggled.connect(drawer.setVisible)
        # The picker takes the room the buttons leave, up to a long model name's width, so a name is only cut
        # ("…", whole in the tooltip) when the row really is narrow.
        self.picker.setMaximumWidth(PICKER_MAX_WIDTH)
        head.addWidget(self.picker, 4)
        for w in (self.verdict_label, self.load_button, self.eject_button):
            head.addWidget(w)
        head.addStretch(1)
        head.addWidget(self.gear)
        rows.addLayout(head)
        status = QHBoxLayout()
        self.model_status = EllipsisLabel("No model loaded")  # "…" and a tooltip when the row is narrow
        self.model_status.setObjectName("modelStatus")
        self.load_progress = QProgressBar()
        self.load_progress.setObjectName("loadProgress")
        self.load_progress.setRange(0, 1000)
        self.load_progress.setTextVisible(False)
        self.load_progress.setFixedSize(160, 6)
        self.load_progress.hide()
        self.meter = ContextMeter()
        self.remote_note = QLabel("")
        self.remote_note.setObjectName("remoteNote")
        self.remote_note.hide()
        self.engine_badge = QLabel("")  # which engine answers: llama.cpp, mlx, remote
        self.engine_badge.setObjectName("engineBadge")
        self.engine_badge.hide()
        status.addWidget(self.engine_badge)
        status.addWidget(self.model_status, 1)
        status.addWidget(self.remote_note)
        status.addWidget(self.load_progress)
        status.addWidget(self.meter)
        rows.addLayout(status)
        drawer.loadOptionsChanged.connect(self.update_verdicts)

    # --- models and verdicts -------------------------------------------------------------------
    def set_library(self, entries: list[LibraryEntry], hardware: Hardware | None = None) -> None:
        if hardware is not None:
            self._hardware = hardware
        self.picker.set_entries(entries)
        self.update_verdicts()

    def refresh_remote(self) -> Worker:
        """Ask the configured remote endpoints for their models (in a worker); unreachable ones are skipped
        with a muted note."""
        ticket = self._remote_lists.ticket()
        worker = Worker(remote_models)
        worker.signals.returned.connect(self._remote_lists.only_if_current(ticket, self._show_remote))
        worker.signals.errored.connect(lambda exc: log.warning("listing remote models failed: %s", exc))
        self.remote_worker = worker
        return worker.start()

    def _show_remote(self, result: tuple[list[tuple[str, str]], list[str]]) -> None:
        models, skipped = result
        self.picker.set_remote(models)
        self.remote_note.setText(f"{len(skipped)} remote server(s) unreachable" if skipped else "")
        self.remote_note.setToolTip("\n".join(skipped))
        self.remote_note.setVisible(bool(skipped))
        self.update_verdicts()

    def apply_hardware(self, hardware: Hardware) -> None:
        self._hardware = hardware
        self.update_verdicts()

    @property
    def budget(self) -> int | None:
        return self._hardware.budget_bytes if self._hardware else None

    def _estimate(self, entry: LibraryEntry) -> MemoryEstimate | None:
        from macapp.core.models.estimate import RuntimeSettings, estimate_memory

        backend = "metal" if self._hardware is not None and self._hardware.gpu == "metal" else "cpu"
        n_ctx = max(1, min(self._drawer.wanted_ctx, entry.facts.context_length))
        try:
            return estimate_memory(
                entry.facts, RuntimeSettings(n_ctx=n_ctx, kv_type=self._drawer.kv_type, backend=backend), self.budget
            )
        except (ValueError, ZeroDivisionError, IndexError):  # odd header values: no verdict
            log.exception("cannot estimate %s", entry.path)
            return None

    def update_verdicts(self) -> None:
        """Re-estimate every model at the drawer's context length and KV type."""
        entry = self.picker.current_entry()
        if entry is not None:
            self._drawer.set_ctx_limit(entry.facts.context_length)
        self.picker.set_estimates({e.id: self._estimate(e) for e in self.picker.entries()})
        if self.picker.is_remote():
            self.verdict_label.setText(REMOTE_WORD)
            self.verdict_label.setStyleSheet("")
            self.verdict_label.setToolTip(f"Runs on a remote server: {machine_noun()}'s memory is not used")
            self._drawer.set_verdict(f"Remote model: runs on its server, not in {machine_noun()}'s memory", None)
            return
        est = self.picker.estimate()
        verdict = est.verdict if est is not None else None
        color = verdict_color(verdict).name() if verdict else None
        self.verdict_label.setText(VERDICT_WORDS[verdict] if verdict else "")
        self.verdict_label.setStyleSheet(f"color: {color};" if color else "")
        self.verdict_label.setToolTip(verdict_text(est))
        self._drawer.set_verdict(verdict_text(est), color)

    # --- state ---------------------------------------------------------------------------------
    def show_loading(self, name: str) -> None:
        self.load_progress.setValue(0)
        self.load_progress.show()
        self.model_status.setText(f"Loading {name}…")

    def set_progress(self, fraction: float | None) -> None:
        if fraction is not None:
            self.load_progress.setValue(int(fraction * 1000))

    def _style_load_button(self, primary: bool) -> None:
        """The primary (green) style is Load's alone: Reload and Cancel are ordinary buttons."""
        name = "primary" if primary else ""
        if self.load_button.objectName() != name:
            self.load_button.setObjectName(name)
            self.load_button.style().unpolish(self.load_button)
            self.load_button.style().polish(self.load_button)

    def show_state(self, engine: Engine | None, loading: bool, busy: bool) -> None:
        """Buttons and status for: a load running, a model loaded (or not), an answer being written."""
        if loading:
            self.load_button.setText("Cancel")
            self.load_button.setToolTip("Stop loading")
        else:
            self.load_progress.hide()
            self.load_button.setText("Load" if engine is None else "Reload")
            self.load_button.setToolTip("Load the picked model with the context length set in ⚙")
            self.model_status.setText(
                f"{engine.label} · {format_count(engine.n_ctx)}-token context"
                if engine is not None
                else "No model loaded"
            )
            self.engine_badge.setText(engine.name if engine is not None else "")
            self.engine_badge.setVisible(engine is not None)
            self.model_status.setToolTip(engine_label(engine) if engine is not None else "")
        self._style_load_button(primary=not loading and engine is None)
        self.load_button.setEnabled(not busy and (loading or self.picker.count() > 0))
        self.eject_button.setEnabled(engine is not None and not busy and not loading)
        self.picker.setEnabled(not busy and not loading)
        if engine is None:
            self.meter.clear()
