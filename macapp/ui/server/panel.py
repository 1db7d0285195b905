"""The sidebar's server panel: serve this Mac's models to other apps, and the remote servers Orchard can use.

``ServerPanel`` switches the OpenAI-compatible server (``core.server.launch.start_server``) on and off;
starting and stopping run in ``Worker``s, so the GUI never waits for uvicorn. From the window it listens on
loopback only, so no API key is needed (``macapp serve --host … --api-key …`` is for the rest). When on, it
shows the URL to paste into other apps, with Copy. The window stops it on close (``shutdown``).

``RemoteServersDialog`` edits ``Settings.remote_endpoints`` (name, URL, key) through
``core.engines.remote_endpoints``, as ``macapp remotes`` does (a key goes into the system keychain; where there is
none, adding a key says so and a notice tells that older keys are still in settings.json); Test lists an endpoint's
models in a worker.
``endpointsChanged`` tells the Chat page to list the remote models again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from macapp.core.hardware import machine_noun
from macapp.core.server import DEFAULT_PORT
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.core.server.launch import RunningServer
    from macapp.core.settings import Settings

log = logging.getLogger(__name__)
HOST = "127.0.0.1"  # the window serves on loopback only: no key needed


def start_loopback_server(port: int) -> RunningServer:
    from macapp.core.server.launch import ServerOptions, start_server

    return start_server(ServerOptions(host=HOST, port=port))


def stop_server(server: RunningServer) -> None:
    server.stop()


class ServerPanel(QWidget):
    """A switch for the local server, its URL with Copy, and the Remote servers… dialog."""

    stateChanged = Signal(str)  # the URL once serving, "" once stopped
    endpointsChanged = Signal()  # the remote servers were edited

    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        from macapp.core.settings import Settings

        self.setObjectName("serverPanel")
        self._settings = settings if settings is not None else Settings.load()
        self.server: RunningServer | None = None
        self.worker: Worker | None = None
        self._closed = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 4)
        lay.setSpacing(4)
        self.switch = QCheckBox("Serve models to other apps")
        self.switch.setObjectName("serverSwitch")
        self.switch.setToolTip(f"Serve models to other apps (OpenAI-compatible), on {machine_noun()} only")
        self.switch.toggled.connect(self._on_switch)
        lay.addWidget(self.switch)
        port_row = QHBoxLayout()
        port_row.setSpacing(6)
        kind = QLabel("OpenAI-compatible · port")
        kind.setObjectName("serverMuted")
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setValue(self._settings.server_port if 1024 <= self._settings.server_port <= 65535 else DEFAULT_PORT)
        self.port.setToolTip("The port the server listens on (127.0.0.1 only)")
        port_row.addWidget(kind)
        port_row.addWidget(self.port)
        port_row.addStretch(1)
        lay.addLayout(port_row)
        url_row = QHBoxLayout()
        url_row.setSpacing(6)
        self.url_label = QLabel("")
        self.url_label.setObjectName("serverUrl")
        self.url_label.setWordWrap(True)
        self.url_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the URL (paste it as the base URL in other apps)")
        self.copy_button.clicked.connect(self.copy_url)
        url_row.addWidget(self.url_label, 1)
        url_row.addWidget(self.copy_button)
        self.url_row = QWidget()
        self.url_row.setLayout(url_row)
        url_row.setContentsMargins(0, 0, 0, 0)
        self.url_row.hide()
        lay.addWidget(self.url_row)
        self.status = QLabel("")
        self.status.setObjectName("serverStatus")
        self.status.setWordWrap(True)
        self.status.hide()
        lay.addWidget(self.status)
        self.remote_button = QPushButton("Remote servers…")
        self.remote_button.setToolTip("OpenAI-compatible servers (vLLM, Ollama, LM Studio, Orchard) to chat with")
        self.remote_button.clicked.connect(self.open_remote_dialog)
        lay.addWidget(self.remote_button)

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    # --- the switch ------------------------------------------------------------------------------
    def resume(self) -> Worker | None:
        """Serve again if the switch was on at the last quit (called once the window has painted)."""
        if self._settings.serve_on_launch and self.server is None and not self.switch.isChecked():
            self.switch.setChecked(True)
            return self.worker
        return None

    def _on_switch(self, on: bool) -> None:
        self._remember(on)
        if on and self.server is None:
            self._start()
        elif not on and self.server is not None:
            self._stop()

    def _remember(self, on: bool) -> None:
        """The switch's state (and port) in settings: a window opened later serves again if it was on."""
        from macapp.core.settings import update_settings

        port = self.port.value()
        self._settings.serve_on_launch, self._settings.server_port = on, port

        def save(s: Settings) -> None:
            s.serve_on_launch, s.server_port = on, port

        try:
            update_settings(save)
        except OSError as exc:
            log.warning("could not save the server switch: %s", exc)

    def _busy(self, text: str) -> None:
        self.switch.setEnabled(False)
        self.port.setEnabled(False)
        self._show_status(text, error=False)

    def _show_status(self, text: str, error: bool) -> None:
        self.status.setText(text)
        self.status.setProperty("error", error)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status.setVisible(bool(text))

    def _start(self) -> None:
        self._busy("Starting…")
        worker = Worker(start_loopback_server, self.port.value())
        worker.signals.returned.connect(self._on_started)
        worker.signals.errored.connect(self._on_start_failed)
        self.worker = worker.start()

    def _on_started(self, server: RunningServer) -> None:
        if self._closed:
            server.stop()
            return
        self.server = server
        self.switch.setEnabled(True)
        self.url_label.setText(server.url)
        self.url_row.show()
        self._show_status("", error=False)
        log.info("serving on %s", server.url)
        self.stateChanged.emit(server.url)

    def _on_start_failed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self.switch.blockSignals(True)
        self.switch.setChecked(False)
        self.switch.blockSignals(False)
        self._remember(False)  # the switch shows off: that is what the next launch remembers
        self.switch.setEnabled(True)
        self.port.setEnabled(True)
        self._show_status(f"Could not start the server: {error_text(exc)}", error=True)

    def _stop(self) -> None:
        server, self.server = self.server, None
        self._busy("Stopping…")
        self.url_row.hide()
        worker = Worker(stop_server, server)
        worker.signals.finished.connect(self._on_stopped)
        self.worker = worker.start()

    def _on_stopped(self) -> None:
        if self._closed:
            return
        self.switch.setEnabled(True)
        self.port.setEnabled(True)
        self._show_status("", error=False)
        self.stateChanged.emit("")

    def copy_url(self) -> None:
        if self.url:
            QApplication.clipboard().setText(self.url)

    def shutdown(self) -> None:
        """Stop the server (the window is closing); a start still running stops it when it returns."""
        self._closed = True
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    # --- remote servers --------------------------------------------------------------------------
    def open_remote_dialog(self) -> RemoteServersDialog:
        dialog = RemoteServersDialog(self)
        dialog.changed.connect(self.endpointsChanged)
        dialog.show()
        return dialog


def _endpoints() -> list[dict]:
    from macapp.core.settings import Settings

    return [dict(e) for e in Settings.load().remote_endpoints if isinstance(e, dict)]


def probe_endpoint(endpoint: dict) -> list[str]:
    from macapp.core.engines.remote import RemoteEndpoint
    from macapp.core.engines.remote_endpoints import endpoint_models

    return [m.id for m in endpoint_models(RemoteEndpoint.from_json(endpoint))]


class RemoteServersDialog(QDialog):
    """Add, remove and test the remote OpenAI-compatible endpoints in settings."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Remote servers")
        self.setObjectName("remoteDialog")
        self.resize(520, 400)
        self.worker: Worker | None = None
        lay = QVBoxLayout(self)
        intro = QLabel(
            "OpenAI-compatible servers (vLLM, Ollama, LM Studio, another Orchard). Their models "
            "appear in the Chat page's picker as remote models."
        )
        intro.setWordWrap(True)
        intro.setObjectName("serverMuted")
        lay.addWidget(intro)
        self.list = QListWidget()
        self.list.setObjectName("remoteList")
        self.list.currentRowChanged.connect(lambda _row: self._update_buttons())
        lay.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("List the selected server's models")
        self.test_button.clicked.connect(self.test_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        lay.addLayout(buttons)
        self.result = QLabel("")
        self.result.setObjectName("serverStatus")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.result)
        self.key_notice = QLabel("")  # API keys still in plain text in settings.json: there is no keychain
        self.key_notice.setObjectName("serverStatus")
        self.key_notice.setProperty("error", True)
        self.key_notice.setWordWrap(True)
        self.key_notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.key_notice.hide()
        lay.addWidget(self.key_notice)
        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. gpu-box")
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText("e.g. http://192.168.1.20:8000/v1")
        self.key_edit = QLineEdit()
        self.key_edit.setPlaceholderText("optional · kept in the system keychain")
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        # Where there is no keychain (or by choice) the key can stay in an environment variable, read each time.
        self.key_from_env = QCheckBox("Read the key from an environment variable")
        self.key_from_env.toggled.connect(self._key_kind_changed)
        form.addRow("Name", self.name_edit)
        form.addRow("URL", self.url_edit)
        form.addRow("API key", self.key_edit)
        form.addRow("", self.key_from_env)
        lay.addLayout(form)
        add_row = QHBoxLayout()
        self.add_button = QPushButton("Add")
        self.add_button.setObjectName("primary")
        self.add_button.clicked.connect(self.add_from_fields)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        add_row.addStretch(1)
        add_row.addWidget(self.add_button)
        add_row.addWidget(close)
        lay.addLayout(add_row)
        self.reload()

    def reload(self) -> None:
        from macapp.core.settings import plain_key_warning

        self.list.clear()
        for endpoint in _endpoints():
            item = QListWidgetItem(
                f"{endpoint.get('name')} — {endpoint.get('url')}"
                + (
                    f" · key from ${endpoint['api_key_env']}"
                    if endpoint.get("api_key_env")
                    else " · key in the keychain"
                    if endpoint.get("api_key_ref")
                    else " · key in settings (no keychain)"
                    if endpoint.get("api_key")
                    else ""
                )
            )
            item.setData(Qt.ItemDataRole.UserRole, endpoint)
            self.list.addItem(item)
        warning = plain_key_warning()  # set by the load _endpoints() just did
        self.key_notice.setText(warning or "")
        self.key_notice.setVisible(bool(warning))
        self._update_buttons()

    def _selected(self) -> dict | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _update_buttons(self) -> None:
        selected = self._selected() is not None
        self.test_button.setEnabled(selected and self.worker is None)
        self.remove_button.setEnabled(selected)

    def _key_kind_changed(self, from_env: bool) -> None:
        self.key_edit.clear()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Normal if from_env else QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText(
            "the variable's name, e.g. OPENAI_API_KEY" if from_env else "optional · kept in the system keychain"
        )

    def add_endpoint(self, name: str, url: str, api_key: str = "", api_key_env: str = "") -> bool:
        """Save a new endpoint (a key, kept in the keychain, or the environment variable that holds it); False
        (with the reason shown) when the fields are not usable."""
        from macapp.core.engines.remote_endpoints import add_endpoint
        from macapp.core.errors import UserError

        try:
            endpoint = add_endpoint(name, url, api_key, api_key_env)
        except UserError as exc:
            self.result.setText(error_text(exc))
            return False
        self.result.setText(f"Added {endpoint.name}.")
        self.name_edit.clear()
        self.url_edit.clear()
        self.key_edit.clear()
        self.reload()
        self.list.setCurrentRow(self.list.count() - 1)
        self.changed.emit()
        return True

    def add_from_fields(self) -> None:
        key = self.key_edit.text()
        if self.key_from_env.isChecked():
            self.add_endpoint(self.name_edit.text(), self.url_edit.text(), api_key_env=key.strip().lstrip("$"))
        else:
            self.add_endpoint(self.name_edit.text(), self.url_edit.text(), key)

    def remove_selected(self) -> None:
        from macapp.core.engines.remote_endpoints import remove_endpoint
        from macapp.core.errors import UserError

        endpoint = self._selected()
        if endpoint is None:
            return
        name = endpoint.get("name")
        try:
            remove_endpoint(name)
        except UserError as exc:  # removed elsewhere (macapp remotes remove) since the list was read
            self.result.setText(error_text(exc))
        else:
            self.result.setText(f"Removed {name}.")
        self.reload()
        self.changed.emit()

    def test_selected(self) -> Worker | None:
        endpoint = self._selected()
        if endpoint is None or self.worker is not None:
            return None
        self.result.setText(f"Asking {endpoint.get('url')} for its models…")
        worker = Worker(probe_endpoint, endpoint)
        worker.signals.returned.connect(
            lambda ids: self.result.setText(
                f"{len(ids)} model(s): " + ", ".join(ids[:20]) if ids else "The server answers but lists no models."
            )
        )
        worker.signals.errored.connect(lambda exc: self.result.setText(error_text(exc)))
        worker.signals.finished.connect(self._tested)
        self.worker = worker.start()
        self._update_buttons()
        return self.worker

    def _tested(self) -> None:
        self.worker = None
        self._update_buttons()
