"""``RemoteEngine`` against a second Orchard server on loopback: the same protocol as llama.cpp, over HTTP."""

from __future__ import annotations

import threading
import time

import pytest

from macapp.core.chat.session import ChatSession
from macapp.core.chat.store import ChatStore
from macapp.core.engines import open_engine
from macapp.core.engines.base import SamplingSettings
from macapp.core.engines.remote import RemoteEngine, api_base, list_remote_models, open_remote
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken, drain
from macapp.core.server.launch import ServerOptions, start_server
from macapp.core.settings import Settings, update_settings
from tests.server.conftest import openai_client

KEY = "remote-secret"
USER = [{"role": "user", "content": "hello world, what is the model?"}]


@pytest.fixture
def box(library):
    """The 'bigger box': another Orchard server, with an API key."""
    with start_server(ServerOptions(port=0, api_key=KEY, n_ctx=4096, idle_unload_s=0)) as server:
        yield server


@pytest.fixture
def engine(box, library):
    engine = RemoteEngine(box.url, library["tiny"], KEY)
    steps = list(engine.load())
    assert steps[-1].fraction == 1.0 and engine.loaded
    yield engine
    engine.unload()


def test_lists_models_and_learns_context_and_exact_counts(box, engine, library):
    ids = {m.id: m for m in list_remote_models(box.url, KEY)}
    assert ids[library["tiny"]].context_length == 2048  # the model's own 2,048 within the server's 4,096
    assert engine.n_ctx == 2048 and engine.exact_counts
    local = open_engine(str(box.registry.resolve(library["tiny"])[1]), n_ctx=2048)
    for _ in local.load():
        pass
    try:
        assert engine.count_chat_tokens(USER) == local.count_chat_tokens(USER)
        assert engine.count_tokens("hello world") == local.count_tokens("hello world")
    finally:
        local.unload()


def test_streams_the_same_answer_the_server_gives(box, engine, library):
    sampling = SamplingSettings(temperature=0.9, seed=12, max_tokens=30)
    chunks, result = drain(engine.stream_chat(USER, sampling))
    direct = openai_client(box.url, api_key=KEY).chat.completions.create(
        model=library["tiny"], messages=USER, max_tokens=30, seed=12, temperature=0.9, top_p=sampling.top_p
    )
    assert result.text == direct.choices[0].message.content == "".join(c.text for c in chunks)
    assert len(chunks) > 5 and result.finish_reason == "length" and result.completion_tokens == 30
    assert result.prompt_tokens == direct.usage.prompt_tokens

    _, stopped = drain(engine.stream_chat(USER, sampling.with_changes(stop=(result.text[8:11],))))
    assert stopped.text == result.text[: result.text.index(result.text[8:11])] and stopped.finish_reason == "stop"


def test_cancel_mid_answer_keeps_the_text_and_frees_the_server(box, library):
    engine = RemoteEngine(box.url, library["slow"], KEY)
    for _ in engine.load():
        pass
    cancel = CancelToken()
    stream = engine.stream_chat(USER, SamplingSettings(seed=3, max_tokens=3000), cancel)
    first = [next(stream) for _ in range(3)]
    cancel.cancel()
    t0 = time.perf_counter()
    rest, result = drain(stream)
    assert time.perf_counter() - t0 < 3.0  # the whole answer would take tens of seconds
    assert result.finish_reason == "cancelled" and result.completion_tokens < 200
    assert result.text == "".join(c.text for c in first + rest)
    t0 = time.perf_counter()
    _, after = drain(engine.stream_chat(USER, SamplingSettings(seed=3, max_tokens=4)))
    assert after.completion_tokens == 4 and time.perf_counter() - t0 < 3.0  # the server moved on
    engine.unload()


def test_cancel_while_the_server_has_not_answered_yet(box, library):
    """Queued behind another answer, no byte has come back: cancel still ends the request at once."""
    busy = RemoteEngine(box.url, library["slow"], KEY)
    waiting = RemoteEngine(box.url, library["slow"], KEY)
    for engine in (busy, waiting):
        for _ in engine.load():
            pass
    hold, started = CancelToken(), threading.Event()

    def long_answer():
        stream = busy.stream_chat(USER, SamplingSettings(seed=1, max_tokens=3000), hold)
        next(stream)
        started.set()
        drain(stream)

    runner = threading.Thread(target=long_answer)
    runner.start()
    assert started.wait(30)
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    t0 = time.perf_counter()
    chunks, result = drain(waiting.stream_chat(USER, SamplingSettings(seed=2, max_tokens=3000), cancel))
    assert result.finish_reason == "cancelled" and not chunks and time.perf_counter() - t0 < 3.0
    hold.cancel()
    runner.join(30)
    busy.unload()
    waiting.unload()


def test_clear_errors_for_key_model_and_address(box, library):
    with pytest.raises(UserError, match="refused the API key"):
        list(RemoteEngine(box.url, library["tiny"], "wrong").load())
    with pytest.raises(UserError, match="has no model 'nope'") as err:
        list(RemoteEngine(box.url, "nope", KEY).load())
    assert library["tiny"] in err.value.hint
    with pytest.raises(UserError, match="cannot reach"):
        list(RemoteEngine("http://127.0.0.1:9", "x").load())
    with pytest.raises(UserError, match="cannot reach"):
        list_remote_models("127.0.0.1:9")


def test_remote_ids_from_settings_and_a_chat_session(box, library):
    update_settings(lambda s: s.remote_endpoints.append({"name": "box", "url": box.url, "api_key": KEY}))
    ref = f"remote:box/{library['tiny']}"
    engine = open_engine(ref, n_ctx=8192)  # local options do not apply to a remote model
    assert isinstance(engine, RemoteEngine) and engine.model_id == ref and engine.model == library["tiny"]
    for _ in engine.load():
        pass
    store = ChatStore(":memory:")
    session = ChatSession(engine, store, sampling=SamplingSettings(seed=4, max_tokens=12))
    _, turn = drain(session.send("hello there"))
    assert turn.result.completion_tokens == 12 and turn.result.text
    assert store.get_conversation(session.conversation_id).model == ref
    store.close()
    engine.unload()
    with pytest.raises(UserError, match="no remote endpoint named 'elsewhere'"):
        open_remote(f"remote:elsewhere/{library['tiny']}", Settings.load())
    with pytest.raises(UserError, match="not a remote model id"):
        open_remote("remote:box")


def test_api_base_and_approximate_counts():
    assert api_base("localhost:11434") == "http://localhost:11434/v1"
    assert api_base("http://gpu-box:8000/v1/") == "http://gpu-box:8000/v1"
    assert api_base("https://example.org/api/v1") == "https://example.org/api/v1"
    assert api_base("http://gpu-box/") == "http://gpu-box/v1"
    for typed in ("ftp://x", "http://", "https://", "", "http://:8000", "gpu-box:port"):  # no server named
        with pytest.raises(UserError, match="not an http"):
            api_base(typed)
    engine = RemoteEngine("http://127.0.0.1:9/v1", "m")
    assert engine.count_tokens("") == 0 and engine.count_tokens("a" * 40) == 10
    assert engine.count_chat_tokens([{"role": "user", "content": "a" * 40}]) == 10 + 4 + 3


def test_macapp_run_answers_with_a_remote_model(box, library, capsys):
    import json

    from macapp.cli.main import main

    update_settings(lambda s: s.remote_endpoints.append({"name": "box", "url": box.url, "api_key": KEY}))
    code = main(["run", f"remote:box/{library['tiny']}", "hello", "--json", "--seed", "5", "--max-tokens", "6"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["completion_tokens"] == 6 and out["model"] == f"remote:box/{library['tiny']}"
    assert main(["run", "remote:nowhere/x", "hello"]) == 1
    assert "no remote endpoint named 'nowhere'" in capsys.readouterr().err
