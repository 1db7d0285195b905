"""The real-model tier over HTTP: the official ``openai`` client asks SmolLM2-135M-Instruct through ``macapp serve``."""

from __future__ import annotations

import pytest

from macapp.core.server.launch import ServerOptions, start_server
from macapp.core.settings import Settings
from tests.server.conftest import openai_client

pytestmark = pytest.mark.real_model

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


def test_the_openai_client_gets_the_same_real_answer_whole_and_streamed(real_model):
    Settings(model_files=[str(real_model)]).save()
    with start_server(ServerOptions(port=0, n_ctx=2048, idle_unload_s=0)) as server:
        client = openai_client(server.url)
        model = next(m.id for m in client.models.list().data if "smollm2" in m.id.lower())

        whole = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, seed=0, max_tokens=64)
        text = whole.choices[0].message.content
        assert "Paris" in text and "<|im_end|>" not in text
        assert whole.choices[0].finish_reason == "stop"  # the model ended its turn itself
        assert 0 < whole.usage.completion_tokens < 64 and whole.usage.prompt_tokens > 10

        stream = client.chat.completions.create(
            model=model,
            messages=QUESTION,
            temperature=0,
            seed=0,
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == text
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # it really streamed
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens

        follow_up = [
            *QUESTION,
            {"role": "assistant", "content": text},
            {"role": "user", "content": "What is the capital of Italy?"},
        ]
        second = client.chat.completions.create(model=model, messages=follow_up, temperature=0, max_tokens=64)
        assert "Rome" in second.choices[0].message.content
