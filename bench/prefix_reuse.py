"""Prefix reuse: how many prompt tokens llama.cpp evaluates on turn 20 of a conversation.

A 20-turn conversation runs through ``ChatSession`` on a generated GGUF. On turn 20 the figure is
the prompt tokens llama.cpp evaluated (its own ``n_p_eval`` counter) divided by the tokens that are
new since turn 19 (the whole prompt minus turn 19's prompt and answer). The baseline, in the same
run and on the same conversation, is what llama-cpp-python does by itself: re-tokenize the whole
rendered prompt each turn and reuse its longest matching cached prefix (``Llama.generate``). Its
reuse breaks wherever re-tokenized answer text differs from the tokens the model generated.

Usage: ``python -m bench.prefix_reuse [--turns N]``; the last line reads
``turn20_prompt_eval_tokens_ratio=… baseline_ratio=… target=1.0 ok=…``; exit 1 if not ok.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

QUESTIONS = [
    "hello, what is the model?",
    "and how is the chat?",
    "what is a document?",
    "how is it in a pdf?",
    "is it you, the model?",
]


def n_p_eval(llm) -> int:
    import llama_cpp

    return llama_cpp.llama_perf_context(llm.ctx).n_p_eval


def reset_perf(llm) -> None:
    import llama_cpp

    llama_cpp.llama_perf_context_reset(llm.ctx)


def ours(engine, turns: int, sampling) -> tuple[float, list[dict]]:
    from macapp.core.chat.session import ChatSession
    from macapp.core.chat.store import ChatStore

    session = ChatSession(engine, ChatStore(), sampling=sampling)
    previous_used = 0
    ratio = 0.0
    for i in range(turns):
        reset_perf(engine.llama)
        stream = session.send(QUESTIONS[i % len(QUESTIONS)])
        while True:
            try:
                next(stream)
            except StopIteration as done:
                turn = done.value
                break
        new = turn.result.prompt_tokens - previous_used
        evaluated = n_p_eval(engine.llama)
        ratio = evaluated / new
        print(f"turn {i + 1}: prompt {turn.result.prompt_tokens}, new {new}, evaluated {evaluated}", flush=True)
        previous_used = turn.tokens_used
    history = [{"role": m.role, "content": m.content} for m in session.thread()]
    return ratio, history


def baseline(engine, turns: int, sampling) -> float:
    """llama-cpp-python alone on the same questions: render and re-tokenize the whole conversation
    each turn, generate with ``Llama.generate`` (its own longest-cached-prefix reuse)."""
    llm = engine.llama
    llm.reset()
    history: list[dict] = []
    previous_used = 0
    ratio = 0.0
    for i in range(turns):
        history.append({"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]})
        prompt = engine.template.render(history).text
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        reset_perf(llm)
        llm.set_seed(sampling.seed)
        answer: list[int] = []
        for token in llm.generate(
            tokens,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
        ):
            answer.append(token)
            if len(answer) >= sampling.max_tokens:
                break
        llm.eval(answer[-1:])  # the whole answer in the cache, as in our path
        new, evaluated = len(tokens) - previous_used, n_p_eval(llm)
        ratio = evaluated / new
        previous_used = len(tokens) + len(answer)
        history.append({"role": "assistant", "content": llm.detokenize(answer).decode("utf-8", "replace")})
    print(f"baseline turn {turns}: prompt {len(tokens)}, new {new}, evaluated {evaluated}", flush=True)
    return ratio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=20)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MACAPP_HOME"] = str(Path(tmp) / "home")
        from macapp.core.engines.base import SamplingSettings
        from macapp.core.engines.llama_engine import LlamaCppEngine
        from macapp.core.models.estimate import RuntimeSettings
        from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf

        path = write_tiny_gguf(Path(tmp) / "reuse.gguf", TinySpec(n_embd=128, n_head=4, vocab_size=1000, ctx=8192))
        engine = LlamaCppEngine(path, RuntimeSettings(n_ctx=8192))
        for _ in engine.load():
            pass
        sampling = SamplingSettings(seed=5, max_tokens=40)
        ratio, _ = ours(engine, args.turns, sampling)
        base = baseline(engine, args.turns, sampling)
        engine.unload()
    ok = abs(ratio - 1.0) < 1e-9
    print(f"turn{args.turns}_prompt_eval_tokens_ratio={ratio:.3f} baseline_ratio={base:.3f} target=1.0 ok={ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
