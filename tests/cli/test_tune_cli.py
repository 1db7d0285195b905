"""``macapp tune`` and ``macapp adapters`` as a user runs them (real mlx on a tiny model, in child processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from macapp.core import paths
from macapp.core.tuning.datasets import write_jsonl


def macapp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
    )


def chats(n: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"question {i}?"}, {"role": "assistant", "content": "blue"}]}
        for i in range(n)
    ]


def test_a_malformed_dataset_names_every_line_and_trains_nothing(tiny_mlx, tmp_path):
    data = tmp_path / "data.jsonl"
    lines = [json.dumps(r) for r in chats(3)] + [
        "{oops",
        json.dumps({"text": "mixed"}),
        "",
        json.dumps({"messages": [{"role": "bot", "content": 3}]}),
    ]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = macapp("tune", "--base", str(tiny_mlx), "--data", str(data), "--name", "never", "--iters", "5")
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert [e.split(":")[1].strip() for e in errors] == ["line 4", "line 5", "line 7", "line 7"], run.stderr
    assert "not valid JSON" in errors[0] and "mixed formats" in errors[1]
    assert "4 problems in the data; nothing was trained" in run.stderr
    assert "Traceback" not in run.stderr and "PyTorch" not in run.stderr
    assert not (paths.adapters_dir() / "never").exists()


def test_a_tiny_tune_run_is_listed_by_adapters(tiny_mlx, tmp_path):
    data = write_jsonl(tmp_path / "blue.jsonl", chats(12))
    run = macapp(
        "tune",
        "--base",
        str(tiny_mlx),
        "--data",
        str(data),
        "--name",
        "cli-blue",
        "--iters",
        "20",
        "--rank",
        "4",
        "--layers",
        "-1",
        "--lr",
        "1e-3",
        "--batch-size",
        "2",
        "--max-seq-length",
        "64",
        "--steps-per-report",
        "5",
        "--steps-per-eval",
        "10",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["iterations"] == 20 and result["adapter"]["name"] == "cli-blue"
    assert result["train_loss"] > 0 and result["val_loss"] > 0
    progress = [line for line in run.stderr.splitlines() if line.startswith("iter ")]
    assert any("train loss" in line and "tok/s" in line for line in progress), run.stderr
    assert "memory: about" in run.stderr and "blue.jsonl: 12 examples (chat), tokens min" in run.stderr
    assert "learning from the answers only (--train-on-prompt" in run.stderr
    assert result["adapter"]["settings"]["mask_prompt"] is True
    assert "Traceback" not in run.stderr and "PyTorch" not in run.stderr

    listed = macapp("adapters", "--json")
    assert listed.returncode == 0, listed.stderr
    [adapter] = json.loads(listed.stdout)
    assert adapter["name"] == "cli-blue" and adapter["status"] == "complete" and adapter["iterations"] == 20
    assert adapter["settings"]["rank"] == 4 and adapter["settings"]["batch_size"] == 2
    assert adapter["base_path"] == str(tiny_mlx.resolve()) and adapter["size_bytes"] > 0
    table = macapp("adapters")
    assert table.returncode == 0 and "cli-blue" in table.stdout and "complete" in table.stdout
    header, row = table.stdout.splitlines()[:2]
    assert "learned" in header and row.split()[header.split().index("learned")] == "answers"

    again = macapp("tune", "--base", str(tiny_mlx), "--data", str(data), "--name", "cli-blue", "--iters", "20")
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_bad_base_and_name_are_one_line_errors(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", chats(4))
    run = macapp("tune", "--base", str(tmp_path), "--data", str(data), "--name", "x")
    assert run.returncode == 1 and run.stderr.startswith("error: ") and "config.json" in run.stderr
    empty = macapp("adapters")
    assert empty.returncode == 0 and "No adapters yet" in empty.stdout


def test_text_data_says_in_one_line_that_it_cannot_be_masked(tiny_mlx, tmp_path):
    data = tmp_path / "text.jsonl"
    data.write_text(
        "\n".join([json.dumps({"text": f"line {i}"}) for i in range(4)] + ["{oops"]) + "\n", encoding="utf-8"
    )
    run = macapp("tune", "--base", str(tiny_mlx), "--data", str(data), "--name", "never", "--iters", "5")
    notes = [line for line in run.stderr.splitlines() if line.startswith("note: ")]
    assert notes == ["note: text lines have no prompt to leave out: training learns all of each text"], run.stderr
    assert run.returncode == 1 and "error: line 5: not valid JSON" in run.stderr
    forced = macapp("tune", "--base", str(tiny_mlx), "--data", str(data), "--name", "never", "--mask-prompt")
    assert forced.returncode == 1 and "prompt masking needs 'messages'" in forced.stderr
    both = macapp(
        "tune", "--base", str(tiny_mlx), "--data", str(data), "--name", "x", "--mask-prompt", "--train-on-prompt"
    )
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_a_gguf_base_names_the_mlx_twin_to_pull(tmp_path):
    from macapp.core.models.catalog import load_catalog

    entry = load_catalog()[0]
    gguf = tmp_path / entry.files[0].file
    gguf.write_bytes(b"GGUF")
    data = write_jsonl(tmp_path / "d.jsonl", chats(4))
    run = macapp("tune", "--base", str(gguf), "--data", str(data), "--name", "x")
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith(f"error: {gguf.name} is a GGUF file; tuning needs an MLX model")
    assert f"macapp pull {entry.mlx_repo} --mlx" in run.stderr and "Not a directory" not in run.stderr
