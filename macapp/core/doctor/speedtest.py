"""A short generation speed test on the smallest installed model (``macapp doctor``'s last section).

``speed_test`` loads a GGUF model the normal way (``open_engine``, fit check included), feeds it a
prompt of about ``prompt_tokens`` tokens (a count, "1, 2, 3, ..."), and lets it keep counting for
``seconds`` of generation or ``max_tokens`` tokens, whichever comes first. It yields
``SpeedTestProgress`` (loading, then generating with the tokens so far) and returns a
``SpeedTestResult``; ``speed_test_smallest`` picks the model from the library and returns a skipped
result, with the reason, when there is none or it does not fit.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from macapp.core.errors import UserError
from macapp.core.progress import CancelToken, Progress

DEFAULT_SECONDS = 10.0
DEFAULT_MAX_TOKENS = 4096
DEFAULT_PROMPT_TOKENS = 256
DEFAULT_CTX = 4096
# Encoders (embedding models) cannot generate; a library may well hold one.
ENCODER_ARCHITECTURES = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert", "neo-bert", "t5encoder"}
)
_GREEDY: dict[str, Any] = {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, "seed": 0}


@dataclass(frozen=True)
class SpeedTestProgress(Progress):
    """Loading (``done`` of 1) or generating (``done`` seconds of ``total``, ``tokens`` so far)."""

    tokens: int = 0


@dataclass(frozen=True)
class SpeedTestResult:
    """What the test measured; ``skipped`` says why nothing was measured (the numbers are then 0)."""

    model: str = ""  # library id or path
    file_name: str = ""
    quantization: str = ""
    file_size: int = 0
    backend: str = ""  # where llama.cpp ran: metal | cpu
    n_ctx: int = 0  # context the model was loaded with
    load_s: float = 0.0
    prompt_tokens: int = 0  # evaluated prompt tokens
    prompt_s: float = 0.0
    tokens: int = 0  # generated tokens
    generation_s: float = 0.0
    stopped_by: str = ""  # time | max_tokens | context | model (end of text)
    skipped: str | None = None

    @property
    def prompt_tokens_per_s(self) -> float:
        return self.prompt_tokens / self.prompt_s if self.prompt_s > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.generation_s if self.generation_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        if self.skipped:
            return {"skipped": self.skipped}
        data = asdict(self)
        del data["skipped"]
        for key in ("load_s", "prompt_s", "generation_s"):
            data[key] = round(data[key], 4)
        data["prompt_tokens_per_s"] = round(self.prompt_tokens_per_s, 2)
        data["tokens_per_s"] = round(self.tokens_per_s, 2)
        return data


def smallest_model(entries: Iterable) -> Any | None:
    """The smallest library entry (by file size) that can generate text, or None."""
    usable = [e for e in entries if e.facts is not None and e.facts.architecture not in ENCODER_ARCHITECTURES]
    return min(usable, key=lambda e: (e.facts.file_size, e.id), default=None)


def counting_prompt(count_tokens, target: int) -> str:
    """ "Counting: 1, 2, 3, ..." long enough to take about ``target`` tokens (``count_tokens(text)``)."""
    n = 16
    while True:
        text = "Counting: " + ", ".join(str(i) for i in range(1, n + 1)) + ","
        if count_tokens(text) >= target or n >= 100_000:
            return text
        n *= 2


def speed_test(
    ref: str,
    *,
    seconds: float = DEFAULT_SECONDS,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    n_ctx: int = DEFAULT_CTX,
    budget: int | None = None,
    cancel: CancelToken | None = None,
) -> Generator[SpeedTestProgress, None, SpeedTestResult]:
    """Load ``ref`` (a GGUF path or library id) and measure prompt processing and generation speed.

    Args:
        seconds: generation time budget; the test stops at the first token past it.
        max_tokens: stop earlier after this many generated tokens.
        prompt_tokens: about how long the prompt is (prompt-processing speed is measured on it).
        n_ctx: context to load the model with (capped at the model's own).
        budget: memory the model must fit in (bytes; default: this machine's, as for any load).
    Yields:
        ``SpeedTestProgress``: stage "loading" (0..1), then "generating" (seconds so far, tokens so far).
    Raises ``UserError`` when the model won't fit or load, ``Cancelled`` when ``cancel`` is set.
    """
    from macapp.core.engines import open_engine
    from macapp.core.engines.base import SamplingSettings
    from macapp.core.engines.llama_engine import LlamaCppEngine

    if seconds <= 0:
        raise UserError(f"the speed test needs a positive number of seconds (got {seconds})")
    cancel = cancel or CancelToken()
    engine = open_engine(ref, n_ctx=n_ctx, budget=budget)
    if not isinstance(engine, LlamaCppEngine):
        raise UserError(f"the speed test runs GGUF models; {ref} is an {engine.name} model")
    try:
        started = time.perf_counter()
        for step in engine.load(cancel):
            yield SpeedTestProgress("loading", step.fraction or 0.0, 1, step.message)
        load_s = time.perf_counter() - started
        n_ctx_used = engine.n_ctx
        # Warm up (Metal compiles its kernels on the first batch) on a prompt sharing nothing with the test's.
        warm = engine.stream_completion("Hi", SamplingSettings(**_GREEDY, max_tokens=1))
        for _ in warm:
            pass
        prompt = counting_prompt(engine.count_tokens, min(prompt_tokens, n_ctx_used // 4))
        room = n_ctx_used - engine.count_tokens(prompt) - 8
        limit = max(1, min(max_tokens, room))
        stop = CancelToken()  # ends the answer (keeping its counts) at the time budget or on cancel
        stream = engine.stream_completion(prompt, SamplingSettings(**_GREEDY, max_tokens=limit), stop)
        yield SpeedTestProgress("generating", 0, seconds, f"Generating with {engine.path.name}")
        first_chunk_at = None
        timed_out = False
        while True:
            try:
                chunk = next(stream)
            except StopIteration as done:
                result = done.value
                break
            now = time.perf_counter()
            if first_chunk_at is None:
                first_chunk_at = now - chunk.elapsed_s
            elapsed = now - first_chunk_at
            if cancel.cancelled:
                stop.cancel()
            elif elapsed >= seconds and not stop.cancelled:
                timed_out = True
                stop.cancel()
            yield SpeedTestProgress(
                "generating",
                min(elapsed, seconds),
                seconds,
                f"{chunk.completion_tokens} tokens",
                tokens=chunk.completion_tokens,
            )
        cancel.raise_if_cancelled()
    finally:
        engine.unload()
    facts = engine.facts
    assert facts is not None  # read by load()
    if timed_out:
        stopped_by = "time"
    elif result.finish_reason == "length":
        stopped_by = "max_tokens" if limit == max_tokens else "context"
    else:
        stopped_by = {"stop": "model"}.get(result.finish_reason, result.finish_reason)
    return SpeedTestResult(
        model=ref,
        file_name=engine.path.name,
        quantization=facts.quantization,
        file_size=facts.file_size,
        backend=engine.settings.backend,
        n_ctx=n_ctx_used,
        load_s=load_s,
        prompt_tokens=result.prompt_eval_tokens,
        prompt_s=result.prompt_s,
        tokens=result.completion_tokens,
        generation_s=result.generation_s,
        stopped_by=stopped_by,
    )


def speed_test_smallest(
    entries: Iterable | None = None, *, cancel: CancelToken | None = None, **options
) -> Generator[SpeedTestProgress, None, SpeedTestResult]:
    """``speed_test`` on the smallest model in ``entries`` (default: the library), or a skipped result.

    Skipped (not raised): no model installed, or the smallest one does not fit this machine.
    """
    if entries is None:
        from macapp.core.models.library import iter_library

        entries = iter_library(cancel=cancel)
    entries = list(entries)
    entry = smallest_model(entries)
    if entry is None:
        return SpeedTestResult(
            skipped="no model installed"
            if not entries
            else "no installed model can generate text (unreadable or embedding-only)"
        )
    from macapp.core.engines import plan_load

    try:
        plan_load(entry.id, n_ctx=options.get("n_ctx", DEFAULT_CTX), budget=options.get("budget"))
    except UserError as exc:
        return SpeedTestResult(model=entry.id, file_name=entry.name, skipped=f"the smallest model does not fit: {exc}")
    return (yield from speed_test(entry.id, cancel=cancel, **options))
