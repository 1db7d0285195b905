"""The ``macapp`` command as a user runs it: JSON contracts, exit codes, one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest


def macapp(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_inspect_json_keys(tiny_models):
    run = macapp("inspect", str(tiny_models["gqa_f16"]), "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    for key in (
        "architecture",
        "parameters",
        "vocab_size",
        "context_length",
        "n_layer",
        "n_head",
        "n_head_kv",
        "head_dim",
        "quantization",
        "file_size",
        "has_chat_template",
    ):
        assert key in data, key
    assert (data["n_head"], data["n_head_kv"], data["quantization"]) == (4, 1, "F16")


def test_inspect_human(tiny_models):
    run = macapp("inspect", str(tiny_models["gqa_f16"]))
    assert run.returncode == 0
    assert "GQA" in run.stdout and "4 query, 1 key/value" in run.stdout


def test_estimate_json_and_budget(tiny_models):
    run = macapp("estimate", str(tiny_models["gqa_q8_bigvocab"]), "--ctx", "2048", "--budget", "1G", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["budget_bytes"] == 1024**3 and data["verdict"] == "fits" and data["max_ctx_that_fits"] == 4096
    assert data["total_bytes"] == sum(
        data[k] for k in ("weights_bytes", "kv_cache_bytes", "compute_bytes", "overhead_bytes")
    )
    small = json.loads(
        macapp(
            "estimate",
            str(tiny_models["gqa_q8_bigvocab"]),
            "--ctx",
            "4096",
            "--budget",
            str(data["total_bytes"]),
            "--json",
        ).stdout
    )
    assert small["verdict"] == "too_big" and 0 < small["max_ctx_that_fits"] < 4096
    q8 = json.loads(
        macapp(
            "estimate",
            str(tiny_models["gqa_q8_bigvocab"]),
            "--ctx",
            "2048",
            "--kv-type",
            "q8_0",
            "--budget",
            "1G",
            "--json",
        ).stdout
    )
    assert q8["kv_cache_bytes"] < data["kv_cache_bytes"]


@pytest.mark.parametrize("content", [b"", b"\x00" * 5000, b"GGUF\x07\x00\x00\x00" + b"\x00" * 64])
def test_bad_model_is_one_line_exit_1(tmp_path, content):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    for command in ("inspect", "estimate"):
        run = macapp(command, str(bad))
        assert run.returncode == 1
        assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
        assert "Traceback" not in run.stderr and run.stdout == ""


def test_missing_model_and_usage_errors(tmp_path, tiny_models):
    run = macapp("inspect", str(tmp_path / "nope.gguf"))
    assert run.returncode == 1 and "no model" in run.stderr
    assert macapp("estimate", str(tiny_models["mha_f32"]), "--kv-type", "q4").returncode == 2
    run = macapp("estimate", str(tiny_models["mha_f32"]), "--budget", "lots")
    assert run.returncode == 2 and "not a size: 'lots' (e.g. 16G" in run.stderr  # not "invalid parse_bytes value"
    for command in (["estimate", str(tiny_models["mha_f32"])], ["run", str(tiny_models["mha_f32"])], ["serve"]):
        run = macapp(*command, "--ctx", "0")  # llama.cpp would take 0 as "the model's own": refused up front
        assert run.returncode == 2 and "--ctx: must be at least 64, not 0" in run.stderr, command
    run = macapp("estimate", str(tiny_models["mha_f32"]), "--ctx", "999999")
    assert run.returncode == 1 and "longer than the model's context" in run.stderr


def test_doctor_json():
    data = json.loads(macapp("doctor", "--json").stdout)
    assert data["budget_bytes"] > 0 and data["total_bytes"] >= data["available_bytes"]
    assert data["paths"]["data"] == os.environ["MACAPP_HOME"]
    assert data["backends"]["llama-cpp-python"]


def test_models_lists_folder_and_reasons(tmp_path, tiny_models):
    from macapp.core.settings import Settings

    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "good.gguf").write_bytes(tiny_models["mha_f32"].read_bytes())
    (folder / "half.gguf").write_bytes(tiny_models["mha_f32"].read_bytes()[:300_000])
    Settings(model_dirs=[str(folder)]).save()
    data = json.loads(macapp("models", "--json").stdout)
    by_name = {os.path.basename(e["path"]): e for e in data}
    assert by_name["good.gguf"]["facts"]["parameters"] > 0 and by_name["good.gguf"]["error"] is None
    assert "truncated" in by_name["half.gguf"]["error"]
    human = macapp("models")
    assert human.returncode == 0 and by_name["good.gguf"]["id"] == "good"  # the short id, not the file name
    assert "good" in human.stdout.split() and "truncated" in human.stdout


def test_help_lists_commands():
    out = macapp("--help").stdout
    for command in ("doctor", "inspect", "estimate", "models", "gui"):
        assert command in out


def _help_pages(parser: argparse.ArgumentParser):
    """The parser and every sub-command's parser, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _help_pages(sub)


def test_every_help_page_reads_as_written():
    """argparse %-formats help= strings but prints description= as it is: a '%%' meant for one shows doubled."""
    from macapp.cli.main import build_parser

    for parser in _help_pages(build_parser()):
        text = parser.format_help()
        assert "%%" not in text and "%(" not in text, (parser.prog, text)


def test_every_command_argument_and_option_says_what_it_is_for():
    """Each page has a description, each positional and option a help string (-h aside); a group of
    sub-commands lists each one with its help instead."""
    from macapp.cli.main import build_parser

    missing = []
    for parser in _help_pages(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{parser.prog} {a.dest}" for a in action._choices_actions if not a.help]
                assert len(action._choices_actions) == len(action.choices), parser.prog  # none added without help=
            elif action.help is None:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing
    gui = next(p for p in _help_pages(build_parser()) if p.prog.endswith(" gui"))
    assert gui.description and gui.description in " ".join(gui.format_help().split())


def test_no_help_page_says_chunk_the_word_is_passage():
    """The window, the progress rows and the CLI all say "passages"; the ``chunks`` keys of --json stay as they are."""
    from macapp.cli.main import build_parser

    for parser in _help_pages(build_parser()):
        assert "chunk" not in parser.format_help().lower(), parser.prog


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["selftest"], "cancelled"),
        (["pull", "org/repo", "Q4_K_M"], "cancelled (the download resumes when you run it again)"),
    ],
)
def test_a_cancelled_command_says_so_and_only_a_download_promises_to_resume(command, said, monkeypatch, capsys):
    from macapp import selftest
    from macapp.cli import hub
    from macapp.cli.main import main
    from macapp.core.errors import Cancelled

    def cancelled(*_args, **_kwargs):
        raise Cancelled()

    monkeypatch.setattr(selftest, "run", cancelled)  # Ctrl-C in the middle of the work
    monkeypatch.setattr(hub, "pull_cmd", cancelled)
    assert main(command) == 130
    assert capsys.readouterr().err.strip() == said
