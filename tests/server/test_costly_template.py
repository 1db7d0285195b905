"""The server with a model whose chat template loops 10^9 times: it answers, and other requests are not held up."""

from __future__ import annotations

import threading
import time

import httpx

from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf
from macapp.core.server.launch import ServerOptions, start_server
from macapp.core.settings import Settings
from tests.cli.test_costly_template_cli import LOOPS_1E9
from tests.server.conftest import openai_client


def test_a_cpu_bomb_template_is_answered_while_other_requests_keep_flowing(tmp_path, isolated_home):
    bomb = write_tiny_gguf(tmp_path / "bomb.gguf", TinySpec(name="bomb", chat_template=LOOPS_1E9 + "{# server #}"))
    Settings(model_files=[str(bomb)], include_lm_studio=False).save()
    with start_server(ServerOptions(port=0, n_ctx=512, idle_unload_s=0)) as server:
        client = openai_client(server.url, timeout=30)
        outcome: dict[str, object] = {}

        def chat() -> None:
            start = time.monotonic()
            reply = client.chat.completions.create(
                model=str(bomb), max_tokens=6, seed=1, messages=[{"role": "user", "content": "hello world"}]
            )
            outcome["text"], outcome["seconds"] = reply.choices[0].message.content, time.monotonic() - start

        thread = threading.Thread(target=chat)
        thread.start()
        latencies = []
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while thread.is_alive():
                start = time.monotonic()
                assert http.get("/models").status_code == 200
                latencies.append(time.monotonic() - start)
                time.sleep(0.05)
        thread.join()
        assert outcome["text"] and outcome["seconds"] < 10, outcome  # ~2.5 s here: load, 1 s of template, answer
        assert len(latencies) >= 5 and max(latencies) < 0.5, latencies  # asked all through the chat's render
        again = time.monotonic()
        client.chat.completions.create(
            model=str(bomb), max_tokens=2, seed=1, messages=[{"role": "user", "content": "and again"}]
        )
        assert time.monotonic() - again < 1.0  # the template is not run a second time
