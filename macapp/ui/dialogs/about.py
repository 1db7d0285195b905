"""About Orchard: the version, the back ends it runs on, where its data and logs are, its licence."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QGridLayout, QPushButton, QVBoxLayout, QWidget

from macapp.ui.widgets.labels import make_label as _label

LICENCE = "Apache-2.0"


class AboutDialog(QDialog):
    """Version, backend versions (from package metadata, nothing imported), folders, licence."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        import macapp
        from macapp.core import hardware, paths

        self.setObjectName("aboutDialog")
        self.setWindowTitle("About Orchard")
        self.setMinimumWidth(460)
        self.version = macapp.__version__
        root = QVBoxLayout(self)
        root.setContentsMargins(26, 22, 26, 14)
        root.setSpacing(6)
        root.addWidget(_label("Orchard", "aboutTitle"))
        self.version_label = _label(f"Version {self.version}", "aboutVersion", selectable=True)
        root.addWidget(self.version_label)
        lead = _label(
            "Local language models on Apple Silicon: pick one that fits, chat with your PDFs, tune it to your data.",
            "muted",
        )
        lead.setWordWrap(True)
        root.addWidget(lead)
        root.addSpacing(10)

        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(3)
        self.rows: dict[str, str] = {}

        def row(name: str, value: str, folder: bool = False) -> None:
            r = grid.rowCount()
            align = Qt.AlignmentFlag.AlignVCenter if folder else Qt.AlignmentFlag.AlignTop
            grid.addWidget(_label(name, "factName"), r, 0, align)
            value_label = _label(value, None, selectable=True)
            value_label.setWordWrap(True)
            grid.addWidget(value_label, r, 1)
            if folder:  # Show opens it in Finder
                show = QPushButton("Show")
                show.setObjectName("flat")
                show.setToolTip(f"Open {value}")
                show.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(value)))
                grid.addWidget(show, r, 2)
            self.rows[name] = value

        for name, version in hardware.backend_versions().items():
            row(name, version or "not installed")
        for name, path in (("Data folder", paths.data_dir()), ("Logs folder", paths.logs_dir())):
            row(name, str(path), folder=True)
        row("Licence", LICENCE)
        grid.setColumnStretch(1, 1)
        root.addLayout(grid)
        root.addSpacing(8)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        root.addWidget(buttons)
