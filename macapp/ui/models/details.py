"""The details panel of the Models page: a model's facts and a live memory estimate.

Moving the context slider or changing the KV cache type re-estimates on the GUI thread (the
estimate is pure arithmetic, well under a millisecond) and emits ``runtimeChanged`` so the table
row follows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QBoxLayout,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes, format_count, format_params, format_percent
from macapp.ui.widgets.choices import CTX_STEP, KV_TYPE_LABELS, KV_TYPES
from macapp.ui.widgets.labels import make_label as _label
from macapp.ui.widgets.memory_bar import SEGMENT_NAMES, VERDICT_WORDS, MemoryBar, verdict_color

if TYPE_CHECKING:
    from macapp.core.models.estimate import MemoryEstimate, RuntimeSettings
    from macapp.core.models.library import LibraryEntry


class ModelDetails(QFrame):
    """Facts and memory estimate of the selected library entry (or why it cannot be used)."""

    runtimeChanged = Signal(str, object, object)  # entry id, RuntimeSettings, MemoryEstimate

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("detailsCard")
        self._entry: LibraryEntry | None = None
        self._runtime: RuntimeSettings | None = None
        self._budget: int | None = None
        self.estimate: MemoryEstimate | None = None
        self._stack = QStackedLayout(self)
        self.placeholder = _label("Select a model to see what it needs.", "placeholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self._stack.addWidget(self.placeholder)
        self._stack.addWidget(self._build_error_view())
        self._stack.addWidget(self._build_facts_view())

    # --- construction --------------------------------------------------------------------------
    def _build_error_view(self) -> QWidget:
        view = QWidget()
        lay = QVBoxLayout(view)
        lay.setContentsMargins(20, 16, 20, 16)
        self.error_title = _label("", "detailsTitle", selectable=True)
        self.error_reason = _label("", "errorText", selectable=True)
        self.error_reason.setWordWrap(True)
        self.error_path = _label("", "muted", selectable=True)
        self.error_path.setWordWrap(True)
        hint = _label("Orchard reads GGUF model files. Re-download the file, or pick another quantization.", "muted")
        hint.setWordWrap(True)
        for w in (self.error_title, self.error_reason, self.error_path, hint):
            lay.addWidget(w)
        lay.addStretch(1)
        return view

    def _build_facts_view(self) -> QWidget:
        view = QWidget()
        outer = QVBoxLayout(view)
        outer.setContentsMargins(20, 14, 20, 14)
        outer.setSpacing(10)

        head = QHBoxLayout()
        self.title = _label("", "detailsTitle", selectable=True)
        self.kind_badge = _label("", "badge")
        head.addWidget(self.title)
        head.addWidget(self.kind_badge)
        head.addStretch(1)
        outer.addLayout(head)
        self.path_label = _label("", "muted", selectable=True)
        self.path_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        outer.addWidget(self.path_label)

        self.body = body = QBoxLayout(QBoxLayout.Direction.LeftToRight)  # top to bottom when narrow (resizeEvent)
        body.setSpacing(28)
        facts = QFormLayout()
        facts.setContentsMargins(0, 0, 0, 0)
        facts.setHorizontalSpacing(14)
        facts.setVerticalSpacing(5)
        facts.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.fact_values: dict[str, QLabel] = {}
        for key in (
            "Architecture",
            "Parameters",
            "Layers",
            "Attention",
            "Trained context",
            "Quantization",
            "File size",
            "Chat template",
        ):
            value = _label("", "factValue", selectable=True)
            self.fact_values[key] = value
            facts.addRow(_label(key, "factName"), value)
        facts_box = QWidget()
        facts_box.setLayout(facts)
        facts_box.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)
        self.facts_box = facts_box
        body.addWidget(facts_box, 0, Qt.AlignmentFlag.AlignTop)
        self.memory_box = QWidget()
        self.memory_box.setLayout(self._build_memory_section())
        body.addWidget(self.memory_box, 1)
        outer.addLayout(body)
        outer.addStretch(1)
        return view

    def _build_memory_section(self) -> QVBoxLayout:
        col = QVBoxLayout()
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(8)
        top = QHBoxLayout()
        top.addWidget(_label("Memory", "sectionTitle"))
        top.addStretch(1)
        self.verdict_label = _label("", "verdict")
        top.addWidget(self.verdict_label)
        col.addLayout(top)
        self.bar = MemoryBar()
        col.addWidget(self.bar)

        legend = QGridLayout()
        legend.setHorizontalSpacing(8)
        legend.setVerticalSpacing(3)
        self.swatches: list[QLabel] = []
        self.part_values: list[QLabel] = []
        for row, name in enumerate(SEGMENT_NAMES):
            swatch = QLabel()
            swatch.setFixedSize(11, 11)
            self.swatches.append(swatch)
            value = _label("", "number")
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.part_values.append(value)
            legend.addWidget(swatch, row, 0)
            legend.addWidget(QLabel(name), row, 1)
            legend.addWidget(value, row, 2)
        self.weights_value, self.kv_value, self.other_value = self.part_values
        self.total_value = _label("", "number")
        self.total_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        legend.addWidget(_label("Total", "strong"), 3, 1)
        legend.addWidget(self.total_value, 3, 2)
        self.budget_label = _label("", "muted")
        self.budget_label.setWordWrap(True)
        legend.addWidget(self.budget_label, 4, 1, 1, 3)
        legend.setColumnStretch(3, 1)
        col.addLayout(legend)

        controls = QGridLayout()
        controls.setHorizontalSpacing(10)
        controls.setVerticalSpacing(6)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setMinimum(1)
        self.slider.setSingleStep(1)
        self.slider.setAccessibleName("Context length")
        self.slider.valueChanged.connect(self._on_slider)
        self.ctx_label = _label("", "number")
        self.ctx_label.setMinimumWidth(110)
        self.kv_combo = QComboBox()
        for kv in KV_TYPES:
            self.kv_combo.addItem(KV_TYPE_LABELS[kv], kv)
        self.kv_combo.currentIndexChanged.connect(self._on_kv_type)
        controls.addWidget(QLabel("Context length"), 0, 0)
        controls.addWidget(self.slider, 0, 1)
        controls.addWidget(self.ctx_label, 0, 2)
        controls.addWidget(QLabel("KV cache"), 1, 0)
        controls.addWidget(self.kv_combo, 1, 1, Qt.AlignmentFlag.AlignLeft)
        controls.setColumnStretch(1, 1)
        col.addLayout(controls)
        self.max_ctx_label = _label("", "strong")
        col.addWidget(self.max_ctx_label)
        return col

    # --- layout --------------------------------------------------------------------------------
    def minimumSizeHint(self) -> QSize:
        """As narrow as the facts above the memory section need (the scroll area sizes the panel down to it)."""
        hint = super().minimumSizeHint()
        stacked = max(self.facts_box.minimumSizeHint().width(), self.memory_box.minimumSizeHint().width()) + 40
        return QSize(stacked, hint.height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._reflow()

    def _reflow(self) -> None:
        """The facts beside the memory section when both fit the panel's width, above it when not (a narrow
        window), so the panel never needs sideways scrolling."""
        margins, gap = 40, 28  # the facts view's left and right margins; the gap between the two columns
        needed = self.facts_box.sizeHint().width() + gap + self.memory_box.minimumSizeHint().width() + margins
        beside = self.width() >= needed
        wanted = QBoxLayout.Direction.LeftToRight if beside else QBoxLayout.Direction.TopToBottom
        if self.body.direction() != wanted:
            self.body.setDirection(wanted)
            self.body.setStretch(1, 1 if beside else 0)
            self.body.setSpacing(gap if beside else 14)

    # --- showing -------------------------------------------------------------------------------
    @property
    def entry(self) -> LibraryEntry | None:
        return self._entry

    @property
    def ctx(self) -> int:
        return self._runtime.n_ctx if self._runtime else 0

    def show_placeholder(self, text: str) -> None:
        self._entry = self._runtime = self.estimate = None
        self.placeholder.setText(text)
        self._stack.setCurrentIndex(0)

    def show_entry(self, entry: LibraryEntry, runtime: RuntimeSettings | None, budget: int | None) -> None:
        """Show ``entry``: its facts and the estimate for ``runtime``, or the reason it is unusable."""
        self._entry, self._budget = entry, budget
        if entry.facts is None or runtime is None:
            self._runtime = self.estimate = None
            self.error_title.setText(entry.name)
            self.error_reason.setText(f"This file cannot be used: {entry.error or 'no model facts'}")
            self.error_path.setText(entry.path)
            self._stack.setCurrentIndex(1)
            return
        f = entry.facts
        self.title.setText(entry.name)
        self.kind_badge.setText({"instruct": "Instruct", "base": "Base"}.get(f.kind, "Kind unknown"))
        self.kind_badge.setToolTip(f.kind_reason)
        self.path_label.setText(entry.path)
        self.path_label.setToolTip(f"{entry.path}\nid {entry.id} (for `macapp run` and the server)")
        heads = f"{f.n_head} heads, {f.n_head_kv} KV, {f.head_dim}-d" if f.n_head else "none"
        values = {
            "Architecture": f.architecture,
            "Parameters": f"{format_params(f.parameters)} ({format_count(f.parameters)})",
            "Layers": str(f.n_layer),
            "Attention": heads,
            "Trained context": f"{format_count(f.context_length)} tokens",
            "Quantization": f.quantization,
            "File size": format_bytes(f.file_size),
            "Chat template": "Yes" if f.has_chat_template else "No",
        }
        for key, text in values.items():
            self.fact_values[key].setText(text)
        self._runtime = runtime
        self.slider.blockSignals(True)
        self.slider.setMaximum(max(1, -(-f.context_length // CTX_STEP)))
        self.slider.setPageStep(max(1, self.slider.maximum() // 8))
        self.slider.setValue(max(1, -(-runtime.n_ctx // CTX_STEP)))
        self.slider.blockSignals(False)
        self.kv_combo.blockSignals(True)
        self.kv_combo.setCurrentIndex(max(0, self.kv_combo.findData(runtime.kv_type)))
        self.kv_combo.blockSignals(False)
        self._stack.setCurrentIndex(2)
        self._refresh(emit=False)

    def set_budget(self, budget: int | None, runtime: RuntimeSettings | None) -> None:
        """The hardware probe finished: re-estimate the shown model against the budget."""
        self._budget = budget
        if self._entry is not None and self._entry.facts is not None and runtime is not None:
            self._runtime = runtime
            self._refresh(emit=False)

    def set_ctx(self, n_ctx: int) -> None:
        """Move the context slider (in steps of 256 tokens) as a user would."""
        self.slider.setValue(max(1, -(-n_ctx // CTX_STEP)))

    # --- reacting ------------------------------------------------------------------------------
    def _on_slider(self, value: int) -> None:
        if self._runtime is None or self._entry is None or self._entry.facts is None:
            return
        n_ctx = min(value * CTX_STEP, self._entry.facts.context_length)
        self._runtime = replace(self._runtime, n_ctx=n_ctx)
        self._refresh()

    def _on_kv_type(self, index: int) -> None:
        if self._runtime is None:
            return
        self._runtime = replace(self._runtime, kv_type=self.kv_combo.itemData(index))
        self._refresh()

    def _refresh(self, emit: bool = True) -> None:
        from macapp.core.models.estimate import estimate_memory

        assert self._entry is not None and self._entry.facts is not None and self._runtime is not None
        est = estimate_memory(self._entry.facts, self._runtime, self._budget)
        self.estimate = est
        self.ctx_label.setText(f"{format_count(self._runtime.n_ctx)} tokens")
        self.bar.set_estimate(est)
        colors = self.bar.segment_colors()
        for swatch, value, part, color in zip(self.swatches, self.part_values, self.bar.parts, colors):
            swatch.setStyleSheet(f"background: {color.name()}; border-radius: 2px;")
            value.setText(format_bytes(part))
        self.total_value.setText(format_bytes(est.total_bytes))
        color = verdict_color(est.verdict).name()
        if est.budget_bytes:
            share = format_percent(est.gpu_bytes / est.budget_bytes)
            where = "GPU memory" if est.backend == "metal" else "memory"
            self.budget_label.setText(f"{share} of the {format_bytes(est.budget_bytes)} {where} budget")
            self.verdict_label.setText(VERDICT_WORDS[est.verdict])
            self.verdict_label.setStyleSheet(f"color: {color};")
            if est.max_ctx_that_fits:
                self.max_ctx_label.setText(f"Largest context that fits: {format_count(est.max_ctx_that_fits)} tokens")
            else:
                self.max_ctx_label.setText("Largest context that fits: none (even 256 tokens exceed the budget)")
        else:
            self.budget_label.setText(f"Measuring {machine_noun()}'s memory…")
            self.verdict_label.setText("")
            self.max_ctx_label.setText("Largest context that fits: …")
        if emit:
            self.runtimeChanged.emit(self._entry.id, self._runtime, est)
