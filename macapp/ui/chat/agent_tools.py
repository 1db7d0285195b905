"""The Tools section of the Chat page's settings drawer: whether this chat's model may use tools, and what.

Everything here is one conversation's ``Grants``: the Tools switch, the built-in tools, the folders
file tools may use (chips with a remove button), whether commands may run (off unless switched on,
with a warning), and the MCP servers of ``mcp.json`` whose tools the model gets (a bad entry is
shown with its problem and can't be picked). The page saves the grants with the conversation when
``changed`` fires; the "always" approvals given in the chat ride along unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from macapp.core.agent.builtin import BUILTIN_NAMES
from macapp.core.agent.guard import Grants
from macapp.core.errors import UserError
from macapp.ui.chat.agent_jobs import granted_builtins

TOOL_LABELS = {
    "search_documents": "Search this chat's documents",
    "read_file": "Read files",
    "list_folder": "List folders",
    "write_file": "Write files (asks first)",
    "current_time": "Date and time",
}
TOOL_TIPS = {"search_documents": "search_documents: offered once this chat has documents (drop PDFs on it)"}
SHELL_WARNING = "⚠ A command runs with your rights and can reach more than these folders; each one asks first."
EMPTY_FOLDERS = "No folder yet: file tools can't be used."


def _muted(text: str, name: str = "muted") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    return label


class FolderChip(QFrame):
    """A granted folder: its name (the full path in the tooltip) and ✕ to take it back."""

    removed = Signal(str)

    def __init__(self, folder: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("folderChip")
        self.folder = folder
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 2, 2, 2)
        row.setSpacing(2)
        self.label = QLabel()
        self.label.setToolTip(folder)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # elided, never widens
        self.remove_button = QToolButton()
        self.remove_button.setObjectName("chipRemove")
        self.remove_button.setText("✕")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip(f"Take back {folder}")
        self.remove_button.clicked.connect(lambda: self.removed.emit(self.folder))
        row.addWidget(self.label, 1)
        row.addWidget(self.remove_button)
        self._text = folder_text(folder)
        self.label.setText(self._text)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        metrics = self.label.fontMetrics()
        self.label.setText(metrics.elidedText(self._text, Qt.TextElideMode.ElideMiddle, max(20, self.label.width())))


def folder_text(folder: str) -> str:
    """``bee-notes — ~/Projects``: the folder's name first, then where it is (the home folder as ~)."""
    path = Path(folder)
    if not path.name:
        return folder
    parent = str(path.parent)
    home = str(Path.home())
    if parent == home or parent.startswith(home + "/"):
        parent = "~" + parent[len(home) :]
    return f"{path.name} — {parent}"


class ToolsPanel(QWidget):
    """One conversation's grants; ``changed`` when the user edits them."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("toolsPanel")
        self._grants = Grants()
        self._folders: list[str] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        self.switch = QCheckBox("Let the model use tools in this chat")
        self.switch.setObjectName("toolsSwitch")
        self.switch.setToolTip(
            "Messages go to an agent that can call the tools granted below, and asks before anything writes or runs"
        )
        self.switch.toggled.connect(self._edited)
        lay.addWidget(self.switch)

        self.tool_boxes: dict[str, QCheckBox] = {}
        for name in BUILTIN_NAMES:
            if name == "run_command":
                continue
            box = QCheckBox(TOOL_LABELS.get(name, name))
            box.setToolTip(TOOL_TIPS.get(name, name))
            box.toggled.connect(self._edited)
            self.tool_boxes[name] = box
            lay.addWidget(box)

        lay.addWidget(_muted("Folders", "drawerSubtitle"))
        self._chips = QVBoxLayout()
        self._chips.setSpacing(4)
        lay.addLayout(self._chips)
        self.no_folders = _muted(EMPTY_FOLDERS)
        lay.addWidget(self.no_folders)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip(
            "File tools work only inside the folders granted here; the first is where relative paths start"
        )
        self.add_folder_button.clicked.connect(self.pick_folder)
        lay.addWidget(self.add_folder_button, 0, Qt.AlignmentFlag.AlignLeft)

        self.shell_box = QCheckBox("Run commands (run_command)")
        self.shell_box.setObjectName("shellSwitch")
        self.shell_box.toggled.connect(self._edited)
        lay.addWidget(self.shell_box)
        self.shell_warning = _muted(SHELL_WARNING, "shellWarning")
        lay.addWidget(self.shell_warning)

        self.require_box = QCheckBox("Start with a tool call")
        self.require_box.setObjectName("requireTool")
        self.require_box.setToolTip(
            "The model's first step must call a tool; small models otherwise answer without looking"
        )
        self.require_box.toggled.connect(self._edited)
        lay.addWidget(self.require_box)

        # "Always for this tool in this chat" answers, shown so they can be taken back.
        self.always_row = QWidget()
        always = QHBoxLayout(self.always_row)
        always.setContentsMargins(0, 0, 0, 0)
        self.always_label = _muted("")
        always.addWidget(self.always_label, 1)
        self.ask_again_button = QPushButton("Ask again")
        self.ask_again_button.setToolTip("Forget the 'Always' answers given in this chat: these tools ask first again")
        self.ask_again_button.clicked.connect(self.forget_always)
        always.addWidget(self.ask_again_button, 0, Qt.AlignmentFlag.AlignTop)
        lay.addWidget(self.always_row)

        lay.addWidget(_muted("MCP servers", "drawerSubtitle"))
        self._servers_box = QVBoxLayout()
        self._servers_box.setSpacing(4)
        lay.addLayout(self._servers_box)
        self.server_boxes: dict[str, QCheckBox] = {}
        self.server_notes: list[QLabel] = []
        self.problems = _muted("", "toolsProblems")
        self.problems.hide()
        lay.addWidget(self.problems)
        self.set_grants(Grants())

    # --- the grants ----------------------------------------------------------------------------
    def grants(self) -> Grants:
        """What the panel shows, with the chat's "always" approvals kept."""
        picked_mcp = tuple(t for t in self._grants.tools if "__" in t)  # SERVER__TOOL picks (`macapp agent --tool`)
        tools = tuple(n for n, box in self.tool_boxes.items() if box.isChecked()) + picked_mcp
        servers = tuple(n for n, box in self.server_boxes.items() if box.isChecked())
        return Grants(
            tools=tools,
            folders=tuple(self._folders),
            shell=self.shell_box.isChecked(),
            always=set(self._grants.always),
            preapprove_reads=self._grants.preapprove_reads,
            servers=servers,
            enabled=self.switch.isChecked(),
            require_tool=self.require_box.isChecked(),
        )

    def set_grants(self, grants: Grants) -> None:
        """Show ``grants`` (a conversation opened) without emitting ``changed``."""
        self._grants = grants
        shown = granted_builtins(grants)
        widgets = [self.switch, self.shell_box, self.require_box, *self.tool_boxes.values()]
        for widget in widgets:
            widget.blockSignals(True)
        self.switch.setChecked(grants.enabled)
        self.shell_box.setChecked(grants.shell)
        self.require_box.setChecked(grants.require_tool)
        for name, box in self.tool_boxes.items():
            box.setChecked(name in shown)
        for widget in widgets:
            widget.blockSignals(False)
        self._folders = list(grants.folders)
        self._show_folders()
        self.load_servers(grants.servers)
        self._update()
        self.set_problems([])

    @property
    def enabled(self) -> bool:
        return self.switch.isChecked()

    def set_enabled(self, on: bool) -> None:
        """The Tools switch, flipped from elsewhere (the composer's button); emits ``changed``."""
        self.switch.setChecked(on)

    def set_problems(self, lines: list[str] | tuple[str, ...]) -> None:
        """What the last run could not use (a server that did not start, a tool without its folder)."""
        self.problems.setText("\n".join(lines))
        self.problems.setVisible(bool(lines))

    # --- folders -------------------------------------------------------------------------------
    def pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Grant a folder to this chat's tools", str(Path.home()))
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        path = str(Path(folder).expanduser().resolve())
        if path not in self._folders:
            self._folders.append(path)
            self._show_folders()
            self._edited()

    def remove_folder(self, folder: str) -> None:
        if folder in self._folders:
            self._folders.remove(folder)
            self._show_folders()
            self._edited()

    def folder_chips(self) -> list[FolderChip]:
        return [self._chips.itemAt(i).widget() for i in range(self._chips.count())]

    def _show_folders(self) -> None:
        for chip in self.folder_chips():
            self._chips.removeWidget(chip)
            chip.hide()
            chip.deleteLater()
        for folder in self._folders:
            chip = FolderChip(folder)
            chip.removed.connect(self.remove_folder)
            self._chips.addWidget(chip)
        self.no_folders.setVisible(not self._folders)

    # --- MCP servers ---------------------------------------------------------------------------
    def load_servers(self, granted: tuple[str, ...] = ()) -> None:
        """List the servers of ``mcp.json`` (read again: it may have changed), ``granted`` ones checked."""
        from macapp.core.agent.mcp_config import load_mcp_config

        for widget in [*self.server_boxes.values(), *self.server_notes]:
            self._servers_box.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        self.server_boxes, self.server_notes = {}, []
        try:
            config = load_mcp_config()
            servers, problems = list(config.servers), list(config.problems)
        except UserError as exc:  # mcp.json is not JSON: say so, the rest of the panel still works
            servers, problems = [], []
            self._note(exc.message)
        for server in servers:
            box = QCheckBox(server.name)
            box.setToolTip(f"{server.transport}: {server.describe()}")
            box.setChecked(server.name in granted)
            box.toggled.connect(self._edited)
            self.server_boxes[server.name] = box
            self._servers_box.addWidget(box)
        for problem in problems:
            self._note(problem.message)
        known = {s.name for s in servers} | {p.server for p in problems}
        for name in granted:
            if name not in known:
                self._note(f"{name!r} is no longer in mcp.json, so its tools are not offered")
        if not servers and not problems:
            self._note("None in mcp.json yet; add one with: macapp mcp add NAME -- COMMAND")

    def _note(self, text: str) -> None:
        label = _muted(text, "toolsProblems" if "mcp add" not in text else "muted")
        self.server_notes.append(label)
        self._servers_box.addWidget(label)

    # --- edits ---------------------------------------------------------------------------------
    def _update(self) -> None:
        """At least one built-in tool stays on (none listed would mean all); the warning shows with the shell."""
        checked = [b for b in self.tool_boxes.values() if b.isChecked()]
        for box in self.tool_boxes.values():
            box.setEnabled(not (len(checked) == 1 and box is checked[0]))
        self.shell_warning.setVisible(self.shell_box.isChecked())
        allowed = sorted(self._grants.always)
        self.always_label.setText("Allowed without asking in this chat: " + ", ".join(allowed))
        self.always_row.setVisible(bool(allowed))

    def forget_always(self) -> None:
        """Take back every "Always" answer of this chat: those tools ask before each use again."""
        self._grants = replace(self._grants, always=set())
        self._edited()

    def _edited(self, *_args) -> None:
        self._update()
        self._grants = self.grants()
        self.changed.emit()
