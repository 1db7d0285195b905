"""Chat templates: real jinja in the sandbox, fallbacks with notices, system prompts, stop strings."""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime

import jinja2
import pytest

from macapp.core.chat.templates import (
    FALLBACK_NAME,
    FALLBACK_STOP_STRINGS,
    ChatTemplate,
    RenderedPrompt,
    merge_system_into_user,
    render_chatml,
    template_stop_strings,
    with_system,
)
from macapp.core.engines.base import ChatMessage

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
    turns = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" \
            "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
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
    assert rendered.notice == (
        "This model's chat template is broken (unexpected '}' at line 1); using ChatML instead."
    )
    assert broken.notice == rendered.notice
    assert broken.stop_strings == FALLBACK_STOP_STRINGS
    for source in (None, "", "  \n"):
        missing = ChatTemplate(source).render(CONVERSATION, add_generation_prompt=False)
        assert missing == RenderedPrompt(render_chatml(CONVERSATION, add_generation_prompt=False),
                                         "This model has no chat template; using ChatML.")


def test_render_errors_fall_back_with_a_notice():
    for source, detail in [("{{ foo.bar }}", "'foo' is undefined"), ("{{ 1 / 0 }}", "ZeroDivisionError"),
                           ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
                           ("{{ range(10**9) | list }}", "MAX_RANGE")]:
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
        {"role": "system", "content": "new"}, *user]
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
    messages: list[ChatMessage] = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * 20}
                                   for i in range(40)]
    template = ChatTemplate(LLAMA3, bos_token="<|begin_of_text|>")
    template.render(messages)
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        template.render(messages)
    per_render = (time.perf_counter() - start) / runs
    assert per_render < 0.005, f"{per_render * 1e3:.3f} ms per render"  # ~0.1 ms measured; loose for CI
    assert ChatTemplate(LLAMA3)._template is template._template  # compiled once, shared
