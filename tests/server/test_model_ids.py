"""/v1/models lists short ids (``smollm2-135m-instruct-q4_1``); requests take them, and the old ids still work."""

from __future__ import annotations

import pytest

from macapp.core.server.launch import ServerOptions, start_server
from macapp.core.settings import Settings
from tests.server.conftest import openai_client

USER = [{"role": "user", "content": "hi"}]


def test_models_lists_short_ids_and_requests_take_them_and_the_old_ones(served, model_files):
    client = openai_client(served.url)
    ids = {m.id for m in client.models.list().data}
    assert {"tiny", "quiet", "slow"} <= ids
    assert not any(":" in i or i.endswith(".gguf") for i in ids)  # no local:<path>, no file names
    assert client.models.retrieve("tiny").id == "tiny"
    answer = client.chat.completions.create(model="tiny", messages=USER, max_tokens=4)
    assert answer.model == "tiny" and answer.choices[0].finish_reason in ("stop", "length")
    path = model_files["tiny"]
    for old in (f"local:{path}", str(path), path.name, "TINY"):
        again = client.completions.create(model=old, prompt="hello", max_tokens=2)
        assert again.choices[0].text is not None, old


@pytest.mark.real_model
def test_the_real_model_is_listed_and_answers_by_its_short_id(real_model, isolated_home):
    Settings(model_files=[str(real_model)], include_lm_studio=False).save()
    with start_server(ServerOptions(port=0, n_ctx=512, idle_unload_s=0)) as server:
        client = openai_client(server.url)
        chat_ids = [m.id for m in client.models.list().data if getattr(m, "orchard_kind", "chat") == "chat"]
        assert chat_ids == ["smollm2-135m-instruct-q4_1"]
        question = [{"role": "user", "content": "What is the capital of France?"}]
        answer = client.chat.completions.create(
            model="smollm2-135m-instruct-q4_1", temperature=0, max_tokens=8, messages=question
        )
        assert answer.choices[0].message.content.strip()
