"""Structured output: schema -> grammar -> generation that can only be valid; tool formats parsed from real outputs.

A tiny random-weight model samples almost anything, so under the grammar it is the harshest test of
"valid by construction": every answer must parse and match its schema. The parsers get literal text
in each model family's own format.
"""

from __future__ import annotations

import json

import pytest

from macapp.core.engines.base import SamplingSettings
from macapp.core.engines.constrained import OutputSpec, build_grammar, stream_structured
from macapp.core.engines.fake import FakeEngine
from macapp.core.engines.structured import (
    InvalidOutput,
    SchemaError,
    _gbnf,
    checked_after,
    gbnf_for_schema,
    parse_json,
    validation_problems,
)
from macapp.core.engines.tool_calls import (
    FORMATS,
    InvalidToolCall,
    ToolCall,
    ToolSpec,
    check_call,
    format_for_template,
)
from macapp.core.errors import UserError
from macapp.core.progress import drain

NESTED = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "tags": {"type": "array", "items": {"enum": ["a", "b c", 'd"e', "back\\slash"]}, "maxItems": 4},
        "inner": {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}, "x": {"type": ["number", "null"]}},
            "required": ["ok"],
        },
    },
    "required": ["name", "inner"],
}
WEATHER = ToolSpec(
    "get_weather",
    "Weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
        },
        "required": ["city", "unit"],
    },
)
SEARCH = ToolSpec(
    "search",
    "Search the documents",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string", "maxLength": 30},
            "pages": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
        },
        "required": ["query"],
    },
)
WILD = SamplingSettings(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, max_tokens=400)


@pytest.fixture(scope="module")
def random_model(tiny_models):
    from macapp.core.engines.llama_engine import LlamaCppEngine
    from macapp.core.models.estimate import RuntimeSettings

    engine = LlamaCppEngine(tiny_models["mha_f32"], RuntimeSettings(n_ctx=1024), n_threads=1)
    drain(engine.load())
    yield engine
    engine.unload()


def answer(engine, grammar: str, seed: int, *, whole: bool = True) -> str:
    _, result = drain(
        engine.stream_chat([{"role": "user", "content": "hello"}], WILD.with_changes(seed=seed), grammar=grammar)
    )
    assert result.finish_reason == "stop" or not whole
    return result.text


def test_a_random_model_under_the_grammar_only_writes_schema_valid_json(random_model):
    grammar = gbnf_for_schema(NESTED)
    texts = [answer(random_model, grammar, seed) for seed in range(12)]
    for text in texts:
        assert validation_problems(json.loads(text), NESTED) == [], text
    values = [json.loads(t) for t in texts]
    assert any("tags" in v for v in values) and any("tags" not in v for v in values)  # optional: both seen
    assert len({t for t in texts}) > 6  # it really sampled


def test_without_the_grammar_the_same_model_writes_no_json(random_model):
    texts = [
        drain(
            random_model.stream_chat([{"role": "user", "content": "hello"}], WILD.with_changes(seed=s, max_tokens=40))
        )[1].text
        for s in range(4)
    ]
    assert not any(_is_valid(t, NESTED) for t in texts)


@pytest.mark.parametrize("name", ["generic", "hermes", "llama3", "mistral"])
def test_each_format_grammar_gives_calls_its_parser_reads_and_the_schemas_accept(random_model, name):
    fmt = FORMATS[name]
    grammar = fmt.grammar([WEATHER, SEARCH], required=True)
    for seed in range(6):
        reply = fmt.parse(answer(random_model, grammar, seed))
        assert reply.calls and not reply.problems, reply
        for call in reply.calls:
            check_call(call, [WEATHER, SEARCH])


def test_auto_allows_a_plain_answer_or_only_a_valid_call(random_model):
    fmt = FORMATS["generic"]
    grammar = fmt.grammar([WEATHER], required=False)
    kinds = set()
    for seed in range(10):
        text = answer(random_model, grammar, seed, whole=False)  # free text may run to max_tokens
        reply = fmt.parse(text)
        for call in reply.calls:
            check_call(call, [WEATHER])
        assert not reply.problems
        assert reply.calls or not text.lstrip().startswith("{")  # a '{' always begins a valid call
        kinds.add("call" if reply.calls else "text")
    assert "text" in kinds  # a random model rarely picks '{' first: the call branch is tested on SmolLM2


def test_grammar_is_cached_per_schema():
    schema = {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}}
    before = _gbnf.cache_info()
    first = gbnf_for_schema(schema)
    again = gbnf_for_schema(json.loads(json.dumps(schema)))  # an equal schema, another object
    after = _gbnf.cache_info()
    assert first is again and after.hits == before.hits + 1 and after.misses == before.misses + 1
    reordered = gbnf_for_schema({"type": "object", "properties": {"n": {"type": "integer"}, "q": {"type": "string"}}})
    assert reordered != first  # property order is part of the grammar


def test_grammar_rules_for_nested_objects_enums_arrays_and_optional_properties():
    grammar = gbnf_for_schema(NESTED)
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())
    assert rules["root"].index("name-kv") < rules["root"].index("inner-kv") < rules["root"].index("tags-kv")
    assert "( " in rules["root"].split("inner-kv", 1)[1]  # tags is optional, after the required ones
    assert rules["tags-item"] == r'"\"a\"" | "\"b c\"" | "\"d\\\"e\"" | "\"back\\\\slash\""'
    assert "\\x00-\\x1f" in rules["char"]  # no raw control characters inside strings


def test_bad_schemas_are_refused_with_the_reason():
    with pytest.raises(SchemaError, match="not a valid JSON schema"):
        gbnf_for_schema({"type": "nope"})
    with pytest.raises(SchemaError, match="must be an object"):
        gbnf_for_schema([1, 2])
    with pytest.raises(SchemaError, match="can't be turned into a grammar"):
        gbnf_for_schema({"$ref": "https://example.com/schema.json"})
    assert issubclass(SchemaError, UserError)
    assert checked_after({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}) == {"minimum"}


def test_invalid_json_and_wrong_types_get_clear_messages():
    with pytest.raises(InvalidOutput, match="not valid JSON"):
        parse_json('{"name": "x",', NESTED)
    with pytest.raises(InvalidOutput) as err:
        parse_json('{"name": 3, "inner": {"ok": "yes"}, "tags": ["z"]}', NESTED)
    problems = err.value.problems
    assert "$.name: 3 is not of type 'string'" in problems
    assert "$.inner.ok: 'yes' is not of type 'boolean'" in problems
    assert any(p.startswith("$.tags[0]: 'z' is not one of") for p in problems)

    with pytest.raises(InvalidToolCall) as call_err:
        check_call(ToolCall("get_weather", {"city": 7, "unit": "kelvin"}), [WEATHER])
    assert "get_weather arguments.city: 7 is not of type 'string'" in call_err.value.problems
    assert any("'kelvin' is not one of" in p for p in call_err.value.problems)
    with pytest.raises(InvalidToolCall, match="'delete_all' is not a tool here"):
        check_call(ToolCall("delete_all", {}), [WEATHER])
    with pytest.raises(InvalidToolCall, match="'unit' is a required property"):
        check_call(ToolCall("get_weather", {"city": "Oslo"}), [WEATHER])


# Literal outputs of each family (the text our engine decodes: control tokens leave no text).
NATIVE_OUTPUTS = {
    "hermes": (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": '
        '"celsius"}}\n</tool_call>\n<tool_call>\n{"name": "search", "arguments": {"query": "rain"}}\n'
        "</tool_call>",
        "Let me check.",
    ),
    "llama3": (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}; '
        '{"name": "search", "parameters": {"query": "rain"}}',
        "",
    ),
    "mistral": (
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}, '
        '"id": "abc123def"}, {"name": "search", "arguments": "{\\"query\\": \\"rain\\"}"}]',
        "",
    ),
    "generic": (
        '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}, '
        '{"name": "search", "arguments": {"query": "rain"}}]}',
        "",
    ),
}


@pytest.mark.parametrize("name", sorted(NATIVE_OUTPUTS))
def test_parsers_read_each_native_format(name):
    text, content = NATIVE_OUTPUTS[name]
    reply = FORMATS[name].parse(text)
    assert reply.content == content and not reply.problems
    assert [(c.name, c.arguments) for c in reply.calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("search", {"query": "rain"}),
    ]
    assert len({c.id for c in reply.calls}) == 2


def test_parsers_leave_plain_answers_alone_and_report_broken_calls():
    for name in FORMATS:
        assert FORMATS[name].parse("The weather is fine.").calls == ()
    assert FORMATS["llama3"].parse('{"answer": 42}').content == '{"answer": 42}'  # JSON that is not a call
    broken = FORMATS["hermes"].parse('<tool_call>\n{"name": "search", "arguments": {"query": "x"\n</tool_call>')
    assert not broken.calls and "not valid JSON" in broken.problems[0]
    wrong = FORMATS["generic"].parse('{"tool_calls": [{"name": "search", "arguments": [1, 2]}]}')
    assert not wrong.calls and "must be a JSON object, not list" in wrong.problems[0]


def test_formats_are_chosen_from_the_chat_template():
    assert format_for_template("{% for m in messages %}<tool_call>{{ tools }}{% endfor %}").name == "hermes"
    assert format_for_template("<|start_header_id|>ipython{{ tools }}").name == "llama3"
    assert format_for_template("[AVAILABLE_TOOLS]{{ tools }}[/AVAILABLE_TOOLS][TOOL_CALLS]").name == "mistral"
    assert format_for_template("<|im_start|>{{ m.content }}").name == "generic"
    assert format_for_template(None).name == "generic"


def test_tool_specs_refuse_bad_definitions():
    with pytest.raises(UserError, match="tool name"):
        ToolSpec("rm -rf", "", {"type": "object"})
    with pytest.raises(UserError, match="type object"):
        ToolSpec.from_openai({"type": "function", "function": {"name": "x", "parameters": {"type": "string"}}})
    with pytest.raises(UserError, match="'type': 'function'"):
        ToolSpec.from_openai({"type": "code_interpreter"})
    assert ToolSpec.from_openai(WEATHER.to_openai()) == WEATHER


def test_engines_without_grammars_validate_and_retry_within_the_limit():
    engine = FakeEngine()
    drain(engine.load())
    spec = OutputSpec(tools=(WEATHER,), tool_choice="required")
    engine.enqueue(['{"tool_calls": [{"name": "get_weather", "arguments": {"city": 5}}]}'])
    engine.enqueue(['{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}]}'])
    chunks, result = drain(stream_structured(engine, [{"role": "user", "content": "weather in Oslo?"}], spec))
    assert result.attempts == 2 and not result.problems and not result.constrained
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", {"city": "Oslo", "unit": "celsius"})]
    assert chunks == [] and result.finish_reason == "tool_calls"
    retry = engine.prompts[-1]
    assert "get_weather arguments.city: 5 is not of type 'string'" in retry[-1]["content"]
    assert "You must call one of the tools now." in engine.prompts[0][0]["content"]  # the generic format's guide

    for _ in range(3):
        engine.enqueue(["not a call"])
    _, failed = drain(stream_structured(engine, [{"role": "user", "content": "weather?"}], spec))
    assert failed.attempts == 3 and failed.problems == ("the answer called no tool, and one was required",)

    engine.enqueue(['{"tool_calls": [{"name": "nope", "arguments": {}}]}'])
    _, once = drain(stream_structured(engine, [{"role": "user", "content": "weather?"}], spec, max_attempts=1))
    assert once.attempts == 1 and "'nope' is not a tool here" in once.problems[0] and engine.pending == 0


def test_answer_text_streams_and_call_text_does_not():
    engine = FakeEngine()
    drain(engine.load())
    spec = OutputSpec(tools=(WEATHER,))
    engine.enqueue(["It is", " sunny", " today."])
    chunks, result = drain(stream_structured(engine, [{"role": "user", "content": "hi"}], spec))
    assert [c.text for c in chunks] == ["It is", " sunny", " today."] and result.content == "It is sunny today."
    engine.enqueue(
        ["  ", '{"tool_calls": [{"name": "get_weather", ', '"arguments": {"city": "Rome", "unit": "celsius"}}]}']
    )
    chunks, result = drain(stream_structured(engine, [{"role": "user", "content": "hi"}], spec))
    assert chunks == [] and result.tool_calls[0].arguments["city"] == "Rome"


def test_history_with_calls_and_results_reaches_a_template_without_tools_as_text():
    engine = FakeEngine()
    drain(engine.load())
    history = [
        {"role": "user", "content": "weather in Rome?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome", "unit": "celsius"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "21 C, clear"},
    ]
    engine.enqueue(["It is 21 C."])
    drain(stream_structured(engine, history, OutputSpec(tools=(WEATHER,))))
    seen = engine.prompts[-1]
    assert [m["role"] for m in seen] == ["system", "user", "assistant", "user"]
    assert json.loads(seen[2]["content"]) == {
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome", "unit": "celsius"}}]
    }
    assert seen[3]["content"] == "Result of get_weather (c1):\n21 C, clear"


def test_output_spec_checks_its_choice():
    with pytest.raises(UserError, match="not among the tools"):
        OutputSpec(tools=(WEATHER,), tool_choice="required", function="search")
    with pytest.raises(UserError, match="at least one tool"):
        OutputSpec(tool_choice="required")
    assert build_grammar(OutputSpec(tools=(WEATHER,), tool_choice="none"), FORMATS["generic"]) is None
    both = build_grammar(OutputSpec(tools=(WEATHER,), response_schema=NESTED), FORMATS["generic"])
    assert both.startswith("root ::= tool-calls | answer")


def _is_valid(text: str, schema) -> bool:
    try:
        parse_json(text, schema)
    except InvalidOutput:
        return False
    return True


def test_a_grammar_llama_cpp_cannot_parse_is_refused_not_a_crash(random_model):
    with pytest.raises(UserError, match="could not use this grammar"):
        drain(random_model.stream_chat([{"role": "user", "content": "hi"}], WILD, grammar='root ::= "open'))
    assert answer(random_model, gbnf_for_schema({"enum": ["yes", "no"]}), 1) in ('"yes"', '"no"')  # still usable
