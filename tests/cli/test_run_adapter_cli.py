"""``macapp run --adapter``: a tuned adapter answers through MLX and, exported on the fly, through llama.cpp."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from macapp.core.engines import open_engine
from macapp.core.errors import UserError
from macapp.core.tuning.adapters import engine_adapter
from macapp.core.tuning.tiny_mlx import write_tiny_mlx
from tests.fixtures.tiny_adapter import ANSWER, QUESTION, train_tiny_adapter


def macapp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
    )


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    from macapp.core.tuning.export import export_base_gguf

    root = tmp_path_factory.mktemp("run-adapter")
    base = write_tiny_mlx(root / "base", heads=4, kv_heads=2)
    adapter = train_tiny_adapter(base, root / "adapter")
    return {"base": base, "adapter": adapter, "gguf": export_base_gguf(base, root / "base.gguf").path}


def answer(*args: str) -> dict:
    run = macapp("run", *args, QUESTION, "--temp", "0", "--max-tokens", "12", "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_adapter_through_mlx_and_llama_cpp(tuned):
    mlx = answer(str(tuned["base"]), "--adapter", str(tuned["adapter"]))
    assert mlx["text"].strip() == ANSWER
    gguf = answer(str(tuned["gguf"]), "--adapter", str(tuned["adapter"]))
    assert gguf["text"].strip() == ANSWER  # exported to lora.gguf on first use
    assert (tuned["adapter"] / "lora.gguf").is_file()
    assert answer(str(tuned["gguf"]))["text"].strip() != ANSWER  # the base alone doesn't know it


def test_unknown_adapter_is_a_clear_error(tuned):
    with pytest.raises(UserError):
        open_engine(str(tuned["gguf"]), adapter=engine_adapter("no-such-adapter"))
