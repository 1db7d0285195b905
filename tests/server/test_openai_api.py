"""The official ``openai`` client against a running Orchard server on loopback (real llama.cpp, real embedder)."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest

from tests.server.conftest import openai_client

USER = [{"role": "user", "content": "hello world, what is the model?"}]


def streamed_text(stream) -> tuple[str, list]:
    chunks = list(stream)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def test_models_lists_the_library_and_the_embedder(served):
    client = openai_client(served.url)
    ids = [m.id for m in client.models.list().data]
    assert set(served.models.values()) <= set(ids)
    assert "all-MiniLM-L6-v2" in ids
    card = httpx.get(f"{served.url}/models/{served.models['tiny']}").json()
    assert card["id"] == served.models["tiny"] and card["object"] == "model" and card["context_length"] == 512


def test_chat_whole_and_streamed_give_the_same_answer_with_usage(served):
    client = openai_client(served.url)
    model = served.models["tiny"]
    whole = client.chat.completions.create(model=model, messages=USER, max_tokens=24, seed=7, temperature=0.8)
    text = whole.choices[0].message.content
    assert text.strip() and whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == 24 and whole.usage.prompt_tokens > 10
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + 24 and whole.model == model

    stream = client.chat.completions.create(
        model=model,
        messages=USER,
        max_tokens=24,
        seed=7,
        temperature=0.8,
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed, chunks = streamed_text(stream)
    assert streamed == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 24 and chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert len({c.id for c in chunks}) == 1


def test_finish_reasons_stop_and_context_full_as_length(served):
    client = openai_client(served.url)
    quiet = client.chat.completions.create(model=served.models["quiet"], messages=USER, max_tokens=50)
    assert quiet.choices[0].message.content == "" and quiet.choices[0].finish_reason == "stop"

    full = client.chat.completions.create(model=served.models["tiny"], messages=USER, seed=1)  # no max_tokens
    assert full.choices[0].finish_reason == "length" and full.usage.total_tokens == 512

    base = client.chat.completions.create(model=served.models["tiny"], messages=USER, max_tokens=40, seed=3)
    text = base.choices[0].message.content
    stop = text[12:15]
    cut = client.chat.completions.create(
        model=served.models["tiny"],
        messages=USER,
        max_tokens=40,
        seed=3,
        stop=[stop],
        presence_penalty=0,
        frequency_penalty=0.0,
    )  # zero penalties: nothing to do
    assert cut.choices[0].message.content == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_completions_whole_and_streamed(served):
    client = openai_client(served.url)
    model = served.models["tiny"]
    whole = client.completions.create(model=model, prompt="hello world, the model", max_tokens=12, seed=5)
    assert whole.choices[0].text and whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == 12
    pieces = list(
        client.completions.create(model=model, prompt="hello world, the model", max_tokens=12, seed=5, stream=True)
    )
    assert "".join(p.choices[0].text for p in pieces) == whole.choices[0].text
    default = client.completions.create(model=model, prompt="hello", seed=5)
    assert default.usage.completion_tokens == 16  # OpenAI's default max_tokens for completions


def test_embeddings_are_the_embedders_own(served):
    from macapp.core.docs.embedder import load_embedder

    texts = ["Honey bees live in colonies.", "Magma rises through cracks in the crust."]
    client = openai_client(served.url)
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # the SDK asks for base64
    vectors = np.array([d.embedding for d in response.data], dtype=np.float32)
    expected = load_embedder().embed(texts)
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert response.usage.prompt_tokens > 10

    raw = httpx.post(f"{served.url}/embeddings", json={"model": "all-MiniLM-L6-v2", "input": texts[0]}).json()
    assert raw["data"][0]["index"] == 0 and len(raw["data"]) == 1
    np.testing.assert_allclose(raw["data"][0]["embedding"], expected[0], atol=1e-6)

    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=served.models["tiny"], input="x")  # a chat model


def test_errors_have_openai_shape(served):
    client = openai_client(served.url)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=USER)
    assert err.value.status_code == 404 and err.value.code == "model_not_found"

    raw = httpx.post(f"{served.url}/chat/completions", json={"model": "no-such-model", "messages": USER})
    assert raw.status_code == 404 and raw.headers["content-type"] == "application/json"
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}

    bad = httpx.post(
        f"{served.url}/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert "JSON" in bad.json()["error"]["message"]

    for body, param in [
        ({"model": served.models["tiny"]}, "messages"),
        ({"model": served.models["tiny"], "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": served.models["tiny"], "messages": USER, "n": 2}, "n"),
    ]:
        response = httpx.post(f"{served.url}/chat/completions", json=body)
        assert response.status_code == 400 and response.json()["error"]["param"] == param

    missing = httpx.get(served.url.removesuffix("/v1") + "/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"]


def test_max_tokens_beyond_the_context_is_a_clear_400(served):
    client = openai_client(served.url)
    model = served.models["tiny"]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=model, messages=USER, max_tokens=5000, stream=stream)
        assert err.value.code == "context_length_exceeded" and err.value.param == "max_tokens"
        assert "512" in err.value.message
    ok = client.chat.completions.create(model=model, messages=USER, max_tokens=3)  # the model is still fine
    assert ok.usage.completion_tokens == 3


@pytest.fixture
def keyed(library):
    from macapp.core.server.launch import ServerOptions, start_server

    with start_server(ServerOptions(port=0, api_key="sesame", n_ctx=512)) as server:
        yield server


def test_wrong_or_missing_key_is_401(keyed, library):
    with pytest.raises(openai.AuthenticationError) as err:
        openai_client(keyed.url, api_key="wrong").models.list()
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    assert httpx.get(f"{keyed.url}/models").status_code == 401
    reply = openai_client(keyed.url, api_key="sesame").chat.completions.create(
        model=library["tiny"], messages=USER, max_tokens=2
    )
    assert reply.usage.completion_tokens == 2


def test_a_bug_is_a_500_in_openai_shape(library, monkeypatch, caplog):
    from macapp.core.server.launch import ServerOptions, start_server
    from macapp.core.server.owners import ModelRegistry

    def broken_opener(self, ident, path):
        def open_model():
            raise RuntimeError("a bug while opening")

        return open_model

    monkeypatch.setattr(ModelRegistry, "_opener", broken_opener)
    with start_server(ServerOptions(port=0)) as server:
        response = httpx.post(f"{server.url}/chat/completions", json={"model": library["tiny"], "messages": USER})
    assert response.status_code == 500 and response.json()["error"]["type"] == "server_error"
    assert "a bug while opening" not in response.text  # details go to the log, not to the client
    assert "a bug while opening" in caplog.text
