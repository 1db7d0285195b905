"""Remote servers' API keys live in the keychain (a real in-memory ``keyring`` backend here, see
tests/fixtures/keyring_backend.py), settings.json keeps only a reference, and plain-text keys from older
settings are moved there on load, or kept where they are (with a warning) where no keychain exists."""

from __future__ import annotations

import json
import logging
import os
import threading

import keyring
import pytest
from keyring.backends import fail, null

from macapp.core import paths
from macapp.core.engines.remote import RemoteEndpoint, configured_endpoints, open_remote
from macapp.core.engines.remote_endpoints import add_endpoint, remove_endpoint
from macapp.core.errors import UserError
from macapp.core.secrets import (
    SERVICE,
    KeychainUnavailable,
    delete_secret,
    keychain_problem,
    read_secret,
    store_secret,
)
from macapp.core.settings import Settings, plain_key_warning, update_settings
from tests.fixtures.keyring_backend import MemoryKeyring

KEY = "sk-live-7d2e9a"


def write_old_settings(**extra) -> bytes:
    """settings.json as an Orchard before the keychain saved it: two servers, one with a key in plain text."""
    data = {
        "default_ctx": 4096,
        "remote_endpoints": [
            {"name": "box", "url": "http://10.0.0.5:8000/v1", "api_key": KEY},
            {"name": "open", "url": "http://10.0.0.6:11434", "api_key": ""},
        ],
        "a_future_setting": [1, 2],
        **extra,
    }
    path = paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path.read_bytes()


def test_secrets_round_trip_in_the_keychain(memory_keyring):
    store_secret("remote:box", KEY)
    assert memory_keyring.entries == {(SERVICE, "remote:box"): KEY}
    assert read_secret("remote:box") == KEY and read_secret("remote:other") is None
    store_secret("remote:box", "sk-new")  # replaces
    assert read_secret("remote:box") == "sk-new"
    delete_secret("remote:box")
    delete_secret("remote:box")  # nothing left: not an error
    assert memory_keyring.entries == {} and keychain_problem() is None


@pytest.mark.parametrize("backend", [fail.Keyring, null.Keyring], ids=["no-backend", "null-backend"])
def test_no_keychain_is_one_clear_error(backend):
    keyring.set_keyring(backend())
    with pytest.raises(KeychainUnavailable, match="^No keychain is available on this machine: ") as err:
        store_secret("remote:box", KEY)
    assert isinstance(err.value, UserError) and "gnome-keyring" in str(err.value)  # what to do (Linux here)
    with pytest.raises(KeychainUnavailable):
        read_secret("remote:box")
    assert keychain_problem().startswith("No keychain is available on this machine")


def test_a_keychain_that_drops_what_it_is_given_is_found_out(memory_keyring, monkeypatch):
    monkeypatch.setattr(memory_keyring, "set_password", lambda service, username, password: None)
    with pytest.raises(KeychainUnavailable, match="did not keep the secret"):
        store_secret("remote:box", KEY)


def test_plain_keys_move_into_the_keychain_when_settings_load(memory_keyring):
    before = write_old_settings()
    assert KEY.encode() in before

    settings = Settings.load()

    assert memory_keyring.entries == {(SERVICE, "remote:box"): KEY}
    after = paths.settings_file().read_bytes()
    assert KEY.encode() not in after and b'"api_key"' not in after.replace(b'"api_key": ""', b"")
    saved = json.loads(after)
    assert saved["remote_endpoints"][0] == {
        "name": "box",
        "url": "http://10.0.0.5:8000/v1",
        "api_key_ref": "remote:box",
    }
    assert saved["remote_endpoints"][1]["name"] == "open" and saved["a_future_setting"] == [1, 2]  # the rest kept
    assert settings.default_ctx == 4096 and settings.remote_endpoints == saved["remote_endpoints"]
    assert plain_key_warning() is None
    box = configured_endpoints()[0]
    assert box.api_key is None and box.api_key_ref == "remote:box" and box.resolve_key() == KEY
    assert open_remote("remote:box/some-model").api_key == KEY


def test_a_load_inside_update_settings_migrates_without_deadlock(memory_keyring):
    write_old_settings()
    done = threading.Event()

    def change():
        update_settings(lambda s: setattr(s, "default_ctx", 2048))
        done.set()

    threading.Thread(target=change, daemon=True).start()
    assert done.wait(10), "update_settings deadlocked on the migration"
    after = paths.settings_file().read_bytes()
    assert KEY.encode() not in after and json.loads(after)["default_ctx"] == 2048
    assert memory_keyring.entries[(SERVICE, "remote:box")] == KEY


def test_without_a_keychain_plain_keys_stay_and_a_warning_says_why(caplog):
    keyring.set_keyring(fail.Keyring())
    before = write_old_settings()

    with caplog.at_level(logging.WARNING, logger="macapp.core.settings"):
        Settings.load()
        Settings.load()  # warned once, and the keychain is not asked again

    assert paths.settings_file().read_bytes() == before  # nothing lost, nothing rewritten
    warning = plain_key_warning()
    assert warning.startswith("1 remote server API key is still saved in plain text in ")
    assert "No keychain is available on this machine" in warning
    assert [r.getMessage() for r in caplog.records] == [warning]
    assert configured_endpoints()[0].resolve_key() == KEY  # the server still works

    keyring.set_keyring(memory := MemoryKeyring())
    Settings.load()  # a keychain appeared (unlocked, or a later launch): the key moves
    assert KEY.encode() not in paths.settings_file().read_bytes() and memory.entries[(SERVICE, "remote:box")] == KEY
    assert plain_key_warning() is None


def test_adding_a_server_keeps_its_key_in_the_keychain_and_removing_forgets_it(memory_keyring):
    added = add_endpoint("box", "http://10.0.0.5:8000/v1", api_key=f"  {KEY} ")
    assert added == RemoteEndpoint("box", "http://10.0.0.5:8000/v1", api_key_ref="remote:box")
    assert KEY not in paths.settings_file().read_text() and memory_keyring.entries == {(SERVICE, "remote:box"): KEY}
    assert added.has_key and added.resolve_key() == KEY

    with pytest.raises(UserError, match="already a server named 'box'"):
        add_endpoint("box", "http://10.0.0.9:8000/v1", api_key="sk-other")
    assert read_secret("remote:box") == KEY  # the first server's key is not replaced

    assert remove_endpoint("box").api_key_ref == "remote:box"
    assert memory_keyring.entries == {} and Settings.load().remote_endpoints == []


def test_adding_a_key_without_a_keychain_is_refused_and_nothing_is_saved():
    keyring.set_keyring(fail.Keyring())
    with pytest.raises(UserError, match="No keychain is available on this machine: .*the API key was not saved") as err:
        add_endpoint("box", "http://10.0.0.5:8000/v1", api_key=KEY)
    assert "environment variable" in err.value.hint
    assert Settings.load().remote_endpoints == []
    add_endpoint("open", "http://10.0.0.6:11434")  # a server without a key needs no keychain
    assert [e.name for e in configured_endpoints()] == ["open"]
    remove_endpoint("open")


def test_a_key_missing_from_the_keychain_is_a_clear_error(memory_keyring):
    add_endpoint("box", "http://10.0.0.5:8000/v1", api_key=KEY)
    memory_keyring.entries.clear()  # deleted in Keychain Access, or another machine's settings copied over
    with pytest.raises(UserError, match="the API key of box is missing from the keychain"):
        open_remote("remote:box/some-model")


def test_a_settings_file_that_cannot_be_rewritten_loses_nothing(memory_keyring, caplog):
    before = write_old_settings()

    def refuse(*_args):
        raise PermissionError("read-only file system")

    with pytest.MonkeyPatch.context() as patch, caplog.at_level(logging.WARNING, logger="macapp.core.settings"):
        patch.setattr(os, "replace", refuse)
        settings = Settings.load()
    assert settings.remote_endpoints[0]["api_key_ref"] == "remote:box"  # loaded as migrated: the key is in the keychain
    assert paths.settings_file().read_bytes() == before and read_secret("remote:box") == KEY
    assert any("could not rewrite" in r.getMessage() for r in caplog.records)
    assert [f.name for f in paths.settings_file().parent.glob(".settings-*")] == []  # no half-written file left

    Settings.load()  # writable again: the next load finishes the move
    assert KEY.encode() not in paths.settings_file().read_bytes()
    assert memory_keyring.entries == {(SERVICE, "remote:box"): KEY}
