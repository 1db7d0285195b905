"""The Models page: the library table, the live estimate, drag and drop, bad files."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from macapp.core.models.estimate import estimate_memory
from macapp.core.models.library import model_facts
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.settings import Settings
from macapp.core.units import format_bytes, format_count, format_params
from macapp.ui.models.page import EMPTY_TEXT, ModelsPage
from macapp.ui.models.table import ESTIMATE_ROLE, Column


def _cell(page, name: str, column: Column, role=Qt.ItemDataRole.DisplayRole):
    model = page.table_model
    row = next(r for r in range(model.rowCount()) if model.entry(r).name == name)
    return model.index(row, column).data(role)


def _drop(page, *paths: Path) -> None:
    """Drag files over the page and drop them, as the window system would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    actions, button, mods = Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(40, 40), actions, mime, button, mods)
    QApplication.sendEvent(page, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(40, 40), actions, mime, button, mods)
    QApplication.sendEvent(page, drop)
    assert drop.isAccepted()


def _names(page) -> list[str]:
    return sorted(e.name for e in page.table_model.entries())


def test_table_fills_from_a_model_folder(qtbot, model_dir, window_factory):
    Settings(model_dirs=[str(model_dir)]).save()
    window = window_factory()
    page = window.models_page
    assert window.windowTitle() == "Orchard"
    assert _names(page) == ["tiny-chat-q8_0.gguf", "tiny-gqa-f16.gguf", "tiny-mha-f32.gguf"]
    assert page.table.model().rowCount() == 3
    for path in model_dir.rglob("*.gguf"):
        facts = model_facts(path)
        assert _cell(page, path.name, Column.PARAMETERS) == format_params(facts.parameters)
        assert _cell(page, path.name, Column.VOCAB) == format_count(facts.vocab_size)
        assert _cell(page, path.name, Column.CONTEXT) == format_count(facts.context_length)
        assert _cell(page, path.name, Column.QUANT) == facts.quantization
        assert _cell(page, path.name, Column.STATUS) in ("Fits", "Tight", "Too big")
    assert _cell(page, "tiny-gqa-f16.gguf", Column.VOCAB) == "1,000"
    assert _cell(page, "tiny-chat-q8_0.gguf", Column.KIND) == "Instruct"
    assert page.hardware is not None and page.status_label.text().startswith("3 models")
    assert page.details.entry is not None  # the first usable model is shown


def test_slider_updates_the_estimate_live(qtbot, model_dir, window_factory):
    Settings(model_dirs=[str(model_dir)], default_ctx=1024).save()
    window = window_factory()
    page = window.models_page
    row = page.table_model.row_of_path(str(model_dir / "tiny-gqa-f16.gguf"))
    page.select_row(row)
    details = page.details
    entry = details.entry
    assert entry.name == "tiny-gqa-f16.gguf" and details.ctx == 1024  # min(default_ctx, trained 4096)
    assert details.slider.maximum() == 4096 // 256

    def expected(n_ctx: int, kv_type: str = "f16"):
        return estimate_memory(entry.facts, replace(page.runtime_for(entry), n_ctx=n_ctx, kv_type=kv_type), page.budget)

    details.slider.setValue(2)  # what a drag to the second notch does
    small = expected(512)
    assert details.ctx == 512
    assert details.kv_value.text() == format_bytes(small.kv_cache_bytes)
    assert details.bar.parts == (small.weights_bytes, small.kv_cache_bytes, small.compute_bytes + small.overhead_bytes)

    details.slider.setValue(16)
    big = expected(4096)
    assert big.kv_cache_bytes == 8 * small.kv_cache_bytes
    assert details.kv_value.text() == format_bytes(big.kv_cache_bytes) != format_bytes(small.kv_cache_bytes)
    assert details.bar.parts[1] == big.kv_cache_bytes
    assert details.total_value.text() == format_bytes(big.total_bytes)
    assert details.max_ctx_label.text() == f"Largest context that fits: {format_count(big.max_ctx_that_fits)} tokens"
    assert details.bar.verdict == big.verdict == "fits"
    # the table row follows the panel
    assert _cell(page, entry.name, Column.MEMORY, ESTIMATE_ROLE).kv_cache_bytes == big.kv_cache_bytes

    details.kv_combo.setCurrentIndex(details.kv_combo.findData("q8_0"))
    quantized = expected(4096, "q8_0")
    assert details.bar.parts[1] == quantized.kv_cache_bytes < big.kv_cache_bytes


def test_verdict_follows_the_budget(qtbot, model_dir, window_factory):
    Settings(model_dirs=[str(model_dir)]).save()
    window = window_factory()
    page = window.models_page
    page.select_row(page.table_model.row_of_path(str(model_dir / "tiny-mha-f32.gguf")))
    est = page.details.estimate
    name = page.details.entry.name
    page.apply_hardware(replace(page.hardware, budget_bytes=int(est.total_bytes * 1.05)))  # a small Mac
    assert page.details.bar.verdict == "tight" and page.details.verdict_label.text() == "Tight"
    assert _cell(page, name, Column.STATUS) == "Tight"
    page.apply_hardware(replace(page.hardware, budget_bytes=est.total_bytes // 2))
    assert page.details.bar.verdict == "too_big" and _cell(page, name, Column.STATUS) == "Too big"
    assert page.details.max_ctx_label.text().startswith("Largest context that fits: ")


def test_dropped_file_appears_in_the_table(qtbot, tmp_path, window_factory):
    window = window_factory()
    page = window.models_page
    assert page.table_model.rowCount() == 0
    assert page.empty_label.text() == EMPTY_TEXT and page.list_stack.currentWidget() is page.empty_label
    path = write_tiny_gguf(tmp_path / "downloads" / "dropped-q8_0.gguf", qtype="q8_0")
    _drop(page, path)
    qtbot.waitUntil(lambda: page.table_model.rowCount() == 1, timeout=10_000)
    assert _names(page) == ["dropped-q8_0.gguf"]
    assert _cell(page, path.name, Column.PARAMETERS) == format_params(model_facts(path).parameters)
    assert page.list_stack.currentWidget() is page.table
    assert page.details.entry.name == "dropped-q8_0.gguf"  # the new model is selected
    assert str(path.resolve()) in Settings.load().model_files
    _drop(page, path)  # the same file again: still one row
    qtbot.waitUntil(lambda: not page._adds_running, timeout=10_000)
    assert page.table_model.rowCount() == 1


def test_bad_files_show_their_reason_and_the_app_keeps_running(qtbot, tmp_path, window_factory):
    window = window_factory()
    page = window.models_page
    good = write_tiny_gguf(tmp_path / "good.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[:200])
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    _drop(page, truncated, junk)
    qtbot.waitUntil(lambda: page.table_model.rowCount() == 2, timeout=10_000)
    qtbot.waitUntil(lambda: not page._adds_running, timeout=10_000)
    for entry in page.table_model.entries():
        assert entry.error and entry.facts is None
        status = _cell(page, entry.name, Column.STATUS)
        tooltip = _cell(page, entry.name, Column.NAME, Qt.ItemDataRole.ToolTipRole)
        assert status.startswith("⚠ ") and len(status) > 12
        assert entry.name not in status and "not a valid GGUF" not in status  # the reason itself, first
        assert entry.error in tooltip
    assert _cell(page, "truncated.gguf", Column.STATUS).startswith("⚠ Truncated")
    assert page.status_label.text() == "2 models · 2 unusable · budget " + format_bytes(page.budget)
    page.select_row(0)
    assert page.details.error_reason.text().startswith("This file cannot be used: ")
    assert not page.notice.isVisible()  # unusable files get rows, not messages

    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a model")
    _drop(page, text_file)
    qtbot.waitUntil(lambda: page.notice.isVisible(), timeout=10_000)
    assert "notes.txt is not a .gguf file" in page.notice.label.text()
    assert page.table_model.rowCount() == 2

    shutil.copy(good, tmp_path / "good-copy.gguf")
    _drop(page, tmp_path / "good-copy.gguf")  # still working after all that
    qtbot.waitUntil(lambda: page.table_model.rowCount() == 3, timeout=10_000)
    assert window.isVisible()


def test_add_folder_remembers_it_and_rescans(qtbot, model_dir, window_factory):
    window = window_factory()
    page = window.models_page
    with qtbot.waitSignal(page.scanFinished, timeout=15_000):
        page.add_folder(str(model_dir))
    assert Settings.load().model_dirs == [str(model_dir)]
    assert page.table_model.rowCount() == 3
    page.add_folder(str(model_dir))  # the same folder again: still one entry (as `macapp models add` keeps it)
    qtbot.waitUntil(lambda: not page.scanning, timeout=15_000)
    assert Settings.load().model_dirs == [str(model_dir)] and page.table_model.rowCount() == 3


def test_a_folder_gone_before_it_is_added_says_so(qtbot, tmp_path):
    page = ModelsPage(Settings())
    qtbot.addWidget(page)
    assert page.add_folder(str(tmp_path / "gone")) is None
    assert page.notice.isVisibleTo(page) and "does not exist" in page.notice.label.text()
    assert Settings.load().model_dirs == []


def test_a_rows_actions_chat_with_it_and_remove_an_added_file(qtbot, tiny_models, model_dir, window_factory):
    model = str(tiny_models["mha_f32"])
    Settings(model_dirs=[str(model_dir)], model_files=[model]).save()
    window = window_factory()
    page = window.models_page
    rows = {Path(e.path).name: row for row, e in enumerate(page.table_model.entries())}
    entry = page.table_model.entry(rows[Path(model).name])
    chat, show, remove = page.row_actions(entry, page)
    assert [a.text() for a in (chat, show, remove)] == ["Chat with this model", "Show in folder", "Remove from library"]

    chat.trigger()  # the Chat page, that model picked and loading
    assert window.pages.currentWidget() is window.chat_page
    qtbot.waitUntil(lambda: window.chat_page.engine is not None, timeout=30_000)
    assert Path(window.chat_page.engine.path) == Path(model)
    assert window.chat_page.header.picker.current_ref() == entry.path
    engine = window.chat_page.engine
    chat.trigger()  # the model on screen already: picked, not loaded again
    assert not window.chat_page.loading and window.chat_page.engine is engine

    in_folder = page.table_model.entry(rows[next(n for n in rows if n != Path(model).name)])
    window.show_page("Models")
    page.row_actions(in_folder, page)[2].trigger()  # found in a watched folder: can't be forgotten alone
    assert page.notice.isVisible() and "folder" in page.notice.label.text()
    with qtbot.waitSignal(page.scanFinished, timeout=15_000):
        remove.trigger()
    assert "stays on disk" in page.notice.label.text() and Path(model).exists()
    assert model not in Settings.load().model_files
    assert all(e.path != entry.path for e in page.table_model.entries())
