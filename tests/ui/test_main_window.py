"""The window: pages, placeholders, geometry, and the start-up hook the benchmark uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from macapp.core.settings import Settings
from macapp.core.units import format_bytes, format_count, format_params, format_percent

ROOT = Path(__file__).resolve().parents[2]


def test_sidebar_switches_pages(qtbot, window_factory):
    window = window_factory()
    names = [window.sidebar.item(i).text() for i in range(window.sidebar.count())]
    assert names == ["Models", "Discover", "Chat", "Documents", "Tuning"]
    assert window.pages.currentWidget() is window.models_page
    window.show_page("Chat")
    assert window.pages.currentWidget() is window.chat_page
    window.sidebar.setCurrentRow(4)
    assert window.pages.currentWidget() is window.tuning_page
    window.sidebar.setCurrentRow(3)
    assert window.pages.currentWidget() is window.documents_page
    assert "budget" in window.machine_label.text().lower()


def test_the_sidebar_spans_its_panel(qtbot, window_factory):
    """The page list is as wide as the panel under it (server switch, machine): a selected page's highlight
    reaches the panel's edge instead of stopping short of it."""
    window = window_factory()
    window.resize(1180, 760)
    window.show()
    qtbot.waitExposed(window)
    panel = window.sidebar.parentWidget()
    assert panel.width() <= 280  # the pages keep the room
    assert window.sidebar.width() == panel.width()
    assert window.server_panel.width() <= panel.width()


def test_geometry_is_saved_and_restored(qtbot, window_factory):
    window = window_factory()
    window.resize(780, 540)  # within the offscreen screen (800 x 600): restoring clamps to the screen
    saved = window.geometry_text()
    window.close()
    assert Settings.load().window_geometry == saved
    again = window_factory()
    assert (again.width(), again.height()) == (780, 540)


def test_exit_after_paint_reports_the_first_paint(tmp_path):
    env = dict(
        os.environ,
        MACAPP_HOME=str(tmp_path / "orchard"),
        HF_HUB_CACHE=str(tmp_path / "hf"),
        HOME=str(tmp_path),
        QT_QPA_PLATFORM="offscreen",
        MACAPP_EXIT_AFTER_PAINT="1",
    )
    code = "import sys; from macapp.ui.app import run_gui; sys.exit(run_gui([]))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("first_paint_s="))
    assert 0 < float(line.split()[0].split("=")[1]) < 30


def test_numbers_read_like_a_person_writes_them():
    assert format_bytes(1_288_490_188) == "1.2 GB"
    assert format_bytes(16 * 1024**3) == "16 GB"
    assert format_bytes(277 * 1024) == "277 KB"
    assert format_bytes(512) == "512 bytes"
    assert format_params(7_241_732_096) == "7.2 B"
    assert format_params(1_100_048_384) == "1.1 B"
    assert format_params(136_448) == "136 K"
    assert format_params(13_015_864_320) == "13 B"
    assert format_params(999_999) == "1.0 M"
    assert format_count(32000) == "32,000"
    assert format_percent(0.37) == "37%" and format_percent(0.0001) == "<0.1%"
