"""The Chat page's settings drawer: the conversation's tools (``agent_tools.ToolsPanel``), sampling (a
preset or each value), the system prompt, and how the next model load runs (context length, KV cache
type) with its memory verdict.

Sampling and the system prompt belong to the conversation: the drawer says ``changed`` and the
page saves them. The load options apply to the next Load and re-estimate the picked model live.
"""

from __future__ import annotations

from dataclasses import fields

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from macapp.core.engines.base import PRESETS, SamplingSettings
from macapp.ui.chat.agent_tools import ToolsPanel
from macapp.ui.widgets.choices import CTX_STEP, KV_TYPE_LABELS, KV_TYPES

CUSTOM = "custom"
# field name: (label, minimum, maximum, step, decimals); decimals None = an integer spin box
NUMBERS = {
    "temperature": ("Temperature", 0.0, 2.0, 0.05, 2),
    "top_p": ("Top-p", 0.0, 1.0, 0.01, 2),
    "top_k": ("Top-k", 0, 1000, 1, None),
    "min_p": ("Min-p", 0.0, 1.0, 0.01, 2),
    "repeat_penalty": ("Repeat penalty", 0.5, 2.0, 0.05, 2),
    "max_tokens": ("Max tokens", 0, 131072, 64, None),
}
HELP = {f.name: f.metadata.get("help", "") for f in fields(SamplingSettings)}


def _title(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("sectionTitle")
    return label


class SettingsDrawer(QFrame):
    """Sampling, system prompt and load options; hidden until the gear button opens it."""

    changed = Signal()  # sampling or system prompt edited by the user
    loadOptionsChanged = Signal()  # context length or KV type

    def __init__(self, n_ctx: int = 8192, kv_type: str = "f16", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("settingsDrawer")
        self.setMinimumWidth(250)
        self.setMaximumWidth(330)  # the widest form row and a scroll bar
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setObjectName("drawerScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(scroll)
        body = QWidget()
        body.setObjectName("drawerBody")
        scroll.setWidget(body)
        lay = QVBoxLayout(body)
        lay.setContentsMargins(16, 14, 16, 14)
        lay.setSpacing(8)

        lay.addWidget(_title("Tools"))
        self.tools = ToolsPanel()
        lay.addWidget(self.tools)

        lay.addSpacing(6)
        lay.addWidget(_title("Answers"))
        form = QFormLayout()
        form.setVerticalSpacing(6)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow drawer puts a field under its label
        self.preset = QComboBox()
        for name in PRESETS:
            self.preset.addItem(name.capitalize(), name)
        self.preset.addItem("Custom", CUSTOM)
        self.preset.setToolTip("A ready-made set of the values below")
        self.preset.currentIndexChanged.connect(self._on_preset)
        form.addRow("Preset", self.preset)
        self.numbers: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for name, (label, low, high, step, decimals) in NUMBERS.items():
            box = QSpinBox() if decimals is None else QDoubleSpinBox()
            if decimals is not None:
                box.setDecimals(decimals)
            box.setRange(low, high)
            box.setSingleStep(step)
            box.setToolTip(HELP.get(name, "").capitalize())
            box.valueChanged.connect(self._on_value)
            self.numbers[name] = box
            form.addRow(label, box)
        # 0 reads "no limit" (short, so the row fits beside its label like the others); the tooltip says what it means.
        self.numbers["max_tokens"].setSpecialValueText("no limit")
        self.seed = QLineEdit()
        self.seed.setPlaceholderText("random")
        self.seed.setValidator(QIntValidator(0, 2**31 - 1, self.seed))
        self.seed.setToolTip("A fixed seed gives the same answer again; blank draws a new one each time")
        self.seed.textChanged.connect(self._on_value)
        form.addRow("Seed", self.seed)
        lay.addLayout(form)

        lay.addSpacing(6)
        lay.addWidget(_title("Adapter"))
        self.adapter_box = QComboBox()
        self.adapter_box.setObjectName("adapterPicker")
        self.adapter_box.setToolTip("A LoRA adapter you tuned, applied over the loaded model for this conversation")
        self.adapter_box.addItem("None (the model as it is)", None)
        self.adapter_box.currentIndexChanged.connect(self.changed)
        lay.addWidget(self.adapter_box)

        lay.addSpacing(6)
        lay.addWidget(_title("System prompt"))
        self.system = QPlainTextEdit()
        self.system.setObjectName("systemPrompt")
        self.system.setPlaceholderText("How the model should behave in this conversation")
        self.system.setFixedHeight(110)
        self.system.textChanged.connect(self.changed)
        lay.addWidget(self.system)
        note = QLabel("Kept with this conversation; always sent, even when old turns no longer fit.")
        note.setObjectName("muted")
        note.setWordWrap(True)
        lay.addWidget(note)

        lay.addSpacing(6)
        lay.addWidget(_title("Next load"))
        load_form = QFormLayout()
        load_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.ctx = QSpinBox()
        self.ctx.setRange(CTX_STEP, max(CTX_STEP, n_ctx))
        self.ctx.setSingleStep(CTX_STEP)
        self.ctx.setSuffix(" tokens")
        self.ctx.setGroupSeparatorShown(True)
        self.ctx.setValue(n_ctx)
        self.ctx.setToolTip("How much conversation the model can see; more context needs more memory")
        self._wanted_ctx = n_ctx
        self.ctx.valueChanged.connect(self._on_ctx)
        self.kv = QComboBox()
        for kv in KV_TYPES:
            self.kv.addItem(KV_TYPE_LABELS[kv], kv)
        self.kv.setCurrentIndex(max(0, self.kv.findData(kv_type)))
        self.kv.currentIndexChanged.connect(self.loadOptionsChanged)
        load_form.addRow("Context", self.ctx)
        load_form.addRow("KV cache", self.kv)
        lay.addLayout(load_form)
        self.verdict = QLabel("")
        self.verdict.setObjectName("drawerVerdict")
        self.verdict.setWordWrap(True)
        lay.addWidget(self.verdict)
        lay.addStretch(1)
        self.set_sampling(SamplingSettings())

    # --- sampling ------------------------------------------------------------------------------
    def sampling(self) -> SamplingSettings:
        values = {name: box.value() for name, box in self.numbers.items()}
        values["top_k"], values["max_tokens"] = int(values["top_k"]), int(values["max_tokens"])
        seed = self.seed.text().strip()
        return SamplingSettings(**values, seed=int(seed) if seed else None, stop=self._stop)

    def adapter(self) -> str | None:
        """The adapter chosen for this conversation (a registry name), or None."""
        return self.adapter_box.currentData()

    def set_adapters(self, names: list[str], current: str | None = None) -> None:
        """Offer ``names`` and select ``current`` (kept in the list even if it has been deleted since)."""
        self.adapter_box.blockSignals(True)
        self.adapter_box.clear()
        self.adapter_box.addItem("None (the model as it is)", None)
        for name in sorted(set(names) | ({current} if current else set())):
            self.adapter_box.addItem(name, name)
        self.adapter_box.setCurrentIndex(max(0, self.adapter_box.findData(current)) if current else 0)
        self.adapter_box.blockSignals(False)

    def system_prompt(self) -> str:
        return self.system.toPlainText()

    def set_sampling(self, sampling: SamplingSettings) -> None:
        """Show ``sampling`` without emitting ``changed``."""
        self._stop = sampling.stop
        for name, box in self.numbers.items():
            box.blockSignals(True)
            box.setValue(getattr(sampling, name))
            box.blockSignals(False)
        self.seed.blockSignals(True)
        self.seed.setText("" if sampling.seed is None else str(sampling.seed))
        self.seed.blockSignals(False)
        self._show_preset(sampling)

    def set_conversation(self, sampling: SamplingSettings, system_prompt: str) -> None:
        """Show a conversation's settings without emitting ``changed``."""
        self.set_sampling(sampling)
        self.system.blockSignals(True)
        self.system.setPlainText(system_prompt)
        self.system.blockSignals(False)

    def _show_preset(self, sampling: SamplingSettings) -> None:
        name = next((n for n, p in PRESETS.items() if p == sampling.with_changes(stop=())), CUSTOM)
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(self.preset.findData(name))
        self.preset.blockSignals(False)

    def _on_preset(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name in PRESETS:
            self.set_sampling(PRESETS[name].with_changes(stop=self._stop))
            self.changed.emit()

    def _on_value(self, *_args) -> None:
        self._show_preset(self.sampling())
        self.changed.emit()

    # --- load options --------------------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self.ctx.value()

    @property
    def wanted_ctx(self) -> int:
        """The context length asked for, before the picked model's limit."""
        return self._wanted_ctx

    @property
    def kv_type(self) -> str:
        return self.kv.currentData()

    def _on_ctx(self, value: int) -> None:
        self._wanted_ctx = value
        self.loadOptionsChanged.emit()

    def set_ctx_limit(self, trained_ctx: int) -> None:
        """The picked model's trained context is the most the spin box offers (the wish is kept for
        a model that can take more)."""
        self.ctx.blockSignals(True)
        self.ctx.setMaximum(max(CTX_STEP, trained_ctx))
        self.ctx.setValue(min(self._wanted_ctx, self.ctx.maximum()))
        self.ctx.blockSignals(False)

    def set_verdict(self, text: str, color: str | None = None) -> None:
        self.verdict.setText(text)
        self.verdict.setStyleSheet(f"color: {color};" if color else "")
