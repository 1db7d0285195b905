"""What a careful user sees: nothing clipped at the window's sizes, one wording per setting, readable controls."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QBoxLayout

from macapp.core.settings import Settings
from macapp.ui.models.table import HEADERS, OPTIONAL_COLUMNS, Column


def _settle(qtbot, window, width: int, height: int) -> None:
    window.resize(width, height)
    QCoreApplication.processEvents()
    qtbot.wait(50)


def test_models_table_needs_no_sideways_scrolling_at_the_default_size(qtbot, model_dir, window_factory):
    Settings(model_dirs=[str(model_dir)]).save()
    window = window_factory()
    _settle(qtbot, window, 1180, 760)
    table = window.models_page.table
    head = table.horizontalHeader()
    assert table.horizontalScrollBar().maximum() == 0
    assert not any(head.isSectionHidden(c) for c in Column)  # every column has room at the default size
    bold = head.font()
    bold.setBold(True)
    from PySide6.QtGui import QFontMetrics

    for col in Column:
        if col != Column.NAME:  # the status header and its longest verdict are whole, not "St" / "Fi"
            assert head.sectionSize(col) >= QFontMetrics(bold).horizontalAdvance(HEADERS[col]) + 12, HEADERS[col]
    assert head.sectionSize(Column.STATUS) >= table.fontMetrics().horizontalAdvance("Too big") + 12
    assert head.sectionSize(Column.NAME) >= 180


def test_a_narrow_window_hides_the_facts_the_details_repeat_instead_of_scrolling(qtbot, model_dir, window_factory):
    Settings(model_dirs=[str(model_dir)]).save()
    window = window_factory()
    _settle(qtbot, window, 900, 600)
    table = window.models_page.table
    head = table.horizontalHeader()
    assert table.horizontalScrollBar().maximum() == 0
    hidden = [c for c in Column if head.isSectionHidden(c)]
    assert hidden and set(hidden) <= set(OPTIONAL_COLUMNS)
    assert not head.isSectionHidden(Column.STATUS) and not head.isSectionHidden(Column.MEMORY)
    _settle(qtbot, window, 1180, 760)
    assert not any(head.isSectionHidden(c) for c in Column)  # back when there is room


def test_model_details_stack_when_narrow_with_no_sideways_scrolling(qtbot, model_dir, window_factory):
    Settings(model_dirs=[str(model_dir)]).save()
    window = window_factory()
    page = window.models_page
    page.table.selectRow(0)
    _settle(qtbot, window, 900, 600)
    details = page.details
    scroll = page.details_scroll
    assert scroll.horizontalScrollBar().maximum() == 0
    assert details.body.direction() == QBoxLayout.Direction.TopToBottom
    assert details.width() <= scroll.viewport().width()
    # the context slider's value is whole inside the panel
    label = details.ctx_label
    right = label.mapTo(details, label.rect().topRight()).x()
    assert right <= details.width() and label.width() >= label.fontMetrics().horizontalAdvance(label.text())
    _settle(qtbot, window, 1440, 900)
    assert details.body.direction() == QBoxLayout.Direction.LeftToRight


def test_the_kv_cache_reads_the_same_everywhere(qtbot):
    from macapp.ui.chat.settings import SettingsDrawer
    from macapp.ui.dialogs.settings import SettingsDialog
    from macapp.ui.models.details import ModelDetails
    from macapp.ui.widgets.choices import KV_TYPE_LABELS, KV_TYPES

    dialog, details, drawer = SettingsDialog(Settings()), ModelDetails(), SettingsDrawer()
    for widget in (dialog, details, drawer):
        qtbot.addWidget(widget)
    wanted = [(KV_TYPE_LABELS[kv], kv) for kv in KV_TYPES]
    for combo in (dialog.kv_box, details.kv_combo, drawer.kv):
        assert [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())] == wanted
