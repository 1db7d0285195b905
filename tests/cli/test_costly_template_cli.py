"""``macapp run`` on a model whose chat template loops 10^9 times: an answer within seconds, with a notice."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from macapp.core.models.tiny_gguf import write_tiny_gguf

LOOPS_1E9 = (
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}"
)


def test_run_with_a_cpu_bomb_template_answers_with_chatml_and_says_so(tmp_path):
    model = write_tiny_gguf(tmp_path / "bomb.gguf", chat_template=LOOPS_1E9)
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "run", str(model), "hello world", "--max-tokens", "6", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()  # an answer
    assert "This model's chat template took over 1 s to render; using ChatML instead." in run.stderr
    assert elapsed < 10, f"{elapsed:.1f} s"  # the process start and model load take ~2 s here; the render 1 s
