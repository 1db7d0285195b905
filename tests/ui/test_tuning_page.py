"""The Tuning page on a real tiny mlx model: problems by line, a live loss curve, cancel and resume."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from macapp.core.tuning.datasets import write_jsonl
from macapp.ui.tuning.page import TuningPage
from tests.fixtures.tuning_data import COLOUR_QUESTIONS

QUESTIONS = COLOUR_QUESTIONS[:12]
GiB = 1024**3


@pytest.fixture
def blue_data(tmp_path) -> Path:
    records = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "blue"}]} for q in QUESTIONS
    ]
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
    page.extra_options = {
        "steps_per_report": 1,
        "steps_per_eval": 2,
        "save_every": 1,
        "val_batches": 1,
        "valid_fraction": 0.25,
    }
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
    qtbot.waitUntil(
        lambda: any(page.adapter_list.item(i).text().startswith("blue —") for i in range(page.adapter_list.count())),
        timeout=5_000,
    )


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


def test_check_needs_no_base_and_labels_token_counts_approximate(qtbot, page, blue_data):
    page.base_edit.setText("")
    page.data_edit.setText(str(blue_data))
    plan = check(qtbot, page)
    assert plan.base is None and plan.estimate is None and plan.reports[0].tokens.approx
    text = page.plan_label.text()
    assert "12 examples (chat)" in text and "approx." in text and "Choose a base model" in text
    assert "answers only" in text and not page.start_button.isEnabled()


def test_answers_only_by_default_with_a_visible_way_to_train_on_everything(qtbot, page, blue_data, tmp_path):
    page.data_edit.setText(str(blue_data))
    assert page.prompt_check.isVisible() and page.prompt_check.isEnabled() and not page.prompt_check.isChecked()
    assert page.options().mask_prompt is None and "answers only" in page.learn_label.text()
    page.prompt_check.setChecked(True)
    assert page.options().mask_prompt is False and "prompts as well" in page.learn_label.text()

    text = write_jsonl(tmp_path / "text.jsonl", [{"text": f"line {i}"} for i in range(8)])
    page.data_edit.setText(str(text))
    assert not page.prompt_check.isEnabled() and "no prompts to leave out" in page.learn_label.text()
    assert page.prompt_check.toolTip() == page.learn_label.text()
    assert page.options().mask_prompt is None  # the box stays ticked, but text can't be masked either way
    plan = check(qtbot, page)
    assert plan.options.mask_prompt is False and not plan.problems
    assert "no prompts to leave out" in page.plan_label.text()
    page.data_edit.setText(str(blue_data))
    assert page.prompt_check.isEnabled() and page.options().mask_prompt is False


def test_a_gguf_base_offers_its_mlx_twin_and_downloads_it(qtbot, page, blue_data, tiny_mlx, tmp_path, monkeypatch):
    from macapp.core.models.catalog import load_catalog
    from macapp.core.progress import Progress
    from macapp.ui.tuning import page as tuning_page

    entry = load_catalog()[0]
    gguf = tmp_path / entry.files[0].file
    gguf.write_bytes(b"GGUF")
    fetched = []

    def fake_fetch(repo, cancel=None):  # the Hub is not reachable in tests: a scripted download
        fetched.append(repo)
        yield Progress("downloading", 50, 100, "model.safetensors")
        return tiny_mlx

    monkeypatch.setattr(tuning_page, "fetch_mlx_model", fake_fetch)
    page.data_edit.setText(str(blue_data))
    page.base_edit.setText(str(gguf))
    page.check_button.click()
    qtbot.waitUntil(lambda: page.notice.isVisible(), timeout=20_000)
    message = page.notice.label.text()
    assert "GGUF file" in message and "needs an MLX model" in message and "Not a directory" not in message
    assert entry.mlx_repo in message and page.notice.action_button.isVisible()
    assert page.notice.action_button.text() == "Download the MLX version"
    page.notice.action_button.click()
    qtbot.waitUntil(lambda: page.base_edit.text() == str(tiny_mlx), timeout=10_000)
    assert fetched == [entry.mlx_repo] and page.state == "idle" and "Downloaded" in page.progress_label.text()
    plan = check(qtbot, page)
    assert plan.estimate is not None and page.start_button.isEnabled()


def test_the_from_chats_dialog_has_the_margins_of_the_apps_other_dialogs(qtbot):
    from macapp.core.settings import Settings
    from macapp.ui.dialogs.settings import SettingsDialog
    from macapp.ui.tuning.chat_picker import ChatPicker

    picker, settings = ChatPicker([(1, "Beekeeping questions"), (2, "Trip to Lisbon")]), SettingsDialog(Settings())
    qtbot.addWidget(picker)
    qtbot.addWidget(settings)
    picker.show()
    qtbot.waitExposed(picker)

    def spacing(dialog):
        m = dialog.layout().contentsMargins()
        return (m.left(), m.top(), m.right(), m.bottom()), dialog.layout().spacing()

    assert spacing(picker) == spacing(settings) == ((22, 18, 22, 14), 10)
    assert picker.width() == 460 and picker.intro.height() > picker.intro.fontMetrics().height()  # wraps, not widens
