"""``macapp run`` and ``macapp chat`` on a real tiny model, as separate processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from macapp.core.chat.store import ChatStore
from macapp.core.engines import plan_load
from macapp.core.errors import UserError


def macapp(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env=dict(os.environ),
    )


def test_run_json_contract(tiny_models):
    run = macapp("run", str(tiny_models["mha_f32"]), "hello world", "--max-tokens", "12", "--seed", "3", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["completion_tokens"] == 12 and data["finish_reason"] == "length"
    assert data["prompt_tokens"] > 3 and isinstance(data["text"], str) and data["text"]
    assert data["timings"]["tokens_per_s"] > 0 and data["timings"]["prompt_s"] >= 0
    again = json.loads(
        macapp("run", str(tiny_models["mha_f32"]), "hello world", "--max-tokens", "12", "--seed", "3", "--json").stdout
    )
    assert again["text"] == data["text"]  # the seed makes it reproducible across processes


def test_run_streams_plain_text_and_stats(tiny_models):
    run = macapp(
        "run",
        str(tiny_models["mha_f32"]),
        "hello",
        "--system",
        "Be brief.",
        "--max-tokens",
        "8",
        "--seed",
        "1",
        "--stats",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() and "8 generated" in run.stderr and "tokens/s" in run.stderr


def test_run_with_a_vanished_or_fake_model_is_one_line(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model" * 100)
    for model in (str(tmp_path / "nope.gguf"), str(fake)):
        run = macapp("run", model, "hello")
        assert run.returncode == 1 and run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr


def test_model_that_wont_fit_is_refused_with_the_context_that_would(tiny_models):
    with pytest.raises(UserError) as err:
        plan_load(str(tiny_models["gqa_q8_bigvocab"]), n_ctx=4096, budget=20 * 1024**2)
    assert "needs" in err.value.message and "largest context that fits" in (err.value.hint or "")
    with pytest.raises(UserError, match="smaller model"):
        plan_load(str(tiny_models["gqa_q8_bigvocab"]), n_ctx=256, budget=1024**2)


def test_chat_session_is_saved_and_regenerate_makes_a_version(tiny_models, isolated_home):
    run = macapp(
        "chat",
        str(tiny_models["mha_f32"]),
        "--max-tokens",
        "6",
        "--seed",
        "2",
        stdin="hello world\n/regen\n/exti\nand the model?\n /exti is sent as it is\n/exit\n",
    )
    assert run.returncode == 0, run.stderr
    assert "unknown command /exti" in run.stderr
    with ChatStore() as store:
        (conv,) = store.list_conversations()
        thread = store.thread(conv.id)
        assert [m.role for m in thread] == ["user", "assistant"] * 3  # the mistyped command never reached the model
        assert thread[4].content == " /exti is sent as it is"
        assert thread[0].content == "hello world" and thread[1].version_count == 2
        assert conv.title.startswith("hello world")


def test_piped_chat_prints_answers_only_and_whole_stats_lines(tiny_models, isolated_home):
    run = macapp("chat", str(tiny_models["mha_f32"]), "--max-tokens", "6", "--seed", "2", stdin="hello\nagain\n")
    assert run.returncode == 0, run.stderr
    assert ">>>" not in run.stdout and len(run.stdout.strip().splitlines()) >= 2  # no prompts between the answers
    stats = [line for line in run.stderr.splitlines() if "prompt tokens" in line]
    assert len(stats) == 2, run.stderr
    for line in stats:  # one line each in a log file, not cut at rich's 80 columns
        assert "tokens/s" in line and line.endswith(" tokens"), run.stderr
    assert "/regen /new /system TEXT /exit" in run.stderr


def test_kill_9_mid_answer_keeps_everything_written(tiny_models, isolated_home, tmp_path):
    errors = (tmp_path / "stderr.txt").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "macapp.cli.main",
            "chat",
            str(tiny_models["mha_f32"]),
            "--max-tokens",
            "0",
            "--ctx",
            "2048",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        env=dict(os.environ),
    )
    try:
        proc.stdin.write(b"tell me everything about the model\n")
        proc.stdin.flush()
        seen = b""
        deadline = time.monotonic() + 60
        while len(seen) < 200 and time.monotonic() < deadline:
            data = os.read(proc.stdout.fileno(), 4096)
            if not data:  # the chat ended on its own: that is a failure, say why
                break
            seen += data
        assert len(seen) >= 200, (seen, (tmp_path / "stderr.txt").read_text())
        time.sleep(0.3)  # longer than the session's save interval
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        errors.close()
    printed = seen.split(b">>> ", 1)[-1].decode("utf-8", "replace")
    with ChatStore() as store:
        (conv,) = store.list_conversations()
        user, answer = store.thread(conv.id)
    assert user.content == "tell me everything about the model"
    assert answer.status == "interrupted"
    assert len(answer.content) >= len(printed) > 100
    assert answer.content.startswith(printed[:100])
