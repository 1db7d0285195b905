"""What the OpenAI-compatible server costs: decode speed through it, and small requests per second.

- Decode: one streaming client (httpx, Server-Sent Events parsed line by line, as SDKs do) against
  ``macapp serve`` in its own process, against the same model loaded in this process by ``open_engine`` with
  the same plan (``--ctx 1024``) and called directly. Same generated model as ``decode_overhead`` (~190M
  parameters in f16: an answer takes seconds), same prompt and sampling, same number of tokens; runs are
  interleaved. Both sides count the same way: tokens after the first over the time from the first piece of
  text the consumer sees to the last. ``server_decode_ratio`` = the server's fastest run / the direct
  fastest run (target ≥ 0.95): as in ``bench/ingest.py``, a burst of load from other processes (llama.cpp's
  threads fight badly over 2 cores) then hurts neither side; the ratio of medians is printed beside it.
- Requests: small completions (a tiny model, 16 tokens each) from 4 concurrent clients, each with its own
  keep-alive connection, against the same server: ``rps_4_clients``; one client: ``rps_1_client``; the same
  completions called directly on an engine in this process: ``direct_rps`` (each the best of 3 rounds). One
  model has one owner, so 4 clients queue rather than add throughput; the figure shows they cost nothing.

Usage: ``python -m bench.server_overhead [--runs N] [--tokens N] [--requests N]``; the last line reads
``server_decode_ratio=… median_ratio=… server_tps=… direct_tps=… rps_4_clients=… rps_1_client=… direct_rps=…
target=0.95 ok=…``;
exit 1 if not ok.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGET = 0.95
ROOT = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": "hello world, what is the model and how is the chat?"}]
SAMPLING = {"temperature": 0.7, "top_p": 0.95, "seed": 11}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, log: Path) -> subprocess.Popen:
    import httpx

    env = dict(os.environ, MACAPP_HOME=str(home), PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "macapp", "serve", "--port", str(port), "--ctx", "1024", "--idle-unload", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            break
    raise SystemExit(f"the server did not start; see {log}")


def server_tps(client, url: str, model: str, n_tokens: int) -> tuple[float, int]:
    body = {
        "model": model,
        "messages": MESSAGES,
        **SAMPLING,
        "max_tokens": n_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first = last = 0.0
    tokens = 0
    with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            for choice in event["choices"]:
                if choice["delta"].get("content"):
                    last = time.perf_counter()
                    first = first or last
    return (tokens - 1) / (last - first), tokens


def direct_tps(engine, n_tokens: int) -> tuple[float, int]:
    from macapp.core.engines.base import SamplingSettings

    sampling = SamplingSettings(**SAMPLING, max_tokens=n_tokens)
    stream = engine.stream_chat(MESSAGES, sampling)
    first = last = 0.0
    while True:
        try:
            chunk = next(stream)
        except StopIteration as done:
            result = done.value
            break
        if chunk.text:
            last = time.perf_counter()
            first = first or last
    return (result.completion_tokens - 1) / (last - first), result.completion_tokens


def requests_per_s(url: str, model: str, clients: int, per_client: int) -> float:
    import httpx

    body = {"model": model, "prompt": "hello world, the model", "max_tokens": 16, "seed": 1}
    barrier = threading.Barrier(clients + 1)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with httpx.Client(timeout=60) as http:
                http.post(f"{url}/completions", json=body).raise_for_status()  # connect, warm
                barrier.wait()
                for _ in range(per_client):
                    http.post(f"{url}/completions", json=body).raise_for_status()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return clients * per_client / (time.perf_counter() - t0)


def direct_requests_per_s(engine, count: int) -> float:
    from macapp.core.engines.base import SamplingSettings

    sampling = SamplingSettings(seed=1, max_tokens=16)
    t0 = time.perf_counter()
    for _ in range(count):
        for _ in engine.stream_completion("hello world, the model", sampling):
            pass
    return count / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--requests", type=int, default=40, help="small completions per client")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["MACAPP_HOME"] = str(home)
        import httpx

        from bench.decode_overhead import build_model
        from macapp.core.engines import open_engine
        from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf
        from macapp.core.settings import Settings

        big = build_model(Path(tmp))
        tiny = write_tiny_gguf(Path(tmp) / "tiny.gguf", TinySpec(name="bench-requests"))
        Settings(model_files=[str(big), str(tiny)]).save()
        port = free_port()
        server = start_server(home, port, Path(tmp) / "server.log")
        url = f"http://127.0.0.1:{port}/v1"
        try:
            engine = open_engine(str(big), n_ctx=1024)  # the plan the server makes with --ctx 1024
            for _ in engine.load():
                pass
            with httpx.Client(timeout=120) as client:
                server_tps(client, url, big.name, 20)  # loads the server's copy; warms both paths
                direct_tps(engine, 20)
                servers, directs = [], []
                for i in range(args.runs):
                    for side in ("server", "direct") if i % 2 == 0 else ("direct", "server"):
                        if side == "server":
                            tps, n_server = server_tps(client, url, big.name, args.tokens)
                            servers.append(tps)
                        else:
                            tps, n_direct = direct_tps(engine, args.tokens)
                            directs.append(tps)
                    print(
                        f"run {i + 1}: server {servers[-1]:.1f} tokens/s ({n_server}), "
                        f"direct {directs[-1]:.1f} tokens/s ({n_direct})",
                        flush=True,
                    )
            engine.unload()

            small = open_engine(str(tiny), n_ctx=1024)
            for _ in small.load():
                pass
            rounds = range(3)  # each figure is its best round, as the decode runs are
            direct_rps = max(direct_requests_per_s(small, args.requests) for _ in rounds)
            small.unload()
            rps_1 = max(requests_per_s(url, tiny.name, 1, args.requests) for _ in rounds)
            rps_4 = max(requests_per_s(url, tiny.name, 4, args.requests) for _ in rounds)
            print(
                f"small completions: 4 clients {rps_4:.0f}/s, 1 client {rps_1:.0f}/s, direct {direct_rps:.0f}/s",
                flush=True,
            )
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    ratio = max(servers) / max(directs)
    median_ratio = statistics.median(servers) / statistics.median(directs)
    ok = ratio >= TARGET
    print(
        f"server_decode_ratio={ratio:.3f} median_ratio={median_ratio:.3f} server_tps={max(servers):.1f} "
        f"direct_tps={max(directs):.1f} rps_4_clients={rps_4:.1f} rps_1_client={rps_1:.1f} "
        f"direct_rps={direct_rps:.1f} target={TARGET} ok={ok}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
