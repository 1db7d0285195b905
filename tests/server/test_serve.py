"""``macapp serve``, the loopback rule, idle unloading."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from macapp.cli.main import main
from macapp.core.errors import UserError
from macapp.core.server.launch import ServerOptions, check_exposure, start_server
from tests.server.conftest import openai_client

ROOT = Path(__file__).resolve().parents[2]


def test_binding_beyond_loopback_without_a_key_is_refused(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to serve on 0.0.0.0 without an API key") and err.count("\n") == 1
    for host in ("0.0.0.0", "::", "192.168.1.20", "my-mac.local"):
        with pytest.raises(UserError, match="without an API key"):
            check_exposure(host, None)
        check_exposure(host, "a-key")  # allowed with a key
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        check_exposure(host, None)
    with pytest.raises(UserError):
        start_server(ServerOptions(host="0.0.0.0", port=0))


def test_a_busy_port_is_a_clear_error(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_serve_prints_its_url_and_stops_on_ctrl_c(library, isolated_home):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MACAPP_HOME=str(isolated_home))
    process = subprocess.Popen(
        [sys.executable, "-m", "macapp", "serve", "--port", "0", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        text = ""
        while True:  # one JSON document, printed once the socket listens
            line = process.stdout.readline()
            assert line, process.stderr.read()
            text += line
            try:
                info = json.loads(text)
                break
            except ValueError:
                continue
        assert info["url"] == f"http://127.0.0.1:{info['port']}/v1" and info["api_key_required"] is False
        ids = [m.id for m in openai_client(info["url"]).models.list().data]
        assert library["tiny"] in ids
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(20)
    assert code == 0


def test_models_load_on_first_use_and_unload_when_idle(library):
    with start_server(ServerOptions(port=0, n_ctx=512, idle_unload_s=0.5)) as server:
        assert server.registry.loaded_models() == []
        client = openai_client(server.url)
        client.chat.completions.create(
            model=library["tiny"], messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert server.registry.loaded_models() == [library["tiny"]]
        deadline = time.monotonic() + 10
        while server.registry.loaded_models() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.registry.loaded_models() == []
        reply = client.chat.completions.create(
            model=library["tiny"], messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )  # loads again
        assert reply.usage.completion_tokens == 2
        assert httpx.get(f"{server.url}/models").status_code == 200
