"""Training data: every malformed line is named, token statistics, the split, datasets from saved chats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macapp.core.chat.store import ChatStore
from macapp.core.errors import UserError
from macapp.core.tuning.datasets import (
    DatasetError,
    dataset_from_chats,
    resolve_mask,
    sniff_format,
    split_dataset,
    validate_dataset,
    write_chat_dataset,
    write_jsonl,
)


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def write(tmp_path: Path, lines: list, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_mlx):
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(tiny_mlx)


def test_each_format_is_accepted(tmp_path):
    for fmt, record in (
        ("chat", chat("hi", "hello")),
        ("completions", {"prompt": "2+2", "completion": "4"}),
        ("text", {"text": "plain words"}),
    ):
        report = validate_dataset(write(tmp_path, [record, record]))
        assert report.ok, report.problems
        assert (report.format, report.examples, report.tokens) == (fmt, 2, None)


# (line content, words the problem must contain). Each is placed on line 3 after two good lines.
MALFORMED = {
    "bad_json": ('{"messages": [', "not valid JSON"),
    "not_object": ("[1, 2]", "JSON object"),
    "no_keys": ({"question": "q", "answer": "a"}, "no 'messages'"),
    "prompt_only": ({"prompt": "q"}, "no 'completion'"),
    "mixed": ({"text": "a text line"}, "mixed formats"),
    "content_not_string": ({"messages": [{"role": "user", "content": 5}]}, "content must be a string"),
    "content_list": ({"messages": [{"role": "user", "content": ["a"]}]}, "content must be a string"),
    "bad_role": ({"messages": [{"role": "wizard", "content": "x"}]}, "role 'wizard'"),
    "no_role": ({"messages": [{"content": "x"}]}, "no 'role'"),
    "messages_not_list": ({"messages": "hello"}, "must be a list"),
    "empty_messages": ({"messages": []}, "'messages' is empty"),
    "message_not_object": ({"messages": ["hello"]}, "must be an object"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_every_malformed_kind_names_its_line(tmp_path, kind):
    bad, words = MALFORMED[kind]
    path = write(tmp_path, [chat("a", "b"), chat("c", "d"), bad, chat("e", "f")])
    report = validate_dataset(path)
    assert not report.ok
    assert [p.line for p in report.problems] == [3], report.problems
    assert words in report.problems[0].message
    assert str(report.problems[0]).startswith("line 3: ")


def test_completions_and_text_values_must_be_strings(tmp_path):
    path = write(tmp_path, [{"prompt": "q", "completion": 4}, {"prompt": None, "completion": "a"}])
    problems = validate_dataset(path).problems
    assert [p.line for p in problems] == [1, 2]
    assert "'completion' must be a string" in problems[0].message and "'prompt'" in problems[1].message
    text = validate_dataset(write(tmp_path, [{"text": "ok"}, {"text": ""}, {"text": {"a": 1}}], "t.jsonl"))
    assert [p.line for p in text.problems] == [2, 3]


def test_every_problem_is_listed_not_just_the_first(tmp_path):
    path = write(tmp_path, ["not json", chat("q", "a"), {"nope": 1}, "", {"text": "x"}, '{"messages": [{}]}'])
    report = validate_dataset(path)
    lines = [p.line for p in report.problems]
    assert lines == [1, 3, 5, 6, 6], report.problems  # line 4 is blank: ignored; line 6 has two problems
    with pytest.raises(DatasetError) as err:
        raise DatasetError(report)
    assert "line 1" in str(err.value) and "more problems" in str(err.value)


def test_empty_file_and_blank_lines(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    report = validate_dataset(empty)
    assert not report.ok and report.problems[0].line is None and "empty" in report.problems[0].message
    with pytest.raises(UserError, match="No such dataset"):
        validate_dataset(tmp_path / "missing.jsonl")


def test_not_utf8_is_a_problem(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "caf\xe9"}\n')
    assert "UTF-8" in validate_dataset(path).problems[0].message


def test_mask_prompt_needs_prompts(tmp_path):
    path = write(tmp_path, [{"text": "a"}])
    assert "prompt masking" in validate_dataset(path, mask_prompt=True).problems[0].message
    path = write(tmp_path, [{"messages": [{"role": "user", "content": "q"}]}], "m.jsonl")
    assert validate_dataset(path).ok
    assert "last message is 'user'" in validate_dataset(path, mask_prompt=True).problems[0].message


def test_by_default_chats_must_end_with_the_answer_and_text_is_not_masked(tmp_path):
    """mlx-lm's answers-only training learns the last message, so it must be the assistant's."""
    ends_with_question = {"messages": chat("q", "a")["messages"] + [{"role": "user", "content": "and?"}]}
    path = write(tmp_path, [chat("q", "a"), ends_with_question, chat("q2", "a2")])
    report = validate_dataset(path, mask_prompt=None)
    assert [p.line for p in report.problems] == [2] and "assistant's answer" in report.problems[0].message
    assert validate_dataset(path, mask_prompt=False).ok  # training on everything needs no answer at the end
    assert validate_dataset(write(tmp_path, [{"text": "a"}], "t.jsonl"), mask_prompt=None).ok


def test_answers_only_is_the_default_where_the_data_has_answers():
    assert resolve_mask(None, "chat") == (True, None)
    assert resolve_mask(None, "completions") == (True, None)
    mask, note = resolve_mask(None, "text")
    assert mask is False and "no prompt" in note
    mask, note = resolve_mask(False, "chat")
    assert mask is False and "prompts too" in note
    assert resolve_mask(True, "chat") == (True, None)


def test_the_format_is_sniffed_from_the_first_example(tmp_path):
    assert sniff_format(write(tmp_path, ["", {"text": "a"}, chat("q", "a")])) == "text"
    assert sniff_format(write(tmp_path, [{"prompt": "p", "completion": "c"}], "c.jsonl")) == "completions"
    assert sniff_format(write(tmp_path, ["{broken"], "b.jsonl")) is None
    assert sniff_format(tmp_path / "missing.jsonl") is None


def test_without_a_tokenizer_token_statistics_are_approximate(tmp_path):
    records = [
        chat("a" * 40, "b" * 7),
        {"messages": [{"role": "user", "content": "x" * 4000}, {"role": "assistant", "content": "y"}]},
    ]
    report = validate_dataset(write(tmp_path, records), max_seq_length=64, approximate=True)
    assert report.ok  # an approximate count never blocks training: the base's tokenizer decides that
    t = report.tokens
    assert t.approx and t.count == 2
    assert t.min == (40 // 4 + 4) + (-(-7 // 4) + 4)  # 4 characters a token, 4 tokens of template a message
    assert t.max == (4000 // 4 + 4) + (1 + 4)
    assert report.to_json()["tokens"]["approx"] is True
    assert validate_dataset(write(tmp_path, records)).tokens is None  # not asked for: none


def test_token_statistics_and_too_long_lines(tmp_path, tokenizer):
    records = [
        chat("hello", "world"),
        chat("what is the answer to the question in the document?", "yes"),
        chat("the quick brown fox " * 20, "jumps"),
    ]
    path = write(tmp_path, records)
    report = validate_dataset(path, tokenizer, max_seq_length=4096, approximate=True)
    assert report.ok and not report.tokens.approx  # a tokenizer always wins over the approximation
    lengths = [len(tokenizer.apply_chat_template(r["messages"], return_dict=False)) for r in records]
    stats = report.tokens
    assert (stats.count, stats.min, stats.max, stats.total) == (3, min(lengths), max(lengths), sum(lengths))
    assert stats.mean == pytest.approx(sum(lengths) / 3, abs=0.05)
    short = validate_dataset(path, tokenizer, max_seq_length=max(lengths) - 1)
    assert [p.line for p in short.problems] == [3]
    assert f"{max(lengths)} tokens" in short.problems[0].message


def test_text_token_count_adds_eos(tmp_path, tokenizer):
    report = validate_dataset(write(tmp_path, [{"text": "hello world"}]), tokenizer)
    assert report.tokens.total == len(tokenizer.encode("hello world")) + 1


def test_split_is_deterministic_and_keeps_at_least_one_valid(tmp_path):
    path = write(tmp_path, [chat(f"q{i}", f"a{i}") for i in range(25)] + [""])
    one = split_dataset(path, tmp_path / "one", valid_fraction=0.2, seed=3)
    two = split_dataset(path, tmp_path / "two", valid_fraction=0.2, seed=3)
    assert (one.train_examples, one.valid_examples) == (20, 5)
    assert one.train.read_text() == two.train.read_text() and one.valid.read_text() == two.valid.read_text()
    train = [json.loads(x) for x in one.train.read_text().splitlines()]
    valid = [json.loads(x) for x in one.valid.read_text().splitlines()]
    assert len({json.dumps(r) for r in train + valid}) == 25
    assert split_dataset(path, tmp_path / "few", valid_fraction=0.0).valid_examples == 1
    assert split_dataset(path, tmp_path / "batch", valid_fraction=0.01, min_valid=4).valid_examples == 4
    other = split_dataset(path, tmp_path / "seed", valid_fraction=0.2, seed=4)
    assert other.valid.read_text() != one.valid.read_text()


def test_split_refuses_too_few_examples(tmp_path):
    path = write(tmp_path, [chat("q", "a")])
    with pytest.raises(UserError, match="too few"):
        split_dataset(path, tmp_path / "out")


def test_dataset_from_chats_keeps_the_chosen_and_edited_answers(tmp_path):
    with ChatStore() as store:
        c = store.create_conversation("colours", system_prompt="Answer in one word.")
        q1 = store.add_message(c.id, "user", "sky?")
        first = store.add_message(c.id, "assistant", "grey")
        store.edit_message(first.id, "blue")  # the user's edit: a new version that becomes the head
        store.add_message(c.id, "user", "grass?")
        failed = store.begin_message(c.id)  # an answer that broke off: left out with its question
        store.append_text(failed.id, "gre")
        store.finish_message(failed.id, status="error")
        store.add_message(c.id, "user", "sea?", parent_id=failed.id)
        store.add_message(c.id, "assistant", "blue")
        store.add_message(c.id, "user", "sun?")
        store.add_message(c.id, "assistant", "   ")  # empty answer: skipped

        other = store.create_conversation("regenerated")
        q = store.add_message(other.id, "user", "pick one")
        store.add_message(other.id, "assistant", "old answer")
        newer = store.add_message(other.id, "assistant", "chosen answer", parent_id=q.id)
        store.add_message(other.id, "assistant", "newest answer", parent_id=q.id)
        store.select_version(newer.id)  # the user picked the middle version

        nothing = store.create_conversation("no answers")
        store.add_message(nothing.id, "user", "hello?")

        records = dataset_from_chats(store, [c.id, other.id, nothing.id])
    assert q1.content == "sky?"
    assert records == [
        {
            "messages": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "sky?"},
                {"role": "assistant", "content": "blue"},
                {"role": "user", "content": "sea?"},
                {"role": "assistant", "content": "blue"},
            ]
        },
        {"messages": [{"role": "user", "content": "pick one"}, {"role": "assistant", "content": "chosen answer"}]},
    ]
    path = write_jsonl(tmp_path / "chats.jsonl", records)
    report = validate_dataset(path, mask_prompt=True)
    assert report.ok and report.format == "chat" and report.examples == 2


def test_write_chat_dataset_saves_the_chosen_chats_under_the_data_dir(isolated_home):
    with ChatStore() as store:
        kept = store.create_conversation("kept")
        store.add_message(kept.id, "user", "sky?")
        store.add_message(kept.id, "assistant", "blue")
        empty = store.create_conversation("unanswered")
        store.add_message(empty.id, "user", "hello?")
    path, examples = write_chat_dataset([kept.id, empty.id])  # opens the history itself
    assert examples == 1 and path.parent == isolated_home / "tuning-data"
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"messages": [{"role": "user", "content": "sky?"}, {"role": "assistant", "content": "blue"}]}
    ]
    with pytest.raises(UserError, match="finished answer"):
        write_chat_dataset([empty.id])
