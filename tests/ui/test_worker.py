"""The one worker type: progress, results, user errors, bugs and cancellation."""

from __future__ import annotations

import logging
import threading

import pytest

from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import Progress
from macapp.ui.worker import Worker, error_text, running_workers


def _record(worker: Worker) -> list[tuple[str, object]]:
    events: list[tuple[str, object]] = []
    s = worker.signals
    s.started.connect(lambda: events.append(("started", None)))
    s.yielded.connect(lambda v: events.append(("yielded", v)))
    s.returned.connect(lambda v: events.append(("returned", v)))
    s.errored.connect(lambda e: events.append(("errored", e)))
    s.aborted.connect(lambda: events.append(("aborted", None)))
    s.finished.connect(lambda: events.append(("finished", None)))
    return events


def test_function_result_is_returned(qtbot):
    worker = Worker(lambda a, b: a + b, 2, b=3)
    events = _record(worker)
    signals = worker.signals
    with qtbot.waitSignals([signals.started, signals.returned, signals.finished], order="strict", timeout=5000):
        worker.start()
    assert events[1] == ("returned", 5)


def test_generator_yields_progress_then_returns(qtbot):
    def count(n):
        for i in range(n):
            yield Progress("counting", done=i + 1, total=n)
        return "done"

    worker = Worker(count, 3)
    events = _record(worker)
    with qtbot.waitSignal(worker.signals.finished, timeout=5000):
        worker.start()
    yielded = [v for kind, v in events if kind == "yielded"]
    assert [p.done for p in yielded] == [1, 2, 3] and all(p.total == 3 for p in yielded)
    assert events[-2] == ("returned", "done")
    assert [k for k, _ in events] == ["started", "yielded", "yielded", "yielded", "returned", "finished"]


def test_user_error_is_reported_with_its_message(qtbot):
    def refuse():
        raise UserError("model.txt is not a .gguf file", hint="Orchard runs GGUF models")

    worker = Worker(refuse)
    events = _record(worker)
    with qtbot.waitSignal(worker.signals.errored, timeout=5000) as blocker:
        worker.start()
    exc = blocker.args[0]
    assert isinstance(exc, UserError) and exc.message == "model.txt is not a .gguf file"
    assert error_text(exc) == "model.txt is not a .gguf file — Orchard runs GGUF models"
    qtbot.waitUntil(lambda: ("finished", None) in events)
    assert not any(kind == "returned" for kind, _ in events)


def test_a_bug_is_logged_and_reported(qtbot, caplog):
    def broken():
        return {}["missing"]

    worker = Worker(broken)
    with (
        caplog.at_level(logging.ERROR, logger="macapp.ui.worker"),
        qtbot.waitSignal(worker.signals.errored, timeout=5000) as blocker,
    ):
        worker.start()
    assert isinstance(blocker.args[0], KeyError)
    assert "Something went wrong" in error_text(blocker.args[0])
    assert any("broken" in r.getMessage() and r.exc_info for r in caplog.records)


def test_cancel_stops_a_generator_silently(qtbot):
    first_sent = threading.Event()
    proceed = threading.Event()

    def forever():
        i = 0
        while True:
            yield Progress("looping", done=i)
            first_sent.set()
            proceed.wait(5)
            i += 1

    worker = Worker(forever)
    events = _record(worker)
    with qtbot.waitSignals([worker.signals.aborted, worker.signals.finished], order="strict", timeout=5000):
        worker.start()
        assert first_sent.wait(5)
        worker.cancel()
        proceed.set()
    kinds = [k for k, _ in events]
    assert "returned" not in kinds and "errored" not in kinds
    assert worker.abort_requested


def test_functions_get_the_token_and_cancelled_is_silent(qtbot):
    started = threading.Event()

    def long_work(token):
        started.set()
        while not token.wait(0.01):
            pass
        raise Cancelled()

    worker = Worker(long_work, pass_token=True)
    events = _record(worker)
    with qtbot.waitSignal(worker.signals.aborted, timeout=5000):
        worker.start()
        assert started.wait(5)
        worker.cancel()
    qtbot.waitUntil(lambda: ("finished", None) in events)
    assert not any(kind == "errored" for kind, _ in events)


def test_running_workers_are_kept_until_finished(qtbot):
    release = threading.Event()
    worker = Worker(lambda: release.wait(5))
    with qtbot.waitSignal(worker.signals.finished, timeout=5000):
        worker.start()
        assert worker in running_workers()
        with pytest.raises(RuntimeError):
            worker.start()
        release.set()
    qtbot.waitUntil(lambda: worker not in running_workers())


def test_the_latest_request_wins_and_drop_makes_every_answer_stale():
    from macapp.ui.worker import Latest

    latest, shown = Latest(), []
    first = latest.ticket()
    show_first = latest.only_if_current(first, shown.append)
    second = latest.ticket()
    show_second = latest.only_if_current(second, shown.append)
    show_first("old answer")  # arrives after a newer question: dropped
    show_second("new answer")
    assert shown == ["new answer"] and latest.is_current(second) and not latest.is_current(first)
    latest.drop()  # the page closes: nothing outstanding is shown
    show_second("late answer")
    assert shown == ["new answer"]


def test_settings_cpu_threads_reach_the_window_engine(qtbot, monkeypatch, tmp_path):
    from macapp.core.settings import Settings
    from macapp.ui.chat.jobs import window_threads
    from macapp.ui.dialogs.settings import SettingsDialog

    monkeypatch.setenv("MACAPP_HOME", str(tmp_path))
    assert window_threads("metal") is None  # automatic: Metal keeps llama.cpp's own choice
    dialog = SettingsDialog(Settings.load())
    qtbot.addWidget(dialog)
    assert dialog.threads_box.value() == 0 and dialog.threads_box.text() == "automatic"
    dialog.threads_box.setValue(3)
    dialog.save()
    assert Settings.load().cpu_threads == 3
    assert window_threads("cpu") == 3 and window_threads("metal") == 3  # the user's number wins everywhere
