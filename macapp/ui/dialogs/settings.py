"""The Settings dialog (Orchard > Settings…, ⌘,): where the library looks for models and the defaults
every new model starts from.

It edits the ``Settings`` fields a person changes by hand; Save writes them with ``update_settings``
(so nothing another part of the app saved meanwhile is lost) and emits ``saved`` with the names of
the fields that changed; the window then rescans the library. Remote servers live in the sidebar's
server panel and the embedding model on the Documents page, next to what they affect.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from macapp.core.hardware import machine_noun
from macapp.core.settings import Settings, update_settings
from macapp.ui.widgets.choices import KV_TYPE_LABELS, KV_TYPES

EDITED_FIELDS = ("model_dirs", "model_files", "include_lm_studio", "default_ctx", "kv_type", "cpu_threads")
CONTEXT_CHOICES = (2048, 4096, 8192, 16384, 32768, 65536, 131072)


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("settingsNote")
    label.setWordWrap(True)
    return label


class _PathList(QWidget):
    """A list of paths with Add… (optional) and Remove buttons beside it."""

    def __init__(self, paths: list[str], add_text: str = "", on_add=None):
        super().__init__()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setObjectName("settingsList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setFixedHeight(96)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long path keeps both ends; the tooltip has it all
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for path in paths:
            self.add(path)
        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        column = QWidget()  # the same width in every list, so the lists line up
        column.setLayout(buttons)
        column.setFixedWidth(self.fontMetrics().horizontalAdvance("Add folder…") + 44)
        buttons.setContentsMargins(0, 0, 0, 0)
        if add_text:
            self.add_button = QPushButton(add_text)
            self.add_button.clicked.connect(on_add)
            buttons.addWidget(self.add_button)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.remove_button.setEnabled(False)
        self.list.itemSelectionChanged.connect(lambda: self.remove_button.setEnabled(bool(self.list.selectedItems())))
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        lay.addWidget(self.list, 1)
        lay.addWidget(column)

    def paths(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def add(self, path: str) -> None:
        if path not in self.paths():
            item = QListWidgetItem(path)
            item.setToolTip(path)
            self.list.addItem(item)

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))


class SettingsDialog(QDialog):
    """Model folders, LM Studio, and the default context and KV cache type; Save writes them."""

    saved = Signal(object, object)  # the Settings as saved, the set of field names that changed

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self._loaded = settings
        from macapp.core import paths

        root = QVBoxLayout(self)
        root.setContentsMargins(22, 18, 22, 14)
        root.setSpacing(10)
        root.addWidget(self._title("Models"))
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        form.setHorizontalSpacing(14)
        form.setVerticalSpacing(8)
        self.folders = _PathList(settings.model_dirs, "Add folder…", self._choose_folder)
        form.addRow("Model folders", self.folders)
        form.addRow(
            "",
            _note(
                "Orchard scans these folders and their subfolders for .gguf files. Downloads "
                "go to the Hugging Face cache, which is always scanned."
            ),
        )
        self.files = _PathList(settings.model_files)
        form.addRow("Added files", self.files)
        form.addRow("", _note("Single .gguf files added with Add model… or by dropping them on the Models page."))
        lm_studio = paths.lm_studio_models_dir()
        self.lm_studio_box = QCheckBox("Include LM Studio's models")
        self.lm_studio_box.setChecked(settings.include_lm_studio)
        form.addRow("", self.lm_studio_box)
        form.addRow(
            "",
            _note(
                f"Found at {lm_studio}"
                if lm_studio
                else f"LM Studio's models folder was not found on {machine_noun()}."
            ),
        )
        root.addLayout(form)

        root.addWidget(self._title("Defaults for each model"))
        form2 = QFormLayout()
        form2.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form2.setHorizontalSpacing(14)
        self.ctx_box = QComboBox()
        contexts = sorted({*CONTEXT_CHOICES, settings.default_ctx})
        for n in contexts:
            self.ctx_box.addItem(f"{n:,} tokens" + (f" ({n // 1024}k)" if n % 1024 == 0 else ""), n)
        self.ctx_box.setCurrentIndex(contexts.index(settings.default_ctx))
        form2.addRow("Context length", self.ctx_box)
        self.kv_box = QComboBox()
        for kv in KV_TYPES:
            self.kv_box.addItem(KV_TYPE_LABELS[kv], kv)
        kv_index = self.kv_box.findData(settings.kv_type)
        self.kv_box.setCurrentIndex(max(0, kv_index))
        form2.addRow("KV cache", self.kv_box)
        self.threads_box = QSpinBox()
        self.threads_box.setRange(0, 256)
        self.threads_box.setSpecialValueText("automatic")
        self.threads_box.setValue(max(0, settings.cpu_threads))
        self.threads_box.setToolTip(
            "llama.cpp's threads when a model runs on the CPU; automatic is one per physical core "
            "(the window leaves one to itself). The server and the command line use it too."
        )
        form2.addRow("CPU threads", self.threads_box)
        form2.addRow(
            "",
            _note(
                "Memory estimates and new chats start from these; a model's own context is used "
                "when it is shorter. Each model's details can still change them."
            ),
        )
        root.addLayout(form2)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        root.addSpacing(4)
        root.addWidget(self.buttons)
        # Its whole height: a first show caps a window at 2/3 of the screen's, which cut the lists' bottoms.
        self.resize(self.sizeHint().expandedTo(self.minimumSize()))

    @staticmethod
    def _title(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("sectionTitle")
        return label

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of models", str(Path.home()))
        if folder:
            self.folders.add(folder)

    def values(self) -> dict[str, object]:
        """The edited fields as the dialog shows them now."""
        return {
            "model_dirs": self.folders.paths(),
            "model_files": self.files.paths(),
            "include_lm_studio": self.lm_studio_box.isChecked(),
            "default_ctx": int(self.ctx_box.currentData()),
            "kv_type": str(self.kv_box.currentData()),
            "cpu_threads": self.threads_box.value(),
        }

    def save(self) -> Settings:
        """Write the edited fields (leaving the rest of the file alone), emit ``saved``, close."""
        values = self.values()
        changed = {name for name, value in values.items() if getattr(self._loaded, name) != value}

        def apply(s: Settings) -> None:
            for name in changed:
                setattr(s, name, values[name])

        saved = update_settings(apply)
        self.saved.emit(saved, changed)
        self.accept()
        return saved
