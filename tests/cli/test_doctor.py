"""``macapp doctor`` as a user runs it: the pasteable report, its JSON and the speed test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from macapp.core.doctor.diagnostics import _app_bundle
from macapp.core.settings import Settings


def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


@pytest.fixture
def two_models(tmp_path, tiny_models) -> tuple[Path, Path]:
    """A library folder holding two tiny models of different sizes: (smaller, larger)."""
    folder = tmp_path / "lib"
    folder.mkdir()
    small, large = sorted((tiny_models["mha_f32"], tiny_models["gqa_q8_bigvocab"]), key=lambda p: p.stat().st_size)
    assert small.stat().st_size < large.stat().st_size
    for source in (large, small):
        (folder / source.name).write_bytes(source.read_bytes())
    Settings(model_dirs=[str(folder)], include_lm_studio=False).save()
    return folder / small.name, folder / large.name


def test_json_speed_test_runs_on_the_smallest_model(two_models):
    small, _ = two_models
    run = doctor("--json", "--seconds", "1")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    test = data["speed_test"]
    assert test["file_name"] == small.name and test["model"] == small.stem.lower()
    assert test["tokens"] > 0 and test["tokens_per_s"] > 0 and test["prompt_tokens_per_s"] > 0
    assert test["stopped_by"] in ("time", "context") and test["generation_s"] < 3
    assert test["n_ctx"] > 0 and test["quantization"] == "F32"
    assert data["models"] == {"installed": 2, "unreadable": 0}
    assert data["orchard"]["version"] and data["orchard"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert data["orchard"]["frozen"] is False and data["orchard"]["app_path"] is None
    assert set(data["metal"]) == {"llama.cpp", "mlx"}
    if sys.platform != "darwin":
        assert data["metal"]["llama.cpp"] == "no (CPU)"
    assert data["paths"]["data"] == os.environ["MACAPP_HOME"]
    assert {"adapters", "index", "logs", "hf_cache"} <= set(data["paths"])


def test_no_speed_test_leaves_it_out(two_models):
    run = doctor("--json", "--no-speed-test")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert "speed_test" not in data and data["models"]["installed"] == 2
    assert "speed test" not in run.stderr


def test_no_models_says_so_and_succeeds():
    Settings(include_lm_studio=False).save()
    run = doctor("--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["models"]["installed"] == 0 and data["speed_test"] == {"skipped": "no model installed"}
    text = doctor()
    assert text.returncode == 0 and "Speed test" in text.stdout and "skipped: no model installed" in text.stdout


def test_text_report_is_pasteable_markdown(two_models):
    small, _ = two_models
    run = doctor("--seconds", "1")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("### Orchard doctor\n\n```text\n") and out.endswith("\n```\n")
    lines = {line.split("  ", 1)[0]: line for line in out.splitlines()}
    for key in (
        "Orchard",
        "Python",
        "OS",
        "Chip",
        "Memory",
        "Model budget",
        "Metal active (llama.cpp)",
        "Metal active (mlx)",
        "llama-cpp-python",
        "data dir",
        "adapters dir",
        "index dir",
        "Models installed",
        "Speed test model",
        "Context used",
        "Load time",
        "Prompt processing",
        "Generation",
    ):
        assert key in lines, key
    assert lines["Models installed"].split()[-1] == "2"
    assert small.name in lines["Speed test model"] and "tokens/s" in lines["Generation"]
    assert not any(ch in out for ch in "─│┃━┏┗╭╰")  # no box drawing
    assert "speed test" in run.stderr and "speed test" not in out  # progress stays off stdout


def test_seconds_must_be_positive():
    for bad in ("0", "-1", "soon"):
        run = doctor("--seconds", bad)
        assert run.returncode == 2 and "--seconds" in run.stderr


def test_help_names_the_options():
    out = doctor("--help").stdout
    for option in ("--json", "--no-speed-test", "--seconds N", "speed test"):
        assert option in out


def test_app_bundle_is_found_inside_contents():
    inside = Path("/Applications/Orchard.app/Contents/MacOS/Orchard")
    assert _app_bundle(None, inside) == "/Applications/Orchard.app"
    assert _app_bundle(Path("/Users/me/Orchard.app/Contents/Frameworks")) == "/Users/me/Orchard.app"
    assert _app_bundle(Path("/work/.venv/bin/python"), None) is None
    assert _app_bundle(Path("/tmp/Orchard.app")) is None
