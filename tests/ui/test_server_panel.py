"""The server panel's switch serves on loopback; a remote endpoint from settings answers in the Chat page."""

from __future__ import annotations

import socket

import httpx
import pytest

from macapp.core.chat.store import ChatStore
from macapp.core.models.library import add_model_file
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.settings import Settings, update_settings
from macapp.ui.chat.page import ChatPage
from macapp.ui.server.panel import ServerPanel


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_switch_serves_on_loopback_and_stops(qtbot):
    panel = ServerPanel()
    qtbot.addWidget(panel)
    port = _free_port()
    panel.port.setValue(port)
    with qtbot.waitSignal(panel.stateChanged, timeout=15_000) as started:
        panel.switch.setChecked(True)
    url = f"http://127.0.0.1:{port}/v1"
    assert started.args == [url]
    assert panel.url_label.text() == url and not panel.url_row.isHidden()
    response = httpx.get(url + "/models", timeout=5)
    assert response.status_code == 200 and response.json()["object"] == "list"

    with qtbot.waitSignal(panel.stateChanged, timeout=15_000) as stopped:
        panel.switch.setChecked(False)
    assert stopped.args == [""]
    assert panel.url_row.isHidden()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/models", timeout=5)
    panel.shutdown()


def test_a_busy_port_is_a_clear_error(qtbot):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        panel = ServerPanel()
        qtbot.addWidget(panel)
        panel.port.setValue(busy.getsockname()[1])
        panel.switch.setChecked(True)
        qtbot.waitUntil(lambda: panel.switch.isEnabled(), timeout=10_000)
    assert not panel.switch.isChecked() and panel.server is None
    assert "Could not start the server" in panel.status.text() and panel.status.property("error") is True


def test_a_remote_endpoint_answers_in_the_chat_page(qtbot, tmp_path):
    from macapp.core.engines.remote import list_remote_models
    from macapp.core.server.launch import ServerOptions, start_server

    add_model_file(write_tiny_gguf(tmp_path / "tiny-remote.gguf", ctx=4096))
    with start_server(ServerOptions(port=0)) as server:
        update_settings(lambda s: setattr(s, "remote_endpoints", [{"name": "box", "url": server.url, "api_key": ""}]))
        model = list_remote_models(server.url)[0].id
        update_settings(lambda s: s.remote_endpoints.append({"name": "gone", "url": f"127.0.0.1:{_free_port()}"}))

        store = ChatStore()
        page = ChatPage(Settings(default_ctx=2048), store)
        qtbot.addWidget(page)
        page.show()
        page.open_history()
        page.drawer.numbers["max_tokens"].setValue(12)
        ref = f"remote:box/{model}"
        page.refresh_remote()
        qtbot.waitUntil(lambda: ref in page.header.picker.remote_refs(), timeout=15_000)
        assert page.header.remote_note.isVisible()  # "gone" is skipped with a note
        assert page.header.picker.select_path(ref)
        assert page.header.verdict_label.text() == "remote"

        with qtbot.waitSignal(page.modelLoaded, timeout=15_000):
            page.load_model()
        qtbot.waitUntil(lambda: not page.loading, timeout=5_000)
        assert page.header.engine_badge.text() == "remote" and page.header.engine_badge.isVisible()
        assert page.header.model_status.text().startswith(f"{model} @ 127.0.0.1:{server.port} · ")

        chunks: list[str] = []
        original = page.transcript.append_stream
        page.transcript.append_stream = lambda text, n: (chunks.append(text), original(text, n))
        with qtbot.waitSignal(page.turnFinished, timeout=60_000) as blocker:
            page.send_message("Hello there")
        qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
        turn = blocker.args[0]
        assert turn.message.content and chunks  # streamed over SSE from the second server
        page.shutdown()
        store.close()


def _serving(url: str) -> bool:
    try:
        return httpx.get(url + "/models", timeout=5).status_code == 200
    except httpx.ConnectError:
        return False


def test_the_switch_is_remembered_between_launches(qtbot, window_factory):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    first = window_factory()
    first.server_panel.port.setValue(port)
    with qtbot.waitSignal(first.server_panel.stateChanged, timeout=15_000):
        first.server_panel.switch.setChecked(True)
    saved = Settings.load()
    assert (saved.serve_on_launch, saved.server_port) == (True, port)
    first.close()  # quit with the switch on: the server stops with the window
    assert not _serving(url) and Settings.load().serve_on_launch

    second = window_factory()  # the next launch, same MACAPP_HOME
    qtbot.waitUntil(lambda: second.server_panel.url == url, timeout=15_000)
    assert second.server_panel.switch.isChecked() and second.server_panel.port.value() == port
    assert _serving(url)
    with qtbot.waitSignal(second.server_panel.stateChanged, timeout=15_000):
        second.server_panel.switch.setChecked(False)  # off at quit: the next launch does not serve
    second.close()
    assert not Settings.load().serve_on_launch and not _serving(url)

    third = window_factory()
    assert not third.server_panel.switch.isChecked() and third.server_panel.worker is None
    third.close()
    assert not _serving(url)


def test_a_start_that_fails_is_not_retried_at_the_next_launch(qtbot):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)

        def switched_on_at_quit(s: Settings) -> None:
            s.serve_on_launch, s.server_port = True, busy.getsockname()[1]

        update_settings(switched_on_at_quit)
        panel = ServerPanel()
        qtbot.addWidget(panel)
        assert panel.resume() is not None
        qtbot.waitUntil(lambda: panel.switch.isEnabled(), timeout=10_000)
    assert not panel.switch.isChecked() and "Could not start the server" in panel.status.text()
    assert not Settings.load().serve_on_launch  # the switch shows off, so the next launch starts off
    panel.shutdown()
