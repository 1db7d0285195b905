"""The Discover page: curated picks, Hub search, remote estimates, and the downloads panel.

The Hub is the fake one on 127.0.0.1 (tests/fixtures/fake_hub.py) serving real tiny GGUFs;
without it, HF_ENDPOINT points at a closed port, so nothing ever leaves the machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from macapp.core.hardware.bandwidth import decode_bandwidth
from macapp.core.models.catalog import load_catalog, matching, recommend
from macapp.core.models.estimate import RuntimeSettings, estimate_memory
from macapp.core.models.library import model_facts
from macapp.core.models.speed import format_speed
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.units import format_bytes, format_params
from macapp.ui.discover.repo_files import READING
from macapp.ui.discover.widgets import REPO_STATS_ROLE
from macapp.ui.widgets.notice import Notice

REPO = "tinyorg/Tiny-Llama-GGUF"
BIG = "Tiny-Llama-F32.gguf"
PROGRESS = re.compile(r"[\d.]+ (bytes|KB|MB) of [\d.]+ MB · [\d.]+ (bytes|KB|MB)/s · \d+ (s|min) left")


@pytest.fixture(scope="module")
def big_model(tmp_path_factory) -> Path:
    """A tiny model big enough (~2 MB) for a throttled download to show progress for a few seconds."""
    path = tmp_path_factory.mktemp("big") / "big.gguf"
    return write_tiny_gguf(path, n_embd=128, vocab_size=2000)


def open_discover(qtbot, window_factory):
    window = window_factory()
    window.show_page("Discover")
    page = window.discover_page
    qtbot.waitUntil(lambda: bool(page.recommended.rows), timeout=15_000)
    qtbot.waitUntil(lambda: page.downloads.queue is not None, timeout=5_000)
    return window, page


def search(qtbot, page, text: str) -> None:
    """Type a query and press Enter, as a person would; wait for the answer."""
    page.search_box.clear()
    qtbot.keyClicks(page.search_box, text)
    with qtbot.waitSignal(page.searchFinished, timeout=20_000):
        qtbot.keyPress(page.search_box, Qt.Key.Key_Return)


def open_repo(qtbot, page, repo_id: str) -> None:
    row = next(i for i, r in enumerate(page.repo_model.repos()) if r.id == repo_id)
    with qtbot.waitSignal(page.estimatesFinished, timeout=30_000):
        page.select_repo(row)


def job_row(page, name: str):
    return next(r for r in page.downloads.rows.values() if r.job.name == name)


def library_names(window) -> list[str]:
    return [e.name for e in window.models_page.table_model.entries()]


def test_recommendations_before_any_search(qtbot, window_factory, fake_hub, big_model):
    window, page = open_discover(qtbot, window_factory)
    assert page.views.currentWidget() is page.recommend_view
    hw = window.models_page.hardware
    speed = decode_bandwidth(hw).bytes_per_s  # this machine's, as the page's worker finds it
    picks = recommend(hw.budget_bytes, backend=page.backend, ctx=8192, decode_bandwidth=speed)
    rows = page.recommended.rows
    assert [r.title.full_text() for r in rows] == [p.entry.name for p in picks]
    best, pick = rows[0], picks[0]
    is_best = pick.verdict == "fits"
    assert best.badge.isVisibleTo(best) == is_best and best.property("best") == is_best
    assert not any(r.badge.isVisibleTo(r) for r in rows[1:])
    for part in (
        format_params(pick.entry.facts.parameters),
        pick.file.quant,
        pick.entry.licence,
        f"{format_speed(pick.tokens_per_s)} here",
    ):
        assert part in best.subtitle.full_text()
    assert best.memory_label.text() == format_bytes(pick.estimate.total_bytes)
    assert best.bar.verdict == pick.verdict and best.verdict_label.text()
    assert format_bytes(hw.budget_bytes) in page.recommend_note.text()

    # A smaller Mac: the list is ordered again for the new budget.
    small = replace(hw, budget_bytes=3 << 30)
    with qtbot.waitSignal(page.recommendationsShown, timeout=15_000):
        window.models_page.apply_hardware(small)
    expected = recommend(small.budget_bytes, backend=page.backend, ctx=8192, decode_bandwidth=speed)
    assert [r.title.full_text() for r in page.recommended.rows] == [p.entry.name for p in expected]
    assert [r.bar.verdict for r in page.recommended.rows] == [p.verdict for p in expected]

    # Download queues that repo and file; here the fake Hub serves it.
    pick = expected[0]
    fake_hub.add_file(pick.entry.repo, pick.file.file, big_model)
    row = page.recommended.rows[0]
    qtbot.mouseClick(row.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(page.downloads.rows), timeout=5_000)
    job = next(iter(page.downloads.rows.values())).job
    assert (job.repo_id, job.files) == (pick.entry.repo, [pick.file.file])
    name = Path(pick.file.file).name
    qtbot.waitUntil(lambda: job_row(page, name).job.state == "done", timeout=30_000)
    qtbot.waitUntil(lambda: name in library_names(window), timeout=15_000)
    assert row.download_button.text() == "Downloaded" and not row.download_button.isEnabled()


def test_search_lists_files_and_their_estimates(qtbot, window_factory, fake_hub, tiny_models):
    fake_hub.add_repo(REPO, downloads=4321, likes=21)
    fake_hub.add_file(REPO, "Tiny-Llama-Q8_0.gguf", tiny_models["tied_q8"])
    fake_hub.add_file(REPO, "Tiny-Llama-F16.gguf", tiny_models["gqa_f16"])
    fake_hub.add_file(REPO, "Tiny-Llama-IQ2_XXS.gguf", b"not a model " * 100)
    fake_hub.add_file(REPO, "README.md", b"# tiny\n", lfs=False)
    fake_hub.extra_listed_files[REPO] = ["../escape.gguf", "a/../../b.gguf"]
    fake_hub.add_file("otherorg/Unrelated-GGUF", "x-Q4_0.gguf", tiny_models["mha_f32"])
    window, page = open_discover(qtbot, window_factory)

    search(qtbot, page, "tiny")
    assert page.views.currentWidget() is page.results_view
    assert [r.id for r in page.repo_model.repos()] == [REPO]
    stats = page.repo_model.index(0).data(REPO_STATS_ROLE)
    assert "4,321 downloads" in stats and "21 likes" in stats
    assert not page.notice.isVisible()

    listed: list[list[str]] = []  # what the rows say the moment the listing arrives
    page.filesListed.connect(lambda: listed.append([r.message.full_text() for r in page.files.rows]))
    open_repo(qtbot, page, REPO)
    assert listed == [[READING, READING, READING]]
    rows = {r.title.full_text(): r for r in page.files.rows}
    assert set(rows) == {"Tiny-Llama-Q8_0.gguf", "Tiny-Llama-F16.gguf", "Tiny-Llama-IQ2_XXS.gguf"}
    for name, model, quant in (
        ("Tiny-Llama-Q8_0.gguf", "tied_q8", "Q8_0 · "),
        ("Tiny-Llama-F16.gguf", "gqa_f16", "F16 · "),
    ):
        row = rows[name]
        facts = model_facts(tiny_models[model])
        expected = estimate_memory(
            facts, RuntimeSettings(n_ctx=min(8192, facts.context_length), backend=page.backend), page.budget
        )
        subtitle = row.subtitle.full_text()
        assert subtitle.startswith(quant + format_bytes(tiny_models[model].stat().st_size))
        assert f"{format_params(facts.parameters)} parameters" in subtitle
        assert not row.showing_message
        assert row.estimate.total_bytes == expected.total_bytes
        assert row.memory_label.text() == format_bytes(expected.total_bytes)
        assert row.bar.verdict == "fits" and row.verdict_label.text() == "Fits"
        assert row.download_button.isEnabled() and row.download_button.text() == "Download"
    assert "8-bit" in rows["Tiny-Llama-Q8_0.gguf"].subtitle.full_text()
    bad = rows["Tiny-Llama-IQ2_XXS.gguf"]  # its header says it is no model: why, and no Download
    assert bad.showing_message and bad.message.full_text().startswith("⚠ Not a valid GGUF file")
    assert bad.message.objectName() == "errorText" and not bad.download_button.isEnabled()
    assert bad.subtitle.full_text().startswith("IQ2_XXS · ")
    assert page.refused_label.isVisibleTo(page)
    assert page.refused_label.text() == "2 files with unsafe names were ignored"
    assert not page.notice.isVisible()

    # Estimates follow the budget: a Mac too small for the F16 file.
    f16 = rows["Tiny-Llama-F16.gguf"]
    window.models_page.apply_hardware(replace(window.models_page.hardware, budget_bytes=f16.estimate.total_bytes // 2))
    assert f16.bar.verdict == "too_big" and f16.verdict_label.text() == "Too big"

    # Clearing the search goes back to the recommendations.
    page.search_box.clear()
    assert page.views.currentWidget() is page.recommend_view


def test_download_shows_progress_then_the_model_is_in_the_library(qtbot, window_factory, fake_hub, big_model):
    fake_hub.add_file(REPO, BIG, big_model)
    fake_hub.throttle_bytes_per_s = 800_000  # ~3 s for the file
    window, page = open_discover(qtbot, window_factory)
    search(qtbot, page, "llama")
    open_repo(qtbot, page, REPO)
    row = page.files.row(BIG)
    assert BIG not in library_names(window)

    qtbot.mouseClick(row.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(page.downloads.rows), timeout=5_000)
    jr = job_row(page, BIG)
    assert page.downloads.isVisible() and page.downloads.body.isVisible()
    qtbot.waitUntil(lambda: 0 < jr.progress.value() < 100 and jr.job.speed > 0, timeout=20_000)
    assert PROGRESS.fullmatch(jr.detail_label.full_text()), jr.detail_label.full_text()
    assert jr.state_label.text() == "Downloading" and jr.pause_button.text() == "Pause"
    assert jr.cancel_button.isVisible() and "partial file is kept" in jr.cancel_button.toolTip()
    assert row.download_button.text() == "Downloading…" and not row.download_button.isEnabled()

    qtbot.waitUntil(lambda: jr.job.state == "done", timeout=30_000)
    assert jr.progress.value() == 100 and jr.state_label.text() == "Done"
    assert not jr.pause_button.isVisible() and not jr.cancel_button.isVisible()
    assert row.download_button.text() == "Downloaded"
    # The Models page rescans on its own: the model is in the library without a restart.
    qtbot.waitUntil(lambda: BIG in library_names(window), timeout=15_000)
    entry = next(e for e in window.models_page.table_model.entries() if e.name == BIG)
    assert entry.error is None and entry.facts.parameters == model_facts(big_model).parameters


def test_pause_then_resume_even_after_a_restart(qtbot, window_factory, fake_hub, big_model):
    fake_hub.add_file(REPO, BIG, big_model)
    fake_hub.throttle_bytes_per_s = 300_000
    window, page = open_discover(qtbot, window_factory)
    search(qtbot, page, "tiny")
    open_repo(qtbot, page, REPO)
    qtbot.mouseClick(page.files.row(BIG).download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(page.downloads.rows), timeout=5_000)
    jr = job_row(page, BIG)
    qtbot.waitUntil(lambda: jr.progress.value() > 0, timeout=20_000)

    qtbot.mouseClick(jr.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: jr.job.state == "paused", timeout=10_000)
    assert jr.state_label.text() == "Paused" and jr.pause_button.text() == "Resume"
    assert 0 < jr.progress.value() < 100 and "of" in jr.detail_label.full_text()
    partials = list(Path(os.environ["HF_HUB_CACHE"]).rglob("*.partial"))
    assert len(partials) == 1 and partials[0].stat().st_size > 0
    kept = partials[0].stat().st_size

    # Quit and start again: the download is still there, paused.
    window.close()
    window, page = open_discover(qtbot, window_factory)
    qtbot.waitUntil(lambda: bool(page.downloads.rows), timeout=5_000)
    jr = job_row(page, BIG)
    assert jr.job.state == "paused" and jr.pause_button.text() == "Resume"

    fake_hub.throttle_bytes_per_s = None
    qtbot.mouseClick(jr.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: jr.job.state == "done", timeout=30_000)
    assert jr.state_label.text() == "Done"
    last_get = fake_hub.file_requests("GET")[-1]
    assert last_get.range == f"bytes={kept}-"  # it continued where it stopped
    qtbot.waitUntil(lambda: BIG in library_names(window), timeout=15_000)


def test_a_corrupt_download_shows_the_sha256_error(qtbot, window_factory, fake_hub, big_model):
    fake_hub.add_file(REPO, BIG, big_model)
    fake_hub.corrupt.add((REPO, BIG))
    window, page = open_discover(qtbot, window_factory)
    search(qtbot, page, "tiny")
    open_repo(qtbot, page, REPO)
    row = page.files.row(BIG)
    qtbot.mouseClick(row.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(page.downloads.rows), timeout=5_000)
    jr = job_row(page, BIG)
    qtbot.waitUntil(lambda: jr.job.state == "failed", timeout=30_000)

    assert jr.state_label.text() == "Failed"
    assert jr.error_label.isVisible() and jr.error_label.objectName() == "errorText"
    assert "sha256" in jr.error_label.text() and BIG in jr.error_label.text()
    assert "Traceback" not in jr.error_label.text()
    assert jr.remove_button.isVisible() and jr.pause_button.text() == "Retry"
    assert row.download_button.text() == "Download" and row.download_button.isEnabled()
    assert not page.notice.isVisible()  # the error is on its row, not in a popup or the notice

    qtbot.mouseClick(jr.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.downloads.rows, timeout=15_000)
    assert not page.downloads.isVisible()
    assert window.download_queue.jobs() == []
    # The app keeps working.
    search(qtbot, page, "llama")
    assert [r.id for r in page.repo_model.repos()] == [REPO]


def test_searching_offline_shows_one_readable_message(qtbot, window_factory):
    window, page = open_discover(qtbot, window_factory)
    search(qtbot, page, "llama")
    text = page.notice.label.text()
    assert page.notice.isVisible()
    assert text.startswith("Cannot reach the Hub at http://127.0.0.1:9")
    assert "\n" not in text and "Traceback" not in text
    assert [n for n in window.findChildren(Notice) if n.isVisible()] == [page.notice]
    assert page.repo_model.rowCount() == 0
    assert "Searching" not in page.status_label.text()
    assert page.search_box.isEnabled()
    # The catalog still answers: only its entries matching the query are shown, and the notice says so.
    assert text.endswith("Showing the curated models matching “llama”.")
    assert page.views.currentWidget() is page.recommend_view
    shown = [r.title.full_text() for r in page.recommended.rows if r.isVisibleTo(page)]
    expected = [e.name for e in matching(load_catalog(), "llama")]
    assert sorted(shown) == sorted(expected) and 0 < len(shown) < len(page.recommended.rows)
    search(qtbot, page, "no-such-model")
    assert not any(r.isVisibleTo(page) for r in page.recommended.rows)
    assert page.recommended.placeholder.text() == "No curated model matches “no-such-model”."
    page.search_box.clear()  # an empty search box brings the whole list back
    assert all(r.isVisibleTo(page) for r in page.recommended.rows) and not page.recommended.placeholder.isVisible()
