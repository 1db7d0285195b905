"""The Remote servers dialog keeps a key in the keychain (the tests' in-memory keyring backend), tests and removes
the server with it, and says clearly where there is no keychain."""

from __future__ import annotations

import os
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtWidgets import QLineEdit

from macapp.core import paths
from macapp.core.models.library import add_model_file
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.secrets import SERVICE
from macapp.core.server.launch import ServerOptions, start_server
from macapp.core.settings import update_settings
from macapp.ui.chat.header import remote_models
from macapp.ui.server.panel import RemoteServersDialog

KEY = "sk-ui-93be"


@pytest.fixture
def keyed_server(tmp_path):
    """Orchard's server on loopback, serving one tiny model, asking for ``KEY``."""
    add_model_file(write_tiny_gguf(tmp_path / "tiny-remote.gguf"))
    with start_server(ServerOptions(port=0, api_key=KEY, idle_unload_s=0)) as running:
        yield running


def _texts(dialog: RemoteServersDialog) -> list[str]:
    return [dialog.list.item(i).text() for i in range(dialog.list.count())]


def test_a_key_added_in_the_dialog_lives_in_the_keychain(qtbot, keyed_server, memory_keyring):
    dialog = RemoteServersDialog()
    qtbot.addWidget(dialog)
    assert "keychain" in dialog.key_edit.placeholderText()
    assert dialog.add_endpoint("box", keyed_server.url, KEY)
    assert memory_keyring.entries == {(SERVICE, "remote:box"): KEY}
    assert KEY not in paths.settings_file().read_text()
    assert _texts(dialog) == [f"box — {keyed_server.url} · key in the keychain"]
    assert dialog.key_notice.isHidden()

    dialog.list.setCurrentRow(0)
    assert dialog.test_selected() is not None
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=15_000)
    assert "tiny-remote" in dialog.result.text()  # the server accepted the key read from the keychain

    found, skipped = remote_models()  # the Chat page's picker lists its models the same way
    assert skipped == [] and any(ref.startswith("remote:box/") and "tiny-remote" in ref for ref, _ in found)

    dialog.remove_selected()
    assert memory_keyring.entries == {} and _texts(dialog) == []


def test_without_a_keychain_the_dialog_says_so_and_keeps_old_keys_working(qtbot, keyed_server):
    keyring.set_keyring(fail.Keyring())
    update_settings(lambda s: s.remote_endpoints.append({"name": "old", "url": keyed_server.url, "api_key": KEY}))
    dialog = RemoteServersDialog()
    qtbot.addWidget(dialog)
    assert _texts(dialog) == [f"old — {keyed_server.url} · key in settings (no keychain)"]
    assert not dialog.key_notice.isHidden()
    assert dialog.key_notice.text().startswith("1 remote server API key is still saved in plain text in ")
    assert "No keychain is available on this machine" in dialog.key_notice.text()

    assert not dialog.add_endpoint("box", keyed_server.url, "sk-new")
    assert dialog.result.text().startswith("No keychain is available on this machine: ")
    assert "the API key was not saved" in dialog.result.text() and len(_texts(dialog)) == 1

    dialog.list.setCurrentRow(0)
    assert dialog.test_selected() is not None
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=15_000)
    assert "tiny-remote" in dialog.result.text()  # the plain key still works


def test_without_a_keychain_the_key_can_come_from_an_environment_variable(qtbot, keyed_server, monkeypatch):
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("BOX_API_KEY", KEY)
    dialog = RemoteServersDialog()
    qtbot.addWidget(dialog)
    assert not dialog.add_endpoint("box", keyed_server.url, "sk-new")
    assert "Read the key from an environment variable" in dialog.result.text()  # the hint names the way out

    dialog.key_from_env.setChecked(True)
    assert dialog.key_edit.echoMode() == QLineEdit.EchoMode.Normal and "variable" in dialog.key_edit.placeholderText()
    dialog.name_edit.setText("box")
    dialog.url_edit.setText(keyed_server.url)
    dialog.key_edit.setText("$BOX_API_KEY")
    dialog.add_from_fields()
    assert _texts(dialog) == [f"box — {keyed_server.url} · key from $BOX_API_KEY"]
    assert KEY not in Path(os.environ["MACAPP_HOME"], "settings.json").read_text()

    dialog.list.setCurrentRow(0)
    assert dialog.test_selected() is not None
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=15_000)
    assert "tiny-remote" in dialog.result.text()  # the keyed server accepts the key read from the variable
