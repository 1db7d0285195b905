"""``macapp remotes``: the window's Remote servers… dialog on the command line, tested against Orchard's own
server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket

import keyring
import pytest
from keyring.backends import fail

from macapp.cli.main import main
from macapp.core import paths
from macapp.core.engines.remote import open_remote
from macapp.core.errors import UserError
from macapp.core.models.library import add_model_file
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.server.launch import ServerOptions, start_server
from macapp.core.settings import update_settings
from tests.cli.inprocess import run, run_json

KEY = "sk-test-4f1c"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def server(tmp_path):
    """Orchard's server on a free loopback port, serving one tiny model, asking for ``KEY``."""
    add_model_file(write_tiny_gguf(tmp_path / "tiny-remote.gguf"))
    with start_server(ServerOptions(port=0, api_key=KEY, idle_unload_s=0)) as running:
        yield running


def test_add_list_test_and_remove(capsys, server):
    added = run_json(capsys, "remotes", "add", "box", f"127.0.0.1:{server.port}", "--api-key", KEY)
    assert added["name"] == "box" and added["api_base"] == server.url and added["api_key_from"] == "keychain"
    assert KEY not in json.dumps(added) and KEY not in paths.settings_file().read_text()
    [listed] = run_json(capsys, "remotes", "list")
    assert listed == added
    assert run_json(capsys, "remotes") == [listed]  # no action lists too

    tested = run_json(capsys, "remotes", "test", "box")
    [tiny] = [m for m in tested["models"] if "tiny-remote" in m["id"]]  # the server lists its embedder too
    assert tiny["ref"] == f"remote:box/{tiny['id']}" and tiny["context_length"] == 2048
    code, out, _err = run(capsys, "remotes", "test", "box")
    assert code == 0 and f"box answers at {server.url}: {len(tested['models'])} models" in out
    assert f"  remote:box/{tiny['id']}  (2,048 tokens)" in out

    assert run_json(capsys, "remotes", "remove", "box")["name"] == "box"
    assert run_json(capsys, "remotes", "list") == []
    code, _out, err = run(capsys, "remotes", "test", "box")
    assert code == 1 and err.startswith("error: no remote server named 'box'")


def test_a_key_from_the_environment_is_never_saved(capsys, server, monkeypatch):
    monkeypatch.setenv("ORCHARD_TEST_KEY", KEY)
    added = run_json(capsys, "remotes", "add", "env-box", server.url, "--api-key-env", "ORCHARD_TEST_KEY")
    assert added["api_key_from"] == "env" and added["api_key_env"] == "ORCHARD_TEST_KEY" and added["api_key_set"]
    assert KEY not in paths.settings_file().read_text()
    assert any("tiny-remote" in m["id"] for m in run_json(capsys, "remotes", "test", "env-box")["models"])

    monkeypatch.delenv("ORCHARD_TEST_KEY")
    code, out, err = run(capsys, "remotes", "test", "env-box")
    assert code == 1 and out == "" and "$ORCHARD_TEST_KEY, which is not set" in err and err.count("\n") == 1
    code, out, _err = run(capsys, "remotes", "list")
    assert code == 0 and "from $ORCHARD_TEST_KEY (not set)" in out
    with pytest.raises(UserError, match=r"\$ORCHARD_TEST_KEY, which is not set"):  # a chat with its models too
        open_remote("remote:env-box/tiny-remote")


def test_a_wrong_key_is_refused_clearly(capsys, server):
    run_json(capsys, "remotes", "add", "box", server.url, "--api-key", "wrong")
    code, _out, err = run(capsys, "remotes", "test", "box")
    assert code == 1 and err.startswith(f"error: {server.url} refused the API key (401)") and err.count("\n") == 1


def test_a_refused_connection_is_one_line(capsys):
    port = closed_port()
    run_json(capsys, "remotes", "add", "gone", f"http://127.0.0.1:{port}/v1")
    code, out, err = run(capsys, "remotes", "test", "gone")
    assert code == 1 and out == ""
    assert err == (f"error: cannot reach http://127.0.0.1:{port}/v1 (is the server running, and is the URL right?)\n")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["add", "a/b", "http://127.0.0.1:1/v1"], "without “/”"),
        (["add", "two words", "http://127.0.0.1:1/v1"], "without “/” or spaces"),
        (["add", "box", "ftp://127.0.0.1/v1"], "is not an http(s) URL"),
        (["add", "box", "http://127.0.0.1:1/v1", "--api-key-env", "NOT-A-NAME"], "not an environment variable name"),
        (["add", "box", "http://127.0.0.1:1/v1", "--api-key-env", "ORCHARD_SURELY_UNSET"], "is not set"),
        (["remove", "nobody"], "no remote server named 'nobody'"),
    ],
)
def test_bad_input_is_one_line_and_saves_nothing(capsys, monkeypatch, args, said):
    monkeypatch.delenv("ORCHARD_SURELY_UNSET", raising=False)
    code, out, err = run(capsys, "remotes", *args)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and said in err and err.count("\n") == 1, err
    assert run_json(capsys, "remotes", "list") == []


def test_a_name_is_taken_once(capsys):
    run_json(capsys, "remotes", "add", "box", "http://127.0.0.1:1/v1")
    code, _out, err = run(capsys, "remotes", "add", "box", "http://127.0.0.1:2/v1")
    assert code == 1 and "already a server named 'box'" in err
    assert [e["url"] for e in run_json(capsys, "remotes", "list")] == ["http://127.0.0.1:1/v1"]


def test_a_key_and_its_variable_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["remotes", "add", "box", "http://127.0.0.1:1/v1", "--api-key", "k", "--api-key-env", "K"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_without_a_keychain_a_key_is_refused_and_old_plain_keys_are_flagged(capsys, caplog, server):
    keyring.set_keyring(fail.Keyring())
    code, out, err = run(capsys, "remotes", "add", "box", server.url, "--api-key", KEY)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("error: No keychain is available on this machine: ")
    assert "the API key was not saved" in err and "environment variable" in err
    assert run_json(capsys, "remotes", "list") == []

    # A key an older Orchard saved in plain text stays usable; the log (stderr in the CLI) and the listing say where.
    update_settings(lambda s: s.remote_endpoints.append({"name": "old", "url": server.url, "api_key": KEY}))
    with caplog.at_level(logging.WARNING, logger="macapp.core.settings"):
        code, out, _err = run(capsys, "remotes", "list")
    assert code == 0 and "in settings (no keychain)" in out
    [warning] = [r.getMessage() for r in caplog.records if r.name == "macapp.core.settings"]
    assert warning.startswith("1 remote server API key is still saved in plain text in ")
    assert "No keychain is available on this machine" in warning and "environment variable" in warning
    [listed] = run_json(capsys, "remotes", "list")
    assert listed["api_key_from"] == "settings" and listed["api_key_set"]
    assert any("tiny-remote" in m["id"] for m in run_json(capsys, "remotes", "test", "old")["models"])
    assert run_json(capsys, "remotes", "remove", "old")["name"] == "old"
    assert KEY not in paths.settings_file().read_text()
