"""The CLI's one progress/cancel helper: plain lines without a terminal, landmarks always, Ctrl-C cancels."""

from __future__ import annotations

import os
import signal

import pytest

from macapp.cli.hub import _download_line
from macapp.cli.progress import BarState, ctrl_c_cancels, follow
from macapp.core.errors import Cancelled
from macapp.core.models.download import DownloadProgress
from macapp.core.progress import CancelToken, Progress


def _work(steps: int, closed: list[str]):
    try:
        for i in range(steps):
            yield Progress("step", i + 1, steps, "landmark" if i == steps // 2 else "")
        return "value"
    finally:
        closed.append("closed")


def test_without_a_terminal_lines_are_throttled_but_landmarks_always_print(capsys):
    closed: list[str] = []
    value = follow(
        _work(10, closed),
        "work",
        line=lambda p: f"{int(p.done)}/{int(p.total)}",
        bar=lambda p: BarState(p.done, p.total, "work"),
        landmark=lambda p: p.message == "landmark",
        every=3600,
    )
    assert value == "value" and closed == ["closed"]
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays clean for --json
    assert captured.err.splitlines() == ["1/10", "6/10"]  # the first line, then only the landmark


def test_every_zero_prints_every_step(capsys):
    follow(_work(3, []), "work", line=lambda p: f"step {int(p.done)}", every=0)
    assert capsys.readouterr().err.splitlines() == ["step 1", "step 2", "step 3"]


def test_a_cancel_stops_between_steps_and_closes_the_work():
    token, closed, seen = CancelToken(), [], []

    def line(p):
        seen.append(p.done)
        if p.done == 2:
            token.cancel()
        return None

    with pytest.raises(Cancelled):
        follow(_work(10, closed), "work", line=line, every=0, cancel=token)
    assert seen == [1, 2] and closed == ["closed"]


def test_first_ctrl_c_cancels_the_token_and_a_second_one_interrupts(capsys):
    token = CancelToken()
    with ctrl_c_cancels(token, "stopping…"):
        os.kill(os.getpid(), signal.SIGINT)
        assert token.cancelled
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert "stopping…" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the previous handler is back


def test_a_download_reads_as_amount_speed_and_time_left():
    step = DownloadProgress("downloading", 12 * 2**20, 4 * 2**30, speed=8 * 2**20, eta=540)
    assert _download_line("model.gguf", step) == "model.gguf: 12 MB of 4.0 GB, 8.0 MB/s, 9 min left"
    assert _download_line("model.gguf", DownloadProgress("done", 1, 1)) == "model.gguf: done"


def test_pull_without_a_terminal_prints_plain_progress_on_stderr_and_json_on_stdout(
    fake_hub, tiny_models, capsys, monkeypatch, tmp_path
):
    import json

    from tests.cli.inprocess import run

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_hub.add_repo("org/tiny-GGUF")
    fake_hub.add_file("org/tiny-GGUF", "tiny-Q8_0.gguf", tiny_models["tied_q8"])
    code, out, err = run(capsys, "pull", "org/tiny-GGUF", "tiny-Q8_0.gguf", "--json")
    assert code == 0, err
    (path,) = json.loads(out)["files"]
    assert path.endswith("tiny-Q8_0.gguf")
    assert err.splitlines()[-1] == "tiny-Q8_0.gguf: done"  # the landmark line, whatever the speed
