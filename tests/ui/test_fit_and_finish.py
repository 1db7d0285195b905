"""What a careful user sees: nothing clipped at the window's sizes, one wording per setting, readable controls."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QColor, QIcon, QImage
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


# --- styles: both themes -------------------------------------------------------------------------------------------
def _luminance(color) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def _contrast(a, b) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.fixture(params=["light", "dark"])
def themed(request, qapp):
    """The app styled in one theme for the test (the sheet it had before is put back)."""
    from macapp.ui import theme

    before = qapp.styleSheet()
    qapp.setStyleSheet(theme.style_sheet(request.param == "dark"))
    yield request.param
    qapp.setStyleSheet(before)


def _near(a, b, distance: int = 40) -> bool:
    return abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue()) < distance


def _grab(widget) -> QImage:
    QCoreApplication.processEvents()
    return widget.grab().toImage()


def test_a_disabled_edit_is_readable_while_an_answer_streams(qtbot, themed):
    from macapp.ui.chat.bubble import MessageBubble

    bubble = MessageBubble("user", text="What is a GGUF file?")
    qtbot.addWidget(bubble)
    bubble.resize(420, 120)
    bubble.show()
    bubble.fit(400)
    bubble.set_actions(last=True, busy=True)
    button = bubble.edit_button
    assert not button.isEnabled()
    image = _grab(bubble.frame)
    rect = button.geometry().translated(button.parentWidget().mapTo(bubble.frame, button.pos()) - button.pos())
    background = image.pixelColor(6, image.height() // 2)  # the bubble's own colour, inside its rounded corner
    strongest = max(
        _contrast(image.pixelColor(x, y), background)
        for x in range(rect.left(), rect.right())
        for y in range(rect.top(), rect.bottom())
    )
    assert strongest >= 3.0, f"{themed}: the disabled Edit reaches only {strongest:.2f}:1 against its bubble"


def test_a_checked_checkbox_shows_a_tick(qtbot, themed):
    from PySide6.QtWidgets import QCheckBox, QStyle, QStyleOptionButton

    from macapp.ui import theme

    box = QCheckBox("Include LM Studio's models")
    qtbot.addWidget(box)
    box.show()
    box.setChecked(True)
    option = QStyleOptionButton()
    box.initStyleOption(option)
    indicator = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
    image = _grab(box)
    accent = QColor((theme.DARK if themed == "dark" else theme.LIGHT)["accent"])
    pixels = [
        image.pixelColor(x, y)
        for x in range(indicator.left(), indicator.right())
        for y in range(indicator.top(), indicator.bottom())
    ]
    filled = sum(1 for p in pixels if _near(p, accent))
    tick = sum(1 for p in pixels if p.lightness() > 230 and _contrast(p, accent) > 2.0)
    assert filled > len(pixels) // 3 and tick >= 6, (themed, filled, tick)
    box.setChecked(False)
    image = _grab(box)
    indicator = indicator.adjusted(3, 3, -3, -3)  # inside the border (the accent colour when under the mouse)
    assert not any(
        _near(image.pixelColor(x, y), accent)
        for x in range(indicator.left(), indicator.right())
        for y in range(indicator.top(), indicator.bottom())
    )


def test_dialog_buttons_carry_no_stock_icons(qtbot, qapp, themed):
    """Even where the platform's style puts icons on dialog buttons (a red X, a floppy disk), Orchard's don't."""
    from PySide6.QtGui import QPixmap
    from PySide6.QtWidgets import QDialogButtonBox, QProxyStyle, QStyle

    class IconsOnButtons(QProxyStyle):
        def styleHint(self, hint, option=None, widget=None, data=None):
            if hint == QStyle.StyleHint.SH_DialogButtonBox_ButtonsHaveIcons:
                return 1
            return super().styleHint(hint, option, widget, data)

        def standardIcon(self, icon, option=None, widget=None):
            pixmap = QPixmap(16, 16)
            pixmap.fill(QColor("red"))
            return QIcon(pixmap)

    style = IconsOnButtons()

    def button_icons() -> list[QIcon]:
        buttons = QDialogButtonBox()
        qtbot.addWidget(buttons)
        buttons.setStyle(style)
        buttons.setStandardButtons(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        return [b.icon() for b in buttons.buttons()]

    assert all(icon.isNull() for icon in button_icons())
    sheet = qapp.styleSheet()
    qapp.setStyleSheet(sheet.replace("dialogbuttonbox-buttons-have-icons: 0;", ""))  # without the rule they'd show
    assert not any(icon.isNull() for icon in button_icons())


def test_code_scroll_bars_are_drawn_in_the_theme_not_black(qtbot, themed):
    from macapp.ui.chat.markdown import CodeBlock

    block = CodeBlock("x = compute(" + ", ".join(f"argument_{i}" for i in range(30)) + ")\n", "python")
    qtbot.addWidget(block)
    block.show()
    block.fit(360)
    bar = block.view.horizontalScrollBar()
    QCoreApplication.processEvents()
    assert bar.isVisible() and bar.maximum() > 0
    image = _grab(block)  # the bar over the block's own background, as a person sees it
    middle = bar.mapTo(block, bar.rect().center()).y()
    left, right = bar.mapTo(block, bar.rect().topLeft()).x(), bar.mapTo(block, bar.rect().topRight()).x()
    darkest = min(image.pixelColor(x, middle).lightness() for x in range(left, right))
    lightest = max(image.pixelColor(x, middle).lightness() for x in range(left, right))
    if themed == "dark":
        assert lightest < 140, lightest  # no white track
    else:
        assert darkest > 120, darkest  # no black track


def test_icons_the_style_sheet_names_exist_and_are_packaged():
    import re
    from fnmatch import fnmatch
    from pathlib import Path

    import tomllib

    from macapp.ui import theme

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "packaging"))
    try:
        import manifest
    finally:
        sys.path.remove(str(root / "packaging"))
    names = set(re.findall(r'url\("@icons/([\w.-]+)"\)', (root / "macapp/ui/style.qss").read_text(encoding="utf-8")))
    assert {"check.svg", "chevron-down.svg", "chevron-right.svg", "chevron-up.svg"} <= names
    bundled = {(src, dest) for src, dest in manifest.DATA_FILES}
    package_data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["macapp"]
    for name in names:
        assert (theme.ICONS / name).is_file(), name
        assert (f"macapp/ui/icons/{name}", "macapp/ui/icons") in bundled, name  # in the app bundle
        assert any(fnmatch(f"ui/icons/{name}", pattern) for pattern in package_data), name  # in the wheel
    for dark in (False, True):
        assert f'url("{theme.ICONS.as_posix()}/check.svg")' in theme.style_sheet(dark)


def test_the_code_language_shows_while_the_answer_streams(qtbot):
    from macapp.ui.chat.markdown import CodeBlock, StreamingMarkdown

    view = StreamingMarkdown()
    qtbot.addWidget(view)
    view.fit(480)
    text = ""
    for chunk in ("Here it is:\n\n", "```", "py", "thon\n", "print(", "'hi')\n"):
        text += chunk
        view.render(text)
    blocks = [p for p in view.parts() if isinstance(p, CodeBlock)]
    assert len(blocks) == 1 and blocks[0].language.text() == "python" and blocks[0].code() == "print('hi')"
    view.render(text + "```\nDone.")  # the fence closes: the frozen block keeps its language
    blocks = [p for p in view.parts() if isinstance(p, CodeBlock)]
    assert [b.language.text() for b in blocks] == ["python"]


def test_the_chat_header_elides_a_long_model_name_and_its_tooltip_holds_it(qtbot):
    from macapp.ui.chat.header import ModelBar
    from macapp.ui.chat.settings import SettingsDrawer

    drawer = SettingsDrawer()
    bar = ModelBar(drawer)
    qtbot.addWidget(bar)
    qtbot.addWidget(drawer)
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    bar.picker.addItem(name, "smollm2")
    bar.picker.setCurrentIndex(0)
    bar.model_status.setText(f"{name} · 8,192-token context")
    bar.model_status.setToolTip(f"llama.cpp · {name}")
    bar.resize(900, 70)
    bar.show()
    QCoreApplication.processEvents()
    assert bar.picker.shown_text() == name and bar.model_status.shown_text() == bar.model_status.text()
    bar.meter.set_usage(4, 8192)
    bar.resize(bar.minimumSizeHint().width(), 70)  # the chat column with the settings drawer open
    assert bar.width() < 480
    QCoreApplication.processEvents()
    for shown, full, tip in (
        (bar.picker.shown_text(), name, bar.picker.shown_tooltip()),
        (bar.model_status.shown_text(), bar.model_status.text(), bar.model_status.shown_tooltip()),
    ):
        assert "…" in shown and len(shown) < len(full), shown  # elided with an ellipsis, not cut
        assert full in tip or name in tip, tip  # the tooltip holds the whole name
    assert bar.model_status.text() == f"{name} · 8,192-token context"  # text() stays whole for the code


def test_a_question_box_uses_orchards_icon_and_the_theme(qtbot, themed):
    from PySide6.QtWidgets import QMessageBox

    from macapp.ui import theme

    colors = theme.DARK if themed == "dark" else theme.LIGHT
    box = QMessageBox(QMessageBox.Icon.Question, "Delete chat", "Delete “Trip plans”?")
    qtbot.addWidget(box)
    box.show()
    image = _grab(box)
    assert _near(image.pixelColor(2, 2), QColor(colors["window"]), 12)  # not the platform's light grey in dark
    icon = box.iconPixmap().toImage()
    ours = QColor("#2f7d4f")  # question.svg's circle, not the platform's stock blue "?"
    assert _near(icon.pixelColor(icon.width() // 2, icon.height() // 5), ours, 30)


def test_downloads_added_to_a_shown_panel_get_their_height_and_keep_their_names(qtbot):
    """Jobs reported one after another while the page is on screen: the list grows to hold them (it used to
    measure only the first, still-hidden row, and scrolled three downloads in one row's height), and on a
    narrow row the repository elides first (its tooltip holds it) while the file name stays whole."""
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from macapp.core.models.download_queue import DownloadJob
    from macapp.ui.discover.downloads import DownloadsPanel

    host = QWidget()
    QVBoxLayout(host).addWidget(panel := DownloadsPanel())
    qtbot.addWidget(host)
    host.resize(590, 500)
    host.show()
    repo = "lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF"
    jobs = [
        DownloadJob(1, repo, ["Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"], state="running", done=5, total=10),
        DownloadJob(2, repo, ["Meta-Llama-3.1-8B-Instruct-Q8_0.gguf"], state="paused", done=1, total=10),
        DownloadJob(3, repo, ["Meta-Llama-3.1-8B-Instruct-F16.gguf"], state="failed", error="Connection reset."),
    ]
    for job in jobs:
        panel._on_job(job)
    rows = list(panel.rows.values())
    qtbot.waitUntil(lambda: all(r.isVisible() and r.width() < host.width() for r in rows), timeout=2000)
    qtbot.wait(20)
    assert panel.body.verticalScrollBar().maximum() == 0
    assert panel.body.height() >= sum(r.height() for r in rows)
    for row in rows:
        assert row.name_label.text() == row.name_label.full_text()
        assert row.repo_label.toolTip() == repo
        assert row.repo_label.text() != repo  # no room for it at this width: elided, not the name
        shown = row.repo_label.text()
        assert shown == "" or len(shown) > 8  # a stub such as "u…F" is not shown
    host.resize(480, 500)
    qtbot.waitUntil(lambda: all(r.repo_label.text() == "" for r in rows), timeout=2000)


def test_the_files_pane_shows_no_empty_heading_before_a_repo_is_picked(qtbot):
    from macapp.ui.discover.repo_files import RepoFilesView

    view = RepoFilesView()
    qtbot.addWidget(view)
    view.show()
    assert not view.repo_title.isVisible() and not view.note.isVisible()  # they left a gap above the placeholder
    view.repo_title.set_full_text("org/repo")
    view._sync_heading()
    assert view.repo_title.isVisible()


def test_the_empty_loss_plot_wraps_its_line_instead_of_cutting_it(qtbot):
    """At 900×600 the plot is narrower than "The loss curve appears here while training." (it read
    "ss curve appears here while tr"): the line wraps inside the plot."""
    from PySide6.QtGui import QFontMetricsF

    from macapp.ui.tuning.loss_plot import PLACEHOLDER, PLACEHOLDER_FLAGS, LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(plot.minimumSizeHint())
    plot.show()
    room = plot.placeholder_rect()
    need = QFontMetricsF(plot.font()).boundingRect(room, PLACEHOLDER_FLAGS, PLACEHOLDER)
    assert QFontMetricsF(plot.font()).horizontalAdvance(PLACEHOLDER) > room.width()  # it must wrap here
    assert room.contains(need)
    assert not plot.grab().isNull()


def test_a_long_adapter_line_elides_with_its_tooltip_instead_of_scrolling_sideways(qtbot):
    from pathlib import Path

    from macapp.core.tuning.adapters import AdapterInfo
    from macapp.ui.tuning.adapter_list import AdapterList

    adapters = AdapterList()
    qtbot.addWidget(adapters)
    adapters.resize(300, 120)
    adapters.show()
    name = "support-tone-with-a-name-long-enough-to-need-the-whole-row-and-more"
    adapters._show([AdapterInfo(name, Path("/a"), "complete", "/m/Qwen2.5-0.5B-Instruct-bf16", iterations=200)])
    qtbot.wait(20)
    item = adapters.item(0)
    assert adapters.horizontalScrollBar().maximum() == 0
    assert adapters.visualItemRect(item).width() <= adapters.viewport().width()
    assert item.toolTip() == item.text() and item.text().startswith(name)


def test_a_failed_pdf_reads_as_two_sentences_not_a_full_stop_then_a_dash():
    from pathlib import Path

    from macapp.core.docs.ingest import FileOutcome
    from macapp.ui.widgets.ingest_panel import outcome_text

    def failed(message: str, hint: str | None) -> str:
        return outcome_text(FileOutcome(Path("/x.pdf"), "x.pdf", "failed", message=message, hint=hint))

    assert failed("x.pdf is not a PDF.", "Only PDF files can be added.") == (
        "x.pdf is not a PDF. Only PDF files can be added."
    )
    assert failed("x.pdf could not be indexed", "check the disk") == "x.pdf could not be indexed — check the disk"
    assert failed("x.pdf has no pages.", None) == "x.pdf has no pages."


def test_the_dataset_verdict_points_at_the_problem_list_below_the_summary():
    """The summary's lines sit between the verdict and the list: a colon read as if the dataset's line were the
    first problem."""
    from pathlib import Path

    from macapp.core.tuning.datasets import DatasetProblem, DatasetReport
    from macapp.core.tuning.train import TrainOptions, TrainPlan
    from macapp.ui.tuning.texts import plan_text

    report = DatasetReport(Path("train.jsonl"), "chat", 6)
    report.problems.append(DatasetProblem(2, "not valid JSON"))
    first = plan_text(TrainPlan(TrainOptions(None, Path("train.jsonl"), "a"), [report], None, None)).split("\n")[0]
    assert first == "1 problem to fix before training, listed below."


def test_an_opened_step_ends_with_its_last_line_not_a_blank_one(qtbot):
    from macapp.ui.chat.agent_steps import StepRow

    row = StepRow(1, "read_file", {"path": "notes/hives.txt"})
    qtbot.addWidget(row)
    row.set_state("ok", result="Hive 1: strong.\nHive 2: queenless.\n")
    assert row.details.text().endswith("Result:\nHive 1: strong.\nHive 2: queenless.")
