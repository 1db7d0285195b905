"""The Tuning page on a real tiny mlx model: problems by line, a live loss curve, cancel and resume."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from macapp.core.tuning.datasets import write_jsonl
from macapp.ui.tuning_page import TuningPage

QUESTIONS = ["what colour is the sky?", "name a colour.", "what is your favourite colour?", "which colour is the sea?",
             "tell me a colour please.", "what colour do you like?", "pick a colour.", "what colour is water?",
             "the best colour?", "a colour for the sea?", "what colour is my book?", "colour of the moon?"]
GiB = 1024 ** 3


@pytest.fixture
def blue_data(tmp_path) -> Path:
    records = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "blue"}]}
               for q in QUESTIONS]
    return write_jsonl(tmp_path / "blue.jsonl", records)


@pytest.fixture
def page(qtbot, tiny_mlx) -> TuningPage:
    page = TuningPage()
    qtbot.addWidget(page)
    page.budget_bytes = 8 * GiB
    page.base_edit.setText(str(tiny_mlx))
    page.name_edit.setText("blue")
    page.rank_spin.setValue(4)
    page.layers_spin.setValue(-1)
    page.lr_edit.setText("1e-3")
    page.batch_spin.setValue(2)
    page.seq_spin.setValue(128)
    page.extra_options = {"steps_per_report": 1, "steps_per_eval": 2, "save_every": 1, "val_batches": 1,
                          "valid_fraction": 0.25}
    page.resize(1000, 700)
    page.show()
    return page


def check(qtbot, page: TuningPage):
    with qtbot.waitSignal(page.planned, timeout=20_000) as blocker:
        page.check_button.click()
    return blocker.args[0]


def test_a_malformed_dataset_lists_its_problems_by_line_and_start_stays_disabled(qtbot, page, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{not json\n{"prompt": "no completion"}\n{"text": 5}\n', encoding="utf-8")
    page.data_edit.setText(str(bad))
    assert not page.start_button.isEnabled()
    plan = check(qtbot, page)
    items = [page.problem_list.item(i).text() for i in range(page.problem_list.count())]
    assert plan.problems and len(items) == len(plan.problems)
    assert any(t.startswith("line 2") for t in items) and any(t.startswith("line 3") for t in items)
    assert any(t.startswith("line 4") for t in items)
    assert page.problem_list.isVisible() and "problem" in page.plan_label.text()
    assert not page.start_button.isEnabled()


def test_a_short_training_draws_the_loss_curve_and_offers_try_in_chat(qtbot, page, blue_data):
    page.data_edit.setText(str(blue_data))
    page.iters_spin.setValue(6)
    plan = check(qtbot, page)
    assert not plan.problems and "Peak memory" in page.plan_label.text()
    assert page.start_button.isEnabled()
    with qtbot.waitSignal(page.trainingEnded, timeout=60_000) as ended:
        page.start_button.click()
        assert page.cancel_button.isVisible() and not page.check_button.isEnabled()
    assert ended.args == ["done"], page.notice.label.text()
    assert [i for i, _ in page.plot.train_points] == [1, 2, 3, 4, 5, 6]
    assert page.plot.val_points and all(v > 0 for _, v in page.plot.val_points)
    assert page.progress_label.text().startswith("Done: 6 iterations")
    assert page.try_button.isVisible() and not page.resume_button.isVisible()
    with qtbot.waitSignal(page.tryInChat) as tried:
        page.try_button.click()
    assert tried.args == ["blue"]
    qtbot.waitUntil(lambda: any(page.adapter_list.item(i).text().startswith("blue —")
                                for i in range(page.adapter_list.count())), timeout=5_000)


def test_cancel_mid_training_returns_to_idle_and_offers_resume(qtbot, page, blue_data):
    page.data_edit.setText(str(blue_data))
    page.iters_spin.setValue(10_000)
    check(qtbot, page)
    page.start_button.click()
    qtbot.waitUntil(lambda: len(page.plot.train_points) >= 2, timeout=30_000)
    assert "Iteration" in page.progress_label.text() and "/ 10000" in page.progress_label.text()
    started = time.monotonic()
    with qtbot.waitSignal(page.trainingEnded, timeout=10_000) as ended:
        page.cancel_button.click()
        assert not page.cancel_button.isEnabled()
    assert ended.args == ["cancelled"] and time.monotonic() - started < 5.0
    assert page.state == "idle" and page.check_button.isEnabled() and not page.cancel_button.isVisible()
    assert page.resume_button.isVisible() and "Resume" in page.progress_label.text()
    assert not page.try_button.isVisible()
