"""Decode speed through Orchard's chat path against a raw llama-cpp-python token loop.

Same generated GGUF (large enough that an answer takes seconds), same sampling, same number of
tokens. The chat path is the whole thing the window runs: ``ChatSession.send`` (template, prompt
tokens with prefix reuse, the engine's token loop with incremental UTF-8 decoding and stop-string
hold-back) writing every chunk to the SQLite history. The baseline is ``Llama.generate`` with a
per-token ``detokenize``. Runs are interleaved; tokens/s counts from the first token to the last.

Usage: ``python -m bench.decode_overhead [--runs N] [--tokens N]``; the last line reads
``decode_ratio=… chat_tps=… raw_tps=… target=0.98 ok=…``; exit 1 if not ok.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.98
PROMPT = "hello world, what is the model and how is the chat?"


def build_model(root: Path) -> Path:
    from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf

    # ~190M parameters in f16: 15-25 ms a token on 2 x86 cores, about what an 8B Q4 model does on an M3
    spec = TinySpec(
        n_embd=1024,
        n_layer=12,
        n_head=16,
        n_head_kv=4,
        n_ff=2816,
        qtype="f16",
        vocab_size=16000,
        ctx=4096,
        name="bench-decode",
    )
    return write_tiny_gguf(root / "decode.gguf", spec)


def raw_tps(llm, template, sampling, n_tokens: int) -> float:
    prompt = template.render([{"role": "user", "content": PROMPT}]).text
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    llm.reset()
    llm.set_seed(sampling.seed)
    count, first = 0, 0.0
    for token in llm.generate(
        tokens,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        min_p=sampling.min_p,
        temp=sampling.temperature,
        repeat_penalty=sampling.repeat_penalty,
    ):
        if count == 0:
            first = time.perf_counter()
        llm.detokenize([token])
        count += 1
        if count >= n_tokens:
            break
    return (count - 1) / (time.perf_counter() - first)


def chat_tps(engine, store, sampling) -> float:
    from macapp.core.chat.session import ChatSession

    session = ChatSession(engine, store, sampling=sampling)
    stream = session.send(PROMPT)
    while True:
        try:
            next(stream)
        except StopIteration as done:
            turn = done.value
            break
    result = turn.result
    # the same definition as the raw loop: tokens after the first over the time since the first
    return (result.completion_tokens - 1) / result.generation_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=200)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MACAPP_HOME"] = str(Path(tmp) / "home")
        from macapp.core.chat.store import ChatStore
        from macapp.core.engines.base import SamplingSettings
        from macapp.core.engines.llama_engine import LlamaCppEngine
        from macapp.core.models.estimate import RuntimeSettings

        engine = LlamaCppEngine(build_model(Path(tmp)), RuntimeSettings(n_ctx=1024))
        for _ in engine.load():
            pass
        store = ChatStore()
        sampling = SamplingSettings(temperature=0.7, seed=11, max_tokens=args.tokens, repeat_penalty=1.1)
        chat_tps(engine, store, sampling)  # warm up both paths
        raw_tps(engine.llama, engine.template, sampling, 20)
        chats, raws = [], []
        for i in range(args.runs):
            for name in ("raw", "chat") if i % 2 == 0 else ("chat", "raw"):
                if name == "raw":
                    raws.append(raw_tps(engine.llama, engine.template, sampling, args.tokens))
                else:
                    chats.append(chat_tps(engine, store, sampling))
            print(f"run {i + 1}: chat {chats[-1]:.1f} tokens/s, raw {raws[-1]:.1f} tokens/s", flush=True)
        store.close()
        engine.unload()
    chat, raw = statistics.median(chats), statistics.median(raws)
    ratio = chat / raw
    ok = ratio >= TARGET
    print(f"decode_ratio={ratio:.3f} chat_tps={chat:.1f} raw_tps={raw:.1f} target={TARGET} ok={ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
