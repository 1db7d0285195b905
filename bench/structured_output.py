"""How often the real small model's JSON answers and tool calls match their schema, with and without the grammar.

SmolLM2-135M-Instruct (the test model ``make setup`` fetches) answers 20 prompts, each paired with one of
four shapes: three ``response_format`` JSON schemas (nested objects, enums, arrays, optional properties)
and one tool set with ``tool_choice="required"`` (its template has no tool format, so the generic one is
used). Each prompt is answered twice with the same seed through ``constrained.stream_structured``: once
as served (llama.cpp samples under the grammar) and once with the grammar withheld (the same prompt,
parsed and validated the same way, no retry). For JSON answers both arms see the schema in the prompt.

Usage: ``python -m bench.structured_output [--seed 0] [--max-tokens 256]``; the last line reads
``with_grammar=… without_grammar=… ratio=… ok=…``; exit 1 if any answer under the grammar is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2_GGUF = ROOT / "tests" / "data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "languages": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}, "country": {"enum": ["FR", "DE", "IT", "ES"]}},
            "required": ["city", "country"],
        },
    },
    "required": ["name", "age", "address"],
}
REVIEW = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 60},
        "rating": {"enum": [1, 2, 3, 4, 5]},
        "pros": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3},
        "recommended": {"type": "boolean"},
    },
    "required": ["title", "rating", "recommended"],
}
TASKS = {
    "type": "object",
    "properties": {
        "tasks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "what": {"type": "string", "maxLength": 50},
                    "priority": {"enum": ["low", "medium", "high"]},
                    "done": {"type": "boolean"},
                },
                "required": ["what", "priority"],
            },
        }
    },
    "required": ["tasks"],
}
TOOLS = [
    {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
    {
        "name": "search_documents",
        "description": "Search the user's PDFs",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": 60}, "max_results": {"type": "integer"}},
            "required": ["query"],
        },
    },
    {
        "name": "get_time",
        "description": "The time now in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 40}},
            "required": ["zone"],
        },
    },
]
CASES = [
    ("person", "Describe a software engineer who lives in Berlin."),
    ("person", "Invent a French chef and describe them."),
    ("person", "Tell me about a retired teacher from Rome."),
    ("person", "Describe a student in Madrid who speaks three languages."),
    ("person", "Create a profile for a painter living in Paris."),
    ("review", "Review the book 'The Little Prince'."),
    ("review", "Write a review of a cheap pair of headphones."),
    ("review", "Review a pizza restaurant you did not like."),
    ("review", "Review the city of Lisbon as a holiday place."),
    ("review", "Review a laptop with a great screen and a weak battery."),
    ("tasks", "Make a to-do list for moving house."),
    ("tasks", "List what I need to do before a job interview."),
    ("tasks", "Plan my Saturday: groceries, laundry and a run."),
    ("tasks", "Turn this into tasks: call mum, pay rent, fix the bike."),
    ("tools", "What's the weather in Paris right now?"),
    ("tools", "Find the pages about invoices in my documents."),
    ("tools", "What time is it in Tokyo?"),
    ("tools", "Is it raining in London? Use Fahrenheit."),
    ("tools", "Search my PDFs for the warranty terms, at most 3 results."),
    ("tools", "What's the time in New York?"),
]
SCHEMAS = {"person": PERSON, "review": REVIEW, "tasks": TASKS}


class WithoutGrammar:
    """The same engine with its grammar support hidden: what any answer is without constraint."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.capabilities = replace(engine.capabilities, grammar=False)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


def run_case(engine, kind: str, prompt: str, sampling) -> tuple[bool, float, str]:
    from macapp.core.engines.constrained import OutputSpec, stream_structured
    from macapp.core.engines.tool_calls import ToolSpec
    from macapp.core.progress import drain

    if kind == "tools":
        spec = OutputSpec(tools=tuple(ToolSpec(**t) for t in TOOLS), tool_choice="required", parallel_tool_calls=False)
        messages = [{"role": "user", "content": prompt}]
    else:
        spec = OutputSpec(response_schema=SCHEMAS[kind])
        messages = [
            {
                "role": "user",
                "content": f"{prompt}\nAnswer with only JSON matching this schema: {json.dumps(SCHEMAS[kind])}",
            }
        ]
    started = time.perf_counter()
    _, result = drain(stream_structured(engine, messages, spec, sampling, max_attempts=1))
    valid = not result.problems and (bool(result.tool_calls) if kind == "tools" else result.value is not None)
    shown = json.dumps([[c.name, c.arguments] for c in result.tool_calls]) if result.tool_calls else result.result.text
    return valid, time.perf_counter() - started, shown if valid else f"{shown[:80]!r} -> {result.problems[:1]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args(argv)
    if not SMOLLM2_GGUF.is_file():
        print(f"{SMOLLM2_GGUF} is missing: run `make setup` (scripts/fetch-test-model.sh)", file=sys.stderr)
        return 1

    from macapp.core.engines.base import SamplingSettings
    from macapp.core.engines.llama_engine import LlamaCppEngine
    from macapp.core.models.estimate import RuntimeSettings
    from macapp.core.progress import drain

    engine = LlamaCppEngine(SMOLLM2_GGUF, RuntimeSettings(n_ctx=2048))
    drain(engine.load())
    bare = WithoutGrammar(engine)
    valid = {"with": 0, "without": 0}
    seconds = {"with": 0.0, "without": 0.0}
    for i, (kind, prompt) in enumerate(CASES):
        sampling = SamplingSettings(temperature=0.7, seed=args.seed + i, max_tokens=args.max_tokens)
        for arm, target in (("with", engine), ("without", bare)):
            ok, took, shown = run_case(target, kind, prompt, sampling)
            valid[arm] += ok
            seconds[arm] += took
            print(
                f"{i + 1:2d} {kind:6s} {arm:7s} grammar {'valid  ' if ok else 'INVALID'} {took:5.1f} s  {shown[:110]}",
                flush=True,
            )
    engine.unload()
    n = len(CASES)
    rate_with, rate_without = valid["with"] / n, valid["without"] / n
    ratio = f"{rate_with / rate_without:.1f}" if rate_without else "inf"
    print(
        f"schema-valid: {valid['with']}/{n} with the grammar, {valid['without']}/{n} without; "
        f"time per answer {seconds['with'] / n:.1f} s with, {seconds['without'] / n:.1f} s without"
    )
    ok = valid["with"] == n
    print(f"with_grammar={rate_with:.2f} without_grammar={rate_without:.2f} ratio={ratio} ok={ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
