"""Tools, ``tool_choice`` and ``response_format`` through the official ``openai`` client, and what the server refuses.

The real small instruct model (SmolLM2-135M-Instruct) answers under the grammar; the tiny generated models
only serve the refusals (no model runs for a 400).
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

from macapp.core.server.launch import ServerOptions, start_server
from macapp.core.settings import Settings
from tests.server.conftest import openai_client

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time now in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 40}},
            "required": ["zone"],
        },
    },
}
ASK = [{"role": "user", "content": "What's the weather in Paris today?"}]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "languages": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}, "country": {"enum": ["FR", "DE", "IT"]}},
            "required": ["city", "country"],
        },
    },
    "required": ["name", "age", "address"],
}


@pytest.fixture
def real_server(real_model):
    """The real small model behind ``macapp serve``."""
    Settings(model_files=[str(real_model)], include_lm_studio=False).save()
    with start_server(ServerOptions(port=0, n_ctx=2048, idle_unload_s=0)) as server:
        client = openai_client(server.url, timeout=300)
        yield client, next(m.id for m in client.models.list().data if "smollm2" in m.id.lower())


def arguments_of(call, tool) -> dict:
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, tool["function"]["parameters"])
    return args


@pytest.mark.real_model
def test_json_schema_response_parses_and_validates(real_server):
    client, model = real_server
    for seed in (1, 2, 3):
        response = client.chat.completions.create(
            model=model,
            seed=seed,
            temperature=0.8,
            max_tokens=200,
            messages=[{"role": "user", "content": "Describe a person who lives in Europe."}],
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
        )
        jsonschema.validate(json.loads(response.choices[0].message.content), PERSON)
        assert response.choices[0].finish_reason == "stop"

    obj = client.chat.completions.create(
        model=model,
        seed=4,
        max_tokens=200,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give me a JSON object about cats."}],
    )
    assert isinstance(json.loads(obj.choices[0].message.content), dict)


@pytest.mark.real_model
def test_required_tool_choice_returns_schema_valid_calls(real_server):
    client, model = real_server
    for seed in (1, 2, 3):
        response = client.chat.completions.create(
            model=model,
            messages=ASK,
            tools=[WEATHER, TIME],
            tool_choice="required",
            seed=seed,
            temperature=0.8,
            max_tokens=300,
        )
        choice = response.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
        for call in choice.message.tool_calls:
            tool = WEATHER if call.function.name == "get_weather" else TIME
            assert call.function.name in ("get_weather", "get_time") and call.id and call.type == "function"
            arguments_of(call, tool)

    named = client.chat.completions.create(
        model=model,
        messages=ASK,
        tools=[WEATHER, TIME],
        seed=5,
        max_tokens=300,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    calls = named.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "get_time"
    arguments_of(calls[0], TIME)

    none = client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER], tool_choice="none", seed=1, max_tokens=40
    )
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason in ("stop", "length")
    assert none.choices[0].message.content


@pytest.mark.real_model
def test_streamed_tool_calls_assemble_like_the_whole_answer(real_server):
    client, model = real_server
    options = dict(
        model=model, messages=ASK, tools=[WEATHER], tool_choice="required", seed=11, temperature=0, max_tokens=300
    )
    whole = client.chat.completions.create(**options).choices[0].message
    chunks = list(client.chat.completions.create(**options, stream=True))
    assembled: dict[int, dict] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or ():
            entry = assembled.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = delta.id or entry["id"]
            entry["name"] += delta.function.name or "" if delta.function else ""
            entry["arguments"] += delta.function.arguments or "" if delta.function else ""
    assert [c.choices[0].finish_reason for c in chunks][-1] == "tool_calls"
    assert not "".join(c.choices[0].delta.content or "" for c in chunks)  # a call's text is not content
    assert [(e["name"], json.loads(e["arguments"])) for e in assembled.values()] == [
        (c.function.name, json.loads(c.function.arguments)) for c in whole.tool_calls
    ]
    assert all(e["id"] for e in assembled.values())

    # The client sends the call and its result back: the conversation goes on.
    call = whole.tool_calls[0]
    follow = client.chat.completions.create(
        model=model,
        seed=1,
        max_tokens=40,
        tools=[WEATHER],
        messages=[
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": "clear"}'},
        ],
    )
    assert follow.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_fields_the_server_cannot_honour_are_400s_with_json_errors(served):
    client = openai_client(served.url)
    model = served.models["tiny"]
    user = [{"role": "user", "content": "hi"}]
    refused = [
        (dict(n=2), "n"),
        (dict(logprobs=True), "logprobs"),
        (dict(top_logprobs=2), "top_logprobs"),
        (dict(logit_bias={"50256": -100}), "logit_bias"),
        (dict(presence_penalty=0.5), "presence_penalty"),
        (dict(frequency_penalty=0.5), "frequency_penalty"),
        (dict(modalities=["text", "audio"]), "modalities"),
        (dict(tool_choice="sometimes", tools=[WEATHER]), "tool_choice"),
        (dict(tool_choice={"type": "function", "function": {"name": "nope"}}, tools=[WEATHER]), "tool_choice"),
        (dict(tool_choice="required"), "tool_choice"),
        (dict(tools=[{"type": "function", "function": {"name": "x", "parameters": {"type": "array"}}}]), "tools"),
        (dict(tools=[{"type": "function", "function": {"name": "bad name!"}}]), "tools"),
        (dict(response_format={"type": "xml"}), "response_format"),
        (dict(response_format={"type": "json_schema", "json_schema": {"name": "x"}}), "response_format"),
        (
            dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}),
            "response_format",
        ),
    ]
    for extra, param in refused:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=model, messages=user, max_tokens=4, **extra)
        assert err.value.status_code == 400 and err.value.body["param"] == param, (extra, err.value.body)
        assert err.value.body["message"]

    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    raw = httpx.post(f"{served.url}/chat/completions", json={"model": model, "messages": image})
    assert raw.status_code == 400 and "image_url" in raw.json()["error"]["message"]
    legacy = httpx.post(f"{served.url}/chat/completions", json={"model": model, "messages": user, "functions": []})
    assert legacy.status_code == 400 and legacy.json()["error"]["param"] == "functions"

    # Vendor extras clients commonly send keep working.
    ok = client.chat.completions.create(
        model=model, messages=user, max_tokens=4, seed=1, extra_body={"top_k": 20, "min_p": 0.1, "repeat_penalty": 1.05}
    )
    assert ok.choices[0].finish_reason == "length"
