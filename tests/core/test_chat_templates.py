"""Chat templates: real jinja in the sandbox, fallbacks with notices, system prompts, stop strings."""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime

import jinja2
import pytest

from macapp.core.engines.base import ChatMessage
from macapp.core.engines.templates import (
    FALLBACK_NAME,
    FALLBACK_STOP_STRINGS,
    ChatTemplate,
    RenderedPrompt,
    merge_system_into_user,
    render_chatml,
    template_stop_strings,
    with_system,
)

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    " + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = """{% set loop_messages = messages %}
{% for message in loop_messages %}
    {% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}
    {% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}
    {{- content -}}
{% endfor %}
{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
"""  # noqa: E501
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
CONVERSATION: list[ChatMessage] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
]


def test_chatml_template_renders_exactly():
    template = ChatTemplate(CHATML, name="qwen")
    turns = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
    )
    assert template.render(CONVERSATION) == RenderedPrompt(turns + "<|im_start|>assistant\n", None)
    assert template.render(CONVERSATION, add_generation_prompt=False) == RenderedPrompt(turns, None)
    assert template.notice is None
    # The Python fallback writes the same format.
    assert render_chatml(CONVERSATION) == turns + "<|im_start|>assistant\n"
    assert render_chatml(CONVERSATION, add_generation_prompt=False) == turns


def test_llama3_style_template_with_set_loop_and_bos():
    template = ChatTemplate(LLAMA3, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    rendered = template.render(CONVERSATION[:2])
    assert rendered.notice is None
    assert rendered.text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert template.stop_strings == ("<|eot_id|>",)


def test_extra_variables_reach_the_template_and_undefined_is_lenient():
    source = "{% if tools %}T{% endif %}{{ greeting }}{{ missing }}|{{ missing is defined }}|{{ eos_token }}"
    template = ChatTemplate(source, eos_token="</s>")
    assert template.render(CONVERSATION).text == "|False|</s>"
    assert template.render(CONVERSATION, tools=[{"name": "x"}], greeting="hey").text == "They|False|</s>"


HOSTILE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ joiner.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ self._TemplateReference__context }}",
    "{% for m in messages %}{{ m.__class__ }}{% endfor %}",
    "{{ '{0.__class__.__init__.__globals__}'.format(messages) }}",
    "{% set _ = messages.append({'role':'x','content':'y'}) %}",
    "{% set _ = messages[0].update({'role':'x'}) %}{{ messages[0].role }}",
    "{{ messages.pop() }}",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_templates_run_nothing(source, tmp_path):
    marker = tmp_path / "MARKER"
    source = source.replace("MARKER", str(marker))
    messages = copy.deepcopy(CONVERSATION)
    rendered = ChatTemplate(source, name="evil").render(messages)
    assert not marker.exists()
    assert messages == CONVERSATION
    assert rendered.text == render_chatml(CONVERSATION)
    assert rendered.notice is not None
    assert "tried something unsafe" in rendered.notice and "not run" in rendered.notice
    assert FALLBACK_NAME in rendered.notice and "\n" not in rendered.notice


def test_the_hostile_payload_is_real_outside_the_sandbox(tmp_path):
    """Proves the test above would catch a leak: plain jinja runs the same template."""
    marker = tmp_path / "MARKER"
    jinja2.Environment().from_string(HOSTILE[1].replace("MARKER", str(marker))).render()
    assert marker.exists()


def test_broken_and_missing_templates_fall_back_to_chatml():
    broken = ChatTemplate("{% for m in messages %}{{ m.content }", name="broken")
    rendered = broken.render(CONVERSATION)
    assert rendered.text == render_chatml(CONVERSATION)
    assert rendered.notice == ("This model's chat template is broken (unexpected '}' at line 1); using ChatML instead.")
    assert broken.notice == rendered.notice
    assert broken.stop_strings == FALLBACK_STOP_STRINGS
    for source in (None, "", "  \n"):
        missing = ChatTemplate(source).render(CONVERSATION, add_generation_prompt=False)
        assert missing == RenderedPrompt(
            render_chatml(CONVERSATION, add_generation_prompt=False), "This model has no chat template; using ChatML."
        )


def test_render_errors_fall_back_with_a_notice():
    for source, detail in [
        ("{{ foo.bar }}", "'foo' is undefined"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nests calls over 100 deep"),
        ("{{ range(10**9) | list }}", "MAX_RANGE"),
    ]:
        rendered = ChatTemplate(source).render(CONVERSATION)
        assert rendered.text == render_chatml(CONVERSATION)
        assert rendered.notice is not None and detail in rendered.notice and "\n" not in rendered.notice


def test_system_role_not_supported_merges_into_first_user_turn():
    template = ChatTemplate(GEMMA, bos_token="<bos>", eos_token="<eos>")
    messages = with_system(CONVERSATION[1:], "Be brief.")
    rendered = template.render(messages)
    assert rendered.notice is None
    assert rendered.text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert messages == CONVERSATION  # merged on a copy
    assert template.stop_strings == ("<end_of_turn>",)


def test_other_raise_exception_falls_back_with_its_message():
    source = "{% if tools is none %}{{ raise_exception('This template needs tools, sorry') }}{% endif %}ok"
    template = ChatTemplate(source)
    for messages in (CONVERSATION, CONVERSATION[1:]):
        rendered = template.render(messages)
        assert rendered.text == render_chatml(messages)
        assert rendered.notice is not None and "This template needs tools, sorry" in rendered.notice
    assert template.render(CONVERSATION, tools=[]).text == "ok"


def test_with_system_and_merge():
    user: list[ChatMessage] = [{"role": "user", "content": "Hi"}]
    assert with_system(user, "S") == [{"role": "system", "content": "S"}, *user]
    assert with_system([{"role": "system", "content": "old"}, *user], "new") == [
        {"role": "system", "content": "new"},
        *user,
    ]
    assert with_system([{"role": "system", "content": "old"}, *user], "")[0]["content"] == "old"
    assert with_system(user, None) == user and with_system(user, None) is not user
    assert merge_system_into_user([{"role": "system", "content": "S"}]) == [{"role": "user", "content": "S"}]
    assert merge_system_into_user(user) == user


def test_tojson_keeps_non_ascii_and_indents_and_strftime_now_works():
    template = ChatTemplate("{{ messages[0] | tojson }}|{{ messages[0] | tojson(indent=2) }}|{{ strftime_now('%Y') }}")
    messages: list[ChatMessage] = [{"role": "user", "content": "café 東京 <b>&"}]
    compact, indented, year = template.render(messages).text.split("|")
    assert compact == '{"role": "user", "content": "café 東京 <b>&"}'
    assert indented == json.dumps(messages[0], ensure_ascii=False, indent=2)
    assert year == str(datetime.now().year)


def test_loopcontrols_and_trim_blocks():
    source = "{% for m in messages %}\n  {% if loop.index > 2 %}{% break %}{% endif %}\n{{ m.role }};\n{% endfor %}"
    assert ChatTemplate(source).render(CONVERSATION).text == "system;\nuser;\n"


def test_template_stop_strings_finds_literal_markers():
    assert template_stop_strings(CHATML) == ("<|im_end|>",)
    assert template_stop_strings(LLAMA3) == ("<|eot_id|>",)
    assert template_stop_strings(GEMMA) == ("<end_of_turn>",)
    phi3 = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}<|assistant|>\n"
    assert template_stop_strings(phi3) == ("<|end|>",)
    assert template_stop_strings("[INST] {{ m }} [/INST]{{ eos_token }}</s>") == ("</s>",)
    assert template_stop_strings(None) == () and template_stop_strings("{{ x }}") == ()


def test_render_is_fast_after_compile():
    messages: list[ChatMessage] = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * 20} for i in range(40)
    ]
    template = ChatTemplate(LLAMA3, bos_token="<|begin_of_text|>")
    template.render(messages)
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        template.render(messages)
    per_render = (time.perf_counter() - start) / runs
    assert per_render < 0.005, f"{per_render * 1e3:.3f} ms per render"  # ~0.1 ms measured; loose for CI
    assert ChatTemplate(LLAMA3)._template is template._template  # compiled once, shared


# Templates that would run for hours or fill the memory: each ends within 2 s with a notice (issue 18).
BOMBS = {
    "10^9 loop steps": "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "10^10 loop steps": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "filtered loop": "{% for i in range(100000) %}{% for j in range(100000) if j < 0 %}{% endfor %}{% endfor %}",
    "loop.cycle": "{% for i in range(100000) %}{{ loop.cycle(*range(100000)) }}{% endfor %}",
    "recursive loop": "{% for i in range(100000) recursive %}{{ loop(range(100000)) }}{% endfor %}",
    "branching macro": "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "endless macro": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "string * huge": "{{ 'x' * 10**10 }}",
    "list * huge": "{{ [1] * 10**9 }}",
    "power": "{{ 2 ** 100000000 }}",
    "squaring": "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
    "doubling ~": "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling +": "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "doubling list": "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
    "{{ ns.l == ns.l }}",
    "join huge range": "{{ range(100000) | join('x' * 1000000) }}",
    "join of a generator": "{{ ('x' * 1000000).join(range(100000) | map('string')) }}",
    "many big strings": "{{ range(100000) | map('center', 3999999) | join }}",
    "center": "{{ 'x' | center(10**10) }}",
    "center at compile time": "{{ 'x' | center(9999999999) }}",
    "indent": "{{ ('a\n' * 1000000) | indent(10**6) }}",
    "str.ljust": "{{ 'x'.ljust(10**10) }}",
    "% width": "{{ '%0999999999d' % 1 }}",
    "format width": "{{ '{:>{w}}'.format(1, w=999999999) }}",
    "replace": "{{ ('x' * 1000000).replace('', 'y' * 1000) }}",
    "tojson indent": "{{ messages | tojson(indent=10**9) }}",
    "output repeated": "{% set s = 'x' * 3000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}",
    "strftime width": "{{ strftime_now('%1000000000Y') }}",
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_costly_templates_stop_within_two_seconds_and_are_not_run_again(name):
    template = ChatTemplate(BOMBS[name], name="bomb")
    start = time.monotonic()
    rendered = template.render(CONVERSATION)
    first = time.monotonic() - start
    assert first < 2.0, f"{name}: {first:.2f} s"
    assert rendered.text == render_chatml(CONVERSATION)
    assert rendered.notice is not None and rendered.notice.startswith("This model's chat template ")
    assert rendered.notice.endswith("; using ChatML instead.") and "\n" not in rendered.notice
    start = time.monotonic()
    again = ChatTemplate(BOMBS[name]).render(CONVERSATION[1:])  # the same source in a new model object
    assert time.monotonic() - start < 0.05
    assert again == RenderedPrompt(render_chatml(CONVERSATION[1:]), rendered.notice)


def test_the_timeout_notice_says_how_long_and_the_limits_are_named():
    from macapp.core.engines.template_limits import RENDER_TIMEOUT_S

    rendered = ChatTemplate(BOMBS["10^10 loop steps"] + "{# 2 #}").render(CONVERSATION)
    assert rendered.notice == (
        f"This model's chat template took over {RENDER_TIMEOUT_S:g} s to render; using ChatML instead."
    )


def test_compile_time_bombs_are_bounded():
    from macapp.core.engines.template_limits import MAX_SOURCE_CHARS

    deep = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"
    huge = "{% set x = x ~ 'a' %}" * (MAX_SOURCE_CHARS // 20)  # ~10 µs per character to compile
    for source, detail in ((deep, "RecursionError"), (huge, "characters long")):
        start = time.monotonic()
        template = ChatTemplate(source)
        assert time.monotonic() - start < 2.0
        assert template.notice is not None and detail in template.notice and FALLBACK_NAME in template.notice
        assert template.render(CONVERSATION).text == render_chatml(CONVERSATION)


def test_limits_leave_real_templates_alone():
    """Long conversations, loop helpers, recursion a few levels deep and literals all work as before."""
    huge_turn: list[ChatMessage] = [{"role": "user", "content": "word " * 1_500_000}]  # 7.5 MB: above the floor
    rendered = ChatTemplate(CHATML).render(huge_turn)
    assert rendered.notice is None and rendered.text == render_chatml(huge_turn)
    source = (
        "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ '!' if loop.last }}"
        "{{ loop.cycle('a', 'b') }} {% endfor %}"
        "{% for item in [[1, [2]], [3]] recursive %}({{ item if item is number else loop(item) }}){% endfor %}"
        "{{ {'k': (1, 2)} | tojson }}{{ 'x' * 3 }}{{ [0] * 2 }}{{ '%05d' % 7 }}{{ 2 ** 10 }}"
        "{{ range(3) | join(',') }}{{ 'ab' | center(6) }}|{{ 'a\nb' | indent(2) }}"
    )
    assert ChatTemplate(source).render(CONVERSATION).text == (
        '1/4a 2/4b 3/4a 4/4!b ((1)((2)))((3)){"k": [1, 2]}xxx[0, 0]0000710240,1,2  ab  |a\n  b'
    )
