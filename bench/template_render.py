"""Template render overhead: what the time and size limits cost a real chat template.

Renders the SmolLM2-135M-Instruct chat template (read from the test model when ``make setup`` fetched
it, else the same text below) and a Llama 3 style template, on a 2-turn and a 40-turn conversation,
through ``ChatTemplate.render`` (limited sandbox, budget, fallback handling). The baseline, in the
same run, is the plain ``ImmutableSandboxedEnvironment`` with the same options and globals that
``templates.py`` used before the limits, rendering the same variables. The figure is the ratio of
the best of several alternating batches of this thread's CPU time (ours / baseline), so load from
other processes counts as little as it can; then the 10^9-step loop template is rendered once and must end within 2 s.

Usage: ``python -m bench.template_render``; the last line reads
``worst_ratio=… bomb_s=… target_ratio=2.0 target_bomb_s=2.0 ok=…``; exit 1 if not ok.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2_GGUF = ROOT / "tests" / "data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
BOMB = (
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}"
)
TARGET_RATIO = 2.0  # the limits cost about a microsecond per message (intercepted +, filters, loop steps);
# twice a render of a tenth of a millisecond is still far below the time of one generated token
TARGET_BOMB_S = 2.0
BATCHES, RUNS = 15, 200


def smollm2_template() -> tuple[str, str]:
    if SMOLLM2_GGUF.is_file():
        from macapp.core.models.gguf_header import read_header_from_path

        source = read_header_from_path(SMOLLM2_GGUF).get("tokenizer.chat_template")
        if source:
            return source, "from the test model"
    return SMOLLM2, "built-in copy"


def conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."}]
    for i in range(turns):
        messages.append(
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": f"Turn {i}: " + "some words of a conversation " * 12,
            }
        )
    return messages


def baseline_environment():
    """The sandbox as ``templates.py`` set it up before the limits."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from macapp.core.engines import templates

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = templates._tojson
    env.globals["raise_exception"] = templates._raise_exception
    env.globals["strftime_now"] = templates._strftime_now
    return env


def best_batches(*renders) -> list[float]:
    """Per render: the best batch's seconds per call; batches alternate so load falls on both alike."""
    best = [float("inf")] * len(renders)
    for _ in range(BATCHES):
        for i, render in enumerate(renders):
            start = time.thread_time()  # CPU time of this thread: other processes' load does not count
            for _ in range(RUNS):
                render()
            best[i] = min(best[i], (time.thread_time() - start) / RUNS)
    return best


def measure(name: str, source: str, messages: list[dict[str, str]], env: Any) -> float:
    from macapp.core.engines.templates import ChatTemplate

    ours = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    plain = env.from_string(source)
    variables = {
        "tools": None,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "messages": messages,
        "add_generation_prompt": True,
    }
    rendered = ours.render(messages)
    if rendered.notice is not None or rendered.text != plain.render(variables):
        print(f"{name}: renders differently ({rendered.notice})", file=sys.stderr)
        return float("inf")
    ours_s, plain_s = best_batches(lambda: ours.render(messages), lambda: plain.render(dict(variables)))
    ratio = ours_s / plain_s
    print(f"{name}: ours {ours_s * 1e6:.1f} µs, baseline {plain_s * 1e6:.1f} µs, ratio {ratio:.2f}", flush=True)
    return ratio


def main() -> int:
    from macapp.core.engines.templates import ChatTemplate

    env = baseline_environment()
    smollm2, origin = smollm2_template()
    print(f"SmolLM2 template: {origin}", flush=True)
    ratios = [
        measure(f"{name}, {turns} turns", source, conversation(turns), env)
        for name, source in (("SmolLM2", smollm2), ("Llama 3", LLAMA3))
        for turns in (2, 40)
    ]
    start = time.perf_counter()
    rendered = ChatTemplate(BOMB).render(conversation(2))
    bomb_s = time.perf_counter() - start
    print(f"10^9-step loop: {bomb_s:.2f} s, notice: {rendered.notice}", flush=True)
    worst = max(ratios)
    ok = worst <= TARGET_RATIO and bomb_s <= TARGET_BOMB_S and rendered.notice is not None
    print(
        f"worst_ratio={worst:.2f} bomb_s={bomb_s:.2f} target_ratio={TARGET_RATIO} target_bomb_s={TARGET_BOMB_S} ok={ok}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
