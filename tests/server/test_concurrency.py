"""One owner per model: concurrent clients queue and get their own answers; a client that leaves frees the model."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from macapp.core.server.launch import ServerOptions, start_server
from tests.server.conftest import openai_client

CLIENTS = 8


def ask(client, model: str, i: int, stream: bool) -> str:
    messages = [{"role": "user", "content": f"client {i}: hello world, what is the model?"}]
    if not stream:
        reply = client.chat.completions.create(
            model=model, messages=messages, max_tokens=48, seed=100 + i, temperature=1.0
        )
        return reply.choices[0].message.content
    chunks = client.chat.completions.create(
        model=model, messages=messages, max_tokens=48, seed=100 + i, temperature=1.0, stream=True
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks)


def test_eight_streaming_clients_get_complete_uncrossed_answers(served):
    model = served.models["tiny"]
    client = openai_client(served.url)
    order = list(range(CLIENTS))
    random.Random(0).shuffle(order)
    expected = {i: ask(client, model, i, stream=False) for i in order}  # one at a time, in another order
    assert len(set(expected.values())) == CLIENTS  # the seeds and prompts make every answer different

    answers: dict[int, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def one(i: int) -> None:
        try:
            own = openai_client(served.url)  # each thread its own connection pool, as separate programs would
            start.wait()
            answers[i] = ask(own, model, i, stream=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert answers == expected


@pytest.fixture
def long_served(library):
    """Room for a long answer: the slow model at 4,096 tokens takes several seconds to fill its context."""
    with start_server(ServerOptions(port=0, n_ctx=4096, idle_unload_s=0)) as server:
        yield server


def timed_small_answer(url: str, model: str) -> float:
    t0 = time.perf_counter()
    reply = openai_client(url, timeout=30).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=4, seed=1
    )
    assert reply.usage.completion_tokens == 4
    return time.perf_counter() - t0


def test_a_client_that_disconnects_frees_the_model(long_served, library):
    url, model = long_served.url, library["slow"]
    long_body = {
        "model": model,
        "messages": [{"role": "user", "content": "tell me everything"}],
        "seed": 2,
        "max_tokens": 4000,
    }
    baseline = timed_small_answer(url, model)  # loads the model

    # Mid-stream: read a few events, then hang up.
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{url}/chat/completions", json={**long_body, "stream": True}) as response,
    ):
        lines = response.iter_lines()
        got = [line for line, _ in zip(lines, range(8)) if line.startswith("data:")]
        assert len(got) >= 3
    after_stream = timed_small_answer(url, model)

    # Waiting for a whole answer: the client gives up (times out) and leaves.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/chat/completions", json=long_body, timeout=httpx.Timeout(30, read=0.5))
    after_whole = timed_small_answer(url, model)

    # Still queued behind another answer: it never starts once its client has gone.
    holder = httpx.Client(timeout=30)
    first = holder.stream("POST", f"{url}/chat/completions", json={**long_body, "stream": True})
    response = first.__enter__()
    next(response.iter_lines())  # the first answer is running
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/chat/completions", json=long_body, timeout=httpx.Timeout(30, read=0.3))
    first.__exit__(None, None, None)
    holder.close()
    after_queued = timed_small_answer(url, model)

    # The whole long answer takes over 30 s here; each next request only waited for a cancel. (The margin is for
    # llama.cpp's spinning threads, which on 2 cores can stall the other threads for a few hundred ms.)
    for waited in (after_stream, after_whole, after_queued):
        assert waited < max(3.0, 5 * baseline), (baseline, after_stream, after_whole, after_queued)
